"""The stream benchmark (issue 14): many small erasure requests in sequence, one unlearning each, against
retraining after every request, with drift measured against gold models retrained along the stream.

Two streams, each built the way the benchmark engine builds its cells (``graphunlearn.bench``: the task's
split, the original model trained with the configuration's epochs, seed and recipe):

* ``cora-link`` (configuration ``cora-gcn-target``: Cora, GCN, link prediction): 100 requests, each deleting
  0.1% of the training edges (``round(0.001 * |E_train|)`` edges), drawn from the protocol's "in" setting
  (edges inside the 2-hop subgraph of the test edges, ``datasets.forget_edges``) for the whole stream at once,
  shuffled and dealt out in disjoint requests; d2dgn, one request per step.
* ``movielens-item-groups`` (configuration ``movielens-target``: MovieLens-100k, LightGCN, recommendation):
  50 requests. MovieLens has 19 genres, fewer than 50, so a request revokes *part* of a genre: the genres are
  visited in a seeded random order, round after round, and each request deletes every training interaction
  of a few films of the genre it is at (films drawn at random among those no earlier request took, until
  their interactions reach 0.2% of the training interactions: a distributor pulling its titles of one genre).
  Films carry several genres; each film goes with the first request that draws it, so requests are disjoint.
  reverse_bpr (the configuration's method), one request per step.

The requests are written as a request file (``<name>-requests.jsonl``, read back with
``graphunlearn.certify.stream.read_requests``) and applied with ``stream``, which writes one certificate per
step under ``<name>-certificates/requests-<first>-<last>/`` (one folder per stretch between checkpoints).
At checkpoints (the quarters of the stream: after requests 25, 50, 75 and 100 for Cora) gold models are
retrained from scratch on the live graph (``unlearn(original, store, all requests so far, "retrain")``
with the seeds of ``--gold-seeds``, default 0 and 1; the configuration's recipe). Reported:

* per-request cost: each step's unlearning wall time (``UnlearnResult.seconds``; building and writing its
  certificate and the validation score are not counted, and are reported apart as the stream's overhead);
* cumulative cost: the sum of those, against the cumulative cost of retraining after every request, where the
  retrain cost after request k is interpolated linearly between the measured golds' median times at the
  checkpoints (held flat before the first one); the issue's target for Cora is under 10%;
* drift: at each checkpoint the stream model's Dt-AUROC and Df-AUROC (link), recall@20 and forget_recall@20
  (rec), against the golds; ``drift`` = |stream - mean of the golds|, the noise floor = max - min over the golds,
  and ``within`` says whether drift <= floor. The retrain gap of the stream model to gold 0 (``gap_test_kl``,
  ``gap_deleted_kl``) is reported beside gold 1's gap to gold 0.

Writes ``<out>/<name>.json`` (machine, versions, settings, every step, every checkpoint, the summary),
``<out>/<name>.csv`` (one row per step, with the cumulative costs) and ``<out>/<name>.png`` (cumulative cost,
utility and forgetting along the stream), and prints a summary. Data comes from ``GRAPHUNLEARN_DATA``.

    python benchmarks/bench_stream.py                    # both streams (minutes on 2 CPU cores)
    python benchmarks/bench_stream.py --stream cora-link
    python benchmarks/bench_stream.py --quick            # 2 requests per stream, short training: a smoke run
"""

from __future__ import annotations

import argparse
import ast
import csv
import dataclasses
import inspect
import json
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

import graphunlearn as gu  # noqa: E402
from graphunlearn import bench, datasets, evaluate, train  # noqa: E402
from graphunlearn.certify.stream import (  # noqa: E402
    RetrainPolicy,
    StreamRequest,
    read_requests,
    stream,
    write_requests,
)
from graphunlearn.tasks import get_task  # noqa: E402

#: the two streams: the configuration the original model follows, the method, the number of requests and the
#: share of the training units each request deletes
STREAMS = {
    "cora-link": dict(config="cora-gcn-target", method="d2dgn", requests=100, per_request=0.001, make="edges"),
    "movielens-item-groups": dict(config="movielens-target", method="reverse_bpr", requests=50, per_request=0.002,
                                  make="item_groups"),
}
#: --quick: requests, checkpoints and the training epochs of the original (and so of the golds)
QUICK = dict(requests=2, checkpoints=2, epochs={"link": 10, "rec": 2})


# ----------------------------------------------------------------------------------------------- requests
def cora_requests(split, count: int, per_request: float, seed: int) -> list[StreamRequest]:
    """``count`` disjoint requests of ``round(per_request * |E_train|)`` training edges each, "in" setting."""
    size = max(1, round(per_request * split.train_pos.size(1)))
    edges = datasets.forget_edges(split, min(count * size / split.train_pos.size(1), 0.99), "in", seed=seed)
    edges = edges[:, torch.randperm(edges.size(1), generator=torch.Generator().manual_seed(seed))]
    if edges.size(1) < count * size:
        raise ValueError(f"cora stream: only {edges.size(1)} 'in' edges for {count} requests of {size}")
    return [StreamRequest("edges", edges=edges[:, k * size:(k + 1) * size].t().tolist(), arrival=float(k),
                          ref=f"edges-{k:03d}") for k in range(count)]


def item_group_requests(data, split, count: int, per_request: float, seed: int) -> list[StreamRequest]:
    """``count`` disjoint requests, each every training interaction of a few films of one genre (see the
    module's docstring)."""
    g = torch.Generator().manual_seed(seed)
    genres = data.item_x.bool()  # [items, genres]
    names = list(data.get("item_group_names") or [f"group {k}" for k in range(genres.size(1))])
    train = split.train_pos
    per_item = torch.bincount(train[1] - split.num_users, minlength=split.num_items)
    target = max(1, round(per_request * train.size(1)))
    order = torch.randperm(genres.size(1), generator=g).tolist()
    taken = torch.zeros(split.num_items, dtype=torch.bool)
    out: list[StreamRequest] = []
    visits = 0
    while len(out) < count:
        if visits >= len(order) * (count + 1):
            raise ValueError(f"movielens stream: the genres ran out of films after {len(out)} requests")
        genre = order[visits % len(order)]
        visits += 1
        films = (genres[:, genre] & ~taken & (per_item > 0)).nonzero().squeeze(1)
        if films.numel() == 0:
            continue
        films = films[torch.randperm(films.numel(), generator=g)]
        enough = int(torch.searchsorted(torch.cumsum(per_item[films], 0), target)) + 1
        chosen = films[:enough]
        taken[chosen] = True
        pairs = datasets.item_group_interactions(split, chosen + split.num_users)
        out.append(StreamRequest("edges", edges=pairs.t().tolist(), arrival=float(len(out)),
                                 ref=f"{names[genre]}-{len(out):02d}"))
    return out


# ------------------------------------------------------------------------------------------------ the run
def original_model(task, config: dict, graph, split, seed: int, epochs: int, device: str, progress: bool):
    """The configuration's original model, built as the benchmark engine builds it; returns it and its time."""
    store = gu.GraphStore(graph, device=device)
    torch.manual_seed(seed)
    model = task.build_model(config["backbones"][0], store, split).to(device)
    t = time.perf_counter()
    train.fit(model, store, split, task=task, epochs=epochs, seed=seed, progress=progress, **config.get("train", {}))
    return model, time.perf_counter() - t


def checkpoints_of(count: int, parts: int) -> list[int]:
    """``parts`` evenly spaced request counts ending at ``count`` (the quarters for parts=4)."""
    return sorted({max(1, round(count * (k + 1) / parts)) for k in range(parts)})


def metric_names(task) -> tuple[str, str]:
    """(utility, forgetting): the task's plot axes (link: dt_auroc, df_auroc; rec: recall@20,
    forget_recall@20)."""
    forgetting, utility = task.plot_axes
    return utility, forgetting


def run_stream(name: str, spec: dict, args) -> dict:
    label = name + args.tag
    config = bench.load_config(spec["config"])
    task = get_task(config["task"], where="bench_stream")
    seed = config["seeds"][0] if args.seed is None else args.seed
    count = QUICK["requests"] if args.quick else (args.requests or spec["requests"])
    epochs = QUICK["epochs"][task.name] if args.quick else bench.epochs_for(config, config["datasets"][0])
    parts = QUICK["checkpoints"] if args.quick else args.checkpoints
    progress = not args.no_progress
    options = dict(config.get("options", {}).get(spec["method"], {}))
    options.update(args.option)
    policy = RetrainPolicy(budget=args.budget, max_requests=args.max_requests, max_val_drop=args.max_val_drop)
    data = datasets.load(config["datasets"][0])
    split, graph = task.make_split(data, seed)
    print(f"== {name}: {config['datasets'][0]}, {config['backbones'][0]}, {task.name}; {count} requests; "
          f"method {spec['method']}; original: {epochs} epochs, seed {seed}", flush=True)
    model, train_seconds = original_model(task, config, graph, split, seed, epochs, args.device, progress)
    store = gu.GraphStore(graph, device=args.device)
    split = task.to_device(split, store.device)
    if spec["make"] == "edges":
        requests = cora_requests(split, count, spec["per_request"], seed)
    else:
        requests = item_group_requests(data, split, count, spec["per_request"], seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    req_file = write_requests(out / f"{label}-requests.jsonl", requests)
    requests = read_requests(req_file)
    certs = out / f"{label}-certificates"
    if certs.exists():  # certificates of an earlier run of this benchmark: replaced, not mixed
        shutil.rmtree(certs)
    checkpoints = checkpoints_of(count, parts)
    utility, forgetting = metric_names(task)
    steps, rows_cp, current, done, overhead, part = [], [], model, 0, 0.0, None
    for cp in checkpoints:
        t = time.perf_counter()
        # one stream fed in pieces (resume): the step numbers and seeds, the policy's counts, the calibration
        # anchor and from_anchor's anchor carry over the checkpoints
        part = stream(current, store, requests[done:cp], split=split, method=spec["method"], task=task,
                      seed=seed, certificates=certs / f"requests-{done + 1:03d}-{cp:03d}", progress=progress,
                      policy=policy, from_anchor=args.from_anchor, resume=part, **options)
        wall = time.perf_counter() - t
        overhead += wall - part.total_seconds
        offset = steps[-1]["cumulative_seconds"] if steps else 0.0
        for s in part.steps:
            row = s.to_dict()
            row["cumulative_seconds"] += offset
            if row["certificate"] is not None:  # relative to the output folder: results name no machine path
                row["certificate"] = _relative(row["certificate"], out)
            steps.append(row)
        current, done = part.model, cp
        forget = list(store.requests)
        golds = [gu.unlearn(model, store, forget, "retrain", split=split, task=task, seed=s, progress=progress)
                 for s in args.gold_seeds]
        kwargs = {"seed": seed} if "seed" in inspect.signature(task.evaluate).parameters else {}
        m_stream = evaluate.evaluate(current, store, split, forget, task=task, gold=golds[0].model, **kwargs)
        m_golds = [evaluate.evaluate(g.model, store, split, forget, task=task, gold=golds[0].model, **kwargs)
                   for g in golds]
        # the original model, never unlearned: the "did nothing" baseline beside the stream model
        m_orig = evaluate.evaluate(model, store, split, forget, task=task, gold=golds[0].model, **kwargs)
        row = {"requests": cp, "deleted_units": sum(r["units"] for r in steps),
               "unlearn_cumulative_seconds": steps[-1]["cumulative_seconds"],
               "retrain_seconds": [g.seconds for g in golds], "retrain_median_seconds":
               statistics.median(g.seconds for g in golds), "gold_seeds": list(args.gold_seeds)}
        for metric in (utility, forgetting):
            values = [m.get(metric) for m in m_golds]
            mean = statistics.fmean(values)
            floor = max(values) - min(values)
            drift = abs(m_stream[metric] - mean)
            row.update({f"{metric}_stream": m_stream[metric], f"{metric}_golds": values,
                        f"{metric}_drift": drift, f"{metric}_floor": floor, f"{metric}_within": drift <= floor,
                        f"{metric}_original": m_orig[metric],
                        f"{metric}_original_drift": abs(m_orig[metric] - mean)})
        for gap in ("gap_test_kl", "gap_deleted_kl"):
            if gap in m_stream:
                row[f"{gap}_stream"] = m_stream[gap]
                row[f"{gap}_gold1"] = m_golds[-1][gap]
        rows_cp.append(row)
        print(f"  after {cp} requests: unlearning {row['unlearn_cumulative_seconds']:.2f} s in all; a retrain "
              f"{row['retrain_median_seconds']:.2f} s; {utility} {m_stream[utility]:.4f} (golds "
              f"{', '.join(f'{v:.4f}' for v in row[f'{utility}_golds'])}); {forgetting} {m_stream[forgetting]:.4f} "
              f"(golds {', '.join(f'{v:.4f}' for v in row[f'{forgetting}_golds'])})", flush=True)
    # the cost of retraining after every request: the golds' median times, interpolated between checkpoints
    xs, ys = [r["requests"] for r in rows_cp], [r["retrain_median_seconds"] for r in rows_cp]
    running = 0.0
    for s in steps:
        s["retrain_seconds_estimate"] = _interpolate(s["step"], xs, ys)
        running += s["retrain_seconds_estimate"]
        s["retrain_cumulative_seconds"] = running
    for r in rows_cp:
        r["retrain_cumulative_seconds"] = steps[r["requests"] - 1]["retrain_cumulative_seconds"]
        r["cost_ratio"] = r["unlearn_cumulative_seconds"] / r["retrain_cumulative_seconds"]
    per = [s["seconds"] for s in steps]
    last = rows_cp[-1]
    summary = {
        "requests": len(steps), "units_per_request": statistics.median(s["units"] for s in steps),
        "deleted_units": last["deleted_units"], "training_units": store.num_edges if task.pairwise else None,
        "per_request_seconds_median": statistics.median(per), "per_request_seconds_min": min(per),
        "per_request_seconds_max": max(per), "unlearn_cumulative_seconds": last["unlearn_cumulative_seconds"],
        "retrain_every_request_seconds": last["retrain_cumulative_seconds"], "cost_ratio": last["cost_ratio"],
        "stream_overhead_seconds": overhead, "original_train_seconds": train_seconds,
        "final_within_floor": {m: last[f"{m}_within"] for m in (utility, forgetting)},
    }
    if name == "cora-link":
        summary["targets"] = {"cost_ratio < 0.10": last["cost_ratio"] < 0.10,
                              "final within the noise floor on Dt and Df": all(summary["final_within_floor"].values())}
    info = common.machine(args.device)
    blob = {"name": name, "machine": info, "version": gu.__version__, "quick": args.quick,
            "settings": {"config": spec["config"], "dataset": config["datasets"][0], "backbone": config["backbones"][0],
                         "task": task.name, "method": spec["method"], "options": options, "seed": seed,
                         "epochs": epochs, "per_request": spec["per_request"], "checkpoints": checkpoints,
                         "gold_seeds": list(args.gold_seeds), "device": args.device,
                         "requests_file": _relative(req_file, out),
                         "certificates": _relative(certs, out), "policy": dataclasses.asdict(policy),
                         "from_anchor": args.from_anchor},
            "summary": summary, "checkpoints": rows_cp, "steps": steps}
    (out / f"{label}.json").write_text(json.dumps(blob, indent=1, default=float))
    keep = ["step", "requests", "refs", "action", "method", "seconds", "cumulative_seconds",
            "retrain_seconds_estimate", "retrain_cumulative_seconds", "units", "units_since_retrain", "val_score",
            "peak_mb", "certificate"]
    with (out / f"{label}.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keep + ["device", "version"])
        w.writeheader()
        for s in steps:
            w.writerow({**{k: _cell(s[k]) for k in keep}, "device": info["device"], "version": gu.__version__})
    plot(label, blob, out / f"{label}.png", utility, forgetting)
    report(name, blob, utility, forgetting)
    return blob


def _relative(path, out: Path) -> str:
    """``path`` relative to the output folder (the files written there name no absolute machine path)."""
    return os.path.relpath(path, out)


def _option(item: str) -> tuple[str, object]:
    name, _, value = item.partition("=")
    try:
        return name.strip(), ast.literal_eval(value.strip())
    except (ValueError, SyntaxError):
        return name.strip(), value.strip()


def _interpolate(x: float, xs: list[float], ys: list[float]) -> float:
    if x <= xs[0]:
        return ys[0]
    for (x0, y0), (x1, y1) in zip(zip(xs, ys), zip(xs[1:], ys[1:])):
        if x <= x1:
            return y0 + (y1 - y0) * (x - x0) / (x1 - x0)
    return ys[-1]


def _cell(value):
    return ";".join(map(str, value)) if isinstance(value, list) else value


# ------------------------------------------------------------------------------------------------ outputs
def plot(name: str, blob: dict, path: Path, utility: str, forgetting: str) -> None:
    """Cumulative cost (log scale) and the two metrics along the stream, stream model against the golds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps, cps = blob["steps"], blob["checkpoints"]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    ax = axes[0]
    ax.plot([s["step"] for s in steps], [s["cumulative_seconds"] for s in steps], color="C0",
            label=blob["settings"]["method"])
    ax.plot([s["step"] for s in steps], [s["retrain_cumulative_seconds"] for s in steps], color="C1",
            label="retrain after each request")
    ax.scatter([c["requests"] for c in cps], [c["retrain_cumulative_seconds"] for c in cps], marker="*", s=60,
               color="C1", label="retrain measured here")
    retrains = [s["step"] for s in steps if s["action"] == "retrain"]
    for x in retrains:
        ax.axvline(x, color="grey", lw=0.5)
    ax.set_yscale("log")
    ax.set_xlabel("requests")
    ax.set_ylabel("cumulative wall time (s)")
    ax.legend(fontsize=7)
    for ax, metric in zip(axes[1:], (utility, forgetting)):
        xs = [c["requests"] for c in cps]
        ax.plot(xs, [c[f"{metric}_stream"] for c in cps], marker="o", color="C0",
                label=f"stream ({blob['settings']['method']})")
        ax.plot(xs, [c[f"{metric}_original"] for c in cps], marker="x", ls=":", color="grey",
                label="original (never unlearned)")
        for k, seed in enumerate(blob["settings"]["gold_seeds"]):
            ax.scatter(xs, [c[f"{metric}_golds"][k] for c in cps], marker="*", s=50, color=f"C{k + 1}",
                       label=f"gold, seed {seed}")
        ax.set_xlabel("requests")
        ax.set_ylabel(metric)
        ax.legend(fontsize=7)
    fig.suptitle(f"{name}: {blob['settings']['dataset']}, {blob['settings']['backbone']}, "
                 f"{blob['summary']['requests']} requests" + (" (--quick)" if blob["quick"] else ""))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def report(name: str, blob: dict, utility: str, forgetting: str) -> None:
    s = blob["summary"]
    print(f"\n{name}: {s['requests']} requests of {s['units_per_request']:g} units (median); per request "
          f"{s['per_request_seconds_median']:.3f} s median [{s['per_request_seconds_min']:.3f}, "
          f"{s['per_request_seconds_max']:.3f}]")
    print(f"  cumulative: unlearning {s['unlearn_cumulative_seconds']:.1f} s vs retraining after every request "
          f"{s['retrain_every_request_seconds']:.1f} s (estimated from the golds): {100 * s['cost_ratio']:.1f}%; "
          f"stream overhead (certificates, validation) {s['stream_overhead_seconds']:.1f} s")
    rows = [{"requests": c["requests"], "metric": m, "stream": c[f"{m}_stream"],
             "golds": "/".join(f"{v:.4f}" for v in c[f"{m}_golds"]), "drift": c[f"{m}_drift"],
             "floor": c[f"{m}_floor"], "within": c[f"{m}_within"], "original": c[f"{m}_original"],
             "original drift": c[f"{m}_original_drift"]}
            for c in blob["checkpoints"] for m in (utility, forgetting)]
    common.print_table(rows, ["requests", "metric", "stream", "golds", "drift", "floor", "within", "original",
                              "original drift"])
    for target, met in s.get("targets", {}).items():
        print(f"  target {target}: {'met' if met else 'MISSED'}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--stream", choices=[*STREAMS, "all"], default="all")
    p.add_argument("--quick", action="store_true", help=f"{QUICK['requests']} requests, short training: a smoke run")
    p.add_argument("--requests", type=int, default=None, help="override the number of requests")
    p.add_argument("--checkpoints", type=int, default=4, help="gold checkpoints along the stream (default 4)")
    p.add_argument("--gold-seeds", type=lambda t: [int(x) for x in t.split(",")], default=[0, 1],
                   help="seeds of the golds at each checkpoint (default 0,1)")
    p.add_argument("--seed", type=int, default=None, help="split and original model seed (default: the config's)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", default=str(common.RESULTS / "stream"))
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--option", action="append", default=[], metavar="NAME=VALUE",
                   help="a method option for every step (a Python literal), e.g. epochs=4")
    p.add_argument("--budget", type=float, default=None, help="RetrainPolicy budget (default: never retrain)")
    p.add_argument("--max-requests", type=int, default=None, help="RetrainPolicy max_requests")
    p.add_argument("--max-val-drop", type=float, default=None, help="RetrainPolicy max_val_drop")
    p.add_argument("--tag", default="", help="suffix for the output files (e.g. -policy)")
    p.add_argument("--from-anchor", action="store_true",
                   help="each step unlearns every request since the stream's anchor from the anchor (stream(..., "
                        "from_anchor=True))")
    args = p.parse_args()
    args.option = dict(_option(item) for item in args.option)
    if len(args.gold_seeds) < 2:
        p.error("--gold-seeds needs two seeds or more (their spread is the noise floor)")
    if (args.requests is not None and args.requests < 1) or args.checkpoints < 1:
        p.error("--requests and --checkpoints must be >= 1")
    names = list(STREAMS) if args.stream == "all" else [args.stream]
    for name in names:
        run_stream(name, STREAMS[name], args)
    print(f"\nwrote {', '.join(f'{n}{args.tag}.json/.csv/.png' for n in names)} under {args.out}")


if __name__ == "__main__":
    main()
