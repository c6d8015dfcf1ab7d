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
from .. import distributed as dist
from ..metrics import NonFiniteScoreError

#: True while the loop runs a step (loss, backward, optimiser step): tests count host synchronisations there
IN_STEP = False


@dataclass
class LoopResult:
    """What :func:`optimise` did: the epoch kept (the best validation epoch, or the last), its validation
    score, epochs run, wall time, per-validation history (epoch, mean loss since the previous validation,
    score) and the mean loss of every epoch (``losses``, read from the device once, at the end)."""

    best_epoch: int
    best_val: float | None
    epochs_run: int
    seconds: float
    history: list[dict] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)


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
        if dist.is_active():  # every rank raises, or none: a rank that raised alone would leave the others waiting
            firsts = [f for f in dist.all_gather_object(first, f"{where}: loss check") if f]
            first = min(firsts) if firsts else 0
        if first:
            raise FloatingPointError(f"{where}: the loss became NaN or infinite at epoch {first}; {hint}")


def validated(where: str, epoch: int | None, validate: Callable[[], float | None]) -> float | None:
    """``validate()``; NaN or infinite model outputs there mean the optimisation diverged. In a data-parallel
    job, the mean of the ranks' scores (:func:`graphunlearn.distributed.all_reduce_mean`), so that selection
    and early stopping decide the same on every rank."""
    try:
        score = validate()
    except NonFiniteScoreError as exc:
        after = "after training" if epoch is None else f"after epoch {epoch}"
        raise FloatingPointError(f"{where}: the model's validation outputs are NaN or infinite {after}; training "
                                 f"diverged (try a smaller lr) ({exc})") from exc
    if isinstance(score, bool):  # a decision (calibration's stop): rank 0's, so that every rank takes it
        return dist.broadcast_object(score, f"{where}: decision")
    return dist.all_reduce_mean(score, f"{where}: validation score")


def optimise(model: nn.Module, step_loss: Callable[[int, object], Tensor], *, epochs: int, lr: float,
             params: Iterable[nn.Parameter] | None = None, weight_decay: float = 0.0,
             batches: Callable[[int], Iterable] | None = None, validate: Callable[[], float | None] | None = None,
             eval_every: int = 1, patience: int | None = None, select: bool = True, progress: bool = False,
             desc: str = "train", where: str | None = None, autocast: bool = False) -> LoopResult:
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
        autocast: run the losses under bfloat16 autocast (``torch.autocast``; default off).

    In a data-parallel job (:func:`graphunlearn.distributed.is_active`), the step runs inside PyTorch's
    ``DistributedDataParallel`` over ``params`` (:func:`graphunlearn.distributed.data_parallel`), which
    all-reduces the gradients; each rank's ``batches`` are its own share; validation scores are averaged over
    the ranks; only rank 0 shows progress.

    No host synchronisation inside a step: the loss is accumulated on its device and read at validation
    points (where the first NaN or infinite epoch is also reported) and once at the end; without
    ``validate``, only at the end.

    Raises:
        FloatingPointError: the loss became NaN or infinite (checked at each validation point and at the
            end, naming the first bad epoch), or validation outputs did.
        graphunlearn.distributed.DistributedError: in a data-parallel job, another rank died or stopped
            answering (a collective of the step failed).
    """
    global IN_STEP
    where = where or desc
    params = list(model.parameters() if params is None else params)
    opt = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    best, best_epoch, best_state = None, 0, None
    history: list[dict] = []
    epoch_losses: list[Tensor] = []  # one device scalar per epoch
    first_bad = _FirstBad()
    hint = f"training diverged (try a smaller lr than {lr}) or the model or inputs hold NaN or inf values"
    start, epoch, since = time.perf_counter(), 0, 0
    device_type = params[0].device.type if params else "cpu"
    ddp = dist.data_parallel(params, where) if dist.is_active() and any(p.requires_grad for p in params) else None
    bar = tqdm(range(1, epochs + 1), desc=desc, disable=not progress or not dist.is_main(), leave=False)
    for epoch in bar:
        total, steps = None, 0
        for batch in (batches(epoch) if batches is not None else (None,)):
            model.train()
            opt.zero_grad()
            IN_STEP = True  # the loss, its checks and its backward: the library's own per-step code
            try:
                with torch.autocast(device_type, dtype=torch.bfloat16, enabled=autocast):
                    loss = step_loss(epoch, batch) if ddp is None else \
                        ddp(lambda batch=batch, epoch=epoch: step_loss(epoch, batch))
                first_bad.update(loss, epoch)
                if ddp is None:
                    loss.backward()
                else:  # DDP's all-reduce of the gradients runs inside backward
                    dist.collective(f"{where}: gradient all-reduce (epoch {epoch})", loss.backward)
                total = loss.detach().float() if total is None else total + loss.detach().float()
            finally:
                IN_STEP = False
            opt.step()  # torch's Adam keeps its step counts on the host unless capturable
            steps += 1
        if total is not None:
            epoch_losses.append(total / steps)
        if validate is not None and (epoch % eval_every == 0 or epoch == epochs):
            if ddp is not None:  # buffers (BatchNorm statistics) follow each rank's data: rank 0's everywhere
                dist.sync_buffers(model, f"{where}: buffers (epoch {epoch})")
            first_bad.check(where, hint)
            window = epoch_losses[since:]
            mean_loss = float(torch.stack(window).mean()) if window else math.nan
            since = len(epoch_losses)
            row = {"epoch": epoch, "loss": mean_loss}
            score = validated(where, epoch, validate)
            if score is not None:
                row["val"] = score
                if not math.isnan(score) and (best is None or score > best):
                    best, best_epoch = score, epoch
                    best_state = copy.deepcopy(model.state_dict()) if select else None
            history.append(row)
            bar.set_postfix({k: f"{v:.4f}" for k, v in row.items() if k != "epoch"})
            if patience is not None and score is not None and epoch - best_epoch >= patience:
                break
    if ddp is not None:
        dist.sync_buffers(model, f"{where}: buffers (end)")
    first_bad.check(where, hint)
    losses = torch.stack(epoch_losses).tolist() if epoch_losses else []  # the one read without validation
    if validate is None:
        history.append({"epoch": epoch, "loss": losses[-1] if losses else math.nan})
    if select and best_state is not None:
        model.load_state_dict(best_state)
    else:
        best_epoch = epoch
    model.eval()
    return LoopResult(best_epoch, best, epoch, time.perf_counter() - start, history, losses)


def check_recipe(where: str, *, epochs, lr, weight_decay, patience, eval_every, batch_size, seed, progress,
                 num_neighbors=None, steps_per_epoch=None) -> None:
    """Type and range checks for a training recipe (``TypeError``/``ValueError`` naming the argument)."""
    if num_neighbors is not None:
        from ..sampling.neighbor import fanouts

        fanouts(where, num_neighbors)
        if batch_size is None:
            raise ValueError(f"{where}: num_neighbors={list(num_neighbors)} samples computation graphs for "
                             "mini-batches; give batch_size= too")
    checks.check_int(where, "steps_per_epoch", steps_per_epoch, low=1, allow_none=True)
    checks.check_int(where, "epochs", epochs, low=1)
    checks.check_float(where, "lr", lr, low=0, low_open=True)
    checks.check_float(where, "weight_decay", weight_decay, low=0)
    checks.check_int(where, "patience", patience, low=1, allow_none=True)
    checks.check_int(where, "eval_every", eval_every, low=1)
    checks.check_int(where, "batch_size", batch_size, low=1, allow_none=True)
    checks.check_seed(where, seed)
    checks.check_bool(where, "progress", progress)
