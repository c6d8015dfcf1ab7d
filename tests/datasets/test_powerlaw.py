"""The seeded power-law generator and the cached ``powerlaw-*`` sizes (small graphs only)."""

from __future__ import annotations

import importlib
import warnings

import pytest
import torch

import graphunlearn as gu
from graphunlearn.datasets import DATASETS, canonical_name, is_available, load, powerlaw
from graphunlearn.datasets.powerlaw import SIZES, VERSION, cache_path
from graphunlearn.graph import undirected_unique


def degrees(data) -> torch.Tensor:
    return torch.bincount(data.edge_index[0], minlength=data.num_nodes)


def hill(deg: torch.Tensor, kmin: int) -> float:
    """Hill's maximum-likelihood estimate of gamma in P(k) ~ k^-gamma over the degrees >= kmin (the discrete
    correction of Clauset, Shalizi and Newman 2009: kmin - 1/2)."""
    tail = deg[deg >= kmin].double()
    return 1.0 + tail.numel() / float(torch.log(tail / (kmin - 0.5)).sum())


def assert_same(a, b):
    for key in ("x", "edge_index", "y"):
        ta, tb = a[key], b[key]
        assert ta.shape == tb.shape and ta.dtype == tb.dtype, (key, ta.shape, tb.shape, ta.dtype, tb.dtype)
        if not torch.equal(ta, tb):
            bad = (ta != tb).reshape(ta.shape[0], -1).any(1).nonzero().flatten()[:5]
            raise AssertionError(f"{key} differs first at rows {bad.tolist()}: {ta[bad]} vs {tb[bad]}")
    assert a.num_nodes == b.num_nodes


# ---------------------------------------------------------------------------------------------------------
# the generator


def test_same_seed_same_graph_other_seed_other_graph():
    a = powerlaw(2000, 20000, num_classes=5, num_features=16, seed=3)
    b = powerlaw(2000, 20000, num_classes=5, num_features=16, seed=3)
    c = powerlaw(2000, 20000, num_classes=5, num_features=16, seed=4)
    assert_same(a, b)
    assert not torch.equal(a.edge_index, c.edge_index)
    assert not torch.equal(a.x, c.x) and not torch.equal(a.y, c.y)


@pytest.mark.parametrize("n, m, classes, h", [(2000, 20000, 5, 0.8), (500, 4000, 47, 0.0), (60, 885, 3, 0.3),
                                              (400, 2000, 4, 1.0), (3, 1, 1, 0.5)])
def test_exact_simple_undirected_graph(n, m, classes, h):
    d = powerlaw(n, m, num_classes=classes, num_features=7, homophily=h, seed=1)
    ei = d.edge_index
    assert ei.dtype == torch.long and ei.shape == (2, 2 * m) and d.num_nodes == n
    assert d.x.shape == (n, 7) and d.x.dtype == torch.float32
    assert d.y.shape == (n,) and d.y.dtype == torch.long and int(d.y.max()) < classes
    assert torch.bincount(d.y, minlength=classes).tolist() == [n // classes + (k < n % classes)
                                                               for k in range(classes)]  # balanced
    assert int(ei.min()) >= 0 and int(ei.max()) < n
    assert not bool((ei[0] == ei[1]).any()), "self loop"
    edges, _, _ = undirected_unique(ei, n)
    assert edges.size(1) == m, f"{2 * m - edges.size(1) * 2} directed slots are repeats"
    # both directions: the first half is each edge once (u < v), the second its reverse
    assert bool((ei[0, :m] < ei[1, :m]).all()) and torch.equal(ei[:, m:], ei[:, :m].flip(0))
    assert d.name == "powerlaw"


def test_heavy_tail_follows_the_exponent():
    """Hill's estimate over degrees >= 15 on a 50k-edge graph (mean degree 10, expected degrees capped at
    sqrt(2E) = 316) lies within 0.2 of the exponent asked for; a Poisson-tailed graph of the same size (the
    SBM generator) gives nothing like it."""
    estimates = {}
    for gamma in (2.2, 2.5, 3.0):
        d = powerlaw(10000, 50000, num_classes=5, num_features=4, exponent=gamma, seed=0)
        deg = degrees(d)
        estimates[gamma] = hill(deg, 15)
        assert abs(estimates[gamma] - gamma) < 0.2, estimates
        assert float(deg.float().mean()) == 10.0
        # hubs far above the mean, up to the Chung-Lu cutoff sqrt(2E) = 316 (plus Poisson noise), not beyond
        assert 200 < int(deg.max()) <= 1.1 * 316, int(deg.max())
        assert int(deg.median()) < 10  # ... and most nodes below it
    assert estimates[2.2] < estimates[2.5] < estimates[3.0]
    sbm = gu.datasets.synthetic(num_nodes=10000, avg_degree=10.0, num_classes=5, num_features=4)
    sbm_deg = degrees(sbm)
    assert int(sbm_deg.max()) < 40 and (sbm_deg >= 15).sum() < 0.1 * 10000


@pytest.mark.parametrize("h", [0.0, 0.6, 0.9, 1.0])
def test_same_class_edge_fraction_matches_homophily(h):
    """The fraction of same-class edges is h + (1 - h) * sum_c (W_c / W)^2, about h + (1 - h) / C."""
    d = powerlaw(20000, 50000, num_classes=5, num_features=4, homophily=h, seed=2)
    same = float((d.y[d.edge_index[0]] == d.y[d.edge_index[1]]).double().mean())
    expected = h + (1 - h) / 5
    if h == 1.0:
        assert same == 1.0
    else:
        assert abs(same - expected) < 0.03, (same, expected)


@pytest.mark.parametrize("signal, lowest, highest", [(1.0, 0.95, 1.0), (0.25, 0.45, 0.9), (0.0, 0.0, 0.2)])
def test_features_carry_the_class(signal, lowest, highest):
    """A nearest-centroid classifier, centroids estimated on half the nodes, scored on the other half: far
    above chance (1/10) with a signal, at chance without one."""
    d = powerlaw(4000, 20000, num_classes=10, num_features=100, signal=signal, seed=5)
    train = torch.arange(d.num_nodes) % 2 == 0
    sums = torch.zeros(10, 100).index_add_(0, d.y[train], d.x[train])
    centroids = sums / torch.bincount(d.y[train], minlength=10)[:, None]
    accuracy = float((torch.cdist(d.x[~train], centroids).argmin(1) == d.y[~train]).float().mean())
    assert lowest <= accuracy <= highest, accuracy


def test_progress_goes_to_stderr(capsys):
    powerlaw(100, 300, num_classes=2, num_features=2, progress=True)
    out = capsys.readouterr()
    assert out.out == "" and "kept 300 edges" in out.err
    powerlaw(100, 300, num_classes=2, num_features=2)
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("kwargs, error, message", [
    ({"num_nodes": 1}, ValueError, "num_nodes must be >= 2"),
    ({"num_nodes": 100.0}, TypeError, "num_nodes must be an int, got float"),
    ({"num_edges": 0}, ValueError, "num_edges must be >= 1"),
    ({"num_edges": True}, TypeError, "num_edges must be an int, got bool"),
    ({"num_edges": 2476}, ValueError, r"num_edges must be at most num_nodes \* \(num_nodes - 1\) / 4 = 2475"),
    ({"num_classes": 0}, ValueError, "num_classes must be >= 1"),
    ({"num_classes": 101}, ValueError, "num_classes must be at most num_nodes=100"),
    ({"num_features": 0}, ValueError, "num_features must be >= 1"),
    ({"exponent": 2.0}, ValueError, r"exponent must be a finite number > 2"),
    ({"exponent": float("inf")}, ValueError, "exponent must be a finite number"),
    ({"exponent": "2.5"}, TypeError, "exponent must be a number"),
    ({"homophily": 1.5}, ValueError, r"homophily must be a finite number in \[0, 1\]"),
    ({"homophily": float("nan")}, ValueError, "homophily must be a finite number"),
    ({"signal": None}, TypeError, "signal must be a number"),
    ({"seed": 1.0}, TypeError, "seed must be an int"),
    ({"seed": 2**70}, ValueError, "seed must be in"),
    ({"progress": 1}, TypeError, "progress must be True or False"),
])
def test_bad_arguments_are_named(kwargs, error, message):
    args = {"num_nodes": 100, "num_edges": 500, "num_classes": 3, "num_features": 4, **kwargs}
    with pytest.raises(error, match=r"^powerlaw: " + message):
        powerlaw(**args)


def test_an_unreachable_graph_is_refused():
    """Two nodes per class and homophily 1: only 20 same-class pairs exist, 100 edges are asked for."""
    with pytest.raises(ValueError, match=r"could not reach num_edges=100 distinct edges .*\(reached 20\)"):
        powerlaw(40, 100, num_classes=20, homophily=1.0)


# ---------------------------------------------------------------------------------------------------------
# the named, cached sizes


def test_named_sizes_are_listed_with_ogbn_products_shape():
    assert SIZES == {"powerlaw-1m": (40_000, 1_000_000), "powerlaw-10m": (400_000, 10_000_000),
                     "powerlaw-60m": (2_400_000, 60_000_000)}
    for name, (n, m) in SIZES.items():
        assert name in DATASETS and canonical_name(name.upper()) == name
        assert is_available(name, root="/nonexistent")
        assert 2 * m / n == 50.0


@pytest.fixture
def cache(monkeypatch, tmp_path):
    """A fresh cache, a data root that must stay untouched, and powerlaw-1m shrunk to 500 nodes / 3000 edges
    (the loader reads the same SIZES dict)."""
    monkeypatch.setenv("GRAPHUNLEARN_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("GRAPHUNLEARN_DATA", str(tmp_path / "data"))
    monkeypatch.setitem(SIZES, "powerlaw-1m", (500, 3000))
    return tmp_path / "cache" / "generated"


def test_cache_round_trip(cache, monkeypatch, tmp_path):
    first = load("powerlaw-1m")
    assert first.name == "powerlaw-1m" and first.edge_index.shape == (2, 6000) and first.x.shape == (500, 100)
    files = sorted(cache.glob("*.pt"))
    assert files == [cache_path("powerlaw-1m", cache)]
    assert not (tmp_path / "data").exists()  # the data root is never written
    assert not list(cache.glob("*.tmp"))
    blob = torch.load(files[0], weights_only=True)
    assert blob["version"] == VERSION and blob["edges"].dtype == torch.int32
    # the same graph as the generator gives for the same arguments
    assert_same(first, powerlaw(500, 3000))

    # the second load reads the file: building again would fail
    module = importlib.import_module("graphunlearn.datasets.powerlaw")  # the package exports the function

    def no_build(**kwargs):
        raise AssertionError("rebuilt although the cache holds the graph")

    monkeypatch.setattr(module, "_generate", no_build)
    assert_same(load("powerlaw-1m"), first)
    # other arguments are another file (the key covers every generator argument)
    with pytest.raises(AssertionError, match="rebuilt"):
        load("powerlaw-1m", seed=1)


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty", "other-args", "wrong-shape"])
def test_damaged_cache_file_is_rebuilt(cache, damage):
    first = load("powerlaw-1m")
    path = cache_path("powerlaw-1m", cache)
    raw = path.read_bytes()
    if damage == "garbage":
        path.write_bytes(b"not a torch file" * 100)
    elif damage == "truncated":
        path.write_bytes(raw[: len(raw) // 2])
    elif damage == "empty":
        path.write_bytes(b"")
    else:
        blob = torch.load(path, weights_only=True)
        if damage == "other-args":
            blob["args"] = {**blob["args"], "seed": 99}
        else:
            blob["x"] = blob["x"][:10]
        torch.save(blob, path)
    with pytest.warns(RuntimeWarning, match=r"cached powerlaw-1m is unusable .*; rebuilding it"):
        again = load("powerlaw-1m")
    assert_same(again, first)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # repaired: read quietly
        assert_same(load("powerlaw-1m"), first)


def test_load_options(cache):
    d = load("powerlaw-1m", seed=7, num_classes=3, num_features=5, homophily=0.5, exponent=2.8, signal=1.0)
    assert_same(d, powerlaw(500, 3000, num_classes=3, num_features=5, exponent=2.8, homophily=0.5, signal=1.0,
                            seed=7))
    assert len(list(cache.glob("*.pt"))) == 1
    with pytest.raises(TypeError, match="num_nodes is fixed by the name"):
        load("powerlaw-1m", num_nodes=10)
    with pytest.raises(TypeError, match=r"unexpected options \['avg_degree'\]"):
        load("powerlaw-1m", avg_degree=3)
    with pytest.raises(ValueError, match=r"load\('powerlaw-1m'\): homophily must be a finite number in \[0, 1\]"):
        load("powerlaw-1m", homophily=2)
    assert len(list(cache.glob("*.pt"))) == 1  # refused before anything was built


def test_big_builds_say_so(cache, capsys, monkeypatch):
    module = importlib.import_module("graphunlearn.datasets.powerlaw")
    monkeypatch.setattr(module, "_PROGRESS_EDGES", 1000)
    load("powerlaw-1m")
    err = capsys.readouterr().err
    assert "powerlaw-1m: building (once) into" in err and "saved" in err
    load("powerlaw-1m")
    assert capsys.readouterr().err == ""  # read from the cache: nothing to say


def test_real_powerlaw_1m_size(monkeypatch, tmp_path):
    """The real smallest size: exact counts and mean degree 50 (about 1 s to build)."""
    monkeypatch.setenv("GRAPHUNLEARN_CACHE", str(tmp_path))
    d = load("powerlaw-1m")
    assert d.num_nodes == 40_000 and d.edge_index.shape == (2, 2_000_000) and d.x.shape == (40_000, 100)
    assert int(d.y.max()) == 46
    deg = degrees(d)
    assert float(deg.float().mean()) == 50.0 and int(deg.max()) > 10 * 50
