r"""The unlearning benchmark engine: tasks x datasets x backbones x forget fractions x settings x seeds.

A configuration (a JSON file under ``benchmarks/configs``, see :mod:`graphunlearn.bench.configs`) names a
task (``link``, ``node`` or ``rec``) and the grid. Each cell trains the original model (kept in memory per
dataset/backbone/seed within a run), registers the forget set, runs every method (``retrain`` is the gold
row, with the original's recipe) and evaluates with :mod:`graphunlearn.evaluate`, recording wall time and
peak memory. A finished cell is stored as JSON under ``out/cells`` keyed by a hash of its full
configuration, so an interrupted or extended run recomputes only what is new or changed.
:func:`write_outputs` writes ``results.csv``, ``results.json``, ``results.md`` (mean +- std over seeds, the
gold row beside every method, the configuration's quality and speed targets checked, machine and versions in
the header) and ``plots.png`` (utility vs forgetting; time vs forget fraction).

Used by ``graphunlearn bench`` and ``benchmarks/run_unlearning.py``.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

from .. import __version__, datasets, evaluate, models, train
from ..store import GraphStore
from ..unlearning import methods, unlearn
from .configs import config_label, config_names, load_config

METRICS = {
    "link": ["dt_auroc", "df_auroc", "hits@20", "mi_ratio", "gap_test_kl", "gap_deleted_kl", "seconds", "peak_mb"],
    "node": ["test_acc", "test_macro_f1", "mia_auroc", "acc_deleted", "gap_test_kl", "gap_hop1_kl", "seconds",
             "peak_mb"],
    "rec": ["recall@20", "ndcg@20", "forget_recall@20", "gap_test_kl", "gap_deleted_kl", "seconds", "peak_mb"],
}
_AXES = {"link": ("df_auroc", "dt_auroc"), "node": ("mia_auroc", "test_acc"), "rec": ("forget_recall@20", "recall@20")}
_GOLD = "retrain"
#: bumped whenever a metric's definition or an evaluation constant changes, so cached cells are recomputed
EVAL_REVISION = "2026-11-30.1"  # AUROC/AP from torchmetrics: ties as defined there, NaN refused


def plan(config: dict) -> list[dict]:
    """The cells of ``config``: one dict per dataset x backbone x fraction x setting x seed, holding everything
    that determines its result (so its hash is a cache key)."""
    task = config.get("task", "link")
    if task not in METRICS:
        raise ValueError(f"benchmark config: task must be one of {sorted(METRICS)}, got {task!r}")
    registry = methods()
    unknown = sorted(set(config["methods"]) - set(registry))
    if unknown:
        raise ValueError(f"benchmark config: unknown methods {unknown}; registered: {sorted(registry)}")
    overrides = config.get("options", {})
    # every option a method will run with, defaults included, so a changed default changes the key
    resolved = {m: {**registry[m].options, **overrides.get(m, {})} for m in sorted(config["methods"])}
    fixed = dict(task=task, epochs=config["epochs"], methods=sorted(config["methods"]), method_options=resolved,
                 train=config.get("train", {}), version=__version__, eval_revision=EVAL_REVISION)
    if task == "link":
        fixed["attack_epochs"] = config.get("attack_epochs", config["epochs"])
    return [dict(dataset=d, backbone=b, fraction=f, setting=s, seed=seed, **fixed)
            for d in config["datasets"] for b in config["backbones"] for f in config["fractions"]
            for s in config["settings"] for seed in config["seeds"]]


def describe() -> list[str]:
    """One line per configuration found (:func:`~graphunlearn.bench.configs.config_names`): name, task, number
    of cells and the grid."""
    return [f"{name:17s} {c['task']:4s} {len(plan(c)):4d} cells: {', '.join(c['datasets'])}; "
            f"{', '.join(c['backbones'])}; {', '.join(c['settings'])}; fractions {c['fractions']}"
            for name, c in ((name, load_config(name)) for name in config_names())]


def run_config(name: str | os.PathLike, out: str | os.PathLike, progress: bool = True) -> Path:
    """Run or resume configuration ``name`` (a name, or the path of a ``.json`` file: see
    :func:`~graphunlearn.bench.configs.load_config`) under ``out`` and write its outputs; returns
    ``results.md``."""
    config = load_config(name)
    rows = run(config, out, progress=progress)
    return write_outputs(rows, out, config, name=config_label(name))


def cell_key(cell: dict) -> str:
    return hashlib.sha256(json.dumps(cell, sort_keys=True).encode()).hexdigest()[:16]


def _label(cell: dict) -> str:
    return f"{cell['dataset']} {cell['backbone']} {cell['fraction']} {cell['setting']} seed {cell['seed']}"


def run(config: dict, out: str | os.PathLike, progress: bool = True, log: Callable[[str], None] = print
        ) -> list[dict]:
    """Run (or resume) every cell of ``config`` under ``out``; returns the result rows of all cells."""
    out = Path(out)
    cells_dir = out / "cells"
    cells_dir.mkdir(parents=True, exist_ok=True)
    cells = plan(config)
    rows: list[dict] = []
    cache: dict = {}
    for k, cell in enumerate(cells, 1):
        path = cells_dir / f"{cell_key(cell)}.json"
        if path.exists():
            rows += json.loads(path.read_text())["rows"]
            log(f"[{k}/{len(cells)}] cached {_label(cell)}")
            continue
        t0 = time.perf_counter()
        cell_rows = _RUNNERS[cell["task"]](cell, cache, progress)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"cell": cell, "rows": cell_rows}, indent=1))
        os.replace(tmp, path)  # a cell is stored whole or not at all
        rows += cell_rows
        log(f"[{k}/{len(cells)}] {_label(cell)}: {time.perf_counter() - t0:.1f} s")
    return rows


def _data(cell: dict, cache: dict):
    key = ("data", cell["dataset"])
    if key not in cache:
        cache[key] = datasets.load(cell["dataset"])
    return cache[key]


def _original(cell: dict, cache: dict, build: Callable[[], torch.nn.Module], fit: Callable) -> torch.nn.Module:
    """The original model of a cell: depends on neither the forget set nor the methods, so it is trained
    once per (dataset, backbone, seed, recipe) in a run."""
    key = ("model", cell["task"], cell["dataset"], cell["backbone"], cell["seed"], cell["epochs"],
           json.dumps(cell["train"], sort_keys=True))
    if key not in cache:
        torch.manual_seed(cell["seed"])
        model = build()
        fit(model)
        cache[key] = model
    return cache[key]


def _unlearn_all(cell: dict, model, store, req, split, progress: bool) -> dict:
    return {m: unlearn(model, store, req, m, split=split, seed=cell["seed"], progress=progress,
                       **cell["method_options"][m])
            for m in cell["methods"]}


def _rows(cell: dict, results: dict, metrics: Callable) -> list[dict]:
    rows = []
    for method, res in results.items():
        values = metrics(method, res)
        values["seconds"], values["peak_mb"] = res.seconds, res.peak_mb
        rows.append({**{k: v for k, v in cell.items()
                        if k not in ("methods", "version", "method_options", "train", "eval_revision")},
                     "method": method, **values})
    return rows


def _run_link(cell: dict, cache: dict, progress: bool) -> list[dict]:
    data = _data(cell, cache)
    split = datasets.link_split(data, seed=cell["seed"])
    model = _original(cell, cache,
                      lambda: models.GNN(data.num_features or None, conv=cell["backbone"], num_nodes=data.num_nodes),
                      lambda m: train.link_prediction(m, GraphStore(split.train_data), split, epochs=cell["epochs"],
                                                      seed=cell["seed"], progress=progress, **cell["train"]))
    store = GraphStore(split.train_data)
    req = store.delete_edges(datasets.forget_edges(split, cell["fraction"], cell["setting"], seed=cell["seed"]),
                             layout="edge_index")
    results = _unlearn_all(cell, model, store, req, split, progress)
    gold = results[_GOLD].model if _GOLD in results else None
    attacker = evaluate.train_mi_attacker(model, store, epochs=cell["attack_epochs"], seed=cell["seed"])

    def metrics(method, res):
        values = dict(evaluate.link_prediction(res.model, store, split, req, gold=gold, seed=cell["seed"]))
        values["mi_ratio"] = evaluate.mi_ratio(attacker, model, res.model, store, req)
        return values

    return _rows(cell, results, metrics)


def _run_node(cell: dict, cache: dict, progress: bool) -> list[dict]:
    data = _data(cell, cache)
    split = datasets.node_split(data, seed=cell["seed"])
    num_classes = int(data.y.max()) + 1
    model = _original(cell, cache,
                      lambda: models.GNN(data.num_features, out_channels=num_classes, conv=cell["backbone"]),
                      lambda m: train.node_classification(m, GraphStore(data), split, epochs=cell["epochs"],
                                                          seed=cell["seed"], progress=progress, **cell["train"]))
    store = GraphStore(data)
    req = store.delete_nodes(datasets.forget_nodes(split, fraction=cell["fraction"], seed=cell["seed"]))
    results = _unlearn_all(cell, model, store, req, split, progress)
    gold = results[_GOLD].model if _GOLD in results else None
    return _rows(cell, results, lambda method, res: dict(evaluate.node_classification(
        res.model, store, split, req, original=model, gold=gold)))


def _run_rec(cell: dict, cache: dict, progress: bool) -> list[dict]:
    data = _data(cell, cache)
    split = datasets.user_item_split(data, seed=cell["seed"])
    nu, ni = split.num_users, split.num_items
    backbones = {"lightgcn": models.LightGCN, "mf": models.MF}
    if cell["backbone"] not in backbones:
        raise ValueError(f"rec benchmark: backbone must be one of {sorted(backbones)}, got {cell['backbone']!r}")
    model = _original(cell, cache, lambda: backbones[cell["backbone"]](nu, ni),
                      lambda m: train.recommendation(m, GraphStore(split.train_data), split, epochs=cell["epochs"],
                                                     seed=cell["seed"], progress=progress, **cell["train"]))
    store = GraphStore(split.train_data)
    forget = datasets.forget_recommendation(split, cell["setting"], cell["fraction"], seed=cell["seed"])
    req = (store.delete_nodes(forget) if cell["setting"] == "user"
           else store.delete_edges(forget, layout="edge_index"))
    results = _unlearn_all(cell, model, store, req, split, progress)
    gold = results[_GOLD].model if _GOLD in results else None
    return _rows(cell, results, lambda method, res: dict(evaluate.recommendation(res.model, store, split, req,
                                                                                 gold=gold)))


_RUNNERS = {"link": _run_link, "node": _run_node, "rec": _run_rec}


# ----------------------------------------------------------------------------------------------- summaries
def _groups(rows: list[dict]) -> dict[tuple, dict[str, list[dict]]]:
    """(dataset, backbone, fraction, setting) -> method -> rows (one per seed)."""
    out: dict[tuple, dict[str, list[dict]]] = {}
    for r in rows:
        key = (r["dataset"], r["backbone"], r["fraction"], r["setting"])
        out.setdefault(key, {}).setdefault(r["method"], []).append(r)
    return out


def _centre(rs: list[dict], metric: str) -> tuple[float, float] | None:
    vals = [float(r[metric]) for r in rs if r.get(metric) is not None]
    if not vals:
        return None
    std = statistics.stdev(vals) if len(vals) > 1 else 0.0
    # times are medians (PROTOCOL); everything else is a mean
    return (statistics.median(vals) if metric == "seconds" else statistics.mean(vals)), std


def summarise(rows: list[dict]) -> list[dict]:
    """One row per group and method (gold first): ``metric -> "mean +- std"`` over seeds, and the speed-up
    against gold (ratio of median times)."""
    out = []
    for key, by_method in sorted(_groups(rows).items()):
        task = next(iter(by_method.values()))[0].get("task", "link")
        gold = _centre(by_method[_GOLD], "seconds") if _GOLD in by_method else None
        for method in sorted(by_method, key=lambda m: (m != _GOLD, m)):
            rs = by_method[method]
            row = dict(zip(("dataset", "backbone", "fraction", "setting"), key))
            row.update(method="gold (retrain)" if method == _GOLD else method, seeds=len(rs))
            for metric in METRICS[task]:
                c = _centre(rs, metric)
                if c is not None:
                    row[metric] = f"{c[0]:.4f} +- {c[1]:.4f}" if metric != "peak_mb" else f"{c[0]:.0f} +- {c[1]:.0f}"
            t = _centre(rs, "seconds")
            if gold is not None and t is not None:  # under a millisecond: no training happened (unlink)
                row["speedup"] = f"{gold[0] / t[0]:.1f}x" if t[0] >= 1e-3 else "-"
            out.append(row)
    return out


def check_targets(rows: list[dict], targets: list[dict]) -> list[dict]:
    """Check each target in every group that has the method and gold. Rules: ``abs_gap`` (abs(mean - gold mean)
    <= value), ``rel_gap`` (abs(mean - gold mean) / gold mean <= value), ``at_most_gold_plus`` (mean <= gold mean
    + value), ``speedup`` (gold's median time / the method's >= value)."""
    checks = []
    for key, by_method in sorted(_groups(rows).items()):
        for t in targets:
            if t["method"] not in by_method or _GOLD not in by_method:
                continue
            m, g = _centre(by_method[t["method"]], t["metric"]), _centre(by_method[_GOLD], t["metric"])
            if m is None or g is None:
                continue
            rule, value = t["rule"], float(t["value"])
            if rule == "abs_gap":
                measured, ok, want = m[0] - g[0], abs(m[0] - g[0]) <= value, f"abs(gap) <= {value}"
            elif rule == "rel_gap":
                measured = (m[0] - g[0]) / g[0] if g[0] else float("inf")
                ok, want = abs(measured) <= value, f"abs(relative gap) <= {value}"
            elif rule == "at_most_gold_plus":
                measured, ok, want = m[0] - g[0], m[0] <= g[0] + value, f"<= gold + {value}"
            elif rule == "speedup":
                measured = g[0] / m[0] if m[0] > 0 else float("inf")
                ok, want = measured >= value, f">= {value}x"
            else:
                raise ValueError(f"unknown target rule {rule!r}")
            checks.append({"group": " ".join(str(k) for k in key), "method": t["method"], "metric": t["metric"],
                           "method_value": m[0], "gold_value": g[0], "measured": measured, "target": want,
                           "met": bool(ok)})
    return checks


def machine_info() -> dict[str, str]:
    """Where a result was measured: date, CPU, core count, threads, Python, torch and triton versions."""
    info = {"date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d"),
            "host_cpu": platform.processor() or platform.machine(), "cpus": str(os.cpu_count()),
            "threads": str(torch.get_num_threads()), "python": platform.python_version(), "torch": torch.__version__}
    try:
        import triton

        info["triton"] = triton.__version__
    except Exception:  # pragma: no cover - optional
        info["triton"] = "none"
    return info


def write_outputs(rows: list[dict], out: str | os.PathLike, config: dict | None = None,
                  name: str | None = None) -> Path:
    """Write ``results.csv``, ``results.json``, ``results.md`` and ``plots.png`` under ``out``; returns the
    markdown path."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with (out / "results.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=sorted({k for r in rows for k in r}))
        w.writeheader()
        w.writerows(rows)
    info = machine_info()
    checks = check_targets(rows, (config or {}).get("targets", []))
    (out / "results.json").write_text(json.dumps({"config": name, "machine": info, "rows": rows,
                                                  "targets": checks}, indent=1, default=float))
    table = summarise(rows)
    cols = ["dataset", "backbone", "fraction", "setting", "method", "seeds"]
    cols += [c for c in dict.fromkeys(k for r in table for k in r) if c not in cols]
    lines = [f"Configuration `{name}`. Machine: {info['host_cpu']}, {info['cpus']} CPUs ({info['threads']} torch "
             f"threads), no GPU, torch {info['torch']}, triton {info['triton']}, Python {info['python']}, "
             f"{info['date']}. Mean +- std over seeds; times are medians +- std in seconds, speed-up = gold's "
             "median time / the method's; peak_mb = peak resident memory the method added (MiB).", "",
             "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(str(r.get(c, "")) for c in cols) + " |" for r in table]
    if checks:
        lines += ["", "Targets:", "", "| group | method | metric | method | gold | measured | target | met |",
                  "|---|---|---|---|---|---|---|---|"]
        lines += [f"| {c['group']} | {c['method']} | {c['metric']} | {c['method_value']:.4f} | {c['gold_value']:.4f} "
                  f"| {c['measured']:+.4f} | {c['target']} | {'yes' if c['met'] else '**MISSED**'} |" for c in checks]
    (out / "results.md").write_text("\n".join(lines) + "\n")
    if rows:
        plot(rows, out / "plots.png")
    return out / "results.md"


def plot(rows: list[dict], path: Path) -> None:
    """Utility vs forgetting (one point per seed and method; gold is the target) and median time vs fraction."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    task = rows[0].get("task", "link")
    xm, ym = _AXES[task]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    for m in sorted({r["method"] for r in rows}, key=lambda m: (m != _GOLD, m)):
        rs = [r for r in rows if r["method"] == m and r.get(xm) is not None and r.get(ym) is not None]
        label = "gold (retrain)" if m == _GOLD else m
        ax1.scatter([r[xm] for r in rs], [r[ym] for r in rs], label=label, s=18, alpha=0.7,
                    marker="*" if m == _GOLD else "o")
        fracs = sorted({r["fraction"] for r in rows if r["method"] == m})
        ax2.plot(fracs, [statistics.median([r["seconds"] for r in rows if r["method"] == m and r["fraction"] == f])
                         for f in fracs], marker="o", label=label)
    ax1.set_xlabel(f"{xm} (gold is the target)")
    ax1.set_ylabel(ym)
    ax1.legend(fontsize=7)
    ax2.set_xlabel("forget fraction")
    ax2.set_ylabel("median wall time (s)")
    ax2.set_yscale("log")
    ax2.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
