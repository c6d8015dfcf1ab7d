"""Local computation (graphunlearn.tasks.local): sampled computation graphs hold only live data, are exact with
all neighbours, and drive mini-batch training and local unlearning."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch_geometric.data import Data

import graphunlearn as gu
from graphunlearn.evaluate import evaluate
from graphunlearn.tasks.local import computation_graph, embed, localize, neighbourhood, retain_sampler
from tests.conftest import assert_close


def _graph(seed: int = 0, n: int = 60, m: int = 240) -> Data:
    g = torch.Generator().manual_seed(seed)
    ei = torch.randint(n, (2, m), generator=g)
    ei = ei[:, ei[0] != ei[1]]
    ei = torch.unique(torch.sort(ei, 0).values, dim=1)  # each undirected edge once
    return Data(x=torch.randn(n, 8, generator=g), edge_index=torch.cat([ei, ei.flip(0)], 1), num_nodes=n)


def _store_with_deletions() -> gu.GraphStore:
    store = gu.GraphStore(_graph())
    store.delete_edges(torch.arange(0, 30, 3))
    store.delete_nodes(torch.tensor([5, 17]))
    store.delete_node_features(torch.tensor([3, 8]), columns=torch.tensor([1, 4]))
    return store


def _sage(store, seed=0, in_channels=None):
    torch.manual_seed(seed)
    return gu.models.GNN(in_channels if in_channels is not None else store.num_features, conv="sage").eval()


def test_all_neighbours_equal_the_full_live_graph():
    """With fanout -1 a 2-layer mean-aggregating model gives the seeds exactly what it gives them on the whole
    live graph, deleted seeds included (isolated, features zeroed); GCN, whose normalisation reads the source's
    degree too, needs one hop more than its layers."""
    store = _store_with_deletions()
    model = _sage(store)
    seeds = torch.tensor([0, 5, 9, 17, 33, 59, 2])  # 5 and 17 are deleted
    graph = computation_graph(store, seeds, [-1, -1])
    assert torch.equal(graph.nodes[:seeds.numel()], seeds)
    with torch.no_grad():
        full = gu.tasks.LINK.encode(model, store)[seeds]
        local = graph.encode(model)[:seeds.numel()]
    assert_close(local, full, atol=1e-5, rtol=1e-4, what="local vs full")
    torch.manual_seed(0)
    gcn = gu.models.GCN(store.num_features).eval()
    with torch.no_grad():
        full = gu.tasks.LINK.encode(gcn, store)[seeds]
        exact = computation_graph(store, seeds, [-1, -1, -1]).encode(gcn)[:seeds.numel()]
    assert_close(exact, full, atol=1e-5, rtol=1e-4, what="GCN, three hops")


def test_weighted_stores_are_refused():
    data = _graph()
    half = data.edge_index.size(1) // 2
    data.edge_weight = torch.rand(half).repeat(2)  # one weight per undirected edge, both directions
    store = gu.GraphStore(data)
    assert store.edge_weight is not None
    with pytest.raises(NotImplementedError, match="edge weights"):
        computation_graph(store, torch.tensor([0]), [2])


def test_computation_graphs_hold_only_live_data():
    store = _store_with_deletions()
    live_x = store.live_x()
    g = torch.Generator().manual_seed(1)
    for seeds in (torch.arange(0, 60, 4), torch.tensor([5, 17, 40])):
        graph = computation_graph(store, seeds, [3, 2], generator=g)
        assert bool(store.edge_mask[graph.edge_id].all()), "a deleted edge reached a computation graph"
        touched = graph.nodes[graph.edge_index.reshape(-1)]
        assert bool(store.node_mask[touched].all()), "a deleted node passes messages"
        assert torch.equal(graph.x, live_x[graph.nodes]), "features other than the live ones"
        # each sampled edge is a live edge between the nodes it names (either direction)
        u, v = store.edge_index[:, graph.edge_id]
        a, b = graph.nodes[graph.edge_index]
        assert bool((((u == a) & (v == b)) | ((u == b) & (v == a))).all())


def test_fanouts_bound_the_computation_graph():
    store = gu.GraphStore(_graph(n=400, m=8000))
    graph = computation_graph(store, torch.arange(10), [3, 2], generator=torch.Generator().manual_seed(0))
    assert graph.num_nodes <= 10 + 10 * 3 + 10 * 3 * 2
    assert graph.edge_index.size(1) <= 10 * 3 + 10 * 3 * 2


def test_localize_renumbers_units_and_embed_matches():
    store = _store_with_deletions()
    model = _sage(store)
    pairs = torch.tensor([[0, 9, 33], [9, 59, 0]])
    nodes = torch.tensor([2, 33])
    graph, (lp, ln) = localize(store, [pairs, nodes], [-1, -1])
    assert torch.equal(graph.nodes[lp], pairs) and torch.equal(graph.nodes[ln], nodes)
    with torch.no_grad():
        z = graph.encode(model)
        full = gu.tasks.LINK.encode(model, store)
    assert_close(z[lp[0]], full[pairs[0]], atol=1e-5, rtol=1e-4, what="localized rows")
    assert_close(embed(model, store, pairs[1], [-1, -1], chunk=2), full[pairs[1]], atol=1e-5, rtol=1e-4,
                 what="embed")


def test_featureless_models_read_node_ids():
    data = _graph()
    data.x = None
    store = gu.GraphStore(data)
    torch.manual_seed(0)
    model = gu.models.GNN(None, conv="sage", num_nodes=store.num_nodes).eval()
    seeds = torch.tensor([1, 7, 30])
    graph = computation_graph(store, seeds, [-1, -1])
    assert torch.equal(graph.x, graph.nodes)
    with torch.no_grad():
        assert_close(graph.encode(model)[:3], gu.tasks.LINK.encode(model, store)[seeds], atol=1e-5, rtol=1e-4,
                     what="featureless")


def test_a_model_of_all_nodes_is_refused_on_a_subgraph():
    store = gu.GraphStore(_graph())

    class AllNodes(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.table = torch.nn.Parameter(torch.randn(store.num_nodes, 4))

        def forward(self, x, edge_index):
            return self.table

    graph = computation_graph(store, torch.tensor([0, 1]), [2])
    with pytest.raises(ValueError, match="returned 60 rows for a sampled computation graph"):
        graph.encode(AllNodes())


def test_bad_seeds_are_named():
    store = gu.GraphStore(_graph())
    with pytest.raises(ValueError, match=r"seed ids must lie in \[0, 60\)"):
        computation_graph(store, torch.tensor([0, 60]), [2])
    with pytest.raises(ValueError, match="num_neighbors"):
        computation_graph(store, torch.tensor([0]), [-2])


def test_retain_sampler_draws_live_units_near_the_deletion():
    store = gu.GraphStore(_graph(n=200, m=1500))
    req = store.delete_edges(torch.arange(5))
    u0 = int(store.edge_index[0, 0])  # an endpoint of a deleted edge: one of its neighbours is deleted too
    nbr = store.edge_index[:, 5:][:, (store.edge_index[:, 5:] == u0).any(0)].reshape(-1)
    gone = int(nbr[nbr != u0][0])
    store.delete_nodes(torch.tensor([150, gone]))
    deleted_nodes = torch.tensor([150, gone])
    sample, near = retain_sampler(store, deleted_nodes, req.edge_ids, pairwise=True, cap=64)
    g = torch.Generator().manual_seed(0)
    units = sample(g)
    assert units.shape == (2, 128)
    assert bool(store.node_mask[units].all())
    kept = units[:, :64]
    pair_ids = store.edge_index
    keys = set(map(tuple, pair_ids[:, store.edge_mask].t().tolist()))
    assert all(tuple(p) in keys for p in kept.t().tolist()), "a retained unit that is not a live edge"
    ends = store.edge_index[:, req.edge_ids].reshape(-1)
    nbrs, edges = neighbourhood(store, torch.cat([ends, deleted_nodes]))
    assert torch.equal(near, nbrs) and bool(store.edge_mask[edges].all())
    # against a brute-force reading of the edge list: every edge that existed at the given nodes
    given = torch.zeros(store.num_nodes, dtype=torch.bool)
    given[torch.cat([ends, deleted_nodes])] = True
    u, v = store.edge_index
    other = torch.cat([v[given[u]], u[given[v]]])
    assert torch.equal(nbrs, torch.unique(other[store.node_mask[other]]))
    at = (given[u] | given[v]) & store.edge_mask & store.node_mask[u] & store.node_mask[v]
    assert torch.equal(edges, at.nonzero().squeeze(1))
    assert bool(store.node_mask[near].all())
    # half of the kept pairs come from edges at an endpoint of the deleted elements
    first = kept[:, :32]
    touch = torch.isin(first, torch.cat([ends, deleted_nodes])).any(0)
    assert bool(touch.all())


def _link_setup():
    data = gu.datasets.load("synthetic", num_nodes=400, avg_degree=10, seed=0)
    split = gu.datasets.link_split(data, seed=0)
    return split, gu.GraphStore(split.train_data)


def test_sampled_link_training_learns_and_is_recorded():
    split, store = _link_setup()
    torch.manual_seed(0)
    model = gu.models.GCN(store.num_features)
    with warnings.catch_warnings():
        warnings.simplefilter("error", gu.train.ChanceLevelWarning)
        result = gu.train.link_prediction(model, store, split, epochs=30, batch_size=512, num_neighbors=[5, 5],
                                          steps_per_epoch=2, progress=False)
    assert result.best_val > 0.75
    assert result.card.recipe["num_neighbors"] == [5, 5] and result.card.recipe["steps_per_epoch"] == 2
    # sampled validation reads the same split: close to the full-graph score of the same model
    full = gu.tasks.LINK.validate(model, store, split)
    assert abs(full - result.best_val) < 0.1


def test_sampled_node_training_learns():
    data = gu.datasets.load("synthetic", num_nodes=400, avg_degree=10, seed=0)
    split = gu.datasets.node_split(data, seed=0)
    store = gu.GraphStore(data)
    torch.manual_seed(0)
    model = gu.models.GCN(store.num_features, out_channels=int(data.y.max()) + 1)
    result = gu.train.node_classification(model, store, split, epochs=20, batch_size=64, num_neighbors=[5, 5],
                                          progress=False)
    assert result.best_val > 0.6


def test_sampled_node_validation_keeps_its_subset_when_a_validation_node_is_deleted(monkeypatch):
    """The sampled validation subset is drawn over the split's validation positions before liveness is read:
    deleting a validation node removes that node from the subset and leaves the rest as they were (drawn over
    the live nodes instead, the whole subset would be drawn anew)."""
    data = gu.datasets.load("synthetic", num_nodes=400, avg_degree=10, seed=0)
    split = gu.datasets.node_split(data, seed=0)
    store = gu.GraphStore(data)
    torch.manual_seed(0)
    model = gu.models.GCN(store.num_features, out_channels=int(data.y.max()) + 1)
    task = gu.tasks.NODE
    monkeypatch.setattr(type(task), "sampled_val_units", 8)
    asked = []
    real = gu.tasks.local.embed

    def spy(model, store, nodes, *args, **kwargs):
        asked.append(nodes.clone())
        return real(model, store, nodes, *args, **kwargs)

    monkeypatch.setattr(gu.tasks.local, "embed", spy)
    task.validate(model, store, split, num_neighbors=[5, 5])
    before = asked[-1]
    assert before.numel() == 8 and split.val_idx.numel() > 8
    gone = before[3:4]
    store.delete_nodes(gone)
    task.validate(model, store, split, num_neighbors=[5, 5])
    assert torch.equal(asked[-1], torch.cat([before[:3], before[4:]]))

def test_recipe_errors():
    split, store = _link_setup()
    model = gu.models.GCN(store.num_features)
    with pytest.raises(TypeError, match="num_neighbors must be a list of ints"):
        gu.train.link_prediction(model, store, split, batch_size=8, num_neighbors=5, progress=False)
    with pytest.raises(ValueError, match="give batch_size= too"):
        gu.train.link_prediction(model, store, split, num_neighbors=[5, 5], progress=False)
    with pytest.raises(ValueError, match="steps_per_epoch"):
        gu.train.link_prediction(model, store, split, batch_size=8, steps_per_epoch=0, progress=False)


def test_local_unlearning_follows_the_card_and_can_be_overridden():
    split, store = _link_setup()
    torch.manual_seed(0)
    model = gu.models.GCN(store.num_features)
    gu.train.link_prediction(model, store, split, epochs=20, batch_size=512, num_neighbors=[5, 5], progress=False)
    req = store.delete_edges(torch.arange(20))
    r = gu.unlearn(model, store, req, "d2dgn", split=split, certify=False, epochs=3)
    assert r.info["computation"] == "sampled [5, 5]"
    r = gu.unlearn(model, store, req, "d2dgn", split=split, certify=False, epochs=3, num_neighbors="full")
    assert r.info["computation"] == "full graph"
    calls = []
    real = gu.tasks.local.localize
    try:  # "full" means no sampling at all, though the card's recipe samples
        gu.tasks.local.localize = lambda *a, **k: calls.append(1) or real(*a, **k)
        r = gu.unlearn(model, store, req, "finetune", split=split, certify=False, epochs=2, num_neighbors="full")
    finally:
        gu.tasks.local.localize = real
    assert r.info["computation"] == "full graph" and not calls
    for method in ("finetune", "gradient_ascent"):
        r = gu.unlearn(model, store, req, method, split=split, certify=False, epochs=2, num_neighbors=[3, 3])
        assert r.info["computation"] == "sampled [3, 3]"
    gold = gu.unlearn(model, store, req, "retrain", split=split, certify=False, epochs=2)
    assert gu.card_of(gold.model).recipe["num_neighbors"] == [5, 5]  # gold trains with the same recipe
    with pytest.raises(ValueError, match="retrain trains gold with the original's recipe"):
        gu.unlearn(model, store, req, "retrain", split=split, certify=False, num_neighbors=[3, 3])
    with pytest.raises(ValueError, match="runs on the whole graph"):
        gu.unlearn(model, store, req, "unlink", split=split, certify=False, num_neighbors=[3, 3])
    with pytest.raises(ValueError, match="'full' or None"):
        gu.unlearn(model, store, req, "d2dgn", split=split, certify=False, num_neighbors="sampled")


def test_local_d2dgn_forgets_like_the_full_graph_path():
    """On a small graph the local path (all neighbours) and the full-graph path end at a similar quality."""
    split, store = _link_setup()
    torch.manual_seed(0)
    model = gu.models.GCN(store.num_features)
    gu.train.link_prediction(model, store, split, epochs=60, progress=False)
    req = store.delete_edges(torch.arange(0, 200, 2))
    scores = {}
    for fanout in ("full", [-1, -1]):
        r = gu.unlearn(model, store, req, "d2dgn", split=split, certify=False, num_neighbors=fanout)
        e = evaluate(r.model, store, split, [req], resamples=50)
        scores[str(fanout)] = (e["dt_auroc"], e["df_auroc"])
    (dt_f, df_f), (dt_l, df_l) = scores.values()
    assert abs(dt_f - dt_l) < 0.03 and abs(df_f - df_l) < 0.08, scores


def test_sampled_evaluation_matches_the_full_graph_with_all_neighbours():
    split, store = _link_setup()
    torch.manual_seed(0)
    model = gu.models.GNN(store.num_features, conv="sage")
    gu.train.link_prediction(model, store, split, epochs=15, progress=False)
    gold = gu.models.GNN(store.num_features, conv="sage").eval()
    req = store.delete_edges(torch.arange(0, 100, 2))
    full = evaluate(model, store, split, [req], gold=gold, resamples=200)
    local = evaluate(model, store, split, [req], gold=gold, resamples=200, num_neighbors=[-1, -1])
    assert local["dt_auroc"] == pytest.approx(full["dt_auroc"], abs=1e-6)  # exact representations
    assert local["gap_test_kl"] == pytest.approx(full["gap_test_kl"], rel=1e-4)
    assert local["gap_deleted_kl"] == pytest.approx(full["gap_deleted_kl"], rel=1e-4)
    assert abs(local["df_auroc"] - full["df_auroc"]) < 0.03  # a resampled pool of live edges
    assert "gap_rest_kl" not in local


def test_the_sampling_scratch_is_reused_and_left_clean():
    from graphunlearn.tasks import local

    store = _store_with_deletions()
    g = torch.Generator().manual_seed(0)
    first = computation_graph(store, torch.tensor([0, 9, 33]), [3, 2], generator=g)
    buf = local._SCRATCH[store]
    assert bool((buf == -1).all()), "the scratch must be all -1 between calls"
    again = computation_graph(store, torch.tensor([0, 9, 33]), [3, 2], generator=torch.Generator().manual_seed(0))
    assert local._SCRATCH[store] is buf and bool((buf == -1).all())
    fresh = computation_graph(store, torch.tensor([0, 9, 33]), [3, 2], generator=torch.Generator().manual_seed(0))
    assert torch.equal(again.nodes, fresh.nodes) and torch.equal(again.edge_index, fresh.edge_index)
    assert first.num_seeds == 3
    with pytest.raises(ValueError, match="scratch must be an int64 tensor"):
        gu.sampling.sample_neighbors(store.live_csr(), torch.tensor([0]), [2], scratch=torch.zeros(3))
