"""Launch counters (which backend ran each kernel family) and a forced Triton backend that never falls back."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
import torch

from graphunlearn import kernels as K
from graphunlearn.kernels import WITH_TRITON, count_launches, launches, reset_launches
from tests.conftest import TRITON_DEVICE


def _graph(device="cpu"):
    rowptr = torch.tensor([0, 2, 3, 5])
    col = torch.tensor([1, 2, 0, 0, 1])
    mask = torch.tensor([True, False, True, True, True])
    w = torch.rand(5) + 0.5
    return [t.to(device) for t in (rowptr, col, mask, w)]


def _aggregate(backend, device="cpu", x_grad=True, w_grad=False, **kw):
    rowptr, col, mask, w = _graph(device)
    x = torch.randn(3, 4, device=device, requires_grad=x_grad)
    w = w.requires_grad_(w_grad)
    return K.masked_spmm(rowptr, col, x, mask, w, backend=backend, **kw)


def _kl(backend, device="cpu"):
    s = torch.randn(5, 3, device=device, requires_grad=True)
    return K.kl_distill_loss(s, torch.randn(5, 3, device=device), backend=backend)


def _binary_kl(backend, device="cpu"):
    z = torch.randn(6, device=device, requires_grad=True)
    return K.binary_kl_distill_loss(z, torch.rand(6, device=device), backend=backend)


def _bpr(backend, device="cpu"):
    ue = torch.randn(4, 8, device=device, requires_grad=True)
    ie = torch.randn(5, 8, device=device, requires_grad=True)
    idx = [torch.tensor(v, device=device) for v in ([0, 1, 3], [1, 2, 4], [0, 3, 3])]
    return K.bpr_loss(ue, ie, *idx, sign=torch.tensor([1.0, -1.0, 1.0], device=device), backend=backend)


CALLS = {
    "aggregate": (_aggregate, "aggregate"),
    "aggregate_mean": (lambda b, d="cpu": _aggregate(b, d, reduce="mean"), "aggregate"),
    "aggregate_gcn": (lambda b, d="cpu": _aggregate(b, d, normalize=True), "aggregate"),
    "kl": (_kl, "kl"),
    "binary_kl": (_binary_kl, "kl"),
    "bpr": (_bpr, "bpr"),
}


@pytest.mark.parametrize("name", list(CALLS))
def test_forward_then_backward_counted_once_each(name):
    fn, family = CALLS[name]
    with count_launches() as c:
        out = fn("torch")
        assert c.counts == {(f"{family}_forward", "torch"): 1}
        out.sum().backward()
    assert c.counts == {(f"{family}_forward", "torch"): 1, (f"{family}_backward", "torch"): 1}
    assert c.backends() == {"torch"}
    assert c.families() == {f"{family}_forward", f"{family}_backward"}


def test_finite_and_non_finite_torch_paths_both_counted():
    rowptr, col, mask, _ = _graph()
    x = torch.randn(3, 4)
    x[0, 0] = float("nan")  # sends the call to the gather reference instead of torch.sparse.mm
    with count_launches() as c:
        K.masked_spmm(rowptr, col, x, mask, backend="torch")
        K.masked_spmm(rowptr, col, x.nan_to_num(), mask, backend="torch")
    assert c.counts == {("aggregate_forward", "torch"): 2}


def test_edge_weight_gradient_is_its_own_family():
    with count_launches() as c:
        _aggregate("torch", x_grad=False, w_grad=True).sum().backward()
    assert c.counts == {("aggregate_forward", "torch"): 1, ("aggregate_weight_backward", "torch"): 1}
    with count_launches() as c:
        _aggregate("torch", x_grad=True, w_grad=True).sum().backward()
    assert c.counts == {("aggregate_forward", "torch"): 1, ("aggregate_backward", "torch"): 1,
                        ("aggregate_weight_backward", "torch"): 1}


def test_no_backward_counted_without_gradients():
    with count_launches() as c:
        _aggregate("torch", x_grad=False)
        with torch.no_grad():
            _aggregate("torch").sum()
            _kl("torch")
            _bpr("torch")
    assert c.counts == {("aggregate_forward", "torch"): 2, ("kl_forward", "torch"): 1, ("bpr_forward", "torch"): 1}


def test_each_call_and_each_backward_pass_counted():
    rowptr, col, mask, _ = _graph()
    x = torch.randn(3, 4, requires_grad=True)
    with count_launches() as c:
        h = K.masked_spmm(rowptr, col, x, mask, backend="torch")
        h = K.masked_spmm(rowptr, col, h, mask, backend="torch")  # two layers
        h.sum().backward(retain_graph=True)
        h.sum().backward()  # a second pass through the same graph
    assert c.counts == {("aggregate_forward", "torch"): 2, ("aggregate_backward", "torch"): 4}


def test_counting_leaves_gradients_unchanged():
    rowptr, col, mask, w = _graph()
    x = torch.randn(3, 4)
    grads = []
    for counted in (True, False):
        xi, wi = x.clone().requires_grad_(), w.clone().requires_grad_()
        if counted:
            out = K.masked_spmm(rowptr, col, xi, mask, wi, backend="torch")
        else:
            out = K.masked_spmm_reference(rowptr, col, xi, mask, wi)
        (out * torch.arange(12.0).view(3, 4)).sum().backward()
        grads.append((xi.grad, wi.grad))
    torch.testing.assert_close(grads[0], grads[1])


def test_blocks_nest_and_global_snapshot():
    before = launches()
    with count_launches() as outer:
        _kl("torch")
        with count_launches() as inner:
            _bpr("torch")
    assert outer.counts == {("kl_forward", "torch"): 1, ("bpr_forward", "torch"): 1}
    assert inner.counts == {("bpr_forward", "torch"): 1}
    after = launches()
    assert after[("kl_forward", "torch")] == before.get(("kl_forward", "torch"), 0) + 1
    after[("kl_forward", "torch")] = -1  # a snapshot: changing it changes nothing
    assert launches()[("kl_forward", "torch")] >= 0
    _kl("torch")  # outside any block: only the global total moves
    assert outer.counts[("kl_forward", "torch")] == 1
    assert outer.as_dict() == {"bpr_forward": {"torch": 1}, "kl_forward": {"torch": 1}}
    assert outer.total() == 2 and outer.total(backend="triton") == 0


def test_reset():
    _kl("torch")
    reset_launches()
    assert launches() == {}
    _kl("torch")
    assert launches() == {("kl_forward", "torch"): 1}


def test_environment_backend_counted(monkeypatch):
    monkeypatch.setenv("GRAPHUNLEARN_BACKEND", "torch")
    with count_launches() as c:
        _bpr(None).backward()
    assert c.counts == {("bpr_forward", "torch"): 1, ("bpr_backward", "torch"): 1}


@pytest.mark.skipif(not WITH_TRITON, reason="triton is not installed")
@pytest.mark.parametrize("name", list(CALLS))
def test_triton_path_counted(name):
    """Triton on CUDA, or in the interpreter on CPU (conftest sets TRITON_INTERPRET=1 without a GPU)."""
    fn, family = CALLS[name]
    with count_launches() as c:
        fn("triton", TRITON_DEVICE).sum().backward()
    assert c.counts == {(f"{family}_forward", "triton"): 1, (f"{family}_backward", "triton"): 1}
    assert c.backends() == {"triton"}


@pytest.mark.skipif(not WITH_TRITON, reason="triton is not installed")
def test_triton_edge_weight_gradient_counted():
    with count_launches() as c:
        _aggregate("triton", TRITON_DEVICE, x_grad=True, w_grad=True).sum().backward()
    assert c.counts == {("aggregate_forward", "triton"): 1, ("aggregate_backward", "triton"): 1,
                        ("aggregate_weight_backward", "triton"): 1}


# ------------------------------------------------------------------ a forced Triton never falls back to torch
# Each scenario needs its own process: whether the kernels run in Triton's interpreter is fixed when
# graphunlearn.kernels is imported. (Importing graphunlearn takes a few seconds, hence the slow mark.)
FORCED_SCRIPT = textwrap.dedent("""
    import os
    import torch
    from graphunlearn import kernels as K

    def attempt(tag):
        rowptr, col, x = torch.tensor([0, 1, 2]), torch.tensor([1, 0]), torch.randn(2, 3)
        calls = {
            "masked_spmm": lambda: K.masked_spmm(rowptr, col, x),
            "kl_distill_loss": lambda: K.kl_distill_loss(x, x),
            "binary_kl_distill_loss": lambda: K.binary_kl_distill_loss(x[0], torch.rand(3)),
            "bpr_loss": lambda: K.bpr_loss(x, x, torch.tensor([0]), torch.tensor([1]), torch.tensor([0])),
        }
        for name, call in calls.items():
            try:
                call()
            except RuntimeError as exc:
                print(tag, "RAISED", name, "::", exc)
            else:
                print(tag, "RAN", name)
        print(tag, "COUNTS", sorted(K.launches().items()))

    attempt("first")
    os.environ["TRITON_INTERPRET"] = "1"  # too late: the kernels are already defined
    attempt("late")
""")

OPS = ("masked_spmm", "kl_distill_loss", "binary_kl_distill_loss", "bpr_loss")


def _run(env_updates, drop=()):
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(env_updates)
    proc = subprocess.run([sys.executable, "-c", FORCED_SCRIPT], env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    out: dict[str, dict[str, str]] = {}
    for line in proc.stdout.splitlines():
        tag, kind, rest = line.split(" ", 2)
        key = "COUNTS" if kind == "COUNTS" else rest.split(" ", 1)[0]
        out.setdefault(tag, {})[key] = line
    return out


@pytest.mark.slow
def test_forced_triton_on_cpu_without_interpreter_raises():
    """GRAPHUNLEARN_BACKEND=triton with CPU tensors and no interpreter: a RuntimeError naming the kernel, the
    device and the fix, for every op; nothing runs on torch. Also when TRITON_INTERPRET=1 comes too late."""
    out = _run({"GRAPHUNLEARN_BACKEND": "triton"}, drop=("TRITON_INTERPRET",))
    for tag in ("first", "late"):
        for name in OPS:
            line = out[tag][name]
            assert line.startswith(f"{tag} RAISED"), f"{name} did not raise: {line!r}"
            msg = line.split("::", 1)[1]
            assert f"{name}: backend 'triton' was requested" in msg
            assert "on cpu" in msg  # the device
            if WITH_TRITON:  # the fix, and where the request came from
                assert "CUDA" in msg and "GRAPHUNLEARN_BACKEND=triton" in msg
                assert "TRITON_INTERPRET=1" in msg
                if tag == "late":
                    assert "was set only after graphunlearn.kernels was imported" in msg
        assert out[tag]["COUNTS"] == f"{tag} COUNTS []"  # nothing launched, on either backend


@pytest.mark.slow
@pytest.mark.skipif(not WITH_TRITON, reason="triton is not installed")
def test_forced_triton_in_interpreter_runs_triton():
    out = _run({"GRAPHUNLEARN_BACKEND": "triton", "TRITON_INTERPRET": "1"})
    for name in OPS:
        assert out["first"][name] == f"first RAN {name}"
    counts = out["late"]["COUNTS"]
    assert "'triton'" in counts and "'torch'" not in counts, counts
    # two attempts; kl_distill_loss and binary_kl_distill_loss share the kl family
    for family, n in (("aggregate_forward", 2), ("kl_forward", 4), ("bpr_forward", 2)):
        assert f"(('{family}', 'triton'), {n})" in counts, counts
