"""The Triton masked aggregation (forward, x-gradient on the transpose, edge-weight gradient) against the
torch reference. Without a GPU it runs in Triton's interpreter on CPU tensors (set up in conftest)."""

from __future__ import annotations

import pytest
import torch

from graphunlearn.kernels import WITH_TRITON
from graphunlearn.kernels.masked_spmm import masked_spmm, masked_spmm_reference, transpose_csr
from tests.conftest import TRITON_DEVICE, assert_close

pytestmark = pytest.mark.skipif(not WITH_TRITON, reason="triton is not installed")

# (name, degrees): isolated nodes, one very high-degree row (more slots than one block), a lone row
SHAPES = [("isolated_and_hub", [0, 3, 0, 70, 2, 0, 1]), ("single", [5]), ("no_edges", [0, 0, 0])]
DTYPES = [(torch.float32, 1e-5, 1e-5), (torch.float16, 1e-2, 1e-2), (torch.bfloat16, 4e-2, 4e-2)]


def csr(degrees, seed=0, symmetric=False):
    g = torch.Generator().manual_seed(seed)
    n = len(degrees)
    if symmetric:  # an undirected pattern: every slot has its reverse, with the same weight and mask
        m = sum(degrees) // 2 + 1
        u, v = torch.randint(n, (m,), generator=g), torch.randint(n, (m,), generator=g)
        w = torch.rand(m, generator=g) + 0.5
        keep = torch.rand(m, generator=g) < 0.7
        rows, cols = torch.cat([v, u[u != v]]), torch.cat([u, v[u != v]])
        ws, ks = torch.cat([w, w[u != v]]), torch.cat([keep, keep[u != v]])
        order = torch.sort(rows, stable=True).indices
        rowptr = torch.zeros(n + 1, dtype=torch.long)
        rowptr[1:] = torch.cumsum(torch.bincount(rows, minlength=n), 0)
        return rowptr, cols[order], ks[order], ws[order]
    counts = torch.tensor(degrees)
    rowptr = torch.zeros(n + 1, dtype=torch.long)
    rowptr[1:] = torch.cumsum(counts, 0)
    s = int(counts.sum())
    return (rowptr, torch.randint(n, (s,), generator=g), torch.rand(s, generator=g) < 0.6,
            torch.rand(s, generator=g) + 0.5)


def both(rowptr, col, x, mask, w, upstream, **kw):
    """Values and gradients from the Triton backend and from the reference (float32 oracle)."""
    results = []
    for backend in ("triton", "torch"):
        xi = x.clone().requires_grad_()
        wi = None if w is None else w.clone().requires_grad_(not kw.get("normalize", False))
        if backend == "torch":
            xi = x.float().clone().requires_grad_()
        out = (masked_spmm(rowptr, col, xi, mask, wi, backend="triton", **kw) if backend == "triton"
               else masked_spmm_reference(rowptr, col, xi, mask, wi, **{k: v for k, v in kw.items()
                                                                       if k != "transpose"}))
        (out.float() * upstream).sum().backward()
        results.append((out.float(), xi.grad.float(), None if wi is None or wi.grad is None else wi.grad))
    return results


MODES = [dict(reduce="sum"), dict(reduce="mean"), dict(normalize=True), dict(normalize=True, self_loops=False)]
MODE_IDS = ["sum", "mean", "gcn", "lightgcn"]


@pytest.mark.parametrize("shape", SHAPES, ids=[s[0] for s in SHAPES])
@pytest.mark.parametrize("mode", MODES, ids=MODE_IDS)
@pytest.mark.parametrize("mask_kind", ["random", "none", "all_live", "all_masked"])
def test_matches_reference(shape, mode, mask_kind):
    _, degrees = shape
    rowptr, col, mask, w = csr(degrees)
    mask = {"random": mask, "none": None, "all_live": torch.ones_like(mask),
            "all_masked": torch.zeros_like(mask)}[mask_kind]
    n = len(degrees)
    x = torch.randn(n, 37)  # 37: not a power of two, and more than one feature block below
    upstream = torch.randn(n, 37)  # not all ones
    dev = TRITON_DEVICE
    args = [t if t is None else t.to(dev) for t in (rowptr, col, x, mask, w, upstream)]
    (o1, gx1, gw1), (o2, gx2, gw2) = both(*args, **mode)
    assert_close(o1, o2, what="forward")
    assert_close(gx1, gx2, what="grad x")
    if gw2 is not None:
        assert_close(gw1.float(), gw2.float(), atol=1e-4, rtol=1e-4, what="grad edge_weight")


@pytest.mark.parametrize("dtype,atol,rtol", DTYPES, ids=[str(d[0]).split(".")[1] for d in DTYPES])
@pytest.mark.parametrize("index_dtype", [torch.int32, torch.int64], ids=["int32", "int64"])
def test_dtypes(dtype, atol, rtol, index_dtype):
    rowptr, col, mask, w = csr([2, 0, 40, 1, 3], seed=1)
    x = torch.randn(5, 70).to(dtype)
    upstream = torch.randn(5, 70)
    args = [t.to(TRITON_DEVICE) for t in (rowptr.to(index_dtype), col.to(index_dtype), x, mask, w, upstream)]
    (o1, gx1, gw1), (o2, gx2, gw2) = both(*args, reduce="sum", normalize=False)
    assert o1.dtype == torch.float32  # compared in float32; the Triton output kept x's dtype before .float()
    assert_close(o1, o2, atol=atol, rtol=rtol, what=f"{dtype} forward")
    assert_close(gx1, gx2, atol=atol, rtol=rtol, what=f"{dtype} grad x")
    assert_close(gw1.float(), gw2.float(), atol=atol * 10, rtol=rtol * 10, what=f"{dtype} grad w")


@pytest.mark.parametrize("mode", MODES, ids=MODE_IDS)
@pytest.mark.parametrize("transpose", ["given", "symmetric", "built"])
def test_transpose_options(mode, transpose):
    rowptr, col, mask, w = csr([3, 4, 0, 6, 2, 5], seed=2, symmetric=True)
    n = rowptr.numel() - 1
    t = {"given": transpose_csr(rowptr, col, n), "symmetric": "symmetric", "built": None}[transpose]
    x, upstream = torch.randn(n, 20), torch.randn(n, 20)
    dev = TRITON_DEVICE
    if isinstance(t, tuple):
        t = tuple(a.to(dev) for a in t)
    args = [a.to(dev) for a in (rowptr, col, x, mask, w, upstream)]
    (o1, gx1, _), (o2, gx2, _) = both(*args, **mode, transpose=t)
    assert_close(o1, o2, what="forward")
    assert_close(gx1, gx2, what=f"grad x with transpose={transpose}")


def test_deleted_rows_are_not_read():
    rowptr = torch.tensor([0, 2, 3, 3])
    col = torch.tensor([1, 2, 2])
    mask = torch.tensor([True, False, False])
    x = torch.tensor([[1.0], [2.0], [float("nan")]])
    out = masked_spmm(*(t.to(TRITON_DEVICE) for t in (rowptr, col, x, mask)), backend="triton")
    assert torch.equal(out.cpu(), torch.tensor([[2.0], [0.0], [0.0]]))


def test_non_contiguous_inputs_and_zero_degrees():
    rowptr, col, mask, w = csr([3, 0, 5, 2], seed=4)
    dev = TRITON_DEVICE
    n, s = 4, col.numel()
    x = torch.randn(n, 9)
    w_strided = torch.stack([w, w], 1)[:, 0]
    col_strided = torch.stack([col, col], 1)[:, 0]
    mask_strided = torch.stack([mask, mask], 1)[:, 0]
    args = [t.to(dev) for t in (rowptr, col_strided, x, mask_strided, w_strided)]
    assert_close(masked_spmm(*args, backend="triton").cpu(), masked_spmm_reference(rowptr, col, x, mask, w))
    from graphunlearn.kernels import live_degree

    deg = live_degree(rowptr, mask)  # zeros allowed: no self loop added
    got = masked_spmm(*(t.to(dev) for t in (rowptr, col, x, mask)), normalize=True, deg=deg.to(dev),
                      backend="triton")
    assert_close(got.cpu(), masked_spmm_reference(rowptr, col, x, mask, normalize=True, deg=deg))
    assert s > 0
