"""Retraining from scratch on the retained graph: the gold standard every other method is measured against."""

from __future__ import annotations

from dataclasses import dataclass

from ...models import fresh_copy
from ...train import fit
from ..base import Context, Options, epochs, register


@dataclass
class RetrainOptions(Options):
    epochs: int | None = epochs(None, "overrides the epoch budget of the recipe (None: the recipe's)")


@register("retrain", tasks=("link", "node", "rec"), options=RetrainOptions, on_wrapped=True,
          requires="reset_parameters() on every module holding parameters (PyG's convention)")
def run(ctx: Context) -> dict:
    r"""Gold standard: a fresh copy of the model's architecture (``reset_parameters()`` on a deep copy, seeded
    by ``seed``) trained from scratch on the retained graph, with the user's ``train_fn`` when given, else
    the project's trainer with the task's loss and the recipe on the model's card (``epochs`` overrides its
    epoch budget). A model another method wrapped (GNNDelete's operators) is retrained as its ``base``."""
    base = ctx.original.base if ctx.card is not None and ctx.card.wrapper is not None else ctx.original
    model = fresh_copy(base, seed=ctx.seed)
    model.requires_grad_(True)
    if ctx.train_fn is not None:
        returned = ctx.train_fn(model, ctx.store.live_data(), ctx.split)
        return {"model": returned if returned is not None else model, "train_fn": True}
    recipe = dict(ctx.card.recipe) if ctx.card is not None else {}
    seed = recipe.pop("seed", ctx.seed)
    if ctx.options.epochs is not None:
        recipe["epochs"] = ctx.options.epochs
    result = fit(model, ctx.store, ctx.split, task=ctx.task, seed=seed, progress=ctx.progress, **recipe)
    return {"model": model, "epochs": result.epochs_run, "selected_epoch": result.best_epoch,
            "val_score": result.best_val}
