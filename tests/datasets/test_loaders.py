"""Dataset loaders: shapes of the real datasets, root resolution, working copies, scoped OGB allowlist.

Real-data tests read ``GRAPHUNLEARN_DATA`` (fixture ``data_root``) and skip when it is absent. Everything
a loader writes must land in the cache, never under the data root.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch_geometric.data import Data

from graphunlearn.datasets import (
    DATASETS,
    cache_dir,
    canonical_name,
    data_root,
    is_available,
    load,
    load_or_default,
    loaders,
    ogb_safe_globals,
    synthetic,
)
from tests.conftest import require_dataset

# ---------------------------------------------------------------------------------------------------------
# helpers


def tree_state(root: Path) -> dict[str, tuple]:
    """Every path under ``root`` with its kind, size and modification time (to prove nothing was written)."""
    state = {}
    for p in sorted(root.rglob("*")):
        st = p.stat()
        state[str(p.relative_to(root))] = ("dir",) if p.is_dir() else ("file", st.st_size, st.st_mtime_ns)
    return state


def pair_set(edges: torch.Tensor) -> set[tuple[int, int]]:
    return set(map(tuple, edges.t().tolist()))


@pytest.fixture(scope="module")
def real(data_root, tmp_path_factory):
    """Loads the real datasets once for this module, into a cache of its own (so the first load of each one
    processes its raw files here, whatever ran before), under torch's weights-only default, and records the
    data root's state and torch's safe-globals allowlist before and after."""
    cache = tmp_path_factory.mktemp("loaders-cache")
    out = {"root_before": tree_state(data_root), "cache": cache, "times": {}, "data": {}}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GRAPHUNLEARN_CACHE", str(cache))
        mp.delenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", raising=False)
        mp.delenv("TORCH_FORCE_WEIGHTS_ONLY_LOAD", raising=False)

        def get(name: str, subdir: str) -> Data:
            if name not in out["data"]:
                require_dataset(data_root, subdir)
                before = set(torch.serialization.get_safe_globals())
                start = time.perf_counter()
                out["data"][name] = load(name)
                out["times"][name] = time.perf_counter() - start
                out[f"globals_changed_{name}"] = set(torch.serialization.get_safe_globals()) ^ before
            return out["data"][name]

        out["get"] = get
        yield out


@pytest.fixture(scope="module")
def cora(real):
    return real["get"]("cora", "planetoid/Cora")


@pytest.fixture(scope="module")
def ddi(real):
    return real["get"]("ogbl-ddi", "ogb/ogbl_ddi")


@pytest.fixture(scope="module")
def movielens(real):
    return real["get"]("movielens-100k", "rec/ml-100k")


# ---------------------------------------------------------------------------------------------------------
# real datasets


def test_cora_shapes_and_public_masks(cora):
    assert isinstance(cora, Data)
    assert cora.x.shape == (2708, 1433)
    assert cora.edge_index.shape == (2, 10556)
    assert cora.y.shape == (2708,) and int(cora.y.max()) + 1 == 7
    # undirected: every edge is present in both directions, and there are no self loops
    assert pair_set(cora.edge_index) == pair_set(cora.edge_index.flip(0))
    assert bool((cora.edge_index[0] != cora.edge_index[1]).all())
    masks = [cora.train_mask, cora.val_mask, cora.test_mask]
    assert [int(m.sum()) for m in masks] == [140, 500, 1000]
    assert not bool((masks[0] & masks[1]).any() or (masks[0] & masks[2]).any() or (masks[1] & masks[2]).any())
    # Planetoid's public split: the first 140 nodes train, the next 500 validate
    assert bool(cora.train_mask[:140].all()) and bool(cora.val_mask[140:640].all())


def test_ogbl_ddi_official_split(ddi):
    assert ddi.num_nodes == 4267
    assert ddi.edge_index.shape == (2, 2 * 1067911)  # training edges, both directions
    expected = {"train_pos": 1067911, "val_pos": 133489, "val_neg": 101882, "test_pos": 133489,
                "test_neg": 95599}
    assert set(ddi.split_edge) == set(expected)
    for key, size in expected.items():
        t = ddi.split_edge[key]
        assert t.dtype == torch.long and t.shape == (2, size), (key, tuple(t.shape))
        assert 0 <= int(t.min()) and int(t.max()) < 4267, key
    # the positives of the three parts are disjoint, and no negative is a positive
    def keys(t, both=False):
        k = t[0] * 4267 + t[1]
        return torch.cat([k, t[1] * 4267 + t[0]]) if both else k
    train = keys(ddi.split_edge["train_pos"], both=True)
    for part in ("val_pos", "test_pos", "val_neg", "test_neg"):
        assert not bool(torch.isin(keys(ddi.split_edge[part]), train).any()), part


def test_ogb_loads_under_weights_only_without_leaking_allowlist(real, ddi):
    assert "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD" not in os.environ
    assert real["globals_changed_ogbl-ddi"] == set(), "load('ogbl-ddi') changed torch's safe-globals allowlist"


def test_ogb_split_file_needs_the_scoped_allowlist(data_root, monkeypatch):
    """The split files are numpy pickles: weights-only loading refuses them outside ``ogb_safe_globals`` and
    accepts them inside it; leaving the block restores the allowlist exactly."""
    path = require_dataset(data_root, "ogb/ogbl_ddi") / "split" / "target" / "valid.pt"
    monkeypatch.delenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", raising=False)
    before = set(torch.serialization.get_safe_globals())
    with pytest.raises(Exception, match="[Ww]eights only load failed"):
        torch.load(path)
    with ogb_safe_globals():
        split = torch.load(path)
    assert split["edge"].shape == (133489, 2) and split["edge_neg"].shape == (101882, 2)
    assert set(torch.serialization.get_safe_globals()) == before
    with pytest.raises(Exception, match="[Ww]eights only load failed"):
        torch.load(path)


def test_ogb_safe_globals_keeps_the_callers_own_entries(tmp_path, monkeypatch):
    """An entry the caller allowlisted before the block must survive it (torch's ``safe_globals`` alone
    removes its entries on exit even when they were there before)."""
    monkeypatch.delenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", raising=False)
    had = np.ndarray in set(torch.serialization.get_safe_globals())
    torch.serialization.add_safe_globals([np.ndarray])
    try:
        before = set(torch.serialization.get_safe_globals())
        with ogb_safe_globals():
            pass
        assert set(torch.serialization.get_safe_globals()) == before
    finally:
        if not had:
            with torch.serialization.safe_globals([np.ndarray]):
                pass  # leaving the block removes it again


def test_ogb_safe_globals_reads_numpy2_pickles(tmp_path, monkeypatch):
    """Split files written under numpy 2 name ``numpy._core.multiarray._reconstruct``; they load too."""
    monkeypatch.delenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", raising=False)
    path = tmp_path / "split.pt"
    obj = {"edge": np.arange(6, dtype=np.int64).reshape(3, 2), "weight": np.ones(3), "year": np.arange(3)}
    torch.save(obj, path, _use_new_zipfile_serialization=False)
    with ogb_safe_globals():
        back = torch.load(path)
    assert set(back) == set(obj)
    for key in obj:
        np.testing.assert_array_equal(back[key], obj[key])


def test_movielens_100k(movielens, data_root):
    raw = require_dataset(data_root, "rec/ml-100k") / "raw"
    d = movielens
    assert (d.num_users, d.num_items, d.num_nodes) == (943, 1682, 943 + 1682)
    assert d.node_type.tolist() == [0] * 943 + [1] * 1682
    assert d.split_edge["train_pos"].shape == (2, 80000) and d.split_edge["test_pos"].shape == (2, 20000)
    assert d.edge_index.shape == (2, 2 * 100000)  # all 100k interactions, both directions
    # rows are (user, item): users 0..942, items 943..2624, matching u1.base / u1.test (1-based ids)
    for part, fname in (("train_pos", "u1.base"), ("test_pos", "u1.test")):
        pairs = d.split_edge[part]
        assert bool((pairs[0] < 943).all() and (pairs[1] >= 943).all() and (pairs[1] < 2625).all())
        table = np.loadtxt(raw / fname, dtype=np.int64)
        expected = {(int(u) - 1, 943 + int(i) - 1) for u, i in table[:, :2]}
        assert pair_set(pairs) == expected, fname
    everything = np.loadtxt(raw / "u.data", dtype=np.int64)
    assert pair_set(d.edge_index[:, d.edge_index[0] < 943]) == {(int(u) - 1, 943 + int(i) - 1)
                                                                for u, i in everything[:, :2]}
    # item_x: the 18 genre flags of u.item (its "unknown" column dropped), row k = item k
    genres = np.array([[int(f) for f in line.split("|")[6:]]
                       for line in (raw / "u.item").read_text(encoding="latin-1").splitlines() if line])
    assert d.item_x.shape == (1682, 18)
    np.testing.assert_array_equal(d.item_x.numpy(), genres)
    assert d.item_x[0].nonzero().squeeze(1).tolist() == [2, 3, 4]  # Toy Story: Animation, Children's, Comedy
    assert [d.item_group_names[k] for k in (2, 3, 4)] == ["Animation", "Children's", "Comedy"]


@pytest.mark.slow
def test_gowalla(real, data_root):
    raw = require_dataset(data_root, "rec/gowalla") / "raw"
    d = real["get"]("gowalla", "rec/gowalla")
    assert (d.num_users, d.num_items, d.num_nodes) == (29858, 40981, 29858 + 40981)
    train, test = d.split_edge["train_pos"], d.split_edge["test_pos"]
    assert train.shape == (2, 810128) and test.shape == (2, 217242)
    assert int(d.node_type.sum()) == 40981 and bool((d.node_type[:29858] == 0).all())
    for pairs in (train, test):
        assert bool((pairs[0] < 29858).all() and (pairs[1] >= 29858).all())
    # train and test are disjoint (as keys user * N + item)
    n = d.num_nodes
    assert not bool(torch.isin(test[0] * n + test[1], train[0] * n + train[1]).any())
    # spot-check against the LightGCN text format: the first line is "user item item ..."
    first = [int(t) for t in (raw / "train.txt").open().readline().split()]
    user, items = first[0], sorted(first[1:])
    assert sorted((train[1, train[0] == user] - 29858).tolist()) == items


def _npz_rows(path: Path) -> tuple[np.ndarray, int]:
    """Words per node (nonzeros of each attribute row) and the class count of a gnn-benchmark ``.npz``."""
    with np.load(path) as f:
        return np.diff(f["attr_indptr"]), int(f["labels"].max()) + 1


@pytest.mark.parametrize("name, subdir, npz, shape", [
    ("amazon-photo", "amazon/Photo", "amazon_electronics_photo.npz", (7650, 745, 238162, 8)),
    ("coauthor-cs", "coauthor/CS", "ms_academic_cs.npz", (18333, 6805, 163788, 15)),
])
def test_shchur_graphs(real, data_root, name, subdir, npz, shape):
    """PyG's Amazon / Coauthor graphs (README's counts), undirected, with row-normalised features whose
    support is the file's bag of words of each node."""
    raw = require_dataset(data_root, subdir) / "raw"
    d = real["get"](name, subdir)
    assert (d.num_nodes, d.num_features, d.edge_index.size(1), int(d.y.max()) + 1) == shape and d.name == name
    assert d.is_undirected() and not d.has_self_loops()
    words, classes = _npz_rows(raw / npz)
    assert classes == shape[3]
    np.testing.assert_array_equal((d.x > 0).sum(1).numpy(), words)
    sums = d.x.sum(1)
    torch.testing.assert_close(sums[sums > 0], torch.ones_like(sums[sums > 0]))  # T.NormalizeFeatures()
    assert (real["cache"] / "work" / subdir / "processed").is_dir()


@pytest.mark.slow
def test_yelp2018(real, data_root):
    """The LightGCN text format read as gowalla is (README section 5's counts)."""
    raw = require_dataset(data_root, "rec/yelp2018") / "raw"
    d = real["get"]("yelp2018", "rec/yelp2018")
    users, items = 31668, 38048
    assert (d.num_users, d.num_items, d.num_nodes, d.name) == (users, items, users + items, "yelp2018")
    train, test = d.split_edge["train_pos"], d.split_edge["test_pos"]
    assert train.shape == (2, 1237259) and test.shape == (2, 324147)
    assert d.edge_index.shape == (2, 2 * (1237259 + 324147))
    assert int(d.node_type.sum()) == items and bool((d.node_type[:users] == 0).all())
    n = d.num_nodes
    assert not bool(torch.isin(test[0] * n + test[1], train[0] * n + train[1]).any())
    for fname, pairs in (("train.txt", train), ("test.txt", test)):
        first = [int(t) for t in (raw / fname).open().readline().split()]
        assert sorted((pairs[1, pairs[0] == first[0]] - users).tolist()) == sorted(first[1:]), fname


def test_new_graph_names_and_aliases():
    for alias, key in (("Amazon-Photo", "amazon-photo"), ("photo", "amazon-photo"), ("amazon_photo", "amazon-photo"),
                       ("Coauthor-CS", "coauthor-cs"), ("cs", "coauthor-cs"), ("coauthor_cs", "coauthor-cs"),
                       ("Yelp2018", "yelp2018"), ("yelp", "yelp2018"), ("yelp-2018", "yelp2018")):
        assert canonical_name(alias) == key
    assert {"amazon-photo", "coauthor-cs", "yelp2018"} <= set(DATASETS)


@pytest.mark.parametrize("name, subdir, wanted", [
    ("amazon-photo", "amazon/Photo", "amazon_electronics_photo.npz"),
    ("coauthor-cs", "coauthor/CS", "ms_academic_cs.npz"),
    ("yelp2018", "rec/yelp2018", "train.txt"),
])
def test_new_graph_with_a_missing_raw_file_is_refused_before_any_download(tmp_path, monkeypatch, name, subdir,
                                                                            wanted):
    raw = tmp_path / "root" / subdir / "raw"
    raw.mkdir(parents=True)
    (raw / "unrelated.txt").write_text("x")
    monkeypatch.setenv("GRAPHUNLEARN_CACHE", str(tmp_path / "cache"))
    with pytest.raises(FileNotFoundError, match=rf"dataset {name!r}: .*{re.escape(wanted)}.* missing under"):
        load(name, root=tmp_path / "root")
    assert not (tmp_path / "cache" / "work" / subdir / "processed").exists()  # PyG never ran


def test_crafted_npz_is_refused_and_never_run(tmp_path, monkeypatch):
    """An ``.npz`` is read with ``numpy.load(allow_pickle=False)``: an object array is refused, not unpickled."""
    marker = tmp_path / "pwned"
    raw = tmp_path / "root" / "amazon" / "Photo" / "raw"
    raw.mkdir(parents=True)
    crafted = np.empty(1, dtype=object)
    crafted[0] = exploits(marker)["os.system"]
    np.savez(raw / "amazon_electronics_photo.npz", attr_data=crafted)
    monkeypatch.setenv("GRAPHUNLEARN_CACHE", str(tmp_path / "cache"))
    with pytest.raises(ValueError, match=r"dataset 'amazon-photo': .*amazon_electronics_photo\.npz is not a readable "
                                         r"gnn-benchmark \.npz \(.*allow_pickle"):
        load("amazon-photo", root=tmp_path / "root")
    assert not marker.exists()


def test_data_root_is_never_written(real, cora, ddi, movielens, data_root):
    """Loading copies into the cache: the data root gains no ``processed/`` folder and no file changes."""
    assert tree_state(data_root) == real["root_before"]
    assert not [p for p in data_root.rglob("processed")]
    work = real["cache"] / "work"
    assert (work / "planetoid" / "Cora" / "processed").is_dir()
    assert (work / "ogb" / "ogbl_ddi" / "processed").is_dir()
    assert (work / "rec" / "ml-100k" / "processed").is_dir()


def test_real_load_reuses_working_copy(real, cora, monkeypatch):
    """A second load of Cora reads the existing working copy: its processed file is not rebuilt."""
    monkeypatch.setenv("GRAPHUNLEARN_CACHE", str(real["cache"]))
    processed = sorted((real["cache"] / "work" / "planetoid" / "Cora" / "processed").glob("*.pt"))
    assert processed
    stamps = [p.stat().st_mtime_ns for p in processed]
    again = load("cora")
    assert [p.stat().st_mtime_ns for p in processed] == stamps
    assert torch.equal(again.x, cora.x) and torch.equal(again.edge_index, cora.edge_index)


# ---------------------------------------------------------------------------------------------------------
# names and root resolution (no real data needed)


def test_canonical_names_and_aliases():
    assert canonical_name(" Cora ") == "cora"
    assert canonical_name("ML-100K") == "movielens-100k"
    assert canonical_name("ddi") == "ogbl-ddi"
    for name in DATASETS:
        assert canonical_name(name) == name


def test_unknown_name_lists_available():
    with pytest.raises(ValueError, match="unknown dataset 'nope'") as info:
        load("nope")
    for name in DATASETS:
        assert name in str(info.value)
    with pytest.raises(ValueError, match="available"):
        is_available("citeseerx")


def test_root_precedence(monkeypatch, tmp_path):
    explicit, env, cache = tmp_path / "explicit", tmp_path / "env", tmp_path / "cache"
    monkeypatch.setenv("GRAPHUNLEARN_CACHE", str(cache))
    monkeypatch.setenv("GRAPHUNLEARN_DATA", str(env))
    assert data_root(explicit) == explicit
    assert data_root(str(explicit)) == explicit
    assert data_root() == env
    monkeypatch.delenv("GRAPHUNLEARN_DATA")
    assert data_root() == cache / "data"
    assert cache_dir() == cache
    monkeypatch.delenv("GRAPHUNLEARN_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "graphunlearn"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir() == tmp_path / "home" / ".cache" / "graphunlearn"


def test_missing_dataset_under_explicit_root(monkeypatch, tmp_path):
    monkeypatch.setenv("GRAPHUNLEARN_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "empty"
    root.mkdir()
    with pytest.raises(FileNotFoundError) as info:
        load("cora", root=root)
    assert str(root / "planetoid" / "Cora") in str(info.value)
    assert not is_available("cora", root=root)
    assert not (tmp_path / "cache" / "work").exists()


def test_a_failed_download_leaves_the_fallback_working(monkeypatch, tmp_path):
    """An empty raw/ folder (what a download that failed leaves) is not a dataset: demos still fall back."""
    monkeypatch.setenv("GRAPHUNLEARN_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "root"
    (root / "planetoid" / "Cora" / "raw").mkdir(parents=True)
    assert not is_available("cora", root=root)
    name, _, why = load_or_default("cora", root=root)
    assert name == "synthetic" and "cora not found" in why
    (root / "planetoid" / "Cora" / "raw" / "ind.cora.x").write_bytes(b"")
    assert is_available("cora", root=root)


def test_missing_dataset_under_env_root(monkeypatch, tmp_path):
    monkeypatch.setenv("GRAPHUNLEARN_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("GRAPHUNLEARN_DATA", str(tmp_path / "env"))
    with pytest.raises(FileNotFoundError, match="GRAPHUNLEARN_DATA") as info:
        load("ogbl-ddi")
    assert str(tmp_path / "env" / "ogb" / "ogbl_ddi") in str(info.value)


def test_load_synthetic_passes_options():
    d = load("synthetic", num_nodes=50, num_classes=2, seed=3)
    assert d.num_nodes == 50 and torch.equal(d.x, synthetic(num_nodes=50, num_classes=2, seed=3).x)
    assert is_available("synthetic", root="/nonexistent")
    with pytest.raises(TypeError, match="no extra options"):
        load("cora", root="/nonexistent", num_nodes=3)


# ---------------------------------------------------------------------------------------------------------
# working copies (a stub loader: no real data needed)


@pytest.fixture
def stub_root(monkeypatch, tmp_path):
    """A data root with a fake Cora folder, a fresh cache, and a stub loader that records its folder."""
    root = tmp_path / "root"
    raw = root / "planetoid" / "Cora" / "raw"
    raw.mkdir(parents=True)
    (raw / "a.txt").write_text("alpha")
    (raw / "b.txt").write_text("bravo")
    (root / "planetoid" / "Cora" / "processed").mkdir()
    (root / "planetoid" / "Cora" / "processed" / "stale.pt").write_text("stale")
    monkeypatch.setenv("GRAPHUNLEARN_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("GRAPHUNLEARN_DATA", raising=False)
    calls = []

    def stub(work: Path) -> Data:
        calls.append(work)
        (work / "processed").mkdir(exist_ok=True)
        (work / "processed" / "data.pt").write_text((work / "raw" / "a.txt").read_text())
        return Data(num_nodes=1)

    monkeypatch.setitem(loaders._LOADERS, "cora", stub)
    return root, calls


def test_working_copy_is_made_in_cache_without_processed(stub_root, tmp_path):
    root, calls = stub_root
    before = tree_state(root)
    load("cora", root=root)
    work = tmp_path / "cache" / "work" / "planetoid" / "Cora"
    assert calls == [work]
    assert (work / "raw" / "a.txt").read_text() == "alpha"
    assert not (work / "processed" / "stale.pt").exists()  # the source's processed/ is not copied
    assert tree_state(root) == before


def test_working_copy_is_reused(stub_root, tmp_path):
    root, calls = stub_root
    load("cora", root=root)
    work = calls[0]
    sentinel = work / "raw" / "sentinel"
    sentinel.write_text("still here")  # a re-copy would remove it
    load("cora", root=root)
    assert calls == [work, work]
    assert sentinel.exists() and (work / "processed" / "data.pt").exists()


@pytest.mark.parametrize("change", ["same_size", "new_size", "new_file", "removed_file"])
def test_working_copy_is_remade_when_raw_files_change(stub_root, change):
    root, calls = stub_root
    load("cora", root=root)
    work = calls[0]
    (work / "raw" / "sentinel").write_text("gone after a re-copy")
    raw = root / "planetoid" / "Cora" / "raw"
    if change == "same_size":  # rewritten in place: same size, new content, later mtime
        st = (raw / "a.txt").stat()
        (raw / "a.txt").write_text("ALPHA")
        os.utime(raw / "a.txt", ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    elif change == "new_size":
        (raw / "a.txt").write_text("alpha, longer")
    elif change == "new_file":
        (raw / "c.txt").write_text("charlie")
    else:
        (raw / "b.txt").unlink()
    load("cora", root=root)
    assert not (work / "raw" / "sentinel").exists()
    assert (work / "raw" / "a.txt").read_text() == (raw / "a.txt").read_text()
    assert sorted(p.name for p in (work / "raw").iterdir()) == sorted(p.name for p in raw.iterdir())
    assert (work / "processed" / "data.pt").read_text() == (raw / "a.txt").read_text()


def test_working_copy_follows_a_different_root(stub_root, tmp_path):
    root, calls = stub_root
    load("cora", root=root)
    other = tmp_path / "other"
    shutil.copytree(root, other)
    (other / "planetoid" / "Cora" / "raw" / "a.txt").write_text("other")
    load("cora", root=other)
    assert (calls[1] / "raw" / "a.txt").read_text() == "other"


def test_dataset_inside_cache_is_read_in_place(stub_root, tmp_path):
    """With no root and no GRAPHUNLEARN_DATA the root is the cache's data folder: read there, no copy."""
    root, calls = stub_root
    cached = tmp_path / "cache" / "data"
    shutil.copytree(root, cached)
    load("cora")
    assert calls == [cached / "planetoid" / "Cora"]
    assert not (tmp_path / "cache" / "work").exists()


def test_root_precedence_through_load(stub_root, monkeypatch, tmp_path):
    """explicit root > GRAPHUNLEARN_DATA > cache, seen through which folder ``load`` reads."""
    root, calls = stub_root
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("GRAPHUNLEARN_DATA", str(empty))
    load("cora", root=root)  # explicit root wins over the (empty) env root
    assert (calls[-1] / "raw" / "a.txt").read_text() == "alpha"
    with pytest.raises(FileNotFoundError, match=re.escape(str(empty))):
        load("cora")  # env root wins over the cache
    monkeypatch.setenv("GRAPHUNLEARN_DATA", str(root))
    with pytest.raises(FileNotFoundError, match=re.escape(str(empty))):
        load("cora", root=empty)  # explicit root wins over the (full) env root
    load("cora")
    assert len(calls) == 2


def test_real_root_precedence_with_cora(data_root, monkeypatch, tmp_path):
    """The same precedence with the real Planetoid loader, on a copy of Cora's raw files."""
    src = require_dataset(data_root, "planetoid/Cora")
    mine = tmp_path / "mine"
    shutil.copytree(src, mine / "planetoid" / "Cora")
    monkeypatch.setenv("GRAPHUNLEARN_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("GRAPHUNLEARN_DATA", str(tmp_path / "nothing"))
    d = load("cora", root=mine)
    assert d.x.shape == (2708, 1433)
    assert not (mine / "planetoid" / "Cora" / "processed").exists()
    assert (tmp_path / "cache" / "work" / "planetoid" / "Cora" / "processed").is_dir()


def test_load_or_default_says_which(tmp_path):
    from graphunlearn.datasets import load_or_default

    name, data, message = load_or_default("cora", root=tmp_path)  # nothing there: the embedded default
    assert name == "synthetic" and data.num_nodes == 1000
    assert "synthetic SBM graph" in message and "cora not found under" in message
    name, data, message = load_or_default("movielens-100k", default="synthetic-rec", root=tmp_path)
    assert name == "synthetic-rec" and data.num_users > 0 and "user-item" in message
    with pytest.raises(ValueError, match="unknown dataset"):
        load_or_default("no-such-graph", root=tmp_path)


# ---------------------------------------------------------------------------------------------------------
# arguments are checked up front


@pytest.mark.parametrize("name", [None, 3, b"cora", ["cora"]])
def test_load_refuses_a_name_that_is_not_a_string(name):
    with pytest.raises(TypeError, match=r"dataset name must be a str, one of cora, citeseer, .*synthetic-rec"):
        load(name)
    with pytest.raises(TypeError, match="dataset name must be a str"):
        is_available(name)


def test_load_refuses_bad_roots(tmp_path, monkeypatch):
    with pytest.raises(TypeError, match="root must be a folder path"):
        load("cora", root=123)
    note = tmp_path / "notes.txt"
    note.write_text("a file")
    with pytest.raises(NotADirectoryError, match=re.escape(f"data root {note} (set by the root argument) is a file")):
        load("cora", root=note)
    monkeypatch.setenv("GRAPHUNLEARN_DATA", str(note))
    with pytest.raises(NotADirectoryError, match="set by GRAPHUNLEARN_DATA"):
        load("cora")


@pytest.mark.parametrize("kwargs, error, message", [
    ({"num_nodes": -5}, ValueError, "num_nodes >= 2"),
    ({"num_nodes": True}, TypeError, "num_nodes must be an int, got bool"),
    ({"num_nodes": 100.0}, TypeError, "num_nodes must be an int, got float"),
    ({"seed": "x"}, TypeError, "seed must be an int"),
    ({"seed": 2 ** 70}, ValueError, "seed must be in"),
    ({"homophily": float("nan")}, ValueError, r"homophily must be a finite number in \[0, 1\]"),
    ({"avg_degree": "8"}, TypeError, "avg_degree must be a number"),
])
def test_load_synthetic_refuses_bad_options(kwargs, error, message):
    with pytest.raises(error, match=message):
        load("synthetic", **kwargs)


@pytest.mark.parametrize("kwargs, error, message", [
    ({"num_users": 0}, ValueError, "num_users >= 1"),
    ({"affinity": 2}, ValueError, r"affinity must be a finite number in \[0, 1\]"),
    ({"interactions_per_user": 1.5}, TypeError, "interactions_per_user must be an int"),
    ({"seed": None}, TypeError, "seed must be an int"),
])
def test_load_synthetic_rec_refuses_bad_options(kwargs, error, message):
    with pytest.raises(error, match=message):
        load("synthetic-rec", **kwargs)


# ---------------------------------------------------------------------------------------------------------
# untrusted data roots: read as data, never executed


class Exploit:
    """Unpickling this runs ``callable(*args)``: here, something that creates a marker file."""

    def __init__(self, call, args):
        self.call, self.args = call, args

    def __reduce__(self):
        return self.call, self.args


def exploits(marker: Path) -> dict[str, Exploit]:
    import subprocess

    return {
        "os.system": Exploit(os.system, (f"touch {marker}",)),
        "builtins.exec": Exploit(exec, (f"open({str(marker)!r}, 'w').close()",)),
        "subprocess.check_call": Exploit(subprocess.check_call, (["touch", str(marker)],)),
        "shutil.copyfile": Exploit(shutil.copyfile, (__file__, str(marker))),
    }


PLANETOID_FILES = ("x", "tx", "allx", "y", "ty", "ally", "graph", "test.index")


def fake_planetoid(folder: Path, crafted: str, payload: bytes) -> None:
    """A Cora raw folder whose ``ind.cora.<crafted>`` is ``payload`` and whose other files are harmless
    (valid allowlisted pickles; the checker stops at the first refused file, in PLANETOID_FILES order)."""
    import pickle

    import numpy as np

    raw = folder / "raw"
    raw.mkdir(parents=True)
    for part in PLANETOID_FILES:
        # protocol 4: Python 3's protocol 2 spells bytes as ``_codecs.encode(...)``, which the real files do not
        body = b"0\n" if part == "test.index" else pickle.dumps(np.zeros((1, 1)), protocol=4)
        (raw / f"ind.cora.{part}").write_bytes(payload if part == crafted else body)


@pytest.mark.parametrize("protocol", [0, 2, 4])
@pytest.mark.parametrize("what", ["os.system", "builtins.exec", "subprocess.check_call", "shutil.copyfile"])
def test_crafted_planetoid_raw_file_is_refused_and_never_run(tmp_path, monkeypatch, what, protocol):
    import pickle

    marker = tmp_path / "pwned"
    payload = pickle.dumps(exploits(marker)[what], protocol=protocol)
    root = tmp_path / "root"
    fake_planetoid(root / "planetoid" / "Cora", "x", payload)
    monkeypatch.setenv("GRAPHUNLEARN_CACHE", str(tmp_path / "cache"))
    refused_name = {"os.system": "posix.system", "builtins.exec": "exec", "subprocess.check_call": "check_call",
                    "shutil.copyfile": "shutil.copyfile"}[what]
    with pytest.raises(ValueError, match=rf"^ind\.cora\.x: refuses to unpickle \S*{refused_name} \(not a type a "
                       r"Planetoid raw file holds\)$"):
        load("cora", root=root)
    assert not marker.exists()
    assert not (tmp_path / "cache" / "work" / "planetoid" / "Cora" / "processed").exists()  # PyG never ran


@pytest.mark.parametrize("part", ["tx", "graph"])
def test_crafted_planetoid_file_is_refused_wherever_it_is(tmp_path, monkeypatch, part):
    import pickle

    marker = tmp_path / "pwned"
    root = tmp_path / "root"
    fake_planetoid(root / "planetoid" / "Cora", part,
                   pickle.dumps(exploits(marker)["os.system"], protocol=2))
    monkeypatch.setenv("GRAPHUNLEARN_CACHE", str(tmp_path / "cache"))
    with pytest.raises(ValueError, match=rf"ind\.cora\.{part}: refuses to unpickle"):
        load("cora", root=root)
    assert not marker.exists()


@pytest.mark.parametrize("payload, message", [
    (b"", "truncated"),
    (b"\x80\x02junk", "not a valid Planetoid raw file"),
    (b"not a pickle at all", "not a valid Planetoid raw file"),
])
def test_damaged_planetoid_file_is_one_clear_error(tmp_path, monkeypatch, payload, message):
    fake_planetoid(tmp_path / "root" / "planetoid" / "Cora", "y", payload)
    monkeypatch.setenv("GRAPHUNLEARN_CACHE", str(tmp_path / "cache"))
    with pytest.raises(ValueError, match=rf"^ind\.cora\.y: .*{message}"):
        load("cora", root=tmp_path / "root")


def test_missing_planetoid_file_is_refused_before_any_download(tmp_path, monkeypatch):
    fake_planetoid(tmp_path / "root" / "planetoid" / "Cora", "x", b"")
    (tmp_path / "root" / "planetoid" / "Cora" / "raw" / "ind.cora.x").unlink()
    monkeypatch.setenv("GRAPHUNLEARN_CACHE", str(tmp_path / "cache"))
    with pytest.raises(FileNotFoundError, match=r"ind\.cora\.x: missing from"):
        load("cora", root=tmp_path / "root")


def test_crafted_processed_file_read_in_place_is_refused(tmp_path, monkeypatch):
    """A dataset read in place (under the cache's data folder) may carry a ``processed/`` file; PyG would
    retry a refused weights-only load as a full unpickle, so it is checked first."""
    marker = tmp_path / "pwned"
    monkeypatch.setenv("GRAPHUNLEARN_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("GRAPHUNLEARN_DATA", raising=False)
    processed = tmp_path / "cache" / "data" / "planetoid" / "Cora" / "processed"
    processed.mkdir(parents=True)
    torch.save(exploits(marker)["os.system"], processed / "data.pt")
    with pytest.raises(ValueError, match=r"Cora/processed/data\.pt: it holds objects outside the safe-loading"):
        load("cora")
    assert not marker.exists()


def test_crafted_ogb_split_file_is_refused_even_without_weights_only_default(tmp_path, monkeypatch):
    """ogb calls ``torch.load`` without ``weights_only``: under ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1`` that
    is a full unpickle, so every ``.pt`` file of the working copy is loaded weights-only first."""
    marker = tmp_path / "pwned"
    split = tmp_path / "root" / "ogb" / "ogbl_ddi" / "split" / "target"
    split.mkdir(parents=True)
    torch.save(exploits(marker)["os.system"], split / "train.pt")
    monkeypatch.setenv("GRAPHUNLEARN_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    with pytest.raises(ValueError, match=r"ogbl_ddi/split/target/train\.pt: it holds objects outside"):
        load("ogbl-ddi", root=tmp_path / "root")
    assert not marker.exists()


def test_restricted_unpickler_reads_the_real_planetoid_files(data_root):
    """Every real raw file passes, and reads the same as a plain unpickle (trusted data, for the oracle)."""
    import pickle

    import numpy as np

    from graphunlearn.datasets.raw_pickle import PLANETOID_PICKLED, restricted_load

    raw = require_dataset(data_root, "planetoid/Cora") / "raw"
    for part in PLANETOID_PICKLED:
        blob = (raw / f"ind.cora.{part}").read_bytes()
        ours, plain = restricted_load(blob, part), pickle.loads(blob, encoding="latin1")
        assert type(ours) is type(plain), part
        if part == "graph":
            assert ours == plain
        elif hasattr(plain, "toarray"):
            assert ours.shape == plain.shape and (ours != plain).nnz == 0, part
        else:
            assert np.array_equal(ours, plain), part


def test_real_cora_with_one_crafted_file_is_refused(data_root, tmp_path, monkeypatch):
    import pickle

    src = require_dataset(data_root, "planetoid/Cora")
    root = tmp_path / "root"
    shutil.copytree(src, root / "planetoid" / "Cora")
    marker = tmp_path / "pwned"
    (root / "planetoid" / "Cora" / "raw" / "ind.cora.ally").write_bytes(
        pickle.dumps(exploits(marker)["os.system"], protocol=2))
    monkeypatch.setenv("GRAPHUNLEARN_CACHE", str(tmp_path / "cache"))
    with pytest.raises(ValueError, match=r"ind\.cora\.ally: refuses to unpickle posix\.system"):
        load("cora", root=root)
    assert not marker.exists()
    shutil.copyfile(src / "raw" / "ind.cora.ally", root / "planetoid" / "Cora" / "raw" / "ind.cora.ally")
    assert load("cora", root=root).x.shape == (2708, 1433)  # the genuine files load


def test_real_cora_read_in_place_twice(data_root, tmp_path, monkeypatch):
    """Read in place, the second load finds PyG's own processed file and it passes the weights-only check."""
    src = require_dataset(data_root, "planetoid/Cora")
    monkeypatch.setenv("GRAPHUNLEARN_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("GRAPHUNLEARN_DATA", raising=False)
    shutil.copytree(src, tmp_path / "cache" / "data" / "planetoid" / "Cora")
    first = load("cora")
    assert (tmp_path / "cache" / "data" / "planetoid" / "Cora" / "processed").is_dir()
    assert torch.equal(load("cora").edge_index, first.edge_index)
