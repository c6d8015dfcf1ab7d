"""``graphunlearn verify``: recompute what a deletion certificate certifies."""

from __future__ import annotations

from pathlib import Path

from ..certify import Check, verify
from ..io import CorruptFileError
from .common import _load_model, _opened, _run_dir


def add_parser(subparsers) -> None:
    s = subparsers.add_parser("verify", help="check a deletion certificate against the run's store and model "
                              "(exit status 1 when a check fails)")
    s.add_argument("certificate", help="the certificate's JSON file (written by `graphunlearn unlearn`)")
    s.add_argument("--run", required=True)
    s.add_argument("--model", help="the unlearned checkpoint (default: the certificate's name with .pt, "
                   "when it exists)")
    s.add_argument("--key-file", help="the signing key (default: $GRAPHUNLEARN_CERT_KEY when set)")
    s.add_argument("--require-signature", action="store_true", help="fail unless the certificate is signed "
                   "and the signature checks out")
    s.set_defaults(fn=run)


def run(args) -> int:
    run = _run_dir(args.run)
    cert_path = Path(args.certificate)
    model_name = args.model or _default_model(cert_path)
    # read-only: verification changes nothing, and may run while another process holds the store
    try:
        with _opened(run, read_only=True) as (store, split, task):
            model = _load_model(run, model_name, task) if model_name else None
            report = verify(cert_path, store=store, model=model, split=split, task=task, key_file=args.key_file,
                            require_signature=args.require_signature)
    except CorruptFileError as exc:  # an edited snapshot or journal: a failed check, not a usage error
        model = _load_model(run, model_name) if model_name else None
        report = verify(cert_path, model=model, key_file=args.key_file, require_signature=args.require_signature)
        report.checks = [Check("store", "failed", f"the run's store does not open: {exc}") if c.name == "store"
                         else c for c in report.checks]
    print(report)
    return 0 if report.ok else 1


def _default_model(cert: Path) -> str | None:
    name = cert.name.removesuffix(".json").removesuffix(".cert")
    candidate = cert.with_name(name + ".pt")
    return str(candidate) if candidate.is_file() else None
