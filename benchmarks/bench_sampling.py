"""Deletion-aware neighbour sampling throughput: seeds/s and sampled edges/s, fanout [15, 10], batch 1024.

Graphs: ``gu.datasets.load("synthetic", avg_degree=20)`` at 1M and 10M undirected edges (100K and 1M
nodes; 2M and 20M CSR slots), 1% of edges and 0.1% of nodes deleted before timing, so the live masks are
exercised. Three figures per graph, each the median (and min..max) over batches of shuffled live seeds:

  sampler   LiveNeighborSampler.sample_from_nodes alone (what a DataLoader worker runs)
  loader    a whole store.neighbor_loader batch: sampling plus joining x / y from the live features
  after request   a loader batch right after a deletion request of 10 edges (untimed; 5 batches), so the
                  loader reads masks just patched in place

No baseline is timed: PyG's own NeighborSampler needs pyg-lib or torch-sparse, which do not install here.
Prints a table; with ``--save`` appends it to benchmarks/results/sampling.csv.

    python benchmarks/bench_sampling.py [--sizes 1M 10M] [--batches 20] [--device cpu] [--threads 1] [--save]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from torch_geometric.sampler import NodeSamplerInput

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

import graphunlearn as gu  # noqa: E402

SIZES = {"1M": 100_000, "10M": 1_000_000}  # nodes at avg_degree 20: ~10 x nodes undirected edges
FANOUT, BATCH = [15, 10], 1024


def timed(fn, device: str, n: int, before=None) -> tuple[list[float], list[int]]:
    """Wall times and sampled edge counts of ``n`` calls (one warm-up call first); ``before`` runs untimed
    ahead of each call."""
    fn()
    times, edges = [], []
    for _ in range(n):
        if before is not None:
            before()
        common.sync(device)
        t0 = time.perf_counter()
        e = fn()
        common.sync(device)
        times.append(time.perf_counter() - t0)
        edges.append(e)
    return times, edges


def row(graph: str, what: str, store: gu.GraphStore, times: list[float], edges: list[int]) -> dict:
    med = statistics.median(times)
    return {"graph": graph, "nodes": store.num_nodes, "edges": store.num_edges, "what": what,
            "fanout": "x".join(map(str, FANOUT)), "batch": BATCH, "median_ms": 1e3 * med,
            "min_ms": 1e3 * min(times), "max_ms": 1e3 * max(times), "seeds_per_s": BATCH / med,
            "edges_per_s": statistics.median(edges) / med, "sampled_edges": int(statistics.median(edges))}


def bench(size: str, device: str, batches: int) -> list[dict]:
    t0 = time.perf_counter()
    data = gu.datasets.load("synthetic", num_nodes=SIZES[size], avg_degree=20, num_features=32, seed=0)
    store = gu.GraphStore(data, device=device)
    del data
    g = torch.Generator().manual_seed(0)
    store.delete_edges(torch.randperm(store.num_edges, generator=g)[: store.num_edges // 100])
    store.delete_nodes(torch.randperm(store.num_nodes, generator=g)[: store.num_nodes // 1000])
    print(f"[{size}] {store} built in {time.perf_counter() - t0:.1f} s", flush=True)

    sampler = store.neighbor_loader(FANOUT, seed=0).node_sampler  # the loader's LiveNeighborSampler
    seeds = store.live_node_ids().cpu()
    order = seeds[torch.randperm(seeds.numel(), generator=g)]
    batches_in = iter(order.split(BATCH))

    def sample_only():
        out = sampler.sample_from_nodes(NodeSamplerInput(None, next(batches_in)))
        return out.edge.numel()

    loader = store.neighbor_loader(FANOUT, batch_size=BATCH, shuffle=True, seed=0)
    it = iter(loader)

    def loader_batch():
        return next(it).e_id.numel()

    live_edges = store.live_edge_ids()
    pick = iter(live_edges[torch.randperm(live_edges.numel(), generator=g)[:100]].split(10))

    def request():  # untimed: registering a request is the store's cost, not the sampler's
        store.delete_edges(next(pick))

    rows = []
    for what, fn, before, n in (("sampler", sample_only, None, batches), ("loader", loader_batch, None, batches),
                                ("after request", loader_batch, request, min(5, batches))):
        times, edges = timed(fn, device, n, before)
        rows.append(row(size, what, store, times, edges))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    ap.add_argument("--batches", type=int, default=20, help="timed batches per figure (default 20)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch CPU threads (default: torch's choice); on a shared, oversubscribed machine 1 thread "
                         "avoids OpenMP waits that slow small ops 10-100x")
    ap.add_argument("--save", action="store_true", help="append the rows to benchmarks/results/sampling.csv")
    args = ap.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    info = common.machine(args.device)
    print(f"machine: {info}")
    rows = []
    for size in args.sizes:
        rows += bench(size, args.device, args.batches)
    for r in rows:
        r.update(device=info["device"], torch=torch.__version__, threads=torch.get_num_threads())
    common.print_table(rows, ["graph", "nodes", "edges", "what", "median_ms", "min_ms", "max_ms", "seeds_per_s",
                              "edges_per_s", "sampled_edges"])
    if args.save:
        print(f"appended to {common.append_rows('sampling', rows)}")


if __name__ == "__main__":
    main()
