"""GNNDelete: trainable deletion operators after each message-passing layer of a frozen model."""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ...models import GNNDelete, message_passing_layers
from ...models.gnndelete import INITS
from ...tasks import sample_pairs
from ...tasks.base import make_generator
from ...train.loop import optimise
from ..base import Context, Options, epochs, fraction, learning_rate, option, register


@dataclass
class GNNDeleteOptions(Options):
    epochs: int = epochs(20, "epochs per layer")
    lr: float = learning_rate(0.01)
    lam: float = fraction(0.05, "weight of deleted-edge consistency; 1 - lam weighs neighbourhood influence")
    init: str = option("identity", choices=INITS, doc="operators start as the identity, or the reference "
                                                      "code's ones/1000")


@register("gnndelete", tasks=("link",), options=GNNDeleteOptions,
          requires="torch_geometric.nn.MessagePassing layers, each run once per forward, output [N, d]")
def run(ctx: Context) -> dict:
    r"""GNNDelete (Cheng et al., ICLR 2023): the original weights frozen, one trainable deletion operator per
    message-passing layer applied only to the affected nodes (:class:`~graphunlearn.models.GNNDelete`,
    attached by forward hooks to the model's ``MessagePassing`` modules, so any PyG model works), trained
    layer by layer:

    .. math::
        L_l = \lambda\, \mathrm{MSE}\big([h^l_u \| h^l_v]_{(u,v) \in D_f}, [h^l_a \| h^l_b]_{(a,b) \sim V^2}\big)
            + (1 - \lambda)\, \mathrm{MSE}(h^l_{S_l}, \bar h^l_{S_l})

    (deleted-edge consistency and neighbourhood influence; :math:`\bar h` is the original model on the graph
    without the deleted edges; :math:`S_l` the live nodes within :math:`l` hops). Differences from the
    reference code: operators start as the identity (``init="reference"`` restores its ones/1000 start),
    neighbourhoods are computed on the undirected live graph, the deleted edges are not in the message
    passing, and each layer's optimiser state is its own (layer :math:`l` trains with the earlier operators
    frozen). Returns a :class:`~graphunlearn.models.GNNDelete` (save with ``save_model``, reload with
    ``load_model(path, model=<an instance of the architecture>)``). Defaults and tuning: ``docs/methods.md``.
    """
    o = ctx.options
    g = make_generator(ctx.seed, ctx.store.device)
    store = ctx.store
    try:
        n_layers = len(message_passing_layers(ctx.original))
    except TypeError as exc:
        raise TypeError(f"gnndelete attaches operators to message-passing layers: {exc}") from None
    max_hop = min(r.num_hops for r in ctx.requests)
    affected = [ctx.affected_nodes(min(k + 1, max_hop)) for k in range(n_layers)]
    df = ctx.task.forget_units(store, ctx.requests, ctx.split)
    if df.size(1) == 0:
        raise ValueError("gnndelete: the requests delete no edges")
    live_nodes = store.live_node_ids()

    def run_model(m):
        return ctx.encode(m)

    with torch.no_grad():  # the original model's layers on the graph without the deleted edges
        probe = GNNDelete(ctx.original, None, store.num_nodes, [1] * n_layers)
        reference = probe.layer_outputs(run_model, identity=True)
    if len(reference) != n_layers:
        raise ValueError(f"gnndelete: the model ran {len(reference)} message-passing layer calls for {n_layers} "
                         "layers; each layer must run exactly once per forward pass")
    bad = [k for k, r in enumerate(reference) if r.dim() != 2 or r.size(0) != store.num_nodes]
    if bad:
        raise ValueError(f"gnndelete: layer(s) {bad} return shapes {[list(reference[k].shape) for k in bad]}; "
                         f"operators need [num_nodes={store.num_nodes}, d]")
    model = GNNDelete(copy.deepcopy(ctx.original), affected, store.num_nodes, [r.size(1) for r in reference],
                      init=o.init)
    info = {"epochs": o.epochs * n_layers, "losses": []}
    for k in range(n_layers):
        for j, op in enumerate(model.operators):
            op.requires_grad_(j == k)
        weight = model.masks[k].to(reference[k].dtype).unsqueeze(1)  # S_l as 0/1 weights: no boolean indexing
        count = (weight.sum() * reference[k].size(1)).clamp(min=1)  # per step, so no host sync either

        def loss_fn(epoch, _batch, k=k, weight=weight, count=count):
            h = model.layer_outputs(run_model)[k]
            rand = sample_pairs(live_nodes, df.size(1), g)
            dec = F.mse_loss(torch.cat([h[df[0]], h[df[1]]], 1), torch.cat([h[rand[0]], h[rand[1]]], 1))
            ni = ((h - reference[k]).pow(2) * weight).sum() / count  # MSE over S_l (0 when S_l is empty)
            return o.lam * dec + (1 - o.lam) * ni

        run = optimise(model, loss_fn, epochs=o.epochs, lr=o.lr, params=list(model.operators[k].parameters()),
                       select=False, progress=ctx.progress, desc=f"gnndelete layer {k + 1}",
                       where=f"gnndelete (layer {k + 1})", autocast=ctx.autocast)
        info["losses"] += run.losses
    for op in model.operators:
        op.requires_grad_(True)
    info["model"] = model
    info["val_score"] = ctx.validate(model)
    return info
