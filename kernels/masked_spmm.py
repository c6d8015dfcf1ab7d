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

This file holds the Triton kernels and launchers, their ``torch.autograd.Function``, a CPU fast path on
``torch.sparse.mm``, the pure-torch reference (the test oracle and the benchmark baseline) and the public,
dispatched ``masked_spmm``. The reference only ever gathers rows through *live* slots, so a deleted edge's
source never enters the computation (not even multiplied by zero), and its backward is what autograd
derives from gather + ``index_add_``: the scatter on the transpose with the same mask.
"""

from __future__ import annotations

import warnings

import torch
from torch import Tensor

from ._backend import choose_backend, tl, triton, triton_can_run
from ._counters import record_call

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


def csr_row_index(rowptr: Tensor, num_slots: int | None = None) -> Tensor:
    """The destination row of every CSR slot. Shapes: ``rowptr`` [N + 1] -> [S]. Pass ``num_slots`` (S, e.g.
    ``col.numel()``) on a device: without it the output size is read back from the device (a host sync)."""
    counts = rowptr[1:] - rowptr[:-1]
    return torch.repeat_interleave(torch.arange(counts.numel(), device=rowptr.device), counts,
                                   output_size=num_slots)


def live_degree(rowptr: Tensor, mask: Tensor | None = None, edge_weight: Tensor | None = None,
                *, self_loops: bool = False, dtype: torch.dtype = torch.float32) -> Tensor:
    r"""Per-row sum of live edge weights (count when ``edge_weight`` is None), plus one with ``self_loops``.

    Shapes: ``rowptr`` [N + 1], ``mask`` / ``edge_weight`` [S] -> [N] of ``dtype`` (default float32).
    The result carries no gradient (``edge_weight`` is detached).
    """
    num_rows = rowptr.numel() - 1
    slots = mask.numel() if mask is not None else edge_weight.numel() if edge_weight is not None else None
    row = csr_row_index(rowptr, slots)
    w = torch.ones(row.numel(), dtype=dtype, device=rowptr.device) if edge_weight is None \
        else edge_weight.detach().to(dtype)
    if mask is not None:
        w = torch.where(mask, w, torch.zeros((), dtype=w.dtype, device=w.device))
    deg = torch.zeros(num_rows, dtype=dtype, device=rowptr.device).index_add_(0, row, w)
    return deg + 1.0 if self_loops else deg


def _inv_sqrt(deg: Tensor) -> Tensor:
    """deg^-1/2 with 0 where deg is 0 (a node without live in-edges and no self loop receives nothing)."""
    return torch.where(deg > 0, deg.clamp(min=torch.finfo(deg.dtype).tiny).rsqrt(), torch.zeros_like(deg))


def masked_spmm_reference(rowptr: Tensor, col: Tensor, x: Tensor, mask: Tensor | None = None,
                          edge_weight: Tensor | None = None, *, reduce: str = "sum", normalize: bool = False,
                          deg: Tensor | None = None, self_loops: bool = True) -> Tensor:
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
        deg: precomputed ``live_degree(..., self_loops=self_loops)`` to reuse with ``normalize`` (default:
            computed).
        self_loops: with ``normalize``, add a self loop of weight 1 to every node (GCN, default ``True``);
            ``False`` gives LightGCN's :math:`D^{-1/2} A D^{-1/2}`, where nodes without live in-edges get 0.

    Shapes:
        rowptr [N + 1], col [S], x [M, F] (M = N when ``normalize``), mask [S] bool,
        edge_weight [S], deg [N] -> out [N, F].
    """
    _check_inputs(rowptr, col, x, mask, edge_weight, reduce, normalize, deg)
    num_rows = rowptr.numel() - 1
    compute_dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
    xc = x.to(compute_dtype)
    row = csr_row_index(rowptr, col.numel())
    src = col.long()
    w = None if edge_weight is None else edge_weight.to(compute_dtype)
    live = None
    if mask is not None:
        # Deleted slots get weight 0 and their messages are replaced by 0 with torch.where, so a NaN or Inf
        # in a deleted row never reaches the output (a zero weight alone would let it through), and no
        # tensor's shape depends on the mask (no host synchronisation on a device).
        live = mask.to(compute_dtype)
        w = live if w is None else torch.where(mask, w, torch.zeros((), dtype=compute_dtype, device=w.device))
    if normalize:
        if deg is None:
            ones = torch.ones(row.numel(), dtype=compute_dtype, device=x.device) if w is None else w
            deg = torch.zeros(num_rows, dtype=compute_dtype, device=x.device).index_add(0, row, ones)
            deg = deg + 1.0 if self_loops else deg
        dis = _inv_sqrt(deg.to(compute_dtype))
        coef = dis[row] * dis[src]
        w = coef if w is None else w * coef
        if self_loops:
            out = xc * (dis * dis).unsqueeze(1)
        else:
            out = torch.zeros(num_rows, x.size(1), dtype=compute_dtype, device=x.device)
    else:
        out = torch.zeros(num_rows, x.size(1), dtype=compute_dtype, device=x.device)
        if reduce == "mean":
            ones = live if live is not None else torch.ones(row.numel(), dtype=compute_dtype, device=x.device)
            count = torch.zeros(num_rows, dtype=compute_dtype, device=x.device).index_add(0, row, ones)
            inv = count.clamp_(min=1).reciprocal()[row]
            w = inv if w is None else w * inv
    msg = xc.index_select(0, src)
    if mask is not None:  # before the weights, so no NaN reaches a weight's gradient either
        msg = torch.where(mask.unsqueeze(1), msg, torch.zeros((), dtype=compute_dtype, device=x.device))
    if w is not None:
        msg = msg * w.unsqueeze(1)
    # index_add_ is deterministic on CPU and as fast there as scatter_add_.
    out = out.index_add(0, row, msg)
    return out.to(x.dtype)



# --------------------------------------------------------------------------------------------- Triton
# Every operator here has the form  out = diag(r) B diag(c) x + diag(d) x  with B the masked, weighted CSR
# pattern: r = row_scale, c = col_scale, d = self_scale. sum: none of them; mean: r = 1 / live count;
# GCN: r = c = D^-1/2 and d = D^-1. Its transpose, the x-gradient, has the same form with r and c swapped
# on B^T, so one kernel serves the forward and the backward.


@triton.jit
def _spmm_rows_kernel(
    rowptr_ptr,  # [R + 1] int32/int64
    col_ptr,  # [S] int32/int64, source of each slot
    mask_ptr,  # [S] int8 (bool), live slots; unused without HAS_MASK
    w_ptr,  # [S] float, edge weights; unused without HAS_W
    x_ptr,  # [M, F] float16/bfloat16/float32, row stride stride_x
    row_scale_ptr,  # [R] float32; unused without HAS_ROW_SCALE
    col_scale_ptr,  # [M] float32; unused without HAS_COL_SCALE
    self_scale_ptr,  # [R] float32; unused without HAS_SELF (then M == R)
    out_ptr,  # [R, F] same dtype as x, row stride stride_out
    F,
    stride_x,
    stride_out,
    HAS_MASK: tl.constexpr,
    HAS_W: tl.constexpr,
    HAS_ROW_SCALE: tl.constexpr,
    HAS_COL_SCALE: tl.constexpr,
    HAS_SELF: tl.constexpr,
    BLOCK_E: tl.constexpr,
    BLOCK_F: tl.constexpr,
):
    row = tl.program_id(0).to(tl.int64)
    offs_f = tl.program_id(1).to(tl.int64) * BLOCK_F + tl.arange(0, BLOCK_F)
    fmask = offs_f < F
    start = tl.load(rowptr_ptr + row).to(tl.int64)
    end = tl.load(rowptr_ptr + row + 1).to(tl.int64)
    acc = tl.zeros([BLOCK_F], dtype=tl.float32)
    for e0 in range(start, end, BLOCK_E):
        offs_e = e0 + tl.arange(0, BLOCK_E)
        emask = offs_e < end
        if HAS_MASK:
            emask = emask & (tl.load(mask_ptr + offs_e, mask=emask, other=0) != 0)
        src = tl.load(col_ptr + offs_e, mask=emask, other=0).to(tl.int64)
        coef = tl.where(emask, 1.0, 0.0)
        if HAS_W:
            coef = coef * tl.load(w_ptr + offs_e, mask=emask, other=0.0).to(tl.float32)
        if HAS_COL_SCALE:
            coef = coef * tl.load(col_scale_ptr + src, mask=emask, other=0.0)
        # Masked-off lanes are not loaded at all: a deleted edge's source row is never read.
        xv = tl.load(x_ptr + src[:, None] * stride_x + offs_f[None, :], mask=emask[:, None] & fmask[None, :],
                     other=0.0).to(tl.float32)
        acc += tl.sum(xv * coef[:, None], axis=0)
    if HAS_ROW_SCALE:
        acc = acc * tl.load(row_scale_ptr + row)
    if HAS_SELF:
        xs = tl.load(x_ptr + row * stride_x + offs_f, mask=fmask, other=0.0).to(tl.float32)
        acc += tl.load(self_scale_ptr + row) * xs
    tl.store(out_ptr + row * stride_out + offs_f, acc.to(out_ptr.dtype.element_ty), mask=fmask)


@triton.jit
def _sddmm_rows_kernel(
    rowptr_ptr,  # [R + 1] int32/int64
    col_ptr,  # [S] int32/int64
    mask_ptr,  # [S] int8 (bool); unused without HAS_MASK
    g_ptr,  # [R, F] float, upstream gradient, row stride stride_g
    x_ptr,  # [M, F] float, row stride stride_x
    row_scale_ptr,  # [R] float32; unused without HAS_ROW_SCALE
    col_scale_ptr,  # [M] float32; unused without HAS_COL_SCALE
    out_ptr,  # [S] float32: d loss / d w_s
    F,
    stride_g,
    stride_x,
    HAS_MASK: tl.constexpr,
    HAS_ROW_SCALE: tl.constexpr,
    HAS_COL_SCALE: tl.constexpr,
    BLOCK_E: tl.constexpr,
    BLOCK_F: tl.constexpr,
):
    row = tl.program_id(0).to(tl.int64)
    start = tl.load(rowptr_ptr + row).to(tl.int64)
    end = tl.load(rowptr_ptr + row + 1).to(tl.int64)
    rscale = 1.0
    if HAS_ROW_SCALE:
        rscale = tl.load(row_scale_ptr + row)
    for e0 in range(start, end, BLOCK_E):
        offs_e = e0 + tl.arange(0, BLOCK_E)
        inside = offs_e < end
        emask = inside
        if HAS_MASK:
            emask = emask & (tl.load(mask_ptr + offs_e, mask=inside, other=0) != 0)
        src = tl.load(col_ptr + offs_e, mask=emask, other=0).to(tl.int64)
        dot = tl.zeros([BLOCK_E], dtype=tl.float32)
        for f0 in range(0, F, BLOCK_F):
            offs_f = f0 + tl.arange(0, BLOCK_F)
            fmask = offs_f < F
            gv = tl.load(g_ptr + row * stride_g + offs_f, mask=fmask, other=0.0).to(tl.float32)
            xv = tl.load(x_ptr + src[:, None] * stride_x + offs_f[None, :], mask=emask[:, None] & fmask[None, :],
                         other=0.0).to(tl.float32)
            dot += tl.sum(xv * gv[None, :], axis=1)
        dot = dot * rscale
        if HAS_COL_SCALE:
            dot = dot * tl.load(col_scale_ptr + src, mask=emask, other=0.0)
        tl.store(out_ptr + offs_e, tl.where(emask, dot, 0.0), mask=inside)


# Slots per inner step and features per program. 32 x 64 keeps the gathered tile at 2048 fp32 values,
# well inside the register file; wider feature blocks (F > 64) just use more programs along axis 1.
_BLOCK_E = 32
_MAX_BLOCK_F = 64


def _block_f(num_features: int) -> int:
    return max(16, min(_MAX_BLOCK_F, triton.next_power_of_2(max(num_features, 1))))


def masked_spmm_forward(rowptr: Tensor, col: Tensor, x: Tensor, mask: Tensor | None, edge_weight: Tensor | None,
                        row_scale: Tensor | None = None, col_scale: Tensor | None = None,
                        self_scale: Tensor | None = None) -> Tensor:
    """Launch ``diag(row_scale) B diag(col_scale) x + diag(self_scale) x`` (see the comment above).

    Shapes: rowptr [R + 1], col / mask / edge_weight [S], x [M, F], scales [R] / [M] / [R] -> [R, F].
    """
    num_rows, num_features = rowptr.numel() - 1, x.size(1)
    # the kernels index every array with unit stride
    x, rowptr, col = x.contiguous(), rowptr.contiguous(), col.contiguous()
    mask = None if mask is None else mask.contiguous()
    edge_weight = None if edge_weight is None else edge_weight.contiguous()
    out = torch.empty(num_rows, num_features, dtype=x.dtype, device=x.device)
    if num_rows == 0 or num_features == 0:
        return out
    dummy = x  # never read: the matching HAS_* flag is off
    block_f = _block_f(num_features)
    grid = (num_rows, triton.cdiv(num_features, block_f))
    _spmm_rows_kernel[grid](
        rowptr, col, dummy if mask is None else mask.view(torch.int8), dummy if edge_weight is None else edge_weight,
        x, dummy if row_scale is None else row_scale, dummy if col_scale is None else col_scale,
        dummy if self_scale is None else self_scale, out, num_features, x.stride(0), out.stride(0),
        HAS_MASK=mask is not None, HAS_W=edge_weight is not None, HAS_ROW_SCALE=row_scale is not None,
        HAS_COL_SCALE=col_scale is not None, HAS_SELF=self_scale is not None, BLOCK_E=_BLOCK_E, BLOCK_F=block_f,
    )
    return out


def masked_sddmm(rowptr: Tensor, col: Tensor, grad_out: Tensor, x: Tensor, mask: Tensor | None,
                 row_scale: Tensor | None = None, col_scale: Tensor | None = None) -> Tensor:
    """Per-slot ``row_scale[i] * col_scale[j] * <grad_out[i], x[j]>`` on live slots, 0 elsewhere: the
    edge-weight gradient. Shapes: grad_out [R, F], x [M, F] -> [S] float32."""
    num_rows = rowptr.numel() - 1
    out = torch.zeros(col.numel(), dtype=torch.float32, device=x.device)
    if num_rows == 0 or col.numel() == 0:
        return out
    grad_out, x, rowptr, col = grad_out.contiguous(), x.contiguous(), rowptr.contiguous(), col.contiguous()
    mask = None if mask is None else mask.contiguous()
    dummy = x
    _sddmm_rows_kernel[(num_rows,)](
        rowptr, col, dummy if mask is None else mask.view(torch.int8), grad_out, x,
        dummy if row_scale is None else row_scale, dummy if col_scale is None else col_scale, out,
        x.size(1), grad_out.stride(0), x.stride(0), HAS_MASK=mask is not None,
        HAS_ROW_SCALE=row_scale is not None, HAS_COL_SCALE=col_scale is not None,
        BLOCK_E=_BLOCK_E, BLOCK_F=_block_f(x.size(1)),
    )
    return out


def sort_by_row(rows: Tensor, num_rows: int) -> tuple[Tensor, Tensor]:
    """The one CSR builder: ``(rowptr [num_rows + 1], perm [K])`` such that ``perm`` lists the entries of
    ``rows`` grouped by row, in input order within a row (a stable sort, so it is deterministic), and row
    ``r`` owns ``perm[rowptr[r]:rowptr[r + 1]]``. O(K log K); on the device of ``rows``."""
    rows = rows.long()
    perm = torch.sort(rows, stable=True).indices
    counts = torch.zeros(num_rows, dtype=torch.long, device=rows.device).index_add_(
        0, rows, torch.ones_like(rows))  # bincount would read the largest row back to the host
    rowptr = torch.zeros(num_rows + 1, dtype=torch.long, device=rows.device)
    torch.cumsum(counts, 0, out=rowptr[1:])
    return rowptr, perm


def transpose_csr(rowptr: Tensor, col: Tensor, num_cols: int) -> tuple[Tensor, Tensor, Tensor]:
    """CSC of a CSR pattern: ``(rowptr_t [M + 1], col_t [S], perm_t [S])`` with ``perm_t`` mapping each CSC
    position to its CSR position (stable, so it is deterministic)."""
    row = csr_row_index(rowptr, col.numel()).to(col.dtype)
    rowptr_t, perm_t = sort_by_row(col, num_cols)
    return rowptr_t.to(rowptr.dtype), row[perm_t], perm_t


class MaskedSpmmFunction(torch.autograd.Function):
    """Forward on CSR, backward for ``x`` on the transpose with the same mask and scales swapped, backward
    for the edge weights as a masked SDDMM. The scales are constants here (the dispatcher sends
    differentiable-degree cases to the reference)."""

    @staticmethod
    def forward(ctx, x, edge_weight, rowptr, col, mask, row_scale, col_scale, self_scale, transpose):
        out = masked_spmm_forward(rowptr, col, x, mask, edge_weight, row_scale, col_scale, self_scale)
        ctx.save_for_backward(x, edge_weight, rowptr, col, mask, row_scale, col_scale, self_scale)
        ctx.transpose = transpose
        return out

    @staticmethod
    def backward(ctx, grad_out):
        x, edge_weight, rowptr, col, mask, row_scale, col_scale, self_scale = ctx.saved_tensors
        grad_x = grad_w = None
        if ctx.needs_input_grad[0]:
            if ctx.transpose == "symmetric":  # B^T = B: reuse the CSR itself
                rowptr_t, col_t, mask_t, w_t = rowptr, col, mask, edge_weight
            else:
                rowptr_t, col_t, perm_t = ctx.transpose or transpose_csr(rowptr, col, x.size(0))
                mask_t = None if mask is None else mask[perm_t]
                w_t = None if edge_weight is None else edge_weight[perm_t]
            grad_x = masked_spmm_forward(rowptr_t, col_t, grad_out.float(), mask_t, w_t,
                                         col_scale, row_scale, self_scale).to(x.dtype)
        if edge_weight is not None and ctx.needs_input_grad[1]:
            grad_w = masked_sddmm(rowptr, col, grad_out, x, mask, row_scale, col_scale).to(edge_weight.dtype)
        return grad_x, grad_w, None, None, None, None, None, None, None


# --------------------------------------------------------------------------------------------- CPU fast path
# On CPU, gather + index_add_ (the reference) runs about 4x slower than torch.sparse.mm's CSR product at
# 2M edges (measured on this project's 2-core CI machine). This path builds a CSR tensor over the full,
# cached pattern with the masked slots' values set to zero, so no rebuild is needed after a deletion. A
# zero value still multiplies the deleted row, so it only runs when x is finite (0 * x == 0 exactly);
# otherwise the reference runs and never reads deleted rows at all.


def _slot_values(rowptr: Tensor, col: Tensor, mask: Tensor | None, edge_weight: Tensor | None,
                 row_scale: Tensor | None, col_scale: Tensor | None, dtype: torch.dtype) -> Tensor:
    vals = torch.ones(col.numel(), dtype=dtype, device=col.device) if edge_weight is None \
        else edge_weight.detach().to(dtype).clone()
    if row_scale is not None:
        vals.mul_(row_scale.to(dtype)[csr_row_index(rowptr, vals.numel())])
    if col_scale is not None:
        vals.mul_(col_scale.to(dtype)[col.long()])
    if mask is not None:  # where, not a product: a NaN weight on a deleted slot must not survive
        vals = torch.where(mask, vals, torch.zeros((), dtype=dtype, device=vals.device))
    return vals


def _sparse_mm(rowptr: Tensor, col: Tensor, vals: Tensor, num_cols: int, x: Tensor) -> Tensor:
    # "sparse CSR support is in beta": known, and not the user's concern; under autocast, sparse.mm stays in
    # the inputs' float32 (there is no bfloat16 sparse CSR product on the CPU)
    with warnings.catch_warnings(), torch.autocast(x.device.type, enabled=False):
        warnings.simplefilter("ignore", UserWarning)
        a = torch.sparse_csr_tensor(rowptr.long(), col.long(), vals, (rowptr.numel() - 1, num_cols),
                                    check_invariants=False)
        return torch.sparse.mm(a, x)


class _SparseMMFunction(torch.autograd.Function):
    """``diag(r) B diag(c) x + diag(d) x`` through ``torch.sparse.mm``; backward on the transpose."""

    @staticmethod
    def forward(ctx, x, edge_weight, rowptr, col, mask, row_scale, col_scale, self_scale, transpose):
        dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
        xc = x.to(dtype)
        vals = _slot_values(rowptr, col, mask, edge_weight, row_scale, col_scale, dtype)
        out = _sparse_mm(rowptr, col, vals, x.size(0), xc)
        if self_scale is not None:
            out = out + self_scale.to(dtype).unsqueeze(1) * xc
        ctx.save_for_backward(x, edge_weight, rowptr, col, mask, row_scale, col_scale, self_scale, vals)
        ctx.transpose = transpose
        return out.to(x.dtype)

    @staticmethod
    def backward(ctx, grad_out):
        x, edge_weight, rowptr, col, mask, row_scale, col_scale, self_scale, vals = ctx.saved_tensors
        g = grad_out.to(vals.dtype)
        grad_x = grad_w = None
        if ctx.needs_input_grad[0]:
            if ctx.transpose == "symmetric":  # same pattern; A^T[i, j] = m w r[j] c[i]
                vals_t = _slot_values(rowptr, col, mask, edge_weight, col_scale, row_scale, vals.dtype)
                rowptr_t, col_t = rowptr, col
            else:
                rowptr_t, col_t, perm_t = ctx.transpose or transpose_csr(rowptr, col, x.size(0))
                vals_t = vals[perm_t]
            grad_x = _sparse_mm(rowptr_t, col_t, vals_t, rowptr.numel() - 1, g)
            if self_scale is not None:
                grad_x = grad_x + self_scale.to(g.dtype).unsqueeze(1) * g
            grad_x = grad_x.to(x.dtype)
        if edge_weight is not None and ctx.needs_input_grad[1]:
            row, src = csr_row_index(rowptr, col.numel()), col.long()
            coef = torch.ones_like(vals) if mask is None else mask.to(vals.dtype)
            if row_scale is not None:
                coef = coef * row_scale.to(vals.dtype)[row]
            if col_scale is not None:
                coef = coef * col_scale.to(vals.dtype)[src]
            grad_w = torch.empty_like(vals)
            step = max(1, (1 << 24) // max(1, x.size(1)))  # bound the [slots, F] temporaries to 16M values
            for s0 in range(0, col.numel(), step):
                sl = slice(s0, s0 + step)
                grad_w[sl] = (g[row[sl]] * x.to(vals.dtype)[src[sl]]).sum(1) * coef[sl]
            grad_w = grad_w.to(edge_weight.dtype)
        return grad_x, grad_w, None, None, None, None, None, None, None


def _scales(rowptr, mask, edge_weight, reduce, normalize, deg, self_loops, dtype):
    """The (row, column, self) scales of the operator's form ``diag(r) B diag(c) + diag(d)``."""
    row_scale = col_scale = self_scale = None
    if normalize:
        d = live_degree(rowptr, mask, edge_weight, self_loops=self_loops, dtype=dtype) if deg is None \
            else deg.to(dtype)
        row_scale = col_scale = _inv_sqrt(d)
        self_scale = row_scale * row_scale if self_loops else None  # 0, not inf, where deg <= 0
    elif reduce == "mean":
        row_scale = live_degree(rowptr, mask, dtype=dtype).clamp_(min=1).reciprocal()
    return row_scale, col_scale, self_scale


_TRITON_DTYPES = (torch.float16, torch.bfloat16, torch.float32)


def _host_finite(x: Tensor, edge_weight: Tensor | None) -> bool:
    """Whether ``x`` and the weights are finite, for CPU tensors only (reading the answer is free there). One
    reduction each: NaN and Inf survive a sum, and an overflowing sum of finite values only sends the call
    to the exact reference. ``torch.isfinite(x).all()`` measured about 5x slower here."""
    acc = torch.float64 if x.dtype == torch.float64 else torch.float32
    return bool(torch.isfinite(x.sum(dtype=acc))) and (
        edge_weight is None or bool(torch.isfinite(edge_weight.sum(dtype=acc))))


def masked_spmm(rowptr: Tensor, col: Tensor, x: Tensor, mask: Tensor | None = None,
                edge_weight: Tensor | None = None, *, reduce: str = "sum", normalize: bool = False,
                deg: Tensor | None = None, self_loops: bool = True, transpose=None,
                backend: str | None = None) -> Tensor:
    r"""Masked CSR aggregation, dispatched to the best available backend.

    Same arguments, shapes and result as :func:`masked_spmm_reference`, plus:

    Args:
        transpose: how the backward finds the transpose: ``"symmetric"`` when the pattern, mask and weights
            are symmetric (an undirected graph; the CSR is reused), a tuple ``(rowptr_t, col_t, perm_t)``
            from :func:`transpose_csr` (cache it), or ``None`` to build it on each backward.
        backend: ``"torch"`` or ``"triton"`` (default: ``GRAPHUNLEARN_BACKEND``, else automatic: Triton for
            CUDA tensors, torch elsewhere). Triton takes float16/bfloat16/float32 and computes in float32.
            The torch backend runs ``torch.sparse.mm`` over the cached pattern with masked slots zeroed
            for finite CPU inputs, and the gather reference otherwise (always on a device, where the
            finiteness probe would synchronise with the host every call). Gradients through
            the GCN degrees (edge weights that require grad without ``deg``, or a ``deg`` that requires
            grad) always run on the reference.
    """
    _check_inputs(rowptr, col, x, mask, edge_weight, reduce, normalize, deg)
    differentiable_degree = normalize and (
        (deg is None and edge_weight is not None and edge_weight.requires_grad)
        or (deg is not None and deg.requires_grad))
    ok, why = triton_can_run(rowptr, col, x, mask, edge_weight)
    if ok and x.dtype not in _TRITON_DTYPES:
        ok, why = False, f"dtype {x.dtype} (Triton path: {[str(d) for d in _TRITON_DTYPES]})"
    if ok and differentiable_degree:
        ok, why = False, "edge-weight gradients through the GCN degree normalisation are reference-only"
    dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
    scales = None if differentiable_degree else _scales(rowptr, mask, edge_weight, reduce, normalize, deg,
                                                        self_loops, dtype)
    chosen = choose_backend("masked_spmm", ok, why, backend)
    # counted here, where the backend is chosen: the x-gradient and the edge-weight SDDMM are counted on the
    # backward (see kernels/_counters.py)
    grads = (("aggregate_backward",) if x.requires_grad else ()) + (
        ("aggregate_weight_backward",) if edge_weight is not None and edge_weight.requires_grad else ())
    if chosen == "triton":
        out = MaskedSpmmFunction.apply(x, edge_weight, rowptr, col, mask, *scales, transpose)
        return record_call("aggregate_forward", "triton", out, grads)
    # On the CPU, sparse.mm over the cached pattern is the fast path when x is finite (a masked slot then
    # contributes 0 * x = 0; with a NaN it would leak NaN from a deleted row), which one host-side probe
    # tells. On a device that probe would stall every step, so there the exact gather reference runs.
    in_dtype = x.dtype
    low = in_dtype in (torch.float16, torch.bfloat16)  # the torch path computes these in float32
    if low:
        x = x.float()
    finite = x.device.type == "cpu" and _host_finite(x, edge_weight)
    if scales is None or not finite:
        out = masked_spmm_reference(rowptr, col, x, mask, edge_weight, reduce=reduce, normalize=normalize,
                                    deg=deg, self_loops=self_loops)
    else:
        out = _SparseMMFunction.apply(x, edge_weight, rowptr, col, mask, *scales, transpose)
    if low:
        out = out.to(in_dtype)
    return record_call("aggregate_forward", "torch", out, grads)
