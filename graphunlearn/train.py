"""Seeded training loops for link prediction, node classification and recommendation on a store's live
view, with validation-based early stopping, progress bars and safe checkpoints.

Each loop records its recipe (``model.graphunlearn_recipe``) so that ``unlearn(..., method="retrain")`` can
train from scratch with the same settings.
"""

from __future__ import annotations

import copy
import math
import os
import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from . import checks
from . import models as gm
from .datasets.splits import LinkSplit, NodeSplit, RecSplit
from .io import CorruptFileError, atomic_save, safe_load
from .kernels import bpr_loss
from .metrics import NonFiniteScoreError, check_finite, roc_auc
from .store import GraphStore

RECIPE_ATTR = "graphunlearn_recipe"

def _check_common(where: str, model, store, split, split_cls, *, allow_none_split: bool = False) -> None:
    checks.check_instance(where, "model", model, nn.Module)
    checks.check_instance(where, "store", store, GraphStore)
    checks.check_instance(where, "split", split, split_cls, allow_none=allow_none_split)


def _check_checkpoint(where: str, checkpoint) -> None:
    checks.check_instance(where, "checkpoint", checkpoint, (str, os.PathLike), allow_none=True)


class _FirstBad:
    """Remembers, on the loss's device, the first step whose loss was NaN or infinite, so a loop can check
    it where it already reads values from the device instead of adding a host sync every step."""

    def __init__(self):
        self.step: Tensor | None = None

    def update(self, loss: Tensor, step: int) -> None:
        bad = ~torch.isfinite(loss.detach())
        if self.step is None:
            self.step = torch.zeros((), dtype=torch.long, device=loss.device)
        self.step = torch.where(bad & (self.step == 0), torch.full_like(self.step, step), self.step)

    def check(self, where: str, what: str = "epoch") -> None:
        first = 0 if self.step is None else int(self.step)
        if first:
            raise FloatingPointError(f"{where}: the loss became NaN or infinite at {what} {first}; training "
                                     "diverged (try a smaller lr) or the inputs hold NaN or inf values")


@dataclass
class TrainResult:
    """What a training loop did: the model (trained in place, best validation state restored), the best
    epoch and its validation score, epochs run, wall time, per-evaluation history and the recipe."""

    model: nn.Module
    best_epoch: int
    best_val: float | None
    epochs_run: int
    seconds: float
    history: list[dict] = field(default_factory=list)
    recipe: dict = field(default_factory=dict)


class _EarlyStopper:
    def __init__(self, model: nn.Module, patience: int):
        self.model, self.patience = model, patience
        self.best, self.best_epoch, self.state = None, 0, copy.deepcopy(model.state_dict())

    def update(self, epoch: int, score: float) -> bool:
        """Record ``score``; returns True when training should stop."""
        if not math.isnan(score) and (self.best is None or score > self.best):
            self.best, self.best_epoch = score, epoch
            self.state = copy.deepcopy(self.model.state_dict())
        return epoch - self.best_epoch >= self.patience

    def restore(self) -> None:
        self.model.load_state_dict(self.state)


def _live_nodes(store: GraphStore) -> Tensor:
    return store.node_mask.nonzero().squeeze(1)


def sample_pairs(nodes: Tensor, num: int, generator: torch.Generator) -> Tensor:
    """``num`` uniformly random pairs [2, num] of two different entries of ``nodes`` (negatives for BCE)."""
    n = nodes.numel()
    if num > 0 and n < 2:
        raise ValueError(f"sample_pairs: {num} pairs of two different nodes asked for, but only {n} live node(s) "
                         "are left")
    i = torch.randint(n, (num,), generator=generator)
    # an offset in 1..n-1 never lands on the same position, so no pair is a self loop
    j = (i + torch.randint(1, max(n, 2), (num,), generator=generator)) % max(n, 1)
    return torch.stack([nodes[i], nodes[j]])


def sample_negative_items(users: Tensor, store: GraphStore, num_users: int, num_items: int,
                          generator: torch.Generator, rounds: int = 50) -> Tensor:
    """One item per user that the user has no retained interaction with (redrawn up to ``rounds`` times;
    a user who has interacted with nearly every item may keep a positive after that)."""
    pairs = interactions(store, num_users)
    known = torch.sort(pairs[0] * num_items + pairs[1]).values  # membership by binary search
    neg = torch.randint(num_items, (users.numel(),), generator=generator)
    if known.numel() == 0:
        return neg
    for _ in range(rounds):
        keys = users * num_items + neg
        clash = known[torch.searchsorted(known, keys).clamp(max=known.numel() - 1)] == keys
        if not bool(clash.any()):
            break
        neg[clash] = torch.randint(num_items, (int(clash.sum()),), generator=generator)
    return neg


def link_scores(model: nn.Module, store: GraphStore, pairs: Tensor, z: Tensor | None = None) -> Tensor:
    """Link logits of ``pairs`` with message passing on the store's live graph."""
    if z is None:
        view = store.live()
        z = model(view.x, view)
    return gm.GNN.decode(z, pairs)


def link_prediction(model: nn.Module, store: GraphStore, split: LinkSplit | None = None, *, epochs: int = 200,
                    lr: float = 0.01, weight_decay: float = 0.0, patience: int = 50, eval_every: int = 5,
                    seed: int = 0, progress: bool = True, checkpoint: str | os.PathLike | None = None
                    ) -> TrainResult:
    r"""Train a link predictor (``model(x, graph)`` -> embeddings, dot-product decoder) on the store's live
    edges: binary cross-entropy against as many uniformly sampled node pairs per epoch.

    Args:
        model: a :class:`~graphunlearn.models.GNN` (or any module with that call signature).
        store: the training graph (``GraphStore(split.train_data)``); deleted edges never enter.
        split: for validation AUROC (``split.val_pos`` / ``val_neg``) and early stopping; ``None`` trains for
            ``epochs`` without selection.
        epochs: maximum epochs (default 200). lr: Adam learning rate (default 0.01).
        weight_decay: Adam weight decay (default 0). patience: epochs without a better validation AUROC
            before stopping (default 50). eval_every: epochs between evaluations (default 5).
        seed: seeds initialisation-independent randomness (negatives, dropout) (default 0).
        progress: show a progress bar (default ``True``).
        checkpoint: write the selected model there (see :func:`save_checkpoint`).

    Raises:
        TypeError, ValueError: an argument of the wrong type or out of range, or a store with no live edges.
        FloatingPointError: the loss became NaN or infinite (checked at each evaluation and at the end).
    """
    where = "train.link_prediction"
    _check_common(where, model, store, split, LinkSplit, allow_none_split=True)
    _check_loop(where, epochs=epochs, lr=lr, weight_decay=weight_decay, seed=seed, progress=progress,
                patience=patience, eval_every=eval_every)
    _check_checkpoint(where, checkpoint)
    if store.num_live_edges == 0:
        raise ValueError(f"{where}: the store has no live edges to train on (every edge was deleted)")
    recipe = dict(task="link", epochs=epochs, lr=lr, weight_decay=weight_decay, patience=patience,
                  eval_every=eval_every, seed=seed)
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    stopper = _EarlyStopper(model, patience)
    history, start, epoch, first_bad = [], time.perf_counter(), 0, _FirstBad()
    bar = tqdm(range(1, epochs + 1), desc="train link", disable=not progress, leave=False)
    for epoch in bar:
        model.train()
        view = store.live()
        pos = store.edge_index[:, store.edge_mask]
        neg = sample_pairs(_live_nodes(store), pos.size(1), g)
        z = model(view.x, view)
        logits = gm.GNN.decode(z, torch.cat([pos, neg], 1))
        labels = torch.cat([torch.ones(pos.size(1)), torch.zeros(neg.size(1))])
        loss = F.binary_cross_entropy_with_logits(logits, labels)
        first_bad.update(loss, epoch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if split is not None and (epoch % eval_every == 0 or epoch == epochs):
            first_bad.check(where)
            auc = _diverged(where, epoch, evaluate_link_auc, model, store, split.val_pos, split.val_neg)
            history.append({"epoch": epoch, "loss": loss.item(), "val_auroc": auc})
            bar.set_postfix(loss=f"{loss.item():.4f}", val_auc=f"{auc:.4f}")
            if stopper.update(epoch, auc):
                break
    first_bad.check(where)
    if split is not None:
        stopper.restore()
    model.eval()
    setattr(model, RECIPE_ATTR, recipe)
    result = TrainResult(model, stopper.best_epoch if split is not None else epoch, stopper.best, epoch,
                         time.perf_counter() - start, history, recipe)
    if checkpoint is not None:
        save_checkpoint(checkpoint, model)
    return result


def _check_loop(where: str, *, epochs, lr, weight_decay, seed, progress, patience=1, eval_every=1,
                batch_size=1) -> None:
    checks.check_int(where, "epochs", epochs, low=1)
    checks.check_float(where, "lr", lr, low=0, low_open=True)
    checks.check_float(where, "weight_decay", weight_decay, low=0)
    checks.check_int(where, "patience", patience, low=1)
    checks.check_int(where, "eval_every", eval_every, low=1)
    checks.check_int(where, "batch_size", batch_size, low=1)
    checks.check_seed(where, seed)
    checks.check_bool(where, "progress", progress)


def _diverged(where: str, epoch: int | None, fn, *args) -> float:
    """``fn(*args)``, a validation metric; NaN or infinite model outputs there mean training diverged."""
    try:
        return fn(*args)
    except NonFiniteScoreError as exc:
        after = "after training" if epoch is None else f"after epoch {epoch}"
        raise FloatingPointError(f"{where}: the model's validation outputs are NaN or infinite {after}; training "
                                 f"diverged (try a smaller lr) ({exc})") from exc


@torch.no_grad()
def evaluate_link_auc(model: nn.Module, store: GraphStore, pos: Tensor, neg: Tensor) -> float:
    """Validation AUROC of the link scores of ``pos`` against ``neg`` pairs, message passing on the live graph
    (raises ``ValueError`` on NaN or infinite scores)."""
    checks.check_instance("evaluate_link_auc", "model", model, nn.Module)
    checks.check_instance("evaluate_link_auc", "store", store, GraphStore)
    model.eval()
    view = store.live()
    z = model(view.x, view)
    return roc_auc(gm.GNN.decode(z, pos), gm.GNN.decode(z, neg))


def node_classification(model: nn.Module, store: GraphStore, split: NodeSplit, *, epochs: int = 200,
                        lr: float = 0.01, weight_decay: float = 5e-4, patience: int = 50, eval_every: int = 1,
                        seed: int = 0, progress: bool = True, checkpoint: str | os.PathLike | None = None
                        ) -> TrainResult:
    """Train a node classifier (``model(x, graph)`` -> logits [N, C]) with cross-entropy on the live training
    nodes of ``split``; early stopping on validation accuracy. Arguments and errors as :func:`link_prediction`."""
    where = "train.node_classification"
    _check_common(where, model, store, split, NodeSplit)
    _check_loop(where, epochs=epochs, lr=lr, weight_decay=weight_decay, seed=seed, progress=progress,
                patience=patience, eval_every=eval_every)
    _check_checkpoint(where, checkpoint)
    if store.y is None:
        raise ValueError(f"{where}: the store has no labels y")
    if not bool(store.node_mask[split.train_idx].any()):
        raise ValueError(f"{where}: no live training nodes left (every node of split.train_idx was deleted)")
    recipe = dict(task="node", epochs=epochs, lr=lr, weight_decay=weight_decay, patience=patience,
                  eval_every=eval_every, seed=seed)
    torch.manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    stopper = _EarlyStopper(model, patience)
    history, start, epoch, first_bad = [], time.perf_counter(), 0, _FirstBad()
    bar = tqdm(range(1, epochs + 1), desc="train node", disable=not progress, leave=False)
    for epoch in bar:
        model.train()
        view = store.live()
        train = split.train_idx[store.node_mask[split.train_idx]]
        loss = F.cross_entropy(model(view.x, view)[train], store.y[train])
        first_bad.update(loss, epoch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if epoch % eval_every == 0 or epoch == epochs:
            first_bad.check(where)
            acc = _diverged(where, epoch, node_accuracy, model, store, split.val_idx)
            history.append({"epoch": epoch, "loss": loss.item(), "val_acc": acc})
            bar.set_postfix(loss=f"{loss.item():.4f}", val_acc=f"{acc:.4f}")
            if stopper.update(epoch, acc):
                break
    stopper.restore()
    model.eval()
    setattr(model, RECIPE_ATTR, recipe)
    if checkpoint is not None:
        save_checkpoint(checkpoint, model)
    return TrainResult(model, stopper.best_epoch, stopper.best, epoch, time.perf_counter() - start, history, recipe)


@torch.no_grad()
def node_accuracy(model: nn.Module, store: GraphStore, nodes: Tensor) -> float:
    """Accuracy on the live ``nodes`` (NaN when none is live; ``ValueError`` on NaN or infinite logits there,
    which ``argmax`` would otherwise read as a confident class)."""
    checks.check_instance("node_accuracy", "model", model, nn.Module)
    checks.check_instance("node_accuracy", "store", store, GraphStore)
    model.eval()
    nodes = nodes[store.node_mask[nodes]]
    view = store.live()
    logits = model(view.x, view)[nodes]
    check_finite("node_accuracy", logits, "logits of the nodes asked")
    pred = logits.argmax(1)
    return float((pred == store.y[nodes]).float().mean()) if nodes.numel() else float("nan")


def interactions(store: GraphStore, num_users: int) -> Tensor:
    """Live user-item interactions [2, K] as (user, item) with items numbered from 0."""
    pairs = store.edge_index[:, store.edge_mask]
    return torch.stack([pairs[0], pairs[1] - num_users])


def recommendation(model: nn.Module, store: GraphStore, split: RecSplit, *, epochs: int = 50, lr: float = 0.005,
                   weight_decay: float = 1e-4, batch_size: int = 8192, seed: int = 0, progress: bool = True,
                   checkpoint: str | os.PathLike | None = None) -> TrainResult:
    """Train a recommender (``model(x, graph)`` -> (user, item) embeddings) with BPR on the live interactions,
    one negative item per interaction drawn from the items the user has no retained interaction with, for
    a fixed number of epochs (the protocol has no
    validation interactions to select on); ``weight_decay`` is an L2 penalty on the batch's embeddings.
    Errors as :func:`link_prediction` (the loss is checked once per epoch, where it is read anyway)."""
    where = "train.recommendation"
    _check_common(where, model, store, split, RecSplit)
    _check_loop(where, epochs=epochs, lr=lr, weight_decay=weight_decay, seed=seed, progress=progress,
                batch_size=batch_size)
    _check_checkpoint(where, checkpoint)
    if store.num_live_edges == 0:
        raise ValueError(f"{where}: the store has no live interactions to train on (every one was deleted)")
    recipe = dict(task="rec", epochs=epochs, lr=lr, weight_decay=weight_decay, batch_size=batch_size, seed=seed)
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    history, start = [], time.perf_counter()
    bar = tqdm(range(1, epochs + 1), desc="train rec", disable=not progress, leave=False)
    for epoch in bar:
        model.train()
        pairs = interactions(store, split.num_users)
        order = torch.randperm(pairs.size(1), generator=g)
        total = 0.0
        for b0 in range(0, order.numel(), batch_size):
            idx = order[b0:b0 + batch_size]
            users, pos = pairs[0, idx], pairs[1, idx]
            neg = sample_negative_items(users, store, split.num_users, split.num_items, g)
            view = store.live()
            ue, ie = model(view.x, view)
            loss = bpr_loss(ue, ie, users, pos, neg)
            reg = (ue[users].pow(2).sum() + ie[pos].pow(2).sum() + ie[neg].pow(2).sum()) / (2 * idx.numel())
            loss = loss + weight_decay * reg
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.detach() * idx.numel()
        total = float(total)  # one host sync per epoch
        if not math.isfinite(total):
            raise FloatingPointError(f"{where}: the loss became NaN or infinite in epoch {epoch}; training diverged "
                                     "(try a smaller lr) or the inputs hold NaN or inf values")
        history.append({"epoch": epoch, "loss": total / max(1, order.numel())})
        bar.set_postfix(loss=f"{history[-1]['loss']:.4f}")
    model.eval()
    setattr(model, RECIPE_ATTR, recipe)
    if checkpoint is not None:
        save_checkpoint(checkpoint, model)
    return TrainResult(model, epochs, None, epochs, time.perf_counter() - start, history, recipe)


_MODEL_CLASSES = ("GNN", "LightGCN", "MF", "GNNDeleteModel")


def _build(name: str, config: dict) -> nn.Module:
    if name == "GNNDeleteModel":
        return gm.GNNDeleteModel.from_config(config)
    return {"GNN": gm.GNN, "LightGCN": gm.LightGCN, "MF": gm.MF}[name](**config)


def save_checkpoint(path: str | os.PathLike, model: nn.Module) -> None:
    """Write the model's class name, constructor config, recipe and weights atomically."""
    name = type(model).__name__
    if name not in _MODEL_CLASSES:
        raise TypeError(f"save_checkpoint: {name} is not a graphunlearn model ({sorted(_MODEL_CLASSES)})")
    atomic_save({"class": name, "config": dict(model.config), "recipe": getattr(model, RECIPE_ATTR, None),
                 "forgotten": list(getattr(model, "forgotten_requests", ())),
                 "tag": getattr(model, "graphunlearn_tag", None),
                 "state_dict": model.state_dict()}, path)


def load_checkpoint(path: str | os.PathLike) -> nn.Module:
    """Rebuild a model written by :func:`save_checkpoint` (loaded with ``weights_only=True``).

    Raises:
        FileNotFoundError: no such file.
        CorruptFileError: the file is damaged, not a checkpoint of this library, or its weights do not fit
            the model it names; the message names the file.
    """
    checks.check_instance("load_checkpoint", "path", path, (str, os.PathLike))
    blob = safe_load(path)
    if not isinstance(blob, dict) or not {"class", "config", "state_dict"} <= set(blob):
        raise CorruptFileError(f"{path}: not a graphunlearn model checkpoint (expected a dict with class, config "
                               f"and state_dict, got {type(blob).__name__})")
    if blob.get("class") not in _MODEL_CLASSES:
        raise CorruptFileError(f"{path}: holds an unknown model class {blob.get('class')!r}")
    try:
        model = _build(blob["class"], blob["config"])
        model.load_state_dict(blob["state_dict"])
    except (TypeError, KeyError, AttributeError, RuntimeError, ValueError) as exc:
        raise CorruptFileError(f"{path}: the {blob['class']} checkpoint does not load ({type(exc).__name__}: "
                               f"{' '.join(str(exc).split())[:240]})") from None
    if blob.get("recipe") is not None:
        setattr(model, RECIPE_ATTR, blob["recipe"])
    model.forgotten_requests = tuple(blob.get("forgotten", ()))
    if blob.get("tag"):
        model.graphunlearn_tag = blob["tag"]
    model.eval()
    return model
