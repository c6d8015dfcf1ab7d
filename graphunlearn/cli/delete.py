"""``graphunlearn delete``: register a deletion request (journaled before it applies)."""

from __future__ import annotations

from pathlib import Path

import torch

from .. import datasets
from ..io import safe_load
from ..store import GraphStore
from ..tasks import Task
from .common import CLIError, _id_list, _opened, _pair_list, _run_dir, fraction, nonnegative_int, seed_int

_DELETE_WAYS = ("fraction", "features", "edges", "nodes", "edge_class", "node_class", "item_group")


def add_parser(subparsers) -> None:
    s = subparsers.add_parser("delete", help="register a deletion request (journaled before it applies)")
    s.add_argument("--run", required=True)
    s.add_argument("--fraction", type=fraction, help="sample this fraction as the forget set (the task's protocol, "
                   "Task.sample_forget): link: of training edges; node: of training nodes; rec: of interactions or "
                   "users (see --kind)")
    s.add_argument("--setting", default=None,
                   help="what --fraction samples, one of the run's task's forget settings (Task.forget_settings): "
                   "link: where Df lies, in or out (default in); node: the nodes (default) or every feature value "
                   "of them (features), or class (every node of one class drawn by --seed; no --fraction); rec: "
                   "interaction (default), user or item_group")
    s.add_argument("--kind", choices=list(datasets.REC_KINDS), default=None,
                   help="rec: another name for --setting (default interaction)")
    s.add_argument("--item-group", metavar="GROUP",
                   help="every training interaction with the items of this group (datasets with item groups): a "
                   "MovieLens genre name such as Horror, or its column number")
    s.add_argument("--features", help="erase all feature values of these node ids, such as 3,17")
    s.add_argument("--edges", help="pairs such as 0-633,5-7")
    s.add_argument("--nodes", help="node ids such as 3,17")
    s.add_argument("--edge-class", type=nonnegative_int)
    s.add_argument("--node-class", type=nonnegative_int)
    s.add_argument("--seed", type=seed_int, default=0)
    s.set_defaults(fn=run)


def run(args) -> None:
    run = _run_dir(args.run)
    given = [f"--{w.replace('_', '-')}" for w in _DELETE_WAYS if getattr(args, w) is not None]
    unsized = not given and args.setting is not None  # a setting no fraction sizes (checked on the task below)
    if not given and not unsized:
        raise CLIError("say what to delete: --fraction, --edges, --nodes, --features, --edge-class, --node-class "
                       "or --item-group")
    if len(given) > 1:
        raise CLIError(f"one deletion per request: give one of {', '.join(given)}, not several")
    if given and args.fraction is None and (args.setting is not None or args.kind is not None):
        raise CLIError(f"--{'setting' if args.setting is not None else 'kind'} says what --fraction samples; "
                       f"with {given[0]} it means nothing")
    with _opened(run) as (store, split, task):
        setting = _setting(args, task) if args.setting is not None or args.kind is not None else None
        if unsized and setting not in task.unsized_settings:
            raise CLIError(f"--setting {setting} samples a fraction of the forget units: give --fraction too")
        if args.fraction is not None and setting in task.unsized_settings:
            raise CLIError(f"--setting {setting} deletes a whole {setting}, drawn by --seed: --fraction means "
                           "nothing with it")
        print(_delete(args, run, store, split, task).summary())


def _delete(args, run: Path, store: GraphStore, split, task: Task):
    if args.item_group is not None:
        req = _delete_item_group(args, run, store)
    elif args.fraction is not None or args.setting is not None:  # a fraction, or a setting no fraction sizes
        setting = _setting(args, task)
        setting = {} if setting is None else {"setting": setting}  # else the task's own default
        req = task.sample_forget(store, split, args.fraction, seed=args.seed, **setting)
    elif args.features:
        req = store.delete_node_features(_id_list("--features", args.features))
    elif args.edges:
        req = store.delete_edges(_pair_list(args.edges))
    elif args.nodes:
        req = store.delete_nodes(_id_list("--nodes", args.nodes))
    elif args.edge_class is not None:
        req = store.delete_edge_class(args.edge_class)
    elif args.node_class is not None:
        req = store.delete_node_class(args.node_class)
    else:
        raise CLIError("say what to delete: --fraction, --edges, --nodes, --features, --edge-class, --node-class "
                       "or --item-group")
    return req


def _setting(args, task: Task) -> str | None:
    """The forget setting ``--fraction`` samples (``--setting``, or ``--kind``, its other name), checked against
    the task's :attr:`~graphunlearn.tasks.Task.forget_settings` before anything is registered; ``None``: the
    task's default."""
    if args.setting is not None and args.kind is not None and args.setting != args.kind:
        raise CLIError(f"--setting {args.setting} and --kind {args.kind} name two forget sets; give one")
    setting = args.setting if args.setting is not None else args.kind
    known = task.forget_settings
    if setting is not None and known is not None and setting not in known:
        raise CLIError(f"--{'setting' if args.setting is not None else 'kind'} {setting} is not a forget setting of "
                       f"this run's task ({task.name}); its settings: {', '.join(known)}")
    return setting


def _delete_item_group(args, run: Path, store: GraphStore):
    """Every live training edge of the store with an item of the group (a licence revoked for a genre). The
    groups are those the split file holds (``graphunlearn split`` saves them for data with ``item_x``)."""
    blob = safe_load(run / "split.pt")
    groups, names = blob.get("item_groups"), blob.get("item_group_names") or []
    if groups is None:
        raise CLIError("this dataset has no item groups (MovieLens-100k has genres)")
    column = _group_column(args.item_group, names, groups.size(1))
    offset = blob.get("item_offset", blob.get("num_users", 0))  # split files before item_offset: rec splits
    items = offset + groups[:, column].nonzero().squeeze(1)
    ids = torch.isin(store.edge_index, items).any(0).nonzero().squeeze(1)
    if ids.numel() == 0:
        raise CLIError(f"item group {args.item_group} has no training interactions")
    live = ids[store.edge_mask[ids]]  # users who left took some of them already
    if live.numel() == 0:
        raise CLIError(f"every interaction of item group {args.item_group} is already deleted")
    print(f"item group {column}{f' ({names[column]})' if column < len(names) else ''}: "
          f"{items.numel()} items, {live.numel()} training interactions")
    return store.delete_edges(live, layout="ids")


def _group_column(value: str, names: list[str], count: int) -> int:
    """An item group given as a column number or a name (case-insensitive)."""
    lowered = [n.lower() for n in names]
    if value.lower() in lowered:
        return lowered.index(value.lower())
    try:
        column = int(value)
    except ValueError:
        raise CLIError(f"--item-group {value!r} is neither a column number nor a group name; groups: "
                       f"{', '.join(names) or f'0..{count - 1}'}") from None
    if not 0 <= column < count:
        raise CLIError(f"--item-group {column} is out of range 0..{count - 1}")
    return column
