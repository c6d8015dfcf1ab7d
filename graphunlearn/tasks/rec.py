"""Recommendation: users are nodes ``0..U-1``, items ``U..U+I-1``; a user-item score is the decoder (the dot
product by default) of their representations; the units are user-item pairs in store numbering."""

from __future__ import annotations

import weakref
from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch_geometric.data import Data

from .. import checks
from ..datasets import splits as ds
from ..kernels import bpr_loss
from ..models import MF, LightGCN
from ..report import Metrics
from ..requests import DeletionRequest
from ..store import GraphStore
from .base import Task, check_scores, deleted_edge_ids, make_generator, pick, register_task

_KEYS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def interactions(store: GraphStore, num_users: int) -> Tensor:
    """Live user-item interactions [2, K] as (user, item) with items numbered from 0."""
    pairs = store.edge_index[:, store.live_edge_ids()]
    return torch.stack([pairs[0], pairs[1] - num_users])


def removed_items(store: GraphStore, num_users: int, num_items: int) -> Tensor:
    """Items out of the catalogue after deletions: bool [I] (items numbered from 0), ``True`` for a deleted item
    node and for an item the store held training interactions with and now keeps none of (a revoked licence,
    or its last interaction deleted). A model retrained on a graph rebuilt without the deleted interactions
    would not know such an item, so training draws no negative among them (:func:`sample_negative_items`) and
    rankings leave them out (:meth:`Recommendation.evaluate`, :meth:`Recommendation.validate`). An item the
    store never held an interaction with (cold: seen only in test) stays in, as it is for the original. After
    ``store.compact()`` the erased interactions are gone from the store, so an item whose every interaction was
    erased counts as cold again unless its node was deleted: delete the item nodes to keep them out."""
    end = num_users + num_items
    live = torch.bincount(store.edge_index[1, store.edge_mask], minlength=end)[num_users:end]
    held = torch.bincount(store.edge_index[1], minlength=end)[num_users:end]
    return ((held > 0) & (live == 0)) | ~store.node_mask[num_users:end]


def _user_index(store: GraphStore, num_users: int, num_items: int
                ) -> tuple[Tensor, Tensor, Tensor, Tensor | None]:
    """``(gaps, start, degree, catalogue)`` of the live interactions, built once per request (the store's live edge and
    node ids are one object each until the next request) and kept beside them. ``catalogue`` [C] holds the items
    (numbered from 0) not :func:`removed_items`, ``None`` when that is every item; items are counted by their position
    in it. ``gaps`` [K] sorted keys ``user * C + position - j`` where ``j`` is the item's rank among the user's items
    (the number of catalogue items the user lacks below it), ``start`` [U] where each user's keys begin, ``degree`` [U]
    items per user."""
    # the catalogue reads the node mask too: a request that deletes only item nodes without live interactions
    # (cold items) leaves the live edge ids as they were, so both cached id tensors key the index
    live = (store.live_edge_ids(), store.live_node_ids())
    cached = _KEYS.get(store)
    if cached is not None and all(a is b for a, b in zip(cached[0], live)) and cached[1] == (num_users, num_items):
        return cached[2]
    pairs = interactions(store, num_users)
    removed = removed_items(store, num_users, num_items)
    catalogue, size, items = None, num_items, pairs[1]
    if bool(removed.any()) and not bool(removed.all()):  # every item removed (nothing live): any item
        catalogue = (~removed).nonzero().squeeze(1)
        position = torch.cumsum(~removed, 0) - 1  # a live interaction's item is never removed
        size, items = catalogue.numel(), position[pairs[1]]
    keys = torch.sort(pairs[0] * size + items).values
    users = torch.div(keys, max(size, 1), rounding_mode="floor")
    degree = torch.bincount(users, minlength=num_users)
    start = torch.cumsum(degree, 0) - degree
    rank = torch.arange(keys.numel(), device=keys.device) - start[users]
    index = (keys - rank, start, degree, catalogue)
    _KEYS[store] = (live, (num_users, num_items), index)
    return index


def sample_negative_items(users: Tensor, store: GraphStore, num_users: int, num_items: int,
                          generator: torch.Generator) -> Tensor:
    r"""One item (numbered from 0) per user, uniform over the catalogue's items (not :func:`removed_items`)
    the user has no retained interaction with, exactly and without rejection: draw :math:`r` uniform in
    :math:`[0, C - d_u)` (:math:`C` catalogue items) and return the :math:`r`-th catalogue item missing from the
    user's sorted list :math:`s` (in catalogue positions), i.e. position :math:`r + k` with :math:`k` the number
    of the user's items with :math:`s_j - j \le r` (one ``searchsorted``; no host sync, no redraws). A user who
    has interacted with every catalogue item gets a uniform catalogue item. With nothing removed (the original's
    training), or every item (nothing live), the draws are over every item. On the users' device."""
    gaps, start, degree, catalogue = _user_index(store, num_users, num_items)
    size = num_items if catalogue is None else catalogue.numel()
    free = size - degree[users]
    open_ = free > 0  # a user with every catalogue item draws over the whole catalogue
    span = torch.where(open_, free, torch.full_like(free, max(size, 1)))
    r = (torch.rand(users.numel(), generator=generator, device=users.device) * span).long().clamp(max=span - 1)
    if gaps.numel():
        k = torch.searchsorted(gaps, users * size + r, right=True) - start[users]
        r = torch.where(open_, r + k, r)
    return r if catalogue is None else catalogue[r]


def _rank_stats(top: Tensor, rows: Tensor, items: Tensor, num_items: int) -> tuple[float, float, int]:
    """Sums of per-user Recall@k and NDCG@k over the users in ``rows`` (LightGCN's definitions: recall divides
    by the user's number of held-out items, the ideal DCG by min(that, k)), and the number of such users."""
    relevant = torch.zeros(top.size(0), num_items, dtype=torch.bool, device=top.device)
    relevant[rows, items] = True
    count = relevant.sum(1)
    hits = relevant.gather(1, top)
    have = count > 0
    recall = hits[have].sum(1).float() / count[have].float()
    discount = 1.0 / torch.log2(torch.arange(2, top.size(1) + 2, dtype=torch.float, device=top.device))
    dcg = (hits.float() * discount).sum(1)
    ideal = torch.cumsum(discount, 0)[(count.clamp(max=top.size(1)) - 1).clamp(min=0)]
    return recall.sum().item(), (dcg[have] / ideal[have]).sum().item(), int(have.sum())


def _val_pos(split) -> Tensor | None:
    """The split's validation interactions [2, K] (``None`` for a split object without the field)."""
    return getattr(split, "val_pos", None)


def _recall_of(task, model: nn.Module, z: Tensor, kept: Tensor, pairs: Tensor, num_users: int, num_items: int,
               k: int, batch_users: int = 1024, removed: Tensor | None = None) -> float:
    """Mean per-user Recall@k of ``pairs`` [2, K] (user, item in store numbering) over their users, every item
    ranked except the user's ``kept`` [2, E] interactions and the ``removed`` [I] items (:func:`_rank_stats`);
    only the users of ``pairs`` are scored, ``batch_users`` at a time (memory O(batch x items))."""
    users = torch.unique(pairs[0])
    row = torch.full((num_users,), -1, dtype=torch.long, device=users.device)
    row[users] = torch.arange(users.numel(), device=users.device)
    kept_row, pair_row = row[kept[0]], row[pairs[0]]
    items = torch.arange(num_users, num_users + num_items, device=z.device)
    total, count = 0.0, 0
    for b0 in range(0, users.numel(), batch_users):
        b1 = min(users.numel(), b0 + batch_users)
        scores = task.score_matrix(model, z, users[b0:b1], items)
        mine = (kept_row >= b0) & (kept_row < b1)
        scores[kept_row[mine] - b0, kept[1, mine] - num_users] = float("-inf")
        if removed is not None:
            scores[:, removed] = float("-inf")
        top = scores.topk(min(k, num_items), dim=1).indices
        inside = (pair_row >= b0) & (pair_row < b1)
        r, _, c = _rank_stats(top, pair_row[inside] - b0, pairs[1, inside] - num_users, num_items)
        total, count = total + r, count + c
    return total / count if count else float("nan")


def check_sampled_model(model: nn.Module, where: str) -> None:
    """Refuse a model that cannot run on a sampled computation graph before any step does.

    Raises:
        TypeError: the model has PyTorch Geometric's ``get_embedding(edge_index)`` (PyG's ``LightGCN``): it
            propagates its whole table of N node embeddings and takes no node ids, so on a subgraph it can
            neither read the sampled nodes' rows nor return one row per subgraph node.
    """
    if callable(getattr(model, "get_embedding", None)):
        raise TypeError(f"{where}: {type(model).__name__}.get_embedding(edge_index) propagates its whole table of "
                        "node embeddings and takes no node ids (PyTorch Geometric's LightGCN), so it cannot run on "
                        "a sampled computation graph (num_neighbors=...); use graphunlearn.models.LightGCN, which "
                        "reads the subgraph's node ids as x, or train and unlearn on the whole graph "
                        "(num_neighbors=None, or 'full' for unlearn)")


class Recommendation(Task):
    r"""Recommendation with implicit feedback (split: :class:`~graphunlearn.datasets.RecSplit`).

    Loss: BPR (Rendle et al., UAI 2009), :math:`-\ln\sigma(s_{ui} - s_{uj})` for each live interaction
    :math:`(u, i)` and one item :math:`j` the user has no retained interaction with, in shuffled mini-batches
    of ``batch_size``, plus ``weight_decay`` times the L2 norm of the batch's embeddings (as LightGCN).
    Validation (:meth:`validate`): Recall@20 on the split's validation interactions where it has them
    (``user_item_split(..., val_ratio=...)``), which selects the epoch kept and lets unlearning methods
    calibrate; without them, no validation: a fixed number of epochs, the last kept. Units: user-item pairs
    [2, K] in store numbering.
    The scores go through the fused BPR kernel when the decoder is the dot product.

    Sampled training (``fit(..., num_neighbors=[...], batch_size=...)``): each step's BPR and L2 terms read
    the representations of the batch's users, positive and negative items from one sampled computation graph
    of those nodes (:meth:`encode_for`), so a step costs what their neighbourhoods cost. The model receives
    the subgraph's node ids as ``x`` (:class:`~graphunlearn.models.LightGCN` and
    :class:`~graphunlearn.models.MF` look up their rows with them) and an ``edge_index`` normalised with the
    store's live degrees (:func:`~graphunlearn.tasks.local.embedding_graph`): with all neighbours
    (``[-1] * num_layers``) LightGCN's output for the batch equals its full-graph output.
    """

    name = "rec"
    split_type = ds.RecSplit
    pairwise = True
    recipe = dict(epochs=50, lr=0.005, weight_decay=1e-4, patience=None, eval_every=1, batch_size=8192)
    l2_in_loss = True
    sampled_training = True
    backbones = ("lightgcn", "mf")
    headline = ("recall@20", "ndcg@20", "forget_recall@20", "gap_test_kl", "gap_deleted_kl", "seconds", "peak_mb")
    plot_axes = ("forget_recall@20", "recall@20")

    def build_model(self, backbone, store, split, hidden_channels=128, out_channels=64):
        """LightGCN or MF with the default embedding size (64); ``hidden_channels``/``out_channels`` unused."""
        self._check_backbone(backbone)
        cls = LightGCN if backbone == "lightgcn" else MF
        return cls(split.num_users, split.num_items)

    def describe_split(self, split):
        val = _val_pos(split)
        held = f", {val.size(1)} validation" if val is not None and val.numel() else ""
        return (f"{split.num_users} users, {split.num_items} items, {split.train_pos.size(1)} training{held} and "
                f"{split.test_pos.size(1)} test interactions")

    def check_trainable(self, store, split, where):
        if split is None:
            raise ValueError(f"{where}: recommendation needs split= (a RecSplit: the numbers of users and items)")
        if store.num_live_edges == 0:
            raise ValueError(f"{where}: the store has no live interactions to train on (every one was deleted)")
        pairs = store.edge_index[:, store.edge_mask]
        if bool((pairs[0] >= split.num_users).any() | (pairs[1] < split.num_users).any()):
            raise ValueError(f"{where}: recommendation needs users as nodes 0..{split.num_users - 1} and items after "
                             "them, each interaction stored as (user, item); this store's edges do not follow that "
                             "layout (a HeteroData store must list the user node type first)")

    def batches(self, store, split, generator, batch_size):
        _user_index(store, split.num_users, split.num_items)  # built before the steps (once per request)
        pairs = interactions(store, split.num_users)
        order = torch.randperm(pairs.size(1), generator=generator, device=pairs.device)
        size = batch_size or order.numel()
        return [pairs[:, order[b0:b0 + size]] for b0 in range(0, order.numel(), size)]

    def sample_batch(self, store, split, generator, size):
        """``size`` live interactions drawn uniformly with replacement, [2, size] as (user, item numbered from
        0), as :meth:`batches` yields them; reads the live edge ids (cached per request), not every pair."""
        _user_index(store, split.num_users, split.num_items)  # the negatives' index, once per request
        pairs = store.edge_index[:, pick(store.live_edge_ids(), size, generator)]
        return torch.stack([pairs[0], pairs[1] - split.num_users])

    def warm(self, store, sampled=False):
        """:meth:`Task.warm`; with ``sampled``, also the store's live degrees
        (:func:`~graphunlearn.tasks.local.live_degrees`) that sampled steps normalise with."""
        super().warm(store, sampled)
        if sampled:
            from .local import live_degrees

            live_degrees(store)  # what sampled steps normalise with, once per request

    def encode_for(self, model, store, units, num_neighbors=None, generator=None):
        """As :meth:`Task.encode_for`; with ``num_neighbors``, the model runs on the sampled computation graph
        of the units' nodes as an embedding model reads it (:func:`~graphunlearn.tasks.local.embedding_graph`:
        node ids as ``x``, the store's live degrees in the normalisation).

        Raises:
            TypeError: with ``num_neighbors``, a model that cannot run on a subgraph
                (:func:`check_sampled_model`).
        """
        if num_neighbors is None:
            return self.encode(model, store), list(units)
        where = f"task {self.name!r}"
        check_sampled_model(model, where)
        from .local import embedding_graph, localize

        graph, local = localize(store, units, num_neighbors, generator)
        return embedding_graph(store, graph).encode(model, where), local

    def bpr(self, model: nn.Module, z: Tensor, split, users: Tensor, pos: Tensor, neg: Tensor,
            sign: Tensor | None = None, weight: Tensor | None = None, reduction: str = "mean") -> Tensor:
        """(Reverse) BPR of (user, item, negative item) triples, items numbered from 0: the fused kernel on
        the dot product, or the same formula on the task's (or model's) decoder."""
        nu = split.num_users
        ue, ie = z[:nu], z[nu:]
        if self.dot(model):
            return bpr_loss(ue, ie, users, pos, neg, sign, weight, reduction=reduction)
        x = (self.decode(model, z, torch.stack([users, pos + nu]))
             - self.decode(model, z, torch.stack([users, neg + nu])))
        x = x if sign is None else sign * x
        losses = -torch.nn.functional.logsigmoid(x)
        losses = losses if weight is None else weight * losses
        return losses.mean() if reduction == "mean" else losses.sum()

    def bpr_rows(self, model: nn.Module, z: Tensor, users: Tensor, pos: Tensor, neg: Tensor,
                 sign: Tensor | None = None, weight: Tensor | None = None, reduction: str = "mean") -> Tensor:
        """:meth:`bpr` with the users and items given as rows of ``z`` (node rows of one table, as a sampled
        computation graph numbers them: :meth:`encode_for`), not as user and item numbers. Shapes: z [n, d],
        users / pos / neg / sign / weight [B] -> scalar ([B] with ``reduction="none"``)."""
        if self.dot(model):
            return bpr_loss(z, z, users, pos, neg, sign, weight, reduction=reduction)
        x = self.decode(model, z, torch.stack([users, pos])) - self.decode(model, z, torch.stack([users, neg]))
        x = x if sign is None else sign * x
        losses = -torch.nn.functional.logsigmoid(x)
        losses = losses if weight is None else weight * losses
        return losses.mean() if reduction == "mean" else losses.sum() if reduction == "sum" else losses

    def dot(self, model: nn.Module) -> bool:
        """Whether scores are the plain dot product (no task decoder, no ``model.decode``)."""
        return self.decoder is None and not callable(getattr(model, "decode", None))

    def score_matrix(self, model: nn.Module, z: Tensor, users: Tensor, items: Tensor) -> Tensor:
        """Scores [len(users), len(items)] (store node ids): one matrix product for the dot product."""
        if self.dot(model):
            return z[users] @ z[items].t()
        step = max(1, (1 << 20) // max(1, items.numel()))  # about a million pairs per decoder call
        rows = []
        for b0 in range(0, users.numel(), step):
            part = users[b0:b0 + step]
            grid = torch.stack([part.repeat_interleave(items.numel()), items.repeat(part.numel())])
            rows.append(self.decode(model, z, grid).view(part.numel(), items.numel()))
        return torch.cat(rows) if rows else z.new_empty(0, items.numel())

    def loss(self, model, store, split, batch, generator, recipe):
        users, pos = batch[0], batch[1]
        neg = sample_negative_items(users, store, split.num_users, split.num_items, generator)
        nu = split.num_users
        fanout = recipe.get("num_neighbors")
        if fanout is not None:  # one sampled computation graph of the batch's users, items and negatives
            z, (u, p, n) = self.encode_for(model, store, [users, pos + nu, neg + nu], fanout, generator)
            reg = (z[u].pow(2).sum() + z[p].pow(2).sum() + z[n].pow(2).sum()) / (2 * users.numel())
            return self.bpr_rows(model, z, u, p, n) + recipe.get("weight_decay", 0.0) * reg
        z = self.encode(model, store)
        loss = self.bpr(model, z, split, users, pos, neg)
        reg = (z[users].pow(2).sum() + z[nu + pos].pow(2).sum() + z[nu + neg].pow(2).sum()) / (2 * users.numel())
        return loss + recipe.get("weight_decay", 0.0) * reg

    # units: user-item pairs (store numbering)
    def forget_units(self, store, requests, split):
        return store.edge_index[:, deleted_edge_ids(requests)]

    def retain_sampler(self, store, requests, split, ratio, cap=None):
        live = store.live_edge_ids()
        num = min(live.numel(), cap or live.numel(), int(ratio * max(1, deleted_edge_ids(requests).numel())))
        return lambda generator: store.edge_index[:, pick(live, num, generator)]

    def unit_logits(self, model, z, units):
        return self.decode(model, z, units)

    def heldout_units(self, split):
        """The validation interactions [2, K] where the split has them, else the test interactions (held out
        of training either way; only the former may be read to decide how far to forget)."""
        val = _val_pos(split)
        return val if val is not None and val.numel() else split.test_pos

    def heldout_is_validation_for(self, split) -> bool:
        """Whether ``split`` holds validation interactions (then they are :meth:`heldout_units`)."""
        val = _val_pos(split) if split is not None else None
        return val is not None and val.numel() > 0

    def calibration_unavailable(self, split, sampled: bool = False) -> str | None:
        """Why calibrated forgetting cannot run: no validation interactions in ``split`` (its held-out
        interactions are then the test set). On sampled computation graphs it runs with
        :meth:`sampled_validate` as its validation score (:meth:`calibration_validate`)."""
        if not self.heldout_is_validation_for(split):
            return ("the split holds no validation interactions (its held-out interactions are the test set, which "
                    "calibration never reads); carve them with user_item_split(..., val_ratio=0.1)")
        return None

    #: the items each validation interaction's item is compared with by :meth:`sampled_validate`: one uniform
    #: draw without replacement (seed 0), shared by every interaction and every check
    sampled_val_items: int = 1000

    def calibration_validate(self, model, store, split, num_neighbors=None):
        """:meth:`validate` (Recall@20, every item ranked) on the whole graph; with ``num_neighbors``,
        :meth:`sampled_validate` (a sampled AUC), so that a calibrated run on sampled computation graphs never
        passes over the whole graph."""
        if num_neighbors is None:
            return self.validate(model, store, split)
        return self.sampled_validate(model, store, split, num_neighbors)

    @property
    def val_metric(self) -> str:
        """``"Recall@20"``: Recall@:attr:`val_k` of the validation interactions, every item ranked."""
        return f"Recall@{self.val_k}"

    def calibration_metric(self, num_neighbors=None):
        """``"Recall@20"`` on the whole graph; ``"sampled AUC"`` (:meth:`sampled_validate`) with
        ``num_neighbors``."""
        return self.val_metric if num_neighbors is None else "sampled AUC"

    @torch.no_grad()
    def sampled_validate(self, model: nn.Module, store: GraphStore, split, num_neighbors: Sequence[int]
                         ) -> float | None:
        r"""Sampled AUC of the validation interactions, on sampled computation graphs: for each validation
        interaction :math:`(u, i)` among a fixed subset of at most :attr:`sampled_val_units` (2,048) positions of
        ``split.val_pos`` (:func:`~graphunlearn.tasks.base.val_subset`, drawn before deletions are looked at,
        so that a deletion changes the subset only by the interactions it removes) that :meth:`validate` would
        count (live user and item, the item with a live training interaction), the share of a fixed uniform
        sample :math:`J` of :attr:`sampled_val_items` (1,000) items, less :math:`i`, the items :math:`u` keeps
        in the live training graph and those out of the catalogue (:func:`removed_items`), that the model
        scores below :math:`(u, i)` (ties count half); the mean over the interactions, in [0, 1]. Under
        uniform item sampling this estimates the full AUC without bias, the one usual ranking metric that item
        sampling does not distort (Krichene and Rendle, "On Sampled Metrics for Item Recommendation", KDD
        2020), where a sampled Recall@20 would not estimate Recall@20.
        Cost: the sampled computation graphs (``num_neighbors`` per hop, drawn with seed 0) of at most 2,048
        users, 2,048 items and :math:`|J|` items, the store's CSR rows of those users and a [2,048, 1,000]
        score matrix: independent of the graph's size (the live degrees it reads are built once per request).
        The item sample is reproducible on one device type (a CPU and a CUDA generator draw different
        permutations from seed 0). Not :meth:`validate`'s scale: calibrated forgetting compares it only with
        the original's own sampled AUC. ``None`` without counted validation interactions.

        Raises:
            graphunlearn.metrics.NonFiniteScoreError: NaN or infinite model outputs.
        """
        from ..graph import row_slots
        from .local import live_degrees

        if not self.heldout_is_validation_for(split):
            return None
        nu, ni = split.num_users, split.num_items
        dev = store.device
        # the store read at the sampled pairs only (O(their CSR rows), never O(E)): live degrees (cached per
        # request) give the catalogue, the users' CSR rows the items they keep
        val = self.sampled_heldout_units(split, store)
        if not val.numel():
            return None
        csr, (degree, _) = store.live_csr(), live_degrees(store)
        g = make_generator(0, dev)
        items = torch.randperm(ni, generator=g, device=dev)[:self.sampled_val_items] + nu
        was = model.training
        model.eval()
        try:
            z, (u, p, j) = self.encode_for(model, store, [val[0], val[1], items], num_neighbors, g)
            check_scores("sampled_validate.recommendation", "model", z)
            pos = self.unit_logits(model, z, torch.stack([u, p]))
            neg = self.score_matrix(model, z, u, j)  # [K, |J|]
        finally:
            model.train(was)
        users = torch.unique(val[0])
        slots = row_slots(csr.rowptr, users)
        owner = torch.repeat_interleave(users, csr.rowptr[users + 1] - csr.rowptr[users])
        live = csr.slot_live[slots] & csr.node_live[csr.col[slots]]
        n = store.num_nodes
        kept = owner[live] * n + csr.col[slots][live]  # (user, item) keys of the users' live interactions
        held = csr.rowptr[items + 1] > csr.rowptr[items]  # removed_items, for the sampled items only
        removed = ~store.node_mask[items] | (held & (degree[items] == 0))
        grid = val[0].unsqueeze(1) * n + items.unsqueeze(0)  # (user, sampled item) keys [K, |J|]
        counts = ~torch.isin(grid, kept) & (items.unsqueeze(0) != val[1].unsqueeze(1)) & ~removed.unsqueeze(0)
        below = (neg < pos.unsqueeze(1)).float() + 0.5 * (neg == pos.unsqueeze(1)).float()
        per = (below * counts).sum(1) / counts.sum(1).clamp(min=1)
        has = counts.any(1)
        return per[has].mean().item() if bool(has.any()) else None

    @staticmethod
    def _live_val(split, store) -> Tensor | None:
        """The validation interactions [2, K] that count: both nodes live and the item in the catalogue (it
        keeps a live training interaction); ``None`` without validation interactions."""
        val = _val_pos(split) if split is not None else None
        if val is None or not val.numel():
            return None
        kept = store.edge_index[:, store.edge_mask]
        in_catalogue = torch.zeros(split.num_users + split.num_items, dtype=torch.bool, device=kept.device)
        in_catalogue[kept[1]] = True
        val = val.to(kept.device)
        return val[:, store.node_mask[val[0]] & store.node_mask[val[1]] & in_catalogue[val[1]]]

    def sampled_live_pairs(self, pairs, split, store):
        """The interactions of ``pairs`` that :meth:`validate` counts, read at their nodes only: live user and
        item, the item with a live training interaction (the store's live degrees, cached per request)."""
        from .local import live_degrees

        degree, _ = live_degrees(store)
        return pairs[:, store.node_mask[pairs[0]] & store.node_mask[pairs[1]] & (degree[pairs[1]] > 0)]

    def live_heldout_units(self, split, store):
        """The validation interactions that count in :meth:`validate` (live users and items, items in the
        catalogue) where the split has them, else the test interactions of live nodes."""
        if self.heldout_is_validation_for(split):
            return self._live_val(split, store)
        return super().live_heldout_units(split, store)

    #: the cut-off of the validation metric, Recall@``val_k`` of the validation interactions (as the test's)
    val_k: int = 20

    @torch.no_grad()
    def validate(self, model, store, split, num_neighbors=None):
        r"""Recall@:attr:`val_k` (20) of the validation interactions ``split.val_pos`` on the live graph, as
        :meth:`evaluate` computes it for the test interactions: for each user with validation interactions,
        every item in the catalogue is ranked by the model's user-item score except those the user keeps in the
        live training graph (items out of the catalogue, :func:`removed_items`, are not ranked), and the user's
        recall is the share of their validation items in the top :attr:`val_k`; the mean over those users.
        Validation interactions of a deleted user or item, or of an item without a live training interaction
        (a revoked licence, or an item seen only in validation), do not count. ``None`` when the split has no
        validation interactions (today's splits, ``val_ratio=0``) or none counts. Ranking every item needs
        every item's representation, so this reads the whole live graph also when ``num_neighbors`` is given
        (sampled training), as :meth:`evaluate`
        does.

        Raises:
            graphunlearn.metrics.NonFiniteScoreError: NaN or infinite model outputs.
        """
        val = self._live_val(split, store)
        if val is None or not val.numel():
            return None
        nu, ni = split.num_users, split.num_items
        kept = store.edge_index[:, store.edge_mask]
        was = model.training
        model.eval()
        try:
            z = self.encode(model, store)
            check_scores("validate.recommendation", "model", z)
            return _recall_of(self, model, z, kept, val, nu, ni, self.val_k, removed=removed_items(store, nu, ni))
        finally:
            model.train(was)

    # evidence
    @torch.no_grad()
    def evaluate(self, model: nn.Module, store: GraphStore, split, requests: Sequence[DeletionRequest], *,
                 gold: nn.Module | None = None, original: nn.Module | None = None, k: int = 20,
                 batch_users: int = 1024, where: str = "evaluate.recommendation") -> Metrics:
        """Recall@k and NDCG@k on the test interactions, and Recall@k on the forgotten interactions
        (``forget_recall@k``: lower is better; compare with the gold model's). Items a user keeps in the
        retained training graph are excluded from that user's ranking; for the forget-set recall they are
        too, so a forgotten item competes with the items the user has not interacted with. Items out of the
        catalogue (:func:`removed_items`: a deleted item, or one whose every training interaction was deleted,
        as a revoked licence leaves it) are not ranked for the test recall, as a model retrained without them
        would not know them; the forget-set ranking keeps them, so a revoked item the model still ranks high
        for its former users counts there. Test interactions count only where the user is live and the item in
        the catalogue. Users are ranked in batches of ``batch_users`` (memory O(batch x items)). With ``gold``:
        the retrain gap by region on user-item scores (two-class, as for links):
        ``gap_<deleted|hop1|hop2|rest|test>_<kl|js|l2|fidelity>``.

        Raises:
            ValueError: NaN or infinite model outputs; ``k`` or ``batch_users`` below 1.
        """
        checks.check_int(where, "k", k, low=1)
        checks.check_int(where, "batch_users", batch_users, low=1)
        nu, ni = split.num_users, split.num_items
        model.eval()
        z = self.encode(model, store)
        check_scores(where, "model", z)
        deleted = deleted_edge_ids(requests)
        removed = removed_items(store, nu, ni)
        test = split.test_pos.to(z.device)
        test = test[:, store.node_mask[test[0]] & ~removed[test[1] - nu]]
        any_removed = bool(removed.any())
        df = store.edge_index[:, deleted]
        kept = store.edge_index[:, store.edge_mask]
        items = torch.arange(nu, nu + ni, device=z.device)
        stats = {"test": [0.0, 0.0, 0], "forget": [0.0, 0.0, 0]}  # recall sum, ndcg sum, users
        for b0 in range(0, nu, batch_users):
            users = torch.arange(b0, min(nu, b0 + batch_users), device=z.device)
            scores = self.score_matrix(model, z, users, items)
            mine = (kept[0] >= b0) & (kept[0] < b0 + users.numel())
            scores[kept[0, mine] - b0, kept[1, mine] - nu] = float("-inf")
            tops = {"forget": scores.topk(min(k, ni), dim=1).indices}
            if any_removed:
                scores[:, removed] = float("-inf")
            tops["test"] = scores.topk(min(k, ni), dim=1).indices if any_removed else tops["forget"]
            for name, pairs in (("test", test), ("forget", df)):
                inside = (pairs[0] >= b0) & (pairs[0] < b0 + users.numel())
                if bool(inside.any()):
                    r, n, c = _rank_stats(tops[name], pairs[0, inside] - b0, pairs[1, inside] - nu, ni)
                    stats[name][0] += r
                    stats[name][1] += n
                    stats[name][2] += c
        out = Metrics("rec")
        out[f"recall@{k}"] = stats["test"][0] / stats["test"][2] if stats["test"][2] else float("nan")
        out[f"ndcg@{k}"] = stats["test"][1] / stats["test"][2] if stats["test"][2] else float("nan")
        if deleted.numel():
            out[f"forget_recall@{k}"] = stats["forget"][0] / stats["forget"][2] if stats["forget"][2] else float("nan")
        if gold is not None:
            out.update(self.pair_gaps(model, z, gold, store, requests, test, where))
        return out

    # splits
    def make_split(self, data: Data, seed: int, val_ratio: float = 0.0) -> tuple[ds.RecSplit, Data]:
        """:func:`~graphunlearn.datasets.user_item_split` of ``data`` (its official train/test where it has
        one) with ``val_ratio`` of each user's training interactions held out for validation (default 0.0:
        none, the protocol's split)."""
        if data.get("num_users") is None:
            raise ValueError("recommendation needs a user-item dataset (movielens-100k, gowalla)")
        split = ds.user_item_split(data, seed=seed, val_ratio=val_ratio)
        return split, split.train_data

    #: what a forget set deletes: :data:`~graphunlearn.datasets.REC_KINDS`
    forget_settings = tuple(ds.REC_KINDS)

    def sample_forget(self, store, split, fraction, seed=0, kind=None, setting=None, **_):
        """Delete a recommendation forget set of ``kind`` (``"interaction"``, the default, ``"user"``,
        ``"item_group"``; see :func:`~graphunlearn.datasets.forget_recommendation`) and return the request.
        ``setting`` is another name for ``kind`` (the name every task's ``sample_forget`` takes).

        Raises:
            ValueError: ``kind`` and ``setting`` both given and different; an unknown kind or a fraction
                :func:`~graphunlearn.datasets.forget_recommendation` refuses.
        """
        if kind is not None and setting is not None and kind != setting:
            raise ValueError(f"recommendation: kind={kind!r} and setting={setting!r} name two forget sets; give one")
        kind = kind or setting or "interaction"
        forget = ds.forget_recommendation(split, kind, fraction, seed=seed)
        return store.delete_nodes(forget) if forget.dim() == 1 else store.delete_edges(forget, layout="edge_index")

    def live_split(self, split, store):
        val = _val_pos(split)
        return ds.RecSplit(store.live_data(), store.edge_index[:, store.edge_mask], split.test_pos, split.num_users,
                           split.num_items, split.official,
                           **({"val_pos": val} if val is not None else {}))

    def split_keys(self):
        # val_pos is optional: split files written before validation interactions existed hold none
        return ("train_pos", "test_pos", "num_users", "num_items", "official")

    def split_to_dict(self, split):
        out = {"train_pos": split.train_pos, "test_pos": split.test_pos, "num_users": split.num_users,
               "num_items": split.num_items, "official": split.official}
        val = _val_pos(split)
        if val is not None and val.numel():  # absent when empty: such a file reads as it always did
            out["val_pos"] = val
        return out

    def split_from_dict(self, blob, store):
        val = blob.get("val_pos")
        return ds.RecSplit(self.stored_train_data(blob, store), blob["train_pos"], blob["test_pos"],
                           blob["num_users"], blob["num_items"],
                           blob["official"], **({"val_pos": val} if val is not None else {}))


REC = register_task(Recommendation())
