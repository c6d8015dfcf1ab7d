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
        print(f"{'':16s} needs: {m.requires}")
        print(f"{'':16s} options: {json.dumps(m.options)}")
        defaults = m.options
        for option, spec in m.options_type.specs().items():
            doc = f": {spec.doc}" if spec.doc else ""
            print(f"{'':18s} {option} ({_kind(spec)}, default {defaults[option]!r}){doc}")
        for where, chosen in sorted(m.backbone_options.items()):  # "gin" (every task) or "link/gin"
            print(f"{'':18s} on {where}: {json.dumps(dict(chosen))}")


def _kind(spec) -> str:
    """An option's type and valid values, e.g. ``float in (0, 1]``, ``int >= 1 or None``, ``str: a|b``."""
    text = spec.type.__name__
    if spec.choices is not None:
        text += ": " + "|".join(str(c) for c in spec.choices)
    elif spec.low is not None and spec.high is not None:
        text += f" in {'(' if spec.low_open else '['}{spec.low:g}, {spec.high:g}]"
    elif spec.low is not None:
        text += f" {'>' if spec.low_open else '>='} {spec.low:g}"
    elif spec.high is not None:
        text += f" <= {spec.high:g}"
    return text + (" or None" if spec.allow_none else "")
