"""Process-wide launch counters: which backend ran each kernel family.

The dispatchers (``masked_spmm``, ``kl_distill_loss``, ``binary_kl_distill_loss``, ``bpr_loss``) count one
launch per call, at the point where the backend is chosen, so the Triton and the torch paths are both
counted. A call whose output needs a gradient also counts its backward, once per backward pass through it,
under the matching ``*_backward`` family (a hook on the output: a Python callback, no tensor op).

Families (``FAMILIES``):

* ``aggregate_forward``: ``masked_spmm`` forward;
* ``aggregate_backward``: its gradient for ``x`` (the transpose product), counted when ``x`` requires grad;
* ``aggregate_weight_backward``: its gradient for ``edge_weight`` (the masked SDDMM), counted when the
  edge weights require grad (a family of its own: it is a different kernel);
* ``kl_forward`` / ``kl_backward``: ``kl_distill_loss`` and ``binary_kl_distill_loss``;
* ``bpr_forward`` / ``bpr_backward``: ``bpr_loss`` (BPR and reverse BPR).

Backends: ``"triton"`` or ``"torch"``. Counting is a dict increment under the GIL: no tensor op, no host
synchronisation. The internal launchers that a Triton backward reuses (the BPR backward runs on the
aggregation kernel) are not counted as aggregations: only dispatcher calls are.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

FAMILIES = ("aggregate_forward", "aggregate_backward", "aggregate_weight_backward", "kl_forward", "kl_backward",
            "bpr_forward", "bpr_backward")

_TOTALS: dict[tuple[str, str], int] = {}
_ACTIVE: list[LaunchCounts] = []


class LaunchCounts:
    """What was launched inside one :func:`count_launches` block: ``counts`` maps ``(family, backend)`` to the
    number of launches (updated live, also by a backward run inside the block)."""

    def __init__(self) -> None:
        self.counts: dict[tuple[str, str], int] = {}

    def backends(self, family: str | None = None) -> set[str]:
        """The backends seen (for one family, or all)."""
        return {b for (f, b) in self.counts if family is None or f == family}

    def families(self, backend: str | None = None) -> set[str]:
        """The families launched (on one backend, or any)."""
        return {f for (f, b) in self.counts if backend is None or b == backend}

    def total(self, family: str | None = None, backend: str | None = None) -> int:
        """Launches of one family and/or backend (``None``: any)."""
        return sum(n for (f, b), n in self.counts.items()
                   if (family is None or f == family) and (backend is None or b == backend))

    def as_dict(self) -> dict[str, dict[str, int]]:
        """``{family: {backend: count}}``, JSON-friendly."""
        out: dict[str, dict[str, int]] = {}
        for (f, b), n in sorted(self.counts.items()):
            out.setdefault(f, {})[b] = n
        return out

    def __repr__(self) -> str:
        return f"LaunchCounts({self.as_dict()})"


def record(family: str, backend: str) -> None:
    """Count one launch of ``family`` on ``backend`` (a dict increment per open block and the global total)."""
    key = (family, backend)
    _TOTALS[key] = _TOTALS.get(key, 0) + 1
    for block in _ACTIVE:
        block.counts[key] = block.counts.get(key, 0) + 1


def record_call(family: str, backend: str, out: torch.Tensor, backward: tuple[str, ...] = ()) -> torch.Tensor:
    """Count a dispatcher call's forward now and, when ``out`` needs a gradient, each family in ``backward``
    every time a gradient flows back through ``out``. Returns ``out``."""
    record(family, backend)
    if backward and out.requires_grad:
        def _count_backward(_grad):  # a tensor hook: counts, leaves the gradient unchanged
            for fam in backward:
                record(fam, backend)

        out.register_hook(_count_backward)
    return out


def launches() -> dict[tuple[str, str], int]:
    """Snapshot of the process-wide counts: ``{(family, backend): launches}`` since import (or the last
    :func:`reset_launches`)."""
    return dict(_TOTALS)


def reset_launches() -> None:
    """Zero the process-wide counts (open :func:`count_launches` blocks keep theirs)."""
    _TOTALS.clear()


@contextmanager
def count_launches() -> Iterator[LaunchCounts]:
    """Count the launches made inside the block (blocks nest; each sees every launch inside it; like the
    totals, a block is process-wide: launches from other threads during the block are counted too)::

        with graphunlearn.kernels.count_launches() as c:
            loss = model(...).sum(); loss.backward()
        assert c.backends() == {"triton"}
    """
    block = LaunchCounts()
    _ACTIVE.append(block)
    try:
        yield block
    finally:
        _ACTIVE.remove(block)
