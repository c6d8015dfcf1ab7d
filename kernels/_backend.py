"""Optional-dependency flags and the one place that chooses a kernel backend.

Importing this module never needs a GPU or a working Triton: the flags are computed lazily-safe at
import time (a failed ``import triton`` only sets ``WITH_TRITON = False``).
"""

from __future__ import annotations

import os

import torch

try:  # Triton is a Linux x86_64 dependency; elsewhere (and when broken) the torch path runs.
    import triton  # noqa: F401

    WITH_TRITON = True
except Exception:  # pragma: no cover - depends on the platform
    WITH_TRITON = False

WITH_CUDA = torch.cuda.is_available()
TRITON_INTERPRET = os.environ.get("TRITON_INTERPRET", "0") == "1"

BACKENDS = ("torch", "triton")


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


def choose_backend(op: str, available: dict[str, bool], backend: str | None = None) -> str:
    """Pick the backend for one call of ``op``.

    ``available`` maps backend names to whether ``op`` can run there for the given tensors. An explicit
    choice (the ``backend`` argument, else ``GRAPHUNLEARN_BACKEND``) that cannot run raises; the
    automatic choice prefers Triton and falls back to the torch reference quietly.
    """
    forced = backend if backend is not None else requested_backend()
    if forced is not None:
        if forced not in BACKENDS:
            raise ValueError(f"{op}: unknown backend {forced!r}; expected one of {BACKENDS}")
        if not available.get(forced, False):
            raise RuntimeError(
                f"{op}: backend {forced!r} was requested but cannot run here "
                f"(WITH_TRITON={WITH_TRITON}, WITH_CUDA={WITH_CUDA}, TRITON_INTERPRET={TRITON_INTERPRET}, "
                f"available={[k for k, v in available.items() if v]})"
            )
        return forced
    if available.get("triton", False):
        return "triton"
    return "torch"
