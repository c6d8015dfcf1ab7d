"""The one optimisation loop: original training, gold retraining and every unlearning method run through it.

Seeded, with early stopping on a validation score, a progress bar, and no host synchronisation inside a
step: losses accumulate on the device and are read where the loop reads values anyway (at validation
points and at the end), which is also where a NaN or infinite loss is reported.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from .. import checks
from ..metrics import NonFiniteScoreError


@dataclass
class LoopResult:
    """What :func:`optimise` did: the epoch kept (the best validation epoch, or the last), its validation
    score, epochs run, wall time, and per-validation history (epoch, mean loss, score)."""

    best_epoch: int
    best_val: float | None
    epochs_run: int
    seconds: float
    history: list[dict] = field(default_factory=list)


class _FirstBad:
    """Remembers, on the loss's device, the first step whose loss was NaN or infinite, so the loop can check
    it where it already reads values from the device instead of adding a host sync every step."""

    def __init__(self):
        self.step: Tensor | None = None

    def update(self, loss: Tensor, step: int) -> None:
        bad = ~torch.isfinite(loss.detach())
        if self.step is None:
            self.step = torch.zeros((), dtype=torch.long, device=loss.device)
        self.step = torch.where(bad & (self.step == 0), torch.full_like(self.step, step), self.step)

    def check(self, where: str, hint: str) -> None:
        first = 0 if self.step is None else int(self.step)
        if first:
            raise FloatingPointError(f"{where}: the loss became NaN or infinite at epoch {first}; {hint}")


def validated(where: str, epoch: int | None, validate: Callable[[], float | None]) -> float | None:
    """``validate()``; NaN or infinite model outputs there mean the optimisation diverged."""
    try:
        return validate()
    except NonFiniteScoreError as exc:
        after = "after training" if epoch is None else f"after epoch {epoch}"
        raise FloatingPointError(f"{where}: the model's validation outputs are NaN or infinite {after}; training "
                                 f"diverged (try a smaller lr) ({exc})") from exc


def optimise(model: nn.Module, step_loss: Callable[[int, object], Tensor], *, epochs: int, lr: float,
             params: Iterable[nn.Parameter] | None = None, weight_decay: float = 0.0,
             batches: Callable[[int], Iterable] | None = None, validate: Callable[[], float | None] | None = None,
             eval_every: int = 1, patience: int | None = None, select: bool = True, progress: bool = False,
             desc: str = "train", where: str | None = None) -> LoopResult:
    r"""Adam on ``step_loss(epoch, batch)`` for up to ``epochs`` epochs.

    Args:
        model: what is trained (set to train mode for each step, eval mode at the end); its best state is
            restored at the end when ``select`` and a validation score exists.
        step_loss: the loss of one step, a scalar tensor.
        epochs: maximum epochs (>= 1). lr: Adam's learning rate (> 0). weight_decay: Adam's (>= 0).
        params: the parameters to optimise (default: all of ``model``'s).
        batches: ``batches(epoch)`` -> that epoch's batches (default: one full-batch step, batch ``None``);
            the seam for mini-batch loaders.
        validate: ``validate()`` -> a score, higher is better, or ``None`` (no selection).
        eval_every: epochs between validations (the last epoch is always validated).
        patience: stop after this many epochs without a better score (``None``: never stop early).
        select: keep the best validation epoch (``False``: keep the last, as gradient ascent must).
        progress: show a progress bar. desc: its label. where: how errors name the caller (default ``desc``).

    Raises:
        FloatingPointError: the loss became NaN or infinite (checked at each validation point and at the
            end, naming the first bad epoch), or validation outputs did.
    """
    where = where or desc
    params = list(model.parameters() if params is None else params)
    opt = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    best, best_epoch, best_state = None, 0, None
    history: list[dict] = []
    first_bad = _FirstBad()
    hint = f"training diverged (try a smaller lr than {lr}) or the model or inputs hold NaN or inf values"
    start, epoch = time.perf_counter(), 0
    total, steps = None, 0
    bar = tqdm(range(1, epochs + 1), desc=desc, disable=not progress, leave=False)
    for epoch in bar:
        for batch in (batches(epoch) if batches is not None else (None,)):
            model.train()
            loss = step_loss(epoch, batch)
            first_bad.update(loss, epoch)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total = loss.detach() if total is None else total + loss.detach()
            steps += 1
        if epoch % eval_every == 0 or epoch == epochs:
            first_bad.check(where, hint)
            mean_loss = float(total) / max(1, steps) if total is not None else math.nan
            total, steps = None, 0
            row = {"epoch": epoch, "loss": mean_loss}
            score = validated(where, epoch, validate) if validate is not None else None
            if score is not None:
                row["val"] = score
                if not math.isnan(score) and (best is None or score > best):
                    best, best_epoch = score, epoch
                    best_state = copy.deepcopy(model.state_dict()) if select else None
            history.append(row)
            bar.set_postfix({k: f"{v:.4f}" for k, v in row.items() if k != "epoch"})
            if patience is not None and score is not None and epoch - best_epoch >= patience:
                break
    first_bad.check(where, hint)
    if select and best_state is not None:
        model.load_state_dict(best_state)
    else:
        best_epoch = epoch
    model.eval()
    return LoopResult(best_epoch, best, epoch, time.perf_counter() - start, history)


def check_recipe(where: str, *, epochs, lr, weight_decay, patience, eval_every, batch_size, seed, progress) -> None:
    """Type and range checks for a training recipe (``TypeError``/``ValueError`` naming the argument)."""
    checks.check_int(where, "epochs", epochs, low=1)
    checks.check_float(where, "lr", lr, low=0, low_open=True)
    checks.check_float(where, "weight_decay", weight_decay, low=0)
    checks.check_int(where, "patience", patience, low=1, allow_none=True)
    checks.check_int(where, "eval_every", eval_every, low=1)
    checks.check_int(where, "batch_size", batch_size, low=1, allow_none=True)
    checks.check_seed(where, seed)
    checks.check_bool(where, "progress", progress)
