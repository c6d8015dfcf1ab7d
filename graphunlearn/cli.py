"""The ``graphunlearn`` command: link-prediction unlearning on saved stores and checkpoints.

A run folder holds ``store/`` (a saved GraphStore of the training graph, its journal included),
``split.pt`` (validation and test pairs) and model checkpoints. Typical use::

    graphunlearn split --dataset cora --run runs/cora
    graphunlearn train --run runs/cora                       # -> runs/cora/model.pt
    graphunlearn delete --run runs/cora --fraction 0.025 --setting in
    graphunlearn unlearn --run runs/cora --request 0 --method d2dgn   # -> runs/cora/d2dgn-r0.pt
    graphunlearn unlearn --run runs/cora --request 0 --method retrain # -> runs/cora/retrain-r0.pt
    graphunlearn evaluate --run runs/cora --request 0 --model d2dgn-r0.pt --gold retrain-r0.pt
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
from pathlib import Path

import torch
from torch_geometric.data import Data

from . import datasets, evaluate, models, train
from .graph import to_bidirected
from .io import atomic_save, safe_load
from .store import DeletionError, GraphStore
from .unlearning import methods, unlearn


class CLIError(Exception):
    """A user error: printed without a traceback, exit status 2."""


def _run_dir(path: str, must_exist: bool = True) -> Path:
    run = Path(path)
    if must_exist and not (run / "store").is_dir():
        raise CLIError(f"{run} is not a run folder (no {run / 'store'}); create one with `graphunlearn split`")
    return run


def _load(run: Path):
    store = GraphStore.open(run / "store")
    blob = safe_load(run / "split.pt")
    train_data = Data(x=store.x, edge_index=to_bidirected(store.edge_index), num_nodes=store.num_nodes)
    split = datasets.LinkSplit(train_data, blob["val_pos"], blob["val_neg"], blob["test_pos"], blob["test_neg"],
                               seed=blob["seed"], official=blob["official"])
    return store, split


def _checkpoint(run: Path, name: str) -> Path:
    path = Path(name) if Path(name).is_absolute() or Path(name).exists() else run / name
    if not path.is_file():
        raise CLIError(f"checkpoint {path} does not exist")
    return path


def _request(store: GraphStore, request_id: int):
    if not 0 <= request_id < len(store.requests):
        raise CLIError(f"request {request_id} does not exist; the store has requests 0..{len(store.requests) - 1}")
    return store.requests[request_id]


def cmd_split(args) -> None:
    run = _run_dir(args.run, must_exist=False)
    if (run / "store").exists() and not args.overwrite:
        raise CLIError(f"{run} already holds a run; pass --overwrite to replace it")
    data = datasets.load(args.dataset)
    split = datasets.link_split(data, seed=args.seed)
    store = GraphStore(split.train_data)
    store.save(run / "store", overwrite=args.overwrite)
    atomic_save({"val_pos": split.val_pos, "val_neg": split.val_neg, "test_pos": split.test_pos,
                 "test_neg": split.test_neg, "seed": split.seed, "official": split.official,
                 "dataset": args.dataset}, run / "split.pt")
    print(f"{args.dataset}: {split}; store saved to {run / 'store'}")


def cmd_train(args) -> None:
    run = _run_dir(args.run)
    store, split = _load(run)
    torch.manual_seed(args.seed)
    model = models.GNN(store.num_features or None, conv=args.model, num_nodes=store.num_nodes,
                       hidden_channels=args.hidden, out_channels=args.out_channels)
    result = train.link_prediction(model, store, split, epochs=args.epochs, lr=args.lr, seed=args.seed,
                                   progress=not args.quiet, checkpoint=run / args.output)
    print(f"trained {args.model}: {result.epochs_run} epochs, best validation AUROC {result.best_val:.4f} at "
          f"epoch {result.best_epoch}, {result.seconds:.1f} s -> {run / args.output}")


def cmd_delete(args) -> None:
    run = _run_dir(args.run)
    store, split = _load(run)
    try:
        if args.fraction is not None:
            req = store.delete_edges(datasets.forget_edges(split, args.fraction, args.setting, seed=args.seed))
        elif args.edges:
            pairs = [tuple(int(v) for v in p.split("-")) for p in args.edges.split(",")]
            req = store.delete_edges(pairs)
        elif args.nodes:
            req = store.delete_nodes([int(v) for v in args.nodes.split(",")])
        elif args.edge_class is not None:
            req = store.delete_edge_class(args.edge_class)
        elif args.node_class is not None:
            req = store.delete_node_class(args.node_class)
        else:
            raise CLIError("say what to delete: --fraction, --edges, --nodes, --edge-class or --node-class")
    except (DeletionError, ValueError) as exc:
        raise CLIError(str(exc)) from None
    print(req.summary())


def _options(pairs: list[str]) -> dict:
    out = {}
    for item in pairs:
        if "=" not in item:
            raise CLIError(f"--option takes NAME=VALUE, got {item!r}")
        name, value = item.split("=", 1)
        try:
            out[name] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            out[name] = value
    return out


def cmd_unlearn(args) -> None:
    run = _run_dir(args.run)
    store, split = _load(run)
    model = train.load_checkpoint(_checkpoint(run, args.model))
    req = _request(store, args.request)
    try:
        result = unlearn(model, store, req, args.method, split=split, seed=args.seed, progress=not args.quiet,
                         **_options(args.option))
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    out = run / (args.output or f"{args.method}-r{req.id}.pt")
    train.save_checkpoint(out, result.model)
    store.checkpoint()  # persists the store's ledger of what this model forgot
    print(f"{args.method}: {result.seconds:.2f} s -> {out}")


def cmd_evaluate(args) -> None:
    run = _run_dir(args.run)
    store, split = _load(run)
    req = _request(store, args.request)
    model = train.load_checkpoint(_checkpoint(run, args.model))
    gold = train.load_checkpoint(_checkpoint(run, args.gold)) if args.gold else None
    row = evaluate.link_prediction(model, store, split, req, gold=gold, resamples=args.resamples)
    report = evaluate.Report("link", rows={args.model: row}, meta={"request": req.id})
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


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="graphunlearn", description=__doc__.split("\n\n")[0],
                                epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("split", help="load a dataset, make the link split, save the training store")
    s.add_argument("--dataset", default="cora", help=f"one of {', '.join(datasets.DATASETS)} (default: cora)")
    s.add_argument("--run", required=True, help="run folder to create")
    s.add_argument("--seed", type=int, default=42)
    s.add_argument("--overwrite", action="store_true")
    s.set_defaults(fn=cmd_split)

    s = sub.add_parser("train", help="train a link predictor on the store's live graph")
    s.add_argument("--run", required=True)
    s.add_argument("--model", choices=models.CONVS, default="gcn")
    s.add_argument("--epochs", type=int, default=200)
    s.add_argument("--lr", type=float, default=0.01)
    s.add_argument("--hidden", type=int, default=128)
    s.add_argument("--out-channels", type=int, default=64)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--output", default="model.pt", help="checkpoint name in the run folder")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(fn=cmd_train)

    s = sub.add_parser("delete", help="register a deletion request (journaled before it applies)")
    s.add_argument("--run", required=True)
    s.add_argument("--fraction", type=float, help="sample this fraction of training edges (protocol Df)")
    s.add_argument("--setting", choices=["in", "out"], default="in")
    s.add_argument("--edges", help="pairs such as 0-633,5-7")
    s.add_argument("--nodes", help="node ids such as 3,17")
    s.add_argument("--edge-class", type=int)
    s.add_argument("--node-class", type=int)
    s.add_argument("--seed", type=int, default=0)
    s.set_defaults(fn=cmd_delete)

    s = sub.add_parser("unlearn", help="make a checkpoint forget a registered request")
    s.add_argument("--run", required=True)
    s.add_argument("--request", type=int, required=True)
    s.add_argument("--method", default="d2dgn", help="see `graphunlearn methods`")
    s.add_argument("--model", default="model.pt", help="checkpoint to start from")
    s.add_argument("--option", action="append", default=[], metavar="NAME=VALUE", help="method option")
    s.add_argument("--output", help="checkpoint name (default: METHOD-rREQUEST.pt)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(fn=cmd_unlearn)

    s = sub.add_parser("evaluate", help="link-prediction metrics of a checkpoint after a request")
    s.add_argument("--run", required=True)
    s.add_argument("--request", type=int, required=True)
    s.add_argument("--model", required=True)
    s.add_argument("--gold", help="a retrained checkpoint, for the retrain gap")
    s.add_argument("--resamples", type=int, default=500)
    s.add_argument("--json", help="write the report there")
    s.set_defaults(fn=cmd_evaluate)

    s = sub.add_parser("methods", help="list the unlearning methods and their options")
    s.set_defaults(fn=cmd_methods)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.fn(args)
    except (CLIError, FileNotFoundError, FileExistsError) as exc:
        print(f"graphunlearn {args.command}: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
