"""The incrementally patched live caches equal a from-scratch rebuild after sequences of requests.

Three references for ``live()`` (mask, mask_t, gcn_deg, x): a fresh store on the same data with the same
deleted elements applied in one go, a fresh store whose caches are first built after the requests, and
plain formulas over ``edge_mask`` / ``node_mask`` / ``feature_mask``.
"""

from __future__ import annotations

import pytest
import torch

import graphunlearn as gu
from tests.conftest import assert_close
from tests.store.helpers import expected_live_directed, live_pairs_from_csr, pairs_of, random_graph


def random_requests(store: gu.GraphStore, g: torch.Generator, steps: int) -> None:
    """A mixed sequence of valid requests of every kind."""
    for _ in range(steps):
        live_nodes = store.node_mask.nonzero().squeeze(1)
        live_edges = store.edge_mask.nonzero().squeeze(1)
        kind = int(torch.randint(5, (1,), generator=g))
        if kind == 0 and live_edges.numel():
            pick = live_edges[torch.randperm(live_edges.numel(), generator=g)[:3]]
            store.delete_edges(pick)
        elif kind == 1 and live_nodes.numel() > 2:
            store.delete_nodes(live_nodes[torch.randperm(live_nodes.numel(), generator=g)[:1]])
        elif kind == 2 and live_edges.numel():
            store.delete_edge_class(int(store.edge_type[live_edges[0]]))
        elif kind == 3 and live_nodes.numel():
            fm = store.feature_mask
            ok = live_nodes if fm is None else live_nodes[fm[live_nodes].all(1)]
            if ok.numel():
                col = int(torch.randint(store.num_features, (1,), generator=g))
                store.delete_node_features(ok[torch.randperm(ok.numel(), generator=g)[:2]], [col])
        elif kind == 4 and live_nodes.numel() > 4:
            # a node class through y; keep it small by choosing the class of one live node
            store.delete_node_class(int(store.y[live_nodes[0]]))


def rebuilt_in_one_go(data, store: gu.GraphStore) -> gu.GraphStore:
    """A fresh store with ``store``'s deleted nodes, then edges, then feature values removed in few requests."""
    fresh = gu.GraphStore(data, undirected=store.undirected)
    dead_nodes = (~store.node_mask).nonzero().squeeze(1)
    if dead_nodes.numel():
        fresh.delete_nodes(dead_nodes)
    rest = (~store.edge_mask & fresh.edge_mask).nonzero().squeeze(1)
    if rest.numel():
        fresh.delete_edges(rest)
    if store.feature_mask is not None:
        gone = ~store.feature_mask & store.node_mask.unsqueeze(1)
        for col in range(store.num_features):  # one request per column
            rows = gone[:, col].nonzero().squeeze(1)
            if rows.numel():
                fresh.delete_node_features(rows, [col])
    return fresh


def formula_check(store: gu.GraphStore, data) -> None:
    live = store.live()
    # masks: the live slots of CSR and CSC carry exactly the live messages
    ei, eid = expected_live_directed(store)
    csr, csc = live_pairs_from_csr(store)
    assert csr == pairs_of(ei) and csc == pairs_of(ei)
    # gcn_deg == 1 + live weighted in-degree
    w = torch.ones(eid.numel()) if store.edge_weight is None else store.edge_weight[eid].float()
    deg = torch.ones(store.num_nodes).index_add_(0, ei[1], w)
    assert_close(live.gcn_deg, deg, what="gcn_deg")
    # live x: deleted nodes and deleted values zero, everything else the original
    keep = store.node_mask.unsqueeze(1).expand_as(data.x).clone()
    if store.feature_mask is not None:
        keep &= store.feature_mask
    assert torch.equal(live.x, torch.where(keep, data.x, torch.zeros(())))
    assert torch.equal(live.node_mask, store.node_mask)
    # the transpose map used by the kernels' backward points each CSC slot at the CSR slot of the same message
    if store.undirected:
        assert live.transpose == "symmetric" and live.mask_t is live.mask
    else:
        rowptr_t, col_t, pos = live.transpose
        assert torch.equal(rowptr_t, live.rowptr_t) and torch.equal(col_t, live.col_t)
        dst = torch.repeat_interleave(torch.arange(store.num_nodes), live.rowptr.diff())
        src_t = torch.repeat_interleave(torch.arange(store.num_nodes), live.rowptr_t.diff())
        assert torch.equal(live.col[pos], src_t) and torch.equal(dst[pos], live.col_t)
        assert torch.equal(live.mask[pos], live.mask_t)
    # nothing live touches a deleted node
    assert bool(store.node_mask[ei].all())


@pytest.mark.parametrize("weighted", [True, False], ids=["weighted", "unweighted"])
@pytest.mark.parametrize("directed", [False, True], ids=["undirected", "directed"])
@pytest.mark.parametrize("seed", range(3))
def test_incremental_caches_equal_rebuild(seed, directed, weighted):
    data = random_graph(seed, directed=directed, weighted=weighted, num_nodes=30, num_edges=80)
    store = gu.GraphStore(data, undirected=not directed)
    lazy = gu.GraphStore(data, undirected=not directed)  # its caches are built only at the end
    store.live()  # caches exist from the start and are patched by every request
    g = torch.Generator().manual_seed(seed)
    for _round in range(4):
        state = g.get_state()
        random_requests(store, g, 3)
        g.set_state(state)
        random_requests(lazy, g, 3)
        formula_check(store, data)
    assert len(store.requests) >= 4 and torch.equal(store.edge_mask, lazy.edge_mask)
    a, b = store.live(), lazy.live()
    for fresh in (lazy, rebuilt_in_one_go(data, store)):
        c = fresh.live()
        assert torch.equal(fresh.edge_mask, store.edge_mask) and torch.equal(fresh.node_mask, store.node_mask)
        assert torch.equal(a.rowptr, c.rowptr) and torch.equal(a.col, c.col)
        assert torch.equal(a.mask, c.mask) and torch.equal(a.mask_t, c.mask_t)
        assert_close(a.gcn_deg, c.gcn_deg, what="gcn_deg vs rebuild")
        assert torch.equal(a.x, c.x)
    assert b is not a


def test_cache_built_midway_then_patched():
    """Caches first built between requests (not at the start) stay right afterwards."""
    data = random_graph(3, directed=True, num_nodes=25, num_edges=70)
    store = gu.GraphStore(data, undirected=False)
    g = torch.Generator().manual_seed(3)
    store.delete_edges([0, 1, 2])
    store.delete_node_features([0, 1], [0])
    store._structure()  # built midway (requests no longer build it: their neighbourhoods are lazy) ...
    assert store._csr is not None
    store._csr = None  # ... then forgotten: it must be rebuilt from the masks ...
    store._x_live = None
    formula_check(store, data)
    random_requests(store, g, 6)  # ... and then patched again
    formula_check(store, data)
