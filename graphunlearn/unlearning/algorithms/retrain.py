"""Retraining from scratch on the retained graph: the gold standard every other method is measured against."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from ...models import ModelCard, fresh_copy, set_card, unwrapped
from ...train import fit
from ..base import Context, Options, epochs, register


@dataclass
class RetrainOptions(Options):
    epochs: int | None = epochs(None, "overrides the epoch budget of the recipe (None: the recipe's)")


@register("retrain", tasks=("*",), options=RetrainOptions, on_wrapped=True,
          requires="reset_parameters() on every module holding parameters (PyG's convention)")
def run(ctx: Context) -> dict:
    r"""Gold standard: a fresh copy of the model's architecture (``reset_parameters()`` on a deep copy, seeded
    by ``seed``) trained from scratch on the retained graph, with the user's ``train_fn(model, data, split)``
    when given (``data``: :meth:`~graphunlearn.GraphStore.live_data`; ``split``: the task's
    ``live_split``, deleted training units removed), else the project's trainer with the task's loss and the
    recipe on the model's card (``epochs`` overrides its epoch budget). For the project's backbones the
    fresh copy on the seed the original was built with is the original's initialisation (the protocol's
    "retrained from scratch on the same seed"). A model another method wrapped (GNNDelete's operators) is
    retrained as its ``base``."""
    model = fresh_copy(unwrapped(ctx.original), seed=ctx.seed)
    model.requires_grad_(True)
    if ctx.train_fn is not None:
        if ctx.options.epochs is not None:
            raise ValueError("retrain: the epochs option sets the project trainer's budget; with train_fn= your "
                             "function decides the budget")
        split = ctx.task.live_split(ctx.split, ctx.store) if ctx.split is not None else None
        returned = ctx.train_fn(model, ctx.store.live_data(), split)
        if returned is not None and not isinstance(returned, nn.Module):
            raise TypeError(f"retrain: train_fn must return the trained model (or None), got "
                            f"{type(returned).__name__}")
        out = returned if returned is not None else model
        name = getattr(ctx.train_fn, "__qualname__", type(ctx.train_fn).__name__)
        set_card(out, ModelCard(task=ctx.task.name, recipe={"train_fn": name}))
        return {"model": out, "train_fn": name}
    recipe = dict(ctx.card.recipe) if ctx.card is not None else {}
    recipe.pop("train_fn", None)
    # unlearn's seed drives the initialisation and every training draw: on the original's seed, gold is the
    # original's run again without the deleted data; on another seed, an independent retraining (what a second
    # gold for the noise floor must be: the recipe's seed would replay the original's draws)
    recipe.pop("seed", None)
    seed = ctx.seed
    if ctx.options.epochs is not None:
        recipe["epochs"] = ctx.options.epochs
    result = fit(model, ctx.store, ctx.split, task=ctx.task, seed=seed, progress=ctx.progress, _where="retrain",
                 **recipe)
    return {"model": model, "epochs": result.epochs_run, "selected_epoch": result.best_epoch,
            "val_score": result.best_val}
