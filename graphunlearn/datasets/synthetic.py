"""A seeded stochastic-block-model graph with class-correlated features: the embedded default dataset."""

from __future__ import annotations

import torch
from torch_geometric.data import Data

from ..graph import to_bidirected, undirected_unique
from . import _check


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
    fn = "synthetic"
    num_nodes, num_classes = _check.integer(fn, "num_nodes", num_nodes), _check.integer(fn, "num_classes", num_classes)
    num_features, seed = _check.integer(fn, "num_features", num_features), _check.seed(fn, seed)
    avg_degree = _check.real(fn, "avg_degree", avg_degree, 0, float("inf"), high_open=True)
    homophily = _check.real(fn, "homophily", homophily, 0, 1)
    signal = _check.real(fn, "signal", signal, float("-inf"), float("inf"), True, True)
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


def synthetic_user_item(num_users: int = 300, num_items: int = 200, num_groups: int = 6,
                        interactions_per_user: int = 15, affinity: float = 0.8, seed: int = 0) -> Data:
    r"""A seeded user-item graph with taste groups, in the layout of the real user-item loaders.

    Items are split into ``num_groups`` groups (``item_x`` is the one-hot group, like MovieLens' genre
    columns); each user favours one group and draws ``interactions_per_user`` distinct items, each from the
    favoured group with probability ``affinity`` and otherwise uniformly (from ``4 x interactions_per_user``
    draws, so a user whose draws repeat a lot, as with a tiny favoured group, ends with fewer). Users are
    nodes ``0..U-1``, items ``U..U+I-1``; ``split_edge["train_pos"]`` holds every interaction
    (``user_item_split`` makes the test set), ``edge_index`` both directions.
    """
    fn = "synthetic_user_item"
    num_users, num_items = _check.integer(fn, "num_users", num_users), _check.integer(fn, "num_items", num_items)
    num_groups = _check.integer(fn, "num_groups", num_groups)
    interactions_per_user = _check.integer(fn, "interactions_per_user", interactions_per_user)
    affinity, seed = _check.real(fn, "affinity", affinity, 0, 1), _check.seed(fn, seed)
    if num_users < 1 or num_items < 1 or not 1 <= num_groups <= num_items:
        raise ValueError(f"synthetic_user_item: need num_users >= 1 and 1 <= num_groups <= num_items, got "
                         f"num_users={num_users}, num_items={num_items}, num_groups={num_groups}")
    if not 1 <= interactions_per_user <= num_items or not 0.0 <= affinity <= 1.0:
        raise ValueError(f"synthetic_user_item: need 1 <= interactions_per_user <= num_items and affinity in "
                         f"[0, 1], got {interactions_per_user}, {affinity}")
    g = torch.Generator().manual_seed(seed)
    group = torch.arange(num_items) % num_groups
    group = group[torch.randperm(num_items, generator=g)]
    members = torch.sort(group, stable=True).indices
    sizes = torch.bincount(group, minlength=num_groups)
    starts = torch.cumsum(sizes, 0) - sizes
    taste = torch.randint(num_groups, (num_users,), generator=g)
    draws = 4 * interactions_per_user
    users = torch.arange(num_users).repeat_interleave(draws)
    fav = torch.rand(users.numel(), generator=g) < affinity
    t = taste[users]
    inside = members[starts[t] + (torch.rand(users.numel(), generator=g) * sizes[t]).long()]
    items = torch.where(fav, inside, torch.randint(num_items, (users.numel(),), generator=g))
    keys = torch.unique(users * num_items + items)  # sorted: by user, then item
    u, i = keys // num_items, keys % num_items
    order = torch.argsort(u * 2.0 + torch.rand(u.numel(), generator=g))  # random order within each user
    counts = torch.bincount(u, minlength=num_users)
    rank = torch.empty_like(order)
    rank[order] = torch.arange(order.numel()) - (torch.cumsum(counts, 0) - counts)[u[order]]
    keep = rank < interactions_per_user
    pairs = torch.stack([u[keep], i[keep] + num_users])
    data = Data(edge_index=torch.cat([pairs, pairs.flip(0)], 1), num_nodes=num_users + num_items)
    data.node_type = torch.cat([torch.zeros(num_users, dtype=torch.long), torch.ones(num_items, dtype=torch.long)])
    data.num_users, data.num_items, data.name = num_users, num_items, "synthetic-rec"
    data.item_x = torch.nn.functional.one_hot(group, num_groups).float()
    data.item_group_names = [f"group {k}" for k in range(num_groups)]
    data.split_edge = {"train_pos": pairs, "test_pos": torch.empty(2, 0, dtype=torch.long)}
    return data
