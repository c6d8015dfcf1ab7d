"""Result tables: :class:`Metrics` (one model's metrics, a dict that prints and saves) and :class:`Report`
(several models side by side)."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass
class Report:
    """Metrics per model (rows) for one task, printable as a table and savable as JSON."""

    task: str
    rows: dict[str, dict[str, float]] = field(default_factory=dict)
    meta: dict = field(default_factory=dict)

    def columns(self) -> list[str]:
        cols: list[str] = []
        for row in self.rows.values():
            cols += [c for c in row if c not in cols]
        return cols

    def table(self, columns: Sequence[str] | None = None) -> str:
        cols = list(columns or self.columns())
        header = ["model"] + cols
        body = [[name] + [_fmt(row.get(c)) for c in cols] for name, row in self.rows.items()]
        widths = [max(len(r[i]) for r in [header] + body) for i in range(len(header))]
        lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths))]
        lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths)) for r in body]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()

    def to_json(self, path: str | os.PathLike) -> None:
        with open(path, "w") as f:
            json.dump({"task": self.task, "meta": self.meta, "rows": self.rows}, f, indent=2, default=float)


class Metrics(dict):
    """One model's metrics: a plain ``dict`` of floats that also prints as a two-column table and saves as
    JSON (``to_json``)."""

    def __init__(self, task: str, values: dict | None = None):
        super().__init__(values or {})
        self.task = task

    def table(self) -> str:
        width = max((len(k) for k in self), default=6)
        return "\n".join([f"{'metric'.ljust(width)}  {self.task}"] + [f"{k.ljust(width)}  {_fmt(v)}"
                                                                     for k, v in self.items()])

    def __str__(self) -> str:
        return self.table()

    def to_json(self, path: str | os.PathLike) -> None:
        with open(path, "w") as f:
            json.dump({"task": self.task, "metrics": dict(self)}, f, indent=2, default=float)


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.4f}"
    return str(v)
