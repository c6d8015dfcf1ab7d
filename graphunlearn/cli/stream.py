"""``graphunlearn stream``: apply a file of deletion requests to a checkpoint, one unlearning per step, with a
policy for retraining from scratch; each step's certificate is written under the run folder."""

from __future__ import annotations

import argparse
import datetime as dt
import math
from pathlib import Path

from ..certify.stream import RetrainPolicy, StreamError, read_requests, stream
from ..models import save_model
from ..unlearning import methods
from .common import (
    CLIError,
    _load_model,
    _opened,
    _output,
    _run_dir,
    fraction,
    positive_int,
    seed_int,
    signing_key,
)
from .unlearn import _options


def add_parser(subparsers) -> None:
    s = subparsers.add_parser("stream", help="apply a file of deletion requests, one unlearning per step")
    s.add_argument("--run", required=True)
    s.add_argument("--requests", required=True, metavar="FILE",
                   help='JSON lines, one request each: {"kind": "edges", "edges": [[u, v]], "ref": "..."}')
    s.add_argument("--method", default="d2dgn", help="see `graphunlearn methods`")
    s.add_argument("--model", default="model.pt", help="checkpoint to start from")
    s.add_argument("--batch", type=positive_int, default=1, help="requests per step (default 1)")
    s.add_argument("--budget", type=fraction, default=None,
                   help="retrain once more than this fraction of the training units was deleted since the last "
                   "retrain")
    s.add_argument("--max-requests", type=positive_int, default=None,
                   help="retrain once more than this many requests were unlearned since the last retrain")
    s.add_argument("--max-val-drop", type=_drop, default=None,
                   help="retrain at the step after one whose validation score fell more than this many points "
                   "(absolute, e.g. 0.02) below the start's or the last retrain's")
    s.add_argument("--option", action="append", default=[], metavar="NAME=VALUE", help="method option")
    s.add_argument("--output", help="final checkpoint name (default: stream-TIMESTAMP.pt)")
    s.add_argument("--seed", type=seed_int, default=0)
    s.add_argument("--key-file", help="sign every step's certificate with this key (default: "
                   "$GRAPHUNLEARN_CERT_KEY when set; else they are unsigned)")
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(fn=run)


def _drop(text: str) -> float:
    """``--max-val-drop``: a finite number >= 0 (absolute points of the validation score)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not (value >= 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text!r}")
    return value


def _certificate_folder(run: Path, out: Path) -> Path:
    """``RUN/certificates/stream-<output stem>/``; refused when it already holds files (an audit trail is never
    overwritten)."""
    stem = out.stem if out.stem.startswith("stream") else f"stream-{out.stem}"
    folder = run / "certificates" / stem
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise CLIError(f"{folder} already holds certificates of another stream; choose another --output")
    return folder


def run(args) -> None:
    run = _run_dir(args.run)
    if args.method not in methods():
        raise CLIError(f"unknown method {args.method!r}; see `graphunlearn methods`: {', '.join(sorted(methods()))}")
    options = _options(args.option, args.method)
    key = signing_key(args.key_file)  # read before any work: a bad key file fails fast
    policy = RetrainPolicy(budget=args.budget, max_requests=args.max_requests, max_val_drop=args.max_val_drop)
    path = Path(args.requests)
    if not path.is_file():
        raise CLIError(f"--requests {path}: no such file")
    requests = read_requests(path)  # every bad line is refused before the store is opened
    if not requests:
        raise CLIError(f"--requests {path} holds no request (only blank lines and comments)")
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%d-%H%M%S")
    out = _output(run, args.output or f"stream-{stamp}.pt")
    folder = _certificate_folder(run, out)
    with _opened(run) as (store, split, task):
        model = _load_model(run, args.model, task)
        try:
            result = stream(model, store, requests, split=split, method=args.method, task=task, batch=args.batch,
                            policy=policy, seed=args.seed, certificates=folder, key=key, progress=not args.quiet,
                            **options)
        except StreamError as exc:
            # the steps done stand: keep their model and the store's record of what it forgot
            if exc.partial.steps:
                save_model(out, exc.partial.model)
                store.checkpoint()
                print(exc.partial.table())
                raise CLIError(f"{exc}; the model after step {len(exc.partial.steps)} was saved to {out}") from exc
            store.checkpoint()  # the failing step's registered requests are in the journal already
            raise
        save_model(out, result.model)  # weights and card (every request of the stream forgotten)
        store.checkpoint()  # persists the store's ledger of what this model forgot
    print(result.table())
    written = sum(s.certificate_path is not None for s in result.steps)
    signed = "signed" if key is not None else "unsigned"
    where = f"; {written} {signed} certificates in {folder}" if written else "; no certificates (unlearn gave none)"
    print(f"stream: {len(result.steps)} steps, {result.total_seconds:.2f} s -> {out}{where}")
