"""Fine-tuning the original weights on the retained graph."""

from __future__ import annotations

from dataclasses import dataclass

from ..base import (
    Context,
    Options,
    calibrate_every,
    calibrate_reference,
    calibrate_switch,
    calibrate_tolerance,
    calibration,
    epochs,
    learning_rate,
    option,
    register,
)


@dataclass
class FinetuneOptions(Options):
    epochs: int = epochs(20)
    lr: float = learning_rate(0.005)
    batch_size: int = option(1024, int, low=1, doc="training units per step on sampled computation graphs")
    calibrate: bool = calibrate_switch()
    calibrate_tolerance: float = calibrate_tolerance()
    calibrate_every: int = calibrate_every()
    calibrate_reference: float | None = calibrate_reference()


@register("finetune", tasks=("link", "node"), options=FinetuneOptions, local=True)
def run(ctx: Context) -> dict:
    r"""Continue training the original weights on the retained graph with the task's own loss (link: BCE
    against sampled negatives; node: cross-entropy on the live training nodes), keeping the best
    validation epoch. On sampled computation graphs (``unlearn(num_neighbors=...)``) each epoch is one step
    on ``batch_size`` training units drawn uniformly (``Task.sample_batch``), validated every 5 epochs, so its
    cost follows the batch, not the graph. With ``calibrate=True`` the epoch kept is chosen by calibrated
    forgetting (:class:`~graphunlearn.unlearning.base.Calibration`, ``docs/calibration.md``)."""
    ctx.task.check_trainable(ctx.store, ctx.split, "finetune")
    o = ctx.options
    g = ctx.generator()
    recipe = dict(ctx.card.recipe) if ctx.card is not None else {}
    recipe.pop("num_neighbors", None)  # the whole graph unless this call samples (a sampled original's card)
    if not ctx.local:
        return ctx.optimise(lambda _: ctx.task.loss(ctx.model, ctx.store, ctx.split, None, g, recipe),
                            epochs=o.epochs, lr=o.lr, **calibration(o))
    recipe["num_neighbors"] = ctx.num_neighbors
    size = ctx.per_rank(ctx.options.batch_size)  # data-parallel: the ranks share each step's batch

    def loss_fn(_):
        batch = ctx.task.sample_batch(ctx.store, ctx.split, g, size)
        return ctx.task.loss(ctx.model, ctx.store, ctx.split, batch, g, recipe)

    return ctx.optimise(loss_fn, epochs=o.epochs, lr=o.lr, eval_every=5, **calibration(o))
