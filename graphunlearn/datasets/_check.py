"""Up-front argument checks for the dataset functions: one clear ``TypeError``/``ValueError`` naming the
function, the argument and the value, instead of a failure deep inside torch."""

from __future__ import annotations

import math
import numbers


def integer(fn: str, name: str, value, minimum: int | None = None) -> int:
    """``value`` as an ``int``; a bool, a float or anything else is a ``TypeError``, below ``minimum`` a
    ``ValueError``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{fn}: {name} must be an int, got {type(value).__name__} {value!r}")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{fn}: {name} must be at least {minimum}, got {value}")
    return value


def seed(fn: str, value, name: str = "seed") -> int:
    """A seed: an int that ``torch.Generator.manual_seed`` accepts (``-2**63 <= seed < 2**64``)."""
    value = integer(fn, name, value)
    if not -(2 ** 63) <= value < 2 ** 64:
        raise ValueError(f"{fn}: {name} must lie in [-2**63, 2**64), got {value}")
    return value


def number(fn: str, name: str, value) -> float:
    """``value`` as a ``float``; a bool or a non-number is a ``TypeError`` (ranges are the caller's)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{fn}: {name} must be a number, got {type(value).__name__} {value!r}")
    return float(value)


def real(fn: str, name: str, value, low: float, high: float, low_open: bool = False,
         high_open: bool = False) -> float:
    """``value`` as a finite ``float`` within the interval from ``low`` to ``high`` (each end closed unless
    said open)."""
    value = number(fn, name, value)
    inside = (not math.isnan(value) and (value > low if low_open else value >= low)
              and (value < high if high_open else value <= high))
    if not inside:
        interval = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        raise ValueError(f"{fn}: {name} must lie in {interval}, got {value}")
    return value


def instance(fn: str, name: str, value, kind: type | tuple[type, ...], what: str) -> None:
    if not isinstance(value, kind):
        raise TypeError(f"{fn}: {name} must be {what}, got {type(value).__name__}")
