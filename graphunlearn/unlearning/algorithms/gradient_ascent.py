"""Gradient ascent on the forget set."""

from __future__ import annotations

from dataclasses import dataclass

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
    learning_rate,
    register,
)


@dataclass
class GradientAscentOptions(Options):
    epochs: int = epochs(5)
    lr: float = learning_rate(0.001)
    calibrate: bool = calibrate_switch()
    calibrate_tolerance: float = calibrate_tolerance()
    calibrate_every: int = calibrate_every()
    calibrate_reference: float | None = calibrate_reference()


@register("gradient_ascent", tasks=("link",), options=GradientAscentOptions, local=True)
def run(ctx: Context) -> dict:
    r"""Gradient ascent on the forget set: maximise the training loss of the deleted units,
    :math:`\max_\theta \sum_{(u,v) \in D_f} \mathrm{BCE}(\sigma(s_{uv}), 1)` over the deleted edges, for a
    fixed number of epochs (selecting on validation would undo it), or, with ``calibrate=True``, up to
    ``epochs`` and stopping where the deleted edges score like held-out validation edges (calibrated
    forgetting, :class:`~graphunlearn.unlearning.base.Calibration`, ``docs/calibration.md``). Link prediction
    only: a deleted node is isolated and featureless on the live graph, so ascending its loss there removes
    nothing of its own."""
    units = ctx.task.forget_units(ctx.store, ctx.requests, ctx.split)
    if units.numel() == 0:
        raise RequestRefused(f"gradient_ascent needs deleted {ctx.task.name} units; the requests delete none")

    g = ctx.generator()
    units = ctx.share(units)  # data-parallel: each rank ascends on its share of the forget set

    def loss_fn(_):
        step = ctx.step_graph([units], g)  # the whole graph, or the forget set's computation graph
        logits = ctx.task.unit_logits(ctx.model, step.encode(ctx.model), step.units[0])
        return -ctx.task.unit_loss(logits, units, ctx.store)

    o = ctx.options
    return ctx.optimise(loss_fn, epochs=o.epochs, lr=o.lr, select=False, **calibration(o))
