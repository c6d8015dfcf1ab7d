"""Distill to Delete (D2DGN): a student learns from a preserver and a destroyer teacher."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch_geometric.data import Data

from ...models import fresh_copy
from ...store import GraphStore
from ...tasks.base import deleted_edge_ids, make_generator, pick, run_model
from ...tasks.local import retain_sampler as local_retain_sampler
from ...train import fit
from ..base import (
    Context,
    Options,
    calibrate_every,
    calibrate_reference,
    calibrate_switch,
    calibrate_tolerance,
    calibration,
    epochs,
    fraction,
    learning_rate,
    option,
    register,
)
from .heldout_distill import record_graph


@dataclass
class D2DGNOptions(Options):
    epochs: int = epochs(8)
    lr: float = learning_rate(0.005)
    alpha: float = fraction(0.99, "weight of the preserver term; 1 - alpha weighs the destroyer term")
    tau: float = option(1.0, float, low=0, low_open=True, doc="distillation temperature (> 0)")
    beta: float = option(1.0, float, low=0, doc="weight of the embedding MSE beside each KL term")
    sample_ratio: float = option(1.0, float, low=0, doc="retained units sampled per affected unit, per epoch")
    from_scratch: bool = option(False, doc="start the student from a fresh initialisation")
    destroyer: str = option("random", choices=("random", "random_edges", "uniform"),
                            doc="a freshly initialised destroyer, one trained on random edges (link), or a uniform "
                                "one (zero logits and embeddings: every pair 0.5, every class alike)")
    eval_every: int = option(4, int, low=1, doc="epochs between validations")
    max_pairs: int | None = option(None, int, low=1, doc="cap on retained units per epoch (None: no cap)")
    forget_graph: str = option("records", choices=("records", "live"),
                               doc="node classification: the forget term asks the deleted nodes with their records "
                                   "put back, as evaluation and calibration ask them ('records'), or on the live "
                                   "graph, where they have neither features nor edges ('live')")
    calibrate: bool = calibrate_switch()
    calibrate_tolerance: float = calibrate_tolerance()
    calibrate_every: int = calibrate_every()
    calibrate_reference: float | None = calibrate_reference()


def _random_edge_teacher(ctx: Context, g: torch.Generator) -> nn.Module:
    """A destroyer trained briefly (20 epochs at the task recipe's learning rate) on as many uniformly random
    node pairs as the graph has edges."""
    store = ctx.store
    n, m = store.num_nodes, store.num_live_edges
    dev = store.device
    pairs = torch.stack([torch.randint(n, (m,), generator=g, device=dev),
                         torch.randint(n, (m,), generator=g, device=dev)])
    pairs = pairs[:, pairs[0] != pairs[1]]
    # each pair once, as a graph holds it (a store refuses repeated edges)
    pairs = torch.unique(torch.stack([pairs.min(0).values, pairs.max(0).values]), dim=1)
    fake = GraphStore(Data(x=store.live_x(), edge_index=torch.cat([pairs, pairs.flip(0)], 1), num_nodes=n))
    teacher = fresh_copy(ctx.original, seed=ctx.seed + 1).requires_grad_(True)
    # the task's plain recipe rate (link: 0.01) for every backbone: 20 epochs at a backbone's slower rate
    # (GIN's 0.001) would leave the destroyer near its initialisation
    fit(teacher, fake, None, task=ctx.task, epochs=20, lr=ctx.task.recipe["lr"], seed=ctx.seed, progress=False,
        _where="d2dgn (destroyer)")
    return teacher.eval()


#: retained units per step on sampled computation graphs when ``max_pairs`` is not set
LOCAL_CAP = 1024


#: GIN's own defaults for link prediction (chosen on development seeds 0 and 1 of Cora and Amazon Photo:
#: ``docs/methods.md``): a tenth of GIN's training rate (at the plain 0.005, five times that rate, Dt-AUROC fell
#: 7-35 points), and a uniform destroyer weighed less: under GIN's sum aggregation a freshly initialised model
#: embeds neighbours alike, so a random destroyer teaches that the deleted edges are links
GIN_OPTIONS = dict(lr=0.0001, destroyer="uniform", alpha=0.995)

#: GCN's own defaults for link prediction (chosen on development seeds 7, 8, 9 of Cora "in" and "out", 7 and 8 of
#: Amazon Photo, 7 of Coauthor CS: ``docs/methods.md``): half the plain rate. At 0.005 the first Adam steps (each
#: parameter moves by about the rate, whatever the loss's weight) left Amazon Photo 0.9-1.4 Dt-AUROC points below
#: gold on those seeds; at 0.0025, 0.2-0.4, with Cora's mean distance to gold on Df as before (0.027 against 0.028)
GCN_OPTIONS = dict(lr=0.0025)

#: GAT's own defaults for link prediction (chosen on development seeds 7, 8, 9 of Cora "in" and "out" and 7, 8 of
#: Amazon Photo "in", 500 epochs: ``docs/methods.md``): GCN's half rate, for the same symptom. At 0.005 Photo
#: fell 0.8-1.1 Dt-AUROC points below gold on those seeds (1.23 on the protocol's, ``link-gat-grid``); at
#: 0.0025, 0.2-0.5, with Cora's mean distance to gold on Df as before (0.0303 against 0.0301; two golds 0.0313)
GAT_OPTIONS = dict(lr=0.0025)


@register("d2dgn", tasks=("link", "node"), options=D2DGNOptions, local=True,
          backbone_options={"link/gcn": GCN_OPTIONS, "link/gat": GAT_OPTIONS, "link/gin": GIN_OPTIONS},
          requires="reset_parameters() on every module holding parameters (for the destroyers 'random' and "
                   "'random_edges', and for from_scratch)")
def run(ctx: Context) -> dict:
    r"""Distill to Delete (Sinha et al., arXiv 2309.16173): a student learns from two frozen teachers,

    .. math::
        L = \alpha \big[\mathrm{KL}_\tau(T_p \,\|\, S)_{R} + \beta\, \mathrm{MSE}(h_S, h_{T_p})_{V_R}\big]
          + (1 - \alpha)\, \big[\mathrm{KL}_\tau(T_d \,\|\, S)_{D_f} + \beta\, \mathrm{MSE}(h_S, h_{T_d})_{V_f}\big]

    The preserver :math:`T_p` is the original model, the destroyer :math:`T_d` a fresh copy of its architecture
    (``reset_parameters()``, ``destroyer="random"``), one trained briefly on random edges (``"random_edges"``, link
    only), or uniform (``"uniform"``: zero logits and embeddings, i.e. probability 0.5 for every pair and equal
    class probabilities, without running a model). Every model passes messages over the retained graph only,
    except in the node forget term below, which asks the deleted nodes with their records. The
    task supplies the units and the KL: for link prediction :math:`R` holds the live edges of the affected
    neighbourhood, ``sample_ratio`` times as many other live edges and as many sampled node pairs, with the
    two-class KL on the pair logits, and :math:`D_f` the deleted edges; for node classification :math:`R` the live
    affected nodes plus a sample, with the softmax KL over class logits, and :math:`D_f` the deleted nodes, whose
    forget term (student and destroyer alike, its KL and its MSE) asks them with their records put back
    (``forget_graph="records"``, the default: their features and edges, and whatever else the same requests
    deleted or erased, as evaluation, calibration and an attacker holding them ask,
    :func:`~graphunlearn.tasks.node.graph_before`, cut to their
    :math:`(L+1)`-hop neighbourhood where that gives the same answers,
    :func:`~graphunlearn.unlearning.algorithms.heldout_distill.record_graph`). On the live graph
    (``forget_graph="live"``, the behaviour before 2026-12-02) a deleted node has neither features nor edges,
    so the term reaches little but the biases: on Cora's development seeds the deleted nodes' answers with their
    records kept their confidence (posterior MIA 0.27 against gold's 0.57; 0.46 on the records). On either graph
    d2dgn still answers nearly every deleted node of Cora with its class: the destroyer lowers the confidence,
    not the argmax (``docs/methods.md``).
    :math:`V_R` are the live affected nodes plus a sample, :math:`V_f` the deleted nodes. ``max_pairs`` caps the
    retained units drawn per epoch. The student starts from the original weights (``from_scratch=True``: a fresh
    initialisation); the epoch kept is the best on validation.

    On sampled computation graphs (``unlearn(num_neighbors=...)``, :mod:`graphunlearn.tasks.local`), each
    step's units are capped at ``max_pairs`` (default 1024): half from the one-hop neighbourhood of the
    deleted elements, half uniformly from the live graph, with as many non-edges for link prediction
    (:math:`V_R` is then their endpoints); the student and both teachers run on the one computation graph of
    every node the step touches, and validation reads sampled computation graphs too. Its cost then follows
    the deletion, not the graph, except on node deletion with ``forget_graph="records"``: the record graph is
    built once (one pass over the live edges and two forwards of the original, on the whole record graph and
    on its cut) and the forget term runs on the deleted nodes' whole
    :math:`(L+1)`-hop neighbourhood in it at every step, unsampled (on the whole record graph for a model that
    cannot be cut to it).

    With ``calibrate=True`` the epoch kept is chosen by calibrated forgetting
    (:class:`~graphunlearn.unlearning.base.Calibration`, ``docs/calibration.md``): a check every
    ``calibrate_every`` epochs, stopping where the deleted units score like held-out validation units.
    Defaults and their tuning: ``docs/methods.md``. For link prediction a GCN (the project's or PyG's:
    :func:`~graphunlearn.models.backbone_name`) runs with :data:`GCN_OPTIONS` (``lr=0.0025``), a GAT with
    :data:`GAT_OPTIONS` (``lr=0.0025``) and a GIN with :data:`GIN_OPTIONS` (``lr=0.0001``,
    ``destroyer="uniform"``, ``alpha=0.995``) unless the caller sets them; other backbones and node
    classification run with the plain defaults.
    """
    o = ctx.options
    g = ctx.generator()
    store, task = ctx.store, ctx.task
    if o.from_scratch:
        ctx.model = fresh_copy(ctx.original, seed=ctx.seed).requires_grad_(True)
    if o.destroyer == "random_edges":
        if not task.pairwise:
            raise ValueError("d2dgn: destroyer='random_edges' trains a predictor of node pairs; use 'random' or "
                             f"'uniform' for task {task.name!r}")
        if ctx.local:
            raise ValueError("d2dgn: destroyer='random_edges' trains on a random graph as large as the store; use "
                             "'random' or 'uniform' with sampled computation graphs (num_neighbors)")
        # drawn alike on every rank of a data-parallel job: the ranks compare the graph it trains on
        destroyer = _random_edge_teacher(ctx, make_generator(ctx.seed, store.device))
    elif o.destroyer == "random":
        destroyer = fresh_copy(ctx.original, seed=ctx.seed + 1).eval()
    else:  # "uniform": no model; its logits and embeddings are zeros
        destroyer = None
    tau, alpha, beta = float(o.tau), float(o.alpha), float(o.beta)
    live_nodes = store.live_node_ids()
    if live_nodes.numel() == 0:
        raise ValueError("d2dgn: no live nodes left (every node was deleted), nothing to preserve")
    if task.pairwise and store.num_live_edges == 0:
        raise ValueError("d2dgn: no live edges left (every edge was deleted), nothing to preserve")
    deleted_nodes = ctx.deleted_nodes
    forget = task.forget_units(store, ctx.requests, ctx.split)
    if ctx.local:  # cost follows the deletion: the one-hop neighbourhood and a capped sample per step
        cap = ctx.per_rank(o.max_pairs or LOCAL_CAP)  # data-parallel: the ranks share the cap
        retained, _ = local_retain_sampler(store, deleted_nodes, deleted_edge_ids(ctx.requests),
                                           pairwise=task.pairwise, cap=cap)
        affected, n_sample = None, 0
    else:
        retained = task.retain_sampler(store, ctx.requests, ctx.split, o.sample_ratio, o.max_pairs)
        affected = ctx.affected_nodes()
        n_sample = int(o.sample_ratio * max(1, affected.numel()))

    # data-parallel: each rank takes its share of the deleted units (ctx.share; all of them in one process)
    forget, deleted_nodes = ctx.share(forget), ctx.share(deleted_nodes)
    # node classification: the deleted nodes asked with their records put back (their live rows have neither
    # features nor edges, so a forget term there moves little but biases); the destroyer's answers there are
    # fixed. Built before the loop, even if a calibrated run then takes no step: building it synchronises with
    # the host, which no step may
    records = None
    if not task.pairwise and o.forget_graph == "records" and forget.numel():
        x_rec, ei_rec, at, rec_logits, _ = record_graph(ctx, forget)
        if destroyer is not None:
            with torch.no_grad():
                h_rec_d = run_model(destroyer, x_rec, ei_rec)
                target_logits, target_h = task.unit_logits(destroyer, h_rec_d, at), h_rec_d[at]
        else:  # uniform: zero logits (the original's answers there give the shape) and zero outputs
            target_logits, target_h = torch.zeros_like(rec_logits), None
        records = (x_rec, ei_rec, at, target_logits, target_h)
    # the step graph's rows of the deleted units: none needed when the forget term reads the records
    step_forget, step_deleted = (forget[:0], deleted_nodes[:0]) if records is not None else (forget, deleted_nodes)

    def loss_fn(_):
        units = retained(g) if ctx.local else ctx.share(retained(g))
        # V_R: the units themselves when they are nodes; else the affected nodes plus a sample, or (local)
        # the retained pairs' endpoints, near the deletion and random, which adds no seeds to the step
        if units.dim() == 1:
            nodes = units
        elif affected is not None:
            nodes = torch.cat([affected, pick(live_nodes, n_sample, g)])
        else:
            nodes = units.reshape(-1)
        step = ctx.step_graph([units, step_forget, nodes, step_deleted], g)
        units_, forget_, nodes_, deleted_ = step.units
        h = step.encode(ctx.model)
        h_p = step.encode(ctx.original, frozen=True)
        loss_r = task.distill_loss(task.unit_logits(ctx.model, h, units_),
                                   task.unit_logits(ctx.original, h_p, units_), tau)
        loss_r = loss_r + beta * F.mse_loss(h[nodes_], h_p[nodes_])
        loss_f = torch.zeros((), device=h.device)
        if records is not None:
            x_rec, ei_rec, at, target_logits, target_h = records
            h_rec = run_model(ctx.model, x_rec, ei_rec)
            h_f = h_rec[at]
            loss_f = (task.distill_loss(task.unit_logits(ctx.model, h_rec, at), target_logits, tau)
                      + beta * F.mse_loss(h_f, target_h if target_h is not None else torch.zeros_like(h_f)))
        elif forget.numel() or deleted_nodes.numel():
            h_d = step.encode(destroyer, frozen=True) if destroyer is not None else None
            if forget.numel():
                logits = task.unit_logits(ctx.model, h, forget_)
                target = (task.unit_logits(destroyer, h_d, forget_) if destroyer is not None
                          else torch.zeros_like(logits))
                loss_f = task.distill_loss(logits, target.detach(), tau)
            if deleted_nodes.numel():
                target = h_d[deleted_] if h_d is not None else torch.zeros_like(h[deleted_])
                loss_f = loss_f + beta * F.mse_loss(h[deleted_], target)
        return alpha * loss_r + (1 - alpha) * loss_f

    return ctx.optimise(loss_fn, epochs=o.epochs, lr=o.lr, eval_every=o.eval_every, **calibration(o))
