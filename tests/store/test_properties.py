"""Property tests: random sequences of mixed requests, some of which must be refused.

An independent model (plain Python sets) predicts for every request whether it is accepted and what it
deletes. After every step: the store's masks equal the model's, deleted elements never come back, retained
elements are never lost, refused requests change nothing, and the live views agree with the masks.
"""

from __future__ import annotations

import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import graphunlearn as gu
from tests.store.helpers import (
    assert_same_snapshot,
    expected_live_directed,
    live_pairs_from_csr,
    pairs_of,
    random_graph,
    snapshot,
)

N, E_IN, F, C = 9, 16, 3, 3
REFUSE = "refuse"


class Model:
    """What the store should hold, kept with sets over the store's (canonical) edge numbering."""

    def __init__(self, store: gu.GraphStore):
        self.n, self.f = store.num_nodes, store.num_features
        self.undirected = store.undirected
        self.edges = [tuple(p) for p in store.edge_index.t().tolist()]
        self.etype = store.edge_type.tolist()
        self.y = store.y.tolist()
        self.dead_nodes: set[int] = set()
        self.dead_edges: set[int] = set()
        self.dead_feats: set[tuple[int, int]] = set()

    def incident_live(self, nodes) -> set[int]:
        return {e for e, (u, v) in enumerate(self.edges) if e not in self.dead_edges and (u in nodes or v in nodes)}

    def predict(self, op):
        """(node ids, edge ids, feature entries) the request deletes, or REFUSE."""
        kind, arg = op
        if kind == "garbage":
            return REFUSE
        if kind == "edge_ids":
            if not arg or any(not 0 <= e < len(self.edges) for e in arg) or set(arg) & self.dead_edges:
                return REFUSE
            return set(), set(arg), set()
        if kind == "pairs":
            if not arg or any(not (0 <= a < self.n and 0 <= b < self.n) for a, b in arg):
                return REFUSE
            out = set()
            for a, b in arg:
                match = {e for e, p in enumerate(self.edges) if p == (a, b) or (self.undirected and p == (b, a))}
                live = match - self.dead_edges
                if not live:  # not an edge, or every copy already deleted
                    return REFUSE
                out |= live
            return set(), out, set()
        if kind == "nodes":
            if not arg or any(not 0 <= v < self.n for v in arg) or set(arg) & self.dead_nodes:
                return REFUSE
            return set(arg), self.incident_live(set(arg)), set()
        if kind == "edge_class":
            members = {e for e, t in enumerate(self.etype) if t == arg}
            if not members - self.dead_edges:
                return REFUSE
            return set(), members - self.dead_edges, set()
        if kind == "node_class":
            members = {v for v, t in enumerate(self.y) if t == arg}
            live = members - self.dead_nodes
            if not live:
                return REFUSE
            return live, self.incident_live(live), set()
        if kind == "features":
            nodes, cols = arg
            if not nodes or any(not 0 <= v < self.n for v in nodes) or set(nodes) & self.dead_nodes:
                return REFUSE
            if cols is not None and (not cols or any(not 0 <= c < self.f for c in cols)):
                return REFUSE
            entries = {(v, c) for v in nodes for c in (range(self.f) if cols is None else cols)}
            if entries & self.dead_feats:
                return REFUSE
            return set(), set(), entries
        raise AssertionError(kind)

    def apply(self, nodes, edges, feats):
        self.dead_nodes |= nodes
        self.dead_edges |= edges
        self.dead_feats |= feats


def ops(model: Model):
    def mostly_in_range(hi):  # in range three times out of four
        return st.one_of(st.integers(0, hi - 1), st.integers(0, hi - 1), st.integers(0, hi - 1),
                         st.sampled_from([-1, hi]))

    small = mostly_in_range(N)
    edge_id = mostly_in_range(len(model.edges))
    real_pair = st.sampled_from(model.edges).flatmap(
        lambda p: st.sampled_from([p, (p[1], p[0])]))
    any_pair = st.one_of(real_pair, real_pair, st.tuples(small, small))
    garbage = st.sampled_from([
        [], torch.tensor([0.0]), torch.tensor([[0, 1], [1, 2], [2, 0]]), [True], torch.empty(2, 0, dtype=torch.long),
    ])
    # draws from the live elements too, so that sequences keep deleting something after a few steps
    live_edges = [e for e in range(len(model.edges)) if e not in model.dead_edges] or [0]
    live_nodes = [v for v in range(model.n) if v not in model.dead_nodes] or [0]
    edge_ids = st.one_of(st.lists(edge_id, min_size=0, max_size=2),
                         st.lists(st.sampled_from(live_edges), min_size=1, max_size=3))
    node_ids = st.one_of(st.lists(small, min_size=1, max_size=2),
                         st.lists(st.sampled_from(live_nodes), min_size=1, max_size=2))
    touched = sorted({v for v, _ in model.dead_feats}) or live_nodes  # nodes that lost some feature values
    feature_nodes = st.one_of(node_ids, st.lists(st.sampled_from(touched), min_size=1, max_size=2))
    args = {
        "edge_ids": edge_ids,
        "pairs": st.lists(any_pair, min_size=1, max_size=3),
        "nodes": node_ids,
        "edge_class": st.integers(-1, C),
        "node_class": st.integers(-1, C),
        "features": st.tuples(feature_nodes, st.one_of(st.none(), st.lists(mostly_in_range(F), max_size=2))),
        "garbage": st.tuples(st.sampled_from(["edges", "nodes", "features"]), garbage),
    }
    weighted = ["edge_ids"] * 3 + ["pairs"] * 2 + ["nodes"] * 2 + ["edge_class", "node_class"] + ["features"] * 3 + [
        "garbage"]
    return st.sampled_from(weighted).flatmap(lambda kind: st.tuples(st.just(kind), args[kind]))


def issue(store: gu.GraphStore, op):
    kind, arg = op
    if kind in ("edge_ids", "pairs"):
        return store.delete_edges(arg)
    if kind == "nodes":
        return store.delete_nodes(arg)
    if kind == "edge_class":
        return store.delete_edge_class(arg)
    if kind == "node_class":
        return store.delete_node_class(arg)
    if kind == "features":
        return store.delete_node_features(arg[0], arg[1])
    where, bad = arg
    if where == "edges":
        return store.delete_edges(bad)
    if where == "nodes":
        return store.delete_nodes(bad)
    return store.delete_node_features([0], bad)


def check_invariants(store: gu.GraphStore, model: Model, graph) -> None:
    node_mask = torch.tensor([v not in model.dead_nodes for v in range(model.n)])
    edge_mask = torch.tensor([e not in model.dead_edges for e in range(len(model.edges))])
    assert torch.equal(store.node_mask, node_mask)
    assert torch.equal(store.edge_mask, edge_mask)
    # retained is never lost: every edge neither requested nor incident to a deleted node is live
    for e, (u, v) in enumerate(model.edges):
        if u in model.dead_nodes or v in model.dead_nodes:
            assert not store.edge_mask[e]
    fm = torch.ones(model.n, model.f, dtype=torch.bool)
    for v, c in model.dead_feats:
        fm[v, c] = False
    assert torch.equal(store.feature_mask if store.feature_mask is not None else torch.ones_like(fm), fm)
    keep = fm & node_mask.unsqueeze(1)
    x = torch.where(keep, graph.x, torch.zeros(()))
    assert torch.equal(store.live_x(), x)
    # the live views agree with the masks
    ei, _ = expected_live_directed(store, edge_mask)
    assert pairs_of(store.live_edge_index()) == pairs_of(ei)
    csr, csc = live_pairs_from_csr(store)
    assert csr == pairs_of(ei) and csc == pairs_of(ei)
    kept = store.retained()
    assert kept.orig_node_id.tolist() == [v for v in range(model.n) if v not in model.dead_nodes]
    assert sorted(set(kept.orig_edge_id.tolist())) == [e for e in range(len(model.edges)) if edge_mask[e]]
    assert torch.equal(kept.x, x[kept.orig_node_id])
    assert [r.id for r in store.requests] == list(range(len(store.requests)))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), directed=st.booleans(), data=st.data())
def test_random_request_sequences(seed, directed, data):
    graph = random_graph(seed, directed=directed, num_nodes=N, num_edges=E_IN, num_features=F, classes=C)
    store = gu.GraphStore(graph, undirected=not directed)
    model = Model(store)
    ever_deleted_nodes, ever_deleted_edges = set(), set()
    steps = data.draw(st.integers(2, 8), label="steps")
    for _ in range(steps):
        op = data.draw(ops(model), label="op")
        expect = model.predict(op)
        event(f"{op[0]}: {'refused' if expect == REFUSE else 'accepted'}")
        before = snapshot(store)
        if expect == REFUSE:
            try:
                issue(store, op)
            except gu.DeletionError:
                pass
            else:
                raise AssertionError(f"{op} should have been refused")
            assert_same_snapshot(before, snapshot(store))
        else:
            req = issue(store, op)
            nodes, edges, feats = expect
            assert req.id == before["next_id"]
            assert sorted(req.node_ids.tolist()) == sorted(nodes)
            assert sorted(req.edge_ids.tolist()) == sorted(edges)
            model.apply(nodes, edges, feats)
            ever_deleted_nodes |= nodes
            ever_deleted_edges |= edges
        check_invariants(store, model, graph)
        # deleted elements never become live again
        assert not any(store.node_mask[v] for v in ever_deleted_nodes)
        assert not any(store.edge_mask[e] for e in ever_deleted_edges)
