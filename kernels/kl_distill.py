r"""Fused knowledge-distillation loss: temperature-scaled KL between teacher and student distributions.

.. math::
    L = \sum_i w_i \, \tau^2 \, \mathrm{KL}\big(\mathrm{softmax}(T_i / \tau) \,\|\, \mathrm{softmax}(S_i / \tau)\big),
    \qquad \frac{\partial L}{\partial S_{ic}} = w_i \, \tau \, (q_{ic} - p_{ic}),

with :math:`p_i = \mathrm{softmax}(T_i / \tau)` and :math:`q_i = \mathrm{softmax}(S_i / \tau)`
(Hinton et al., "Distilling the Knowledge in a Neural Network", 2015; the soft-target term of D2DGN,
arXiv 2309.16173). Per-row weights let retained rows follow one teacher and forgotten rows another in one
call. The Triton kernel reads each row once for the loss (online log-sum-exp over column blocks) and once
more to write the gradient, so no [N, C] probability tensor is ever materialised besides the gradient.

The two-class form for link scores compares a student logit per edge, ``q = sigmoid(z / tau)``, with a
teacher probability ``p``: :math:`L = \sum_e w_e \tau^2 [p \log(p/q) + (1-p) \log((1-p)/(1-q))]`, gradient
:math:`w_e \tau (q - p)`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ._backend import choose_backend, reduce_loss, tl, triton, triton_can_run
from ._counters import record_call

REDUCTIONS = ("sum", "mean", "none")


def _check(student: Tensor, teacher: Tensor, weight: Tensor | None, tau: float, reduction: str, dims: int) -> None:
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction={reduction!r} is not one of {REDUCTIONS}")
    if not tau > 0:
        raise ValueError(f"tau must be positive, got {tau}")
    if student.dim() != dims or student.shape != teacher.shape:
        raise ValueError(f"student and teacher must both be {dims}-D of one shape, got {tuple(student.shape)} "
                         f"and {tuple(teacher.shape)}")
    if not student.is_floating_point() or not teacher.is_floating_point():
        raise TypeError(f"student and teacher must be floating, got {student.dtype} and {teacher.dtype}")
    if weight is not None and weight.shape != (student.size(0),):
        raise ValueError(f"weight must have shape [{student.size(0)}], got {tuple(weight.shape)}")



def kl_distill_loss_reference(student: Tensor, teacher: Tensor, weight: Tensor | None = None, tau: float = 1.0,
                              reduction: str = "sum") -> Tensor:
    r"""Eager PyTorch form of the loss (see the module docstring); the teacher gets no gradient.

    Args:
        student: student logits.
        teacher: teacher logits (detached here).
        weight: per-row weights (default: all ones).
        tau: temperature (default 1.0).
        reduction: ``"sum"`` (default), ``"mean"`` over rows, or ``"none"`` (per-row losses).

    Shapes: student / teacher [N, C], weight [N] -> scalar, or [N] with ``reduction="none"``.
    """
    _check(student, teacher, weight, tau, reduction, 2)
    log_q = F.log_softmax(student.float() / tau, dim=1)
    log_p = F.log_softmax(teacher.detach().float() / tau, dim=1)
    per_row = (log_p.exp() * (log_p - log_q)).sum(dim=1) * tau * tau
    if weight is not None:
        per_row = per_row * weight.float()
    return reduce_loss(per_row, reduction)


def binary_kl_distill_loss_reference(student: Tensor, teacher_prob: Tensor, weight: Tensor | None = None,
                                     tau: float = 1.0, reduction: str = "sum") -> Tensor:
    r"""Eager two-class form: student logits [E] against teacher probabilities [E] (see the module docstring)."""
    _check(student, teacher_prob, weight, tau, reduction, 1)
    z = student.float() / tau
    p = teacher_prob.detach().float()
    log_q, log_1q = -F.softplus(-z), -F.softplus(z)
    per_edge = (torch.xlogy(p, p) - p * log_q + torch.xlogy(1 - p, 1 - p) - (1 - p) * log_1q) * tau * tau
    if weight is not None:
        per_edge = per_edge * weight.float()
    return reduce_loss(per_edge, reduction)


# --------------------------------------------------------------------------------------------- Triton
@triton.jit
def _kl_rows_kernel(
    s_ptr,  # [N, C] student logits, row stride stride_s
    t_ptr,  # [N, C] teacher logits, row stride stride_t
    w_ptr,  # [N] float row weights; unused without HAS_W
    loss_ptr,  # [N] float32 per-row loss (weighted)
    grad_ptr,  # [N, C] float32 d loss_i / d S_i, row-major; unused without WRITE_GRAD
    N,
    C,
    stride_s,
    stride_t,
    inv_tau,
    tau,
    HAS_W: tl.constexpr,
    WRITE_GRAD: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_C: tl.constexpr,
):
    rows = tl.program_id(0).to(tl.int64) * BLOCK_N + tl.arange(0, BLOCK_N)
    rmask = rows < N
    neg_inf = float("-inf")
    m_t = tl.full([BLOCK_N], neg_inf, tl.float32)
    m_s = tl.full([BLOCK_N], neg_inf, tl.float32)
    z_t = tl.zeros([BLOCK_N], tl.float32)
    z_s = tl.zeros([BLOCK_N], tl.float32)
    acc = tl.zeros([BLOCK_N], tl.float32)  # sum_c exp(a_c - m_t) * (a_c - b_c)
    for c0 in range(0, C, BLOCK_C):
        cols = c0 + tl.arange(0, BLOCK_C)
        m2 = rmask[:, None] & (cols[None, :] < C)
        a = tl.load(t_ptr + rows[:, None] * stride_t + cols[None, :], mask=m2, other=neg_inf).to(tl.float32) * inv_tau
        b = tl.load(s_ptr + rows[:, None] * stride_s + cols[None, :], mask=m2, other=neg_inf).to(tl.float32) * inv_tau
        new_t = tl.maximum(m_t, tl.max(a, axis=1))
        new_s = tl.maximum(m_s, tl.max(b, axis=1))
        # Padding rows keep -inf maxima; clamp so the rescaling factors stay finite (they multiply zeros).
        safe_t = tl.where(new_t == neg_inf, 0.0, new_t)
        safe_s = tl.where(new_s == neg_inf, 0.0, new_s)
        scale_t = tl.exp(m_t - safe_t)
        e_t = tl.where(m2, tl.exp(a - safe_t[:, None]), 0.0)
        diff = tl.where(m2, a, 0.0) - tl.where(m2, b, 0.0)
        z_t = z_t * scale_t + tl.sum(e_t, axis=1)
        acc = acc * scale_t + tl.sum(e_t * diff, axis=1)
        z_s = z_s * tl.exp(m_s - safe_s) + tl.sum(tl.where(m2, tl.exp(b - safe_s[:, None]), 0.0), axis=1)
        m_t, m_s = new_t, new_s
    # Rows past N (padding) have nothing summed: give them harmless values, they are never stored.
    z_t = tl.where(rmask, z_t, 1.0)
    z_s = tl.where(rmask, z_s, 1.0)
    m_t = tl.where(rmask, m_t, 0.0)
    m_s = tl.where(rmask, m_s, 0.0)
    lse_t = m_t + tl.log(z_t)
    lse_s = m_s + tl.log(z_s)
    w = tl.full([BLOCK_N], 1.0, tl.float32)
    if HAS_W:
        w = tl.load(w_ptr + rows, mask=rmask, other=0.0).to(tl.float32)
    loss = (acc / z_t - lse_t + lse_s) * tau * tau * w
    tl.store(loss_ptr + rows, loss, mask=rmask)
    if WRITE_GRAD:
        coef = w * tau
        for c0 in range(0, C, BLOCK_C):
            cols = c0 + tl.arange(0, BLOCK_C)
            m2 = rmask[:, None] & (cols[None, :] < C)
            a = tl.load(t_ptr + rows[:, None] * stride_t + cols[None, :], mask=m2, other=0.0).to(tl.float32) * inv_tau
            b = tl.load(s_ptr + rows[:, None] * stride_s + cols[None, :], mask=m2, other=0.0).to(tl.float32) * inv_tau
            g = (tl.exp(b - lse_s[:, None]) - tl.exp(a - lse_t[:, None])) * coef[:, None]
            tl.store(grad_ptr + rows[:, None] * C + cols[None, :], g, mask=m2)


@triton.jit
def _binary_kl_kernel(
    z_ptr,  # [E] student logits
    p_ptr,  # [E] teacher probabilities
    w_ptr,  # [E] float weights; unused without HAS_W
    loss_ptr,  # [E] float32 per-edge loss
    grad_ptr,  # [E] float32 d loss_e / d z_e
    E,
    inv_tau,
    tau,
    HAS_W: tl.constexpr,
    BLOCK: tl.constexpr,
):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    m = offs < E
    z = tl.load(z_ptr + offs, mask=m, other=0.0).to(tl.float32) * inv_tau
    p = tl.load(p_ptr + offs, mask=m, other=0.0).to(tl.float32)
    # log sigmoid(z) = -softplus(-z), written to stay finite for large |z|
    sp_neg = tl.maximum(-z, 0.0) + tl.log(1.0 + tl.exp(-tl.abs(z)))  # softplus(-z)
    sp_pos = sp_neg + z  # softplus(z)
    xlogx_p = tl.where(p > 0, p * tl.log(tl.maximum(p, 1e-38)), 0.0)
    q1 = 1.0 - p
    xlogx_q = tl.where(q1 > 0, q1 * tl.log(tl.maximum(q1, 1e-38)), 0.0)
    w = tl.full([BLOCK], 1.0, tl.float32)
    if HAS_W:
        w = tl.load(w_ptr + offs, mask=m, other=0.0).to(tl.float32)
    loss = (xlogx_p + p * sp_neg + xlogx_q + q1 * sp_pos) * tau * tau * w
    q = 1.0 / (1.0 + tl.exp(-z))
    tl.store(loss_ptr + offs, loss, mask=m)
    tl.store(grad_ptr + offs, (q - p) * tau * w, mask=m)


# Rows per program and the column block: 16 x 128 fp32 tiles for the two inputs stay in registers; rows
# with more classes loop over column blocks, so a single huge row never needs one huge block.
_BLOCK_N = 16
_MAX_BLOCK_C = 128
_BLOCK_E = 1024


class _KLDistillFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, student, teacher, weight, tau, reduction):
        n, c = student.shape
        s, t = student.contiguous(), teacher.detach().contiguous()
        loss = torch.empty(n, dtype=torch.float32, device=s.device)
        write_grad = student.requires_grad
        grad = torch.empty(n, c, dtype=torch.float32, device=s.device) if write_grad else loss
        if n:
            block_c = max(16, min(_MAX_BLOCK_C, triton.next_power_of_2(c)))
            _kl_rows_kernel[(triton.cdiv(n, _BLOCK_N),)](
                s, t, loss if weight is None else weight.detach().contiguous(), loss, grad, n, c, s.stride(0),
                t.stride(0), 1.0 / tau, float(tau), HAS_W=weight is not None, WRITE_GRAD=write_grad,
                BLOCK_N=_BLOCK_N, BLOCK_C=block_c)
        ctx.reduction, ctx.dtype = reduction, student.dtype
        ctx.save_for_backward(grad if write_grad else None)
        return reduce_loss(loss, reduction)

    @staticmethod
    def backward(ctx, grad_out):
        (grad,) = ctx.saved_tensors
        if grad is None:
            return None, None, None, None, None
        if ctx.reduction == "none":
            g = grad * grad_out.float().unsqueeze(1)
        else:
            g = grad * (grad_out.float() / (grad.size(0) if ctx.reduction == "mean" else 1))
        return g.to(ctx.dtype), None, None, None, None


class _BinaryKLFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, student, teacher_prob, weight, tau, reduction):
        e = student.numel()
        loss = torch.empty(e, dtype=torch.float32, device=student.device)
        grad = torch.empty(e, dtype=torch.float32, device=student.device)
        if e:
            _binary_kl_kernel[(triton.cdiv(e, _BLOCK_E),)](
                student.contiguous(), teacher_prob.detach().contiguous(),
                loss if weight is None else weight.detach().contiguous(), loss, grad, e, 1.0 / tau, float(tau),
                HAS_W=weight is not None, BLOCK=_BLOCK_E)
        ctx.reduction, ctx.dtype = reduction, student.dtype
        ctx.save_for_backward(grad)
        return reduce_loss(loss, reduction)

    @staticmethod
    def backward(ctx, grad_out):
        (grad,) = ctx.saved_tensors
        scale = grad_out.float() / (grad.numel() if ctx.reduction == "mean" else 1)
        return (grad * scale).to(ctx.dtype), None, None, None, None


_TRITON_DTYPES = (torch.float16, torch.bfloat16, torch.float32)
_KL_BACKWARD = ("kl_backward",)


def _triton_ok(*tensors: Tensor) -> tuple[bool, str]:
    ok, why = triton_can_run(*tensors)
    if ok and any(t is not None and t.dtype not in _TRITON_DTYPES for t in tensors):
        return False, f"dtypes {[str(t.dtype) for t in tensors if t is not None]} (Triton path: fp16/bf16/fp32)"
    if ok and any(t is not None and t.requires_grad for t in tensors[1:]):
        return False, "the teacher and the weights get no gradient on the Triton path"
    return ok, why


def kl_distill_loss(student: Tensor, teacher: Tensor, weight: Tensor | None = None, tau: float = 1.0,
                    reduction: str = "sum", backend: str | None = None) -> Tensor:
    r"""Temperature-scaled KL distillation loss, fused on the Triton backend.

    Same arguments and result as :func:`kl_distill_loss_reference`, plus ``backend`` (``"torch"`` or
    ``"triton"``; default: ``GRAPHUNLEARN_BACKEND``, else Triton on CUDA and the reference elsewhere).
    Only the student receives a gradient.

    Shapes: student / teacher [N, C], weight [N] -> scalar, or [N] with ``reduction="none"``.
    """
    _check(student, teacher, weight, tau, reduction, 2)
    ok, why = _triton_ok(student, teacher.detach(), weight)
    if choose_backend("kl_distill_loss", ok, why, backend) == "torch":
        out = kl_distill_loss_reference(student, teacher, weight, tau, reduction)
        return record_call("kl_forward", "torch", out, _KL_BACKWARD)
    out = _KLDistillFunction.apply(student, teacher, weight, float(tau), reduction)
    return record_call("kl_forward", "triton", out, _KL_BACKWARD)


def binary_kl_distill_loss(student: Tensor, teacher_prob: Tensor, weight: Tensor | None = None, tau: float = 1.0,
                           reduction: str = "sum", backend: str | None = None) -> Tensor:
    r"""Two-class distillation for link scores (student logit per edge vs teacher probability), fused on Triton.

    Shapes: student / teacher_prob [E], weight [E] -> scalar, or [E] with ``reduction="none"``.
    """
    _check(student, teacher_prob, weight, tau, reduction, 1)
    ok, why = _triton_ok(student, teacher_prob.detach(), weight)
    if choose_backend("binary_kl_distill_loss", ok, why, backend) == "torch":
        out = binary_kl_distill_loss_reference(student, teacher_prob, weight, tau, reduction)
        return record_call("kl_forward", "torch", out, _KL_BACKWARD)
    out = _BinaryKLFunction.apply(student, teacher_prob, weight, float(tau), reduction)
    return record_call("kl_forward", "triton", out, _KL_BACKWARD)
