"""Node forgetting (issue 16, requirement 3): ``heldout_distill`` and ``gnndelete`` on node classification.

What a user relies on: a deleted node, asked with its record (features and edges put back, as an attacker
holding it asks), is no longer answered as a memorised training node; nothing deleted reaches the model's
outputs on the live graph; the shortcuts taken (the record graph cut to the deleted nodes' neighbourhood, the
operators on a renumbered graph) give the same answers as the long way.
"""

from __future__ import annotations

import functools
from types import SimpleNamespace

import pytest
import torch

import graphunlearn as gu
from graphunlearn.tasks import run_model
from graphunlearn.unlearning.algorithms.heldout_distill import heldout_partners, record_graph
from tests.conftest import assert_close
from tests.train.test_no_host_sync import count_syncs
from tests.unlearning.test_contract import CASES

F_IN = 64


@functools.cache
def memorising_setup():
    """A graph where features and edges say little about the label (validation accuracy about 0.6) and a GCN
    trained without weight decay on 60 training nodes: it answers its training nodes right from memory."""
    data = gu.datasets.synthetic(num_nodes=200, num_classes=4, num_features=F_IN, avg_degree=5, homophily=0.3,
                                 signal=0.3, seed=3)
    split = gu.datasets.node_split(data, seed=0, train_ratio=0.3, val_ratio=0.3, official=False)
    torch.manual_seed(0)
    model = gu.models.GCN(F_IN, hidden_channels=32, out_channels=4)
    gu.train.fit(model, gu.GraphStore(data), split, epochs=100, weight_decay=0.0, seed=0, progress=False)
    return data, split, {k: v.clone() for k, v in model.state_dict().items()}, gu.card_of(model)


def fresh():
    """A new store with 20 training nodes deleted, and the trained model."""
    data, split, state, card = memorising_setup()
    model = gu.models.GCN(F_IN, hidden_channels=32, out_channels=4)
    model.load_state_dict(state)
    gu.models.set_card(model, card)
    store = gu.GraphStore(data)
    req = store.delete_nodes(gu.datasets.forget_nodes(split, num=20, seed=0))
    return model.eval(), store, split, req


def asked_with_records(model, store, split, req) -> dict:
    m = gu.evaluate.evaluate(model, store, split, req)
    return {"acc_deleted": m["acc_deleted"], "test_acc": m["test_acc"]}


def test_the_contract_test_holds_both_methods_on_node_classification():
    assert ("heldout_distill", "node") in CASES and ("gnndelete", "node") in CASES
    assert gu.methods()["gnndelete"].tasks == ("link", "node")
    assert gu.methods()["heldout_distill"].tasks == ("node",)


# heldout_distill's default budget (6 epochs at lr 0.005) is set for Cora's 5x speed target; on this harder toy
# graph its forget loss is still falling after 6 epochs, so the test gives it the budget it needs
@pytest.mark.parametrize("method, options", [("heldout_distill", {"epochs": 30}), ("gnndelete", {})])
def test_deleted_nodes_asked_with_their_records_are_no_longer_answered_from_memory(method, options):
    model, store, split, req = fresh()
    before = asked_with_records(model, store, split, req)
    heldout_acc = gu.tasks.get_task("node").validate(model, store, split)
    # the premise: the original memorised the deleted nodes (right on all of them, far above held-out nodes)
    assert before["acc_deleted"] == 1.0 and heldout_acc < 0.75, (before, heldout_acc)
    # a method that keeps the weights (unlink) leaves them answered from memory: this check can fail
    kept = gu.unlearn(model, store, req, "unlink", split=split, seed=0, certify=False).model
    assert asked_with_records(kept, store, split, req)["acc_deleted"] == 1.0

    res = gu.unlearn(model, store, req, method, split=split, seed=0, certify=False, **options)
    after = asked_with_records(res.model, store, split, req)
    assert after["acc_deleted"] <= before["acc_deleted"] - 0.15, (method, before, after)
    assert after["test_acc"] >= before["test_acc"] - 0.1, (method, before, after)  # retained knowledge kept


@pytest.mark.parametrize("method", ["heldout_distill", "gnndelete"])
def test_node_forgetting_steps_do_not_synchronise(monkeypatch, method):
    """The record graph (cut or whole) and its CSR are built before the loop; steps read nothing back."""
    model, store, split, req = fresh()
    with count_syncs(monkeypatch) as syncs:
        res = gu.unlearn(model, store, req, method, split=split, seed=0, certify=False, epochs=3)
    assert res.info["epochs"] > 0
    assert not syncs, f"{method} (node): host synchronisations inside its steps: {dict(syncs)}"


@pytest.mark.parametrize("method", ["heldout_distill", "gnndelete"])
def test_no_deleted_data_reaches_the_live_outputs(method):
    """The returned model on the store's live view equals the same model on a graph rebuilt without the deleted
    nodes (their features and edges gone, the rest renumbered), and with the deleted records put back the
    deleted nodes' answers differ from the live ones (the check sees the records)."""
    model, store, split, req = fresh()
    out = gu.unlearn(model, store, req, method, split=split, seed=0, certify=False, epochs=3).model
    rebuilt = store.retained()
    assert rebuilt.num_nodes == store.num_nodes - 20
    with torch.no_grad():
        live = gu.tasks.encode(out, store.live())
        on_rebuilt = run_model(out, rebuilt.x, rebuilt.edge_index)
        x_rec, ei_rec = gu.tasks.node.graph_before(store, [req])
        with_records = run_model(out, x_rec, ei_rec)
    assert_close(live[rebuilt.orig_node_id], on_rebuilt, atol=1e-5, rtol=1e-5, what=f"{method}: live vs rebuilt")
    assert not torch.allclose(live[req.node_ids], with_records[req.node_ids], atol=1e-4)


def test_gnndelete_on_nodes_saves_reloads_and_refuses_a_graph_of_another_size(tmp_path):
    model, store, split, req = fresh()
    res = gu.unlearn(model, store, req, "gnndelete", split=split, seed=0, epochs=2)
    wrapped = res.model
    assert wrapped.wrapper_config["live_nodes"] == store.num_live_nodes
    path = tmp_path / "gnndelete-node.pt"
    gu.save_model(path, wrapped)
    again = gu.load_model(path, model=gu.models.GCN(F_IN, hidden_channels=32, out_channels=4))
    rebuilt = store.retained()
    x_rec, ei_rec = gu.tasks.node.graph_before(store, [req])
    with torch.no_grad():
        for graph in ((store.live().x, store.live().edge_index), (rebuilt.x, rebuilt.edge_index), (x_rec, ei_rec)):
            assert_close(run_model(again, *graph), run_model(wrapped, *graph), what="reloaded vs returned")
        with pytest.raises(ValueError, match=rf"node numbering.*{store.num_nodes} nodes.*got one of 7"):
            wrapped(rebuilt.x[:7], torch.zeros(2, 0, dtype=torch.long))


@pytest.mark.parametrize("conv", ["gcn", "sage"])
def test_the_record_graph_cut_to_the_neighbourhood_gives_the_whole_graphs_answers(conv):
    data = gu.datasets.synthetic(num_nodes=400, num_classes=3, num_features=8, avg_degree=3, seed=1)
    split = gu.datasets.node_split(data, seed=0, official=False)
    torch.manual_seed(0)
    model = gu.models.GNN(8, hidden_channels=16, out_channels=3, conv=conv).eval()
    store = gu.GraphStore(data)
    req = store.delete_nodes(split.train_idx[:3])
    ctx = SimpleNamespace(store=store, requests=(req,), task=gu.tasks.get_task("node"), original=model)
    x, ei, at, logits, subset = record_graph(ctx, req.node_ids)
    assert subset is not None and x.size(0) == subset.numel() < store.num_nodes  # it was cut
    x_rec, ei_rec = gu.tasks.node.graph_before(store, [req])
    with torch.no_grad():
        whole = run_model(model, x_rec, ei_rec)[req.node_ids]
        assert_close(run_model(model, x, ei)[at], whole, what=f"{conv}: cut vs whole record graph")
    assert_close(logits, whole)


def test_a_model_tied_to_the_node_count_is_asked_on_the_whole_record_graph():
    data = gu.datasets.synthetic(num_nodes=400, num_classes=3, num_features=8, avg_degree=3, seed=1)
    split = gu.datasets.node_split(data, seed=0, official=False)
    model = gu.models.GNN(None, hidden_channels=16, out_channels=3, num_nodes=400).eval()  # one row per node
    store = gu.GraphStore(data)
    req = store.delete_nodes(split.train_idx[:3])
    ctx = SimpleNamespace(store=store, requests=(req,), task=gu.tasks.get_task("node"), original=model)
    x, ei, at, _, subset = record_graph(ctx, req.node_ids)
    assert subset is None and x.size(0) == store.num_nodes and torch.equal(at, req.node_ids)


def test_partners_are_matched_by_confidence_within_the_class():
    y = torch.tensor([0, 0, 0, 0, 0, 1, 1])
    ctx = SimpleNamespace(store=SimpleNamespace(y=y))
    deleted, deleted_scores = torch.tensor([0, 1, 5]), torch.tensor([-0.1, -2.0, -0.3])
    # held-out nodes 2, 3, 4 of class 0 (log-probabilities of their class -3, -0.5, -1) and 6 of class 1
    heldout, heldout_scores = torch.tensor([2, 3, 4, 6]), torch.tensor([-3.0, -0.5, -1.0, -0.2])
    g = torch.Generator().manual_seed(0)
    got = heldout_partners(ctx, deleted, deleted_scores, heldout, heldout_scores, "rank", g)
    # class 0: the surer deleted node (0) takes the surest partner (3), the less sure (1) the least sure (2)
    assert got.tolist() == [3, 2, 6]
    got = heldout_partners(ctx, deleted, deleted_scores, heldout, heldout_scores, "random", g)
    assert set(got[:2].tolist()) <= {2, 3, 4} and got[2].item() == 6  # drawn within the class


@pytest.mark.parametrize("method", ["heldout_distill", "gnndelete"])
def test_a_request_that_deletes_no_node_is_refused(method):
    model, _, split, _ = fresh()
    store = gu.GraphStore(memorising_setup()[0])
    req = store.delete_edges(torch.arange(4))
    with pytest.raises(gu.RequestRefused, match=rf"{method}: the requests delete no (labelled )?nodes?"):
        gu.unlearn(model, store, req, method, split=split, seed=0, epochs=2)
    assert store.forgotten == {}


def test_heldout_distill_needs_held_out_nodes():
    model, store, split, req = fresh()
    empty = gu.datasets.NodeSplit(split.train_idx, split.val_idx[:0], split.test_idx, official=False)
    with pytest.raises(ValueError, match="no live labelled held-out"):
        gu.unlearn(model, store, req, "heldout_distill", split=empty, seed=0, epochs=2)


def test_feature_erased_nodes_are_asked_with_their_values_back():
    """A ``features`` forget set erases every value of the drawn training nodes (they, their labels and edges
    stay); the retrain gap of the ``deleted`` region asks both models with those values put back, as for
    deleted nodes, and the node-only metrics (accuracy on deleted nodes, MIA) stay absent."""
    from graphunlearn.tasks.base import class_gap
    from graphunlearn.tasks.node import graph_before

    data = gu.datasets.synthetic(num_nodes=200, num_classes=3, num_features=8, avg_degree=5, seed=0)
    split = gu.datasets.node_split(data, seed=0)
    task = gu.tasks.get_task("node")
    store = gu.GraphStore(data)
    torch.manual_seed(0)
    model = gu.models.GCN(8, hidden_channels=16, out_channels=3)
    gu.train.node_classification(model, store, split, epochs=20, progress=False)
    req = task.sample_forget(store, split, 0.2, seed=1, setting="features")
    erased = req.feature_node_ids
    assert req.kind == "node_features" and req.node_ids.numel() == 0 and erased.numel() > 0
    assert bool(store.node_mask[erased].all()) and float(store.live_x()[erased].abs().sum()) == 0.0
    torch.manual_seed(1)
    gold = gu.models.GCN(8, hidden_channels=16, out_channels=3)
    gu.train.node_classification(gold, store, split, epochs=20, progress=False)
    m = gu.evaluate.evaluate(model, store, split, [req], task="node", gold=gold, original=model)
    assert "acc_deleted" not in m and "mia_auroc" not in m
    x, edge_index = graph_before(store, [req])
    assert torch.equal(x[erased], store.x[erased])  # the values are back
    with torch.no_grad():
        want = class_gap(model(x, edge_index)[erased], gold(x, edge_index)[erased])
        live = class_gap(task.logits(model, store)[erased], task.logits(gold, store)[erased])
    assert m["gap_deleted_kl"] == pytest.approx(want["kl"], rel=1e-5, abs=1e-7)
    assert abs(want["kl"] - live["kl"]) > 1e-4  # asked on the live graph it would read otherwise
    with pytest.raises(ValueError, match="unknown forget setting 'edges'"):
        task.sample_forget(gu.GraphStore(data), split, 0.2, setting="edges")


def test_the_class_setting_deletes_one_class_drawn_by_the_seed():
    """The ``class`` forget setting deletes every node of one class (training, validation, test alike, with
    their edges), the class drawn by the seed among the live training nodes' labels; ``fraction`` is not read.
    A store without labels is refused with nothing changed."""
    from graphunlearn.tasks.node import draw_node_class

    data = gu.datasets.synthetic(num_nodes=200, num_classes=4, num_features=8, avg_degree=5, seed=0)
    split = gu.datasets.node_split(data, seed=0)
    task = gu.tasks.get_task("node")
    drawn = {draw_node_class(gu.GraphStore(data), split, seed) for seed in range(12)}
    assert drawn == {0, 1, 2, 3}  # every class can be drawn
    for seed in (0, 5):
        store = gu.GraphStore(data)
        req = task.sample_forget(store, split, 0.9, seed=seed, setting="class")
        c = draw_node_class(gu.GraphStore(data), split, seed)
        assert req.kind == "node_class" and torch.equal(req.node_ids, (data.y == c).nonzero().squeeze(1))
        assert not bool(store.node_mask[data.y == c].any()) and bool(store.node_mask[data.y != c].all())
        again = gu.GraphStore(data)
        assert torch.equal(task.sample_forget(again, split, 0.1, seed=seed, setting="class").node_ids, req.node_ids)
    bare = gu.GraphStore(gu.datasets.synthetic(num_nodes=50, num_classes=3, num_features=4, seed=0))
    bare.y = None
    with pytest.raises(gu.DeletionError, match="no 1-D node labels y"):
        task.sample_forget(bare, split, 0.1, seed=0, setting="class")
    assert bool(bare.node_mask.all()) and bare.forgotten == {}


def test_heldout_distill_forgets_a_deleted_class():
    """After a whole class is deleted no live node of it is left, so its deleted nodes are taught the original's
    answer with the class taken out: asked with their records they stop being answered as that class, as a model
    retrained without the class (which never learns it) answers them, while the test nodes keep their accuracy."""
    model, _, split, _ = fresh()
    data = memorising_setup()[0]
    store = gu.GraphStore(data)
    req = gu.tasks.get_task("node").sample_forget(store, split, 0.1, seed=0, setting="class")
    before = asked_with_records(model, store, split, req)
    out = gu.unlearn(model, store, req, "heldout_distill", split=split, seed=0)
    after = asked_with_records(out.model, store, split, req)
    # here: 0.82 before, 0.18 after (0.20 with partners of other classes); retrained 0.00, finetune 0.80, d2dgn 0.70
    # (50 nodes, 18 of them training)
    assert before["acc_deleted"] > 0.5 and after["acc_deleted"] < 0.35, (before, after)
    assert after["test_acc"] > before["test_acc"] - 0.1, (before, after)


def test_a_deleted_class_is_taken_out_of_every_target():
    """With every node of a class deleted, heldout_distill's targets (``deleted_classes="mask"``, the default)
    give that class no probability: the deleted nodes learn the original's own answer on their records with the
    class taken out, and the live nodes the original's answer without it. Trained long enough, the deleted nodes
    asked with their records and every live node stop being answered as that class, faster than with partners
    of other classes; a deletion that leaves every class some live node masks nothing."""
    from graphunlearn.unlearning.algorithms.heldout_distill import deleted_classes, without_classes

    model, store, split, _ = fresh()
    assert deleted_classes(store, 4) is None  # 20 training nodes deleted: every class still has live nodes
    data = memorising_setup()[0]
    logits = torch.tensor([[2.0, 1.0, -3.0, 0.5]])
    cut = without_classes(logits, torch.tensor([True, False, False, False]))
    assert torch.isfinite(cut).all() and float(torch.softmax(cut / 10, 1)[0, 0]) < 1e-40
    assert torch.equal(cut[:, 1:], logits[:, 1:])
    seen = {}
    for how in ("mask", "partners"):
        store = gu.GraphStore(data)
        req = gu.tasks.get_task("node").sample_forget(store, split, 0.1, seed=0, setting="class")
        c = int(data.y[req.node_ids[0]])
        gone = deleted_classes(store, 4)
        assert gone.tolist() == [k == c for k in range(4)]
        out = gu.unlearn(model, store, req, "heldout_distill", split=split, seed=0, epochs=20, deleted_classes=how)
        x, ei = gu.evaluate.graph_before(store, [req])
        with torch.no_grad():
            p_c = float(torch.softmax(run_model(out.model.eval(), x, ei)[req.node_ids], 1)[:, c].mean())
        live = store.node_mask.nonzero().squeeze(1)
        live_as_c = int((gu.tasks.get_task("node").logits(out.model, store)[live].argmax(1) == c).sum())
        seen[how] = (p_c, live_as_c, asked_with_records(out.model, store, split, req)["acc_deleted"])
    # here: mask p(c) 0.003, partners 0.012; no deleted node nor live node answered as c by either
    assert seen["mask"][0] < 0.005 and seen["mask"][0] < 0.5 * seen["partners"][0], seen
    assert seen["mask"][1:] == (0, 0.0), seen


def test_graph_before_keeps_what_other_requests_erased():
    """A deleted node's record comes back without the values an earlier request (not asked about) erased; the
    asked requests' own erased values come back."""
    from graphunlearn.tasks.node import graph_before

    data = gu.datasets.synthetic(num_nodes=60, num_classes=3, num_features=6, avg_degree=4, seed=0)
    store = gu.GraphStore(data)
    erase = store.delete_node_features([3, 4], columns=[0, 1])
    gone = store.delete_nodes([3])
    x, _ = graph_before(store, [gone])
    assert torch.equal(x[3, 2:], data.x[3, 2:]) and float(x[3, :2].abs().sum()) == 0.0  # erased by `erase`
    assert float(x[4, :2].abs().sum()) == 0.0  # node 4 is live, its erased values stay erased
    x, _ = graph_before(store, [erase, gone])
    assert torch.equal(x[3], data.x[3]) and torch.equal(x[4], data.x[4])


def test_graph_before_rows_are_the_whole_graphs_rows():
    """``graph_before(..., rows=)`` builds only the rows asked for (record_graph's cut, without a copy of the whole
    feature matrix) and gives exactly those rows of the whole graph's: deleted nodes with their values back, the
    asked requests' erased cells back (whole rows and some columns), other requests' erased cells kept erased,
    rows in any order, repeated, and rows no request touched; a node deleted by a request not asked about stays
    deleted even where an asked request erased values of it."""
    from graphunlearn.tasks.node import graph_before

    data = gu.datasets.synthetic(num_nodes=60, num_classes=3, num_features=6, avg_degree=4, seed=0)
    store = gu.GraphStore(data)
    kept = store.delete_node_features([3, 4], columns=[0, 1])
    cols = store.delete_node_features([5, 6], columns=[2, 4])
    whole = store.delete_node_features([7])
    gone = store.delete_nodes([3, 8, 9])
    asked = [cols, whole, gone]
    x_all, ei_all = graph_before(store, asked)
    for rows in (torch.tensor([9, 3, 4, 5, 7, 20, 0]), torch.arange(60), torch.tensor([11])):
        x_rows, ei_rows = graph_before(store, asked, rows=rows)
        assert x_rows.shape == (rows.numel(), 6) and torch.equal(x_rows, x_all[rows]), rows
        assert torch.equal(ei_rows, ei_all)
    assert float(x_all[3, :2].abs().sum()) == 0.0 and torch.equal(x_all[3, 2:], data.x[3, 2:])  # `kept` stays
    assert torch.equal(x_all[[5, 6, 7, 8, 9]], data.x[[5, 6, 7, 8, 9]])
    x_kept = graph_before(store, [kept], rows=torch.tensor([3, 4, 4]))[0]  # repeated ids give repeated rows
    assert torch.equal(x_kept[1], data.x[4]) and torch.equal(x_kept[2], data.x[4])  # `kept`'s cells come back
    assert float(x_kept[0].abs().sum()) == 0.0  # node 3 stays deleted: `gone` is not asked about
    assert torch.equal(graph_before(store, [kept])[0][[3, 4, 4]], x_kept)


def test_a_model_that_returns_a_tuple_gets_a_clear_error():
    """A model whose forward returns a tuple (embeddings and logits, say) is named with what was returned,
    before any method reads it."""

    class Pair(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(F_IN, 4)

        def forward(self, x, edge_index):
            return self.lin(x), x

    data, _, _, _ = memorising_setup()
    with pytest.raises(TypeError, match=r"Pair.forward\(x, edge_index\) returned a tuple"):
        run_model(Pair(), data.x, data.edge_index)


def fresh_erased():
    """A new store with every feature value of 20 training nodes erased (they, their labels and edges stay),
    and the trained model."""
    data, split, state, card = memorising_setup()
    model = gu.models.GCN(F_IN, hidden_channels=32, out_channels=4)
    model.load_state_dict(state)
    gu.models.set_card(model, card)
    store = gu.GraphStore(data)
    req = store.delete_node_features(gu.datasets.forget_nodes(split, num=20, seed=0))
    return model.eval(), store, split, req



@pytest.mark.parametrize("method", ["heldout_distill", "gnndelete"])
def test_a_request_that_only_erases_features_is_refused(method):
    """Both forget deleted nodes; a feature-only request is refused (RequestRefused, which the benchmark records
    as the method's refusal) and nothing changes. For heldout_distill the refusal is measured, not a gap: gold
    still trains on those nodes' labels and answers them with their values back as the original does
    (docs/methods.md), so a held-out target would over-forget them."""
    model, store, split, req = fresh_erased()
    with pytest.raises(gu.RequestRefused, match=rf"{method}: the requests delete no (labelled )?nodes?"):
        gu.unlearn(model, store, req, method, split=split, seed=0, epochs=2)
    assert store.forgotten == {}


def _confidence_with_records(model, store, req) -> float:
    """Mean top-class probability of the deleted nodes, asked with their records put back."""
    x, ei = gu.evaluate.graph_before(store, [req])
    with torch.no_grad():
        return float(torch.softmax(run_model(model.eval(), x, ei)[req.node_ids], 1).max(1).values.mean())


def test_d2dgn_forget_term_reaches_the_deleted_nodes_as_they_are_asked():
    """d2dgn's forget term on node classification asks the deleted nodes with their records put back (their live
    rows have neither features nor edges, so a term there reaches only the biases): with the forget term alone
    and a uniform destroyer, their answers with their records go towards uniform; on the live rows they do not."""
    model, store, split, req = fresh()
    before = _confidence_with_records(model, store, req)
    assert before > 0.9, before  # the premise: the original is sure of its memorised training nodes
    options = dict(alpha=0.0, destroyer="uniform", epochs=30, certify=False, seed=0)  # no split: the last epoch kept
    records = gu.unlearn(model, store, req, "d2dgn", task="node", **options).model
    live = gu.unlearn(model, store, req, "d2dgn", task="node", forget_graph="live", **options).model
    after, after_live = _confidence_with_records(records, store, req), _confidence_with_records(live, store, req)
    # measured: 0.93 before, 0.47 after (4 classes: uniform is 0.25), 0.91 with the term on the live rows
    assert after < 0.6, (before, after)
    assert after_live > 0.85, (before, after_live)
