"""End to end on one device: train, delete, unlearn and retrain on a large synthetic graph.

The default (1.2M nodes, about 15M undirected edges, 100 features: a quarter of ogbn-products) is meant for a
lent GPU (`benchmarks/gpu_check.sh` runs it); `--nodes 2000` runs it anywhere in seconds. Training and
unlearning are full-batch here (mini-batches are the scale issue's): at ogbn-products' full 61M edges the link
loss's gathered embeddings alone would take about 120 GiB (estimated from tensor sizes), so pass `--nodes
2449029 --avg-degree 50` only to measure where full batch stops fitting. d2dgn runs with `max_pairs` (default
1M per epoch). The store, the model and every method live on `--device`; the split is drawn cheaply by hand
(0.1% of the edges held out for validation and test against uniformly random pairs, not filtered for true
edges): this measures time and memory, not accuracy. Rows (wall time, peak device memory, kernel backend per
phase) are printed and appended to benchmarks/results/gpu/pipeline.csv (or `--csv`).

    python benchmarks/bench_gpu_pipeline.py [--device cuda] [--nodes 2449029] [--avg-degree 50] [--epochs 20]
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

import graphunlearn as gu  # noqa: E402
from graphunlearn.datasets.splits import LinkSplit  # noqa: E402


def peak_mb(device: torch.device) -> float:
    return torch.cuda.max_memory_allocated(device) / 2 ** 20 if device.type == "cuda" else float("nan")


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--nodes", type=int, default=1_200_000)
    p.add_argument("--avg-degree", type=float, default=25.0)
    p.add_argument("--max-pairs", type=int, default=1_000_000, help="d2dgn's cap on retained pairs per epoch")
    p.add_argument("--features", type=int, default=100)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--fraction", type=float, default=1e-4, help="share of the training edges deleted")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--csv", default=str(common.RESULTS / "gpu" / "pipeline.csv"))
    args = p.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(args.seed)
    rows = []
    info = common.machine(args.device)
    path = Path(args.csv)
    path.parent.mkdir(parents=True, exist_ok=True)
    keys = ["phase", "seconds", "peak_mb", "backend", "nodes", "edges", "epochs", "val_auroc", "deleted", "error",
            *info]

    def record(phase: str, seconds: float, **extra) -> None:
        """Print the row and append it at once, so that a phase that fails leaves the earlier ones."""
        row = {"phase": phase, "seconds": round(seconds, 4), "peak_mb": round(peak_mb(device), 1), **extra}
        rows.append(row)
        print(row, flush=True)
        new = not path.exists()
        with path.open("a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=keys, extrasaction="ignore")
            if new:
                w.writeheader()
            w.writerow({**info, **row})

    t = time.perf_counter()
    data = gu.datasets.synthetic(num_nodes=args.nodes, num_classes=10, num_features=args.features,
                                 avg_degree=args.avg_degree, seed=args.seed)
    ei = data.edge_index[:, data.edge_index[0] < data.edge_index[1]]  # each undirected edge once
    g = torch.Generator().manual_seed(args.seed)
    perm = torch.randperm(ei.size(1), generator=g)
    hold = max(2, ei.size(1) // 1000)
    val, test, train = ei[:, perm[:hold // 2]], ei[:, perm[hold // 2:hold]], ei[:, perm[hold:]]
    rand = torch.randint(args.nodes, (2, hold), generator=g)
    data.edge_index = torch.cat([train, train.flip(0)], 1)
    split = LinkSplit(data, val, rand[:, :hold // 2], test, rand[:, hold // 2:], seed=args.seed)
    record("data", time.perf_counter() - t, nodes=args.nodes, edges=int(train.size(1)))

    t = time.perf_counter()
    reset_peak(device)
    store = gu.GraphStore(split.train_data.to(device), device=device)
    store.live()
    common.sync(device)
    record("store", time.perf_counter() - t)

    model = gu.models.GCN(args.features, hidden_channels=64, out_channels=64).to(device)
    reset_peak(device)
    with gu.kernels.count_launches() as launched:
        trained = gu.train.link_prediction(model, store, split, epochs=args.epochs, eval_every=5,
                                           patience=args.epochs, seed=args.seed, progress=False)
    common.sync(device)
    record("train", trained.seconds, epochs=trained.epochs_run, val_auroc=round(trained.best_val or 0, 4),
           backend="+".join(sorted({b for _, b in launched.counts})) or "none")

    t = time.perf_counter()
    ids = store.live_edge_ids()
    gone = ids[torch.randperm(ids.numel(), generator=torch.Generator(device=device).manual_seed(args.seed),
                              device=device)[:max(1, int(args.fraction * ids.numel()))]]
    req = store.delete_edges(gone, layout="ids")
    common.sync(device)
    record("delete", time.perf_counter() - t, deleted=int(req.edge_ids.numel()))

    for method, options in (("d2dgn", {"max_pairs": args.max_pairs}), ("gnndelete", {}),
                            ("retrain", {"epochs": args.epochs})):
        reset_peak(device)
        t = time.perf_counter()
        try:
            res = gu.unlearn(model, store, req, method, split=split, seed=args.seed, progress=False, **options)
        except torch.OutOfMemoryError as exc:  # say so in the results and go on with the next method
            record(method, time.perf_counter() - t, error=f"out of memory: {str(exc).splitlines()[0][:120]}")
            torch.cuda.empty_cache()
            continue
        common.sync(device)
        record(method, res.seconds, backend=res.backend)
    print(f"appended {len(rows)} rows to {path}")


if __name__ == "__main__":
    main()
