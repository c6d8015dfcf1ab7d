"""Calibrated forgetting for recommendation (issue 16, ``docs/calibration.md``): ``reverse_bpr`` with and
without ``calibrate``, beside gold (retrain) and the original, on MovieLens-100k with LightGCN, the
``movielens-target`` recipe (2.5% forget sets, 50 training epochs) and validation interactions carved out of
each user's training ones (``user_item_split(..., val_ratio=0.1)``; the test interactions are the official
ones, untouched), built the way the benchmark engine builds its cells (``graphunlearn.bench``). With
``--dataset gowalla --sampled`` (or ``yelp2018``): the original and gold train on sampled computation graphs
(``benchmarks/bench_rec_sampled.py``'s recipe, ``--epochs`` of 50 sampled steps), plain reverse_bpr unlearns on
them, calibrated too (its checks a sampled AUC) and calibrated on the whole graph (its checks rank every item).

Per (seed, kind, method): Recall@20 and NDCG@20 on the test interactions and Recall@20 on the forgotten ones
(``evaluate``, the protocol's metrics), the raw forget-vs-held-out AUROC the certificates record
(``Task.forget_vs_heldout``: here against the validation interactions), the degree-matched one the
calibration reads (``Calibration.auroc``), validation Recall@20, the unlearning time, and what calibration
decided (the epoch kept, the epoch it stopped, every check's epoch, validation score, matched AUROC and
eligibility). Gold and the metrics are computed after the methods ran; no
method sees them.

    python benchmarks/bench_calibration_rec.py --seeds 7,8,9            # development seeds
    python benchmarks/bench_calibration_rec.py --seeds 7 --kinds interaction --no-floor --tag steps \
        --variants '[["reverse_bpr+cal, lr 0.02", {"calibrate": true, "lr": 0.02}], ...]'
    python benchmarks/bench_calibration_rec.py --dataset gowalla --sampled --seeds 42 --kinds user,interaction

Writes ``<out>/<dataset>-rec-<seeds>[-sampled][-<tag>].json`` (``movielens`` for MovieLens-100k; machine,
versions, the command line, every row) and ``.md`` (mean ± std per kind and method, and the mean distance to
gold on forget Recall@20 and on the matched AUROC). Data comes from ``GRAPHUNLEARN_DATA``.
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
from graphunlearn import datasets, evaluate, train  # noqa: E402
from graphunlearn.tasks import get_task  # noqa: E402

#: (label, options): reverse_bpr with its defaults, with calibration, and with calibration and its epochs as a
#: cap three times the default (the rule decides where to stop)
VARIANTS = [("reverse_bpr", {"calibrate": False}), ("reverse_bpr+cal", {"calibrate": True}),
            ("reverse_bpr+cal, 30 epochs", {"calibrate": True, "epochs": 30})]
#: with --sampled: reverse_bpr on sampled computation graphs (the card's fanouts), plain and calibrated (its
#: checks a sampled AUC, ``Recommendation.sampled_validate``), and calibrated on the whole graph (its checks
#: Recall@20, every item ranked)
VARIANTS_SAMPLED = [("reverse_bpr", {"calibrate": False}), ("reverse_bpr+cal, sampled", {"calibrate": True}),
                    ("reverse_bpr+cal, whole graph", {"calibrate": True, "num_neighbors": "full"})]


def run(seeds: list[int], kinds: list[str], fraction: float, epochs: int, val_ratio: float, variants,
        floor: bool, log=print, dataset: str = "movielens-100k", sampled: dict | None = None) -> list[dict]:
    """The rows of every (seed, kind, model) on recommendation dataset ``dataset``
    (:func:`graphunlearn.datasets.load`); ``sampled``: the original (and so gold, which follows its card)
    trains on sampled computation graphs with these :func:`graphunlearn.train.fit` arguments (``batch_size``,
    ``num_neighbors``, ``steps_per_epoch``), ``epochs`` of them."""
    task = get_task("rec")
    data = datasets.load(dataset)
    rows = []
    for seed in seeds:
        split, graph = task.make_split(data, seed, val_ratio=val_ratio)
        store0 = gu.GraphStore(graph)
        torch.manual_seed(seed)
        original = task.build_model("lightgcn", store0, split)
        fit = train.fit(original, store0, split, task=task, epochs=epochs, seed=seed, progress=False,
                        **(sampled or {}))
        log(f"seed {seed}: {task.describe_split(split)}; original kept epoch {fit.best_epoch} "
            f"(val Recall@20 {fit.best_val:.4f}), {fit.seconds:.1f} s")
        for kind in kinds:
            store = gu.GraphStore(graph)
            req = task.sample_forget(store, split, fraction, seed=seed, kind=kind)
            results = {label: gu.unlearn(original, store, req, "reverse_bpr", split=split, task=task, seed=seed,
                                         certify=False, **opts) for label, opts in variants}
            gold = gu.unlearn(original, store, req, "retrain", split=split, task=task, seed=seed, certify=False)
            models = {"gold (retrain)": (gold.model, gold)}
            if floor:  # a second gold (seed + 1): how far two retrainings land apart
                gold2 = gu.unlearn(original, store, req, "retrain", split=split, task=task, seed=seed + 1,
                                   certify=False)
                models["gold2 (retrain, seed + 1)"] = (gold2.model, gold2)
            models["original"] = (original, None)
            models.update({label: (r.model, r) for label, r in results.items()})
            measure = common.calibration_meter(original, store, req, split, task)
            for label, (model, res) in models.items():
                ev = evaluate.evaluate(model, store, split, [req], task="rec")
                cal = (res.info.get("calibration") or {}) if res is not None else {}
                row = {"seed": seed, "kind": kind, "method": label, "recall@20": ev["recall@20"],
                       "ndcg@20": ev["ndcg@20"], "forget_recall@20": ev["forget_recall@20"],
                       "val_recall@20": task.validate(model, store, split),
                       "fvh_auroc": task.forget_vs_heldout(model, store, split, [req]),
                       "matched_auroc": measure.auroc(model), "seconds": res.seconds if res is not None else 0.0,
                       "epochs": res.info.get("epochs") if res is not None else None,
                       "selected_epoch": res.info.get("selected_epoch") if res is not None else None,
                       "stopped_at": cal.get("stopped_at"), "skipped": cal.get("skipped"),
                       "lr": cal.get("lr"), "computation": res.info.get("computation") if res is not None
                       else None, "deleted": int(req.edge_ids.numel()) if req.edge_ids.numel()
                       else int(req.node_ids.numel()),
                       "checks": [[c["epoch"], c["val"], c["auroc"], c["eligible"]] for c in cal.get("checks", [])]}
                rows.append(row)
                log(f"seed {seed} {kind:12s} {label:26s} recall {row['recall@20']:.4f} forget "
                    f"{row['forget_recall@20']:.4f} val {row['val_recall@20']:.4f} fvh {row['fvh_auroc']:.3f} "
                    f"matched {row['matched_auroc']:.3f} {row['seconds']:.2f}s epoch {row['selected_epoch']} "
                    f"stop {row['stopped_at']}")
    return rows


def table(rows: list[dict]) -> str:
    """Mean ± std per kind and method, with the mean |method - gold| per seed on forget Recall@20 and on the
    matched AUROC."""
    return common.gold_table(rows, "kind", [
        ("Recall@20", common.column("recall@20")), ("NDCG@20", common.column("ndcg@20")),
        ("forget Recall@20", common.column("forget_recall@20")),
        ("|forget - gold|", common.distance("forget_recall@20")), ("val Recall@20", common.column("val_recall@20")),
        ("forget-vs-held-out", common.column("fvh_auroc")), ("matched m", common.column("matched_auroc")),
        ("|m - gold|", common.distance("matched_auroc", 3)), ("time (s)", common.median_seconds),
        ("epoch kept", common.epochs_kept)])


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default="movielens-100k", help="a recommendation dataset of gu.datasets.load")
    p.add_argument("--sampled", action="store_true",
                   help="train on sampled computation graphs (batch 2048 interactions, fanouts 10,10,10, 50 steps "
                        "an epoch: benchmarks/bench_rec_sampled.py's recipe) and run VARIANTS_SAMPLED")
    p.add_argument("--seeds", default="7,8,9")
    p.add_argument("--kinds", default="item_group,interaction")
    p.add_argument("--fraction", type=float, default=0.025)
    p.add_argument("--epochs", type=int, default=None,
                   help="original and gold training epochs (default: 50 as movielens-target; 6 with --sampled, each "
                        "of 50 sampled steps, as bench_rec_sampled.py)")
    p.add_argument("--val-ratio", type=float, default=0.1, help="validation share of each user's training interactions")
    p.add_argument("--no-floor", action="store_true", help="skip the second gold (seed + 1)")
    p.add_argument("--variants", default=None,
                   help='JSON list of [label, reverse_bpr options] run instead of VARIANTS')
    p.add_argument("--tag", default="", help="suffix of the output files' names")
    p.add_argument("--out", default=str(common.RESULTS / "calibration"))
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    seeds = [int(s) for s in a.seeds.split(",")]
    variants = [tuple(v) for v in json.loads(a.variants)] if a.variants else \
        (VARIANTS_SAMPLED if a.sampled else VARIANTS)
    sampled = dict(batch_size=2048, num_neighbors=[10, 10, 10], steps_per_epoch=50) if a.sampled else None
    a.epochs = a.epochs if a.epochs is not None else (6 if a.sampled else 50)
    rows = run(seeds, a.kinds.split(","), a.fraction, a.epochs, a.val_ratio, variants, not a.no_floor,
               dataset=a.dataset, sampled=sampled)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    movielens = a.dataset == "movielens-100k"  # its files keep their earlier names
    short = "movielens" if movielens else a.dataset
    name = f"{short}-rec-{'-'.join(map(str, seeds))}{'-sampled' if a.sampled else ''}{'-' + a.tag if a.tag else ''}"
    md = table(rows)
    (out / f"{name}.json").write_text(json.dumps({"machine": common.machine(), "seeds": seeds,
                                                     "fraction": a.fraction, "epochs": a.epochs,
                                                     "val_ratio": a.val_ratio, "kinds": a.kinds.split(","),
                                                     "variants": variants, "dataset": a.dataset,
                                                     "sampled": sampled, "floor": not a.no_floor,
                                                     "version": gu.__version__, "argv": common.recorded_argv(argv),
                                                     "rows": rows}, indent=1))
    how = f", sampled training {sampled}" if sampled else ""
    label = "MovieLens-100k" if movielens else a.dataset
    (out / f"{name}.md").write_text(f"{label}, LightGCN, {a.fraction:.1%} forget sets, {a.epochs} training "
                                    f"epochs{how}, val_ratio {a.val_ratio}, seeds {seeds}\n\n{md}\n")
    print(md)


if __name__ == "__main__":
    main()
