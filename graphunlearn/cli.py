"""The ``graphunlearn`` command: unlearning on saved stores and checkpoints, and the benchmark runner.

A run folder holds ``store/`` (a saved GraphStore of the training graph, its journal included),
``split.pt`` (the task and its validation/test data) and model checkpoints. Tasks: ``link`` (link
prediction), ``node`` (node classification), ``rec`` (recommendation; the default for user-item datasets).
Typical use::

    graphunlearn split --dataset cora --run runs/cora                 # --task link (default)
    graphunlearn train --run runs/cora                                # -> runs/cora/model.pt
    graphunlearn delete --run runs/cora --fraction 0.025 --setting in # request 0
    graphunlearn unlearn --run runs/cora --request 0 --method d2dgn   # -> runs/cora/d2dgn-r0.pt
    graphunlearn unlearn --run runs/cora --request 0 --method retrain # -> runs/cora/retrain-r0.pt
    graphunlearn evaluate --run runs/cora --request 0 --model d2dgn-r0.pt --gold retrain-r0.pt

    graphunlearn split --dataset cora --task node --run runs/node     # node deletion
    graphunlearn delete --run runs/node --fraction 0.05               # 5% of the training nodes

    graphunlearn split --dataset movielens-100k --run runs/ml         # recommendation
    graphunlearn train --run runs/ml --model lightgcn
    graphunlearn delete --run runs/ml --item-group Horror             # licence revoked for a genre
    graphunlearn unlearn --run runs/ml --request 0 --method reverse_bpr

    graphunlearn bench --list                                         # benchmark configurations
    graphunlearn bench --config smoke --out results/smoke
"""

from __future__ import annotations

import argparse
import ast
import json
import math
import os
import sys
import traceback
from contextlib import contextmanager
from pathlib import Path

import torch
from torch_geometric.data import Data

from . import datasets, evaluate, models, train
from .graph import to_bidirected
from .io import CorruptFileError, StoreLockedError, atomic_save, safe_load
from .store import DeletionError, GraphStore
from .unlearning import methods, unlearn


class CLIError(Exception):
    """A user error: printed without a traceback, exit status 2."""


# The library's documented user errors: each is printed as one line with exit status 2. Anything else is a
# bug and keeps its traceback. StoreLockedError: another process holds the run's store open for writing.
USER_ERRORS: tuple[type[BaseException], ...] = (
    CLIError, CorruptFileError, DeletionError, ValueError, TypeError, FileNotFoundError, FileExistsError,
    NotADirectoryError, IsADirectoryError, PermissionError, StoreLockedError, FloatingPointError,
)


# ----------------------------------------------------------------------------------------- argument types
# argparse reports an ArgumentTypeError as "argument --x: <message>", so each message says what the value
# must be; a plain ValueError would only say "invalid <function name> value".

def positive_int(text: str) -> int:
    value = _int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text!r}")
    return value


def nonnegative_int(text: str) -> int:
    value = _int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {text!r}")
    return value


def seed_int(text: str) -> int:
    value = _int(text)
    if not 0 <= value < 2 ** 63:
        raise argparse.ArgumentTypeError(f"must be an integer seed in [0, 2**63), got {text!r}")
    return value


def positive_float(text: str) -> float:
    value = _float(text)
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text!r}")
    return value


def fraction(text: str) -> float:
    value = _float(text)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must be a fraction in (0, 1], got {text!r}")
    return value


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None


def _id_list(option: str, text: str) -> list[int]:
    """``3,17`` as ``[3, 17]``; anything else is a CLIError naming the option and the bad item."""
    items = [t.strip() for t in text.split(",")]
    for item in items:
        if not item.lstrip("-").isdigit():
            raise CLIError(f"{option} takes comma-separated integer ids such as 3,17; {item!r} is not one")
    return [int(t) for t in items]


def _pair_list(text: str) -> list[tuple[int, int]]:
    pairs = []
    for item in text.split(","):
        ends = item.strip().split("-")
        if len(ends) != 2 or not all(e.strip().isdigit() for e in ends):
            raise CLIError(f"--edges takes pairs of node ids such as 0-633,5-7; {item.strip()!r} is not one")
        pairs.append((int(ends[0]), int(ends[1])))
    return pairs


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (``graphunlearn <cmd>: error: ...``) like every other error."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def _run_dir(path: str, must_exist: bool = True) -> Path:
    run = Path(path)
    # a run folder under a file (``--run notes.txt/run``) can neither exist nor be created: say so first
    for parent in [run, *run.parents]:
        if parent.exists():
            if not parent.is_dir():
                raise CLIError(f"--run {run}: {parent} is a file, not a folder")
            break
    if must_exist and not (run / "store").is_dir():
        raise CLIError(f"{run} is not a run folder (no {run / 'store'}); create one with `graphunlearn split`")
    return run


REC_MODELS = {"lightgcn": models.LightGCN, "mf": models.MF}


@contextmanager
def _opened(run: Path, read_only: bool = False):
    """The run's store, split and task; the store is closed (its writer lock released) on leaving."""
    blob = _split_blob(run)
    store = GraphStore.open(run / "store", read_only=read_only)
    try:
        yield (store, *_split(store, blob))
    finally:
        store.close()


_SPLIT_KEYS = {"node": ("train_idx", "val_idx", "test_idx", "official"),
               "rec": ("train_pos", "test_pos", "num_users", "num_items", "official"),
               "link": ("val_pos", "val_neg", "test_pos", "test_neg", "seed", "official")}


def _split_blob(run: Path) -> dict:
    path = run / "split.pt"
    blob = safe_load(path)
    task = blob.get("task", "link") if isinstance(blob, dict) else None
    if task not in _SPLIT_KEYS:
        raise CLIError(f"{path}: not a split file written by `graphunlearn split` (no known task)")
    missing = [k for k in _SPLIT_KEYS[task] if k not in blob]
    if missing:
        raise CLIError(f"{path}: the {task} split lacks {', '.join(missing)}; recreate it with `graphunlearn split`")
    return blob


def _split(store: GraphStore, blob: dict):
    """The split object and task that the split file ``blob`` describes, over ``store``'s graph."""
    task = blob.get("task", "link")
    if task == "node":
        return datasets.NodeSplit(blob["train_idx"], blob["val_idx"], blob["test_idx"], blob["official"]), task
    train_data = Data(x=store.x, edge_index=to_bidirected(store.edge_index), num_nodes=store.num_nodes)
    if blob.get("dataset"):
        train_data.name = blob["dataset"]
    if task == "rec":
        split = datasets.RecSplit(train_data, blob["train_pos"], blob["test_pos"], blob["num_users"],
                                  blob["num_items"], blob["official"])
        return split, task
    split = datasets.LinkSplit(train_data, blob["val_pos"], blob["val_neg"], blob["test_pos"], blob["test_neg"],
                               seed=blob["seed"], official=blob["official"])
    return split, task


def _checkpoint(run: Path, name: str) -> Path:
    path = Path(name) if Path(name).is_absolute() or Path(name).exists() else run / name
    if not path.is_file():
        raise CLIError(f"checkpoint {path} does not exist")
    return path


def _load_model(run: Path, name: str):
    """The checkpoint ``name`` (in the run folder, or a path). A damaged file is a CorruptFileError from
    ``safe_load``; a readable torch file that is not a model checkpoint is said to be one here."""
    path = _checkpoint(run, name)
    try:
        return train.load_checkpoint(path)
    except (KeyError, AttributeError, RuntimeError) as exc:  # a dict without our keys, or weights of another shape
        raise CLIError(f"checkpoint {path}: not a model checkpoint written by graphunlearn "
                       f"({type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''})") from None


def _output(run: Path, name: str, option: str = "--output") -> Path:
    """Where a checkpoint named ``name`` goes: in the run folder, never over a folder."""
    if not name or name.endswith(("/", os.sep)):
        raise CLIError(f"{option} must name a file, got {name!r}")
    out = run / name
    if out.is_dir():
        raise CLIError(f"{option} {out} is a folder; name a checkpoint file")
    return out


def _request(store: GraphStore, request_id: int):
    if not store.requests:
        raise CLIError(f"request {request_id} does not exist; the store has no requests yet (register one with "
                       "`graphunlearn delete`)")
    if not 0 <= request_id < len(store.requests):
        raise CLIError(f"request {request_id} does not exist; the store has requests 0..{len(store.requests) - 1}")
    return store.requests[request_id]


def cmd_split(args) -> None:
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


def cmd_train(args) -> None:
    run = _run_dir(args.run)
    output = _output(run, args.output)
    with _opened(run) as (store, split, task):
        _train(args, run, output, store, split, task)


def _train(args, run: Path, output: Path, store: GraphStore, split, task: str) -> None:
    torch.manual_seed(args.seed)
    kinds = tuple(REC_MODELS) if task == "rec" else models.CONVS
    name = args.model or kinds[0]
    if name not in kinds:
        raise CLIError(f"--model {name!r} does not fit task {task!r}; choose one of {', '.join(kinds)}")
    common = dict(epochs=args.epochs, seed=args.seed, progress=not args.quiet, checkpoint=output)
    if task == "rec":
        model = REC_MODELS[name](split.num_users, split.num_items)
        result = train.recommendation(model, store, split, lr=args.lr or 0.005, **common)
        print(f"trained {name}: {result.epochs_run} epochs, final BPR loss {result.history[-1]['loss']:.4f}, "
              f"{result.seconds:.1f} s -> {output}")
        return
    if task == "node":
        model = models.GNN(store.num_features, conv=name, hidden_channels=args.hidden,
                           out_channels=int(store.y.max()) + 1)
        result = train.node_classification(model, store, split, lr=args.lr or 0.01, **common)
        what = "accuracy"
    else:
        model = models.GNN(store.num_features or None, conv=name, num_nodes=store.num_nodes,
                           hidden_channels=args.hidden, out_channels=args.out_channels)
        result = train.link_prediction(model, store, split, lr=args.lr or 0.01, **common)
        what = "AUROC"
    print(f"trained {name}: {result.epochs_run} epochs, best validation {what} {result.best_val:.4f} at "
          f"epoch {result.best_epoch}, {result.seconds:.1f} s -> {output}")


_DELETE_WAYS = ("fraction", "features", "edges", "nodes", "edge_class", "node_class", "item_group")


def cmd_delete(args) -> None:
    run = _run_dir(args.run)
    given = [f"--{w.replace('_', '-')}" for w in _DELETE_WAYS if getattr(args, w) is not None]
    if not given:
        raise CLIError("say what to delete: --fraction, --edges, --nodes, --features, --edge-class, --node-class "
                       "or --item-group")
    if len(given) > 1:
        raise CLIError(f"one deletion per request: give one of {', '.join(given)}, not several")
    with _opened(run) as (store, split, task):
        print(_delete(args, run, store, split, task).summary())


def _delete(args, run: Path, store: GraphStore, split, task: str):
    if args.item_group is not None:
        if task != "rec":
            raise CLIError("--item-group is for recommendation runs (split --task rec)")
        blob = safe_load(run / "split.pt")
        groups, names = blob.get("item_groups"), blob.get("item_group_names") or []
        if groups is None:
            raise CLIError("this dataset has no item groups (MovieLens-100k has genres)")
        column = _group_column(args.item_group, names, groups.size(1))
        items = split.num_users + groups[:, column].nonzero().squeeze(1)
        pairs = datasets.item_group_interactions(split, items)
        if pairs.size(1) == 0:
            raise CLIError(f"item group {args.item_group} has no training interactions")
        ids = store.edge_ids(pairs, layout="edge_index")
        live = ids[store.edge_mask[ids]]  # users who left took some of them already
        if live.numel() == 0:
            raise CLIError(f"every interaction of item group {args.item_group} is already deleted")
        pairs = store.edge_index[:, live]
        print(f"item group {column}{f' ({names[column]})' if column < len(names) else ''}: "
              f"{items.numel()} items, {pairs.size(1)} training interactions")
        req = store.delete_edges(live, layout="ids")
    elif args.fraction is not None:
        if task == "node":
            req = store.delete_nodes(datasets.forget_nodes(split, fraction=args.fraction, seed=args.seed))
        elif task == "rec":
            forget = datasets.forget_recommendation(split, args.kind, args.fraction, seed=args.seed)
            req = (store.delete_nodes(forget) if args.kind == "user"
                   else store.delete_edges(forget, layout="edge_index"))
        else:
            req = store.delete_edges(datasets.forget_edges(split, args.fraction, args.setting, seed=args.seed),
                                     layout="edge_index")
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


def _options(pairs: list[str], method: str) -> dict:
    """``--option NAME=VALUE`` pairs as keyword arguments. A value is read as a Python literal (``4``,
    ``0.5``, ``True``, ``'gcn'``) and else kept as the text; the library checks each option's type and range
    and names the option it refuses. Unknown names are refused here, before any file is opened."""
    known = methods()[method].options
    out = {}
    for item in pairs:
        name, eq, value = item.partition("=")
        name = name.strip()
        if not eq or not name.isidentifier():
            raise CLIError(f"--option takes NAME=VALUE, got {item!r}")
        if name not in known:
            raise CLIError(f"--option {name}: method {method!r} has no such option; its options: "
                           f"{', '.join(known) or 'none'}")
        if name in out:
            raise CLIError(f"--option {name} is given twice")
        try:
            out[name] = ast.literal_eval(value.strip())
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            out[name] = value
    return out


def cmd_unlearn(args) -> None:
    run = _run_dir(args.run)
    if args.method not in methods():
        raise CLIError(f"unknown method {args.method!r}; see `graphunlearn methods`: {', '.join(sorted(methods()))}")
    options = _options(args.option, args.method)
    if args.output is not None:
        _output(run, args.output)
    with _opened(run) as (store, split, _):
        model = _load_model(run, args.model)
        req = _request(store, args.request)
        out = _output(run, args.output or f"{args.method}-r{req.id}.pt")
        result = unlearn(model, store, req, args.method, split=split, seed=args.seed, progress=not args.quiet,
                         **options)
        train.save_checkpoint(out, result.model)
        store.checkpoint()  # persists the store's ledger of what this model forgot
    print(f"{args.method}: {result.seconds:.2f} s, peak +{result.peak_mb:.0f} MiB -> {out}")


def cmd_evaluate(args) -> None:
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


def cmd_methods(args) -> None:
    for name, m in sorted(methods().items()):
        summary = m.doc.splitlines()[0] if m.doc else ""
        print(f"{name:16s} tasks={','.join(m.tasks):14s} {summary}")
        print(f"{'':16s} options: {json.dumps(m.options)}")


def cmd_bench(args) -> None:
    from . import bench

    if args.list or not args.config:
        print("\n".join(bench.describe()))
        if not args.list:
            print("choose one with --config NAME")
        return
    if args.config not in bench.CONFIGS:
        raise CLIError(f"unknown configuration {args.config!r}; known: {', '.join(bench.CONFIGS)}")
    out = Path(args.out or Path("results") / f"unlearning-{args.config}")
    try:
        md = bench.run_config(args.config, out, progress=not args.quiet)
    except (ValueError, RuntimeError, OSError) as exc:  # finished cells stay cached; a rerun resumes
        raise CLIError(f"{args.config}: {exc}") from None
    print(md.read_text())
    print(f"wrote {out / 'results.csv'}, {out / 'results.json'}, {md} and {out / 'plots.png'}")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="graphunlearn", description=__doc__.split("\n\n")[0],
                                epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("split", help="load a dataset, make the task's split, save the training store")
    s.add_argument("--dataset", default="cora", help=f"one of {', '.join(datasets.DATASETS)} (default: cora)")
    s.add_argument("--task", choices=["link", "node", "rec"],
                   help="default: rec for user-item datasets, else link")
    s.add_argument("--run", required=True, help="run folder to create")
    s.add_argument("--seed", type=seed_int, default=42)
    s.add_argument("--overwrite", action="store_true")
    s.set_defaults(fn=cmd_split)

    s = sub.add_parser("train", help="train the run's task model on the store's live graph")
    s.add_argument("--run", required=True)
    s.add_argument("--model", choices=models.CONVS + tuple(REC_MODELS),
                   help="link/node: gcn, sage, gin, gat (default gcn); rec: lightgcn (default), mf")
    s.add_argument("--epochs", type=positive_int, default=200)
    s.add_argument("--lr", type=positive_float, help="default 0.01 (rec: 0.005)")
    s.add_argument("--hidden", type=positive_int, default=128)
    s.add_argument("--out-channels", type=positive_int, default=64)
    s.add_argument("--seed", type=seed_int, default=0)
    s.add_argument("--output", default="model.pt", help="checkpoint name in the run folder")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(fn=cmd_train)

    s = sub.add_parser("delete", help="register a deletion request (journaled before it applies)")
    s.add_argument("--run", required=True)
    s.add_argument("--fraction", type=fraction, help="sample this fraction as the forget set (protocol): link: of "
                   "training edges; node: of training nodes; rec: of interactions or users (see --kind)")
    s.add_argument("--setting", choices=["in", "out"], default="in", help="link: where Df lies (default in)")
    s.add_argument("--kind", choices=list(datasets.REC_KINDS), default="interaction",
                   help="rec: what --fraction samples (default interaction)")
    s.add_argument("--item-group", metavar="GROUP",
                   help="rec: every interaction with the items of this group: a MovieLens genre name such as "
                   "Horror, or its column number")
    s.add_argument("--features", help="erase all feature values of these node ids, such as 3,17")
    s.add_argument("--edges", help="pairs such as 0-633,5-7")
    s.add_argument("--nodes", help="node ids such as 3,17")
    s.add_argument("--edge-class", type=nonnegative_int)
    s.add_argument("--node-class", type=nonnegative_int)
    s.add_argument("--seed", type=seed_int, default=0)
    s.set_defaults(fn=cmd_delete)

    s = sub.add_parser("unlearn", help="make a checkpoint forget a registered request")
    s.add_argument("--run", required=True)
    s.add_argument("--request", type=nonnegative_int, required=True)
    s.add_argument("--method", default="d2dgn", help="see `graphunlearn methods`")
    s.add_argument("--model", default="model.pt", help="checkpoint to start from")
    s.add_argument("--option", action="append", default=[], metavar="NAME=VALUE", help="method option")
    s.add_argument("--output", help="checkpoint name (default: METHOD-rREQUEST.pt)")
    s.add_argument("--seed", type=seed_int, default=0)
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(fn=cmd_unlearn)

    s = sub.add_parser("evaluate", help="the task's metrics of a checkpoint after a request")
    s.add_argument("--run", required=True)
    s.add_argument("--request", type=nonnegative_int, required=True)
    s.add_argument("--model", required=True)
    s.add_argument("--gold", help="a retrained checkpoint, for the retrain gap")
    s.add_argument("--original", default=None, help="node task: the model before unlearning, for the MIA "
                   "(e.g. model.pt)")
    s.add_argument("--resamples", type=positive_int, default=500)
    s.add_argument("--json", help="write the report there")
    s.set_defaults(fn=cmd_evaluate)

    s = sub.add_parser("methods", help="list the unlearning methods and their options")
    s.set_defaults(fn=cmd_methods)

    s = sub.add_parser("bench", help="run (or resume) a benchmark configuration")
    s.add_argument("--config", help="configuration name (see --list)")
    s.add_argument("--out", help="results folder (default: results/unlearning-CONFIG)")
    s.add_argument("--list", action="store_true", help="list the configurations")
    s.add_argument("--quiet", action="store_true", help="no per-epoch progress bars")
    s.set_defaults(fn=cmd_bench)
    return p


def _message(exc: BaseException) -> str:
    """One line for a user error: an OSError as "what: path", anything else as its message's first line."""
    if isinstance(exc, OSError) and exc.filename is not None:
        text = f"{exc.strerror or type(exc).__name__}: {exc.filename}"
    else:
        text = str(exc) or type(exc).__name__
    return " ".join(text.split())  # one line, whatever the message held


def main(argv: list[str] | None = None) -> int:
    """Run one command and return its exit status: 0, or 2 for a user error (a bad argument, or one of
    ``USER_ERRORS``), said in one line on stderr (with the traceback too when ``GRAPHUNLEARN_DEBUG`` is set).
    ``--help`` prints and returns 0."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # argparse's usage errors and --help: a status, for in-process callers too
        return exc.code if isinstance(exc.code, int) else 2
    try:
        args.fn(args)
    except USER_ERRORS as exc:
        # The library refuses bad input with ValueError/TypeError naming it; a bug may raise them too, so
        # GRAPHUNLEARN_DEBUG=1 shows the traceback behind the one line.
        if os.environ.get("GRAPHUNLEARN_DEBUG"):
            traceback.print_exc()
        print(f"graphunlearn {args.command}: error: {_message(exc)}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
