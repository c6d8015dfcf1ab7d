"""Shared helpers for the store tests: tiny hand-built graphs, random graphs, snapshots and oracles."""

from __future__ import annotations

import networkx as nx
import torch
from torch import Tensor
from torch_geometric.data import Data

import graphunlearn as gu
from graphunlearn.graph import undirected_unique

# ----------------------------------------------------------------------------------------------- tiny graphs
# Undirected graph A, 5 nodes. Store edge ids follow the canonical (u <= v) order:
#   e0 (0,1)  e1 (0,2)  e2 (1,2)  e3 (2,3)  e4 (3,4)
#
#      0 --- 1
#       \   /
#        \ /
#         2 --- 3 --- 4
A_EDGES = [(0, 1), (0, 2), (1, 2), (2, 3), (3, 4)]
A_ETYPE = [0, 1, 0, 1, 2]
A_WEIGHT = [1.0, 2.0, 3.0, 4.0, 5.0]
A_Y = [0, 1, 0, 2, 1]
A_TRAIN = [True, False, True, False, True]

# Directed graph B, 5 nodes; store edge ids are the input column order:
#   e0 0->1  e1 1->0  e2 1->2  e3 2->3  e4 3->4  e5 4->2
B_EDGES = [(0, 1), (1, 0), (1, 2), (2, 3), (3, 4), (4, 2)]
B_ETYPE = [0, 0, 1, 1, 2, 2]
B_WEIGHT = [0.5, 1.0, 1.5, 2.0, 2.5, 3.0]


def features(n: int, f: int = 3) -> Tensor:
    """x[i] = [f*i + 1, ..., f*i + f]: every value distinct and non-zero."""
    return torch.arange(1, n * f + 1, dtype=torch.float32).reshape(n, f)


def graph_a(**extra) -> Data:
    """Graph A given in both directions, columns scrambled, with per-edge attributes duplicated to match."""
    canon = torch.tensor(A_EDGES).t()
    both = torch.cat([canon, canon.flip(0)], 1)
    perm = torch.tensor([7, 2, 9, 0, 5, 3, 8, 1, 6, 4])
    etype = torch.tensor(A_ETYPE * 2)[perm]
    weight = torch.tensor(A_WEIGHT * 2)[perm]
    data = Data(x=features(5), edge_index=both[:, perm], y=torch.tensor(A_Y), edge_type=etype, edge_weight=weight,
                train_mask=torch.tensor(A_TRAIN), num_nodes=5)
    for k, v in extra.items():
        data[k] = v
    return data


def graph_b() -> Data:
    return Data(x=features(5), edge_index=torch.tensor(B_EDGES).t(), y=torch.tensor(A_Y),
                edge_type=torch.tensor(B_ETYPE), edge_weight=torch.tensor(B_WEIGHT),
                train_mask=torch.tensor(A_TRAIN), num_nodes=5)


def store_a(**kw) -> gu.GraphStore:
    return gu.GraphStore(graph_a(), **kw)


def store_b(**kw) -> gu.GraphStore:
    return gu.GraphStore(graph_b(), undirected=False, **kw)


# ----------------------------------------------------------------------------------------------- random graphs
def random_graph(seed: int, *, directed: bool, num_nodes: int = 10, num_edges: int = 18, num_features: int = 4,
                 classes: int = 3, weighted: bool = True) -> Data:
    """A small random graph (self loops and, when directed, parallel edges possible) with every attribute."""
    g = torch.Generator().manual_seed(seed)
    src = torch.randint(num_nodes, (num_edges,), generator=g)
    dst = torch.randint(num_nodes, (num_edges,), generator=g)
    etype = torch.randint(classes, (num_edges,), generator=g)
    weight = torch.rand(num_edges, generator=g) + 0.5
    ei = torch.stack([src, dst])
    if not directed:  # canonicalise so that attributes agree in both directions, then give both directions
        ei, first, _ = undirected_unique(ei, num_nodes)
        etype, weight = etype[first], weight[first]
        nonloop = ei[0] != ei[1]
        ei = torch.cat([ei, ei[:, nonloop].flip(0)], 1)
        etype = torch.cat([etype, etype[nonloop]])
        weight = torch.cat([weight, weight[nonloop]])
    data = Data(x=torch.randn(num_nodes, num_features, generator=g) + 3.0, edge_index=ei,
                y=torch.randint(classes, (num_nodes,), generator=g), edge_type=etype, num_nodes=num_nodes,
                train_mask=torch.rand(num_nodes, generator=g) < 0.5)
    if weighted:
        data.edge_weight = weight
    return data


def random_store(seed: int, *, directed: bool, num_hops: int = 2, **kw) -> gu.GraphStore:
    return gu.GraphStore(random_graph(seed, directed=directed, **kw), undirected=not directed, num_hops=num_hops)


# ----------------------------------------------------------------------------------------------- snapshots
def snapshot(store: gu.GraphStore) -> dict:
    """Everything a refused request must leave alone (builds the live caches first, so they are compared too)."""
    live = store.live()
    snap = {
        "node_mask": store.node_mask.clone(), "edge_mask": store.edge_mask.clone(),
        "feature_mask": None if store.feature_mask is None else store.feature_mask.clone(),
        "node_deleted_by": store.node_deleted_by.clone(), "edge_deleted_by": store.edge_deleted_by.clone(),
        "next_id": store._next_id, "request_ids": [r.id for r in store.requests],
        "request_objs": [id(r) for r in store.requests],
        "mask": live.mask.clone(), "mask_t": live.mask_t.clone(), "gcn_deg": live.gcn_deg.clone(),
        "x": None if live.x is None else live.x.clone(), "live_edge_index": store.live_edge_index().clone(),
        "edge_index": store.edge_index.clone(),
    }
    if store._journal is not None:
        snap["journal"] = journal_rows(store)
    return snap


def journal_rows(store: gu.GraphStore) -> list[tuple]:
    return [(i, k, s, p) for i, k, s, _c, _sum, p in store._journal.rows()]


def assert_same_snapshot(before: dict, after: dict) -> None:
    assert before.keys() == after.keys()
    for key, a in before.items():
        b = after[key]
        if isinstance(a, Tensor):
            assert isinstance(b, Tensor) and a.dtype == b.dtype and torch.equal(a, b), f"{key} changed"
        else:
            assert a == b, f"{key} changed: {a!r} -> {b!r}"


# ----------------------------------------------------------------------------------------------- oracles
def pairs_of(ei: Tensor) -> list[tuple[int, int]]:
    return sorted(map(tuple, ei.t().tolist()))


def live_pairs_from_csr(store: gu.GraphStore) -> tuple[list, list]:
    """Directed (src, dst) pairs that the live CSR and the live CSC carry, read slot by slot."""
    live = store.live()
    n = store.num_nodes
    dst = torch.repeat_interleave(torch.arange(n), live.rowptr.diff())
    src_t = torch.repeat_interleave(torch.arange(n), live.rowptr_t.diff())
    csr = torch.stack([live.col[live.mask], dst[live.mask]])
    csc = torch.stack([src_t[live.mask_t], live.col_t[live.mask_t]])
    return pairs_of(csr), pairs_of(csc)


def expected_live_directed(store: gu.GraphStore, edge_mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """(src, dst) [2, S] and store edge id [S] of every live message, computed from edge_mask alone."""
    mask = store.edge_mask if edge_mask is None else edge_mask
    ids = mask.nonzero().squeeze(1)
    u, v = store.edge_index[:, ids]
    if not store.undirected:
        return torch.stack([u, v]), ids
    nl = u != v
    return torch.stack([torch.cat([u, v[nl]]), torch.cat([v, u[nl]])]), torch.cat([ids, ids[nl]])


def nx_graph(store: gu.GraphStore, edge_mask: Tensor) -> nx.Graph:
    G = nx.Graph() if store.undirected else nx.DiGraph()
    G.add_nodes_from(range(store.num_nodes))
    G.add_edges_from(store.edge_index[:, edge_mask].t().tolist())
    return G


def nx_hops(G: nx.Graph, seeds, num_hops: int) -> list[list[int]]:
    dist = nx.multi_source_dijkstra_path_length(G, set(int(s) for s in seeds), cutoff=num_hops)
    return [sorted(v for v, d in dist.items() if d == h) for h in range(num_hops + 1)]


def die(store: gu.GraphStore) -> None:
    """What a process death does to a saved store: its files stay as they are, its locks are released."""
    store._journal.conn.close()
    store._lock.release()


def folder_files(path) -> list[str]:
    """The files a saved store's folder holds when nothing is left over: snapshot, journal, two locks."""
    from graphunlearn.store import STATE_FILE, journal_path

    return sorted([journal_path(path).name, STATE_FILE, "state.lock", "writer.lock"])
