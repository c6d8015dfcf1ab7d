"""``graphunlearn split``: load a dataset, make the task's split, save the training store."""

from __future__ import annotations

import argparse

from .. import datasets
from ..io import atomic_save
from ..store import GraphStore
from ..tasks import get_task, tasks
from .common import CLIError, _float, _run_dir, seed_int


def add_parser(subparsers) -> None:
    s = subparsers.add_parser("split", help="load a dataset, make the task's split, save the training store")
    s.add_argument("--dataset", default="cora", help=f"one of {', '.join(datasets.DATASETS)} (default: cora)")
    s.add_argument("--task", choices=sorted(tasks()),
                   help="default: rec for user-item datasets, else link")
    s.add_argument("--run", required=True, help="run folder to create")
    s.add_argument("--seed", type=seed_int, default=42)
    s.add_argument("--val-ratio", type=val_ratio, default=None,
                   help="rec only: share of each user's training interactions held out as validation interactions, "
                        "in [0, 1) (default 0: none; with them training selects its epoch on validation Recall@20 "
                        "and unlearning methods may calibrate, docs/calibration.md)")
    s.add_argument("--overwrite", action="store_true")
    s.set_defaults(fn=run)


def val_ratio(text: str) -> float:
    value = _float(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be a fraction in [0, 1), got {text!r}")
    return value


def default_task(data) -> str:
    """The task a dataset gets when ``--task`` is not given, read from the data: recommendation for
    user-item data (it has ``num_users``), else link prediction."""
    return "rec" if data.get("num_users") is not None else "link"


def run(args) -> None:
    run = _run_dir(args.run, must_exist=False)
    if (run / "store").exists() and not args.overwrite:
        raise CLIError(f"{run} already holds a run; pass --overwrite to replace it")
    data = datasets.load(args.dataset)
    task = get_task(args.task or default_task(data), where="--task")
    options = {}
    if args.val_ratio is not None:
        if task.name != "rec":
            raise CLIError(f"--val-ratio holds out validation interactions of task rec; task {task.name!r} makes "
                           "its own validation split")
        options["val_ratio"] = args.val_ratio
    try:
        split, graph = task.make_split(data, seed=args.seed, **options)
    except ValueError as exc:  # the data lacks what the task needs (labels, users and items)
        raise CLIError(f"--task {task.name} does not fit {args.dataset!r}: {exc}") from None
    blob = {"task": task.name, "dataset": datasets.canonical_name(args.dataset), "seed": args.seed,
            **task.split_to_dict(split)}
    if data.get("item_x") is not None:  # [items, groups]: MovieLens genres, for `delete --item-group`
        blob["item_groups"] = data.item_x
        blob["item_group_names"] = list(data.get("item_group_names") or [])
        blob["item_offset"] = int(data.get("num_users") or 0)  # node id of item 0 (items follow the users)
    store = GraphStore(graph)
    store.save(run / "store", overwrite=args.overwrite)
    store.close()
    atomic_save(blob, run / "split.pt")
    print(f"{args.dataset} ({task.name}): {task.describe_split(split)}; store saved to {run / 'store'}")
