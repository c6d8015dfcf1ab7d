"""Attacks on unlearned models: the shadow-trained membership-inference attacker of the protocol and the
MI ratio (``../shared/PROTOCOL.md``)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .. import checks
from ..models import card_of, fresh_copy
from ..models.card import weight_distance
from ..store import GraphStore
from ..tasks import LINK
from ..tasks.base import check_scores, make_generator
from ..train import fit
from ..train.loop import optimise


class MIAttacker(nn.Module):
    """Membership-inference attacker on link embeddings: an MLP on ``[z_u * z_v, |z_u - z_v|]``."""

    def __init__(self, dim: int, hidden: int = 64):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(2 * dim, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    @staticmethod
    def features(z: Tensor, pairs: Tensor) -> Tensor:
        a, b = z[pairs[0]], z[pairs[1]]
        return torch.cat([a * b, (a - b).abs()], 1)

    def forward(self, z: Tensor, pairs: Tensor) -> Tensor:
        """P(present) per pair. Shapes: z [N, d], pairs [2, K] -> [K]."""
        return torch.sigmoid(self.mlp(self.features(z, pairs)).squeeze(1))


def train_mi_attacker(model: nn.Module, store: GraphStore, *, epochs: int = 100, attack_steps: int = 300,
                      max_pairs: int = 20000, seed: int = 0) -> MIAttacker:
    """Train a shadow model and an attacker, as ``../shared/PROTOCOL.md`` describes.

    The live training edges are split in half: the shadow model (same architecture as ``model``, fresh
    weights, the link-prediction loop for ``epochs`` at ``model``'s own learning rate and weight decay: its
    card's recipe, else the task's recipe for it, ``LINK.recipe_for``) trains on one half ("present"); the
    other half is held
    out ("absent"). The attacker learns present vs absent from the shadow model's embeddings of up to
    ``max_pairs`` pairs of each kind (a uniform sample: the full halves of ogbl-ddi are 0.5M pairs each).
    """
    from torch_geometric.data import Data

    where = "evaluate.train_mi_attacker"
    checks.check_instance(where, "model", model, nn.Module)
    checks.check_instance(where, "store", store, GraphStore)
    checks.check_int(where, "epochs", epochs, low=1)
    checks.check_int(where, "attack_steps", attack_steps, low=1)
    checks.check_int(where, "max_pairs", max_pairs, low=1)
    checks.check_seed(where, seed)
    LINK.check_device(where, model, store)
    g = make_generator(seed, store.device)
    live = store.live_edge_ids()
    if live.numel() < 2:
        raise ValueError(f"{where}: {live.numel()} live edge(s) left; the shadow model needs at least 2 (one "
                         "present, one absent)")
    perm = live[torch.randperm(live.numel(), generator=g, device=live.device)]
    present, absent = store.edge_index[:, perm[: perm.numel() // 2]], store.edge_index[:, perm[perm.numel() // 2:]]
    shadow_graph = Data(x=store.live_x(), edge_index=torch.cat([present, present.flip(0)], 1),
                        num_nodes=store.num_nodes)
    shadow_store = GraphStore(shadow_graph, undirected=True)
    shadow = fresh_copy(model, seed=seed).requires_grad_(True)
    fit(shadow, shadow_store, None, task=LINK, epochs=epochs, seed=seed, progress=False, **_trained_like(model))
    with torch.no_grad():
        z = LINK.encode(shadow.eval(), shadow_store)
    check_scores(where, "the shadow model", z)
    n = min(present.size(1), absent.size(1), max_pairs)  # both halves are already in random order
    pairs = torch.cat([present[:, :n], absent[:, :n]], 1)
    labels = torch.cat([torch.ones(n, device=z.device), torch.zeros(n, device=z.device)])
    attacker = MIAttacker(z.size(1)).to(z.device)
    feats = MIAttacker.features(z, pairs)
    optimise(attacker, lambda *_: nn.functional.binary_cross_entropy_with_logits(attacker.mlp(feats).squeeze(1),
                                                                                 labels),
             epochs=attack_steps, lr=0.01, where=f"{where} (attacker)")
    return attacker.eval()


def _trained_like(model: nn.Module) -> dict:
    """The learning rate and weight decay ``model`` was trained with (its card's recipe; without one, the
    link task's recipe for its backbone), so that the shadow model imitates its training."""
    card = card_of(model)
    recipe = card.recipe if card is not None and card.recipe.get("lr") is not None else LINK.recipe_for(model)
    return {k: recipe[k] for k in ("lr", "weight_decay") if recipe.get(k) is not None}


@torch.no_grad()
def mi_ratio(attacker: MIAttacker, before: nn.Module, after: nn.Module, store: GraphStore, forget) -> float:
    """``mean P_before(present) / mean P_after(present)`` over the deleted edges, both models run on the
    retained graph. Above 1: the attacker is less sure after unlearning that the deleted edges were used."""
    where = "evaluate.mi_ratio"
    checks.check_instance(where, "attacker", attacker, MIAttacker)
    checks.check_instance(where, "before", before, nn.Module)
    checks.check_instance(where, "after", after, nn.Module)
    checks.check_instance(where, "store", store, GraphStore)
    requests = store.check_requests(forget, where=where, name="forget")
    deleted = torch.unique(torch.cat([r.edge_ids for r in requests]))
    if deleted.numel() == 0:
        raise ValueError("mi_ratio: the requests delete no edges")
    pairs = store.edge_index[:, deleted]
    z_before, z_after = LINK.encode(before.eval(), store), LINK.encode(after.eval(), store)
    check_scores(where, "before", z_before)
    check_scores(where, "after", z_after)
    p_before = attacker(z_before, pairs).mean()
    p_after = attacker(z_after, pairs).mean()
    return (p_before / p_after).item()


SIMILARITIES = ("cosine", "dot")


def _embeddings(where: str, model: nn.Module, store: GraphStore, task) -> Tensor:
    """The node representations [N, d] an attacker reads: ``task.encode`` when a task is given, else
    :func:`graphunlearn.tasks.encode` on the live graph; the model is run in eval mode and left as it was."""
    from ..tasks import encode, get_task

    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            z = encode(model, store.live()) if task is None else get_task(task, where=where).encode(model, store)
    finally:
        model.train(was)
    check_scores(where, "the model", z)
    return z


def _similarity(z: Tensor, pairs: Tensor, similarity: str) -> Tensor:
    a, b = z[pairs[0]].double(), z[pairs[1]].double()
    if similarity == "dot":
        return (a * b).sum(-1)
    return nn.functional.cosine_similarity(a, b, dim=-1)


@torch.no_grad()
def edge_reconstruction_auroc(model: nn.Module, store: GraphStore, requests, *, num_negatives: int | None = None,
                              seed: int = 0, similarity: str = "cosine", task=None) -> float:
    r"""Success of an edge-reconstruction attack on the model's node embeddings: the AUROC of the deleted
    edges against never-existing pairs, each pair scored by the similarity of its endpoints' embeddings,

    .. math::
        s_{uv} = \frac{z_u^\top z_v}{\lVert z_u\rVert \lVert z_v\rVert} \;(\text{cosine}) \quad\text{or}\quad
        s_{uv} = z_u^\top z_v \;(\text{dot}), \qquad
        \text{AUROC} = P(s_{\text{deleted}} > s_{\text{never}}) \text{ (ties half)},

    as TrendAttack (Zhang et al., WSDM 2026) and GraphToxin measure an attacker rebuilding deleted edges.
    The embeddings are those of the model run on the store's live graph (the deleted edges absent), as an
    attacker holding the unlearned model sees them. High: the deleted edges are still recoverable. Read it
    beside gold's value (a model retrained without the edges): structure alone makes many deleted edges
    plausible (common neighbours), so a good method lands near gold's value, not necessarily at 0.5.

    Positives are the deleted edges whose two endpoints are live (an edge removed with a deleted node has
    no live endpoint to score); negatives are ``num_negatives`` distinct pairs of two different live nodes,
    drawn uniformly with a generator seeded by ``seed``, that are no edge of the store in either direction,
    live or deleted (:func:`graphunlearn.datasets.sample_negatives` on the live nodes).

    Args:
        model: the model under attack (the unlearned one, the original, or gold).
        store: the store after the requests.
        requests: one :class:`DeletionRequest` of ``store`` or a list or tuple of them.
        num_negatives: how many never-existing pairs (default ``None``: as many as deleted edges).
        seed: seed of the negative sample (default 0).
        similarity: ``"cosine"`` (default) or ``"dot"``.
        task: a task name or :class:`~graphunlearn.tasks.Task` whose ``encode`` gives the embeddings
            (default ``None``: :func:`graphunlearn.tasks.encode` on ``store.live()``).

    Shapes:
        embeddings [N, d]; deleted pairs [2, F]; negatives [2, num_negatives].

    Returns:
        The AUROC, a float in [0, 1] (:func:`graphunlearn.metrics.roc_auc`, torchmetrics).

    Raises:
        TypeError: an argument of the wrong type.
        ValueError: an unknown ``similarity``; the requests delete no edge between live nodes; fewer than two
            live nodes, or fewer never-existing pairs among them than ``num_negatives``; non-finite embeddings.
    """
    from ..datasets import sample_negatives
    from ..metrics import roc_auc
    from ..tasks.base import deleted_edge_ids

    where = "evaluate.edge_reconstruction_auroc"
    checks.check_instance(where, "model", model, nn.Module)
    checks.check_instance(where, "store", store, GraphStore)
    if similarity not in SIMILARITIES:
        raise ValueError(f"{where}: similarity must be one of {SIMILARITIES}, got {similarity!r}")
    if num_negatives is not None:
        checks.check_int(where, "num_negatives", num_negatives, low=1)
    checks.check_seed(where, seed)
    requests = store.check_requests(requests, where=where, name="requests")
    deleted = store.edge_index[:, deleted_edge_ids(requests)]
    deleted = deleted[:, store.node_mask[deleted[0]] & store.node_mask[deleted[1]]]
    if deleted.size(1) == 0:
        raise ValueError(f"{where}: the requests delete no edge between live nodes; there is nothing to rebuild")
    live = store.live_node_ids()
    if live.numel() < 2:
        raise ValueError(f"{where}: {live.numel()} live node(s); never-existing pairs need at least 2")
    num = deleted.size(1) if num_negatives is None else num_negatives
    # sample in live-node numbering, so that every negative joins two live nodes; every edge of the store
    # between live nodes (live or deleted) is excluded
    local = torch.full((store.num_nodes,), -1, dtype=torch.long, device=live.device)
    local[live] = torch.arange(live.numel(), device=live.device)
    known = local[store.edge_index]
    known = known[:, (known >= 0).all(0)].cpu()
    try:
        neg = sample_negatives(live.numel(), num, known, torch.Generator().manual_seed(seed))
    except ValueError as exc:
        raise ValueError(f"{where}: num_negatives={num} never-existing pairs asked for among {live.numel()} live "
                         f"nodes: {exc}") from None
    neg = live[neg.to(live.device)]
    z = _embeddings(where, model, store, task)
    return roc_auc(_similarity(z, deleted.to(z.device), similarity), _similarity(z, neg.to(z.device), similarity))


@torch.no_grad()
def prediction_change(original: nn.Module, model: nn.Module, store: GraphStore, split, *, task=None,
                      units: Tensor | None = None) -> dict:
    r"""Did unlearning change anything: the relative weight distance and the share of held-out decisions
    that flip between ``original`` and ``model``,

    .. math::
        \text{weight\_l2} = \frac{\lVert\theta' - \theta\rVert_2}{\lVert\theta\rVert_2}, \qquad
        \text{flip\_rate} = \frac{1}{|H|} \sum_{h \in H} [\hat y'(h) \ne \hat y(h)],

    the weights over the floating-point state-dict entries both models share (a method that wraps the
    original as ``.base``, GNNDelete, is compared on the wrapped weights, so its ``weight_l2`` is 0 by
    construction and its change shows in ``flip_rate``); :math:`H` the task's held-out units
    (``task.heldout_units(split)``: validation pairs, validation nodes, test interactions), decided on the
    store's live graph: for pair tasks the sign of the logit ``task.unit_logits(model, task.encode(model,
    store), H)``, for node classification the argmax of the class logits. A method that silently does
    nothing shows 0 and 0 (compare ``unlink``); retraining flips some decisions. For link prediction the
    held-out units are the validation positives only, which two well-trained models mostly both call
    edges (on a 300-node synthetic graph a retrained model flips none of 26); pass
    ``units=torch.cat([split.val_pos, split.val_neg], 1)`` for a more sensitive sample.

    Args:
        original: the model before unlearning.
        model: the unlearned model.
        store: the store after the requests (both models run on its live graph).
        split: the task's split (gives the held-out units).
        task: a task name or :class:`~graphunlearn.tasks.Task` (default ``None``: the split's).
        units: the units to decide on (default ``None``: ``task.heldout_units(split)``).

    Shapes:
        held-out units: [2, H] pairs or [H] nodes; logits [H] or [H, C].

    Returns:
        ``{"weight_l2": float, "flip_rate": float, "num_units": int}`` (``weight_l2`` NaN when the models
        share no floating-point weight).

    Raises:
        TypeError: an argument of the wrong type, or a split of another task.
        ValueError: no unit to decide on (the split holds no held-out unit, or ``units`` is empty); non-finite
            logits.
    """
    from ..tasks import get_task

    where = "evaluate.prediction_change"
    checks.check_instance(where, "original", original, nn.Module)
    checks.check_instance(where, "model", model, nn.Module)
    checks.check_instance(where, "store", store, GraphStore)
    found = get_task(task, split, where=where, split_optional=False)
    if units is not None:
        checks.check_instance(where, "units", units, Tensor)
        if units.numel() == 0:
            raise ValueError(f"{where}: units is empty; nothing to compare")
        held = units
    else:
        held = found.heldout_units(split)
        if held is None or held.numel() == 0:
            raise ValueError(f"{where}: the split holds no held-out unit for task {found.name!r}; nothing to "
                             "compare (pass units=)")
    decisions = []
    for name, m in (("original", original), ("model", model)):
        was = m.training
        m.eval()
        try:
            z = found.encode(m, store)
            check_scores(where, name, z)
            logits = found.unit_logits(m, z, held.to(z.device))
        finally:
            m.train(was)
        check_scores(where, f"{name}'s held-out logits", logits)
        decisions.append(logits > 0 if logits.dim() == 1 else logits.argmax(-1))
    flips = (decisions[0] != decisions[1].to(decisions[0].device)).double().mean().item()
    return {"weight_l2": weight_distance(original, model), "flip_rate": flips, "num_units": decisions[0].numel()}


def link_confidence(model: nn.Module, store: GraphStore, *, task=None):
    r"""``scores(pairs) -> Tensor``: the model's confidence :math:`\sigma(\text{logit}_{uv})` in each pair, the
    logit from the task's decoder (default: link prediction's) on the embeddings of the store's live graph,
    computed once here. Pass it to :func:`graphunlearn.datasets.splits.hard_forget_edges` with
    ``kind="confident"`` (the datasets layer cannot run a model itself).

    Shapes:
        pairs [2, K] (on any device) -> [K] float on the pairs' device.

    Raises:
        TypeError: an argument of the wrong type. ValueError: non-finite embeddings.
    """
    from ..tasks import get_task

    where = "evaluate.link_confidence"
    checks.check_instance(where, "model", model, nn.Module)
    checks.check_instance(where, "store", store, GraphStore)
    found = LINK if task is None else get_task(task, where=where)
    z = _embeddings(where, model, store, found)

    @torch.no_grad()
    def scores(pairs: Tensor) -> Tensor:
        was = model.training
        model.eval()
        try:
            return torch.sigmoid(found.decode(model, z, pairs.to(z.device))).to(pairs.device)
        finally:
            model.train(was)

    return scores
