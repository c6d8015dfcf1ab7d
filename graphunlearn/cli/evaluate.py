"""``graphunlearn evaluate``: the task's metrics of a checkpoint after a request."""

from __future__ import annotations

import inspect
from pathlib import Path

from .. import evaluate
from .common import CLIError, _load_model, _opened, _request, _run_dir, nonnegative_int, positive_int


def add_parser(subparsers) -> None:
    s = subparsers.add_parser("evaluate", help="the task's metrics of a checkpoint after a request")
    s.add_argument("--run", required=True)
    s.add_argument("--request", type=nonnegative_int, required=True)
    s.add_argument("--model", required=True)
    s.add_argument("--gold", help="a retrained checkpoint, for the retrain gap")
    s.add_argument("--original", default=None, help="the model before unlearning (e.g. model.pt), for the metrics "
                   "that compare with it (node: the membership attack)")
    s.add_argument("--resamples", type=positive_int, default=500,
                   help="link: resamples of retained edges the deleted ones are ranked against (default 500)")
    s.add_argument("--json", help="write the report there")
    s.set_defaults(fn=run)


def run(args) -> None:
    run = _run_dir(args.run)
    if args.json is not None and Path(args.json).is_dir():
        raise CLIError(f"--json {args.json} is a folder; name a file")
    with _opened(run, read_only=True) as (store, split, task):
        req = _request(store, args.request)
        model = _load_model(run, args.model, task)
        gold = _load_model(run, args.gold, task) if args.gold else None
        original = _load_model(run, args.original, task) if args.original else None
        options = _accepted(task.evaluate, resamples=args.resamples)
        row = evaluate.evaluate(model, store, split, req, task=task.name, gold=gold, original=original, **options)
    report = evaluate.Report(task.name, rows={args.model: dict(row)}, meta={"request": req.id})
    shown = [c for c in report.columns() if not c.startswith("gap_") or c.endswith(("kl", "fidelity"))]
    print(report.table(shown))
    if args.json:
        report.to_json(args.json)
        print(f"wrote {args.json}")


def _accepted(fn, **options) -> dict:
    """The ``options`` that the task's ``evaluate`` takes (by name, or all of them with ``**options``): the
    command's task-specific options are passed only to the tasks that have them."""
    params = inspect.signature(fn).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return options
    return {k: v for k, v in options.items() if k in params}
