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
    graphunlearn verify runs/cora/d2dgn-r0.cert.json --run runs/cora  # recompute what its certificate says
    graphunlearn compact --run runs/cora                              # erase for good; redact certificates
    graphunlearn stream --run runs/cora --requests requests.jsonl --budget 0.05   # one step per request

    graphunlearn split --dataset cora --task node --run runs/node     # node deletion
    graphunlearn delete --run runs/node --fraction 0.05               # 5% of the training nodes

    graphunlearn split --dataset movielens-100k --run runs/ml         # recommendation
    graphunlearn train --run runs/ml --model lightgcn
    graphunlearn delete --run runs/ml --item-group Horror             # licence revoked for a genre
    graphunlearn unlearn --run runs/ml --request 0 --method reverse_bpr

    graphunlearn bench --list                                         # benchmark configurations
    graphunlearn bench --config smoke --out results/smoke

Data-parallel (train, unlearn, bench) under torchrun, one process per GPU (or CPU share)::

    torchrun --nproc_per_node=2 -m graphunlearn.cli train --run runs/cora --batch-size 1024 --num-neighbors 10,10
    torchrun --nproc_per_node=2 -m graphunlearn.cli unlearn --run runs/cora --request 0 --method d2dgn
"""

# One module per subcommand (``add_parser(subparsers)`` and ``run(args)``); what they share is in ``common``.

from __future__ import annotations

import argparse
import os
import sys
import traceback

from .. import distributed as dist
from . import bench, compact, delete, evaluate, methods, split, stream, train, unlearn, verify
from .common import USER_ERRORS, CLIError, _message, _Parser

__all__ = ["CLIError", "USER_ERRORS", "build_parser", "main"]

#: the subcommands, in the order ``--help`` lists them
_COMMANDS = (split, train, delete, unlearn, stream, evaluate, verify, compact, methods, bench)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="graphunlearn", description=__doc__.split("\n\n")[0],
                epilog=__doc__.split("\n\n", 1)[1],
                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    for command in _COMMANDS:
        command.add_parser(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    """Run one command and return its exit status: 0, 1 when ``verify`` finds a certificate that does not
    verify, or 2 for a user error (a bad argument, or one of
    ``USER_ERRORS``), said in one line on stderr (with the traceback too when ``GRAPHUNLEARN_DEBUG`` is set).
    ``--help`` prints and returns 0."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # argparse's usage errors and --help: a status, for in-process callers too
        return exc.code if isinstance(exc.code, int) else 2
    try:
        joined = _join_process_group(args.command)
        try:
            status = args.fn(args)
        finally:
            if joined:
                dist.shutdown()
    except USER_ERRORS as exc:
        # The library refuses bad input with ValueError/TypeError naming it; a bug may raise them too, so
        # GRAPHUNLEARN_DEBUG=1 shows the traceback behind the one line.
        if os.environ.get("GRAPHUNLEARN_DEBUG"):
            traceback.print_exc()
        print(f"graphunlearn {args.command}: error: {_message(exc)}", file=sys.stderr)
        return 2
    return status if isinstance(status, int) else 0


#: the subcommands that run data-parallel under torchrun (every rank runs them; rank 0 writes)
DISTRIBUTED = ("train", "unlearn", "bench")


def _join_process_group(command: str) -> bool:
    """Under ``torchrun`` with more than one rank (``WORLD_SIZE`` > 1), join the process group
    (:func:`graphunlearn.distributed.init`: NCCL on GPUs, gloo on CPUs) for the commands that run
    data-parallel, and refuse the others, which change or read files one process at a time. Returns whether
    this call joined (and so leaves at the end)."""
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        raise CLIError(f"WORLD_SIZE={os.environ['WORLD_SIZE']!r} is not a number of processes") from None
    if world <= 1 or dist.is_active():
        return False
    if command not in DISTRIBUTED:
        raise CLIError(f"`graphunlearn {command}` runs in one process; launch it without torchrun (data-parallel "
                       f"commands: {', '.join(DISTRIBUTED)})")
    timeout = os.environ.get("GRAPHUNLEARN_DIST_TIMEOUT")
    try:
        seconds = float(timeout) if timeout else dist.DEFAULT_TIMEOUT
    except ValueError:
        raise CLIError(f"GRAPHUNLEARN_DIST_TIMEOUT={timeout!r} is not a number of seconds") from None
    dist.init(timeout=seconds)
    return True
