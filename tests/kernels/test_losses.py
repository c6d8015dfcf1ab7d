"""Fused KL distillation and (reverse) BPR: references against hand formulas, Triton against references."""

from __future__ import annotations

import math

import pytest
import torch

from graphunlearn.kernels import (
    WITH_TRITON,
    binary_kl_distill_loss,
    binary_kl_distill_loss_reference,
    bpr_loss,
    bpr_loss_reference,
    kl_distill_loss,
    kl_distill_loss_reference,
)
from tests.conftest import TRITON_DEVICE, assert_close

needs_triton = pytest.mark.skipif(not WITH_TRITON, reason="triton is not installed")
DTYPES = [(torch.float32, 1e-5, 1e-5), (torch.float16, 2e-2, 2e-2), (torch.bfloat16, 5e-2, 5e-2)]


# ------------------------------------------------------------------------------------------ references
def test_kl_reference_by_hand():
    s = torch.tensor([[0.0, math.log(3.0)]])  # softmax -> [1/4, 3/4]
    t = torch.tensor([[math.log(3.0), 0.0]])  # softmax -> [3/4, 1/4]
    kl = 0.75 * math.log(0.75 / 0.25) + 0.25 * math.log(0.25 / 0.75)
    assert kl_distill_loss_reference(s, t).item() == pytest.approx(kl, rel=1e-6)
    # tau scales logits and the loss by tau^2; weights scale rows
    assert kl_distill_loss_reference(s * 2, t * 2, tau=2.0).item() == pytest.approx(4 * kl, rel=1e-6)
    assert kl_distill_loss_reference(s, t, weight=torch.tensor([0.5])).item() == pytest.approx(kl / 2, rel=1e-6)
    assert kl_distill_loss_reference(t, t).item() == pytest.approx(0.0, abs=1e-7)


def test_binary_kl_reference_by_hand():
    z = torch.tensor([0.0, math.log(3.0)])  # q = 1/2, 3/4
    p = torch.tensor([0.25, 0.0])
    expect = [0.25 * math.log(0.25 / 0.5) + 0.75 * math.log(0.75 / 0.5), math.log(1 / 0.25)]
    got = binary_kl_distill_loss_reference(z, p, reduction="none")
    assert got.tolist() == pytest.approx(expect, rel=1e-6)


def test_bpr_reference_by_hand():
    ue = torch.tensor([[1.0, 0.0]])
    ie = torch.tensor([[2.0, 0.0], [0.5, 0.0]])
    users, pos, neg = torch.tensor([0, 0]), torch.tensor([0, 0]), torch.tensor([1, 1])
    sign = torch.tensor([1.0, -1.0])
    got = bpr_loss_reference(ue, ie, users, pos, neg, sign, reduction="none")
    # x_ui - x_uj = 1.5: BPR = -ln sigmoid(1.5), reverse BPR = -ln sigmoid(-1.5)
    assert got.tolist() == pytest.approx([-math.log(1 / (1 + math.exp(-1.5))), -math.log(1 / (1 + math.exp(1.5)))])


@pytest.mark.parametrize("fn,args", [
    (kl_distill_loss_reference, (torch.randn(3, 4), torch.randn(3, 5))),
    (binary_kl_distill_loss_reference, (torch.randn(3), torch.rand(4))),
])
def test_loss_shape_errors(fn, args):
    with pytest.raises(ValueError, match="one shape"):
        fn(*args)


def test_loss_argument_errors():
    s = torch.randn(3, 4)
    with pytest.raises(ValueError, match="tau must be positive"):
        kl_distill_loss(s, s, tau=0.0)
    with pytest.raises(ValueError, match="reduction='avg'"):
        kl_distill_loss(s, s, reduction="avg")
    with pytest.raises(ValueError, match=r"weight must have shape \[3\]"):
        kl_distill_loss(s, s, weight=torch.ones(4))
    e = torch.randn(5, 8)
    idx = torch.tensor([0, 1])
    with pytest.raises(TypeError, match="pos must be a 1-D integer"):
        bpr_loss(e, e, idx, idx.float(), idx)
    with pytest.raises(ValueError, match="one length"):
        bpr_loss(e, e, idx, idx, torch.tensor([0]))
    with pytest.raises(ValueError, match="need one d"):
        bpr_loss(e, torch.randn(5, 3), idx, idx, idx)


# ------------------------------------------------------------------------------------------ Triton
def _compare(fn_fused, fn_ref, inputs, grads_of, upstream_shape, atol, rtol, **kw):
    """Run both with a non-trivial upstream gradient and compare losses and gradients."""
    a = [t.clone().requires_grad_(i in grads_of) if t is not None else None for i, t in enumerate(inputs)]
    b = [t.clone().float().requires_grad_(i in grads_of) if t is not None and t.is_floating_point() else t
         for i, t in enumerate(inputs)]
    la, lb = fn_fused(*a, backend="triton", **kw), fn_ref(*b, **kw)
    up = torch.randn(upstream_shape, device=la.device) if upstream_shape else torch.tensor(1.7, device=la.device)
    (la.float() * up).sum().backward()
    (lb.float() * up).sum().backward()
    assert_close(la.float(), lb.float(), atol=atol, rtol=rtol, what="loss")
    for i in grads_of:
        assert_close(a[i].grad.float(), b[i].grad.float(), atol=atol, rtol=rtol, what=f"grad of input {i}")


@needs_triton
@pytest.mark.parametrize("n,c", [(5, 7), (37, 300), (1, 1), (0, 4), (20, 2)])
@pytest.mark.parametrize("reduction", ["sum", "mean", "none"])
@pytest.mark.parametrize("weighted", [False, True])
def test_kl_triton(n, c, reduction, weighted):
    g = torch.Generator().manual_seed(n * 1000 + c)
    s, t = torch.randn(n, c, generator=g) * 3, torch.randn(n, c, generator=g) * 3
    w = torch.rand(n, generator=g) if weighted else None
    dev = TRITON_DEVICE
    inputs = [s.to(dev), t.to(dev), None if w is None else w.to(dev)]
    _compare(kl_distill_loss, kl_distill_loss_reference, inputs, [0], (n,) if reduction == "none" else None,
             1e-5, 1e-4, tau=2.0, reduction=reduction)


@needs_triton
@pytest.mark.parametrize("dtype,atol,rtol", DTYPES, ids=["fp32", "fp16", "bf16"])
def test_kl_triton_dtypes(dtype, atol, rtol):
    s, t = torch.randn(9, 130), torch.randn(9, 130)
    inputs = [s.to(dtype).to(TRITON_DEVICE), t.to(dtype).to(TRITON_DEVICE), None]
    _compare(kl_distill_loss, kl_distill_loss_reference, inputs, [0], None, atol, rtol, tau=1.5)


@needs_triton
@pytest.mark.parametrize("reduction", ["sum", "mean", "none"])
def test_binary_kl_triton(reduction):
    g = torch.Generator().manual_seed(0)
    z = torch.randn(2500, generator=g) * 6  # more than one block, large |z|
    p = torch.rand(2500, generator=g)
    p[:3] = torch.tensor([0.0, 1.0, 0.5])
    w = torch.rand(2500, generator=g)
    dev = TRITON_DEVICE
    _compare(binary_kl_distill_loss, binary_kl_distill_loss_reference, [z.to(dev), p.to(dev), w.to(dev)], [0],
             (2500,) if reduction == "none" else None, 1e-5, 1e-4, tau=1.5, reduction=reduction)


@needs_triton
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("signed", [False, True])
@pytest.mark.parametrize("d", [70, 8])
def test_bpr_triton(reduction, signed, d):
    g = torch.Generator().manual_seed(d)
    nu, ni, b = 6, 13, 150  # repeated users and items in the batch: gradients must accumulate
    ue, ie = torch.randn(nu, d, generator=g) * 0.3, torch.randn(ni, d, generator=g) * 0.3
    users, pos, neg = (torch.randint(nu, (b,), generator=g), torch.randint(ni, (b,), generator=g),
                       torch.randint(ni, (b,), generator=g))
    sign = torch.where(torch.rand(b, generator=g) < 0.3, -1.0, 1.0) if signed else None
    w = torch.rand(b, generator=g) if signed else None
    dev = TRITON_DEVICE
    inputs = [t if t is None else t.to(dev) for t in (ue, ie, users, pos, neg, sign, w)]
    _compare(bpr_loss, bpr_loss_reference, inputs, [0, 1], (b,) if reduction == "none" else None, 1e-5, 1e-4,
             reduction=reduction)


@needs_triton
@pytest.mark.parametrize("dtype,atol,rtol", DTYPES, ids=["fp32", "fp16", "bf16"])
def test_bpr_triton_dtypes(dtype, atol, rtol):
    g = torch.Generator().manual_seed(1)
    ue, ie = torch.randn(5, 33, generator=g) * 0.3, torch.randn(9, 33, generator=g) * 0.3
    idx = [torch.randint(n, (40,), generator=g) for n in (5, 9, 9)]
    inputs = [ue.to(dtype), ie.to(dtype), *idx, None, None]
    _compare(bpr_loss, bpr_loss_reference, [t if t is None else t.to(TRITON_DEVICE) for t in inputs], [0, 1], None,
             atol, rtol)


@needs_triton
def test_bpr_triton_non_contiguous_indices():
    g = torch.Generator().manual_seed(5)
    ue, ie = torch.randn(4, 8, generator=g), torch.randn(6, 8, generator=g)
    idx = torch.stack([torch.randint(4, (20,), generator=g), torch.randint(6, (20,), generator=g),
                       torch.randint(6, (20,), generator=g)], 1)  # columns of a [B, 3] tensor: strided
    users, pos, neg = idx[:, 0], idx[:, 1], idx[:, 2]
    dev = TRITON_DEVICE
    got = bpr_loss(ue.to(dev), ie.to(dev), users.to(dev), pos.to(dev), neg.to(dev), backend="triton")
    assert_close(got.cpu(), bpr_loss_reference(ue, ie, users, pos, neg))
