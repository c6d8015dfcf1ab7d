"""The dataset functions' argument checks: :mod:`graphunlearn.checks`, returning the checked value."""

from __future__ import annotations

import numbers

from .. import checks


def integer(fn: str, name: str, value, minimum: int | None = None) -> int:
    """``value`` as an ``int``; a bool, a float or anything else is a ``TypeError``, below ``minimum`` a
    ``ValueError``."""
    checks.check_int(fn, name, value, low=minimum)
    return int(value)


def seed(fn: str, value, name: str = "seed") -> int:
    """A seed that ``torch.Generator.manual_seed`` accepts."""
    checks.check_seed(fn, value, name)
    return int(value)


def number(fn: str, name: str, value) -> float:
    """``value`` as a ``float``; a bool or a non-number is a ``TypeError`` (ranges, NaN included, are the
    caller's)."""
    checks.check_instance(fn, name, value, numbers.Real, what="a number")
    if isinstance(value, bool):
        raise TypeError(f"{fn}: {name} must be a number, got bool: {value!r}")
    return float(value)


def real(fn: str, name: str, value, low: float, high: float, low_open: bool = False,
         high_open: bool = False) -> float:
    """``value`` as a finite ``float`` within the interval from ``low`` to ``high``."""
    checks.check_float(fn, name, value, low=low, high=high, low_open=low_open, high_open=high_open)
    return float(value)


def instance(fn: str, name: str, value, kind: type | tuple[type, ...], what: str) -> None:
    checks.check_instance(fn, name, value, kind, what=what)
