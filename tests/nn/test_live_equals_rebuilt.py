"""The central guarantee: a model run on the store's live view equals the same PyG model run on a graph
rebuilt without the deleted elements, for every request kind and for sequences of requests."""

from __future__ import annotations

import pytest
import torch
import torch_geometric.nn as pyg
from torch import nn
from torch_geometric.data import Data

import graphunlearn as gu
from graphunlearn.graph import to_bidirected, undirected_unique
from tests.conftest import assert_close

HIDDEN, OUT = 16, 8


def graph(weighted: bool = False, directed: bool = False, seed: int = 0) -> Data:
    data = gu.datasets.synthetic(num_nodes=150, num_classes=4, num_features=12, avg_degree=6, seed=seed)
    g = torch.Generator().manual_seed(seed)
    edges = undirected_unique(data.edge_index, data.num_nodes)[0]
    etype = torch.randint(3, (edges.size(1),), generator=g)
    weight = torch.rand(edges.size(1), generator=g) + 0.25
    if directed:  # keep a random direction of each edge, and both for a third of them
        flip = torch.rand(edges.size(1), generator=g) < 0.5
        both = torch.rand(edges.size(1), generator=g) < 0.33
        one = torch.where(flip, edges.flip(0), edges)
        data.edge_index = torch.cat([one, one[:, both].flip(0)], 1)
        data.edge_type = torch.cat([etype, etype[both]])
        if weighted:
            data.edge_weight = torch.cat([weight, weight[both]])
        return data
    data.edge_index = to_bidirected(edges)
    data.edge_type = torch.cat([etype, etype])
    if weighted:
        data.edge_weight = torch.cat([weight, weight])
    return data


def pair_of_models(kind: str, in_channels: int, seed: int = 0):
    """The PyG model and graphunlearn's deletion-aware twin with the same weights."""
    torch.manual_seed(seed)

    def mlp(i, o):
        return nn.Sequential(nn.Linear(i, o), nn.ReLU(), nn.Linear(o, o))

    if kind == "gcn":
        ref = [pyg.GCNConv(in_channels, HIDDEN), pyg.GCNConv(HIDDEN, OUT)]
        ours = [gu.nn.GCNConv(in_channels, HIDDEN), gu.nn.GCNConv(HIDDEN, OUT)]
    elif kind == "sage":
        ref = [pyg.SAGEConv(in_channels, HIDDEN), pyg.SAGEConv(HIDDEN, OUT)]
        ours = [gu.nn.SAGEConv(in_channels, HIDDEN), gu.nn.SAGEConv(HIDDEN, OUT)]
    else:
        ref = [pyg.GINConv(mlp(in_channels, HIDDEN), train_eps=True), pyg.GINConv(mlp(HIDDEN, OUT))]
        ours = [gu.nn.GINConv(mlp(in_channels, HIDDEN), train_eps=True), gu.nn.GINConv(mlp(HIDDEN, OUT))]
    ref, ours = nn.ModuleList(ref), nn.ModuleList(ours)
    with torch.no_grad():
        for p in ref.parameters():  # non-zero biases and eps, so every parameter matters
            p.add_(0.1 * torch.randn_like(p))
    ours.load_state_dict(ref.state_dict())
    return ref, ours


def run_pyg(convs, data: Data, kind: str):
    x = data.x
    for i, conv in enumerate(convs):
        if kind == "gcn" and data.get("edge_weight") is not None:
            x = conv(x, data.edge_index, data.edge_weight)
        else:
            x = conv(x, data.edge_index)
        x = x.relu() if i == 0 else x
    return x


def run_live(convs, store: gu.GraphStore):
    view = store.live()
    x = view.x
    for i, conv in enumerate(convs):
        x = conv(x, view)
        x = x.relu() if i == 0 else x
    return x


def check(store: gu.GraphStore, kind: str):
    ref, ours = pair_of_models(kind, store.num_features)
    kept = store.retained()
    expected = run_pyg(ref, kept, kind)
    actual = run_live(ours, store)[kept.orig_node_id]
    assert_close(actual, expected, atol=1e-5, rtol=1e-4, what=f"{kind} live vs rebuilt")
    return expected


REQUESTS = {
    "edges": lambda s: s.delete_edges(torch.arange(0, s.num_edges, 7)),
    # for undirected graphs, name the edges by their reverse direction
    "edge_pairs": lambda s: s.delete_edges([tuple(p[::-1] if s.undirected else p)
                                            for p in s.edge_index[:, 3:30:4].t().tolist()]),
    "nodes": lambda s: s.delete_nodes([0, 5, 17, 99]),
    "edge_class": lambda s: s.delete_edge_class(1),
    "node_class": lambda s: s.delete_node_class(2),
    "node_features": lambda s: s.delete_node_features([1, 2, 3, 50], columns=[0, 4, 11]),
    "all_features": lambda s: s.delete_node_features(torch.arange(0, 150, 3)),
}


@pytest.mark.parametrize("kind", ["gcn", "sage", "gin"])
@pytest.mark.parametrize("request_kind", list(REQUESTS))
@pytest.mark.parametrize("variant", ["plain", "weighted", "directed"])
def test_each_request_kind(kind, request_kind, variant):
    data = graph(weighted=variant == "weighted", directed=variant == "directed")
    store = gu.GraphStore(data, undirected=False if variant == "directed" else None)
    before = check(store, kind)
    REQUESTS[request_kind](store)
    after = check(store, kind)
    if request_kind not in ("nodes", "node_class"):
        assert not torch.allclose(before, after), "the deletion did not change the model's output"


@pytest.mark.parametrize("kind", ["gcn", "sage", "gin"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sequences_of_requests(kind, seed):
    data = graph(weighted=seed == 1, seed=seed)
    store = gu.GraphStore(data)
    g = torch.Generator().manual_seed(seed)
    for step in range(6):
        live_nodes = store.node_mask.nonzero().squeeze(1)
        live_edges = store.edge_mask.nonzero().squeeze(1)
        pick = int(torch.randint(4, (1,), generator=g))
        if pick == 0 and live_edges.numel() > 5:
            store.delete_edges(live_edges[torch.randperm(live_edges.numel(), generator=g)[:5]])
        elif pick == 1:
            store.delete_nodes(live_nodes[torch.randperm(live_nodes.numel(), generator=g)[:3]])
        elif pick == 2:
            cols = torch.randperm(store.num_features, generator=g)[:2]
            nodes = live_nodes[torch.randperm(live_nodes.numel(), generator=g)[:4]]
            if store.feature_mask is not None:  # skip nodes whose chosen columns are already gone
                nodes = nodes[store.feature_mask[nodes][:, cols].all(1)]
            if nodes.numel():
                store.delete_node_features(nodes, columns=cols)
        else:
            classes = torch.unique(store.edge_type[store.edge_mask])
            if classes.numel():
                store.delete_edge_class(int(classes[step % classes.numel()]))
        check(store, kind)


def test_deleted_values_cannot_leak():
    """Changing what was deleted (features of deleted nodes, deleted feature values) changes nothing live."""
    data = graph()
    store = gu.GraphStore(data)
    store.delete_nodes([3, 4])
    store.delete_node_features([10, 11], columns=[0, 1])
    _, ours = pair_of_models("gcn", store.num_features)
    out = run_live(ours, store)
    poisoned = data.clone()
    poisoned.x[[3, 4]] = float("nan")
    poisoned.x[10:12, 0:2] = 1e6
    store2 = gu.GraphStore(poisoned)
    store2.delete_nodes([3, 4])
    store2.delete_node_features([10, 11], columns=[0, 1])
    assert torch.equal(run_live(ours, store2), out)
