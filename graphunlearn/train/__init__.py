"""Training any model for any task on a store's live graph: :func:`fit` (and the three task shorthands).

Every model is run as PyTorch Geometric models are, ``model(x, edge_index)`` on the live graph (deleted
elements never enter), through the one optimisation loop (:func:`~graphunlearn.train.loop.optimise`). The
recipe used is recorded in the model's card (:func:`graphunlearn.models.card_of`), so that
``unlearn(..., method="retrain")`` trains gold with the same settings, and what validation found
(``card.validation``): a model whose best validation score stayed at chance is reported loudly
(:class:`ChanceLevelWarning`) and refused by ``unlearn`` and the benchmark.
"""

from __future__ import annotations

import itertools
import os
import warnings
from dataclasses import dataclass, field

import torch
from torch import nn

from .. import checks
from .. import distributed as dist
from ..models.card import ModelCard, card_of, save_model, set_card
from ..store import GraphStore
from ..tasks import Task, get_task
from ..tasks.base import make_generator
from .loop import LoopResult, check_recipe, optimise, validated

__all__ = ["ChanceLevelWarning", "LoopResult", "TrainResult", "fit", "link_prediction", "node_classification",
           "optimise", "recommendation", "validated"]


class ChanceLevelWarning(UserWarning):
    """Training ended with the best validation score at chance (:meth:`graphunlearn.tasks.Task.learned`): the
    model learned nothing. ``unlearn`` and the benchmark refuse such a model as an original."""


@dataclass
class TrainResult:
    """What training did: the model (trained in place, best validation state restored), the best epoch and
    its validation score, epochs run, wall time, per-validation history, the recipe, the model's card, and
    whether the best validation score stayed at chance (``at_chance``; ``None`` without a validation score
    to judge; the chance level itself is ``card.validation["chance"]``)."""

    model: nn.Module
    best_epoch: int
    best_val: float | None
    epochs_run: int
    seconds: float
    history: list[dict] = field(default_factory=list)
    recipe: dict = field(default_factory=dict)
    card: ModelCard | None = None
    at_chance: bool | None = None


def fit(model: nn.Module, store: GraphStore, split=None, *, task: str | Task | None = None,
        epochs: int | None = None, lr: float | None = None, weight_decay: float | None = None,
        patience: int | None = None, eval_every: int | None = None, batch_size: int | None = None,
        num_neighbors: list[int] | None = None, steps_per_epoch: int | None = None, seed: int = 0,
        progress: bool = True, checkpoint: str | os.PathLike | None = None, autocast: bool = False,
        _where: str | None = None) -> TrainResult:
    """Train ``model`` for ``task`` on the store's live graph with the task's loss and early stopping on its
    validation score; arguments left ``None`` take the task's recipe for the model (``task.recipe_for(model)``:
    ``task.recipe``, with a backbone's own entries where ``task.backbone_recipes`` has them).

    Args:
        model: any ``nn.Module`` called as ``model(x, edge_index)`` (or with PyG's ``get_embedding``).
        store: the training graph; deleted elements never reach the model.
        split: the task's split (validation data; node and rec training need it); ``None`` trains link
            prediction for ``epochs`` without selection.
        task: ``"link"``, ``"node"``, ``"rec"`` or a :class:`~graphunlearn.tasks.Task` (default: from the
            split's type).
        epochs, lr, weight_decay, patience, eval_every, batch_size: the recipe (see each task's ``recipe``
            and ``backbone_recipes``; ``patience=None`` in a task's recipe means no early stopping).
        num_neighbors: mini-batch training on sampled computation graphs (link, node and rec tasks): per-hop
            fanouts (``-1``: all neighbours) of the deletion-aware sampler around each batch's units
            (:mod:`graphunlearn.tasks.local`), which needs ``batch_size`` (link: live edges per batch, with as
            many sampled non-edges; node: live training nodes; rec: live interactions, each with one sampled
            negative item); validation then reads sampled computation
            graphs too (``Task.sampled_val_units``). ``None`` (default): the whole graph every step.
        steps_per_epoch: at most this many batches per epoch (default: a full pass), the fixed budget of
            sampled steps large graphs train with.
        seed: seeds initialisation-independent randomness (negatives, dropout, batch order) (default 0).
        progress: show a progress bar (default ``True``).
        checkpoint: write the selected model and its card there (:func:`graphunlearn.models.save_model`).
        autocast: train under bfloat16 autocast (default off).

    Data-parallel (under ``torchrun``, after :func:`graphunlearn.distributed.init`): every rank holds the same
    store (checked first, :func:`graphunlearn.distributed.check_store`) and model; a generator seeded with
    ``seed`` on every rank draws each step's units for all ranks (``world_size x batch_size``; a full-batch
    step's are all the training units) and each rank takes its share
    (:func:`graphunlearn.distributed.shard`), so ``batch_size`` is per rank and an epoch is one pass over the
    units split across the ranks; negatives, neighbour samples and dropout use each rank's own seed
    (:func:`graphunlearn.distributed.rank_seed`); DDP all-reduces the gradients; validation scores are
    averaged over the ranks; rank 0 alone writes ``checkpoint``, the others wait for it.

    Warns:
        ChanceLevelWarning: the best validation score stayed at the task's chance level
            (:meth:`~graphunlearn.tasks.Task.learned`: link AUROC at most 0.52; node accuracy at most the
            majority-class rate of the validation nodes; judged on 100 validation units or more); recorded
            as ``card.validation["at_chance"]``.

    Raises:
        TypeError, ValueError: an argument of the wrong type or out of range, a split of another task,
            nothing left to train on, or a model on another device than the store (naming both).
        FloatingPointError: the loss or the validation outputs became NaN or infinite.
        graphunlearn.distributed.StoreMismatchError: in a data-parallel job, the ranks' stores differ.
        graphunlearn.distributed.DistributedError: in a data-parallel job, another rank died or stopped answering.
    """
    where = _where or "train.fit"
    checks.check_instance(where, "model", model, nn.Module)
    checks.check_instance(where, "store", store, GraphStore)
    task = get_task(task, split, where)
    given = dict(epochs=epochs, lr=lr, weight_decay=weight_decay, patience=patience, eval_every=eval_every,
                 batch_size=batch_size, num_neighbors=_fanouts(where, num_neighbors),
                 steps_per_epoch=steps_per_epoch)
    recipe = {**task.recipe_for(model), **{k: v for k, v in given.items() if v is not None}}
    check_recipe(where, seed=seed, progress=progress, **recipe)
    fanout = recipe.get("num_neighbors")
    if fanout is not None and not task.sampled_training:
        raise ValueError(f"{where}: task {task.name!r} trains on the whole graph; num_neighbors= (sampled "
                         "computation graphs) is for tasks with sampled training (link, node, rec)")
    checks.check_instance(where, "checkpoint", checkpoint, (str, os.PathLike), allow_none=True)
    checks.check_bool(where, "autocast", autocast)
    task.check_device(where, model, store)
    split = task.to_device(split, store.device)
    task.check_trainable(store, split, where)
    task.warm(store, sampled=True) if recipe.get("num_neighbors") is not None else task.warm(store)
    recipe["seed"] = seed
    parallel = dist.is_active()
    if parallel:
        dist.check_store(store, where)
    torch.manual_seed(dist.rank_seed(seed))
    g = make_generator(dist.rank_seed(seed), store.device)  # rank 0's is seed: one process draws as before
    shared = make_generator(seed, store.device) if parallel else g  # each step's units, alike on every rank
    validate = None
    if split is not None:
        validate = (lambda: task.validate(model, store, split)) if fanout is None else \
            (lambda: task.validate(model, store, split, num_neighbors=fanout))
    steps = recipe.get("steps_per_epoch")
    run = optimise(model, lambda epoch, batch: task.loss(model, store, split, batch, g, recipe),
                   epochs=recipe["epochs"], lr=recipe["lr"],
                   weight_decay=0.0 if task.l2_in_loss else recipe["weight_decay"],
                   batches=lambda epoch: _epoch_batches(task, store, split, shared, recipe, steps),
                   validate=validate, eval_every=recipe["eval_every"], patience=recipe["patience"],
                   progress=progress, desc=f"train {task.name}", where=where, autocast=autocast)
    verdict = task.learned(run.best_val, store, split) if split is not None else None
    if verdict is not None and verdict["at_chance"]:
        warnings.warn(f"{where}: the model did not learn: its best validation score was {run.best_val:.4f} (epoch "
                      f"{run.best_epoch} of {run.epochs_run}), at chance for task {task.name!r} (chance "
                      f"{verdict['chance']:.4f} + margin {verdict['margin']:.2f}). Scale the features (e.g. "
                      "torch_geometric's T.NormalizeFeatures()), lower lr= or check the labels; unlearn and the "
                      "benchmark refuse this model", ChanceLevelWarning, stacklevel=3 if _where else 2)
    old = card_of(model)
    custom = task.decoder if task.decoder is not None else getattr(task, "head", None)
    card = ModelCard(task=task.name, recipe=dict(recipe), forgotten=old.forgotten if old else (),
                     decoder=None if custom is None else getattr(custom, "__qualname__", type(custom).__name__),
                     validation=verdict)
    set_card(model, card)
    if checkpoint is not None:
        saved = dist.main_only(lambda: save_model(checkpoint, model, card), f"{where}: rank 0 writes {checkpoint}")
        card = saved if saved is not None else card
    return TrainResult(model, run.best_epoch, run.best_val, run.epochs_run, run.seconds, run.history, dict(recipe),
                       card, None if verdict is None else verdict["at_chance"])


def _epoch_batches(task: Task, store: GraphStore, split, g: torch.Generator, recipe: dict, steps: int | None):
    """One epoch's batches: ``task.batches`` (a pass over the training units), at most ``steps`` of them; with
    sampled computation graphs and a step budget, ``steps`` batches drawn uniformly (``Task.sample_batch``), so
    an epoch never permutes all the graph's edges. In a data-parallel job, ``g`` draws alike on every rank
    batches ``world_size`` times larger (a full-batch step: all the units) and this rank keeps its share; a
    last batch with fewer units than ranks is dropped, so every rank takes the same number of steps."""
    size = recipe["batch_size"]
    if not dist.is_active():
        if steps is not None and recipe.get("num_neighbors") is not None:
            return [task.sample_batch(store, split, g, size) for _ in range(steps)]
        return itertools.islice(task.batches(store, split, g, size), steps)
    world = dist.world_size()
    if steps is not None and recipe.get("num_neighbors") is not None:
        return [dist.shard(task.sample_batch(store, split, g, size * world)) for _ in range(steps)]
    batches = task.batches(store, split, g, _ALL if size is None else size * world)
    return [dist.shard(b) for b in itertools.islice(batches, steps) if b is None or b.size(-1) >= world]


_ALL = 1 << 62  # a batch size no graph reaches: a full-batch step's units in one batch, to be shared


def _fanouts(where: str, num_neighbors) -> list[int] | None:
    if num_neighbors is None:
        return None
    from ..sampling.neighbor import fanouts

    return fanouts(where, num_neighbors)


def link_prediction(model: nn.Module, store: GraphStore, split=None, **recipe) -> TrainResult:
    """:func:`fit` for link prediction: BCE of the live edges against as many sampled node pairs per epoch,
    early stopping on validation AUROC (recipe: at most 500 epochs, lr 0.01, patience 50, validation every 5;
    GIN: lr 0.001, patience 100)."""
    return fit(model, store, split, task="link", _where="train.link_prediction", **recipe)


def node_classification(model: nn.Module, store: GraphStore, split, **recipe) -> TrainResult:
    """:func:`fit` for node classification: cross-entropy on the live training nodes, early stopping on
    validation accuracy (recipe: 200 epochs, lr 0.01, weight decay 5e-4, patience 50)."""
    return fit(model, store, split, task="node", _where="train.node_classification", **recipe)


def recommendation(model: nn.Module, store: GraphStore, split, **recipe) -> TrainResult:
    """:func:`fit` for recommendation: BPR on the live interactions in mini-batches of 8192 with one sampled
    negative item each, an L2 penalty of 1e-4 on the batch's embeddings, 50 epochs, lr 0.005 (no
    validation interactions, so no selection)."""
    return fit(model, store, split, task="rec", _where="train.recommendation", **recipe)
