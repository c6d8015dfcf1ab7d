"""``graphunlearn split``: load a dataset, make the task's split, save the training store."""

from __future__ import annotations

from .. import datasets
from ..io import atomic_save
from ..store import GraphStore
from .common import CLIError, _run_dir, seed_int


def add_parser(subparsers) -> None:
    s = subparsers.add_parser("split", help="load a dataset, make the task's split, save the training store")
    s.add_argument("--dataset", default="cora", help=f"one of {', '.join(datasets.DATASETS)} (default: cora)")
    s.add_argument("--task", choices=["link", "node", "rec"],
                   help="default: rec for user-item datasets, else link")
    s.add_argument("--run", required=True, help="run folder to create")
    s.add_argument("--seed", type=seed_int, default=42)
    s.add_argument("--overwrite", action="store_true")
    s.set_defaults(fn=run)


def run(args) -> None:
    run = _run_dir(args.run, must_exist=False)
    if (run / "store").exists() and not args.overwrite:
        raise CLIError(f"{run} already holds a run; pass --overwrite to replace it")
    data = datasets.load(args.dataset)
    user_item = data.get("num_users") is not None
    task = args.task or ("rec" if user_item else "link")
    if task == "rec" and not user_item:
        raise CLIError(f"--task rec needs a user-item dataset (movielens-100k, gowalla), not {args.dataset!r}")
    if task == "node" and data.get("y") is None:
        raise CLIError(f"--task node needs node labels; {args.dataset!r} has none")
    blob = {"task": task, "dataset": datasets.canonical_name(args.dataset), "seed": args.seed}
    if task == "link":
        split = datasets.link_split(data, seed=args.seed)
        store = GraphStore(split.train_data)
        blob.update(val_pos=split.val_pos, val_neg=split.val_neg, test_pos=split.test_pos, test_neg=split.test_neg,
                    official=split.official)
        if split.official:
            blob["seed"] = None
    elif task == "node":
        split = datasets.node_split(data, seed=args.seed)
        store = GraphStore(data)
        blob.update(train_idx=split.train_idx, val_idx=split.val_idx, test_idx=split.test_idx,
                    official=split.official)
    else:
        split = datasets.user_item_split(data, seed=args.seed)
        store = GraphStore(split.train_data)
        blob.update(train_pos=split.train_pos, test_pos=split.test_pos, num_users=split.num_users,
                    num_items=split.num_items, official=split.official)
        if data.get("item_x") is not None:
            blob["item_groups"] = data.item_x  # [items, groups]: MovieLens genres
            blob["item_group_names"] = list(data.get("item_group_names") or [])
    store.save(run / "store", overwrite=args.overwrite)
    store.close()
    atomic_save(blob, run / "split.pt")
    print(f"{args.dataset} ({task}): {_describe(split)}; store saved to {run / 'store'}")


def _describe(split) -> str:
    if isinstance(split, datasets.NodeSplit):
        return (f"{split.train_idx.numel()} training, {split.val_idx.numel()} validation, "
                f"{split.test_idx.numel()} test nodes")
    if isinstance(split, datasets.RecSplit):
        return (f"{split.num_users} users, {split.num_items} items, {split.train_pos.size(1)} training and "
                f"{split.test_pos.size(1)} test interactions")
    return str(split)
