"""Fine-tuning the original weights on the retained graph."""

from __future__ import annotations

from dataclasses import dataclass

from ...tasks.base import make_generator
from ..base import Context, Options, epochs, learning_rate, register


@dataclass
class FinetuneOptions(Options):
    epochs: int = epochs(20)
    lr: float = learning_rate(0.005)


@register("finetune", tasks=("link", "node"), options=FinetuneOptions)
def run(ctx: Context) -> dict:
    r"""Continue training the original weights on the retained graph with the task's own loss (link: BCE
    against sampled negatives; node: cross-entropy on the live training nodes), keeping the best
    validation epoch."""
    ctx.task.check_trainable(ctx.store, ctx.split, "finetune")
    g = make_generator(ctx.seed, ctx.store.device)
    recipe = dict(ctx.card.recipe) if ctx.card is not None else {}
    return ctx.optimise(lambda _: ctx.task.loss(ctx.model, ctx.store, ctx.split, None, g, recipe),
                        epochs=ctx.options.epochs, lr=ctx.options.lr)
