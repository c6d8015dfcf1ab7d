"""``graphunlearn train``: train the run's task model on the store's live graph."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from .. import distributed as dist
from .. import train
from ..store import GraphStore
from ..tasks import Task, tasks
from .common import CLIError, _opened, _output, _run_dir, positive_float, positive_int, seed_int


def _backbones() -> tuple[str, ...]:
    """Every registered task's backbones, each once, in registration order."""
    return tuple(dict.fromkeys(b for t in tasks().values() for b in t.backbones))


def _per_task(describe) -> str:
    return "; ".join(f"{t.name}: {describe(t)}" for t in tasks().values())


def add_parser(subparsers) -> None:
    s = subparsers.add_parser("train", help="train the run's task model on the store's live graph")
    s.add_argument("--run", "--run-dir", dest="run", required=True, help="the run folder (spell it --run-dir under "
                   "torchrun, whose parser takes --run for an abbreviation of its --run-path)")
    s.add_argument("--model", choices=_backbones(),
                   help="the task's backbones, its first the default: "
                   + _per_task(lambda t: ", ".join(t.backbones)))
    s.add_argument("--epochs", type=positive_int, help="at most this many epochs; default: the task's recipe ("
                   + _per_task(lambda t: str(t.recipe.get("epochs"))) + ")")
    s.add_argument("--lr", type=positive_float, help="default: the task's recipe for the model ("
                   + _per_task(lambda t: str(t.recipe.get("lr")) + "".join(
                       f", {b} {r['lr']}" for b, r in t.backbone_recipes.items() if "lr" in r)) + ")")
    s.add_argument("--batch-size", type=positive_int, help="mini-batches of this many training units (link: live "
                   "edges, node: training nodes, rec: interactions; per process under torchrun); default: the "
                   "task's recipe (" + _per_task(lambda t: str(t.recipe.get("batch_size"))) + ")")
    s.add_argument("--num-neighbors", type=_fanout_list, metavar="K1,K2,...",
                   help="train on sampled computation graphs with these per-hop fanouts (-1: all neighbours); "
                   "needs --batch-size; default: the whole graph every step")
    s.add_argument("--steps-per-epoch", type=positive_int, help="at most this many mini-batches per epoch")
    s.add_argument("--hidden", type=positive_int, default=128)
    s.add_argument("--out-channels", type=positive_int, default=64)
    s.add_argument("--seed", type=seed_int, default=0)
    s.add_argument("--output", default="model.pt", help="checkpoint name in the run folder")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(fn=run)


def _fanout_list(text: str) -> list[int]:
    """``10,5`` as ``[10, 5]`` (``-1``: all neighbours of that hop)."""
    try:
        values = [int(t) for t in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be per-hop fanouts such as 10,5, got {text!r}") from None
    if any(v < -1 for v in values):
        raise argparse.ArgumentTypeError(f"fanouts must be -1 (all) or >= 0, got {text!r}")
    return values


def run(args) -> None:
    run = _run_dir(args.run)
    output = _output(run, args.output)
    with _opened(run) as (store, split, task):
        _train(args, run, output, store, split, task)


def _train(args, run: Path, output: Path, store: GraphStore, split, task: Task) -> None:
    torch.manual_seed(args.seed)
    name = args.model or task.backbones[0]
    if name not in task.backbones:
        raise CLIError(f"--model {name!r} does not fit task {task.name!r}; choose one of {', '.join(task.backbones)}")
    model = task.build_model(name, store, split, hidden_channels=args.hidden, out_channels=args.out_channels)
    model = model.to(store.device)  # the store's device: this rank's GPU in a data-parallel job under NCCL
    result = train.fit(model, store, split, task=task, epochs=args.epochs, lr=args.lr, seed=args.seed,
                       batch_size=args.batch_size, num_neighbors=args.num_neighbors,
                       steps_per_epoch=args.steps_per_epoch, progress=not args.quiet, checkpoint=output)
    if not dist.is_main():  # rank 0 wrote the checkpoint and speaks for the job
        return
    if result.best_val is not None:  # the task validates: its score selected the model
        how = f"best validation score {result.best_val:.4f} at epoch {result.best_epoch}"
    else:  # no validation data (recommendation): a fixed number of epochs
        how = f"final training loss {result.history[-1]['loss']:.4f}" if result.history else "no validation"
    ranks = f" on {dist.world_size()} processes" if dist.is_active() else ""
    print(f"trained {name}{ranks}: {result.epochs_run} epochs, {how}, {result.seconds:.1f} s -> {output}")
