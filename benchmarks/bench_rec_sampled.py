"""Recommendation trained and unlearned on sampled computation graphs (issue 12): Gowalla by default.

LightGCN (the project's, 64 dimensions, 3 layers) is trained with mini-batches of ``--batch-size`` live
interactions (each with a sampled negative item) on sampled computation graphs (fanouts ``--fanout``), a budget
of ``--epochs`` x ``--steps`` steps; a forget set of ``--kind`` (default ``user``: ``--fraction`` of the users,
every interaction of theirs; or ``interaction``, ``item_group``) is deleted; reverse BPR unlearns on sampled
graphs (``unlearn(..., num_neighbors=)`` from the card), with its defaults and, where the request deletes
users or items, also with ``reverse_reset=True`` (their reset rows' interactions reversed too, the default
before 2026-12-01); gold retrains with the original's recipe and budget, and every model is evaluated on the
whole graph (Recall@20, NDCG@20 on the test interactions, forget Recall@20 on the deleted ones: scoring every
user against every item needs every embedding anyway).

Prints a table and writes ``<out>/results.json`` and ``<out>/results.md`` (default ``<out>``:
``benchmarks/results/rec-sampled-<dataset>``, with ``-<kind>`` appended for a kind other than ``user``).

    python benchmarks/bench_rec_sampled.py --dataset gowalla
    python benchmarks/bench_rec_sampled.py --dataset gowalla --kind interaction
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

import graphunlearn as gu  # noqa: E402


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default="gowalla")
    p.add_argument("--batch-size", type=int, default=2048)
    p.add_argument("--fanout", type=int, nargs="+", default=[10, 10, 10])
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--steps", type=int, default=50, help="sampled steps per epoch")
    p.add_argument("--kind", choices=gu.datasets.REC_KINDS, default="user", help="what the forget set deletes")
    p.add_argument("--fraction", type=float, default=0.01,
                   help="fraction deleted: of the users (user), of the training interactions (interaction, item_group)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    suffix = "" if args.kind == "user" else f"-{args.kind}"
    out = Path(args.out or common.RESULTS / f"rec-sampled-{args.dataset}{suffix}")
    out.mkdir(parents=True, exist_ok=True)
    task = gu.tasks.get_task("rec")
    data = gu.datasets.load(args.dataset)
    split, graph = task.make_split(data, args.seed)
    store = gu.GraphStore(graph)
    log(f"{args.dataset}: {task.describe_split(split)}")
    recipe = dict(epochs=args.epochs, batch_size=args.batch_size, num_neighbors=list(args.fanout),
                  steps_per_epoch=args.steps)
    torch.manual_seed(args.seed)
    model = task.build_model("lightgcn", store, split)
    trained = gu.train.fit(model, store, split, task=task, seed=args.seed, progress=False, **recipe)
    log(f"original: {trained.epochs_run} epochs x {args.steps} sampled steps in {trained.seconds:.1f} s")
    t0 = time.perf_counter()
    req = task.sample_forget(store, split, args.fraction, seed=args.seed, kind=args.kind)
    register_s = time.perf_counter() - t0
    log(f"request: {req.summary()} registered in {register_s * 1e3:.1f} ms")
    rows = []
    variants = [("reverse_bpr", "reverse_bpr", {})]
    if req.node_ids.numel():  # deleted users or items: the earlier default beside the current one
        variants.append(("reverse_bpr, reverse_reset", "reverse_bpr", {"reverse_reset": True}))
    variants.append(("retrain", "retrain", {}))
    results = {}
    for name, method, options in variants:
        results[name] = gu.unlearn(model, store, req, method, split=split, task=task, seed=args.seed, certify=False,
                                   **options)
        log(f"{name}: {results[name].seconds:.1f} s, {results[name].info.get('epochs')} epochs")
    gold = results["retrain"].model
    for name, res in [("original", None), *results.items()]:
        m = model if res is None else res.model
        t0 = time.perf_counter()
        metrics = gu.evaluate.evaluate(m, store, split, req, task=task, gold=gold if res is not None else None)
        row = {"model": name, "seconds": None if res is None else res.seconds,
               "computation": None if res is None else res.info.get("computation"),
               "epochs": None if res is None else res.info.get("epochs"),
               "recall@20": metrics["recall@20"], "ndcg@20": metrics["ndcg@20"],
               "forget_recall@20": metrics["forget_recall@20"], "eval_s": time.perf_counter() - t0}
        rows.append(row)
        log(f"{name}: {row}")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    machine = common.machine("cpu")
    recorded = {k: v for k, v in vars(args).items() if k != "out"}  # where the files went is not a result
    info = {"machine": machine, "args": recorded, "train_s": trained.seconds, "register_s": register_s,
            "request": req.summary(), "peak_rss_gb": peak, "rows": rows}
    (out / "results.json").write_text(json.dumps(info, indent=1))
    gold_s = results["retrain"].seconds
    lines = [f"# {args.dataset}: LightGCN trained and unlearned on sampled computation graphs", "", str(machine), "",
             f"`python benchmarks/bench_rec_sampled.py {' '.join(common.recorded_argv(argv))}`", "",
             f"Recipe: batch {args.batch_size} interactions, fanouts {list(args.fanout)}, {args.epochs} x "
             f"{args.steps} sampled steps (original and gold). Request: {req.summary()} (registered in "
             f"{register_s * 1e3:.1f} ms). Original trained in {trained.seconds:.1f} s. Peak RSS {peak:.1f} GiB.", "",
             "| model | computation | epochs | seconds | speed-up | recall@20 | ndcg@20 | forget_recall@20 |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        speed = "" if r["seconds"] is None else f"{gold_s / r['seconds']:.1f}x"
        secs = "" if r["seconds"] is None else f"{r['seconds']:.1f}"
        epochs = "" if r["epochs"] is None else str(r["epochs"])
        lines.append(f"| {r['model']} | {r['computation'] or ''} | {epochs} | {secs} | {speed} | "
                     f"{r['recall@20']:.4f} | {r['ndcg@20']:.4f} | {r['forget_recall@20']:.4f} |")
    (out / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
