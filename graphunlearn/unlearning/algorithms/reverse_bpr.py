"""MMRecUn-style reverse BPR for recommenders."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ...checks import SEED_MAX, SEED_MIN
from ...models import fresh_copy
from ...tasks.base import make_generator
from ...tasks.rec import check_sampled_model, interactions, sample_negative_items
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
    fraction,
    learning_rate,
    option,
    register,
)


@dataclass
class ReverseBPROptions(Options):
    epochs: int = epochs(10)
    lr: float = learning_rate(0.005)
    alpha: float = fraction(0.5, "weight of the reverse (forget) term; 1 - alpha weighs the retained BPR")
    batch_size: int = option(4096, int, low=1, doc="retained interactions per epoch")
    weight_decay: float = option(1e-4, float, low=0, doc="L2 penalty on the batch's embeddings")
    reset_deleted: bool = option(True, doc="re-initialise deleted users' and items' own embedding rows")
    reverse_reset: bool = option(False, doc="also reverse the deleted interactions of users and items whose rows "
                                            "reset_deleted re-initialised (pushes a fresh row away from the items "
                                            "the node had: their items rank below chance, over-forgetting); "
                                            "without reset_deleted every deleted interaction is reversed")
    calibrate: bool = calibrate_switch()
    calibrate_tolerance: float = calibrate_tolerance()
    calibrate_every: int = calibrate_every()
    calibrate_reference: float | None = calibrate_reference()


#: added to ``seed`` to draw :func:`reset_rows`' fresh rows. A model built after ``torch.manual_seed(seed)`` (the
#: usual way to seed, and the benchmark's originals) starts from ``fresh_copy(model, seed=seed)``'s rows, and
#: the items' embeddings were trained alongside exactly those rows: a deleted user reset to them keeps the
#: initial direction their items were pulled towards (MovieLens, 10 seeds: forget Recall@20 above gold's on
#: every seed, by 0.0126 on the mean). Rows drawn from another seed are as unknown to the items as a user a
#: retrained model never saw.
RESET_SEED_OFFSET = 0x5EED_0000


def reset_seed(seed: int) -> int:
    """The seed the reset rows are drawn from: ``seed + RESET_SEED_OFFSET``, wrapped into the seeds torch takes
    (:data:`graphunlearn.checks.SEED_MIN` to ``SEED_MAX``) for a seed within the offset of the top."""
    span = SEED_MAX - SEED_MIN + 1
    return (seed + RESET_SEED_OFFSET - SEED_MIN) % span + SEED_MIN


def reset_rows(model: nn.Module, nodes: Tensor, num_users: int, num_items: int, seed: int) -> tuple[int, Tensor]:
    """Give the deleted nodes' own embedding rows a fresh initialisation, drawn as ``reset_parameters()`` draws it but
    from ``seed + RESET_SEED_OFFSET`` (:data:`RESET_SEED_OFFSET`; :func:`reset_seed`), so not the rows the model
    started from when it was built after ``torch.manual_seed(seed)``; returns how many rows were reset and the node
    ids (store numbering, users then items) whose representation was reset: those with a row reset in a table of
    width above 1 (a one-wide table, a bias, is reset too but does not make the node's representation fresh). Any
    ``nn.Embedding`` of the model counts: one over all U + I nodes (LightGCN, PyG's included) takes node ids, one of
    U rows user ids, one of I rows item ids; when U == I a table's name must say which it is (``user``/``item`` in
    its name, as MF's ``users`` and ``items``).

    Raises:
        ValueError: a table of U == I rows whose name does not say whether it holds users or items.
        TypeError: nodes to reset but no embedding table to reset them in.
    """
    if nodes.numel() == 0:
        return 0, nodes
    users, items = nodes[nodes < num_users], nodes[nodes >= num_users] - num_users
    plan = []
    for name, module in model.named_modules():
        if not isinstance(module, nn.Embedding):
            continue
        n = module.num_embeddings
        if n == num_users + num_items:
            rows, offset = nodes, 0
        elif n == num_users == num_items:
            low = name.lower()
            if ("user" in low) == ("item" in low):
                raise ValueError(f"reverse_bpr: embedding table {name!r} has {n} rows, as many as users and items; "
                                 "its name must say which it holds (user/item), or pass reset_deleted=False")
            rows, offset = (users, 0) if "user" in low else (items, num_users)
        elif n == num_users:
            rows, offset = users, 0
        elif n == num_items:
            rows, offset = items, num_users
        else:
            continue
        plan.append((name, rows, offset))
    if not plan:
        raise TypeError(f"reverse_bpr: reset_deleted=True re-initialises the deleted nodes' own embedding rows, but "
                        f"{type(model).__name__} keeps none in an nn.Embedding table (nodes, users or items x d) "
                        "that reset_parameters() could re-initialise; pass reset_deleted=False")
    fresh = dict(fresh_copy(model, seed=reset_seed(seed)).named_modules())
    count, done = 0, torch.zeros(num_users + num_items, dtype=torch.bool, device=nodes.device)
    with torch.no_grad():
        for name, rows, offset in plan:
            if rows.numel():
                dict(model.named_modules())[name].weight[rows] = fresh[name].weight[rows]
                count += int(rows.numel())
                if dict(model.named_modules())[name].embedding_dim > 1:
                    done[rows + offset] = True
    return count, done.nonzero().view(-1)


@register("reverse_bpr", tasks=("rec",), options=ReverseBPROptions, local=True,
          requires="with reset_deleted: node, user or item rows in nn.Embedding tables; on sampled computation "
                   "graphs: a model that reads node ids as x (not PyG's LightGCN)")
def run(ctx: Context) -> dict:
    r"""MMRecUn-style reverse BPR (Sinha et al., arXiv 2405.15328):

    .. math::
        L = \alpha \sum_{(u,i) \in D_f} -\ln\sigma(x_{uj} - x_{ui})
          + (1 - \alpha) \sum_{(u,i) \in D_r} -\ln\sigma(x_{ui} - x_{uj})

    with one sampled negative item :math:`j` per interaction, on the fused (reverse) BPR kernel, message
    passing over the retained interactions only. Fixed epochs (each pairs the forget set with a batch of
    ``batch_size`` retained interactions), the last kept. Request kinds: interactions (edges), users or items
    (nodes), item groups (edge or node classes): the deleted user-item edges form :math:`D_f`. With
    ``reset_deleted`` (default), deleted users and items first get freshly initialised embedding rows
    (:func:`reset_rows`), and their interactions leave :math:`D_f` unless ``reverse_reset``: a fresh row holds
    nothing learnt from them, and reversing them only pushes it away from those items, so they rank below
    chance where a retrained model ranks them at chance (forget Recall@20 0.0001 against gold's 0.0084 on
    Gowalla's deleted users, ``docs/methods.md``). When no interaction is left to reverse (a request that
    deletes users or items only, on a model whose tables hold both sides' rows) no step runs:
    ``info["epochs"]`` is 0 and ``info["reversed"]``, the size of :math:`D_f`, is 0; a one-wide table (a
    bias) does not count as a reset representation. Defaults and tuning: ``docs/methods.md``.

    With ``calibrate=True`` (default ``False``) ``epochs`` is a cap and calibrated forgetting decides how far
    to go (:class:`~graphunlearn.unlearning.base.Calibration`, ``docs/calibration.md``): checks every
    ``calibrate_every`` epochs compare the deleted interactions' user-item scores with those of the split's
    validation interactions (degree-matched on :math:`\log(1 + d_u) + \log(1 + d_i)`, live degrees) and
    keep validation Recall@20 within ``calibrate_tolerance`` of the original's (on sampled computation
    graphs a sampled AUC of the validation interactions instead,
    :meth:`~graphunlearn.tasks.rec.Recommendation.sampled_validate`, so that no check passes over the whole
    graph). It needs validation interactions (``user_item_split(..., val_ratio=...)``): without them
    ``info["calibration"]`` records ``{"skipped": reason}`` and the fixed epochs run; with no interaction
    left to reverse it records ``{"skipped": reason, "no_step": True}`` and no step runs.

    On sampled computation graphs (``unlearn(num_neighbors=...)``, or the fanouts of a model trained on
    them) each step reads one sampled computation graph of every user and item the step touches (the
    forget interactions, the batch of retained ones and their negatives:
    :meth:`~graphunlearn.tasks.rec.Recommendation.encode_for`), so its cost follows the forget set and the
    batch, not the graph; the deleted interactions are absent from the live graph it samples.

    Raises:
        ValueError: no split; requests that delete no interaction and (with ``reset_deleted``) no user or
            item.
        TypeError: with ``reset_deleted``, deleted users or items but no ``nn.Embedding`` table to reset them in
            (:func:`reset_rows`).
    """
    o = ctx.options
    if ctx.split is None:
        raise ValueError("reverse_bpr needs split= (a RecSplit: the numbers of users and items)")
    nu, ni = ctx.split.num_users, ctx.split.num_items
    g = ctx.generator()
    df = ctx.task.forget_units(ctx.store, ctx.requests, ctx.split)
    if df.size(1) == 0 and not (o.reset_deleted and ctx.deleted_nodes.numel()):
        raise RequestRefused("reverse_bpr: the requests delete no interactions and no user or item")
    if ctx.local:
        check_sampled_model(ctx.model, "reverse_bpr")
    alpha, bs = float(o.alpha), int(o.batch_size)
    reset, fresh = reset_rows(ctx.model, ctx.deleted_nodes, nu, ni, ctx.seed) if o.reset_deleted else (0, None)
    if fresh is not None and fresh.numel() and not o.reverse_reset:
        # a re-initialised row holds nothing learnt from the node's interactions; reversing them would only
        # push it away from those items, ranking them below chance (a sign that they were there)
        was_reset = torch.zeros(nu + ni, dtype=torch.bool, device=df.device)
        was_reset[fresh.to(df.device)] = True
        df = df[:, ~(was_reset[df[0]] | was_reset[df[1]])]
    if df.size(1) == 0:  # every deleted interaction belonged to a reset user or item: the reset was the unlearning
        info = {"epochs": 0, "selected_epoch": 0, "val_score": None, "losses": [], "computation": ctx.computation,
                "reset_rows": reset, "reversed": 0}
        if o.calibrate:
            info["calibration"] = {"skipped": "no interaction left to reverse: every deleted interaction belongs to "
                                              "a user or item whose rows were reset", "no_step": True}
        return info
    mine = ctx.share(df)  # data-parallel: each rank reverses its share of D_f (all of it in one process)
    forget_u, forget_i = mine[0], mine[1] - nu

    kept = interactions(ctx.store, nu)  # the retained interactions do not change while unlearning
    sample_negative_items(kept[0, :1], ctx.store, nu, ni, make_generator(0, kept.device))  # index built now
    dev = kept.device
    # every interaction deleted: the forget term alone; data-parallel: the ranks share the batch
    n_pick = min(ctx.per_rank(bs), kept.size(1))
    sign = torch.cat([-torch.ones(forget_u.numel(), device=dev), torch.ones(n_pick, device=dev)])
    weight = torch.cat([torch.full((forget_u.numel(),), alpha / max(1, forget_u.numel()), device=dev),
                        torch.full((n_pick,), (1 - alpha) / max(1, n_pick), device=dev)])

    def loss_fn(_):
        chosen = torch.randint(kept.size(1), (n_pick,), generator=g, device=dev) if n_pick \
            else torch.empty(0, dtype=torch.long, device=dev)
        users = torch.cat([forget_u, kept[0, chosen]])
        pos = torch.cat([forget_i, kept[1, chosen]])
        neg = sample_negative_items(users, ctx.store, nu, ni, g)
        if ctx.local:  # one sampled computation graph of the step's users and items
            z, (u, p, n) = ctx.task.encode_for(ctx.model, ctx.store, [users, pos + nu, neg + nu], ctx.num_neighbors,
                                               g)
            loss = ctx.task.bpr_rows(ctx.model, z, u, p, n, sign, weight, reduction="sum")
            reg = (z[u].pow(2).sum() + z[p].pow(2).sum() + z[n].pow(2).sum()) / (2 * users.numel())
            return loss + o.weight_decay * reg
        z = ctx.encode(ctx.model)
        loss = ctx.task.bpr(ctx.model, z, ctx.split, users, pos, neg, sign, weight, reduction="sum")
        reg = (z[users].pow(2).sum() + z[nu + pos].pow(2).sum() + z[nu + neg].pow(2).sum()) / (2 * users.numel())
        return loss + o.weight_decay * reg

    info = ctx.optimise(loss_fn, epochs=o.epochs, lr=o.lr, select=False, **calibration(o))
    info["reset_rows"], info["reversed"] = reset, int(df.size(1))
    return info
