"""``graphunlearn unlearn``: make a checkpoint forget a registered request."""

from __future__ import annotations

import ast

from .. import distributed as dist
from ..certify import attach_evidence
from ..models import save_model
from ..unlearning import methods, unlearn
from .common import (
    CLIError,
    _load_model,
    _opened,
    _output,
    _request,
    _run_dir,
    nonnegative_int,
    seed_int,
    signing_key,
)


def add_parser(subparsers) -> None:
    s = subparsers.add_parser("unlearn", help="make a checkpoint forget a registered request")
    s.add_argument("--run", "--run-dir", dest="run", required=True, help="the run folder (spell it --run-dir under "
                   "torchrun, whose parser takes --run for an abbreviation of its --run-path)")
    s.add_argument("--request", type=nonnegative_int, required=True)
    s.add_argument("--method", default="d2dgn", help="see `graphunlearn methods`")
    s.add_argument("--model", default="model.pt", help="checkpoint to start from")
    s.add_argument("--option", action="append", default=[], metavar="NAME=VALUE", help="method option")
    s.add_argument("--output", help="checkpoint name (default: METHOD-rREQUEST.pt)")
    s.add_argument("--seed", type=seed_int, default=0)
    s.add_argument("--key-file", help="sign the certificate with this key (default: $GRAPHUNLEARN_CERT_KEY when "
                   "set; else it is unsigned)")
    s.add_argument("--no-evidence", action="store_true", help="leave the protocol's metrics out of the "
                   "certificate (it keeps the evidence unlearn measures itself)")
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(fn=run)


def run(args) -> None:
    run = _run_dir(args.run)
    if args.method not in methods():
        raise CLIError(f"unknown method {args.method!r}; see `graphunlearn methods`: {', '.join(sorted(methods()))}")
    options = _options(args.option, args.method)
    key = signing_key(args.key_file)  # read before any work: a bad key file fails fast
    if args.output is not None:
        _output(run, args.output)
    with _opened(run) as (store, split, task):
        model = _load_model(run, args.model, task).to(store.device)  # this rank's GPU under NCCL
        req = _request(store, args.request)
        out = _output(run, args.output or f"{args.method}-r{req.id}.pt")
        result = unlearn(model, store, req, args.method, split=split, task=task, seed=args.seed,
                         progress=not args.quiet, **options)
        cert = result.certificate
        if not args.no_evidence:
            attach_evidence(cert, result.model, store, split, original=model, task=task)
        if key is not None:
            cert.sign(key)
        cert_path = dist.main_only(lambda: _write(out, result, cert, store), f"unlearn: rank 0 writes {out}")
    if not dist.is_main():  # rank 0 wrote the files and speaks for the job
        return
    print(f"{args.method}: {result.seconds:.2f} s, peak +{result.peak_mb:.0f} MiB -> {out}")
    print(f"certificate ({'signed' if key is not None else 'unsigned'}): {cert_path}")


def _write(out, result, cert, store):
    save_model(out, result.model)  # weights and card (what it forgot, the recipe)
    cert_path = cert.save(out.with_name(out.stem + ".cert.json"))  # and its one-page .md beside it
    store.checkpoint()  # persists the store's ledger of what this model forgot
    return cert_path


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
