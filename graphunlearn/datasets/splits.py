"""Splits as ../PROTOCOL (shared) defines them: link splits, in/out forget sets, node and user-item splits."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor
from torch_geometric.data import Data

from ..graph import build_csr, k_hop_layers, to_bidirected, undirected_unique
from . import _check

PROTOCOL_SEEDS = (42, 21, 13, 87, 100)


@dataclass
class LinkSplit:
    """A link-prediction split. ``train_data`` holds the training edges (both directions) and every node;
    the pair tensors are [2, K], one direction per edge."""

    train_data: Data
    val_pos: Tensor
    val_neg: Tensor
    test_pos: Tensor
    test_neg: Tensor
    seed: int | None
    official: bool = False

    @property
    def train_pos(self) -> Tensor:
        """Training edges, once each (``u <= v``)."""
        return undirected_unique(self.train_data.edge_index, self.train_data.num_nodes)[0]

    def __repr__(self) -> str:
        return (f"LinkSplit(train={self.train_pos.size(1)}, val={self.val_pos.size(1)}+{self.val_neg.size(1)}, "
                f"test={self.test_pos.size(1)}+{self.test_neg.size(1)}, seed={self.seed}, official={self.official})")


def _with_edges(data: Data, edges: Tensor) -> Data:
    """A shallow copy of ``data``'s node-level content with ``edges`` ([2, E], one direction) as its graph."""
    out = Data(edge_index=to_bidirected(edges), num_nodes=data.num_nodes)
    for key in data.keys():
        if key in ("edge_index", "split_edge", "num_nodes") or data.is_edge_attr(key):
            continue
        out[key] = data[key]
    return out


def sample_negatives(num_nodes: int, num: int, exclude: Tensor, generator: torch.Generator,
                     bipartite: tuple[int, int] | None = None) -> Tensor:
    """``num`` distinct node pairs [2, num] that are neither self loops nor (in either direction) in ``exclude``.

    With ``bipartite=(num_users, num_items)`` pairs run from users to items (items numbered after users).
    """
    if bipartite is not None and bipartite[0] + bipartite[1] > num_nodes:
        raise ValueError(f"sample_negatives: {bipartite[0]} users + {bipartite[1]} items exceed num_nodes={num_nodes}")
    known = exclude.long()
    known_keys = torch.unique(torch.cat([known[0] * num_nodes + known[1], known[1] * num_nodes + known[0]]))
    # the excluded pairs that take a slot of the sample space: distinct, no self loops, user-item when bipartite
    lo, hi = torch.minimum(known[0], known[1]), torch.maximum(known[0], known[1])
    in_space = lo != hi
    if bipartite is not None:
        in_space &= (lo < bipartite[0]) & (hi >= bipartite[0]) & (hi < bipartite[0] + bipartite[1])
    taken = torch.unique(lo[in_space] * num_nodes + hi[in_space]).numel()
    if bipartite is None:
        capacity = num_nodes * (num_nodes - 1) // 2 - taken
    else:
        capacity = bipartite[0] * bipartite[1] - taken
    if num > capacity:
        raise ValueError(f"sample_negatives: asked for {num} negative pairs but only {capacity} non-edges exist")
    chosen = torch.empty(0, dtype=torch.long)
    while chosen.numel() < num:
        draw = max(2 * (num - chosen.numel()), 1024)
        if bipartite is None:
            u = torch.randint(num_nodes, (draw,), generator=generator)
            v = torch.randint(num_nodes, (draw,), generator=generator)
            u, v = torch.minimum(u, v), torch.maximum(u, v)
        else:
            u = torch.randint(bipartite[0], (draw,), generator=generator)
            v = bipartite[0] + torch.randint(bipartite[1], (draw,), generator=generator)
        keys = u * num_nodes + v
        ok = (u != v) & ~torch.isin(keys, known_keys) & ~torch.isin(keys, chosen)
        keys = keys[ok]
        # keep the first occurrence of each key, in draw order, so the result depends only on the seed
        uniq, inv = torch.unique(keys, return_inverse=True)
        first = torch.full((uniq.numel(),), keys.numel(), dtype=torch.long).scatter_reduce_(
            0, inv, torch.arange(keys.numel()), reduce="amin")
        chosen = torch.cat([chosen, keys[torch.sort(first).values]])[:num]
    return torch.stack([chosen // num_nodes, chosen % num_nodes])


def link_split(data: Data, val_ratio: float = 0.05, test_ratio: float = 0.05, seed: int = 42,
               official: bool = True) -> LinkSplit:
    """Split an undirected graph's edges into train / validation / test, with seeded negatives.

    Each edge is kept once (``u <= v``) for splitting; validation and test get as many negative pairs as
    positives, none of them a known edge. Where ``data.split_edge`` holds an official split (OGB) and
    ``official`` is true, that split is used as it is.
    """
    _check.instance("link_split", "data", data, Data, "a torch_geometric.data.Data")
    seed = _check.seed("link_split", seed)
    val_ratio, test_ratio = _check.number("link_split", "val_ratio", val_ratio), _check.number(
        "link_split", "test_ratio", test_ratio)
    if official and isinstance(data.get("split_edge"), dict) and "test_neg" in data.split_edge:
        s = data.split_edge
        train = undirected_unique(s["train_pos"], data.num_nodes)[0]
        return LinkSplit(_with_edges(data, train), s["val_pos"], s["val_neg"], s["test_pos"], s["test_neg"],
                         seed=None, official=True)
    if not (0 <= val_ratio < 1 and 0 <= test_ratio < 1 and val_ratio + test_ratio < 1):
        raise ValueError(f"link_split: ratios must be in [0, 1) and sum below 1, got val={val_ratio}, "
                         f"test={test_ratio}")
    edges, _, _ = undirected_unique(data.edge_index, data.num_nodes)
    edges = edges[:, edges[0] != edges[1]]
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(edges.size(1), generator=g)
    n_val, n_test = int(val_ratio * edges.size(1)), int(test_ratio * edges.size(1))
    if (val_ratio > 0 and n_val == 0) or (test_ratio > 0 and n_test == 0) or n_val + n_test >= edges.size(1):
        raise ValueError(f"link_split: {edges.size(1)} undirected edges give {n_val} validation, {n_test} test and "
                         f"{edges.size(1) - n_val - n_test} training edges at val_ratio={val_ratio}, "
                         f"test_ratio={test_ratio}; each needs at least one (a larger graph or larger ratios)")
    val, test, train = perm[:n_val], perm[n_val:n_val + n_test], perm[n_val + n_test:]
    neg = sample_negatives(data.num_nodes, n_val + n_test, edges, g)
    return LinkSplit(_with_edges(data, edges[:, train]), edges[:, val], neg[:, :n_val], edges[:, test],
                     neg[:, n_val:], seed=seed)


def enclosing_nodes(edge_index: Tensor, num_nodes: int, seeds: Tensor, num_hops: int = 2) -> Tensor:
    """Bool mask [N] of the nodes within ``num_hops`` of ``seeds`` on ``edge_index`` taken as undirected."""
    both = to_bidirected(undirected_unique(edge_index, num_nodes)[0])
    csr = build_csr(both[0], both[1], torch.arange(both.size(1)), num_nodes)
    mask = torch.zeros(num_nodes, dtype=torch.bool)
    mask[torch.cat(k_hop_layers(csr.rowptr, csr.col, None, seeds, num_hops, num_nodes))] = True
    return mask


def forget_edges(split: LinkSplit, fraction: float, setting: str = "in", seed: int = 0, num_hops: int = 2) -> Tensor:
    """Sample the forget set Df [2, K] (``u <= v``) from training edges, as a fraction of them.

    ``setting="in"``: edges inside the ``num_hops``-hop enclosing subgraph of the test edges' endpoints (both
    endpoints within it; the harder case); ``"out"``: edges outside it. Neighbourhoods are computed on the
    undirected training graph.
    """
    _check.instance("forget_edges", "split", split, LinkSplit, "a LinkSplit (from link_split)")
    if setting not in ("in", "out"):
        raise ValueError(f"forget_edges: setting must be 'in' or 'out', got {setting!r}")
    fraction = _check.real("forget_edges", "fraction", fraction, 0, 1, low_open=True, high_open=True)
    seed, num_hops = _check.seed("forget_edges", seed), _check.integer("forget_edges", "num_hops", num_hops, 0)
    train = split.train_pos
    n = split.train_data.num_nodes
    inside = enclosing_nodes(split.train_data.edge_index, n, split.test_pos.reshape(-1), num_hops)
    candidates = (inside[train[0]] & inside[train[1]]).nonzero().squeeze(1)
    if setting == "out":
        candidates = (~(inside[train[0]] & inside[train[1]])).nonzero().squeeze(1)
    num = max(1, round(fraction * train.size(1)))
    if num > candidates.numel():
        raise ValueError(f"forget_edges: {num} edges ({fraction:.2%} of {train.size(1)}) requested but only "
                         f"{candidates.numel()} training edges are {setting!r} the {num_hops}-hop test subgraph")
    g = torch.Generator().manual_seed(seed)
    pick = candidates[torch.randperm(candidates.numel(), generator=g)[:num]]
    return train[:, torch.sort(pick).values]


HARD_KINDS = ("high_degree", "confident")


def hard_forget_edges(split: LinkSplit, fraction: float, kind: str, *, scores=None, seed: int = 0) -> Tensor:
    r"""A hard forget set Df [2, K] (``u <= v``) of ``fraction`` of the training edges, beside the random one of
    :func:`forget_edges`: edges the model leans on most, which are the hardest to forget (issue 16).

    ``kind="high_degree"``: the edges of the highest-degree nodes. Nodes are taken in decreasing training
    degree (ties in an order drawn by the generator seeded with ``seed``) and all their training edges not yet
    taken are added until :math:`K = \max(1, \operatorname{round}(\text{fraction} \cdot E_{train}))` is
    reached; from the last node a seeded random subset of its edges completes exactly ``K``, so the set has
    the size :func:`forget_edges` gives for the same ``fraction``.

    ``kind="confident"``: the ``K`` training edges the trained model scores highest (ties in seeded order).
    The datasets layer sits below the models and tasks, so it cannot run a model: pass
    ``scores(pairs) -> Tensor``, the model's confidence in each pair, e.g. the sigmoid of its decoder's logit
    from ``graphunlearn.evaluate.attacks.link_confidence(model, store)``.

    Args:
        split: a :class:`LinkSplit` (from :func:`link_split`).
        fraction: share of the training edges, in (0, 1).
        kind: ``"high_degree"`` or ``"confident"``.
        scores: for ``"confident"`` only (required there): a callable taking the training pairs [2, E] and
            returning one finite score per pair [E] (higher: more confident).
        seed: seed of the tie-breaking order (default 0).

    Shapes:
        training pairs [2, E]; ``scores`` output [E]; result [2, K], in the order of ``split.train_pos``.

    Raises:
        TypeError: ``split`` not a LinkSplit; ``scores`` not callable or not returning a tensor; a bad seed.
        ValueError: ``fraction`` outside (0, 1); an unknown ``kind``; ``"confident"`` without ``scores``;
            ``scores`` given for ``"high_degree"``; a ``scores`` output of the wrong shape or not finite.
    """
    where = "hard_forget_edges"
    _check.instance(where, "split", split, LinkSplit, "a LinkSplit (from link_split)")
    if kind not in HARD_KINDS:
        raise ValueError(f"{where}: kind must be one of {HARD_KINDS}, got {kind!r}")
    fraction = _check.real(where, "fraction", fraction, 0, 1, low_open=True, high_open=True)
    seed = _check.seed(where, seed)
    train = split.train_pos
    num = max(1, round(fraction * train.size(1)))
    g = torch.Generator().manual_seed(seed)
    if kind == "confident":
        if scores is None:
            raise ValueError(f"{where}: kind='confident' needs scores=, a callable scoring pairs [2, E] -> [E] "
                             "(e.g. graphunlearn.evaluate.attacks.link_confidence(model, store))")
        if not callable(scores):
            raise TypeError(f"{where}: scores must be a callable pairs [2, E] -> [E], got {type(scores).__name__}")
        values = scores(train)
        if not isinstance(values, Tensor):
            raise TypeError(f"{where}: scores(pairs) must return a torch.Tensor, got {type(values).__name__}")
        values = values.detach().cpu()
        if values.shape != (train.size(1),) or not values.is_floating_point():
            raise ValueError(f"{where}: scores(pairs) must return {train.size(1)} floating-point scores (one per "
                             f"training pair), got shape {tuple(values.shape)} dtype {values.dtype}")
        if not torch.isfinite(values).all():
            raise ValueError(f"{where}: scores(pairs) returned {int((~torch.isfinite(values)).sum())} non-finite "
                             "scores (NaN or inf)")
        # a random order first, then a stable sort: equal scores keep the seeded order
        perm = torch.randperm(train.size(1), generator=g)
        order = perm[torch.sort(values[perm], descending=True, stable=True).indices]
        return train[:, torch.sort(order[:num]).values]
    if scores is not None:
        raise ValueError(f"{where}: scores is used by kind='confident' only, got it with kind={kind!r}")
    n = split.train_data.num_nodes
    degree = torch.bincount(train.reshape(-1), minlength=n)
    perm = torch.randperm(n, generator=g)
    nodes = perm[torch.sort(degree[perm], descending=True, stable=True).indices]
    # each edge is first reached through its endpoint of higher rank; taking nodes in rank order, an edge is
    # new for the node that ranks first among its two endpoints
    rank = torch.empty(n, dtype=torch.long)
    rank[nodes] = torch.arange(n)
    owner = torch.minimum(rank[train[0]], rank[train[1]])
    counts = torch.bincount(owner, minlength=n)
    last = int(torch.searchsorted(torch.cumsum(counts, 0), num))  # rank of the node that completes K
    full = (owner < last).nonzero().squeeze(1)
    partial = (owner == last).nonzero().squeeze(1)
    partial = partial[torch.randperm(partial.numel(), generator=g)[:num - full.numel()]]
    return train[:, torch.sort(torch.cat([full, partial])).values]


@dataclass
class NodeSplit:
    train_idx: Tensor
    val_idx: Tensor
    test_idx: Tensor
    official: bool


def node_split(data: Data, seed: int = 42, train_ratio: float = 0.8, val_ratio: float = 0.1,
               official: bool = True) -> NodeSplit:
    """Node split: the dataset's public masks where present (Planetoid), else a seeded random 80/10/10."""
    _check.instance("node_split", "data", data, Data, "a torch_geometric.data.Data")
    seed = _check.seed("node_split", seed)
    train_ratio, val_ratio = _check.number("node_split", "train_ratio", train_ratio), _check.number(
        "node_split", "val_ratio", val_ratio)
    if not (0 <= train_ratio <= 1 and 0 <= val_ratio <= 1 and train_ratio + val_ratio <= 1):
        raise ValueError(f"node_split: ratios must lie in [0, 1] and sum to at most 1, got train={train_ratio}, "
                         f"val={val_ratio}")
    if official and all(isinstance(data.get(k), Tensor) for k in ("train_mask", "val_mask", "test_mask")):
        return NodeSplit(data.train_mask.nonzero().squeeze(1), data.val_mask.nonzero().squeeze(1),
                         data.test_mask.nonzero().squeeze(1), official=True)
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(data.num_nodes, generator=g)
    n_train, n_val = int(train_ratio * data.num_nodes), int(val_ratio * data.num_nodes)
    return NodeSplit(torch.sort(perm[:n_train]).values, torch.sort(perm[n_train:n_train + n_val]).values,
                     torch.sort(perm[n_train + n_val:]).values, official=False)


def forget_nodes(split: NodeSplit, fraction: float | None = None, num: int | None = None, seed: int = 0) -> Tensor:
    """Sample nodes to delete from the training nodes: ``num`` of them, or ``fraction`` of the training set."""
    _check.instance("forget_nodes", "split", split, NodeSplit, "a NodeSplit (from node_split)")
    if (fraction is None) == (num is None):
        raise ValueError("forget_nodes: give exactly one of fraction or num")
    if fraction is not None:
        fraction = _check.real("forget_nodes", "fraction", fraction, 0, 1, low_open=True)
    if num is not None:
        num = _check.integer("forget_nodes", "num", num, 1)
    seed = _check.seed("forget_nodes", seed)
    count = num if num is not None else max(1, round(fraction * split.train_idx.numel()))
    if not 0 < count <= split.train_idx.numel():
        raise ValueError(f"forget_nodes: cannot take {count} of {split.train_idx.numel()} training nodes")
    g = torch.Generator().manual_seed(seed)
    return torch.sort(split.train_idx[torch.randperm(split.train_idx.numel(), generator=g)[:count]]).values


def _no_pairs() -> Tensor:
    return torch.empty(2, 0, dtype=torch.long)


@dataclass
class RecSplit:
    """A user-item split: ``train_data`` (training interactions, both directions), pairs as [2, K] (user, item)
    in store numbering (items after users). ``val_pos``: validation interactions carved out of the training
    ones (:func:`user_item_split` with ``val_ratio > 0``; empty [2, 0] by default), never in ``train_data``;
    where present they are what model selection and calibrated forgetting read, never ``test_pos``."""

    train_data: Data
    train_pos: Tensor
    test_pos: Tensor
    num_users: int
    num_items: int
    official: bool
    val_pos: Tensor = field(default_factory=_no_pairs)

    def __repr__(self) -> str:
        return (f"RecSplit(users={self.num_users}, items={self.num_items}, train={self.train_pos.size(1)}, "
                f"val={self.val_pos.size(1)}, test={self.test_pos.size(1)}, official={self.official})")


def user_item_split(data: Data, test_ratio: float = 0.2, seed: int = 42, official: bool = True,
                    val_ratio: float = 0.0) -> RecSplit:
    r"""Split interactions: the dataset's own train/test where present, else ``test_ratio`` of each user's.

    Test (no official split): each user's interactions are ranked by a random key (generator seeded with
    ``seed``) and the first :math:`\lfloor \text{test\_ratio} \cdot n_u \rfloor` of the user's :math:`n_u`
    go to test. Validation (``val_ratio > 0``): from each user's *training* interactions (the official ones
    where used), ranked by a second random key drawn after the test's (for an official split: from a
    generator seeded with ``seed``), the first :math:`\min(\lfloor \text{val\_ratio} \cdot t_u \rfloor,
    t_u - 1)` of the user's :math:`t_u` go to ``val_pos`` and leave the training graph; the test set is never
    touched, and a user keeps at least one training interaction (one with a single training interaction, or
    fewer than ``1 / val_ratio``, keeps them all). With ``val_ratio=0`` (the default) nothing is drawn for
    validation: the split is the one this function returned before validation existed, for every seed.

    Args:
        data: a user-item ``Data`` (``num_users``, ``num_items``; items numbered after users; an official
            ``split_edge`` with ``train_pos``/``test_pos`` is used when ``official``).
        test_ratio: share of each user's interactions held out for test, in [0, 1) (default 0.2; unused
            with an official split).
        seed: seed of the random keys (default 42).
        official: use the dataset's own train/test split where it has one (default ``True``).
        val_ratio: share of each user's training interactions held out for validation, in [0, 1)
            (default 0.0: none).

    Shapes:
        ``train_pos`` [2, K_train], ``val_pos`` [2, K_val], ``test_pos`` [2, K_test], each (user, item) in
        store numbering, in the order of the interactions they came from.

    Raises:
        TypeError: ``data`` not a ``Data``; a non-number ratio; a bad seed.
        ValueError: a ratio outside [0, 1); ``data`` without ``num_users``/``num_items``; a ``val_ratio > 0``
            that holds out no interaction (every user has fewer than ``1 / val_ratio`` training interactions).
    """
    _check.instance("user_item_split", "data", data, Data, "a torch_geometric.data.Data")
    seed = _check.seed("user_item_split", seed)
    test_ratio = _check.real("user_item_split", "test_ratio", test_ratio, 0, 1, high_open=True)
    val_ratio = _check.real("user_item_split", "val_ratio", val_ratio, 0, 1, high_open=True)
    if data.get("num_users") is None:
        raise ValueError("user_item_split: data has no num_users/num_items (load a user-item dataset)")
    nu, ni = int(data.num_users), int(data.num_items)
    s = data.get("split_edge")
    g = torch.Generator().manual_seed(seed)
    if official and isinstance(s, dict) and s.get("test_pos") is not None and s["test_pos"].numel():
        train, test = s["train_pos"], s["test_pos"]
    else:
        pairs = data.edge_index[:, data.edge_index[0] < nu]
        pairs = undirected_unique(pairs, data.num_nodes)[0]
        r = torch.rand(pairs.size(1), generator=g)
        # rank each interaction within its user by a random key; the top test_ratio of each user go to test
        order = torch.argsort(pairs[0] * 2.0 + r)
        counts = torch.bincount(pairs[0], minlength=nu)
        start = torch.cumsum(counts, 0) - counts
        rank = torch.empty_like(order)
        rank[order] = torch.arange(order.numel()) - start[pairs[0][order]]
        is_test = rank < (counts[pairs[0]] * test_ratio).floor().long()
        train, test = pairs[:, ~is_test], pairs[:, is_test]
        official = False
    val = _no_pairs()
    if val_ratio > 0:  # nothing drawn otherwise: the split stays the one made before validation existed
        is_val = _first_of_each_user(train[0], nu, val_ratio, g)
        if not bool(is_val.any()):
            most = int(torch.bincount(train[0], minlength=nu).max()) if train.numel() else 0
            raise ValueError(f"user_item_split: val_ratio={val_ratio} holds out no validation interaction: a user "
                             f"gives floor(val_ratio * t) of their t training interactions, and the most any user "
                             f"has is {most}" + (f"; use val_ratio >= {_least_ratio(most)}" if most > 1 else ""))
        train, val = train[:, ~is_val], train[:, is_val]
    return RecSplit(_with_edges(data, train), train, test, nu, ni, official=official, val_pos=val)


def _least_ratio(most: int) -> float:
    """The smallest ratio with four decimals that holds out one of ``most`` interactions, checked with the
    arithmetic :func:`_first_of_each_user` uses (a count times the ratio in float32, floored)."""
    ratio = math.ceil(1e4 / most) / 1e4
    while float((torch.tensor([most]) * ratio).floor()) < 1:
        ratio = round(ratio + 1e-4, 4)
    return ratio


def _first_of_each_user(users: Tensor, num_users: int, ratio: float, generator: torch.Generator) -> Tensor:
    r"""Bool mask [K] over interactions of ``users`` [K]: for each user with :math:`t` interactions, the
    first :math:`\min(\lfloor \text{ratio} \cdot t \rfloor, t - 1)` in an order drawn by ``generator``
    (a stable sort by user of a random permutation: exact for any number of users)."""
    perm = torch.randperm(users.numel(), generator=generator)
    order = perm[torch.sort(users[perm], stable=True).indices]
    counts = torch.bincount(users, minlength=num_users)
    start = torch.cumsum(counts, 0) - counts
    rank = torch.empty_like(order)
    rank[order] = torch.arange(order.numel()) - start[users[order]]
    take = torch.minimum((counts * ratio).floor().long(), (counts - 1).clamp(min=0))
    return rank < take[users]


REC_KINDS = ("interaction", "user", "item_group")


def forget_recommendation(split: RecSplit, kind: str, fraction: float, seed: int = 0) -> Tensor:
    """Sample a recommendation forget set from the training interactions (``../shared/PROTOCOL.md``).

    ``kind="interaction"``: ``fraction`` of the training interactions, returned as (user, item) pairs [2, K]
    in store numbering (items after users). ``"user"``: ``fraction`` of the users that have training
    interactions, returned as user node ids (delete them with ``store.delete_nodes``: every interaction of
    theirs goes). ``"item_group"`` (a licence revoked for a group of items): items drawn at random until
    their training interactions reach ``fraction`` of all, returned as the pairs [2, K] of every training
    interaction with those items (see :func:`item_group_interactions` for a named group such as a genre).
    """
    _check.instance("forget_recommendation", "split", split, RecSplit, "a RecSplit (from user_item_split)")
    if kind not in REC_KINDS:
        raise ValueError(f"forget_recommendation: kind must be one of {REC_KINDS}, got {kind!r}")
    fraction = _check.real("forget_recommendation", "fraction", fraction, 0, 1, low_open=True, high_open=True)
    seed = _check.seed("forget_recommendation", seed)
    g = torch.Generator().manual_seed(seed)
    train = split.train_pos
    if kind == "interaction":
        num = max(1, round(fraction * train.size(1)))
        return train[:, torch.sort(torch.randperm(train.size(1), generator=g)[:num]).values]
    if kind == "user":
        users = torch.unique(train[0])
        num = max(1, round(fraction * users.numel()))
        return torch.sort(users[torch.randperm(users.numel(), generator=g)[:num]]).values
    items = torch.unique(train[1])
    order = items[torch.randperm(items.numel(), generator=g)]
    counts = torch.bincount(train[1], minlength=split.num_users + split.num_items)[order]
    enough = int(torch.searchsorted(torch.cumsum(counts, 0), fraction * train.size(1))) + 1
    return item_group_interactions(split, order[:enough])


def item_group_interactions(split: RecSplit, items) -> Tensor:
    """The training interactions [2, K] (store numbering) with any of ``items`` (item node ids, i.e. numbered
    after the users), e.g. every interaction with the films of one genre:
    ``items = num_users + data.item_x[:, genre].nonzero().squeeze(1)``."""
    _check.instance("item_group_interactions", "split", split, RecSplit, "a RecSplit (from user_item_split)")
    try:
        items = torch.as_tensor(items)
    except (TypeError, ValueError, RuntimeError):
        raise TypeError(f"item_group_interactions: items must be item node ids (ints or an integer tensor), got "
                        f"{type(items).__name__}") from None
    if items.dtype == torch.bool or items.is_floating_point() or items.is_complex():
        raise TypeError(f"item_group_interactions: items must be integer node ids, got dtype {items.dtype}")
    items = items.long().reshape(-1)
    bad = items[(items < split.num_users) | (items >= split.num_users + split.num_items)]
    if bad.numel():
        raise ValueError(f"item_group_interactions: ids {bad[:10].tolist()} are not item nodes "
                         f"({split.num_users}..{split.num_users + split.num_items - 1})")
    train = split.train_pos
    return train[:, torch.isin(train[1], items)]
