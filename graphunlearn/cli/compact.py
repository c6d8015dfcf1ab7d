"""``graphunlearn compact``: erase deleted data physically, and redact the run's certificates."""

from __future__ import annotations

from ..certify.redact import redact_certificates
from .common import _opened, _run_dir


def add_parser(subparsers) -> None:
    s = subparsers.add_parser("compact", help="erase deleted nodes, edges and feature values from the run's store "
                              "files, and drop their ids from the run's certificates (their hashes stay)")
    s.add_argument("--run", required=True)
    s.set_defaults(fn=run)


def run(args) -> None:
    run = _run_dir(args.run)
    with _opened(run) as (store, _split, _task):
        before = (store.num_nodes, store.num_edges)
        store.compact()
        after = (store.num_nodes, store.num_edges)
        redacted = redact_certificates(run, store)
    print(f"compacted: {before[0]} -> {after[0]} nodes, {before[1]} -> {after[1]} edges (through request "
          f"{store.compacted_through}); {len(redacted)} certificate(s) redacted")
