"""``graphunlearn train``: train the run's task model on the store's live graph."""

from __future__ import annotations

from pathlib import Path

import torch

from .. import models, train
from ..store import GraphStore
from .common import CLIError, _opened, _output, _run_dir, positive_float, positive_int, seed_int

REC_MODELS = {"lightgcn": models.LightGCN, "mf": models.MF}


def add_parser(subparsers) -> None:
    s = subparsers.add_parser("train", help="train the run's task model on the store's live graph")
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
    s.set_defaults(fn=run)


def run(args) -> None:
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
