"""The torch reference of masked aggregation against a dense formulation written independently."""

from __future__ import annotations

import pytest
import torch

from graphunlearn.kernels import choose_backend, live_degree, masked_spmm, masked_spmm_reference
from tests.conftest import assert_close


def make_csr(num_rows: int, num_src: int, degrees: list[int], seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    counts = torch.tensor(degrees, dtype=torch.long)
    rowptr = torch.zeros(num_rows + 1, dtype=torch.long)
    rowptr[1:] = torch.cumsum(counts, 0)
    col = torch.randint(num_src, (int(counts.sum()),), generator=g)
    return rowptr, col


def dense_matrix(rowptr, col, num_src, mask, weight, reduce, normalize, self_loops=True):
    """A[i, j] with the same semantics, built entry by entry (a Python loop: small graphs only)."""
    n = rowptr.numel() - 1
    a = torch.zeros(n, num_src, dtype=torch.float64)
    for i in range(n):
        for s in range(int(rowptr[i]), int(rowptr[i + 1])):
            if mask is None or bool(mask[s]):
                a[i, int(col[s])] += 1.0 if weight is None else float(weight[s])
    if normalize:
        if self_loops:
            a = a + torch.eye(n, dtype=torch.float64)
        d = a.sum(1)  # weighted in-degree; as in PyG's gcn_norm, a node with none scales by 0, not inf
        dis = torch.where(d > 0, d.clamp(min=1e-300) ** -0.5, torch.zeros_like(d))
        a = dis[:, None] * a * dis[None, :]
    elif reduce == "mean":
        count = torch.zeros(n, dtype=torch.float64)
        for i in range(n):
            for s in range(int(rowptr[i]), int(rowptr[i + 1])):
                count[i] += 1.0 if (mask is None or bool(mask[s])) else 0.0
        a = a / count.clamp(min=1)[:, None]
    return a


# (name, num_rows, degrees): isolated nodes, one very high-degree row, an empty graph
SHAPES = [
    ("isolated", 6, [0, 3, 0, 2, 5, 0]),
    ("hub", 5, [40, 1, 2, 0, 3]),
    ("single", 1, [4]),
    ("no_edges", 4, [0, 0, 0, 0]),
]
DTYPES = [(torch.float32, 1e-5, 1e-5), (torch.float64, 1e-10, 1e-10), (torch.float16, 2e-2, 2e-2),
          (torch.bfloat16, 5e-2, 5e-2)]
MASKS = ["none", "random", "empty", "all_masked"]


def make_mask(kind, num_slots, seed=1):
    if kind == "none":
        return None
    if kind == "random":
        return torch.rand(num_slots, generator=torch.Generator().manual_seed(seed)) < 0.6
    return torch.full((num_slots,), kind == "empty", dtype=torch.bool)  # "empty": nothing masked out


@pytest.mark.parametrize("shape", SHAPES, ids=[s[0] for s in SHAPES])
@pytest.mark.parametrize("mask_kind", MASKS)
@pytest.mark.parametrize("mode", [("sum", False, True), ("mean", False, True), ("sum", True, True),
                                  ("sum", True, False)], ids=["sum", "mean", "gcn", "lightgcn"])
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_values_match_dense(shape, mask_kind, mode, weighted):
    _, n, degrees = shape
    reduce, normalize, self_loops = mode
    rowptr, col = make_csr(n, n, degrees)
    mask = make_mask(mask_kind, col.numel())
    weight = torch.rand(col.numel(), generator=torch.Generator().manual_seed(2)) + 0.5 if weighted else None
    if reduce == "mean":
        weight = None
    x = torch.randn(n, 7, dtype=torch.float64)  # 7: not a power of two
    a = dense_matrix(rowptr, col, n, mask, weight, reduce, normalize, self_loops)
    out = masked_spmm_reference(rowptr, col, x, mask, None if weight is None else weight.double(),
                                reduce=reduce, normalize=normalize, self_loops=self_loops)
    assert_close(out, a @ x, atol=1e-10, rtol=1e-10, what="masked_spmm")


@pytest.mark.parametrize("dtype,atol,rtol", DTYPES, ids=[str(d[0]) for d in DTYPES])
@pytest.mark.parametrize("index_dtype", [torch.int32, torch.int64])
def test_dtypes_accumulate_in_fp32(dtype, atol, rtol, index_dtype):
    n = 9
    rowptr, col = make_csr(n, n, [3, 0, 30, 1, 2, 0, 5, 4, 1])
    mask = make_mask("random", col.numel())
    x = torch.randn(n, 33)
    a = dense_matrix(rowptr, col, n, mask, None, "sum", True)
    out = masked_spmm_reference(rowptr.to(index_dtype), col.to(index_dtype), x.to(dtype), mask, normalize=True)
    assert out.dtype == dtype
    assert_close(out.double(), a @ x.to(dtype).double(), atol=atol, rtol=rtol, what=str(dtype))


@pytest.mark.parametrize("mode", [("sum", False), ("mean", False), ("sum", True)], ids=["sum", "mean", "gcn"])
def test_gradients_match_dense(mode):
    reduce, normalize = mode
    n = 7
    rowptr, col = make_csr(n, n, [2, 0, 12, 1, 3, 0, 4], seed=3)
    mask = make_mask("random", col.numel(), seed=4)
    weight = None if reduce == "mean" else (torch.rand(col.numel(), dtype=torch.float64) + 0.5)
    x = torch.randn(n, 5, dtype=torch.float64)
    upstream = torch.randn(n, 5, dtype=torch.float64)  # not all ones

    x1 = x.clone().requires_grad_()
    w1 = None if weight is None else weight.clone().requires_grad_()
    (masked_spmm_reference(rowptr, col, x1, mask, w1, reduce=reduce, normalize=normalize) * upstream).sum().backward()

    # Oracle: the same operator built densely from differentiable per-slot weights.
    x2 = x.clone().requires_grad_()
    w2 = None if weight is None else weight.clone().requires_grad_()
    row = torch.repeat_interleave(torch.arange(n), rowptr.diff())
    live = torch.ones(col.numel(), dtype=torch.bool) if mask is None else mask
    vals = (torch.ones(col.numel(), dtype=torch.float64) if w2 is None else w2) * live
    a = torch.zeros(n, n, dtype=torch.float64).index_put((row, col), vals, accumulate=True)
    if normalize:
        a = a + torch.eye(n, dtype=torch.float64)
        d = a.sum(1)
        a = a / torch.sqrt(d[:, None] * d[None, :])
    elif reduce == "mean":
        a = a / torch.zeros(n, dtype=torch.float64).index_add(0, row, live.double()).clamp(min=1)[:, None]
    ((a @ x2) * upstream).sum().backward()
    assert_close(x1.grad, x2.grad, atol=1e-10, rtol=1e-10, what="grad x")
    if weight is not None:
        # masked slots get no gradient: their edges are gone
        assert_close(w1.grad, w2.grad, atol=1e-10, rtol=1e-10, what="grad edge_weight")
        if mask is not None:
            assert torch.all(w1.grad[~mask] == 0)


def test_deleted_sources_never_read():
    """A NaN in a row reachable only through masked slots must not reach the output."""
    rowptr = torch.tensor([0, 2, 3, 3])
    col = torch.tensor([1, 2, 2])  # row 0 <- 1, 2; row 1 <- 2
    mask = torch.tensor([True, False, False])  # node 2's edges deleted
    x = torch.tensor([[1.0], [2.0], [float("nan")]])
    out = masked_spmm_reference(rowptr, col, x, mask)
    assert torch.equal(out, torch.tensor([[2.0], [0.0], [0.0]]))


def test_rectangular_sources():
    rowptr, col = make_csr(3, 10, [4, 0, 6])
    x = torch.randn(10, 3, dtype=torch.float64)
    a = dense_matrix(rowptr, col, 10, None, None, "sum", False)
    assert_close(masked_spmm_reference(rowptr, col, x), a @ x, atol=1e-12, rtol=1e-12)


def test_precomputed_degree_is_used():
    rowptr, col = make_csr(4, 4, [1, 2, 0, 1])
    x = torch.randn(4, 2)
    deg = live_degree(rowptr, self_loops=True)
    assert_close(masked_spmm_reference(rowptr, col, x, normalize=True, deg=deg),
                 masked_spmm_reference(rowptr, col, x, normalize=True))
    assert not torch.allclose(masked_spmm_reference(rowptr, col, x, normalize=True, deg=deg * 4),
                              masked_spmm_reference(rowptr, col, x, normalize=True))


@pytest.mark.parametrize("kwargs,err,match", [
    (dict(reduce="max"), ValueError, "reduce='max'"),
    (dict(reduce="mean", normalize=True), ValueError, "requires reduce='sum'"),
    (dict(mask=torch.ones(2, dtype=torch.bool)), TypeError, "mask must be a bool tensor of shape"),
    (dict(mask=torch.ones(3)), TypeError, "mask must be a bool"),
    (dict(edge_weight=torch.ones(3, dtype=torch.long)), TypeError, "edge_weight must be a floating"),
    (dict(deg=torch.ones(5)), TypeError, "deg must have shape"),
])
def test_bad_arguments_are_named(kwargs, err, match):
    rowptr, col = torch.tensor([0, 1, 3, 3]), torch.tensor([1, 0, 2])
    with pytest.raises(err, match=match):
        masked_spmm_reference(rowptr, col, torch.randn(3, 2), **kwargs)


def test_bad_tensors_are_named():
    rowptr, col = torch.tensor([0, 1, 3, 3]), torch.tensor([1, 0, 2])
    with pytest.raises(TypeError, match="col must be a 1-D int32/int64"):
        masked_spmm_reference(rowptr, col.float(), torch.randn(3, 2))
    with pytest.raises(TypeError, match="x must be a 2-D floating"):
        masked_spmm_reference(rowptr, col, torch.ones(3, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="square graph"):
        masked_spmm_reference(rowptr, col, torch.randn(5, 2), normalize=True)


def test_dispatch(monkeypatch):
    rowptr, col = torch.tensor([0, 1, 2]), torch.tensor([1, 0])
    x = torch.randn(2, 3)
    assert_close(masked_spmm(rowptr, col, x), masked_spmm_reference(rowptr, col, x))
    assert choose_backend("op", True, auto_triton=True) == "triton"
    assert choose_backend("op", True, auto_triton=False) == "torch"
    assert choose_backend("op", False) == "torch"
    with pytest.raises(RuntimeError, match="backend 'triton' was requested but cannot run here: no luck"):
        choose_backend("op", False, "no luck", backend="triton")
    with pytest.raises(RuntimeError, match="backend 'triton' was requested but cannot run"):
        masked_spmm(rowptr, col, x.double(), backend="triton")  # float64 is reference-only
    monkeypatch.setenv("GRAPHUNLEARN_BACKEND", "triton")
    with pytest.raises(RuntimeError, match="'triton' was requested"):
        masked_spmm(rowptr, col, x.double())
    monkeypatch.setenv("GRAPHUNLEARN_BACKEND", "cuda")
    with pytest.raises(ValueError, match="GRAPHUNLEARN_BACKEND='cuda'"):
        masked_spmm(rowptr, col, x)
    monkeypatch.setenv("GRAPHUNLEARN_BACKEND", "torch")
    assert_close(masked_spmm(rowptr, col, x), masked_spmm_reference(rowptr, col, x))


@pytest.mark.parametrize("mode", [dict(reduce="sum"), dict(reduce="mean"), dict(normalize=True),
                                  dict(normalize=True, self_loops=False)], ids=["sum", "mean", "gcn", "lightgcn"])
@pytest.mark.parametrize("transpose", ["built", "given"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_cpu_sparse_path_matches_reference(mode, transpose, dtype):
    """The torch backend's torch.sparse.mm path: values, x-gradients and edge-weight gradients."""
    from graphunlearn.kernels import transpose_csr

    n = 9
    rowptr, col = make_csr(n, n, [3, 0, 30, 1, 2, 0, 5, 4, 1], seed=5)
    mask = make_mask("random", col.numel(), seed=6)
    w = torch.rand(col.numel(), dtype=torch.float64) + 0.5
    x, up = torch.randn(n, 11, dtype=torch.float64), torch.randn(n, 11, dtype=torch.float64)
    t = transpose_csr(rowptr, col, n) if transpose == "given" else None
    deg = None
    if mode.get("normalize"):  # a precomputed degree makes the scales constants, as the store passes them
        deg = live_degree(rowptr, mask, w, self_loops=mode.get("self_loops", True))
    res = []
    for fn in ("fast", "ref"):
        xi, wi = x.to(dtype).clone().requires_grad_(), w.to(dtype).clone().requires_grad_()
        out = (masked_spmm(rowptr, col, xi, mask, wi, deg=deg, transpose=t, backend="torch", **mode) if fn == "fast"
               else masked_spmm_reference(rowptr, col, xi, mask, wi, deg=deg, **mode))
        (out * up.to(dtype)).sum().backward()
        res.append((out.double(), xi.grad.double(), wi.grad.double()))
    tol = 1e-10 if dtype == torch.float64 else 1e-5 if dtype == torch.float32 else 5e-2
    for a, b, what in zip(res[0], res[1], ("forward", "grad x", "grad w")):
        assert_close(a, b, atol=tol, rtol=tol, what=what)


def test_cpu_path_symmetric_transpose():
    """An undirected pattern with tied mask and weights: the backward reuses the CSR ("symmetric")."""
    u = torch.tensor([0, 0, 1, 2, 3, 3])
    v = torch.tensor([1, 2, 2, 3, 4, 0])
    rows, cols = torch.cat([v, u]), torch.cat([u, v])
    keep = torch.tensor([True, False, True, True, True, False]).repeat(2)
    w = (torch.rand(6, dtype=torch.float64) + 0.5).repeat(2)
    order = torch.sort(rows, stable=True).indices
    rowptr = torch.zeros(6, dtype=torch.long)
    rowptr[1:] = torch.cumsum(torch.bincount(rows, minlength=5), 0)
    col, keep, w = cols[order], keep[order], w[order]
    x, up = torch.randn(5, 3, dtype=torch.float64), torch.randn(5, 3, dtype=torch.float64)
    for mode in (dict(reduce="mean"), dict(normalize=True, deg=live_degree(rowptr, keep, w, self_loops=True))):
        grads = []
        for transpose in ("symmetric", None):
            xi = x.clone().requires_grad_()
            (masked_spmm(rowptr, col, xi, keep, w, transpose=transpose, backend="torch", **mode) * up).sum().backward()
            grads.append(xi.grad)
        assert_close(grads[0], grads[1], atol=1e-12, rtol=1e-12, what=f"symmetric transpose {mode}")


def test_non_finite_input_takes_the_reference_path():
    rowptr = torch.tensor([0, 2, 3, 3])
    col = torch.tensor([1, 2, 2])
    mask = torch.tensor([True, False, False])
    x = torch.tensor([[1.0], [2.0], [float("inf")]])
    out = masked_spmm(rowptr, col, x, mask, backend="torch")
    assert torch.equal(out, torch.tensor([[2.0], [0.0], [0.0]]))


def test_review_regressions_cpu():
    """Non-contiguous inputs, zero degrees without self loops, a deg that needs a gradient, a NaN weight
    on a deleted slot: the torch backend agrees with the reference."""
    n = 6
    rowptr, col = make_csr(n, n, [2, 0, 5, 1, 3, 0], seed=9)
    s = col.numel()
    mask = make_mask("random", s, seed=10)
    x = torch.randn(n, 4)
    w_strided = torch.rand(s, 2)[:, 0] + 0.5  # not contiguous
    assert_close(masked_spmm(rowptr, col, x, mask, w_strided, backend="torch"),
                 masked_spmm_reference(rowptr, col, x, mask, w_strided))
    deg = live_degree(rowptr, mask)  # no self loops: zeros where a node has no live in-edge
    assert_close(masked_spmm(rowptr, col, x, mask, normalize=True, deg=deg, backend="torch"),
                 masked_spmm_reference(rowptr, col, x, mask, normalize=True, deg=deg))
    d = live_degree(rowptr, mask, self_loops=True).requires_grad_()
    masked_spmm(rowptr, col, x, mask, normalize=True, deg=d, backend="torch").sum().backward()
    assert d.grad is not None and d.grad.abs().sum() > 0
    w = torch.rand(s) + 0.5
    w[~mask] = float("nan")
    out = masked_spmm(rowptr, col, x, mask, w, backend="torch")
    assert torch.isfinite(out).all()
    assert_close(out, masked_spmm_reference(rowptr, col, x, mask, w))
