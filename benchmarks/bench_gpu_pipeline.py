"""End to end on one device: train, delete, unlearn and retrain on a large synthetic graph.

The products-like default (2.4M nodes, about 61M undirected edges, 100 features: ogbn-products' size) is
meant for a lent GPU (`benchmarks/gpu_check.sh` runs it); `--nodes 2000` runs it anywhere in seconds. The
store, the model and every method live on `--device`; the split is drawn cheaply by hand (0.1% of the
edges held out for validation and test against uniformly random pairs, not filtered for true edges): this
measures time and memory, not accuracy. Rows (wall time, peak device memory, kernel backend per phase) are
printed and appended to benchmarks/results/gpu/pipeline.csv (or `--csv`).

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
    p.add_argument("--nodes", type=int, default=2_449_029)
    p.add_argument("--avg-degree", type=float, default=50.0)
    p.add_argument("--features", type=int, default=100)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--fraction", type=float, default=1e-4, help="share of the training edges deleted")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--csv", default=str(common.RESULTS / "gpu" / "pipeline.csv"))
    args = p.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(args.seed)
    rows = []

    def record(phase: str, seconds: float, **extra) -> None:
        row = {"phase": phase, "seconds": round(seconds, 4), "peak_mb": round(peak_mb(device), 1), **extra}
        rows.append(row)
        print(row, flush=True)

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
                                           patience=args.epochs, seed=args.seed, progress=True)
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

    for method, options in (("d2dgn", {}), ("gnndelete", {}), ("retrain", {"epochs": args.epochs})):
        reset_peak(device)
        res = gu.unlearn(model, store, req, method, split=split, seed=args.seed, progress=True, **options)
        common.sync(device)
        record(method, res.seconds, backend=res.backend)

    info = common.machine(args.device)
    path = Path(args.csv)
    path.parent.mkdir(parents=True, exist_ok=True)
    new = not path.exists()
    with path.open("a", newline="") as f:
        keys = sorted({k for r in rows for k in r} | set(info))
        w = csv.DictWriter(f, fieldnames=keys)
        if new:
            w.writeheader()
        for r in rows:
            w.writerow({**info, **r})
    print(f"appended {len(rows)} rows to {path}")


if __name__ == "__main__":
    main()
