"""Up-front argument checks shared by the library's public functions.

Each raises ``TypeError`` for a wrong type and ``ValueError`` for a value out of range, naming the function
(``where``), the argument and the value, before any work is done. A leaf module: it imports nothing of the
library, so datasets, training, unlearning and evaluation can all use it.
"""

from __future__ import annotations

import math
import numbers

# torch.Generator.manual_seed takes [-2**63, 2**64 - 1]; methods also seed with seed + 1
SEED_MIN, SEED_MAX = -(2**63), 2**64 - 2


def check_int(where: str, name: str, value, *, low: int | None = None, high: int | None = None,
              allow_none: bool = False) -> None:
    """An ``int`` (NumPy integers too; never a bool) within ``[low, high]``, or ``None`` when allowed."""
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        kind = "an int or None" if allow_none else "an int"
        raise TypeError(f"{where}: {name} must be {kind}, got {type(value).__name__}: {value!r:.80}")
    if (low is not None and value < low) or (high is not None and value > high):
        raise ValueError(f"{where}: {name} must be {_range(low, high)}, got {value!r}")


def check_float(where: str, name: str, value, *, low: float | None = None, high: float | None = None,
                low_open: bool = False, high_open: bool = False, allow_none: bool = False) -> None:
    """A finite real number (never a bool) within the interval from ``low`` to ``high``, each end closed
    unless said open, or ``None`` when allowed."""
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        kind = "a number or None" if allow_none else "a number"
        raise TypeError(f"{where}: {name} must be {kind}, got {type(value).__name__}: {value!r:.80}")
    try:
        finite = math.isfinite(value)
    except OverflowError:  # an int too large for a float
        finite = False
    bad = (not finite or (low is not None and (value <= low if low_open else value < low))
           or (high is not None and (value >= high if high_open else value > high)))
    if bad:
        rng = _range(low, high, low_open, high_open)
        raise ValueError(f"{where}: {name} must be a finite number{' ' + rng if rng else ''}, got {value!r}")


def _range(low, high, low_open: bool = False, high_open: bool = False) -> str:
    if low is not None and high is not None:
        return f"in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
    if low is not None:
        return f"{'>' if low_open else '>='} {low}"
    if high is not None:
        return f"{'<' if high_open else '<='} {high}"
    return ""


def check_bool(where: str, name: str, value) -> None:
    if not isinstance(value, bool):
        raise TypeError(f"{where}: {name} must be True or False, got {type(value).__name__}: {value!r:.80}")


def check_seed(where: str, seed, name: str = "seed") -> None:
    """A seed ``torch.Generator.manual_seed`` accepts, with room for ``seed + 1``."""
    check_int(where, name, seed, low=SEED_MIN, high=SEED_MAX)


def check_instance(where: str, name: str, value, cls, *, allow_none: bool = False, what: str | None = None) -> None:
    """``isinstance(value, cls)``; ``what`` says in words what was expected (default: the class names)."""
    if value is None and allow_none:
        return
    if not isinstance(value, cls):
        names = " or ".join(c.__name__ for c in (cls if isinstance(cls, tuple) else (cls,)))
        kind = what or (f"a {names}" + (" or None" if allow_none else ""))
        raise TypeError(f"{where}: {name} must be {kind}, got {type(value).__name__}: {value!r:.80}")
