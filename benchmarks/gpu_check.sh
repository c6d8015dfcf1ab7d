#!/usr/bin/env bash
# The one prepared command for a lent GPU (one H100/H200, no network; at most ~8 minutes):
#   1. kernel and layer tests on CUDA,
#   2. the kernel benchmarks (masked aggregation vs cuSPARSE and gather + index_add_, fused KL and BPR),
#   3. the link-prediction demo on CUDA (embedded synthetic graph: no dataset on that machine),
#   4. train, delete 0.01% of the edges, unlearn (d2dgn, gnndelete) and retrain on a products-like graph.
# Run from the repository root. Results land in benchmarks/results/gpu/ (and are copied to $OUT when set).
set -uo pipefail
RESULTS=benchmarks/results/gpu
mkdir -p "$RESULTS"
export GRAPHUNLEARN_DATA="${GRAPHUNLEARN_DATA:-$PWD/.no-data}"  # the machine has no datasets: synthetic
python -m pip install --no-deps --no-build-isolation -q -e . >/dev/null 2>&1 || echo "editable install failed"
python -c "import graphunlearn.kernels as k; print('triton', k.WITH_TRITON, 'cuda', k.WITH_CUDA)"
timeout 90 python -m pytest -q -p no:cacheprovider tests/kernels tests/nn/test_layers.py 2>&1 | tail -5 \
  | tee "$RESULTS/tests.txt"
timeout 130 python benchmarks/bench_gpu.py "$@" 2>&1 | tail -40 | tee "$RESULTS/kernels.txt"
cp benchmarks/results/gpu*.csv "$RESULTS"/ 2>/dev/null
timeout 60 python examples/link_unlearning_demo.py --device cuda --no-progress --out "$RESULTS/demo" 2>&1 \
  | tail -12 | tee "$RESULTS/demo.txt"
timeout 150 python benchmarks/bench_gpu_pipeline.py --device cuda --csv "$RESULTS/pipeline.csv" 2>&1 \
  | tail -20 | tee "$RESULTS/pipeline.txt"
if [ -n "${OUT:-}" ]; then cp -r "$RESULTS" "$OUT"/ 2>/dev/null; fi
