"""Affected neighbourhoods checked against networkx, an independent oracle, on small random graphs.

For every request: ``hops[h]`` must be the nodes at shortest-path distance exactly ``h`` from the seeds
(endpoints of deleted edges, deleted nodes, nodes whose features were deleted) on the live graph just before
the request, following message direction (out-edges, src -> dst, for directed graphs); ``subgraph_edge_ids``
the edges live before the request with both endpoints within ``num_hops``.
"""

from __future__ import annotations

import pytest
import torch

from tests.store.helpers import nx_graph, nx_hops, random_store


def incident_live(store, edge_mask, nodes):
    nodes = torch.as_tensor(nodes)
    touch = torch.isin(store.edge_index[0], nodes) | torch.isin(store.edge_index[1], nodes)
    return (touch & edge_mask).nonzero().squeeze(1)


def check_request(store, make_request, g: torch.Generator):
    """Issue one request and compare its record with the networkx oracle on the pre-request live graph."""
    edge_mask = store.edge_mask.clone()
    node_mask = store.node_mask.clone()
    G = nx_graph(store, edge_mask)
    req, seeds, expect_edges = make_request(store, edge_mask, node_mask, g)
    if req is None:
        return None
    if expect_edges is not None:
        assert sorted(req.edge_ids.tolist()) == sorted(expect_edges)
    k = store.num_hops
    expect = nx_hops(G, seeds, k)
    got = [h.tolist() for h in req.hops]
    assert got == expect, f"{req.kind}: hops {got} != networkx {expect}"
    within = set(v for layer in expect for v in layer)
    sub = [e for e in edge_mask.nonzero().squeeze(1).tolist()
           if int(store.edge_index[0, e]) in within and int(store.edge_index[1, e]) in within]
    assert req.subgraph_edge_ids.tolist() == sub
    for h in range(k + 1):
        assert req.affected_nodes(h).tolist() == sorted(v for layer in expect[: h + 1] for v in layer)
    assert req.affected_nodes().tolist() == sorted(within)
    # deleted edges are part of their own enclosing subgraph
    assert set(req.edge_ids.tolist()) <= set(sub)
    return req


def _pick(g, pool, most):
    pool = pool.tolist() if torch.is_tensor(pool) else list(pool)
    if not pool:
        return []
    k = int(torch.randint(1, min(most, len(pool)) + 1, (1,), generator=g))
    return [pool[i] for i in torch.randperm(len(pool), generator=g)[:k].tolist()]


def req_edges(store, edge_mask, node_mask, g):
    ids = _pick(g, edge_mask.nonzero().squeeze(1), 2)
    if not ids:
        return None, None, None
    if int(torch.randint(2, (1,), generator=g)):  # by pairs: every live parallel edge of a pair goes
        pairs = store.edge_index[:, ids].t().tolist()
        req = store.delete_edges(pairs, layout="pairs")
        ids = [e for e in edge_mask.nonzero().squeeze(1).tolist() if store.edge_index[:, e].tolist() in pairs]
    else:
        req = store.delete_edges(ids)
    return req, store.edge_index[:, ids].reshape(-1).tolist(), ids


def req_nodes(store, edge_mask, node_mask, g):
    nodes = _pick(g, node_mask.nonzero().squeeze(1), 2)
    if not nodes:
        return None, None, None
    inc = incident_live(store, edge_mask, nodes)
    req = store.delete_nodes(nodes)
    return req, nodes + store.edge_index[:, inc].reshape(-1).tolist(), inc.tolist()


def req_features(store, edge_mask, node_mask, g):
    live = node_mask.nonzero().squeeze(1)
    if store.feature_mask is not None:  # nodes with every feature still present
        live = live[store.feature_mask[live].all(1)]
    nodes = _pick(g, live, 2)
    if not nodes:
        return None, None, None
    req = store.delete_node_features(nodes)
    return req, nodes, []


def req_edge_class(store, edge_mask, node_mask, g):
    classes = torch.unique(store.edge_type[edge_mask]).tolist()
    if not classes:
        return None, None, None
    c = classes[int(torch.randint(len(classes), (1,), generator=g))]
    ids = ((store.edge_type == c) & edge_mask).nonzero().squeeze(1)
    req = store.delete_edge_class(c)
    return req, store.edge_index[:, ids].reshape(-1).tolist(), ids.tolist()


def req_node_class(store, edge_mask, node_mask, g):
    classes = torch.unique(store.y[node_mask]).tolist()
    if not classes:
        return None, None, None
    c = classes[int(torch.randint(len(classes), (1,), generator=g))]
    nodes = ((store.y == c) & node_mask).nonzero().squeeze(1).tolist()
    inc = incident_live(store, edge_mask, nodes)
    req = store.delete_node_class(c)
    return req, nodes + store.edge_index[:, inc].reshape(-1).tolist(), inc.tolist()


KINDS = [req_edges, req_nodes, req_features, req_edge_class, req_node_class]


@pytest.mark.parametrize("directed", [False, True], ids=["undirected", "directed"])
@pytest.mark.parametrize("seed", range(12))
def test_hops_and_subgraph_match_networkx(seed, directed):
    num_hops = [2, 1, 3, 0][seed % 4]
    store = random_store(seed, directed=directed, num_hops=num_hops, num_nodes=12, num_edges=20)
    g = torch.Generator().manual_seed(1000 + seed)
    done = 0
    for step in range(8):
        kind = KINDS[int(torch.randint(len(KINDS), (1,), generator=g))] if step >= 3 else KINDS[step]
        if kind is req_node_class and step < 6:  # would delete a whole class early; keep graphs alive longer
            kind = req_edges
        if check_request(store, kind, g) is not None:
            done += 1
    assert done >= 4


@pytest.mark.parametrize("directed", [False, True], ids=["undirected", "directed"])
@pytest.mark.parametrize("seed", range(6))
def test_neighbourhoods_read_late_are_those_before_the_request(seed, directed):
    """Registering computes no neighbourhood; read after later requests (which delete more edges and nodes)
    and after a save and reopen, each request's is still the one on the live graph just before it."""
    store = random_store(seed, directed=directed, num_hops=2, num_nodes=12, num_edges=20)
    g = torch.Generator().manual_seed(2000 + seed)
    expected = []
    for step in range(8):
        kind = KINDS[int(torch.randint(len(KINDS) - 1, (1,), generator=g))] if step >= 3 else KINDS[step]
        edge_mask = store.edge_mask.clone()
        G = nx_graph(store, edge_mask)
        req, seeds, _ = kind(store, edge_mask, store.node_mask.clone(), g)
        if req is None:
            continue
        assert not req.neighbourhood_known and "affected per hop" not in req.summary()
        expect = nx_hops(G, seeds, store.num_hops)
        within = set(v for layer in expect for v in layer)
        sub = [e for e in edge_mask.nonzero().squeeze(1).tolist()
               if int(store.edge_index[0, e]) in within and int(store.edge_index[1, e]) in within]
        expected.append((req, expect, sub))
    assert len(expected) >= 4
    for req, expect, sub in expected:
        assert [h.tolist() for h in req.hops] == expect and req.subgraph_edge_ids.tolist() == sub
        assert req.neighbourhood_known and "affected per hop" in req.summary()


def test_neighbourhoods_after_reopen_and_of_compacted_records(tmp_path):
    import graphunlearn as gu

    store = random_store(3, directed=False, num_hops=2, num_nodes=12, num_edges=20)
    store.save(tmp_path / "s")
    a = store.delete_edges(store.live_edge_ids()[:2])
    b = store.delete_nodes(store.live_node_ids()[:1])
    store.close()
    reopened = gu.GraphStore.open(tmp_path / "s")
    for mine, theirs in zip((a, b), reopened.requests):
        assert not theirs.neighbourhood_known
        assert [h.tolist() for h in theirs.hops] == [h.tolist() for h in mine.hops]
        assert theirs.subgraph_edge_ids.tolist() == mine.subgraph_edge_ids.tolist()
    kept = reopened.requests[0]
    fresh = reopened.delete_edges(reopened.live_edge_ids()[:1])
    reopened.compact()
    assert reopened.requests[0].hops == ()  # the store's own record: redacted, nothing left to compute
    with pytest.raises(RuntimeError, match="compacted"):
        fresh.hops  # noqa: B018 - a record kept from before compact() cannot compute on the new ids
    assert kept.neighbourhood_known  # read before compaction: kept as it was
    reopened.close()


@pytest.mark.parametrize("directed", [False, True], ids=["undirected", "directed"])
def test_hops_on_a_path_are_exact_distances(directed):
    """A path 0 -> 1 -> ... -> 7: distances are plain to read, and a directed path only reaches forward."""
    from torch_geometric.data import Data

    import graphunlearn as gu

    ei = torch.stack([torch.arange(7), torch.arange(1, 8)])
    if not directed:
        ei = torch.cat([ei, ei.flip(0)], 1)
    s = gu.GraphStore(Data(x=torch.ones(8, 1), edge_index=ei, num_nodes=8), num_hops=3)
    assert s.undirected is not directed
    r = s.delete_node_features([4])
    if directed:
        assert [h.tolist() for h in r.hops] == [[4], [5], [6], [7]]
    else:
        assert [h.tolist() for h in r.hops] == [[4], [3, 5], [2, 6], [1, 7]]
    # cut the path at 5-6: the neighbourhood of node 4 stops there on the live graph
    s.delete_edges([(5, 6)])
    r = s.delete_node_features([3])
    if directed:
        assert [h.tolist() for h in r.hops] == [[3], [4], [5], []]
    else:
        assert [h.tolist() for h in r.hops] == [[3], [2, 4], [1, 5], [0]]


def test_large_seed_set_on_bigger_graph():
    """One larger graph (several hundred nodes), every kind once, against networkx."""
    for directed in (False, True):
        store = random_store(7, directed=directed, num_hops=2, num_nodes=300, num_edges=900)
        g = torch.Generator().manual_seed(7)
        for kind in KINDS[:4]:
            assert check_request(store, kind, g) is not None
