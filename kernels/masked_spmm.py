r"""Masked sparse aggregation over a CSR graph: message passing that skips deleted edges.

For a graph stored once in CSR by destination (``rowptr``, ``col``: slot ``s`` in row ``i`` is the edge
``col[s] -> i``) and a boolean live mask over the slots,

.. math::
    \mathrm{out}_i = \sum_{s \in \mathrm{row}(i),\ \mathrm{mask}_s} c_s \, w_s \, x_{\mathrm{col}[s]}

with ``c_s = 1`` for ``reduce="sum"``, ``c_s = 1 / |\{live\ s \in row(i)\}|`` for ``reduce="mean"``, and
for ``normalize=True`` the GCN symmetric normalisation with self loops (Kipf and Welling, ICLR 2017)
computed from *live* degrees, so a deletion needs no renormalised copy of the graph:

.. math::
    \mathrm{out}_i = \frac{x_i}{d_i} + \sum_{s} \frac{w_s\, x_{\mathrm{col}[s]}}{\sqrt{d_i\, d_{\mathrm{col}[s]}}},
    \qquad d_i = 1 + \sum_{s \in \mathrm{row}(i),\ \mathrm{mask}_s} w_s .

This file holds the pure-torch reference (the CPU path, the test oracle and the benchmark baseline) and
the public, dispatched ``masked_spmm``. The reference only ever gathers rows through *live* slots, so a
deleted edge's source never enters the computation (not even multiplied by zero), and its backward is
what autograd derives from gather + ``index_add_``: the scatter on the transpose with the same mask.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ._backend import choose_backend

REDUCTIONS = ("sum", "mean")
_INDEX_DTYPES = (torch.int32, torch.int64)
_FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def _check_inputs(rowptr, col, x, mask, edge_weight, reduce, normalize, deg) -> None:
    if reduce not in REDUCTIONS:
        raise ValueError(f"masked_spmm: reduce={reduce!r} is not one of {REDUCTIONS}")
    if normalize and reduce != "sum":
        raise ValueError("masked_spmm: normalize=True (GCN normalisation) requires reduce='sum'")
    for name, t in (("rowptr", rowptr), ("col", col)):
        if not isinstance(t, Tensor) or t.dim() != 1 or t.dtype not in _INDEX_DTYPES:
            raise TypeError(f"masked_spmm: {name} must be a 1-D int32/int64 tensor, got {_describe(t)}")
    if not isinstance(x, Tensor) or x.dim() != 2 or x.dtype not in _FLOAT_DTYPES:
        raise TypeError(f"masked_spmm: x must be a 2-D floating tensor [num_src, F], got {_describe(x)}")
    if rowptr.numel() < 1:
        raise ValueError("masked_spmm: rowptr must hold num_rows + 1 entries (at least one)")
    num_slots = col.numel()
    if mask is not None and (mask.dtype != torch.bool or mask.shape != (num_slots,)):
        raise TypeError(f"masked_spmm: mask must be a bool tensor of shape [{num_slots}], got {_describe(mask)}")
    if edge_weight is not None and (edge_weight.shape != (num_slots,) or not edge_weight.is_floating_point()):
        raise TypeError(
            f"masked_spmm: edge_weight must be a floating tensor of shape [{num_slots}], got {_describe(edge_weight)}"
        )
    num_rows = rowptr.numel() - 1
    if normalize and x.size(0) != num_rows:
        raise ValueError(
            f"masked_spmm: normalize=True needs a square graph, but x has {x.size(0)} rows and rowptr {num_rows}"
        )
    if deg is not None and deg.shape != (num_rows,):
        raise TypeError(f"masked_spmm: deg must have shape [{num_rows}], got {_describe(deg)}")


def _describe(t) -> str:
    if isinstance(t, Tensor):
        return f"Tensor(shape={tuple(t.shape)}, dtype={t.dtype})"
    return type(t).__name__


def csr_row_index(rowptr: Tensor) -> Tensor:
    """The destination row of every CSR slot. Shapes: ``rowptr`` [N + 1] -> [S]."""
    counts = rowptr[1:] - rowptr[:-1]
    return torch.repeat_interleave(torch.arange(counts.numel(), device=rowptr.device), counts)


def live_degree(rowptr: Tensor, mask: Tensor | None = None, edge_weight: Tensor | None = None,
                *, self_loops: bool = False) -> Tensor:
    r"""Per-row sum of live edge weights (count when ``edge_weight`` is None), plus one with ``self_loops``.

    Shapes: ``rowptr`` [N + 1], ``mask`` / ``edge_weight`` [S] -> [N] float32.
    """
    num_rows = rowptr.numel() - 1
    row = csr_row_index(rowptr)
    w = torch.ones(row.numel(), dtype=torch.float32, device=rowptr.device) if edge_weight is None \
        else edge_weight.to(torch.float32)
    if mask is not None:
        w = torch.where(mask, w, torch.zeros((), dtype=w.dtype, device=w.device))
    deg = torch.zeros(num_rows, dtype=torch.float32, device=rowptr.device).index_add_(0, row, w)
    return deg + 1.0 if self_loops else deg


def masked_spmm_reference(rowptr: Tensor, col: Tensor, x: Tensor, mask: Tensor | None = None,
                          edge_weight: Tensor | None = None, *, reduce: str = "sum", normalize: bool = False,
                          deg: Tensor | None = None) -> Tensor:
    r"""Pure-torch masked CSR aggregation (see the module docstring for the formula).

    Differentiable in ``x`` and ``edge_weight`` (also through the live-degree normalisation). Computes in
    float32 (float64 stays float64) and returns ``x``'s dtype.

    Args:
        rowptr: CSR row pointer over destination nodes.
        col: source node of each slot.
        x: source features.
        mask: live slots; ``None`` means every slot is live.
        edge_weight: per-slot weights; ``None`` means all ones.
        reduce: ``"sum"`` (default) or ``"mean"`` over live in-edges (rows with none give zeros).
        normalize: GCN symmetric normalisation with self loops from live degrees (default ``False``).
        deg: precomputed ``live_degree(..., self_loops=True)`` to reuse with ``normalize`` (default: computed).

    Shapes:
        rowptr [N + 1], col [S], x [M, F] (M = N when ``normalize``), mask [S] bool,
        edge_weight [S], deg [N] -> out [N, F].
    """
    _check_inputs(rowptr, col, x, mask, edge_weight, reduce, normalize, deg)
    num_rows = rowptr.numel() - 1
    compute_dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
    xc = x.to(compute_dtype)
    row = csr_row_index(rowptr)
    src = col.long()
    w = None if edge_weight is None else edge_weight.to(compute_dtype)
    if mask is not None:
        # Select live slots before gathering: deleted edges are never read, not merely weighted by zero
        # (a zero weight would still let a NaN or Inf in a deleted row through).
        live = mask.nonzero().squeeze(1)
        row, src = row[live], src[live]
        w = None if w is None else w[live]
    if normalize:
        if deg is None:
            ones = torch.ones(row.numel(), dtype=compute_dtype, device=x.device) if w is None else w
            deg = torch.zeros(num_rows, dtype=compute_dtype, device=x.device).index_add(0, row, ones) + 1.0
        dis = deg.to(compute_dtype).pow(-0.5)
        coef = dis[row] * dis[src]
        w = coef if w is None else w * coef
        out = xc * (dis * dis).unsqueeze(1)
    else:
        out = torch.zeros(num_rows, x.size(1), dtype=compute_dtype, device=x.device)
        if reduce == "mean":
            count = torch.bincount(row, minlength=num_rows).clamp_(min=1).to(compute_dtype)
            inv = count.reciprocal()[row]
            w = inv if w is None else w * inv
    msg = xc.index_select(0, src)
    if w is not None:
        msg = msg * w.unsqueeze(1)
    # index_add_ is deterministic on CPU and as fast there as scatter_add_.
    out = out.index_add(0, row, msg)
    return out.to(x.dtype)


def masked_spmm(rowptr: Tensor, col: Tensor, x: Tensor, mask: Tensor | None = None,
                edge_weight: Tensor | None = None, *, reduce: str = "sum", normalize: bool = False,
                deg: Tensor | None = None, backend: str | None = None) -> Tensor:
    r"""Masked CSR aggregation, dispatched to the best available backend.

    Same arguments, shapes and result as :func:`masked_spmm_reference`, plus ``backend`` (``"torch"`` or
    ``"triton"``; default: the ``GRAPHUNLEARN_BACKEND`` environment variable, else automatic). The Triton
    kernel is not implemented yet, so the automatic choice is the torch reference everywhere and a forced
    ``"triton"`` raises.
    """
    chosen = choose_backend("masked_spmm", {"torch": True, "triton": False}, backend)
    assert chosen == "torch"
    return masked_spmm_reference(rowptr, col, x, mask, edge_weight, reduce=reduce, normalize=normalize, deg=deg)
