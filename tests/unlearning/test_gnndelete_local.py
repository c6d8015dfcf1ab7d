"""gnndelete on sampled computation graphs (issue 12, requirement 3): its cost follows the deletion.

What a user relies on: with ``num_neighbors`` every step runs the wrapped model and the frozen reference on
one sampled computation graph (never the whole graph), the operators act on the right nodes there (with all
neighbours the sampled layer outputs are the full-graph ones), it still forgets like the full-graph path, the
task's sampled validation and calibration read the wrapped model by node id, and node deletion, which needs the
whole graph, is refused before any work.
"""

from __future__ import annotations

import copy
import functools

import pytest
import torch

import graphunlearn as gu
from graphunlearn.models import GNNDelete
from graphunlearn.models.backbones import GNN
from graphunlearn.tasks.local import computation_graph
from graphunlearn.unlearning.algorithms import gnndelete as method
from graphunlearn.unlearning.base import Calibration, Context
from tests.conftest import assert_close

LINK = gu.tasks.LINK


@functools.cache
def _link():
    data = gu.datasets.synthetic(num_nodes=1500, num_classes=10, num_features=16, avg_degree=8, homophily=0.95,
                                 seed=1)
    split = gu.datasets.link_split(data, seed=42)
    torch.manual_seed(0)
    model = gu.models.GCN(16, hidden_channels=32, out_channels=16)
    gu.train.link_prediction(model, gu.GraphStore(split.train_data), split, epochs=60, eval_every=10,
                             progress=False)
    return split, {k: v.clone() for k, v in model.state_dict().items()}, gu.card_of(model)


def _fresh(num: int | None = None):
    """The trained model, a new store and a request deleting 2% of the training edges ("in"), or ``num``."""
    split, state, card = _link()
    model = gu.models.GCN(16, hidden_channels=32, out_channels=16)
    model.load_state_dict(state)
    gu.models.set_card(model, card)
    store = gu.GraphStore(split.train_data)
    df = gu.datasets.forget_edges(split, 0.02, "in", seed=3)
    req = store.delete_edges(df[:, :num] if num else df, layout="edge_index")
    return model.eval(), store, split, req


def _rows(monkeypatch) -> list[int]:
    """The node count of every forward pass of the project's GNNs from now on."""
    seen, real = [], GNN.forward

    def forward(self, x, edge_index):
        seen.append(x.size(0))
        return real(self, x, edge_index)

    monkeypatch.setattr(GNN, "forward", forward)
    return seen


def test_local_gnndelete_forgets_on_sampled_graphs():
    model, store, split, req = _fresh()
    before = gu.evaluate.evaluate(model, store, split, [req], resamples=50)
    res = gu.unlearn(model, store, req, "gnndelete", split=split, certify=False, num_neighbors=[5, 5])
    assert res.info["computation"] == "sampled [5, 5]"
    assert isinstance(res.model, GNNDelete)
    after = gu.evaluate.evaluate(res.model, store, split, [req], resamples=50)
    # Df-AUROC: retained edges (positives) against the deleted ones; forgetting raises it
    assert after["df_auroc"] > before["df_auroc"] + 0.02, (before["df_auroc"], after["df_auroc"])
    assert abs(after["dt_auroc"] - before["dt_auroc"]) < 0.03, (before["dt_auroc"], after["dt_auroc"])
    assert res.info["val_score"] > 0.8
    full = gu.unlearn(model, store, req, "gnndelete", split=split, certify=False, num_neighbors="full")
    assert full.info["computation"] == "full graph"


def test_steps_never_run_the_whole_graph(monkeypatch):
    """Two passes per step (reference and wrapped model) on a sampled graph, plus one probe; the full-graph
    path, counted the same way, runs the whole graph (so the check can fail)."""
    monkeypatch.setattr(method, "LOCAL_CAP", 64)
    model, store, _, req = _fresh(num=5)
    rows = _rows(monkeypatch)
    res = gu.unlearn(model, store, req, "gnndelete", task="link", certify=False, num_neighbors=[2, 2], epochs=3)
    layers = 2
    assert len(rows) == 1 + 2 * 3 * layers, rows
    assert max(rows) < store.num_nodes / 2, (max(rows), store.num_nodes)
    assert res.info["computation"] == "sampled [2, 2]" and res.info["val_score"] is None
    rows.clear()
    gu.unlearn(model, store, req, "gnndelete", task="link", certify=False, num_neighbors="full", epochs=3)
    assert store.num_nodes in rows


def test_with_all_neighbours_the_sampled_layer_outputs_are_the_full_graph_ones(monkeypatch):
    """GCN with one hop more than its layers: every step's reference and wrapped outputs of the step's seeds
    (deleted endpoints, random pairs, sampled nodes) equal the full-graph ones of the same weights, so the
    operators act on the right nodes of the subgraph (``init="reference"`` makes any other node show)."""
    model, store, split, req = _fresh(num=20)
    graphs, real_localize = {}, gu.tasks.local.localize

    def localize(*args, **kwargs):
        graph, units = real_localize(*args, **kwargs)
        graphs[id(graph.nodes)] = graph
        return graph, units

    checked = []
    real_outputs = GNNDelete.layer_outputs

    def layer_outputs(self, call, *, identity=False, subset=None):
        out = real_outputs(self, call, identity=identity, subset=subset)
        if subset is not None and id(subset) in graphs:
            seeds = graphs[id(subset)].num_seeds
            with torch.no_grad():
                full = real_outputs(self, lambda m: LINK.encode(m, store), identity=identity)
            for k, (h, f) in enumerate(zip(out, full)):
                assert_close(h[:seeds].detach(), f[subset[:seeds]], atol=1e-5, rtol=1e-4,
                             what=f"layer {k}, identity={identity}")
            checked.append(identity)
        return out

    monkeypatch.setattr(gu.tasks.local, "localize", localize)
    monkeypatch.setattr(GNNDelete, "layer_outputs", layer_outputs)
    gu.unlearn(model, store, req, "gnndelete", split=split, certify=False, num_neighbors=[-1, -1, -1], epochs=2,
               init="reference")
    assert checked.count(True) == 1 + 2 * 2 and checked.count(False) == 2 * 2  # the probe, then per step


def _wrapped(store, model, seed=0):
    """``model`` wrapped with operators of random weights on some nodes of each layer."""
    g = torch.Generator().manual_seed(seed)
    affected = [torch.randperm(store.num_nodes, generator=g)[:store.num_nodes // 3] for _ in range(2)]
    out = GNNDelete(copy.deepcopy(model), affected, store.num_nodes, [32, 16])
    with torch.no_grad():
        for op in out.operators:
            op.weight.copy_(torch.randn(op.weight.shape, generator=g))
    return out.eval()


def test_on_nodes_maps_the_operators_by_node_id():
    model, store, _, _ = _fresh(num=5)
    wrapped = _wrapped(store, model)
    with torch.no_grad():
        full = LINK.encode(wrapped, store)
        graph = computation_graph(store, torch.tensor([3, 40, 7, 900]), [-1, -1, -1])
        with wrapped.on_nodes(graph.nodes):
            local = graph.encode(wrapped)[:graph.num_seeds]
        assert_close(local, full[graph.nodes[:graph.num_seeds]], atol=1e-5, rtol=1e-4, what="sampled graph")
        # the whole graph in another order: as many rows as the store, read by id, not by row
        view = store.live()
        perm = torch.randperm(store.num_nodes, generator=torch.Generator().manual_seed(1))
        inv = torch.empty_like(perm)
        inv[perm] = torch.arange(perm.numel())
        ei = inv[view.edge_index.as_subclass(torch.Tensor)]
        with wrapped.on_nodes(perm):
            permuted = wrapped(view.x[perm], ei)
        assert_close(permuted, full[perm], atol=1e-5, rtol=1e-4, what="permuted whole graph")
        with pytest.raises(ValueError, match="on a subgraph of 4 nodes"), wrapped.on_nodes(perm[:4]):
            wrapped(view.x, view.edge_index)


def test_the_tasks_sampled_validation_and_calibration_read_the_operators_by_node_id():
    """A sampled computation graph tells the wrapper its nodes' ids (``ComputationGraph.encode``), so the task's
    own sampled validation and calibration's sampled scores of a wrapped model with random operators equal
    the full-graph ones with all neighbours (GCN: one hop more than its layers), and differ from the base
    model's (the operators count)."""
    model, store, split, req = _fresh(num=20)
    wrapped = _wrapped(store, model)
    every = [-1, -1, -1]
    sampled = LINK.validate(wrapped, store, split, num_neighbors=every)
    assert sampled == pytest.approx(LINK.validate(wrapped, store, split), abs=1e-6)
    assert sampled != pytest.approx(LINK.validate(model, store, split), abs=1e-3)
    options = gu.methods()["gnndelete"].options_type()

    def meter(num_neighbors):
        ctx = Context(wrapped, model, store, (req,), LINK, split, 0, False, options, method="test",
                      num_neighbors=num_neighbors)
        return Calibration(ctx, 0.01)

    m = meter(every).auroc(wrapped)
    assert m == pytest.approx(meter(None).auroc(wrapped), abs=1e-6)
    assert m != pytest.approx(meter(None).auroc(model), abs=1e-3)


def test_calibrated_gnndelete_on_sampled_graphs_records_the_decision_and_returns_the_model_it_names():
    model, store, split, req = _fresh(num=40)
    res = gu.unlearn(model, store, req, "gnndelete", split=split, certify=False, num_neighbors=[5, 5], epochs=3,
                     calibrate=True, calibrate_tolerance=0.05)
    cal = res.info["calibration"]
    assert cal["computation"] == res.info["computation"] == "sampled [5, 5]"
    assert cal["val_metric"] == "sampled AUROC"
    assert cal["forget_units"] == 40 and cal["matched_on"] == "endpoint degree"
    assert cal["start_epoch"] == 3 and cal["checks"][0]["epoch"] == 3  # the last layer's loop is calibrated
    assert cal["selected_epoch"] == res.info["selected_epoch"] and cal["checks"][-1]["epoch"] == res.info["epochs"]
    ctx = Context(res.model, model, store, (req,), LINK, split, 0, False, None, method="test",
                  num_neighbors=[5, 5])
    assert Calibration(ctx, 0.05).auroc(res.model) == pytest.approx(cal["auroc"], abs=1e-6)
    assert res.info["val_score"] == pytest.approx(ctx.validate(res.model), abs=1e-6)


def test_node_deletion_on_sampled_graphs_is_refused_before_any_work(monkeypatch):
    data = gu.datasets.synthetic(num_nodes=150, num_classes=3, num_features=8, avg_degree=5, seed=2)
    split = gu.datasets.node_split(data, seed=0)
    store = gu.GraphStore(data)
    torch.manual_seed(0)
    model = gu.models.GCN(8, hidden_channels=16, out_channels=3)
    gu.train.node_classification(model, store, split, epochs=40, progress=False)
    req = store.delete_nodes(split.train_idx[:4])
    started = []
    monkeypatch.setattr(Context, "generator", lambda self: started.append(1))
    rows = _rows(monkeypatch)
    with pytest.raises(ValueError, match="node deletion runs on the whole graph.*num_neighbors='full'"):
        gu.unlearn(model, store, req, "gnndelete", split=split, certify=False, num_neighbors=[3, 3])
    assert not started and not rows
