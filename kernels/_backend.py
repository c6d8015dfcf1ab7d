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


def triton_interpret() -> bool:
    """Whether Triton kernels run in Triton's CPU interpreter (``TRITON_INTERPRET=1`` when they were defined)."""
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


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
    return False, f"tensors on {sorted(devices)} need CUDA, or TRITON_INTERPRET=1 for CPU tensors"


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
        if forced == "triton" and not triton_ok:
            raise RuntimeError(f"{op}: backend 'triton' was requested but cannot run here: {why_not}")
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
