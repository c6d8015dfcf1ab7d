"""The unlearning benchmark: datasets x backbones x methods x forget fractions x settings x seeds.

Each cell trains the original model (cached per dataset/backbone/seed within a run), registers the forget
set, runs every method (``retrain`` is the gold row) and evaluates with ``graphunlearn.evaluate``. Cells are
cached as JSON under ``--out/cells`` keyed by a hash of their full configuration, so an interrupted or
extended run recomputes only what is new or changed. Writes ``results.csv``, ``results.md`` (mean +- std
over seeds, the gold row beside every method, machine and versions in the header) and PNG plots
(utility vs forgetting; time vs forget fraction).

    python benchmarks/run_unlearning.py --config smoke        # seconds: synthetic graph, one seed
    python benchmarks/run_unlearning.py --config cora-gcn-target   # Cora, GCN, 2.5% "in", 5 seeds
    python benchmarks/run_unlearning.py --config cora-link    # Cora, GCN/GAT/GIN, 0.5-5%, in/out, 5 seeds
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

import graphunlearn as gu  # noqa: E402

CONFIGS = {
    "smoke": dict(datasets=["synthetic"], backbones=["gcn"], methods=["retrain", "unlink", "d2dgn", "gnndelete"],
                  fractions=[0.025], settings=["in"], seeds=[42], epochs=30),
    "cora-link": dict(datasets=["cora"], backbones=["gcn", "gat", "gin"],
                      methods=["retrain", "unlink", "d2dgn", "gnndelete", "gradient_ascent", "finetune"],
                      fractions=[0.005, 0.01, 0.025, 0.05], settings=["in", "out"], seeds=[42, 21, 13, 87, 100],
                      epochs=200),
    # the headline target: Cora, GCN, 2.5% "in", 5 seeds
    "cora-gcn-target": dict(datasets=["cora"], backbones=["gcn"], methods=["retrain", "unlink", "d2dgn", "gnndelete"],
                            fractions=[0.025], settings=["in"], seeds=[42, 21, 13, 87, 100], epochs=200),
    "ddi-link": dict(datasets=["ogbl-ddi"], backbones=["gcn"], methods=["retrain", "unlink", "d2dgn", "gnndelete"],
                     fractions=[0.005, 0.025], settings=["in"], seeds=[42, 21, 13], epochs=100),
}
METRICS = ["dt_auroc", "df_auroc", "mi_ratio", "gap_test_kl", "gap_deleted_kl", "seconds"]


def cell_key(cell: dict) -> str:
    return hashlib.sha256(json.dumps(cell, sort_keys=True).encode()).hexdigest()[:16]


def run_cells(config: dict, out: Path, progress: bool = True) -> list[dict]:
    cells_dir = out / "cells"
    cells_dir.mkdir(parents=True, exist_ok=True)
    rows, trained = [], {}
    plan = [dict(dataset=d, backbone=b, fraction=f, setting=s, seed=seed, epochs=config["epochs"],
                 methods=sorted(config["methods"]), version=gu.__version__)
            for d in config["datasets"] for b in config["backbones"] for f in config["fractions"]
            for s in config["settings"] for seed in config["seeds"]]
    for k, cell in enumerate(plan, 1):
        path = cells_dir / f"{cell_key(cell)}.json"
        if path.exists():
            rows += json.loads(path.read_text())["rows"]
            print(f"[{k}/{len(plan)}] cached {cell_key(cell)} {cell['dataset']} {cell['backbone']} "
                  f"{cell['fraction']} {cell['setting']} seed {cell['seed']}")
            continue
        t0 = time.perf_counter()
        cell_rows = run_cell(cell, trained, progress)
        path.write_text(json.dumps({"cell": cell, "rows": cell_rows}, indent=1))
        rows += cell_rows
        print(f"[{k}/{len(plan)}] {cell['dataset']} {cell['backbone']} {cell['fraction']} {cell['setting']} "
              f"seed {cell['seed']}: {time.perf_counter() - t0:.1f} s")
    return rows


def run_cell(cell: dict, trained: dict, progress: bool) -> list[dict]:
    data = gu.datasets.load(cell["dataset"])
    split = gu.datasets.link_split(data, seed=cell["seed"])
    key = (cell["dataset"], cell["backbone"], cell["seed"], cell["epochs"])
    if key not in trained:  # the original model depends on neither the forget set nor the method
        torch.manual_seed(cell["seed"])
        model = gu.models.GNN(data.num_features or None, conv=cell["backbone"], num_nodes=data.num_nodes)
        gu.train.link_prediction(model, gu.GraphStore(split.train_data), split, epochs=cell["epochs"],
                                 seed=cell["seed"], progress=progress)
        trained[key] = model
    model = trained[key]
    store = gu.GraphStore(split.train_data)
    req = store.delete_edges(gu.datasets.forget_edges(split, cell["fraction"], cell["setting"], seed=cell["seed"]))
    results = {m: gu.unlearn(model, store, req, m, split=split, seed=cell["seed"], progress=progress)
               for m in cell["methods"]}
    gold = results["retrain"].model if "retrain" in results else None
    attacker = gu.evaluate.train_mi_attacker(model, store, epochs=cell["epochs"], seed=cell["seed"])
    rows = []
    for method, res in results.items():
        metrics = gu.evaluate.link_prediction(res.model, store, split, req, gold=gold, seed=cell["seed"])
        metrics["mi_ratio"] = gu.evaluate.mi_ratio(attacker, model, res.model, store, req)
        metrics["seconds"] = res.seconds
        rows.append({**{k: v for k, v in cell.items() if k not in ("methods", "version")}, "method": method,
                     **metrics})
    return rows


def summarise(rows: list[dict]) -> list[dict]:
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["dataset"], r["backbone"], r["fraction"], r["setting"], r["method"]), []).append(r)
    out = []
    for (d, b, f, s, m), rs in sorted(groups.items(), key=lambda kv: (kv[0][:4], kv[0][4] != "retrain", kv[0][4])):
        row = {"dataset": d, "backbone": b, "fraction": f, "setting": s,
               "method": "gold (retrain)" if m == "retrain" else m, "seeds": len(rs)}
        for metric in METRICS:
            vals = [r[metric] for r in rs if metric in r]
            if vals:
                std = statistics.stdev(vals) if len(vals) > 1 else 0.0
                # times are reported as medians (PROTOCOL), the rest as means
                centre = statistics.median(vals) if metric == "seconds" else statistics.mean(vals)
                row[metric] = f"{centre:.4f} +- {std:.4f}"
        out.append(row)
    return out


def write_outputs(rows: list[dict], out: Path) -> None:
    with (out / "results.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=sorted({k for r in rows for k in r}))
        w.writeheader()
        w.writerows(rows)
    info = common.machine("cpu")
    table = summarise(rows)
    cols = ["dataset", "backbone", "fraction", "setting", "method", "seeds"] + METRICS
    lines = [f"Machine: {info['host_cpu']}, {info['cpus']} CPUs, torch {info['torch']}, triton {info['triton']}, "
             f"Python {info['python']}, {info['date']}. Mean +- std over seeds (times: median +- std).", "",
             "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(str(r.get(c, "")) for c in cols) + " |" for r in table]
    (out / "results.md").write_text("\n".join(lines) + "\n")
    plot(rows, out)


def plot(rows: list[dict], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = sorted({r["method"] for r in rows})
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    for m in methods:
        rs = [r for r in rows if r["method"] == m]
        ax1.scatter([r["df_auroc"] for r in rs], [r["dt_auroc"] for r in rs], label=m, s=18, alpha=0.7)
        fracs = sorted({r["fraction"] for r in rs})
        ax2.plot(fracs, [statistics.median([r["seconds"] for r in rs if r["fraction"] == f]) for f in fracs],
                 marker="o", label=m)
    ax1.set_xlabel("Df-AUROC (gold is the target)")
    ax1.set_ylabel("Dt-AUROC")
    ax1.legend(fontsize=7)
    ax2.set_xlabel("forget fraction")
    ax2.set_ylabel("median wall time (s)")
    ax2.set_yscale("symlog", linthresh=1e-3)
    fig.tight_layout()
    fig.savefig(out / "utility_vs_forgetting_and_time.png", dpi=110)
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", choices=sorted(CONFIGS), default="smoke")
    p.add_argument("--out", default=None, help="results folder (default: benchmarks/results/unlearning-CONFIG)")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args()
    out = Path(args.out) if args.out else Path(__file__).resolve().parent / "results" / f"unlearning-{args.config}"
    rows = run_cells(CONFIGS[args.config], out, progress=not args.no_progress)
    write_outputs(rows, out)
    print((out / "results.md").read_text())
    print(f"wrote {out / 'results.csv'}, {out / 'results.md'} and {out / 'utility_vs_forgetting_and_time.png'}")


if __name__ == "__main__":
    main()
