"""Synthetic graph and protocol splits (../shared/PROTOCOL.md): link splits, in/out forget sets, node and
user-item splits, negative sampling. networkx serves as an independent oracle for the 2-hop neighbourhoods."""

from __future__ import annotations

import networkx as nx
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch_geometric.data import Data

from graphunlearn.datasets import (
    enclosing_nodes,
    forget_edges,
    forget_nodes,
    link_split,
    load,
    node_split,
    sample_negatives,
    synthetic,
    user_item_split,
)
from tests.conftest import require_dataset

# ---------------------------------------------------------------------------------------------------------
# helpers


def pairs(edges: torch.Tensor) -> set[tuple[int, int]]:
    return set(map(tuple, edges.t().tolist()))


def undirected(edges: torch.Tensor) -> set[tuple[int, int]]:
    return {(min(u, v), max(u, v)) for u, v in edges.t().tolist()}


def two_hop_oracle(num_nodes: int, train_edges: torch.Tensor, seeds: torch.Tensor, hops: int = 2) -> set[int]:
    """Nodes within ``hops`` of ``seeds`` on the undirected training graph, by networkx."""
    g = nx.Graph()
    g.add_nodes_from(range(num_nodes))
    g.add_edges_from(train_edges.t().tolist())
    near: set[int] = set()
    for s in set(seeds.tolist()):
        near |= set(nx.single_source_shortest_path_length(g, s, cutoff=hops))
    return near


@pytest.fixture(scope="module")
def cora(data_root):
    require_dataset(data_root, "planetoid/Cora")
    return load("cora")


@pytest.fixture(scope="module")
def sparse_graph():
    """Sparse enough that both "in" and "out" training edges exist for a 5% test set."""
    return synthetic(num_nodes=3000, avg_degree=2.5, seed=1)


# ---------------------------------------------------------------------------------------------------------
# synthetic


def test_synthetic_is_seeded():
    a, b, c = synthetic(seed=5), synthetic(seed=5), synthetic(seed=6)
    for key in ("x", "edge_index", "y"):
        assert torch.equal(a[key], b[key]), key
    assert pairs(a.edge_index) != pairs(c.edge_index)
    assert not torch.equal(a.x, c.x) and not torch.equal(a.y, c.y)


def test_synthetic_shapes_and_structure():
    d = synthetic(num_nodes=600, num_classes=4, num_features=16, avg_degree=6.0, seed=2)
    assert d.num_nodes == 600 and d.x.shape == (600, 16) and d.y.shape == (600,)
    assert d.edge_index.dtype == torch.long and d.edge_index.size(0) == 2
    assert torch.bincount(d.y).tolist() == [150] * 4  # balanced blocks
    e = pairs(d.edge_index)
    assert e == pairs(d.edge_index.flip(0)), "not undirected"
    assert len(e) == d.edge_index.size(1), "duplicate edges"
    assert bool((d.edge_index[0] != d.edge_index[1]).all()), "self loops"
    assert int(d.edge_index.min()) >= 0 and int(d.edge_index.max()) < 600
    mean_degree = d.edge_index.size(1) / 600
    assert 0.85 * 6.0 <= mean_degree <= 6.0


def edge_homophily(d: Data) -> float:
    return float((d.y[d.edge_index[0]] == d.y[d.edge_index[1]]).float().mean())


def test_synthetic_homophily():
    chance = 1 / 5
    high = edge_homophily(synthetic(homophily=0.8, seed=0))
    assert high > 0.75  # expected 0.8 + 0.2 * chance = 0.84
    assert abs(edge_homophily(synthetic(homophily=0.0, seed=0)) - chance) < 0.05
    assert edge_homophily(synthetic(homophily=1.0, seed=0)) == 1.0


def test_synthetic_features_follow_classes():
    """Nearest class mean classifies far above chance: the features carry the label."""
    d = synthetic(num_nodes=1000, num_classes=5, num_features=32, signal=1.0, seed=4)
    means = torch.stack([d.x[d.y == c].mean(0) for c in range(5)])
    accuracy = float((torch.cdist(d.x, means).argmin(1) == d.y).float().mean())
    assert accuracy > 0.8


@pytest.mark.parametrize("kwargs", [
    {"num_nodes": 1}, {"num_classes": 0}, {"num_nodes": 3, "num_classes": 4}, {"homophily": 1.5},
    {"homophily": -0.1}, {"num_features": 0}, {"avg_degree": -1.0}, {"avg_degree": float("nan")},
])
def test_synthetic_bad_args(kwargs):
    with pytest.raises(ValueError, match="synthetic"):
        synthetic(**kwargs)


# ---------------------------------------------------------------------------------------------------------
# link_split


def check_link_split(data: Data, split, val_ratio=0.05, test_ratio=0.05):
    everything = undirected(data.edge_index[:, data.edge_index[0] != data.edge_index[1]])
    n_edges = len(everything)
    n_val, n_test = int(val_ratio * n_edges), int(test_ratio * n_edges)
    assert split.val_pos.shape == (2, n_val) and split.val_neg.shape == (2, n_val)
    assert split.test_pos.shape == (2, n_test) and split.test_neg.shape == (2, n_test)
    train, val, test = undirected(split.train_pos), undirected(split.val_pos), undirected(split.test_pos)
    assert len(train) == n_edges - n_val - n_test
    assert len(val) == n_val and len(test) == n_test  # one direction each, no repeats
    assert not (train & val) and not (train & test) and not (val & test)
    assert train | val | test == everything
    # train_data: the training edges in both directions, every node and node attribute
    td = split.train_data
    assert td.num_nodes == data.num_nodes
    assert pairs(td.edge_index) == train | {(v, u) for u, v in train}
    assert td.edge_index.size(1) == 2 * len(train)
    for key in ("x", "y"):
        if key in data:
            assert torch.equal(td[key], data[key])
    # negatives: as many as positives, distinct, no self loops, no known positive in either direction
    negatives = torch.cat([split.val_neg, split.test_neg], 1)
    assert bool((negatives[0] != negatives[1]).all())
    assert len(undirected(negatives)) == negatives.size(1)
    assert not (undirected(negatives) & everything)
    assert int(negatives.min()) >= 0 and int(negatives.max()) < data.num_nodes


@pytest.mark.parametrize("seed", [42, 13])
def test_link_split_synthetic(seed):
    d = synthetic(seed=3)
    check_link_split(d, link_split(d, seed=seed))


def test_link_split_cora(cora):
    s = link_split(cora, seed=42)
    assert not s.official and s.seed == 42
    check_link_split(cora, s)
    assert s.val_pos.size(1) == s.test_pos.size(1) == int(0.05 * 5278)
    assert torch.equal(s.train_data.train_mask, cora.train_mask)


def test_link_split_other_ratios_and_self_loops():
    d = synthetic(num_nodes=300, seed=8)
    loops = torch.arange(0, 300, 7).repeat(2, 1)
    d.edge_index = torch.cat([d.edge_index, loops], 1)  # self loops are not edges to split
    s = link_split(d, val_ratio=0.1, test_ratio=0.2, seed=1)
    check_link_split(d, s, 0.1, 0.2)
    assert not bool((s.train_data.edge_index[0] == s.train_data.edge_index[1]).any())


def test_link_split_keeps_isolated_nodes():
    """A graph with no node attributes and trailing isolated nodes: train_data still has every node."""
    d = synthetic(num_nodes=100, seed=9)
    bare = Data(edge_index=d.edge_index, num_nodes=110)  # nodes 100..109 have no edge at all
    s = link_split(bare, seed=1)
    assert s.train_data.num_nodes == 110
    check_link_split(bare, s)


def test_link_split_determinism():
    d = synthetic(seed=3)
    a, b, c = link_split(d, seed=42), link_split(d, seed=42), link_split(d, seed=21)
    for key in ("val_pos", "val_neg", "test_pos", "test_neg"):
        assert torch.equal(getattr(a, key), getattr(b, key)), key
        assert not torch.equal(getattr(a, key), getattr(c, key)), key
    assert torch.equal(a.train_data.edge_index, b.train_data.edge_index)
    assert pairs(a.train_pos) != pairs(c.train_pos)


@pytest.mark.parametrize("ratios", [(-0.1, 0.05), (0.05, 1.0), (0.5, 0.5)])
def test_link_split_bad_ratios(ratios):
    with pytest.raises(ValueError, match="ratios"):
        link_split(synthetic(num_nodes=50), val_ratio=ratios[0], test_ratio=ratios[1])


def test_link_split_uses_official_ogb_split(data_root):
    require_dataset(data_root, "ogb/ogbl_ddi")
    d = load("ogbl-ddi")
    s = link_split(d, seed=42)
    assert s.official and s.seed is None
    for key in ("val_pos", "val_neg", "test_pos", "test_neg"):
        assert torch.equal(getattr(s, key), d.split_edge[key]), key
    assert s.train_data.num_nodes == 4267
    assert s.train_data.edge_index.size(1) == 2 * 1067911
    assert s.train_pos.size(1) == 1067911
    assert torch.equal(torch.sort(s.train_pos[0] * 4267 + s.train_pos[1]).values,
                       torch.sort(d.split_edge["train_pos"].min(0).values * 4267
                                  + d.split_edge["train_pos"].max(0).values).values)


def test_link_split_official_flag():
    """A graph carrying an official split uses it as it is; ``official=False`` makes a fresh seeded split."""
    d = synthetic(num_nodes=200, seed=2)
    e = undirected(d.edge_index)
    edges = torch.tensor(sorted(e)).t()
    d.split_edge = {"train_pos": edges[:, 20:], "val_pos": edges[:, :10], "test_pos": edges[:, 10:20],
                    "val_neg": torch.tensor([[0], [1]]), "test_neg": torch.tensor([[2], [3]])}
    s = link_split(d, seed=42)
    assert s.official and torch.equal(s.test_pos, edges[:, 10:20]) and torch.equal(s.val_neg, d.split_edge["val_neg"])
    assert undirected(s.train_pos) == undirected(edges[:, 20:])
    assert "split_edge" not in s.train_data
    fresh = link_split(d, seed=42, official=False)
    assert not fresh.official
    check_link_split(d, fresh)
    # without test negatives the split is not complete, so a fresh one is made
    del d.split_edge["test_neg"]
    assert not link_split(d, seed=42).official


# ---------------------------------------------------------------------------------------------------------
# in/out forget sets


def check_forget_against_oracle(data: Data, split, fraction: float):
    near = two_hop_oracle(data.num_nodes, split.train_pos, split.test_pos.reshape(-1))
    mask = enclosing_nodes(split.train_data.edge_index, data.num_nodes, split.test_pos.reshape(-1))
    assert set(mask.nonzero().squeeze(1).tolist()) == near
    train = undirected(split.train_pos)
    inside = {(u, v) for u, v in train if u in near and v in near}
    outside = train - inside
    assert inside and outside, "the graph must have both kinds of candidates for this test to mean anything"
    num = round(fraction * len(train))
    f_in, f_out = forget_edges(split, fraction, "in", seed=0), forget_edges(split, fraction, "out", seed=0)
    assert f_in.shape == f_out.shape == (2, num)
    assert bool((f_in[0] <= f_in[1]).all()) and bool((f_out[0] <= f_out[1]).all())
    assert len(pairs(f_in)) == num and len(pairs(f_out)) == num
    assert pairs(f_in) <= inside, "an 'in' edge has an endpoint beyond 2 hops of the test edges"
    assert pairs(f_out) <= outside, "an 'out' edge lies inside the 2-hop test subgraph"
    # taking every candidate gives exactly the oracle's sets
    everything_in = forget_edges(split, len(inside) / len(train), "in")
    everything_out = forget_edges(split, len(outside) / len(train), "out")
    assert pairs(everything_in) == inside and pairs(everything_out) == outside


def test_forget_edges_synthetic_against_networkx(sparse_graph):
    check_forget_against_oracle(sparse_graph, link_split(sparse_graph, seed=42), 0.05)


def test_forget_edges_cora_against_networkx(cora):
    check_forget_against_oracle(cora, link_split(cora, seed=42), 0.025)


def test_enclosing_nodes_ignores_edge_direction(sparse_graph):
    """One direction per edge must give the same neighbourhood as both directions."""
    s = link_split(sparse_graph, seed=42)
    seeds = s.test_pos.reshape(-1)
    both = enclosing_nodes(s.train_data.edge_index, sparse_graph.num_nodes, seeds)
    one = enclosing_nodes(s.train_pos, sparse_graph.num_nodes, seeds)
    flipped = enclosing_nodes(s.train_pos.flip(0), sparse_graph.num_nodes, seeds)
    assert torch.equal(both, one) and torch.equal(both, flipped)
    near1 = two_hop_oracle(sparse_graph.num_nodes, s.train_pos, seeds, hops=1)
    one_hop = enclosing_nodes(s.train_pos, sparse_graph.num_nodes, seeds, num_hops=1)
    assert set(one_hop.nonzero().squeeze(1).tolist()) == near1


def test_forget_edges_determinism_and_sizes(sparse_graph):
    s = link_split(sparse_graph, seed=42)
    n_train = s.train_pos.size(1)
    for fraction in (0.005, 0.01, 0.025, 0.05):
        assert forget_edges(s, fraction, "out", seed=1).size(1) == max(1, round(fraction * n_train))
    a, b = forget_edges(s, 0.05, "in", seed=1), forget_edges(s, 0.05, "in", seed=1)
    c = forget_edges(s, 0.05, "in", seed=2)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_forget_edges_errors():
    dense = synthetic(seed=0)  # degree 8: every training edge lies within 2 hops of some test edge
    s = link_split(dense, seed=42)
    with pytest.raises(ValueError, match="'out'"):
        forget_edges(s, 0.05, "out")
    with pytest.raises(ValueError, match="only"):
        forget_edges(s, 0.99, "in", num_hops=0)
    with pytest.raises(ValueError, match="setting"):
        forget_edges(s, 0.05, "inside")
    for fraction in (0.0, 1.0, -0.1):
        with pytest.raises(ValueError, match="fraction"):
            forget_edges(s, fraction, "in")


# ---------------------------------------------------------------------------------------------------------
# node splits


def test_node_split_public_masks(cora):
    s = node_split(cora)
    assert s.official
    assert torch.equal(s.train_idx, torch.arange(140))
    assert torch.equal(s.val_idx, torch.arange(140, 640))
    assert torch.equal(s.test_idx, cora.test_mask.nonzero().squeeze(1)) and s.test_idx.numel() == 1000
    random = node_split(cora, official=False)
    assert not random.official and random.train_idx.numel() == int(0.8 * 2708)


def check_random_node_split(s, n):
    assert not s.official
    assert (s.train_idx.numel(), s.val_idx.numel()) == (int(0.8 * n), int(0.1 * n))
    joined = torch.cat([s.train_idx, s.val_idx, s.test_idx])
    assert torch.equal(torch.sort(joined).values, torch.arange(n))  # disjoint and covering
    for idx in (s.train_idx, s.val_idx, s.test_idx):
        assert torch.equal(idx, torch.sort(idx).values)


def test_node_split_random():
    d = synthetic(num_nodes=1003, seed=1)
    a, b, c = node_split(d, seed=42), node_split(d, seed=42), node_split(d, seed=21)
    check_random_node_split(a, 1003)
    assert torch.equal(a.train_idx, b.train_idx) and torch.equal(a.test_idx, b.test_idx)
    assert not torch.equal(a.train_idx, c.train_idx)
    with pytest.raises(ValueError, match="ratios"):
        node_split(d, train_ratio=0.95, val_ratio=0.1)


def test_forget_nodes():
    s = node_split(synthetic(num_nodes=500, seed=1), seed=0)
    f = forget_nodes(s, fraction=0.1, seed=3)
    assert f.numel() == round(0.1 * s.train_idx.numel()) == 40
    assert f.unique().numel() == f.numel() and bool(torch.isin(f, s.train_idx).all())
    assert torch.equal(f, forget_nodes(s, fraction=0.1, seed=3))
    assert not torch.equal(f, forget_nodes(s, fraction=0.1, seed=4))
    g = forget_nodes(s, num=7, seed=0)
    assert g.numel() == 7 and bool(torch.isin(g, s.train_idx).all())
    assert torch.equal(torch.sort(forget_nodes(s, fraction=1.0)).values, s.train_idx)
    for kwargs in ({}, {"fraction": 0.1, "num": 3}, {"num": 0}, {"num": 401}, {"fraction": 0.0},
                   {"fraction": -0.5}, {"fraction": 1.5}):
        with pytest.raises(ValueError, match="forget_nodes"):
            forget_nodes(s, **kwargs)


def test_forget_nodes_cora_from_public_train(cora):
    f = forget_nodes(node_split(cora), num=20, seed=0)
    assert bool((f < 140).all()) and f.unique().numel() == 20


# ---------------------------------------------------------------------------------------------------------
# user-item splits and negatives


def toy_bipartite(num_users=40, num_items=60, seed=0) -> Data:
    """A user-item ``Data`` laid out like the loaders': items after users, all interactions both ways."""
    g = torch.Generator().manual_seed(seed)
    u = torch.randint(num_users, (900,), generator=g)
    i = num_users + torch.randint(num_items, (900,), generator=g)
    keys = torch.unique(u * (num_users + num_items) + i)
    inter = torch.stack([keys // (num_users + num_items), keys % (num_users + num_items)])
    d = Data(edge_index=torch.cat([inter, inter.flip(0)], 1), num_nodes=num_users + num_items)
    d.num_users, d.num_items = num_users, num_items
    d.node_type = torch.cat([torch.zeros(num_users, dtype=torch.long), torch.ones(num_items, dtype=torch.long)])
    return d


def check_random_rec_split(d: Data, s, test_ratio=0.2):
    nu = d.num_users
    all_pairs = pairs(d.edge_index[:, d.edge_index[0] < nu])
    train, test = pairs(s.train_pos), pairs(s.test_pos)
    assert not s.official
    assert len(train) == s.train_pos.size(1) and len(test) == s.test_pos.size(1)
    assert not (train & test) and train | test == all_pairs
    for p in (s.train_pos, s.test_pos):
        assert bool((p[0] < nu).all() and (p[1] >= nu).all())
    per_user = torch.bincount(d.edge_index[0][d.edge_index[0] < nu], minlength=nu)
    per_user_test = torch.bincount(s.test_pos[0], minlength=nu)
    assert torch.equal(per_user_test, (per_user * test_ratio).floor().long())
    assert pairs(s.train_data.edge_index) == train | {(v, u) for u, v in train}
    assert s.train_data.num_nodes == d.num_nodes and torch.equal(s.train_data.node_type, d.node_type)


def test_user_item_split_random_toy():
    d = toy_bipartite()
    a = user_item_split(d, seed=1)
    check_random_rec_split(d, a)
    check_random_rec_split(d, user_item_split(d, test_ratio=0.5, seed=1), 0.5)
    assert torch.equal(a.test_pos, user_item_split(d, seed=1).test_pos)
    assert not torch.equal(a.test_pos, user_item_split(d, seed=2).test_pos)
    with pytest.raises(ValueError, match="num_users"):
        user_item_split(synthetic(num_nodes=20))


@pytest.fixture(scope="module")
def movielens(data_root):
    require_dataset(data_root, "rec/ml-100k")
    return load("movielens-100k")


def test_user_item_split_official_movielens(movielens):
    s = user_item_split(movielens)
    assert s.official and (s.num_users, s.num_items) == (943, 1682)
    assert torch.equal(s.train_pos, movielens.split_edge["train_pos"])
    assert torch.equal(s.test_pos, movielens.split_edge["test_pos"])
    # message passing sees training interactions only (both directions), never a test one
    assert s.train_data.edge_index.size(1) == 2 * 80000
    assert not (pairs(s.train_data.edge_index) & pairs(s.test_pos))
    assert "rating" not in s.train_data  # per-edge attributes of the full graph are not carried over


def test_user_item_split_random_movielens(movielens):
    s = user_item_split(movielens, official=False, seed=42)
    check_random_rec_split(movielens, s)
    assert 19000 < s.test_pos.size(1) <= 20000


def split_before_validation(d: Data, test_ratio: float = 0.2, seed: int = 42, official: bool = True):
    """``(train, test)`` as ``user_item_split`` made them before validation interactions existed (a copy of
    that code, the oracle of the ``val_ratio=0`` identity)."""
    nu = int(d.num_users)
    s = d.get("split_edge")
    if official and isinstance(s, dict) and s.get("test_pos") is not None and s["test_pos"].numel():
        return s["train_pos"], s["test_pos"]
    from graphunlearn.graph import undirected_unique

    p = undirected_unique(d.edge_index[:, d.edge_index[0] < nu], d.num_nodes)[0]
    r = torch.rand(p.size(1), generator=torch.Generator().manual_seed(seed))
    order = torch.argsort(p[0] * 2.0 + r)
    counts = torch.bincount(p[0], minlength=nu)
    start = torch.cumsum(counts, 0) - counts
    rank = torch.empty_like(order)
    rank[order] = torch.arange(order.numel()) - start[p[0][order]]
    is_test = rank < (counts[p[0]] * test_ratio).floor().long()
    return p[:, ~is_test], p[:, is_test]


def check_same_as_before(d: Data, **kw):
    train, test = split_before_validation(d, **kw)
    for s in (user_item_split(d, **kw), user_item_split(d, val_ratio=0.0, **kw), user_item_split(d, val_ratio=0, **kw)):
        assert torch.equal(s.train_pos, train) and torch.equal(s.test_pos, test)
        assert s.val_pos.shape == (2, 0) and s.val_pos.dtype == torch.long
        assert torch.equal(s.train_data.edge_index, torch.cat([train, train.flip(0)], 1))


@pytest.mark.parametrize("seed", [0, 1, 7, 42, 2**40])
def test_user_item_split_without_validation_is_the_split_it_always_was(seed):
    d = toy_bipartite(seed=seed % 5)
    check_same_as_before(d, seed=seed)
    check_same_as_before(d, seed=seed, test_ratio=0.5)


@pytest.mark.parametrize("name,subdir", [("movielens-100k", "rec/ml-100k"), ("gowalla", "rec/gowalla"),
                                         ("yelp2018", "rec/yelp2018")])
def test_user_item_split_without_validation_keeps_the_real_splits(data_root, name, subdir):
    require_dataset(data_root, subdir)
    d = load(name)
    check_same_as_before(d, seed=42)  # the official train/test
    if name == "movielens-100k":
        for seed in (42, 7):
            check_same_as_before(d, seed=seed, official=False)


def test_user_item_split_carves_validation_from_each_users_training_interactions():
    # users 0..3 with 1, 2, 5 and 10 interactions; no test set, so training counts are known
    counts = [1, 2, 5, 10]
    users = torch.cat([torch.full((c,), u) for u, c in enumerate(counts)])
    items = 4 + torch.cat([torch.arange(c) for c in counts])
    d = Data(edge_index=torch.cat([torch.stack([users, items]), torch.stack([items, users])], 1), num_nodes=14)
    d.num_users, d.num_items = 4, 10
    for ratio, expected in ((0.5, [0, 1, 2, 5]), (0.9, [0, 1, 4, 9]), (0.2, [0, 0, 1, 2])):
        s = user_item_split(d, test_ratio=0.0, val_ratio=ratio, seed=3)
        assert torch.bincount(s.val_pos[0], minlength=4).tolist() == expected  # floor(ratio t), at most t - 1
        assert torch.bincount(s.train_pos[0], minlength=4).tolist() == [c - e for c, e in zip(counts, expected)]
        assert pairs(s.train_pos) | pairs(s.val_pos) == pairs(torch.stack([users, items]))
        assert not pairs(s.train_pos) & pairs(s.val_pos)
        assert pairs(s.train_data.edge_index) == pairs(s.train_pos) | pairs(s.train_pos.flip(0))  # val not in it


def test_user_item_split_refuses_a_val_ratio_that_holds_out_nothing():
    """Every user with fewer than 1 / val_ratio training interactions keeps them all: asking for validation and
    getting none would leave calibration and early stopping without it, silently."""
    counts = [3, 8]
    users = torch.cat([torch.full((c,), u) for u, c in enumerate(counts)])
    items = 2 + torch.cat([torch.arange(c) for c in counts])
    d = Data(edge_index=torch.cat([torch.stack([users, items]), torch.stack([items, users])], 1), num_nodes=10)
    d.num_users, d.num_items = 2, 8
    with pytest.raises(ValueError, match=r"val_ratio=0.1 holds out no validation interaction.*"
                                         r"is 8; use val_ratio >= 0.125"):
        user_item_split(d, test_ratio=0.0, val_ratio=0.1, seed=0)
    assert user_item_split(d, test_ratio=0.0, val_ratio=0.125, seed=0).val_pos.size(1) == 1
    for most in (3, 41):  # 1 / 3 rounds down to 0.3333, and float32 loses 41 * (1 / 41): the advice is checked
        one = Data(edge_index=torch.stack([torch.zeros(most, dtype=torch.long), 1 + torch.arange(most)]),
                   num_nodes=1 + most)
        one.edge_index = torch.cat([one.edge_index, one.edge_index.flip(0)], 1)
        one.num_users, one.num_items = 1, most
        with pytest.raises(ValueError, match=f"is {most}; use val_ratio >= ") as info:
            user_item_split(one, test_ratio=0.0, val_ratio=0.01, seed=0)
        advice = float(str(info.value).rsplit(">= ", 1)[1])
        assert user_item_split(one, test_ratio=0.0, val_ratio=advice, seed=0).val_pos.size(1) == 1


@pytest.mark.parametrize("seed", [0, 5])
def test_user_item_split_validation_never_touches_the_test_set(seed):
    d = toy_bipartite(seed=seed)
    before = user_item_split(d, seed=seed)
    s = user_item_split(d, seed=seed, val_ratio=0.25)
    assert torch.equal(s.test_pos, before.test_pos)
    train, val, test = pairs(s.train_pos), pairs(s.val_pos), pairs(s.test_pos)
    assert train | val == pairs(before.train_pos) and not train & val and not val & test
    assert s.val_pos.size(1) > 0 and bool((s.val_pos[0] < d.num_users).all() & (s.val_pos[1] >= d.num_users).all())
    t = torch.bincount(before.train_pos[0], minlength=d.num_users)
    want = torch.minimum((t * 0.25).floor().long(), (t - 1).clamp(min=0))
    assert torch.equal(torch.bincount(s.val_pos[0], minlength=d.num_users), want)
    assert pairs(s.train_data.edge_index) == train | {(v, u) for u, v in train}
    again = user_item_split(d, seed=seed, val_ratio=0.25)
    assert torch.equal(again.val_pos, s.val_pos) and torch.equal(again.train_pos, s.train_pos)
    assert not torch.equal(user_item_split(d, seed=seed + 1, val_ratio=0.25).val_pos, s.val_pos)
    assert "val=" in repr(s)


def test_user_item_split_validation_of_an_official_split(movielens):
    s = user_item_split(movielens, seed=7, val_ratio=0.1)
    assert s.official and torch.equal(s.test_pos, movielens.split_edge["test_pos"])
    official = pairs(movielens.split_edge["train_pos"])
    assert pairs(s.train_pos) | pairs(s.val_pos) == official and not pairs(s.train_pos) & pairs(s.val_pos)
    assert 7000 < s.val_pos.size(1) < 8000  # floor(0.1 t) of each of 943 users' ~85 training interactions
    assert not torch.equal(user_item_split(movielens, seed=8, val_ratio=0.1).val_pos, s.val_pos)


def test_sample_negatives_bipartite():
    d = toy_bipartite()
    nu, ni = d.num_users, d.num_items
    inter = d.edge_index[:, d.edge_index[0] < nu]
    neg = sample_negatives(d.num_nodes, 500, inter, torch.Generator().manual_seed(0), bipartite=(nu, ni))
    assert neg.shape == (2, 500)
    assert bool((neg[0] < nu).all() and (neg[1] >= nu).all() and (neg[1] < nu + ni).all())
    assert len(pairs(neg)) == 500 and not (pairs(neg) & pairs(d.edge_index))
    # every user-item non-interaction, and no more
    free = nu * ni - inter.size(1)
    everything = sample_negatives(d.num_nodes, free, inter, torch.Generator().manual_seed(1), bipartite=(nu, ni))
    assert len(pairs(everything)) == free
    with pytest.raises(ValueError, match="only"):
        sample_negatives(d.num_nodes, free + 1, inter, torch.Generator().manual_seed(1), bipartite=(nu, ni))
    with pytest.raises(ValueError, match="exceed"):
        sample_negatives(10, 1, inter[:, :0], torch.Generator(), bipartite=(6, 6))


def test_sample_negatives_seeded():
    d = synthetic(num_nodes=200, seed=0)
    a = sample_negatives(200, 300, d.edge_index, torch.Generator().manual_seed(5))
    b = sample_negatives(200, 300, d.edge_index, torch.Generator().manual_seed(5))
    c = sample_negatives(200, 300, d.edge_index, torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(2, 9), edges=st.lists(st.tuples(st.integers(0, 8), st.integers(0, 8)), max_size=30),
       seed=st.integers(0, 2**31 - 1), data=st.data())
def test_sample_negatives_property(n, edges, seed, data):
    """Any small graph (self loops and repeats included): up to every non-edge can be drawn, none more."""
    exclude = torch.tensor([(u % n, v % n) for u, v in edges], dtype=torch.long).reshape(-1, 2).t()
    known = {(min(u, v), max(u, v)) for u, v in exclude.t().tolist() if u != v}
    free = n * (n - 1) // 2 - len(known)
    num = data.draw(st.integers(0, free))
    neg = sample_negatives(n, num, exclude, torch.Generator().manual_seed(seed))
    assert neg.shape == (2, num)
    got = undirected(neg)
    assert len(got) == num and not (got & known) and all(u != v for u, v in got)
    with pytest.raises(ValueError, match="only"):
        sample_negatives(n, free + 1, exclude, torch.Generator().manual_seed(seed))


def test_synthetic_user_item_layout_and_determinism():
    from graphunlearn.datasets import synthetic_user_item

    a, b = synthetic_user_item(seed=3), synthetic_user_item(seed=3)
    assert torch.equal(a.edge_index, b.edge_index)
    nu, ni = a.num_users, a.num_items
    pairs = a.split_edge["train_pos"]
    assert pairs.size(1) == nu * 15 and bool((pairs[0] < nu).all()) and bool((pairs[1] >= nu).all())
    assert torch.unique(pairs[0] * (nu + ni) + pairs[1]).numel() == pairs.size(1)  # no repeats
    assert torch.equal(a.item_x.sum(1), torch.ones(ni)) and len(a.item_group_names) == a.item_x.size(1)
    with pytest.raises(ValueError, match="num_groups"):
        synthetic_user_item(num_items=3, num_groups=4)


@pytest.mark.parametrize("kind", ["interaction", "user", "item_group"])
def test_forget_recommendation(kind):
    from graphunlearn.datasets import forget_recommendation, load, user_item_split

    split = user_item_split(load("synthetic-rec"), seed=0)
    f = forget_recommendation(split, kind, 0.05, seed=1)
    assert torch.equal(f, forget_recommendation(split, kind, 0.05, seed=1))
    train = split.train_pos
    if kind == "user":
        assert f.dim() == 1 and f.numel() == round(0.05 * torch.unique(train[0]).numel())
        assert bool((f < split.num_users).all())
        return
    keys = set((train[0] * 10**6 + train[1]).tolist())
    assert set((f[0] * 10**6 + f[1]).tolist()) <= keys  # training interactions only
    if kind == "interaction":
        assert f.size(1) == round(0.05 * train.size(1))
    else:  # every interaction of the chosen items, and just enough items to reach the fraction
        items = torch.unique(f[1])
        assert f.size(1) == int(torch.isin(train[1], items).sum())
        assert f.size(1) >= 0.05 * train.size(1)
        most = int(torch.bincount(train[1]).max())
        assert f.size(1) < 0.05 * train.size(1) + most  # the last item drawn crossed the fraction


def test_forget_recommendation_errors():
    from graphunlearn.datasets import forget_recommendation, item_group_interactions, load, user_item_split

    split = user_item_split(load("synthetic-rec"), seed=0)
    with pytest.raises(ValueError, match="kind must be one of"):
        forget_recommendation(split, "genre", 0.05)
    with pytest.raises(ValueError, match="fraction must be a finite number in"):
        forget_recommendation(split, "user", 1.5)
    with pytest.raises(ValueError, match="are not item nodes"):
        item_group_interactions(split, [0, 1])


# ---------------------------------------------------------------------------------------------------------
# arguments are checked up front, with one error naming the function, the argument and the value


def test_split_functions_refuse_bad_arguments():
    from graphunlearn.datasets import forget_recommendation, item_group_interactions, synthetic_user_item

    d = synthetic(num_nodes=60)
    ls, ns = link_split(d, seed=0), node_split(d, seed=0)
    rs = user_item_split(synthetic_user_item(num_users=20, num_items=15, num_groups=3, interactions_per_user=4))
    cases = [
        (lambda: link_split(None), TypeError, "link_split: data must be a torch_geometric.data.Data, got NoneType"),
        (lambda: link_split(d, seed=1.5), TypeError, "link_split: seed must be an int, got float"),
        (lambda: link_split(d, val_ratio="0.1"), TypeError, "link_split: val_ratio must be a number"),
        (lambda: link_split(d, val_ratio=float("nan")), ValueError, "ratios must be in"),
        (lambda: forget_edges(ns, 0.1), TypeError, "forget_edges: split must be a LinkSplit"),
        (lambda: forget_edges(ls, -0.1), ValueError, r"forget_edges: fraction must be .*in \(0, 1\), got -0.1"),
        (lambda: forget_edges(ls, "a lot"), TypeError, "forget_edges: fraction must be a number, got str"),
        (lambda: forget_edges(ls, 0.1, seed=True), TypeError, "forget_edges: seed must be an int, got bool"),
        (lambda: forget_edges(ls, 0.1, num_hops=-1), ValueError, "forget_edges: num_hops must be >= 0"),
        (lambda: node_split(d, seed="42"), TypeError, "node_split: seed must be an int, got str"),
        (lambda: forget_nodes(ns, fraction=-0.5), ValueError, r"forget_nodes: fraction must be .*in \(0, 1\]"),
        (lambda: forget_nodes(ns, fraction=float("nan")), ValueError, r"forget_nodes: fraction must be .*in"),
        (lambda: forget_nodes(ns, num=2.0), TypeError, "forget_nodes: num must be an int, got float"),
        (lambda: forget_nodes(ns, num=0), ValueError, "forget_nodes: num must be >= 1"),
        (lambda: forget_nodes(ls, num=1), TypeError, "forget_nodes: split must be a NodeSplit"),
        (lambda: user_item_split(d, test_ratio=1.0), ValueError, r"user_item_split: test_ratio must be .*in \[0, 1\)"),
        (lambda: user_item_split(d, val_ratio=1.0), ValueError, r"user_item_split: val_ratio must be .*in \[0, 1\)"),
        (lambda: user_item_split(d, val_ratio=-0.1), ValueError, r"user_item_split: val_ratio must be .*in \[0, 1\)"),
        (lambda: user_item_split(d, val_ratio="0.1"), TypeError, "user_item_split: val_ratio must be a"),
        (lambda: forget_recommendation(rs, "user", 0.0), ValueError, "forget_recommendation: fraction must be .*in"),
        (lambda: forget_recommendation(rs, "user", 0.1, seed=[1]), TypeError, "forget_recommendation: seed must"),
        (lambda: item_group_interactions(rs, [1.5]), TypeError, "item_group_interactions: items must be integer"),
        (lambda: item_group_interactions(rs, [True]), TypeError, "item_group_interactions: items must be integer"),
        (lambda: item_group_interactions(rs, object()), TypeError, "item_group_interactions: items must be item"),
    ]
    for call, error, message in cases:
        with pytest.raises(error, match=message):
            call()


def test_link_split_refuses_a_graph_too_small_for_its_ratios():
    from torch_geometric.utils import to_undirected

    ring = torch.tensor([list(range(12)), [*range(1, 12), 0]])
    data = Data(x=torch.randn(30, 4), edge_index=to_undirected(ring))
    with pytest.raises(ValueError, match=r"12 undirected edges give 0 validation, 0 test and 12 training edges"):
        link_split(data, seed=0)
    split = link_split(data, val_ratio=0.2, test_ratio=0.2, seed=0)
    assert split.val_pos.size(1) == 2 and split.test_pos.size(1) == 2
