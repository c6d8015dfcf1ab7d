"""CPU benchmark: masked aggregation on the store's live view vs what a user without the store does.

For each graph and deletion fraction it times, on the same machine and run:
  masked        graphunlearn.kernels.masked_spmm (torch backend) on the cached CSR + live mask
  reference     the gather + index_add_ oracle (small graphs only: it materialises [edges, F])
  spmm_live     torch.sparse.mm on a CSR already rebuilt without the deleted edges
  rebuild+spmm  filtering the edge list, rebuilding that CSR, then torch.sparse.mm: a deletion's cost
                for a user without the store
  pyg_gcn       torch_geometric.nn.GCNConv on the rebuilt edge_index, vs gcn_live: gu.nn.GCNConv on the
                live view (same weights; both include the linear layer and the normalisation)
and appends rows to benchmarks/results/spmm_cpu.csv. Targets (issue 3): masked <= 1.3x spmm_live, and
masked < rebuild+spmm.

    python benchmarks/bench_spmm_cpu.py [--graphs cora ogbl-ddi syn-1M syn-10M] [--features 64]
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
import warnings
from pathlib import Path

import torch
import torch_geometric.nn as pyg

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

import graphunlearn as gu  # noqa: E402
from graphunlearn.kernels import masked_spmm, masked_spmm_reference  # noqa: E402

SYNTHETIC = {"syn-1M": (100_000, 20.0), "syn-10M": (500_000, 40.0)}  # nodes, mean degree -> ~1M / ~10M edges


def load_graph(name: str):
    if name in SYNTHETIC:
        n, deg = SYNTHETIC[name]
        return gu.datasets.synthetic(num_nodes=n, avg_degree=deg, num_features=1, num_classes=10, seed=0)
    if not gu.datasets.is_available(name):
        return None
    return gu.datasets.load(name)


def live_csr(edge_index: torch.Tensor, num_nodes: int):
    """What a user without the store does after a deletion: sort the edge list into a CSR tensor."""
    dst, src = edge_index[1], edge_index[0]
    order = torch.argsort(dst * num_nodes + src)
    rowptr = torch.zeros(num_nodes + 1, dtype=torch.long)
    torch.cumsum(torch.bincount(dst, minlength=num_nodes), 0, out=rowptr[1:])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.sparse_csr_tensor(rowptr, src[order], torch.ones(order.numel()), (num_nodes, num_nodes))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--graphs", nargs="+", default=["cora", "ogbl-ddi", "syn-1M", "syn-10M"])
    p.add_argument("--fractions", nargs="+", type=float, default=[0.001, 0.01, 0.1])
    p.add_argument("--features", type=int, default=64)
    p.add_argument("--repeat", type=int, default=5)
    args = p.parse_args()
    info = common.machine("cpu")
    print("machine:", info)
    rows = []
    for name in args.graphs:
        data = load_graph(name)
        if data is None:
            print(f"skip {name}: not found under {gu.datasets.data_root()} (set GRAPHUNLEARN_DATA)")
            continue
        for frac in args.fractions:
            store = gu.GraphStore(data, undirected=True)
            store.live()  # the one-off CSR/CSC build, not part of a deletion's cost
            g = torch.Generator().manual_seed(0)
            n, e = store.num_nodes, store.num_edges
            ids = torch.randperm(e, generator=g)[: max(1, int(frac * e))]
            t0 = time.perf_counter()
            store.delete_edges(ids)
            delete_s = time.perf_counter() - t0
            view = store.live()
            x = torch.randn(n, args.features, generator=g)
            rep = args.repeat if view.col.numel() < 5_000_000 else max(3, args.repeat // 2)
            res = {}
            res["masked"] = common.timeit(lambda: masked_spmm(view.rowptr, view.col, x, view.mask, backend="torch"),
                                          repeat=rep)
            if view.col.numel() <= 3_000_000:
                res["reference"] = common.timeit(
                    lambda: masked_spmm_reference(view.rowptr, view.col, x, view.mask), repeat=rep)
            live_ei = store.live_edge_index()
            a = live_csr(live_ei, n)
            res["spmm_live"] = common.timeit(lambda: torch.sparse.mm(a, x), repeat=rep)
            res["rebuild+spmm"] = common.timeit(lambda: torch.sparse.mm(live_csr(store.live_edge_index(), n), x),
                                                repeat=rep)
            torch.manual_seed(0)
            ref = pyg.GCNConv(args.features, args.features)
            ours = gu.nn.GCNConv(args.features, args.features)
            ours.load_state_dict(ref.state_dict())
            with torch.no_grad():
                res["pyg_gcn"] = common.timeit(lambda: ref(x, live_ei), repeat=rep)
                res["gcn_live"] = common.timeit(lambda: ours(x, view), repeat=rep)
            row = {**{k: info[k] for k in ("date", "device", "cpus", "threads", "torch")}, "graph": name,
                   "nodes": n, "edges": e, "deleted_frac": frac, "features": args.features,
                   "delete_request_s": round(delete_s, 6)}
            for k, v in res.items():
                row[f"{k}_s"] = round(v["median_s"], 6)
                row[f"{k}_spread"] = f"{v['min_s']:.4g}-{v['max_s']:.4g}"
            row["masked_vs_spmm_live"] = round(res["masked"]["median_s"] / res["spmm_live"]["median_s"], 3)
            row["masked_vs_rebuild"] = round(res["masked"]["median_s"] / res["rebuild+spmm"]["median_s"], 3)
            row["gcn_live_vs_pyg"] = round(res["gcn_live"]["median_s"] / res["pyg_gcn"]["median_s"], 3)
            rows.append(row)
            common.print_table([row], ["graph", "edges", "deleted_frac", "delete_request_s", "masked_s",
                                       "spmm_live_s", "rebuild+spmm_s", "masked_vs_spmm_live", "masked_vs_rebuild",
                                       "gcn_live_vs_pyg"])
            gc.collect()
    path = common.append_rows("spmm_cpu", rows)
    print(f"appended {len(rows)} rows to {path}")


if __name__ == "__main__":
    main()
