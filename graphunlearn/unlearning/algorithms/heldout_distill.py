r"""Held-out distillation: the deleted nodes, queried with their records, are taught to answer as the
original answers nodes it never trained on."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from torch_geometric.utils import k_hop_subgraph

from ...models import message_passing_layers
from ...tasks.base import run_model
from ...tasks.node import graph_before
from ..base import Context, Options, RequestRefused, epochs, fraction, learning_rate, option, register

PAIRINGS = ("rank", "random")


def heldout_partners(ctx: Context, nodes: Tensor, score_nodes: Tensor, heldout: Tensor, heldout_scores: Tensor,
                     how: str, generator: torch.Generator) -> Tensor:
    r"""A held-out partner for each deleted node: a live held-out (validation) node of the same class.

    ``how="rank"`` pairs by quantile within each class: the deleted nodes of class :math:`c` sorted by
    ``score_nodes`` (the original's log-probability of :math:`c`, asked with their records) take the held-out
    nodes of class :math:`c` at the same quantiles of ``heldout_scores`` (the original's log-probability of
    their class on the live graph), so the node the original was surest of gets a partner it is sure of, and
    the least sure one a partner it may get wrong. ``how="random"``: partners drawn uniformly within the class.
    A class without a live held-out node draws from all of them (the partner's class then differs).

    Shapes: nodes, score_nodes [K]; heldout, heldout_scores [H] -> partners [K] (node ids).
    """
    y = ctx.store.y
    out = torch.empty_like(nodes)
    for c in torch.unique(y[nodes]).tolist():  # once per class, before the loop: host reads are fine here
        here = (y[nodes] == c).nonzero().squeeze(1)
        same = y[heldout] == c
        pool, pool_scores = (heldout[same], heldout_scores[same]) if bool(same.any()) else (heldout, heldout_scores)
        if how == "random":
            out[here] = pool[torch.randint(pool.numel(), (here.numel(),), generator=generator, device=pool.device)]
            continue
        pool = pool[torch.argsort(pool_scores, stable=True)]
        ranks = torch.empty_like(here)
        ranks[torch.argsort(score_nodes[here], stable=True)] = torch.arange(here.numel(), device=here.device)
        at = ((ranks.to(torch.float64) + 0.5) / here.numel() * pool.numel()).long().clamp(max=pool.numel() - 1)
        out[here] = pool[at]
    return out


def record_graph(ctx: Context, nodes: Tensor) -> tuple[Tensor | None, Tensor, Tensor, Tensor, Tensor | None]:
    r"""The graph the deleted ``nodes`` are asked on, with their records put back
    (:func:`~graphunlearn.tasks.node.graph_before`), cut to what their answers depend on.

    A model of :math:`L` message-passing layers answers a node from its :math:`L`-hop neighbourhood, and
    normalisations such as GCN's read the degrees of those neighbours, so the :math:`(L+1)`-hop subgraph around
    ``nodes`` gives the same answers as the whole graph at a fraction of the cost when the deleted nodes are
    few. It is used only when the original model, asked on both, gives the same answers there (a model
    holding one embedding row per node, a store with edge weights, or layers run more than once per forward
    fall back to the whole graph). Memory: one feature matrix at a time beside the store's, the whole record
    graph's [N, F] while the original is asked on it, then the cut's rows [N', F] built from the live features
    (:func:`~graphunlearn.tasks.node.graph_before` with ``rows``).

    Returns ``(x, edge_index, at, logits, subset)``: the graph, the rows of ``nodes`` in its answers [K], the
    original's logits for ``nodes`` on it [K, C], and the store's ids of its nodes [N'] (``None``: the whole
    graph).
    """
    store, task = ctx.store, ctx.task
    x_rec, ei_rec = graph_before(store, ctx.requests)
    with torch.no_grad():
        full = task.unit_logits(ctx.original, run_model(ctx.original, x_rec, ei_rec), nodes)
    try:
        hops = len(message_passing_layers(ctx.original)) + 1
    except TypeError:
        hops = None
    if hops is None or x_rec is None or store.edge_weight is not None:
        return x_rec, ei_rec, nodes, full, None
    subset, ei_sub, at, _ = k_hop_subgraph(nodes, hops, ei_rec.as_subclass(Tensor), relabel_nodes=True,
                                           num_nodes=store.num_nodes)
    if subset.numel() == store.num_nodes:
        return x_rec, ei_rec, nodes, full, None
    x_rec = None  # the whole matrix goes before the cut's rows are built: the peak holds one of them, not both
    x_sub = graph_before(store, ctx.requests, rows=subset)[0]
    with torch.no_grad():
        try:
            out = run_model(ctx.original, x_sub, ei_sub)
            cut = task.unit_logits(ctx.original, out, at) if out.size(0) == subset.numel() else None
        except (RuntimeError, ValueError, IndexError):  # a model tied to the full node count
            cut = None
    if cut is None or cut.shape != full.shape or not torch.allclose(cut, full, rtol=1e-4, atol=1e-4):
        x_sub = out = None  # dropped before the whole matrix is built again
        return graph_before(store, ctx.requests)[0], ei_rec, nodes, full, None
    return x_sub, ei_sub, at, full, subset


def deleted_classes(store, num_classes: int) -> Tensor | None:
    """Classes with labelled nodes in the store but none live (every node of them deleted, as
    ``delete_node_class`` does) [C] (bool), or ``None`` when there is none."""
    y = store.y
    labelled = y >= 0
    had = torch.zeros(num_classes, dtype=torch.bool, device=y.device)
    had[y[labelled]] = True
    alive = torch.zeros_like(had)
    alive[y[labelled & store.node_mask]] = True
    gone = had & ~alive
    return gone if bool(gone.any()) else None


def without_classes(logits: Tensor, classes: Tensor) -> Tensor:
    """``logits`` [K, C] with the ``classes`` [C] (bool) set 1,000 below the smallest logit: their softmax
    probability is 0 at any temperature up to 10 (exp(-100)), and a distillation target stays finite."""
    return logits.masked_fill(classes, 0.0) + classes * (logits.detach().min() - 1000.0)


def pair_with_heldout(ctx: Context, rec_logits: Tensor, nodes: Tensor, how: str,
                      generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """The held-out partners of the deleted labelled ``nodes`` (:func:`heldout_partners`, scored by the
    original: the deleted nodes by ``rec_logits``, its logits for them asked with their records, the held-out
    nodes on the live graph) and the original's logits on the live graph [N, C]."""
    store, task, split = ctx.store, ctx.task, ctx.split
    y = store.y
    heldout = task.heldout_units(split)
    heldout = heldout[store.node_mask[heldout] & (y[heldout] >= 0)]
    with torch.no_grad():
        everyone = torch.arange(store.num_nodes, device=store.device)
        live_logits = task.unit_logits(ctx.original, ctx.encode(ctx.original), everyone)
        rec_scores = torch.log_softmax(rec_logits, 1).gather(1, y[nodes].unsqueeze(1)).squeeze(1)
        held_scores = torch.log_softmax(live_logits[heldout], 1).gather(1, y[heldout].unsqueeze(1)).squeeze(1)
    return heldout_partners(ctx, nodes, rec_scores, heldout, held_scores, how, generator), live_logits


def forget_set(ctx: Context, where: str) -> Tensor:
    """The deleted labelled nodes, checked: there are some, and live labelled held-out nodes to pair them with.

    Raises:
        ValueError: no split or no labels, no deleted labelled node, or no live labelled held-out node.
    """
    store, task, split = ctx.store, ctx.task, ctx.split
    if split is None or store.y is None:
        raise ValueError(f"{where} needs split= (its held-out nodes) and node labels on the store")
    y = store.y
    nodes = task.forget_units(store, ctx.requests, split)
    nodes = nodes[y[nodes] >= 0]
    if nodes.numel() == 0:
        raise RequestRefused(f"{where}: the requests delete no labelled node; it forgets deleted nodes (requests that "
                         "only erase feature values are not supported: use retrain, finetune or d2dgn)")
    heldout = task.heldout_units(split)
    if heldout is None or not bool((store.node_mask[heldout] & (y[heldout] >= 0)).any()):
        raise ValueError(f"{where}: the split has no live labelled held-out (validation) node to take the targets "
                         "from")
    return nodes


@dataclass
class HeldoutDistillOptions(Options):
    epochs: int = epochs(6)
    lr: float = learning_rate(0.005)
    alpha: float = fraction(0.5, "weight of the forget term; 1 - alpha weighs the retained terms")
    tau: float = option(1.0, float, low=0, low_open=True, doc="distillation temperature (> 0)")
    pairing: str = option("rank", choices=PAIRINGS, doc="held-out partners matched by confidence quantile "
                                                        "within the class, or drawn at random within it")
    ce: float = option(1.0, float, low=0, doc="weight of the cross-entropy on the live training nodes beside "
                                              "the retained distillation")
    sample_ratio: float = option(1.0, float, low=0, doc="retained nodes sampled per affected node, per epoch")
    deleted_classes: str = option("mask", choices=("mask", "partners"),
                                  doc="classes left without a live labelled node: 'mask' takes them out of every "
                                      "target (the original's answers renormalised over the other classes); "
                                      "'partners': the deleted nodes of such a class take partners of any class")


@register("heldout_distill", tasks=("node",), options=HeldoutDistillOptions,
          requires="node labels on the store and live held-out (validation) nodes in the split")
def run(ctx: Context) -> dict:
    r"""Held-out distillation for node deletion: the whole model is trained for a fixed budget on

    .. math::
        L = \alpha\, \frac{1}{|D_f|} \sum_{v \in D_f}
              \mathrm{KL}_\tau\big(f_{\theta_0}(G_r)_{\pi(v)} \,\big\|\, f_\theta(G)_v\big)
          + (1 - \alpha) \Big[\mathrm{KL}_\tau\big(f_{\theta_0}(G_r) \,\|\, f_\theta(G_r)\big)_{R}
              + c\, \mathrm{CE}\big(f_\theta(G_r)_{T_r}, y_{T_r}\big)\Big]

    :math:`f_{\theta_0}` is the original model, :math:`G_r` the store's live graph, :math:`G` the graph with
    the deleted nodes' records put back (their features and edges, as an attacker holding them queries,
    :func:`~graphunlearn.tasks.node.graph_before`), :math:`R` the live affected nodes plus ``sample_ratio``
    times as many live nodes drawn per epoch, :math:`T_r` the live training nodes, :math:`c` = ``ce``.
    :math:`\pi(v)` is a live held-out (validation) node of the deleted node's class
    (:func:`heldout_partners`): the target of a deleted node is what the original answers a node of its
    class it never trained on. A model retrained without :math:`v` answers :math:`v` as it answers unseen
    nodes: right about as often as on validation nodes (Cora: about 80%), with their confidence; the
    original, which trained on :math:`v`, answers it right nearly always. Matching partners by confidence
    quantile (``pairing="rank"``) keeps the original's ordering: the deleted nodes it was least sure of are
    the ones that inherit the partners it gets wrong.

    A class left without any live labelled node (every node of it deleted, as ``delete_node_class`` does) is one
    a retrained model never learns, so it never answers it. With ``deleted_classes="mask"`` (default) every
    target gives such a class no probability (:func:`without_classes`): a deleted node of it is taught the
    original's own answer on its record with the class taken out (no partner of its class is left, and one of
    another class would be a random answer), and the retained targets, the original on the live graph, lose the
    class too, so the live nodes the original called it move to their next answer. ``"partners"``: such nodes
    take held-out partners of any class, and the retained targets keep the class. Deletions that leave every
    class a live node are unaffected.

    The idea is calibrated distillation towards non-member outputs (as D2DGN's destroyer, Sinha et al., arXiv
    2309.16173, distils deleted units towards an uninformed teacher, but the teacher here is the original on
    held-out nodes, so the deleted nodes end where non-members are rather than at random). It uses only the
    forget set, the retained graph and held-out validation nodes; never test nodes nor a retrained model.
    It matches the retrained model's behaviour on the deleted nodes in distribution (accuracy, confidence),
    not node by node. Fixed budget, no selection on validation (selection would undo the forgetting). The
    record graph is cut to the deleted nodes' :math:`(L+1)`-hop neighbourhood where that gives the same
    answers (:func:`record_graph`). Defaults (6 epochs at ``lr=0.005``: Cora's 5x speed target) and
    measurements: ``docs/methods.md``.

    Raises:
        ValueError: no split, no labels, no deleted node, or no live held-out node to take targets from.
    """
    o = ctx.options
    store, task, split = ctx.store, ctx.task, ctx.split
    nodes = forget_set(ctx, "heldout_distill")
    task.check_trainable(store, split, "heldout_distill")
    g = ctx.generator()
    x_rec, ei_rec, at, rec_logits, _ = record_graph(ctx, nodes)  # the deleted nodes' records put back
    partners, live_logits = pair_with_heldout(ctx, rec_logits, nodes, o.pairing, g)
    target = live_logits[partners]
    gone = deleted_classes(store, live_logits.size(1)) if o.deleted_classes == "mask" else None
    if gone is not None:  # a model retrained without any node of a class never answers it
        orphans = gone[store.y[nodes]]
        target = torch.where(orphans.unsqueeze(1), rec_logits, target)  # the original's own answer, class out
        target, live_logits = without_classes(target, gone), without_classes(live_logits, gone)
    retained = task.retain_sampler(store, ctx.requests, split, o.sample_ratio)
    train = split.train_idx[store.node_mask[split.train_idx]]
    tau, alpha, ce = float(o.tau), float(o.alpha), float(o.ce)

    def loss_fn(_):
        forget = task.distill_loss(task.unit_logits(ctx.model, run_model(ctx.model, x_rec, ei_rec), at), target, tau)
        z = ctx.encode(ctx.model)
        units = retained(g)
        keep = task.distill_loss(task.unit_logits(ctx.model, z, units), live_logits[units], tau)
        if ce:  # the training loss on the live training nodes, from the same forward pass
            keep = keep + ce * task.unit_loss(task.unit_logits(ctx.model, z, train), train, store)
        return alpha * forget + (1 - alpha) * keep

    info = ctx.optimise(loss_fn, epochs=o.epochs, lr=o.lr, select=False)
    info["forgotten_nodes"] = int(nodes.numel())
    info["record_nodes"] = int(x_rec.size(0)) if x_rec is not None else store.num_nodes
    return info
