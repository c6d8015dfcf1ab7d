"""Recommendation on sampled computation graphs: LightGCN and MF train and unlearn (reverse_bpr) on the sampled
computation graph of each step's users and items, exactly with all neighbours, never reading a deleted
interaction."""

from __future__ import annotations

import pytest
import torch

import graphunlearn as gu
from graphunlearn.tasks import local
from graphunlearn.tasks.local import computation_graph, embedding_graph
from tests.conftest import assert_close

REC = gu.tasks.REC


@pytest.fixture(scope="module")
def small():
    data = gu.datasets.load("synthetic-rec", num_users=60, num_items=40, interactions_per_user=8, seed=0)
    return gu.datasets.user_item_split(data, seed=0)


@pytest.fixture(scope="module")
def medium():
    data = gu.datasets.load("synthetic-rec", num_users=200, num_items=150, interactions_per_user=10, seed=0)
    return gu.datasets.user_item_split(data, seed=0)


def _store_with_deletions(split) -> gu.GraphStore:
    store = gu.GraphStore(split.train_data)
    store.delete_edges(split.train_pos[:, :30], layout="edge_index")
    store.delete_nodes(torch.tensor([3, split.num_users + 7]))  # a user and an item leave
    return store


def _recall(model, split, store, req) -> dict:
    return REC.evaluate(model, store, split, [req])


@pytest.mark.parametrize("layers", [1, 2, 3])
def test_all_neighbours_equal_the_full_live_graph(small, layers):
    """LightGCN with fanout -1 for as many hops as it has layers gives the seeds exactly their full-graph
    embeddings (the store's live degrees normalise the subgraph: no extra hop), deleted seeds included; MF reads
    its rows whatever the graph."""
    split = small
    store = _store_with_deletions(split)
    nu = split.num_users
    torch.manual_seed(0)
    model = gu.models.LightGCN(nu, split.num_items, embedding_dim=8, num_layers=layers).double().eval()
    seeds = torch.tensor([0, 3, 5, 17, nu + 1, nu + 7, nu + 39])  # 3 and nu + 7 are deleted
    graph = embedding_graph(store, computation_graph(store, seeds, [-1] * layers))
    assert torch.equal(graph.x, graph.nodes)
    with torch.no_grad():
        full = REC.encode(model, store)[seeds]
        sampled = graph.encode(model)[:seeds.numel()]
        mf = gu.models.MF(nu, split.num_items, embedding_dim=8).eval()
        mf_full = REC.encode(mf, store)[seeds]
        mf_sampled = embedding_graph(store, computation_graph(store, seeds, [2])).encode(mf)[:seeds.numel()]
    assert_close(sampled, full, atol=1e-12, rtol=1e-12, what=f"LightGCN, {layers} layers")
    assert torch.equal(mf_sampled, mf_full)


def test_sampled_estimates_are_unbiased(small):
    """With fewer neighbours than a node has, each sampled message weighs d_i / |S_i|: the mean of many sampled
    one-layer outputs approaches the full-graph output."""
    split = small
    store = gu.GraphStore(split.train_data)
    torch.manual_seed(0)
    model = gu.models.LightGCN(split.num_users, split.num_items, embedding_dim=4, num_layers=1).double().eval()
    seeds = torch.arange(0, split.num_users + split.num_items, 7)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        full = REC.encode(model, store)[seeds]
        runs = torch.stack([embedding_graph(store, computation_graph(store, seeds, [2], g)).encode(model)
                            [:seeds.numel()] for _ in range(400)])
    error = (runs.mean(0) - full).abs().max()
    spread = runs.std(0).max() / 20  # the standard error of the mean of 400 draws
    assert error < 5 * spread, (error, spread)
    assert (runs.std(0) > 0).any(), "the draws did not vary: the test would prove nothing"


@pytest.mark.parametrize("backbone", ["lightgcn", "mf"])
def test_a_sampled_step_with_all_neighbours_is_the_full_step(small, backbone):
    """One training step's BPR + L2 loss and its gradient: sampled with all neighbours equal the full graph's."""
    split = small
    store = _store_with_deletions(split)
    torch.manual_seed(0)
    model = REC.build_model(backbone, store, split).double()
    batch = REC.sample_batch(store, split, torch.Generator().manual_seed(1), 64)
    recipe = dict(REC.recipe)
    losses, grads = [], []
    for fanout in (None, [-1, -1, -1]):
        model.zero_grad()
        loss = REC.loss(model, store, split, batch, torch.Generator().manual_seed(2),
                        {**recipe, "num_neighbors": fanout})
        loss.backward()
        losses.append(loss.detach())
        grads.append(torch.cat([p.grad.reshape(-1) for p in model.parameters()]))
    assert_close(losses[1], losses[0], atol=1e-6, rtol=1e-6, what="loss")  # the BPR kernel sums in float32
    assert_close(grads[1], grads[0], atol=1e-7, rtol=1e-5, what="gradient")


def test_sample_batch_draws_live_interactions(small):
    split = small
    store = _store_with_deletions(split)
    batch = REC.sample_batch(store, split, torch.Generator().manual_seed(0), 500)
    assert batch.shape == (2, 500)
    live = set(map(tuple, store.edge_index[:, store.edge_mask].t().tolist()))
    pairs = torch.stack([batch[0], batch[1] + split.num_users])
    assert all(tuple(p) in live for p in pairs.t().tolist()), "a batch holds a deleted interaction"


def test_sampled_training_learns_and_is_recorded(medium):
    split = medium
    store = gu.GraphStore(split.train_data)
    probe = gu.GraphStore(split.train_data)
    req = probe.delete_edges(split.train_pos[:, :1], layout="edge_index")  # evaluate asks for a request
    torch.manual_seed(0)
    untrained = gu.models.LightGCN(split.num_users, split.num_items, embedding_dim=16)
    chance = _recall(untrained, split, probe, req)["recall@20"]
    torch.manual_seed(0)
    model = gu.models.LightGCN(split.num_users, split.num_items, embedding_dim=16)
    result = gu.train.fit(model, store, split, task="rec", epochs=30, batch_size=256, num_neighbors=[5, 5],
                          steps_per_epoch=4, progress=False)
    recall = _recall(model, split, probe, req)["recall@20"]
    assert recall > chance + 0.3, (recall, chance)
    assert result.history[-1]["loss"] < 0.6 * result.history[0]["loss"]
    assert result.card.recipe["num_neighbors"] == [5, 5] and result.card.recipe["steps_per_epoch"] == 4
    assert result.best_val is None  # no validation interactions


def test_pyg_lightgcn_is_refused_on_sampled_graphs(small):
    from torch_geometric.nn.models import LightGCN

    split = small
    store = gu.GraphStore(split.train_data)
    model = LightGCN(split.num_users + split.num_items, embedding_dim=8, num_layers=2)
    with pytest.raises(TypeError, match="get_embedding.*takes no node ids.*cannot run on a sampled"):
        gu.train.fit(model, store, split, task="rec", epochs=1, batch_size=64, num_neighbors=[3, 3],
                     progress=False)
    gu.train.fit(model, store, split, task="rec", epochs=1, batch_size=64, progress=False)  # the whole graph
    req = store.delete_edges(split.train_pos[:, :5], layout="edge_index")
    with pytest.raises(TypeError, match="get_embedding"):
        gu.unlearn(model, store, req, "reverse_bpr", split=split, certify=False, epochs=1, num_neighbors=[3, 3])


def _graphs(monkeypatch) -> list:
    seen = []
    real = local.computation_graph

    def spy(*args, **kwargs):
        graph = real(*args, **kwargs)
        seen.append(graph)
        return graph

    monkeypatch.setattr(local, "computation_graph", spy)
    return seen


def _check_no_deleted(store, graphs, deleted_pairs):
    assert graphs, "no sampled computation graph was built"
    gone = set(map(tuple, deleted_pairs.t().tolist())) | set(map(tuple, deleted_pairs.flip(0).t().tolist()))
    for graph in graphs:
        assert bool(store.edge_mask[graph.edge_id].all()), "a deleted interaction reached a computation graph"
        ends = graph.nodes[graph.edge_index]
        assert bool(store.node_mask[ends].all()), "a deleted user or item passes messages"
        u, v = store.edge_index[:, graph.edge_id]  # each sampled edge is the live edge it names
        assert bool((((u == ends[0]) & (v == ends[1])) | ((u == ends[1]) & (v == ends[0]))).all())
        assert not gone & set(map(tuple, ends.t().tolist())), "a deleted pair is joined in a computation graph"


def test_sampled_steps_never_touch_deleted_interactions(medium, monkeypatch):
    split = medium
    store = gu.GraphStore(split.train_data)
    forget = split.train_pos[:, ::7]
    req = store.delete_edges(forget, layout="edge_index")
    graphs = _graphs(monkeypatch)
    torch.manual_seed(0)
    model = gu.models.LightGCN(split.num_users, split.num_items, embedding_dim=8)
    gu.train.fit(model, store, split, task="rec", epochs=2, batch_size=128, num_neighbors=[-1, 4],
                 steps_per_epoch=3, progress=False)
    _check_no_deleted(store, graphs, forget)
    graphs.clear()
    out = gu.unlearn(model, store, req, "reverse_bpr", split=split, certify=False, epochs=2, batch_size=64)
    assert out.info["computation"] == "sampled [-1, 4]"  # the card's fanouts
    _check_no_deleted(store, graphs, forget)
    # every forget pair's user and item were seeds of each unlearning step
    for graph in graphs:
        assert bool(torch.isin(forget.reshape(-1), graph.nodes[:graph.num_seeds]).all())


def test_local_reverse_bpr_forgets_and_retrain_follows_the_card(medium, monkeypatch):
    split = medium
    nu = split.num_users
    store = gu.GraphStore(split.train_data)
    torch.manual_seed(0)
    model = gu.models.LightGCN(nu, split.num_items, embedding_dim=16)
    gu.train.fit(model, store, split, task="rec", epochs=30, batch_size=256, num_neighbors=[5, 5],
                 steps_per_epoch=4, progress=False)
    group = store.edge_index[1] - nu < 20  # a licence over items 0..19
    req = store.delete_edges(group.nonzero().squeeze(1))
    before = _recall(model, split, store, req)
    out = gu.unlearn(model, store, req, "reverse_bpr", split=split, certify=False, epochs=30)
    assert out.info["computation"] == "sampled [5, 5]"
    after = _recall(out.model, split, store, req)
    assert after["forget_recall@20"] < 0.6 * before["forget_recall@20"], (before, after)
    assert after["recall@20"] > before["recall@20"] - 0.05, (before, after)
    # with all neighbours the local path is the full-graph path: the same draws, the same weights
    full = gu.unlearn(model, store, req, "reverse_bpr", split=split, certify=False, epochs=5, num_neighbors="full")
    exact = gu.unlearn(model, store, req, "reverse_bpr", split=split, certify=False, epochs=5,
                       num_neighbors=[-1, -1, -1])
    assert full.info["computation"] == "full graph" and exact.info["computation"] == "sampled [-1, -1, -1]"
    assert_close(exact.model.embedding.weight, full.model.embedding.weight, atol=1e-5, rtol=1e-4,
                 what="reverse_bpr, all neighbours vs full graph")
    # gold trains the original's way: on sampled computation graphs, with its fanouts and step budget
    graphs = _graphs(monkeypatch)
    gold = gu.unlearn(model, store, req, "retrain", split=split, certify=False, epochs=2)
    recipe = gu.card_of(gold.model).recipe
    assert recipe["num_neighbors"] == [5, 5] and recipe["steps_per_epoch"] == 4
    assert len(graphs) == 2 * 4, "retrain did not train on sampled computation graphs"
    _check_no_deleted(store, graphs, store.edge_index[:, req.edge_ids])


def _loop_auc(model, store, split, num_items_sampled: int) -> float:
    """The sampled AUC of the validation interactions by its definition, one interaction and one item at a
    time, on the whole live graph, against the first ``num_items_sampled`` items of a seed-0 permutation, less
    the items out of the catalogue (a deleted item node, or an item the store held interactions with and keeps
    none of)."""
    nu, ni = split.num_users, split.num_items
    sample = set((torch.randperm(ni, generator=torch.Generator().manual_seed(0))[:num_items_sampled] + nu).tolist())
    val = REC._live_val(split, store)
    kept = {tuple(e) for e in store.edge_index[:, store.edge_mask].t().tolist()}
    held = set(store.edge_index[1].tolist())
    live_items = {b for _, b in kept}
    out = {j for j in range(nu, nu + ni) if not bool(store.node_mask[j]) or (j in held and j not in live_items)}
    sample -= out
    with torch.no_grad():
        z = REC.encode(model.eval(), store)
    total = []
    for u, i in val.t().tolist():
        s = float(z[u] @ z[i])
        others = [j for j in sorted(sample) if j != i and (u, j) not in kept]
        if others:
            total.append(sum(1.0 if float(z[u] @ z[j]) < s else 0.5 if float(z[u] @ z[j]) == s else 0.0
                             for j in others) / len(others))
    return sum(total) / len(total)


def test_the_sampled_validation_score_is_the_sampled_auc(small):
    """With every neighbour and a catalogue smaller than the item sample, sampled_validate is the AUC of each
    live validation interaction against every item its user does not keep (ties half), averaged: as the
    definition computes it one pair at a time on the whole graph; deleted users and items, and items out of the
    catalogue, do not count."""
    data = gu.datasets.load("synthetic-rec", num_users=60, num_items=40, interactions_per_user=8, seed=0)
    split = gu.datasets.user_item_split(data, seed=0, val_ratio=0.2)
    store = gu.GraphStore(split.train_data)
    store.delete_nodes(torch.tensor([3, split.num_users + 7]))
    revoked = split.train_pos[:, split.train_pos[1] == split.num_users + 11]  # a licence revoked for item 11
    store.delete_edges(revoked[:, revoked[0] != 3], layout="edge_index")  # user 3's went with the user
    assert gu.tasks.rec.removed_items(store, split.num_users, split.num_items).nonzero().squeeze(1).tolist() == [7, 11]
    torch.manual_seed(0)
    model = gu.models.LightGCN(split.num_users, split.num_items, embedding_dim=8, num_layers=2).double()
    gu.train.fit(model, gu.GraphStore(split.train_data), split, epochs=30, seed=0, progress=False)
    assert REC.sampled_val_items >= split.num_items  # the sample is the whole catalogue here
    got = REC.sampled_validate(model, store, split, [-1, -1])
    assert got == pytest.approx(_loop_auc(model, store, split, split.num_items), abs=1e-6)  # float32 shares
    assert 0.5 < got < 1.0  # a trained model ranks held-out items above the others
    assert REC.calibration_validate(model, store, split, [-1, -1]) == got
    assert REC.calibration_validate(model, store, split) == REC.validate(model, store, split)
    with pytest.MonkeyPatch.context() as mp:  # a sample smaller than the catalogue: the same fixed draw
        mp.setattr(type(REC), "sampled_val_items", 15)
        part = REC.sampled_validate(model, store, split, [-1, -1])
    assert part == pytest.approx(_loop_auc(model, store, split, 15), abs=1e-6) and part != got


def test_reverse_bpr_calibrates_on_sampled_graphs_without_a_whole_graph_pass(monkeypatch):
    """Calibrated reverse_bpr on sampled computation graphs checks with the sampled AUC: it runs (no refusal),
    its decision records the checks, and the whole-graph validation (every item ranked) is never called."""
    data = gu.datasets.load("synthetic-rec", num_users=200, num_items=150, interactions_per_user=10, seed=0)
    split = gu.datasets.user_item_split(data, seed=0, val_ratio=0.2)
    torch.manual_seed(0)
    model = gu.models.LightGCN(split.num_users, split.num_items, embedding_dim=16, num_layers=2)
    gu.train.fit(model, gu.GraphStore(split.train_data), split, epochs=20, seed=0, progress=False)
    store = gu.GraphStore(split.train_data)
    req = store.delete_edges(split.train_pos[:, :60], layout="edge_index")

    def whole_graph(*args, **kwargs):
        raise AssertionError("a whole-graph validation ran during sampled unlearning")

    monkeypatch.setattr(type(REC), "validate", whole_graph)
    res = gu.unlearn(model, store, req, "reverse_bpr", split=split, seed=0, num_neighbors=[5, 5], calibrate=True,
                     epochs=6, certify=False)
    cal = res.info["calibration"]
    assert "reason" not in cal or cal["reason"] is None, cal
    assert cal["checks"] and all(0.0 <= c["val"] <= 1.0 for c in cal["checks"]), cal
    assert cal["computation"] == "sampled [5, 5]" and cal["reference_val"] == cal["checks"][0]["val"]
    assert cal["val_metric"] == "sampled AUC"
