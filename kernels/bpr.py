r"""Fused BPR and reverse BPR over user and item embedding tables.

For triples :math:`(u, i, j)` (a user, an item and a sampled negative item) with sign :math:`s = \pm 1` and
weight :math:`w`,

.. math::
    L = \sum_b w_b \, \mathrm{softplus}\big(-s_b (\langle e_u, e_i \rangle - \langle e_u, e_j \rangle)\big)
      = -\sum_b w_b \ln \sigma\big(s_b (x_{ui} - x_{uj})\big).

``s = +1`` is BPR (Rendle et al., UAI 2009) on retained interactions; ``s = -1`` is the reverse BPR of
MMRecUn (arXiv 2405.15328) on forgotten ones, ``-ln sigmoid(x_uj - x_ui)``. The Triton forward reads the
three rows of each triple block by block and never materialises the gathered [B, d] tensors; the backward
is two deterministic sparse products (no atomics) on the masked-aggregation kernel:
``grad_user = A_U @ item_emb`` and ``grad_item = A_I @ user_emb``, where ``A_U`` holds ``c_b`` at ``(u, i)``
and ``-c_b`` at ``(u, j)`` and ``A_I`` its transpose, with :math:`c_b = \partial L / \partial (x_{ui} - x_{uj})`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ._backend import choose_backend, reduce_loss, tl, triton, triton_can_run
from ._counters import record_call
from .masked_spmm import masked_spmm_forward, sort_by_row

REDUCTIONS = ("mean", "sum", "none")


def _check(user_emb, item_emb, users, pos, neg, sign, weight, reduction) -> None:
    if reduction not in REDUCTIONS:
        raise ValueError(f"bpr_loss: reduction={reduction!r} is not one of {REDUCTIONS}")
    if user_emb.dim() != 2 or item_emb.dim() != 2 or user_emb.size(1) != item_emb.size(1):
        raise ValueError(f"bpr_loss: user_emb [U, d] and item_emb [I, d] need one d, got {tuple(user_emb.shape)} "
                         f"and {tuple(item_emb.shape)}")
    for name, t in (("users", users), ("pos", pos), ("neg", neg)):
        if t.dim() != 1 or t.is_floating_point() or t.dtype == torch.bool:
            raise TypeError(f"bpr_loss: {name} must be a 1-D integer tensor, got {tuple(t.shape)} {t.dtype}")
    if not users.numel() == pos.numel() == neg.numel():
        raise ValueError(f"bpr_loss: users, pos, neg must have one length, got {users.numel()}, {pos.numel()}, "
                         f"{neg.numel()}")
    for name, t in (("sign", sign), ("weight", weight)):
        if t is not None and t.shape != users.shape:
            raise ValueError(f"bpr_loss: {name} must have shape [{users.numel()}], got {tuple(t.shape)}")



def bpr_loss_reference(user_emb: Tensor, item_emb: Tensor, users: Tensor, pos: Tensor, neg: Tensor,
                       sign: Tensor | None = None, weight: Tensor | None = None, reduction: str = "mean") -> Tensor:
    r"""Eager PyTorch (reverse) BPR (see the module docstring).

    Args:
        user_emb: user embeddings.
        item_emb: item embeddings.
        users, pos, neg: the triples (row indices into the two tables).
        sign: +1 (BPR) or -1 (reverse BPR) per triple (default: all +1).
        weight: per-triple weights (default: all ones).
        reduction: ``"mean"`` (default), ``"sum"`` or ``"none"``.

    Shapes: user_emb [U, d], item_emb [I, d], users / pos / neg / sign / weight [B] -> scalar, or [B].
    """
    _check(user_emb, item_emb, users, pos, neg, sign, weight, reduction)
    u = user_emb[users]
    diff = (u * (item_emb[pos] - item_emb[neg])).sum(dim=1).float()
    if sign is not None:
        diff = diff * sign.float()
    per = F.softplus(-diff)
    if weight is not None:
        per = per * weight.float()
    return reduce_loss(per, reduction)


@triton.jit
def _bpr_forward_kernel(
    user_ptr,  # [U, d] user embeddings, row stride stride_u
    item_ptr,  # [I, d] item embeddings, row stride stride_i
    users_ptr,  # [B] int32/int64
    pos_ptr,  # [B] int32/int64
    neg_ptr,  # [B] int32/int64
    sign_ptr,  # [B] float; unused without HAS_SIGN
    w_ptr,  # [B] float; unused without HAS_W
    loss_ptr,  # [B] float32 per-triple loss
    coef_ptr,  # [B] float32 d loss_b / d (x_ui - x_uj)
    B,
    D,
    stride_u,
    stride_i,
    HAS_SIGN: tl.constexpr,
    HAS_W: tl.constexpr,
    BLOCK_B: tl.constexpr,
    BLOCK_D: tl.constexpr,
):
    offs_b = tl.program_id(0).to(tl.int64) * BLOCK_B + tl.arange(0, BLOCK_B)
    bmask = offs_b < B
    u = tl.load(users_ptr + offs_b, mask=bmask, other=0).to(tl.int64)
    i = tl.load(pos_ptr + offs_b, mask=bmask, other=0).to(tl.int64)
    j = tl.load(neg_ptr + offs_b, mask=bmask, other=0).to(tl.int64)
    diff = tl.zeros([BLOCK_B], tl.float32)
    for d0 in range(0, D, BLOCK_D):
        offs_d = d0 + tl.arange(0, BLOCK_D)
        m2 = bmask[:, None] & (offs_d[None, :] < D)
        eu = tl.load(user_ptr + u[:, None] * stride_u + offs_d[None, :], mask=m2, other=0.0).to(tl.float32)
        ei = tl.load(item_ptr + i[:, None] * stride_i + offs_d[None, :], mask=m2, other=0.0).to(tl.float32)
        ej = tl.load(item_ptr + j[:, None] * stride_i + offs_d[None, :], mask=m2, other=0.0).to(tl.float32)
        diff += tl.sum(eu * (ei - ej), axis=1)
    s = tl.full([BLOCK_B], 1.0, tl.float32)
    if HAS_SIGN:
        s = tl.load(sign_ptr + offs_b, mask=bmask, other=1.0).to(tl.float32)
    w = tl.full([BLOCK_B], 1.0, tl.float32)
    if HAS_W:
        w = tl.load(w_ptr + offs_b, mask=bmask, other=0.0).to(tl.float32)
    x = -s * diff  # loss = softplus(x), stable form: max(x, 0) + log(1 + exp(-|x|))
    loss = (tl.maximum(x, 0.0) + tl.log(1.0 + tl.exp(-tl.abs(x)))) * w
    coef = -s * w / (1.0 + tl.exp(-x))  # d softplus(x) / d diff = sigmoid(x) * (-s)
    tl.store(loss_ptr + offs_b, loss, mask=bmask)
    tl.store(coef_ptr + offs_b, coef, mask=bmask)


# 64 triples x 64 features: three 4096-value fp32 tiles per step.
_BLOCK_B = 64
_BLOCK_D = 64


def _spmm_from_pairs(rows: Tensor, cols: Tensor, vals: Tensor, num_rows: int, x: Tensor) -> Tensor:
    """Sum of ``vals[k] * x[cols[k]]`` into ``rows[k]``: a CSR built by a stable sort, then the masked
    aggregation kernel (deterministic: each output row is reduced by one program, in a fixed order)."""
    rowptr, order = sort_by_row(rows, num_rows)
    return masked_spmm_forward(rowptr, cols[order].contiguous(), x, None, vals[order].contiguous())


class _BPRFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, user_emb, item_emb, users, pos, neg, sign, weight, reduction):
        b, d = users.numel(), user_emb.size(1)
        ue, ie = user_emb.contiguous(), item_emb.contiguous()
        loss = torch.empty(b, dtype=torch.float32, device=ue.device)
        coef = torch.empty(b, dtype=torch.float32, device=ue.device)
        if b:
            _bpr_forward_kernel[(triton.cdiv(b, _BLOCK_B),)](
                ue, ie, users.contiguous(), pos.contiguous(), neg.contiguous(),
                loss if sign is None else sign.contiguous(),
                loss if weight is None else weight.contiguous(), loss, coef, b, d, ue.stride(0), ie.stride(0),
                HAS_SIGN=sign is not None, HAS_W=weight is not None, BLOCK_B=_BLOCK_B, BLOCK_D=_BLOCK_D)
        ctx.reduction = reduction
        ctx.save_for_backward(ue, ie, users, pos, neg, coef)
        return reduce_loss(loss, reduction)

    @staticmethod
    def backward(ctx, grad_out):
        ue, ie, users, pos, neg, coef = ctx.saved_tensors
        if ctx.reduction == "none":
            c = coef * grad_out.float()
        else:
            c = coef * (grad_out.float() / (coef.numel() if ctx.reduction == "mean" and coef.numel() else 1))
        vals = torch.cat([c, -c])
        grad_u = grad_i = None
        if ctx.needs_input_grad[0]:
            grad_u = _spmm_from_pairs(torch.cat([users, users]).long(), torch.cat([pos, neg]), vals, ue.size(0), ie)
        if ctx.needs_input_grad[1]:
            grad_i = _spmm_from_pairs(torch.cat([pos, neg]).long(), torch.cat([users, users]), vals, ie.size(0), ue)
        return grad_u, grad_i, None, None, None, None, None, None


_TRITON_DTYPES = (torch.float16, torch.bfloat16, torch.float32)
_BPR_BACKWARD = ("bpr_backward",)


def bpr_loss(user_emb: Tensor, item_emb: Tensor, users: Tensor, pos: Tensor, neg: Tensor,
             sign: Tensor | None = None, weight: Tensor | None = None, reduction: str = "mean",
             backend: str | None = None) -> Tensor:
    r"""(Reverse) BPR, fused on the Triton backend; same arguments and result as :func:`bpr_loss_reference`,
    plus ``backend`` (default: ``GRAPHUNLEARN_BACKEND``, else Triton on CUDA, the reference elsewhere).
    Gradients flow to both embedding tables (not to ``sign`` or ``weight``)."""
    _check(user_emb, item_emb, users, pos, neg, sign, weight, reduction)
    ok, why = triton_can_run(user_emb, item_emb, users, pos, neg, sign, weight)
    if ok and (user_emb.dtype not in _TRITON_DTYPES or item_emb.dtype != user_emb.dtype):
        ok, why = False, f"embedding dtypes {user_emb.dtype}/{item_emb.dtype} (Triton path: one of fp16/bf16/fp32)"
    if ok and any(t is not None and t.requires_grad for t in (sign, weight)):
        ok, why = False, "sign and weight get no gradient on the Triton path"
    if choose_backend("bpr_loss", ok, why, backend) == "torch":
        out = bpr_loss_reference(user_emb, item_emb, users, pos, neg, sign, weight, reduction)
        return record_call("bpr_forward", "torch", out, _BPR_BACKWARD)
    # the Triton backward runs on the aggregation launcher, not the dispatcher: counted as bpr_backward only
    out = _BPRFunction.apply(user_emb, item_emb, users, pos, neg, sign, weight, reduction)
    return record_call("bpr_forward", "triton", out, _BPR_BACKWARD)
