"""Calibrated forgetting (issue 16, ``docs/calibration.md``): each learning method with and without
``calibrate``, beside gold (retrain) and the original, on link prediction (GCN, the protocol's split and
forget sets; Cora by default, ``--dataset`` another link graph), built the way the benchmark engine builds
its cells (``graphunlearn.bench``).

Per (seed, setting, method): Dt-AUROC and Df-AUROC (``evaluate``, the protocol's metrics; on an ``ogbl-*``
graph OGB's Hits@K too), the raw
forget-vs-held-out AUROC the certificates record (``Task.forget_vs_heldout``), the degree-matched one the
calibration reads (``Calibration.auroc``), the unlearning time, and what calibration decided (the epoch kept,
the epoch it stopped, every check). Gold and the metrics are computed after the methods ran; no method sees them.

    python benchmarks/bench_calibration.py --seeds 7,8,9                  # development seeds
    python benchmarks/bench_calibration.py --seeds 42,21,13,87,100        # the protocol's seeds
    python benchmarks/bench_calibration.py --dataset amazon-photo --settings in --seeds 7,8,9
    python benchmarks/bench_calibration.py --seeds 7,8,9 --methods gnndelete,gnndelete+cal \
        --out benchmarks/results/calibration/gnndelete                   # gnndelete alone, its own folder
    python benchmarks/bench_calibration.py --methods none --variant 'd2dgn:{"lr": 0.0025}'   # any method's options

Writes ``<out>/<dataset>-link-<seeds>.json`` (machine, versions, every row) and ``.md`` (mean ± std per setting and
method, and the mean distance to gold on Df-AUROC and on the matched AUROC). Data comes from
``GRAPHUNLEARN_DATA``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

import graphunlearn as gu  # noqa: E402
from graphunlearn import bench, datasets, evaluate, train  # noqa: E402
from graphunlearn.tasks import get_task  # noqa: E402

#: (label, method, options): every learning method with its defaults, and again with calibration
VARIANTS = [("d2dgn", "d2dgn", {"calibrate": False}), ("d2dgn+cal", "d2dgn", {"calibrate": True}),
            ("finetune", "finetune", {"calibrate": False}), ("finetune+cal", "finetune", {"calibrate": True}),
            ("gradient_ascent", "gradient_ascent", {"calibrate": False}),
            ("gradient_ascent+cal", "gradient_ascent", {"calibrate": True}),
            # with calibration the budget is a cap: four times the default, the rule decides where to stop
            ("gradient_ascent+cal, 20 epochs", "gradient_ascent", {"calibrate": True, "epochs": 20}),
            ("gnndelete", "gnndelete", {"calibrate": False}), ("gnndelete+cal", "gnndelete", {"calibrate": True})]


def run(seeds: list[int], settings: list[str], fraction: float, epochs: int, variants, log=print,
        dataset: str = "cora") -> list[dict]:
    task = get_task("link")
    data = datasets.load(dataset)
    rows = []
    for seed in seeds:
        split, graph = task.make_split(data, seed)
        store0 = gu.GraphStore(graph)
        torch.manual_seed(seed)
        original = task.build_model("gcn", store0, split)
        train.fit(original, store0, split, task=task, epochs=epochs, seed=seed, progress=False)
        for setting in settings:
            store = gu.GraphStore(graph)
            req = task.sample_forget(store, split, fraction, seed=seed, setting=setting)
            results = {label: gu.unlearn(original, store, req, method, split=split, task=task, seed=seed,
                                         certify=False, **opts) for label, method, opts in variants}
            gold = gu.unlearn(original, store, req, "retrain", split=split, task=task, seed=seed, certify=False)
            measure = common.calibration_meter(original, store, req, split, task)
            models = {"gold (retrain)": (gold.model, gold), "original": (original, None)}
            models.update({label: (r.model, r) for label, r in results.items()})
            for label, (model, res) in models.items():
                ev = evaluate.evaluate(model, store, split, req, task="link", seed=seed)
                cal = (res.info.get("calibration") or {}) if res is not None else {}
                row = {"seed": seed, "setting": setting, "method": label, "dt_auroc": ev["dt_auroc"],
                       "df_auroc": ev["df_auroc"], "fvh_auroc": task.forget_vs_heldout(model, store, split, [req]),
                       "matched_auroc": measure.auroc(model), "seconds": res.seconds if res is not None else 0.0,
                       "epochs": res.info.get("epochs") if res is not None else None,
                       "selected_epoch": res.info.get("selected_epoch") if res is not None else None,
                       "stopped_at": cal.get("stopped_at"), "deleted": int(req.edge_ids.numel()),
                       # every check: [epoch, validation score, matched AUROC, eligible] (calibrated rows)
                       "checks": [[c["epoch"], c["val"], c["auroc"], c["eligible"]] for c in cal.get("checks", [])],
                       **{k: v for k, v in ev.items() if k.startswith("hits@")}}  # OGB's metric on ogbl-*
                rows.append(row)
                log(f"seed {seed} {setting:3s} {label:20s} dt {row['dt_auroc']:.4f} df {row['df_auroc']:.4f} "
                    f"fvh {row['fvh_auroc']:.3f} matched {row['matched_auroc']:.3f} {row['seconds']:.2f}s "
                    f"epoch {row['selected_epoch']} stop {row['stopped_at']}")
    return rows


def table(rows: list[dict]) -> str:
    """Mean ± std per setting and method, with the mean |method - gold| per seed on Df and matched AUROC."""
    hits = sorted({k for r in rows for k in r if k.startswith("hits@")})
    return common.gold_table(rows, "setting", [
        ("Dt-AUROC", common.column("dt_auroc")), *[(k.capitalize(), common.column(k)) for k in hits],
        ("Df-AUROC", common.column("df_auroc")),
        ("|Df - gold|", common.distance("df_auroc")), ("forget-vs-held-out", common.column("fvh_auroc")),
        ("matched", common.column("matched_auroc")), ("|matched - gold|", common.distance("matched_auroc", 3)),
        ("time (s)", common.median_seconds), ("epoch kept", common.epochs_kept)])


def parse_variant(parser: argparse.ArgumentParser, text: str) -> tuple[str, str, dict]:
    """``METHOD:JSON`` -> (label, method, options); a bad one stops the run before any work, naming it."""
    method, sep, options = text.partition(":")
    try:
        opts = json.loads(options) if sep else None
    except json.JSONDecodeError as exc:
        parser.error(f"--variant {text!r}: the options are not JSON ({exc})")
    if method not in gu.methods() or not isinstance(opts, dict):
        parser.error(f"--variant {text!r}: expected METHOD:JSON-object with METHOD one of {sorted(gu.methods())}")
    return text, method, opts


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default="cora", help="a link graph of gu.datasets.load (default cora)")
    p.add_argument("--seeds", default="7,8,9")
    p.add_argument("--settings", default="in,out")
    p.add_argument("--fraction", type=float, default=0.025)
    p.add_argument("--epochs", type=int, default=None,
                   help="original and gold training epochs (default: the budget link-gcn-grid gives the dataset, "
                        "200 for a dataset it does not run)")
    p.add_argument("--methods", default=None, help="comma-separated labels of VARIANTS (default: all; none: only "
                                                   "the --variant rows)")
    p.add_argument("--variant", action="append", default=[], metavar="METHOD:JSON",
                   help='one more row: a method and its options as a JSON object, e.g. d2dgn:{"lr": 0.0025} '
                        "(repeatable; the row is labelled with the text itself)")
    p.add_argument("--tolerance", type=float, default=None,
                   help="calibrate_tolerance of the calibrated variants (default: the option's default)")
    p.add_argument("--out", default=str(common.RESULTS / "calibration"))
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    seeds = [int(s) for s in a.seeds.split(",")]
    variants = [(label, method, {**opts, **({"calibrate_tolerance": a.tolerance}
                                            if opts["calibrate"] and a.tolerance is not None else {})})
                for label, method, opts in VARIANTS if a.methods is None or label in a.methods.split(",")]
    variants += [parse_variant(p, text) for text in a.variant]
    if a.epochs is None:
        grid = bench.load_config("link-gcn-grid")
        a.epochs = bench.epochs_for(grid, a.dataset) if a.dataset in grid["datasets"] else 200
    rows = run(seeds, a.settings.split(","), a.fraction, a.epochs, variants, dataset=a.dataset)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    name = f"{a.dataset}-link-{'-'.join(map(str, seeds))}{'' if a.tolerance is None else f'-tol{a.tolerance:g}'}"
    md = table(rows)
    (out / f"{name}.json").write_text(json.dumps({"machine": common.machine(), "seeds": seeds,
                                                     "fraction": a.fraction, "epochs": a.epochs,
                                                     "variants": variants, "rows": rows}, indent=1))
    (out / f"{name}.md").write_text(f"{a.dataset} link, GCN, {a.fraction:.1%}, seeds {seeds}, calibrate_tolerance "
                                f"{a.tolerance if a.tolerance is not None else 'default'}\n\n{md}\n")
    print(md)


if __name__ == "__main__":
    main()
