"""``graphunlearn methods``: list the unlearning methods and their options."""

from __future__ import annotations

import json

from ..unlearning import methods


def add_parser(subparsers) -> None:
    s = subparsers.add_parser("methods", help="list the unlearning methods and their options")
    s.set_defaults(fn=run)


def run(args) -> None:
    for name, m in sorted(methods().items()):
        summary = m.doc.splitlines()[0] if m.doc else ""
        print(f"{name:16s} tasks={','.join(m.tasks):14s} {summary}")
        print(f"{'':16s} options: {json.dumps(m.options)}")
