"""Cost follows the deletion: local unlearning on power-law graphs of 1M to 60M undirected edges (issue 12).

For each graph (``gu.datasets.load("powerlaw-1m" | "powerlaw-10m" | "powerlaw-60m")``: Chung-Lu, mean degree
50, 100 features, 47 classes; built once and cached) the script

1. splits the edges (``--val`` validation and as many test edges, each with as many negative pairs),
2. trains the original GCN with sampled mini-batches (``--batch-size`` live edges and as many negatives per
   step, fanouts ``--fanout``, ``--steps`` steps in all, validation every ``--eval-every`` epochs on sampled
   computation graphs),
3. for each deletion size (``--deletions``, random live edges, requests arriving in sequence on one store):
   times the request's registration, unlearns the original with each local method
   (``unlearn(..., num_neighbors=fanout)``) and retrains gold under the original's recipe (same budget of
   sampled steps) where ``--gold-at`` asks for it, and evaluates every model on sampled computation graphs
   (``evaluate(..., num_neighbors=fanout)``: Dt on the test pairs, Df against a resampled pool of live
   edges, the retrain gap on deleted and test pairs).

Prints a table and writes ``<out>/results.json``, ``<out>/results.md`` and ``<out>/time_vs_size.png``
(unlearning time against graph size at a fixed deletion size). Peak memory is the process's maximum
resident set (``getrusage``), for the whole run so far.

    python benchmarks/bench_scale.py --sizes 1m 10m 60m --deletions 100 1000 10000 --gold-at 1000
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

import graphunlearn as gu  # noqa: E402
from graphunlearn.evaluate import evaluate  # noqa: E402

NAMES = {"1m": "powerlaw-1m", "10m": "powerlaw-10m", "60m": "powerlaw-60m"}


def rss_gb() -> float:
    """Peak resident memory of this process so far, GiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def run_size(size: str, args) -> list[dict]:
    rows = []
    t0 = time.perf_counter()
    data = gu.datasets.load(NAMES.get(size, size))
    t_load = time.perf_counter() - t0
    num_edges = data.edge_index.size(1) // 2
    log(f"{size}: {data.num_nodes:,} nodes, {num_edges:,} edges loaded in {t_load:.1f} s (peak {rss_gb():.1f} GiB)")
    ratio = args.val / num_edges
    t0 = time.perf_counter()
    split = gu.datasets.link_split(data, val_ratio=ratio, test_ratio=ratio, seed=0)
    del data
    store = gu.GraphStore(split.train_data)
    store.live_csr()
    t_store = time.perf_counter() - t0
    log(f"{size}: split and store in {t_store:.1f} s (peak {rss_gb():.1f} GiB)")
    fanout = list(args.fanout)
    recipe = dict(epochs=args.epochs, batch_size=args.batch_size, num_neighbors=fanout,
                  steps_per_epoch=max(1, args.steps // args.epochs), eval_every=args.eval_every, patience=args.epochs)
    torch.manual_seed(0)
    # a featureless graph (ogbl-ddi) gets a learnable table, looked up by the sampled subgraph's node ids
    model = gu.models.GCN(store.num_features) if store.num_features else \
        gu.models.GCN(None, num_nodes=store.num_nodes)
    train = gu.train.link_prediction(model, store, split, progress=args.progress, seed=0, **recipe)
    log(f"{size}: original trained in {train.seconds:.1f} s, validation AUROC {train.best_val:.4f} "
        f"(peak {rss_gb():.1f} GiB)")
    base = {"graph": NAMES.get(size, size), "nodes": store.num_nodes, "edges": num_edges, "load_s": t_load,
            "split_store_s": t_store, "train_s": train.seconds, "train_val_auroc": train.best_val,
            "recipe": {k: v for k, v in recipe.items()}}
    g = torch.Generator().manual_seed(1)
    for d in args.deletions:
        live = store.live_edge_ids()
        ids = live[torch.randperm(live.numel(), generator=g)[:d]]
        t0 = time.perf_counter()
        req = store.delete_edges(ids)
        t_reg = time.perf_counter() - t0
        log(f"{size}: registered {d} edges in {t_reg * 1e3:.1f} ms")
        gold = None
        if d in args.gold_at:
            gold = gu.unlearn(model, store, req, "retrain", split=split, certify=False, progress=args.progress)
            log(f"{size}/{d}: gold retrained in {gold.seconds:.1f} s")
        options = dict(resamples=100, num_neighbors=fanout)
        metrics = {}
        if gold is not None:
            metrics["retrain"] = (gold, evaluate(gold.model, store, split, [req], **options))
        metrics["original"] = (None, evaluate(model, store, split, [req],
                                              gold=None if gold is None else gold.model, **options))
        for method in args.methods:
            result = gu.unlearn(model, store, req, method, split=split, certify=False, num_neighbors=fanout,
                                progress=args.progress)
            e = evaluate(result.model, store, split, [req], gold=None if gold is None else gold.model, **options)
            metrics[method] = (result, e)
            log(f"{size}/{d}: {method} {result.seconds:.1f} s, Dt {e['dt_auroc']:.4f}, Df {e['df_auroc']:.4f}")
        for method, (result, e) in metrics.items():
            rows.append({**base, "deleted": d, "register_ms": t_reg * 1e3, "method": method,
                         "seconds": None if result is None else result.seconds,
                         "peak_mb": None if result is None else result.peak_mb,
                         "gold_s": None if gold is None else gold.seconds,
                         "speedup": None if gold is None or result is None else gold.seconds / result.seconds,
                         **{k: e.get(k) for k in ("dt_auroc", "df_auroc", "gap_test_kl", "gap_deleted_kl")},
                         "peak_rss_gb": rss_gb()})
    return rows


def table(rows: list[dict]) -> str:
    cols = ["graph", "deleted", "register_ms", "method", "seconds", "speedup", "dt_auroc", "df_auroc",
            "gap_test_kl", "peak_rss_gb"]
    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        out.append("| " + " | ".join(_fmt(r.get(c)) for c in cols) + " |")
    return "\n".join(out)


def _fmt(v) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.4f}" if abs(v) < 10 else f"{v:.1f}"
    return str(v)


def plot(rows: list[dict], at: int, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    for method in sorted({r["method"] for r in rows if r["seconds"] is not None}):
        pts = sorted((r["edges"], r["seconds"]) for r in rows if r["method"] == method and r["deleted"] == at
                     and r["seconds"] is not None)
        if pts:
            ax.plot(*zip(*pts), marker="o", label=method)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("undirected edges")
    ax.set_ylabel(f"seconds to unlearn {at} edges")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", nargs="+", default=["1m", "10m"],
                   help=f"graph sizes ({', '.join(NAMES)}) or any gu.datasets.load name (e.g. synthetic, a smoke test)")
    p.add_argument("--deletions", nargs="+", type=int, default=[100, 1000, 10000])
    p.add_argument("--methods", nargs="+", default=["d2dgn", "finetune", "gradient_ascent"])
    p.add_argument("--gold-at", nargs="*", type=int, default=[1000], help="deletion sizes that retrain gold")
    p.add_argument("--steps", type=int, default=600, help="sampled training steps of the original and gold")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--eval-every", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=1024)
    p.add_argument("--fanout", nargs="+", type=int, default=[10, 5])
    p.add_argument("--val", type=int, default=10_000, help="validation (and test) edges")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--progress", action="store_true")
    p.add_argument("--append", action="store_true", help="keep other graphs' rows of an earlier results.json")
    p.add_argument("--out", type=Path, default=common.RESULTS / "scale")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    rows = []
    for size in args.sizes:
        rows += run_size(size, args)
        print(table(rows), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    command = "python benchmarks/bench_scale.py " + " ".join(sys.argv[1:] if argv is None else argv)
    for r in rows:
        r["command"] = command
    old = args.out / "results.json"
    if args.append and old.exists():  # keep the other graphs' rows, measured by earlier runs
        done = {r["graph"] for r in rows}
        rows = [r for r in json.loads(old.read_text())["rows"] if r["graph"] not in done] + rows
        rows.sort(key=lambda r: (r["edges"], r["deleted"]))
    info = {"machine": common.machine("cpu"), "command": command, "rows": rows}
    (args.out / "results.json").write_text(json.dumps(info, indent=1, default=str))
    commands = "\n".join(f"- `{c}`" for c in dict.fromkeys(r["command"] for r in rows))
    text = f"Machine: {info['machine']}\n\nCommands:\n{commands}\n\n" + table(rows) + "\n"
    (args.out / "results.md").write_text(text)
    at = 1000 if 1000 in args.deletions else args.deletions[0]
    plot(rows, at, args.out / "time_vs_size.png")
    print(table(rows))


if __name__ == "__main__":
    main()
