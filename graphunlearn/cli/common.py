"""What the ``graphunlearn`` subcommands share: the user error type, argument types, the run folder and its
split file, checkpoint paths, and the one-line error message."""

from __future__ import annotations

import argparse
import math
import os
from contextlib import contextmanager
from pathlib import Path

from .. import distributed as dist
from ..certificate import KEY_ENV, CertificateError, load_key
from ..io import CorruptFileError, StoreLockedError, safe_load
from ..models import card_of, load_model
from ..store import DeletionError, GraphStore
from ..tasks import Task, get_task, tasks


class CLIError(Exception):
    """A user error: printed without a traceback, exit status 2."""


# The library's documented user errors: each is printed as one line with exit status 2. Anything else is a
# bug and keeps its traceback. StoreLockedError: another process holds the run's store open for writing.
USER_ERRORS: tuple[type[BaseException], ...] = (
    CLIError, CorruptFileError, CertificateError, DeletionError, ValueError, TypeError, FileNotFoundError,
    FileExistsError, NotADirectoryError, IsADirectoryError, PermissionError, StoreLockedError, FloatingPointError,
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


# ----------------------------------------------------------------------------------- run folder and split
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


@contextmanager
def _opened(run: Path, read_only: bool = False):
    """The run's store, split and task (a :class:`~graphunlearn.tasks.Task`); the store is closed (its writer
    lock released) on leaving. In a data-parallel job, rank 0 opens it for writing and the others read-only
    (:func:`graphunlearn.distributed.open_store`)."""
    blob = _split_blob(run)
    if dist.is_active() and not read_only:
        store = dist.open_store(run / "store")
    else:
        store = GraphStore.open(run / "store", read_only=read_only)
    try:
        yield (store, *_split(store, blob))
    finally:
        store.close()


#: the task of a split file written before split files recorded their task (link prediction was the only one)
_LEGACY_SPLIT_TASK = "link"


def _split_blob(run: Path) -> dict:
    """The run's split file, checked: a dict naming a registered task and holding that task's split keys."""
    path = run / "split.pt"
    blob = safe_load(path)
    name = blob.get("task", _LEGACY_SPLIT_TASK) if isinstance(blob, dict) else None
    if not isinstance(name, str) or name not in tasks():
        raise CLIError(f"{path}: not a split file written by `graphunlearn split` (no known task)")
    missing = [k for k in get_task(name).split_keys() if k not in blob]
    if missing:
        raise CLIError(f"{path}: the {name} split lacks {', '.join(missing)}; recreate it with `graphunlearn split`")
    return blob


def _split(store: GraphStore, blob: dict) -> tuple[object, Task]:
    """The split object and task that the split file ``blob`` describes, over ``store``'s graph."""
    task = get_task(blob.get("task", _LEGACY_SPLIT_TASK), where="split file")
    return task.split_from_dict(blob, store), task


# ------------------------------------------------------------------------------ checkpoints and requests
def _checkpoint(run: Path, name: str) -> Path:
    path = Path(name) if Path(name).is_absolute() or Path(name).exists() else run / name
    if not path.is_file():
        raise CLIError(f"checkpoint {path} does not exist")
    return path


def _load_model(run: Path, name: str, task: Task | None = None):
    """The checkpoint ``name`` (in the run folder, or a path), rebuilt from its card
    (:func:`graphunlearn.load_model`). A damaged file, or a readable torch file that is not a model checkpoint,
    is a CorruptFileError naming the file; with ``task``, a model whose card names another task is refused."""
    path = _checkpoint(run, name)
    model = load_model(path)
    card = card_of(model)
    if task is not None and card is not None and card.task is not None and card.task != task.name:
        raise CLIError(f"checkpoint {path} is a {card.task} model; this run's task is {task.name}")
    return model


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


def signing_key(key_file: str | None) -> bytes | None:
    """The certificate signing key: the file given, else ``$GRAPHUNLEARN_CERT_KEY`` when set, else ``None``
    (certificates unsigned)."""
    if key_file is None and os.environ.get(KEY_ENV) is None:
        return None
    return load_key(key_file)


# ------------------------------------------------------------------------------------------------ errors
def _message(exc: BaseException) -> str:
    """One line for a user error: an OSError as "what: path", anything else as its message's first line."""
    if isinstance(exc, OSError) and exc.filename is not None:
        text = f"{exc.strerror or type(exc).__name__}: {exc.filename}"
    else:
        text = str(exc) or type(exc).__name__
    return " ".join(text.split())  # one line, whatever the message held
