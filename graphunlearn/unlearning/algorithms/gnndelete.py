"""GNNDelete: trainable deletion operators after each message-passing layer of a frozen model."""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from ...models import GNNDelete, message_passing_layers
from ...models.gnndelete import INITS
from ...tasks import sample_pairs
from ...tasks.base import deleted_edge_ids, make_generator, pick
from ...tasks.base import run_model as ask
from ...tasks.local import retain_sampler
from ..base import (
    Context,
    Options,
    RequestRefused,
    calibrate_every,
    calibrate_reference,
    calibrate_switch,
    calibrate_tolerance,
    calibration,
    epochs,
    option,
    register,
)
from .heldout_distill import PAIRINGS, forget_set, pair_with_heldout, record_graph


@dataclass
class GNNDeleteOptions(Options):
    epochs: int = epochs(20, "epochs per layer")
    lr: float | None = option(None, float, low=0, low_open=True,
                              doc="Adam learning rate (> 0); None: 0.01 for edge deletion, 0.05 for node deletion")
    lam: float | None = option(None, float, low=0, high=1,
                               doc="weight of deleted-element consistency; 1 - lam weighs neighbourhood influence; "
                                   "None: 0.05 for edge deletion, 0.5 for node deletion")
    init: str = option("identity", choices=INITS, doc="operators start as the identity, or the reference "
                                                      "code's ones/1000")
    node_target: str = option("heldout", choices=("heldout", "random"),
                              doc="node deletion: what a deleted node's layer outputs are pulled to, those of a "
                                  "held-out node of its class (fixed), or of random live nodes (drawn per step)")
    pairing: str = option("rank", choices=PAIRINGS, doc="with node_target='heldout': partners matched by "
                                                        "confidence quantile within the class, or at random")
    calibrate: bool = calibrate_switch()
    calibrate_tolerance: float = calibrate_tolerance()
    calibrate_every: int = calibrate_every()
    calibrate_reference: float | None = calibrate_reference()


#: affected and retained nodes drawn per step on sampled computation graphs (half from the one-hop
#: neighbourhood of the deleted edges, half uniformly); in a data-parallel job the ranks share it
LOCAL_CAP = 1024


@register("gnndelete", tasks=("link", "node"), options=GNNDeleteOptions, local=True,
          requires="torch_geometric.nn.MessagePassing layers, each run once per forward, output [N, d]")
def run(ctx: Context) -> dict:
    r"""GNNDelete (Cheng et al., ICLR 2023): the original weights frozen, one trainable deletion operator per
    message-passing layer applied only to the affected nodes (:class:`~graphunlearn.models.GNNDelete`,
    attached by forward hooks to the model's ``MessagePassing`` modules, so any PyG model works), trained
    layer by layer. Edge deletion (link prediction):

    .. math::
        L_l = \lambda\, \mathrm{MSE}\big([h^l_u \| h^l_v]_{(u,v) \in D_f}, [h^l_a \| h^l_b]_{(a,b) \sim V^2}\big)
            + (1 - \lambda)\, \mathrm{MSE}(h^l_{S_l}, \bar h^l_{S_l})

    (deleted-edge consistency and neighbourhood influence; :math:`\bar h` is the original model on the graph
    without the deleted edges; :math:`S_l` the live nodes within :math:`l` hops). Differences from the
    reference code: operators start as the identity (``init="reference"`` restores its ones/1000 start),
    neighbourhoods are computed on the undirected live graph, the deleted edges are not in the message
    passing, and each layer's optimiser state is its own (layer :math:`l` trains with the earlier operators
    frozen).

    Node deletion (node classification), where the deleted nodes themselves are what must be forgotten:

    .. math::
        L_l = \lambda\, \mathrm{MSE}\big(\hat h^l_{D_f}, \bar h^l_{\pi(D_f)}\big)
            + (1 - \lambda)\, \mathrm{MSE}(h^l_{S_l}, \bar h^l_{S_l})

    :math:`\hat h^l` is the wrapped model's layer output on the graph with the deleted nodes' records put back
    (features and edges, as an attacker holding them asks, :func:`~graphunlearn.tasks.node.graph_before`),
    :math:`h^l` on the live graph, and :math:`\pi(v)` a live held-out (validation) node of :math:`v`'s class
    (``node_target="heldout"``, :func:`~graphunlearn.unlearning.algorithms.heldout_distill.heldout_partners`):
    a deleted node is made to look, layer by layer, like a node of its class the model never trained on.
    ``node_target="random"`` pulls it to random live nodes' current outputs instead, drawn per step (the
    edge term's random pairs, for single nodes; it pushes the deleted nodes' classes towards chance). The
    operators act on :math:`S_l` and on the deleted nodes (their ids: the forgetting is tied to the store's
    numbering, as the operators are). Where this differs from the paper: the paper and its reference code
    treat a node deletion as deleting the node's incident edges, with the edge term on those edges, and
    evaluate it on link prediction; the node-level term and the held-out target are this project's, for
    node classification asked with the deleted records. Returns a :class:`~graphunlearn.models.GNNDelete`
    (save with ``save_model``, reload with ``load_model(path, model=<an instance of the architecture>)``).

    On sampled computation graphs (``unlearn(num_neighbors=...)``, or the fanouts on the card of a model
    trained with them; :mod:`graphunlearn.tasks.local`), edge deletion only: every step of every layer's
    optimisation draws the step's deleted edges (all of them, or this rank's share in a data-parallel job),
    as many random live pairs for the consistency term, and :data:`LOCAL_CAP` (1,024) nodes for the
    neighbourhood term, half from :math:`S_1` (the live one-hop neighbourhood of the deleted edges'
    endpoints, :func:`~graphunlearn.tasks.local.retain_sampler`) and half uniformly from the live nodes, and
    runs the wrapped model and the frozen original (the reference :math:`\bar h^l`) on one sampled
    computation graph of all their nodes (:meth:`~graphunlearn.unlearning.base.Context.step_graph`; the
    operators find their nodes there by id, :meth:`~graphunlearn.models.GNNDelete.on_nodes`). Step
    :math:`t` of layer :math:`l`:

    .. math::
        L_l^t = \lambda\, \mathrm{MSE}\big([h^l_u \| h^l_v]_{(u,v) \in F_t}, [h^l_a \| h^l_b]_{(a,b) \in P_t}\big)
            + (1 - \lambda)\, \mathrm{MSE}(h^l_{B_t}, \bar h^l_{B_t})

    with :math:`F_t` the deleted edges, :math:`P_t` the random pairs, :math:`B_t` the drawn nodes, and every
    :math:`h` computed on the computation graph of :math:`F_t \cup P_t \cup B_t`. The neighbourhood term is thus
    the MSE over :math:`S_l` restricted to the sample plus a uniform sample of the rest, where the
    operators' changes spread through the later layers. Every layer's operator acts on :math:`S_1` (the
    full-graph path: :math:`S_l`, within :math:`l` hops for layer :math:`l = 1, \dots, L`), because the
    :math:`k`-hop sets of a thousand edges are most of a heavy-tailed graph. The validation score reads
    sampled computation graphs of at most ``Task.sampled_val_units`` validation pairs of each label (what
    ``LinkTask.validate(num_neighbors=...)`` reads). Nothing per step grows with the graph: the cost follows
    the deletion and the sample.

    Node deletion is refused on sampled computation graphs (``ValueError`` before any work; pass
    ``num_neighbors="full"``): the deleted nodes are asked with their records put back
    (:func:`~graphunlearn.tasks.node.graph_before`), a graph the sampler, which draws only live slots, does
    not rebuild, and the held-out partners are scored on the whole live graph.

    With ``calibrate=True`` (default off) the layers before the last train as without it and the last
    layer's loop is calibrated (:class:`~graphunlearn.unlearning.base.Calibration`, ``docs/calibration.md``):
    checks of the whole wrapped model at that layer's start and every ``calibrate_every`` epochs, stopping
    where the deleted units score like held-out validation units (a start already there leaves the last
    operator untrained), the checkpoint kept as the rule says; on sampled computation graphs too (edge
    deletion). The decision is ``info["calibration"]``, its epochs counted in the whole run
    (``start_epoch``: the last layer's start); without a split it records ``{"skipped": reason}``.

    Defaults and tuning: ``docs/methods.md``; calibration's measurements: ``docs/calibration.md``.

    Raises:
        TypeError: the model has no ``MessagePassing`` layer.
        ValueError: the requests delete no edge (no node, for node deletion); node deletion with fanouts
            asked for (``unlearn(num_neighbors=[...])``; fanouts from the model's card fall back to the whole
            graph); a layer run more or less than once per forward, or whose output is not
            [num_nodes, d].
    """
    o = ctx.options
    if ctx.local and not ctx.task.pairwise and not ctx.fanouts_asked:
        ctx.num_neighbors = None  # the fanouts came from the card: node deletion runs on the whole graph
    if ctx.local and not ctx.task.pairwise:
        raise ValueError(f"gnndelete: node deletion runs on the whole graph, not on sampled computation graphs "
                         f"(num_neighbors={ctx.num_neighbors}): the deleted nodes are asked with their records put "
                         "back, a graph the sampler (live slots only) does not rebuild, and their held-out partners "
                         "are scored on the whole live graph; pass num_neighbors='full'")
    g = ctx.generator()
    store = ctx.store
    try:
        n_layers = len(message_passing_layers(ctx.original))
    except TypeError as exc:
        raise TypeError(f"gnndelete attaches operators to message-passing layers: {exc}") from None
    if ctx.local:
        return _run_local(ctx, g, n_layers)
    max_hop = min(r.num_hops for r in ctx.requests)
    affected = [ctx.affected_nodes(min(k + 1, max_hop)) for k in range(n_layers)]
    df = ctx.task.forget_units(store, ctx.requests, ctx.split)
    nodes = df.dim() == 1  # the units are nodes: node deletion, the deleted nodes asked with their records
    if df.numel() == 0:
        raise RequestRefused(f"gnndelete: the requests delete no {'nodes' if nodes else 'edges'} (requests that only "
                             "erase feature values are not supported: use retrain, finetune or d2dgn)")
    live_nodes = store.live_node_ids()
    # defaults per deletion kind, chosen on development seeds (docs/methods.md): deleted nodes asked with their
    # records sit further from their targets than deleted edges' endpoints do
    lr = o.lr if o.lr is not None else (0.05 if nodes else 0.01)
    lam = o.lam if o.lam is not None else (0.5 if nodes else 0.05)

    def run_live(m):
        return ctx.encode(m)

    with torch.no_grad():  # the original model's layers on the graph without the deleted elements
        probe = GNNDelete(ctx.original, None, store.num_nodes, [1] * n_layers)
        reference = probe.layer_outputs(run_live, identity=True)
    if len(reference) != n_layers:
        raise ValueError(f"gnndelete: the model ran {len(reference)} message-passing layer calls for {n_layers} "
                         "layers; each layer must run exactly once per forward pass")
    bad = [k for k, r in enumerate(reference) if r.dim() != 2 or r.size(0) != store.num_nodes]
    if bad:
        raise ValueError(f"gnndelete: layer(s) {bad} return shapes {[list(reference[k].shape) for k in bad]}; "
                         f"operators need [num_nodes={store.num_nodes}, d]")
    # neighbourhood influence weighs the live affected nodes only; with node deletion the operators also act on
    # the deleted nodes, whose live rows (isolated, featureless) are nobody's output
    keep = [torch.zeros(store.num_nodes, 1, dtype=r.dtype, device=r.device).index_fill_(0, a, 1.0)
            for r, a in zip(reference, affected)]
    if nodes:
        if o.node_target == "heldout":
            df = forget_set(ctx, "gnndelete")
        # the deleted nodes asked with their records, on the part of that graph their answers depend on
        x_rec, ei_rec, at, rec_logits, subset = record_graph(ctx, df)
        if o.node_target == "heldout":
            partners, _ = pair_with_heldout(ctx, rec_logits, df, o.pairing, g)
            targets = [r[partners] for r in reference]
        affected = [torch.unique(torch.cat([a, df])) for a in affected]
    model = GNNDelete(copy.deepcopy(ctx.original), affected, store.num_nodes, [r.size(1) for r in reference],
                      init=o.init, live=store.node_mask if nodes else None)
    # S_l as 0/1 weights and the MSE's element counts, per layer: no boolean indexing, no host sync per step
    counts = [(w.sum() * r.size(1)).clamp(min=1) for w, r in zip(keep, reference)]

    def consistency(h: Tensor, k: int) -> Tensor:
        if not nodes:
            rand = sample_pairs(live_nodes, df.size(1), g)
            return F.mse_loss(torch.cat([h[df[0]], h[df[1]]], 1), torch.cat([h[rand[0]], h[rand[1]]], 1))
        h_rec = model.layer_outputs(lambda m: ask(m, x_rec, ei_rec), subset=subset)[k][at]
        target = targets[k] if o.node_target == "heldout" else h[pick(live_nodes, df.numel(), g)]
        return F.mse_loss(h_rec, target)

    def layer_loss(k: int) -> Tensor:
        h = model.layer_outputs(run_live)[k]
        dec = consistency(h, k)
        ni = ((h - reference[k]).pow(2) * keep[k]).sum() / counts[k]  # MSE over S_l (0 when S_l is empty)
        return lam * dec + (1 - lam) * ni

    return _train_layers(ctx, model, layer_loss, n_layers, lr, lam)


def _train_layers(ctx: Context, model: GNNDelete, layer_loss, n_layers: int, lr: float, lam: float) -> dict:
    r"""Adam on each layer's operator in turn (``layer_loss(k)``, ``k`` from 0), ``epochs`` epochs per layer,
    layer :math:`l` with the earlier operators frozen and an optimiser of its own: one
    :meth:`Context.optimise` per layer on the wrapped model, its epochs counted in the whole run (epoch
    :math:`t` from 1 trains layer :math:`\lceil t / \text{epochs} \rceil`).

    Without calibration nothing is selected (the operators' loss is the goal): the model after the last
    epoch. With ``calibrate=True`` the layers before the last train as without it, and the last layer's loop
    is calibrated (:class:`~graphunlearn.unlearning.base.Calibration`, ``docs/calibration.md``): the rule
    reads the whole wrapped model at the last layer's start (every earlier operator trained, the last one at
    its initial value) and after every ``calibrate_every`` of its epochs, stops at the first eligible check
    where the deleted units score like held-out validation units, and keeps the eligible checkpoint closest to
    that (a start already there keeps the last operator untrained). Its decision is ``info["calibration"]``,
    with epochs counted in the whole run (``start_epoch``: the last layer's start, ``epochs * (n_layers -
    1)``), as ``info["epochs"]`` and ``info["selected_epoch"]`` are."""
    o = ctx.options
    per = o.epochs
    operators = model.operators
    ctx.model = model  # Context.optimise trains ctx.model: calibration scores the wrapped model, not the original
    losses: list[float] = []
    for k in range(n_layers):
        def loss_fn(epoch: int, k: int = k) -> Tensor:
            for j, op in enumerate(operators):
                op.requires_grad_(j == k)
            try:
                return layer_loss(k)
            finally:
                # every operator trainable again once the step's graph is built: the backward still reaches
                # layer k's alone, and a loop started afterwards (calibration's restart with smaller steps,
                # DDP's setup, which registers the parameters that require gradients) finds them as it expects
                operators.requires_grad_(True)

        last = k == n_layers - 1
        layer = ctx.optimise(loss_fn, epochs=per, lr=lr, params=list(operators[k].parameters()), select=False,
                             desc=f"gnndelete (layer {k + 1})", **(calibration(o) if last else {}))
        losses += layer["losses"]
    earlier = per * (n_layers - 1)
    info = {**layer, "losses": losses, "epochs": earlier + layer["epochs"],
            "selected_epoch": earlier + layer["selected_epoch"]}
    if "checks" in info.get("calibration", {}):
        _count_from(info["calibration"], earlier)
    info.update(model=model, lr=lr, lam=lam, epochs_per_layer=per, val_score=ctx.validate(model))
    return info


def _count_from(decision: dict, start: int) -> None:
    """Calibration's epochs, counted in the last layer's loop, as epochs of the whole run (+ ``start``)."""
    def shift(checks: list[dict]) -> list[dict]:
        return [{**c, "epoch": c["epoch"] + start} for c in checks]

    decision["checks"] = shift(decision["checks"])
    for key in ("stopped_at", "selected_epoch"):
        if decision[key] is not None:
            decision[key] += start
    decision["attempts"] = [{**a, "checks": shift(a["checks"]),
                             "stopped_at": None if a["stopped_at"] is None else a["stopped_at"] + start}
                            for a in decision["attempts"]]
    decision["start_epoch"] = start


def _run_local(ctx: Context, g: torch.Generator, n_layers: int) -> dict:
    """Edge deletion on sampled computation graphs (see :func:`run`): per step, one computation graph of the
    deleted edges, random pairs and a capped node sample; the reference recomputed on it without gradient."""
    o, store, task = ctx.options, ctx.store, ctx.task
    df = task.forget_units(store, ctx.requests, ctx.split)
    if df.numel() == 0:
        raise RequestRefused("gnndelete: the requests delete no edges")
    lr = o.lr if o.lr is not None else 0.01  # the edge defaults (docs/methods.md)
    lam = o.lam if o.lam is not None else 0.05
    live_nodes = store.live_node_ids()
    cap = ctx.per_rank(LOCAL_CAP)  # data-parallel: the ranks share the cap
    retained, near = retain_sampler(store, ctx.deleted_nodes, deleted_edge_ids(ctx.requests), pairwise=False,
                                    cap=cap)
    forget = ctx.share(df)  # data-parallel: this rank's share of the deleted edges
    probe = GNNDelete(ctx.original, None, store.num_nodes, [1] * n_layers)

    def reference(step) -> list[Tensor]:  # the frozen original's layer outputs on the step's graph
        with torch.no_grad():
            return probe.layer_outputs(lambda m: step.encode(m, frozen=True), identity=True,
                                       subset=step.graph.nodes)

    first = ctx.step_graph([df[:, :1]], make_generator(ctx.seed, store.device))  # the layers' widths
    widths = reference(first)
    if len(widths) != n_layers:
        raise ValueError(f"gnndelete: the model ran {len(widths)} message-passing layer calls for {n_layers} "
                         "layers; each layer must run exactly once per forward pass")
    rows = first.graph.num_nodes
    bad = [k for k, r in enumerate(widths) if r.dim() != 2 or r.size(0) != rows]
    if bad:
        raise ValueError(f"gnndelete: layer(s) {bad} return shapes {[list(widths[k].shape) for k in bad]} on a "
                         f"computation graph of {rows} nodes; operators need [num_nodes, d]")
    model = GNNDelete(copy.deepcopy(ctx.original), [near] * n_layers, store.num_nodes,
                      [r.size(1) for r in widths], init=o.init)

    def layer_loss(k: int) -> Tensor:
        kept = retained(g)  # [cap] nodes: half near the deletion, half uniform
        rand = sample_pairs(live_nodes, forget.size(1), g)
        step = ctx.step_graph([forget, rand, kept], g)
        forget_, rand_, kept_ = step.units
        ref = reference(step)[k]
        h = model.layer_outputs(lambda m: step.encode(m), subset=step.graph.nodes)[k]
        dec = F.mse_loss(torch.cat([h[forget_[0]], h[forget_[1]]], 1), torch.cat([h[rand_[0]], h[rand_[1]]], 1))
        return lam * dec + (1 - lam) * F.mse_loss(h[kept_], ref[kept_])

    return _train_layers(ctx, model, layer_loss, n_layers, lr, lam)
