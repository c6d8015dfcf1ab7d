"""Optional-dependency flags and the one place that chooses a kernel backend.

Importing this module never needs a GPU or a working Triton. Without Triton, ``triton.jit`` is replaced by
a decorator whose kernels raise a clear error only when launched, and ``tl`` by a stand-in that makes the
kernel signatures importable.
"""

from __future__ import annotations

import os

import torch

try:  # Triton is a Linux x86_64 dependency; elsewhere (and when broken) the torch path runs.
    import triton
    import triton.language as tl

    WITH_TRITON = True
except Exception:  # pragma: no cover - depends on the platform
    WITH_TRITON = False

    class _MissingKernel:
        def __init__(self, fn):
            self.fn = fn

        def __getitem__(self, grid):
            raise RuntimeError(f"Triton kernel {self.fn.__name__} needs the `triton` package, which is not "
                               "importable here; use the torch backend (GRAPHUNLEARN_BACKEND=torch)")

    class _MissingTriton:
        @staticmethod
        def jit(fn=None, **_):
            return _MissingKernel(fn) if fn is not None else _MissingKernel

        @staticmethod
        def cdiv(a, b):
            return -(-a // b)

        @staticmethod
        def next_power_of_2(n):
            return 1 << max(0, int(n - 1).bit_length())

    class _MissingLanguage:
        constexpr = object

    triton = _MissingTriton()
    tl = _MissingLanguage()

WITH_CUDA = torch.cuda.is_available()
BACKENDS = ("torch", "triton")


def _defined_interpreted() -> bool:
    """Whether ``triton.jit`` builds interpreted kernels right now (as Triton itself decides it)."""
    if not WITH_TRITON:
        return False
    try:
        from triton import knobs

        return bool(knobs.runtime.interpret)
    except Exception:  # pragma: no cover - older Triton without knobs
        return os.environ.get("TRITON_INTERPRET", "0").strip().lower() in ("1", "true", "on", "yes")


# Kernels are defined when this package is imported, right after this module: whether they run in the
# interpreter is fixed then, whatever TRITON_INTERPRET says later.
_INTERPRETED = _defined_interpreted()


def triton_interpret() -> bool:
    """Whether Triton kernels run in Triton's CPU interpreter (``TRITON_INTERPRET=1`` when they were defined,
    that is when ``graphunlearn.kernels`` was first imported)."""
    return _INTERPRETED


def requested_backend() -> str | None:
    """The backend forced through ``GRAPHUNLEARN_BACKEND`` (``torch`` or ``triton``), or ``None``."""
    value = os.environ.get("GRAPHUNLEARN_BACKEND", "").strip().lower()
    if not value or value == "auto":
        return None
    if value not in BACKENDS:
        raise ValueError(
            f"GRAPHUNLEARN_BACKEND={value!r} is not a backend; expected one of {BACKENDS} or 'auto'"
        )
    return value


def triton_can_run(*tensors: torch.Tensor) -> tuple[bool, str]:
    """Can a Triton kernel take these tensors? CUDA tensors on a Triton install, or CPU tensors in the
    interpreter. Returns ``(ok, reason)``."""
    if not WITH_TRITON:
        return False, "the triton package is not importable"
    devices = {t.device.type for t in tensors if t is not None}
    if devices == {"cuda"}:
        return True, ""
    if devices == {"cpu"} and triton_interpret():
        return True, ""
    where = "/".join(sorted(devices))
    if devices == {"cpu"} and _defined_interpreted():
        return False, ("the tensors are on cpu and TRITON_INTERPRET=1 was set only after graphunlearn.kernels "
                       "was imported (its kernels were compiled for CUDA); set it before the import, move the "
                       "tensors to a CUDA device, or use GRAPHUNLEARN_BACKEND=torch")
    if len(devices) > 1:
        return False, (f"the tensors are on several devices ({where}); move them all to one CUDA device, or "
                       "use GRAPHUNLEARN_BACKEND=torch")
    return False, (f"the tensors are on {where}, and Triton kernels need CUDA tensors; move the model and "
                   "graph to a CUDA device, or set TRITON_INTERPRET=1 before importing graphunlearn to run the "
                   "kernels on CPU in Triton's interpreter (slow, for tests), or use GRAPHUNLEARN_BACKEND=torch")


def choose_backend(op: str, triton_ok: bool, why_not: str = "", backend: str | None = None,
                   auto_triton: bool | None = None) -> str:
    """Pick the backend for one call of ``op``.

    ``triton_ok`` says whether the Triton kernel can run for these arguments (``why_not`` says why not).
    An explicit choice (the ``backend`` argument, else ``GRAPHUNLEARN_BACKEND``) that cannot run raises.
    The automatic choice takes Triton only where it pays (``auto_triton``, by default: CUDA with Triton
    runnable; never the interpreter, which is for tests) and otherwise the torch reference, quietly.
    """
    forced = backend if backend is not None else requested_backend()
    if forced is not None:
        if forced not in BACKENDS:
            raise ValueError(f"{op}: unknown backend {forced!r}; expected one of {BACKENDS}")
        if forced == "triton" and not triton_ok:  # never a silent fallback to torch
            how = "the backend='triton' argument" if backend is not None else "GRAPHUNLEARN_BACKEND=triton"
            raise RuntimeError(f"{op}: backend 'triton' was requested but cannot run here: {why_not} "
                               f"(requested by {how})")
        return forced
    if auto_triton is None:
        auto_triton = triton_ok and not triton_interpret()
    return "triton" if auto_triton else "torch"


def reduce_loss(per_item: torch.Tensor, reduction: str) -> torch.Tensor:
    """``"sum"``, ``"mean"`` (0 for no items rather than NaN) or ``"none"`` over per-item losses."""
    if reduction == "sum":
        return per_item.sum()
    if reduction == "mean":
        return per_item.mean() if per_item.numel() else per_item.sum()
    return per_item
