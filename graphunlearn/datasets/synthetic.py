"""A seeded stochastic-block-model graph with class-correlated features: the embedded default dataset."""

from __future__ import annotations

import torch
from torch_geometric.data import Data

from ..graph import to_bidirected, undirected_unique


def synthetic(num_nodes: int = 1000, num_classes: int = 5, num_features: int = 32, avg_degree: float = 8.0,
              homophily: float = 0.8, signal: float = 1.0, seed: int = 0) -> Data:
    r"""An undirected planted-partition (stochastic block model) graph.

    Nodes are split evenly into ``num_classes`` blocks. ``num_nodes * avg_degree / 2`` endpoint pairs are
    drawn: the first endpoint uniformly, the second from the same block with probability ``homophily``
    and otherwise from the whole graph; self loops and repeats are dropped. Features are a class centroid
    (standard normal, scaled by ``signal``) plus standard normal noise.

    Args:
        num_nodes: nodes (default 1000).
        num_classes: blocks / labels (default 5).
        num_features: feature size (default 32).
        avg_degree: target mean degree before de-duplication (default 8).
        homophily: probability that a drawn edge stays inside its block (default 0.8).
        signal: centroid scale against unit noise (default 1.0).
        seed: random seed (default 0).

    Returns a ``Data`` with ``x`` [N, F], ``edge_index`` (both directions), ``y`` [N].
    """
    if num_nodes < 2 or num_classes < 1 or num_classes > num_nodes:
        raise ValueError(f"synthetic: need num_nodes >= 2 and 1 <= num_classes <= num_nodes, got "
                         f"num_nodes={num_nodes}, num_classes={num_classes}")
    if num_features < 1 or not avg_degree >= 0:
        raise ValueError(f"synthetic: need num_features >= 1 and avg_degree >= 0, got num_features={num_features}, "
                         f"avg_degree={avg_degree}")
    if not 0.0 <= homophily <= 1.0:
        raise ValueError(f"synthetic: homophily must lie in [0, 1], got {homophily}")
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(num_nodes) % num_classes
    y = y[torch.randperm(num_nodes, generator=g)]
    members = torch.sort(y, stable=True).indices  # node ids grouped by class
    sizes = torch.bincount(y, minlength=num_classes)
    starts = torch.cumsum(sizes, 0) - sizes
    m = int(num_nodes * avg_degree / 2)
    u = torch.randint(num_nodes, (m,), generator=g)
    same = torch.rand(m, generator=g) < homophily
    within = members[starts[y[u]] + (torch.rand(m, generator=g) * sizes[y[u]]).long()]
    anywhere = torch.randint(num_nodes, (m,), generator=g)
    v = torch.where(same, within, anywhere)
    keep = u != v
    edges, _, _ = undirected_unique(torch.stack([u[keep], v[keep]]), num_nodes)
    centroids = torch.randn(num_classes, num_features, generator=g) * signal
    x = centroids[y] + torch.randn(num_nodes, num_features, generator=g)
    data = Data(x=x, edge_index=to_bidirected(edges), y=y, num_nodes=num_nodes)
    data.name = "synthetic"
    return data
