"""``graphunlearn evaluate``: the task's metrics of a checkpoint after a request."""

from __future__ import annotations

from pathlib import Path

from .. import evaluate
from .common import CLIError, _load_model, _opened, _request, _run_dir, nonnegative_int, positive_int


def add_parser(subparsers) -> None:
    s = subparsers.add_parser("evaluate", help="the task's metrics of a checkpoint after a request")
    s.add_argument("--run", required=True)
    s.add_argument("--request", type=nonnegative_int, required=True)
    s.add_argument("--model", required=True)
    s.add_argument("--gold", help="a retrained checkpoint, for the retrain gap")
    s.add_argument("--original", default=None, help="node task: the model before unlearning, for the MIA "
                   "(e.g. model.pt)")
    s.add_argument("--resamples", type=positive_int, default=500)
    s.add_argument("--json", help="write the report there")
    s.set_defaults(fn=run)


def run(args) -> None:
    run = _run_dir(args.run)
    if args.json is not None and Path(args.json).is_dir():
        raise CLIError(f"--json {args.json} is a folder; name a file")
    with _opened(run, read_only=True) as (store, split, task):
        req = _request(store, args.request)
        model = _load_model(run, args.model)
        gold = _load_model(run, args.gold) if args.gold else None
        if task == "node":
            original = _load_model(run, args.original) if args.original else None
            row = evaluate.node_classification(model, store, split, req, original=original, gold=gold)
        elif task == "rec":
            row = evaluate.recommendation(model, store, split, req, gold=gold)
        else:
            row = evaluate.link_prediction(model, store, split, req, gold=gold, resamples=args.resamples)
    report = evaluate.Report(task, rows={args.model: dict(row)}, meta={"request": req.id})
    shown = [c for c in report.columns() if not c.startswith("gap_") or c.endswith(("kl", "fidelity"))]
    print(report.table(shown))
    if args.json:
        report.to_json(args.json)
        print(f"wrote {args.json}")
