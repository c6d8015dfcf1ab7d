"""Data-parallel scaling (issue 13): the same sampled training and local unlearning with 1 and with N processes.

The driver prepares, once, a saved store of the graph's training edges and its link split (in
``GRAPHUNLEARN_CACHE``/``~/.cache/graphunlearn``), then launches ``torchrun --nproc_per_node=P`` for each ``P``
of ``--procs``. Every rank opens the store (:func:`graphunlearn.distributed.open_store`: rank 0 writes, the
others read), then

1. trains a GCN link predictor on sampled computation graphs (``--batch-size`` live edges per rank per step,
   fanouts ``--fanout``, ``--epochs`` x ``--steps`` steps, no validation: the time is the training's),
2. registers a request of ``--deletions`` random live edges on rank 0 and broadcasts it,
3. unlearns with d2dgn on sampled computation graphs (its default cap of 1,024 units per rank per step),
4. evaluates Dt and Df on sampled computation graphs.

Each job runs one thread per process (``--threads``), so P processes use P cores: on this project's 2-core
machine, 2 processes against 1 measures what data parallelism gives, and mostly proves the path correct.
Writes ``<out>/results.json``, ``<out>/results.md`` and ``<out>/scaling.png``.

    python benchmarks/bench_distributed.py --graph powerlaw-10m --procs 1 2
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

import graphunlearn as gu  # noqa: E402
from graphunlearn import distributed as dist  # noqa: E402
from graphunlearn.io import safe_load  # noqa: E402


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def prepare(graph: str, val: int) -> Path:
    """The saved store and split file of ``graph`` (built once, then reused; each job works on a copy, so the
    cached store never holds a request: one that does is rebuilt)."""
    folder = gu.datasets.loaders.cache_dir() / "distributed" / graph
    if (folder / "split.pt").is_file():
        with gu.GraphStore.open(folder / "store", read_only=True) as cached:
            if not cached.requests:
                return folder
        shutil.rmtree(folder)
    data = gu.datasets.load(graph)
    ratio = val / (data.edge_index.size(1) // 2)
    split = gu.datasets.link_split(data, val_ratio=ratio, test_ratio=ratio, seed=0)
    folder.mkdir(parents=True, exist_ok=True)
    gu.GraphStore(split.train_data).save(folder / "store", overwrite=True)
    task = gu.tasks.get_task("link")
    torch.save({"task": "link", **task.split_to_dict(split)}, folder / "split.pt")
    return folder


def worker(args) -> None:
    torch.set_num_threads(args.threads)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        dist.init()
    folder = Path(args.folder)
    t0 = time.perf_counter()
    store = dist.open_store(folder / "store")
    task = gu.tasks.get_task("link")
    split = task.split_from_dict(safe_load(folder / "split.pt"), store)
    store.live_csr()
    t_open = time.perf_counter() - t0
    fanout = list(args.fanout)
    torch.manual_seed(0)
    model = gu.models.GCN(store.num_features) if store.num_features else \
        gu.models.GCN(None, num_nodes=store.num_nodes)
    train = gu.train.fit(model, store, None, task="link", epochs=args.epochs, batch_size=args.batch_size,
                         num_neighbors=fanout, steps_per_epoch=args.steps, progress=False, seed=0)
    train_s = dist.all_reduce_mean(train.seconds, "train time")  # the ranks wait for each other every step
    log(f"rank {dist.rank()}: trained in {train.seconds:.1f} s")
    forget = None
    if dist.is_main():
        live = store.live_edge_ids()
        pick = live[torch.randperm(live.numel(), generator=torch.Generator().manual_seed(1))[:args.deletions]]
        t0 = time.perf_counter()
        forget = store.delete_edges(pick, layout="ids")
        register_s = time.perf_counter() - t0
    req = dist.broadcast_request(store, forget)
    res = gu.unlearn(model, store, req, method="d2dgn", num_neighbors=fanout, certify=False)
    m = gu.evaluate.evaluate(res.model, store, split, req, num_neighbors=fanout)
    before = gu.evaluate.evaluate(model, store, split, req, num_neighbors=fanout)
    if dist.is_main():
        world = dist.world_size()
        steps = args.epochs * args.steps
        row = {"graph": args.graph, "procs": world, "threads_per_proc": args.threads, "open_s": t_open,
               "train_s": train_s, "epoch_s": train_s / args.epochs, "steps": steps,
               "batch_per_rank": args.batch_size,
               "train_edges_per_s": steps * args.batch_size * world / train_s,
               "register_s": register_s, "deletions": args.deletions, "d2dgn_s": res.seconds,
               "dt_auroc": m["dt_auroc"], "df_auroc": m["df_auroc"], "original_dt_auroc": before["dt_auroc"],
               "original_df_auroc": before["df_auroc"], "peak_rss_gb_rank0": rss_gb()}
        Path(args.row).write_text(json.dumps(row))
    dist.shutdown()


def _relative(path: Path) -> str:
    """``path`` relative to the repository when it lies inside it, else as given."""
    repo = Path(__file__).resolve().parents[1]
    try:
        return str(path.resolve().relative_to(repo))
    except ValueError:
        return str(path)


def table(rows: list[dict]) -> str:
    cols = ["procs", "epoch_s", "train_edges_per_s", "d2dgn_s", "register_s", "dt_auroc", "df_auroc",
            "original_dt_auroc", "peak_rss_gb_rank0"]
    head = "| " + " | ".join(cols) + " |\n|" + "---|" * len(cols) + "\n"
    return head + "\n".join("| " + " | ".join(_fmt(r[c]) for c in cols) + " |" for r in rows) + "\n"


def _fmt(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 2, figsize=(9, 3.5))
    procs = [r["procs"] for r in rows]
    ax[0].bar([str(p) for p in procs], [r["train_edges_per_s"] for r in rows])
    ax[0].set(xlabel="processes (1 thread each)", ylabel="training edges / s", title="sampled training")
    ax[1].bar([str(p) for p in procs], [r["d2dgn_s"] for r in rows])
    ax[1].set(xlabel="processes (1 thread each)", ylabel="seconds", title=f"d2dgn, {rows[0]['deletions']} edges")
    fig.suptitle(rows[0]["graph"])
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--graph", default="powerlaw-10m")
    p.add_argument("--procs", type=int, nargs="+", default=[1, 2])
    p.add_argument("--threads", type=int, default=1, help="torch threads per process")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--steps", type=int, default=50, help="sampled steps per epoch, per rank")
    p.add_argument("--batch-size", type=int, default=1024, help="live edges per step, per rank")
    p.add_argument("--fanout", type=int, nargs="+", default=[10, 5])
    p.add_argument("--deletions", type=int, default=1000)
    p.add_argument("--val", type=int, default=20000, help="validation and test edges")
    p.add_argument("--out", default=str(common.RESULTS / "distributed"))
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--folder", help=argparse.SUPPRESS)
    p.add_argument("--row", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        return worker(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    folder = prepare(args.graph, args.val)
    log(f"{args.graph}: store and split ready in {time.perf_counter() - t0:.1f} s at {folder}")
    rows = []
    for procs in args.procs:
        row_file = out / f"row-{procs}.json"
        job = folder.parent / f"{args.graph}-job"  # a fresh copy of the store: the job registers a request
        shutil.rmtree(job, ignore_errors=True)
        shutil.copytree(folder, job)
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={procs}",
               __file__, "--worker", "--folder", str(job), "--row", str(row_file), "--graph", args.graph,
               "--threads", str(args.threads), "--epochs", str(args.epochs), "--steps", str(args.steps),
               "--batch-size", str(args.batch_size), "--deletions", str(args.deletions),
               "--fanout", *map(str, args.fanout)]
        env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
        t0 = time.perf_counter()
        try:
            subprocess.run(cmd, check=True, env=env)
        finally:
            shutil.rmtree(job, ignore_errors=True)
        row = json.loads(row_file.read_text())
        row["job_s"] = time.perf_counter() - t0
        row_file.unlink()
        rows.append(row)
        log(f"{procs} process(es): {row['epoch_s']:.1f} s per epoch, d2dgn {row['d2dgn_s']:.1f} s")
    machine = common.machine("cpu")
    recorded = {**vars(args), "out": _relative(out)}  # no machine path in committed results
    (out / "results.json").write_text(json.dumps({"machine": machine, "args": recorded, "rows": rows}, indent=1))
    md = (f"# Data-parallel scaling on {args.graph}\n\n{machine}\n\n`python benchmarks/bench_distributed.py "
          f"{' '.join(argv if argv is not None else sys.argv[1:])}`\n\n" + table(rows))
    (out / "results.md").write_text(md)
    plot(rows, out / "scaling.png")
    print(table(rows))


if __name__ == "__main__":
    main()
