"""Request semantics on tiny hand-built graphs whose answers are written down by hand.

Graph A (undirected) and graph B (directed) are drawn in ``helpers.py`` with their edge ids.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from torch_geometric.data import Data

import graphunlearn as gu
from tests.store.helpers import (
    A_EDGES,
    A_TRAIN,
    A_Y,
    B_EDGES,
    expected_live_directed,
    features,
    graph_a,
    graph_b,
    live_pairs_from_csr,
    pairs_of,
    store_a,
    store_b,
)


def both_ways(pairs):
    return sorted({p for u, v in pairs for p in ((u, v), (v, u))})


def ids(t):
    return t.tolist()


# ----------------------------------------------------------------------------------------------- construction
def test_undirected_graph_keeps_each_edge_once():
    s = store_a()
    assert s.undirected and s.num_edges == 5 and s.num_nodes == 5
    assert pairs_of(s.edge_index) == A_EDGES
    assert s.edge_index.tolist() == [[0, 0, 1, 2, 3], [1, 2, 2, 3, 4]]  # ids e0..e4 in canonical order
    # per-edge attributes follow the canonical numbering even though the input columns were scrambled
    assert s.edge_type.tolist() == [0, 1, 0, 1, 2]
    assert s.edge_weight.tolist() == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert s.num_live_edges == 5 and s.num_live_nodes == 5
    assert pairs_of(s.live_edge_index()) == both_ways(A_EDGES)


def test_directed_graph_keeps_directions_separate():
    s = store_b()
    assert not s.undirected and s.num_edges == 6
    assert pairs_of(s.edge_index) == sorted(B_EDGES)
    assert s.edge_index.t().tolist() == [list(p) for p in B_EDGES]
    # auto-detection: B is not symmetric, A is
    assert not gu.GraphStore(graph_b()).undirected
    assert gu.GraphStore(graph_a()).undirected


def test_undirected_edge_with_different_attributes_per_direction_is_refused():
    data = graph_a()
    data.edge_type = data.edge_type.clone()
    data.edge_type[0] += 7
    with pytest.raises(ValueError, match="different edge_type"):
        gu.GraphStore(data)


def test_store_does_not_modify_the_input_data():
    data = graph_a()
    copies = {k: v.clone() for k, v in data.items() if torch.is_tensor(v)}
    s = gu.GraphStore(data)
    s.live()
    s.delete_nodes([2])
    s.delete_node_features([0], [1])
    s.compact()
    for k, v in copies.items():
        assert torch.equal(data[k], v), k


# ----------------------------------------------------------------------------------------------- delete_edges
def test_undirected_delete_pair_removes_both_directions():
    s = store_a()
    s.live()  # caches exist before the request, so they are patched in place
    req = s.delete_edges([(2, 1)])
    assert ids(req.edge_ids) == [2] and req.kind == "edges" and ids(req.node_ids) == []
    assert s.edge_mask.tolist() == [True, True, False, True, True]
    expect = both_ways([(0, 1), (0, 2), (2, 3), (3, 4)])
    assert pairs_of(s.live_edge_index()) == expect
    csr, csc = live_pairs_from_csr(s)
    assert csr == expect and csc == expect
    kept = s.retained()
    assert pairs_of(kept.orig_node_id[kept.edge_index]) == expect
    # the other orientation names the same, now deleted, edge
    with pytest.raises(gu.DeletionError, match="already deleted"):
        s.delete_edges([(1, 2)])


@pytest.mark.parametrize("how", ["ids", "id_tensor", "pairs", "reversed_pairs", "edge_index", "tuple_of_pairs"])
def test_delete_edges_input_forms_undirected(how):
    s = store_a()
    arg = {
        "ids": [3, 0],
        "id_tensor": torch.tensor([3, 0, 3]),
        "pairs": [(0, 1), (2, 3)],
        "reversed_pairs": [(1, 0), (3, 2)],
        "edge_index": torch.tensor([[1, 3], [0, 2]]),
        "tuple_of_pairs": ((0, 1), (3, 2)),
    }[how]
    req = s.delete_edges(arg, layout="edge_index" if how == "edge_index" else "auto")
    assert ids(req.edge_ids) == [0, 3]
    assert pairs_of(s.live_edge_index()) == both_ways([(0, 2), (1, 2), (3, 4)])


def test_directed_delete_pair_keeps_reverse_direction():
    s = store_b()
    s.live()
    req = s.delete_edges([(0, 1)])
    assert ids(req.edge_ids) == [0]
    live = sorted(B_EDGES[1:])
    assert pairs_of(s.live_edge_index()) == live and (1, 0) in live
    csr, csc = live_pairs_from_csr(s)
    assert csr == live and csc == live
    # (1, 0) is its own edge and can still be deleted; (2, 1) is not an edge at all
    assert ids(s.delete_edges([(1, 0)]).edge_ids) == [1]
    with pytest.raises(gu.DeletionError, match=r"not edges.*\(2, 1\)"):
        s.delete_edges([(2, 1)])


@pytest.mark.parametrize("arg,layout", [
    (torch.tensor([[1, 3], [2, 4]]), "edge_index"), ([(1, 2), (3, 4)], "auto"), ([2, 4], "auto"),
    (torch.tensor([4, 2]), "auto"), ([[1, 2], [3, 4]], "pairs"), (torch.tensor([[1, 2], [3, 4]]), "pairs"),
    (torch.tensor([[1, 3, 1], [2, 4, 2]]), "auto"), (torch.tensor([[1, 2], [3, 4], [1, 2]]), "auto"),
    (np.array([[1, 3, 3], [2, 4, 4]]), "auto"), ({4, 2}, "auto"), ((i for i in (2, 4)), "auto"),
    (range(2, 5, 2), "auto"), (np.array([2, 4]), "auto"),
])
def test_directed_delete_edges_input_forms(arg, layout):
    s = store_b()
    req = s.delete_edges(arg, layout=layout)
    assert ids(req.edge_ids) == [2, 4]
    assert s.edge_mask.tolist() == [True, True, False, True, False, True]


def test_directed_parallel_edges_are_all_deleted_by_their_pair():
    data = Data(x=features(3), edge_index=torch.tensor([[0, 0, 1, 0], [1, 2, 2, 1]]), num_nodes=3)
    s = gu.GraphStore(data, undirected=False)
    assert ids(s.delete_edges([(0, 1)]).edge_ids) == [0, 3]
    assert pairs_of(s.live_edge_index()) == [(0, 2), (1, 2)]
    # once one parallel copy is gone, the pair names the live copies only; with none left it is refused
    s2 = gu.GraphStore(data, undirected=False)
    s2.delete_edges([3])
    assert ids(s2.delete_edges([(0, 1), (1, 2)]).edge_ids) == [0, 2]
    with pytest.raises(gu.DeletionError, match=r"\(0, 1\).*already deleted.*requests \[0, 1\]"):
        s2.delete_edges([(0, 1)])


# ----------------------------------------------------------------------------------------------- delete_nodes
def test_delete_nodes_undirected_removes_node_features_and_incident_edges():
    s = store_a()
    x_before = s.live().x.clone()
    req = s.delete_nodes([2])
    assert req.kind == "nodes" and ids(req.node_ids) == [2] and ids(req.edge_ids) == [1, 2, 3]
    assert s.node_mask.tolist() == [True, True, False, True, True]
    assert s.edge_mask.tolist() == [True, False, False, False, True]
    lx = s.live().x
    assert torch.all(lx[2] == 0) and torch.equal(lx[[0, 1, 3, 4]], x_before[[0, 1, 3, 4]])
    assert torch.equal(s.live_x(), lx)
    expect = both_ways([(0, 1), (3, 4)])
    assert pairs_of(s.live_edge_index()) == expect
    assert live_pairs_from_csr(s) == (expect, expect)
    # live.node_mask is the store's mask
    assert s.live().node_mask.tolist() == [True, True, False, True, True]


def test_delete_nodes_directed_removes_in_and_out_edges():
    s = store_b()
    s.live()
    req = s.delete_nodes([2])
    # in-edges 1->2 (e2), 4->2 (e5) and out-edge 2->3 (e3)
    assert ids(req.edge_ids) == [2, 3, 5]
    assert s.edge_mask.tolist() == [True, True, False, False, True, False]
    expect = [(0, 1), (1, 0), (3, 4)]
    assert pairs_of(s.live_edge_index()) == expect
    assert live_pairs_from_csr(s) == (expect, expect)
    assert torch.all(s.live().x[2] == 0)


def test_delete_nodes_only_lists_edges_still_live():
    s = store_a()
    s.delete_edges([(1, 2)])
    req = s.delete_nodes(torch.tensor([2, 2]))
    assert ids(req.node_ids) == [2] and ids(req.edge_ids) == [1, 3]
    # an isolated node is deleted with no edges
    s2 = gu.GraphStore(Data(x=features(3), edge_index=torch.tensor([[0], [1]]), num_nodes=3), undirected=True)
    r2 = s2.delete_nodes(2)
    assert ids(r2.node_ids) == [2] and ids(r2.edge_ids) == [] and s2.edge_mask.tolist() == [True]


# ----------------------------------------------------------------------------------------------- classes
def test_delete_edge_class():
    s = store_a()
    req = s.delete_edge_class(1)  # edge_type [0, 1, 0, 1, 2]
    assert req.kind == "edge_class" and req.params == {"edge_class": 1}
    assert ids(req.edge_ids) == [1, 3] and ids(req.node_ids) == []
    assert s.node_mask.all()
    assert pairs_of(s.live_edge_index()) == both_ways([(0, 1), (1, 2), (3, 4)])
    # a class some of whose members are already gone deletes the remaining ones only
    s2 = store_a()
    s2.delete_edges([1])
    assert ids(s2.delete_edge_class(torch.tensor(1)).edge_ids) == [3]


def test_delete_edge_class_directed():
    s = store_b()  # edge_type [0, 0, 1, 1, 2, 2]
    assert ids(s.delete_edge_class(0).edge_ids) == [0, 1]
    assert pairs_of(s.live_edge_index()) == sorted(B_EDGES[2:])


def test_delete_node_class():
    s = store_a()
    req = s.delete_node_class(1)  # y [0, 1, 0, 2, 1]
    assert req.kind == "node_class" and req.params == {"node_class": 1}
    assert ids(req.node_ids) == [1, 4] and ids(req.edge_ids) == [0, 2, 4]
    assert s.node_mask.tolist() == [True, False, True, True, False]
    assert torch.all(s.live_x()[[1, 4]] == 0) and torch.all(s.live_x()[[0, 2, 3]] != 0)
    assert pairs_of(s.live_edge_index()) == both_ways([(0, 2), (2, 3)])


# ----------------------------------------------------------------------------------------------- features
def test_delete_node_features_given_columns():
    s = store_a()
    x = features(5)
    s.live()
    req = s.delete_node_features([3, 1], columns=[2, 0, 2])
    assert req.kind == "node_features" and ids(req.feature_node_ids) == [1, 3]
    assert ids(req.feature_columns) == [0, 2] and ids(req.node_ids) == [] and ids(req.edge_ids) == []
    expect = x.clone()
    expect[1, 0] = expect[1, 2] = expect[3, 0] = expect[3, 2] = 0
    assert torch.equal(s.live_x(), expect) and torch.equal(s.live().x, expect)
    assert torch.equal(s.x, x)  # the original array is untouched: deletion is masking
    fm = torch.ones(5, 3, dtype=torch.bool)
    fm[1, 0] = fm[1, 2] = fm[3, 0] = fm[3, 2] = False
    assert torch.equal(s.feature_mask, fm)
    assert s.node_mask.all() and s.edge_mask.all()  # nodes and edges stay
    # the remaining column can still be deleted; then the row is all zero
    s.delete_node_features([1], [1])
    assert torch.all(s.live_x()[1] == 0)
    assert torch.equal(s.retained().x, s.live_x())


def test_delete_node_features_all_columns():
    s = store_a()
    req = s.delete_node_features(4)
    assert req.feature_columns is None and ids(req.feature_node_ids) == [4]
    assert torch.all(s.live_x()[4] == 0) and torch.equal(s.live_x()[:4], features(5)[:4])
    assert s.feature_mask[4].sum() == 0 and s.feature_mask[:4].all()
    assert s.node_mask[4]  # the node itself is still live


def test_live_x_cache_built_after_requests_equals_patched_one():
    a, b = store_a(), store_a()
    a.live()
    for s in (a, b):
        s.delete_node_features([0, 3], [1])
        s.delete_nodes([2])
        s.delete_node_features([4])
    assert b._x_live is None  # b never built the cache before the requests
    assert torch.equal(a.live().x, b.live().x)


# ----------------------------------------------------------------------------------------------- views
def test_retained_relabels_and_carries_attributes():
    s = store_a()
    s.delete_nodes([2])
    s.delete_node_features([4], [0])
    kept = s.retained()
    assert kept.num_nodes == 4
    assert ids(kept.orig_node_id) == [0, 1, 3, 4]
    assert kept.y.tolist() == [A_Y[i] for i in (0, 1, 3, 4)]
    assert kept.train_mask.tolist() == [A_TRAIN[i] for i in (0, 1, 3, 4)]
    x = features(5)
    x[4, 0] = 0
    assert torch.equal(kept.x, x[[0, 1, 3, 4]])
    # each column: (new src, new dst, orig edge id, edge_type, edge_weight)
    cols = sorted(zip(*kept.edge_index.tolist(), kept.orig_edge_id.tolist(), kept.edge_type.tolist(),
                      kept.edge_weight.tolist()))
    assert cols == [(0, 1, 0, 0, 1.0), (1, 0, 0, 0, 1.0), (2, 3, 4, 2, 5.0), (3, 2, 4, 2, 5.0)]
    # the maps are consistent with the store's numbering
    orig_pairs = kept.orig_node_id[kept.edge_index]
    for k in range(kept.edge_index.size(1)):
        u, v = s.edge_index[:, kept.orig_edge_id[k]].tolist()
        assert sorted(orig_pairs[:, k].tolist()) == sorted([u, v])


def test_retained_directed():
    s = store_b()
    s.delete_nodes([2])
    kept = s.retained()
    assert ids(kept.orig_node_id) == [0, 1, 3, 4]
    cols = sorted(zip(*kept.edge_index.tolist(), kept.orig_edge_id.tolist(), kept.edge_type.tolist(),
                      kept.edge_weight.tolist()))
    # 0->1 (e0), 1->0 (e1), 3->4 (e4 -> new 2->3)
    assert cols == [(0, 1, 0, 0, 0.5), (1, 0, 1, 0, 1.0), (2, 3, 4, 2, 2.5)]


def test_retained_of_untouched_store_is_the_graph():
    s = store_a()
    kept = s.retained()
    assert ids(kept.orig_node_id) == list(range(5))
    assert pairs_of(kept.edge_index) == both_ways(A_EDGES)
    assert torch.equal(kept.x, features(5))


def test_live_edge_index_self_loop_once():
    data = Data(x=features(2), edge_index=torch.tensor([[0, 1, 1], [1, 0, 1]]), num_nodes=2)
    s = gu.GraphStore(data)
    assert s.undirected and pairs_of(s.edge_index) == [(0, 1), (1, 1)]
    assert pairs_of(s.live_edge_index()) == [(0, 1), (1, 0), (1, 1)]
    ei, eid = expected_live_directed(s)
    assert pairs_of(ei) == pairs_of(s.live_edge_index())


def test_gcn_degree_by_hand_with_self_loop_and_weights():
    data = Data(x=features(2), edge_index=torch.tensor([[0, 1, 1], [1, 0, 1]]),
                edge_weight=torch.tensor([2.0, 2.0, 0.5]), num_nodes=2)
    s = gu.GraphStore(data)
    assert s.live().gcn_deg.tolist() == [3.0, 3.5]  # 1 + 2 ; 1 + 2 + 0.5 (the loop counts once)
    s.delete_edges([(1, 1)])
    assert s.live().gcn_deg.tolist() == [3.0, 3.0]
    s.delete_edges([(1, 0)])
    assert s.live().gcn_deg.tolist() == [1.0, 1.0]
    unweighted = gu.GraphStore(Data(x=features(2), edge_index=torch.tensor([[0, 1, 1], [1, 0, 1]]), num_nodes=2))
    assert unweighted.live().gcn_deg.tolist() == [2.0, 3.0]


def test_gcn_degree_directed_counts_in_edges():
    s = store_b()
    # in-weights: 0 <- e1 (1.0); 1 <- e0 (0.5); 2 <- e2 (1.5), e5 (3.0); 3 <- e3 (2.0); 4 <- e4 (2.5)
    assert s.live().gcn_deg.tolist() == [2.0, 1.5, 5.5, 3.0, 3.5]
    s.delete_nodes([4])  # removes 3->4 and 4->2
    assert s.live().gcn_deg.tolist() == [2.0, 1.5, 2.5, 3.0, 1.0]


def test_forget_set():
    s = store_a()
    r0 = s.delete_edges([(1, 2)])
    s.delete_nodes([4])
    s.delete_node_features([0], [1])
    fs = s.forget_set()
    assert ids(fs.node_ids) == [4] and ids(fs.edge_ids) == [2, 4]
    assert fs.edge_index.tolist() == [[1, 3], [2, 4]]
    assert len(fs.feature_entries) == 1
    nodes, cols = fs.feature_entries[0]
    assert ids(nodes) == [0] and ids(cols) == [1]
    only = s.forget_set([r0])
    assert ids(only.node_ids) == [] and ids(only.edge_ids) == [2] and only.feature_entries == ()
    empty = store_a().forget_set()
    assert empty.node_ids.numel() == 0 and empty.edge_index.shape == (2, 0)


def test_affected_subgraph():
    s = store_a()
    req = s.delete_nodes([2])
    # seeds: node 2 and the endpoints of its edges e1, e2, e3 -> {0, 1, 2, 3}; node 4 is one hop away
    assert [ids(h) for h in req.hops] == [[0, 1, 2, 3], [4], []]
    sub = s.affected_subgraph(req)
    assert ids(sub.orig_node_id) == [0, 1, 3, 4]  # node 2 is gone from the live part
    assert sub.hop.tolist() == [0, 0, 0, 1]
    cols = sorted(zip(*sub.orig_node_id[sub.edge_index].tolist(), sub.orig_edge_id.tolist()))
    assert cols == [(0, 1, 0), (1, 0, 0), (3, 4, 4), (4, 3, 4)]
    assert sub.x.shape == (4, 3) and sub.y.tolist() == [0, 1, 2, 1]
    sub0 = s.affected_subgraph(req, hop=0)
    assert ids(sub0.orig_node_id) == [0, 1, 3]
    assert sorted(zip(*sub0.orig_node_id[sub0.edge_index].tolist())) == [(0, 1), (1, 0)]


def test_affected_subgraph_directed_keeps_direction():
    s = store_b()
    req = s.delete_node_features([0])
    sub = s.affected_subgraph(req)
    assert ids(sub.orig_node_id) == [0, 1, 2]
    assert sorted(zip(*sub.orig_node_id[sub.edge_index].tolist())) == [(0, 1), (1, 0), (1, 2)]
    assert sub.hop.tolist() == [0, 1, 2]


# ----------------------------------------------------------------------------------------------- records and hops
def test_request_record_fields_undirected():
    s = store_a()
    t0 = time.time()
    r0 = s.delete_edges([(1, 2)])
    r1 = s.delete_edge_class(2)
    r2 = s.delete_node_features([0], [1])
    assert [r.id for r in s.requests] == [0, 1, 2] and s.requests == [r0, r1, r2]
    assert [r.kind for r in s.requests] == ["edges", "edge_class", "node_features"]
    assert t0 - 1 <= r0.created <= time.time() + 1
    # r0: seeds {1, 2}; hop 1: 0 and 3; hop 2: 4. Every edge has both endpoints within 2 hops.
    assert [ids(h) for h in r0.hops] == [[1, 2], [0, 3], [4]]
    assert r0.num_hops == 2 and ids(r0.subgraph_edge_ids) == [0, 1, 2, 3, 4]
    assert ids(r0.affected_edges()) == [0, 1, 2, 3, 4]
    assert ids(r0.affected_nodes(0)) == [1, 2] and ids(r0.affected_nodes(1)) == [0, 1, 2, 3]
    assert ids(r0.affected_nodes()) == [0, 1, 2, 3, 4]
    # r1 deletes e4 (3,4) on the graph without e2: seeds {3, 4}; hop 1: 2; hop 2: 0 (1 is reached via 0 only)
    assert ids(r1.edge_ids) == [4] and [ids(h) for h in r1.hops] == [[3, 4], [2], [0]]
    assert ids(r1.subgraph_edge_ids) == [1, 3, 4]  # (0,2) (2,3) (3,4); (1,2) is deleted, 1 is 3 hops away
    # r2: features of node 0, with e2 and e4 gone: hop 1: 1 and 2; hop 2: 3
    assert [ids(h) for h in r2.hops] == [[0], [1, 2], [3]]
    assert ids(r2.subgraph_edge_ids) == [0, 1, 3]
    assert r2.params == {} and r0.params == {} and r1.params == {"edge_class": 2}
    assert not any(r.redacted for r in s.requests)
    assert "request 0: edges" in r0.summary() and "affected per hop 2/2/1" in r0.summary()
    with pytest.raises(ValueError, match="outside 0..2"):
        r0.affected_nodes(3)


def test_hops_follow_message_direction_in_directed_graph():
    s = store_b()
    # features of node 3: out-edges 3->4, then 4->2 (following in-edges would give 2, then 1 and 4)
    r = s.delete_node_features([3])
    assert [ids(h) for h in r.hops] == [[3], [4], [2]]
    assert ids(r.subgraph_edge_ids) == [3, 4, 5]  # 2->3, 3->4, 4->2
    # deleting node 4: seeds 4 and the endpoints of 3->4 and 4->2; then out-edges 2->3 (visited), 1 not reached
    r = s.delete_nodes([4])
    assert ids(r.edge_ids) == [4, 5] and [ids(h) for h in r.hops] == [[2, 3, 4], [], []]
    assert ids(r.subgraph_edge_ids) == [3, 4, 5]


@pytest.mark.parametrize("num_hops, expect_hops, expect_edges", [
    (0, [[1, 2]], [2]),
    (1, [[1, 2], [0, 3]], [0, 1, 2, 3]),
    (3, [[1, 2], [0, 3], [4], []], [0, 1, 2, 3, 4]),
])
def test_num_hops_is_configurable(num_hops, expect_hops, expect_edges):
    s = store_a(num_hops=num_hops)
    r = s.delete_edges([(1, 2)])
    assert r.num_hops == num_hops and [ids(h) for h in r.hops] == expect_hops
    assert ids(r.subgraph_edge_ids) == expect_edges


def test_num_hops_must_be_non_negative_int():
    for bad in (-1, 1.5, "2"):
        with pytest.raises(ValueError, match="num_hops"):
            store_a(num_hops=bad)


def test_store_repr_and_counts():
    s = store_a()
    s.delete_nodes([2])
    assert s.num_live_nodes == 4 and s.num_live_edges == 2 and s.num_features == 3
    assert "nodes=4/5" in repr(s) and "edges=2/5" in repr(s) and "requests=1" in repr(s)


@pytest.mark.parametrize("arg", [3, torch.tensor(3), np.int64(3), [np.int32(3)], torch.tensor([[3]])[0]])
def test_single_ids_are_ids(arg):
    s = store_b()
    assert ids(s.delete_edges(arg).edge_ids) == [3]
    assert ids(store_b().delete_nodes(arg).node_ids) == [3]
