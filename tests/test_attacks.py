"""Edge-reconstruction attack, the "did anything change" check and hard forget sets, on small graphs."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch_geometric.data import Data
from torchmetrics.functional.classification import binary_auroc

import graphunlearn as gu
from graphunlearn import models, train
from graphunlearn.datasets.splits import LinkSplit, hard_forget_edges
from graphunlearn.evaluate.attacks import edge_reconstruction_auroc, link_confidence, prediction_change
from graphunlearn.graph import to_bidirected
from graphunlearn.tasks import encode
from graphunlearn.unlearning import unlearn


@pytest.fixture(scope="module")
def link_setup():
    data = gu.datasets.synthetic(num_nodes=300, num_classes=10, num_features=16, avg_degree=8, homophily=0.95, seed=1)
    split = gu.datasets.link_split(data, seed=42)
    torch.manual_seed(0)
    model = models.GCN(16, hidden_channels=32, out_channels=16)
    train.link_prediction(model, gu.GraphStore(split.train_data), split, epochs=60, eval_every=10, progress=False)
    store = gu.GraphStore(split.train_data)
    req = store.delete_edges(gu.datasets.forget_edges(split, 0.05, "in", seed=3))
    return split, model, store, req


def test_reconstruction_sees_trained_deleted_edges(link_setup):
    _, model, store, req = link_setup
    for similarity in ("cosine", "dot"):
        auc = edge_reconstruction_auroc(model, store, req, similarity=similarity)
        assert auc > 0.75, f"{similarity}: the original model's deleted edges look like non-edges ({auc:.3f})"
    assert edge_reconstruction_auroc(model, store, req, seed=5) == edge_reconstruction_auroc(model, store, [req],
                                                                                             seed=5)


def test_reconstruction_scores_the_exact_pairs():
    """A path 0-1-2-3-4 with node features as embeddings; delete (1, 2): the only never-existing pairs between
    the 5 nodes are the 6 non-adjacent ones (none is an edge, live or deleted), so asking for all 6 gives
    exactly those, and the AUROC is torchmetrics' on the hand-made cosine scores."""
    x = torch.tensor([[1.0, 0.0], [0.9, 0.3], [0.5, 0.5], [0.0, 1.0], [-1.0, 0.2]])
    edges = torch.tensor([[0, 1, 2, 3], [1, 2, 3, 4]])
    store = gu.GraphStore(Data(x=x, edge_index=to_bidirected(edges), num_nodes=5))
    req = store.delete_edges(torch.tensor([[1], [2]]))

    class Features(torch.nn.Module):  # the embedding is the raw feature row
        def forward(self, x, edge_index):
            return x

    got = edge_reconstruction_auroc(Features(), store, req, num_negatives=6)
    never = torch.tensor([[0, 0, 0, 1, 1, 2], [2, 3, 4, 3, 4, 4]])
    pos = F.cosine_similarity(x[1:2], x[2:3], dim=-1)
    neg = F.cosine_similarity(x[never[0]], x[never[1]], dim=-1)
    want = binary_auroc(torch.cat([pos, neg]), torch.tensor([1] * 1 + [0] * 6)).item()
    assert abs(got - want) < 1e-6, (got, want)
    with pytest.raises(ValueError, match="num_negatives=7 .* only 6 non-edges"):
        edge_reconstruction_auroc(Features(), store, req, num_negatives=7)
    with pytest.raises(ValueError, match="similarity must be one of"):
        edge_reconstruction_auroc(Features(), store, req, similarity="l2")


def test_reconstruction_refuses_nothing_to_rebuild():
    x = torch.eye(3)
    store = gu.GraphStore(Data(x=x, edge_index=to_bidirected(torch.tensor([[0, 1], [1, 2]])), num_nodes=3))
    req = store.delete_nodes([2])  # its edge (1, 2) has no live endpoint pair left
    with pytest.raises(ValueError, match="no edge between live nodes"):
        edge_reconstruction_auroc(torch.nn.Identity(), store, req)
    store = gu.GraphStore(Data(x=x[:2], edge_index=to_bidirected(torch.tensor([[0], [1]])), num_nodes=2))
    req = store.delete_edges(torch.tensor([[0], [1]]))
    with pytest.raises(ValueError, match="only 0 non-edges"):
        edge_reconstruction_auroc(torch.nn.Identity(), store, req)


def test_prediction_change_catches_a_method_that_does_nothing(link_setup):
    split, model, store, req = link_setup
    nothing = unlearn(model, store, req, "unlink", split=split, certify=False).model
    change = prediction_change(model, nothing, store, split)
    assert change["weight_l2"] == 0 and change["flip_rate"] == 0 and change["num_units"] == split.val_pos.size(1)
    gold = unlearn(model, store, req, "retrain", split=split, certify=False, seed=7, epochs=20).model
    pairs = torch.cat([split.val_pos, split.val_neg], 1)  # the validation positives alone rarely flip
    change = prediction_change(model, gold, store, split, units=pairs)
    assert change["weight_l2"] > 0.1 and change["flip_rate"] > 0 and change["num_units"] == pairs.size(1)
    # the flips are the sign changes of the pair logits, counted by hand
    with torch.no_grad():
        view = store.live()
        a = gu.tasks.LINK.decode(model, encode(model.eval(), view), pairs) > 0
        b = gu.tasks.LINK.decode(gold, encode(gold.eval(), view), pairs) > 0
    assert change["flip_rate"] == pytest.approx((a != b).double().mean().item())
    assert prediction_change(model, nothing, store, split, units=pairs)["flip_rate"] == 0


def test_prediction_change_node_task():
    data = gu.datasets.synthetic(num_nodes=120, num_classes=3, num_features=8, avg_degree=4, seed=2)
    split = gu.datasets.node_split(data, seed=1)
    store = gu.GraphStore(data)
    torch.manual_seed(0)
    a, b = models.GCN(8, hidden_channels=8, out_channels=3), models.GCN(8, hidden_channels=8, out_channels=3)
    same = prediction_change(a, a, store, split)
    assert same == {"weight_l2": 0.0, "flip_rate": 0.0, "num_units": split.val_idx.numel()}
    with torch.no_grad():
        want = (encode(a.eval(), store.live())[split.val_idx].argmax(-1)
                != encode(b.eval(), store.live())[split.val_idx].argmax(-1)).double().mean().item()
    assert prediction_change(a, b, store, split)["flip_rate"] == pytest.approx(want) and want > 0


def _hand_split(edges: torch.Tensor, num_nodes: int) -> LinkSplit:
    empty = torch.empty(2, 0, dtype=torch.long)
    return LinkSplit(Data(x=torch.zeros(num_nodes, 1), edge_index=to_bidirected(edges), num_nodes=num_nodes),
                     empty, empty, empty, empty, seed=None)


# a star (centre 0, leaves 1..6) and a path 7-8-9-10-11: 6 + 4 = 10 training edges
STAR_PATH = torch.tensor([[0, 0, 0, 0, 0, 0, 7, 8, 9, 10], [1, 2, 3, 4, 5, 6, 8, 9, 10, 11]])


def test_high_degree_takes_the_hubs_edges():
    split = _hand_split(STAR_PATH, 12)
    star = {(0, v) for v in range(1, 7)}
    got = hard_forget_edges(split, 0.6, "high_degree")  # 6 edges: exactly the star
    assert {tuple(e) for e in got.t().tolist()} == star
    # 0.8: the star, then the path's degree-2 nodes (8, 9, 10, tied, in seeded order) complete 8 edges
    for seed in range(5):
        got = hard_forget_edges(split, 0.8, "high_degree", seed=seed)
        pairs = {tuple(e) for e in got.t().tolist()}
        assert got.size(1) == 8 and star <= pairs and len(pairs) == 8
        assert torch.equal(got, hard_forget_edges(split, 0.8, "high_degree", seed=seed))
    # 0.3: 3 of the centre's 6 edges, a seeded choice
    picks = {tuple(map(tuple, hard_forget_edges(split, 0.3, "high_degree", seed=s).t().tolist())) for s in range(8)}
    assert all(len(p) == 3 and set(p) <= star for p in picks) and len(picks) > 1


def test_hard_forget_edges_respects_the_fraction(link_setup):
    split = link_setup[0]
    total = split.train_pos.size(1)
    for fraction in (0.01, 0.025, 0.1):
        got = hard_forget_edges(split, fraction, "high_degree", seed=1)
        assert got.size(1) == max(1, round(fraction * total)) == gu.datasets.forget_edges(split, fraction).size(1)
        assert torch.unique(got, dim=1).size(1) == got.size(1) and (got[0] <= got[1]).all()


def test_confident_takes_the_highest_scored_edges(link_setup):
    split, model, store, _ = link_setup
    fresh = gu.GraphStore(split.train_data)
    scores = link_confidence(model, fresh)
    got = hard_forget_edges(split, 0.05, "confident", scores=scores)
    train_pos = split.train_pos
    all_scores = scores(train_pos)
    chosen = torch.isin(train_pos[0] * 1000 + train_pos[1], got[0] * 1000 + got[1])
    assert chosen.sum() == got.size(1) and all_scores[chosen].min() >= all_scores[~chosen].max()
    # ties: a constant scorer picks a seeded subset
    flat = lambda pairs: torch.ones(pairs.size(1))  # noqa: E731
    assert torch.equal(hard_forget_edges(split, 0.05, "confident", scores=flat, seed=3),
                       hard_forget_edges(split, 0.05, "confident", scores=flat, seed=3))
    assert not torch.equal(hard_forget_edges(split, 0.05, "confident", scores=flat, seed=3),
                           hard_forget_edges(split, 0.05, "confident", scores=flat, seed=4))


def test_hard_forget_edges_refuses_bad_requests():
    split = _hand_split(STAR_PATH, 12)
    for fraction in (0, 1, 1.5, -0.1):
        with pytest.raises(ValueError, match="fraction"):
            hard_forget_edges(split, fraction, "high_degree")
    with pytest.raises(ValueError, match="kind must be one of .* got 'random'"):
        hard_forget_edges(split, 0.1, "random")
    with pytest.raises(ValueError, match="needs scores="):
        hard_forget_edges(split, 0.1, "confident")
    with pytest.raises(ValueError, match="scores is used by kind='confident' only"):
        hard_forget_edges(split, 0.1, "high_degree", scores=lambda p: torch.ones(p.size(1)))
    with pytest.raises(ValueError, match="must return 10 floating-point scores"):
        hard_forget_edges(split, 0.1, "confident", scores=lambda p: torch.ones(3))
    with pytest.raises(ValueError, match="non-finite"):
        hard_forget_edges(split, 0.1, "confident", scores=lambda p: torch.full((p.size(1),), float("nan")))
    with pytest.raises(TypeError, match="split must be"):
        hard_forget_edges(object(), 0.1, "high_degree")
