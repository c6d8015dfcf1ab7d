#!/usr/bin/env bash
# The one prepared command for a lent GPU: kernel correctness on CUDA, then the kernel benchmarks.
# Run from the repository root; results land in benchmarks/results/gpu.csv (and $OUT when set).
set -uo pipefail
python -m pip install --no-deps --no-build-isolation -q -e . >/dev/null 2>&1 || echo "editable install failed"
python -c "import graphunlearn.kernels as k; print('triton', k.WITH_TRITON, 'cuda', k.WITH_CUDA)"
python -m pytest -q -p no:cacheprovider tests/kernels tests/nn/test_layers.py 2>&1 | tail -5
python benchmarks/bench_gpu.py "$@"
if [ -n "${OUT:-}" ]; then cp benchmarks/results/gpu*.csv "$OUT"/ 2>/dev/null; fi
