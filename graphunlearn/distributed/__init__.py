r"""Data-parallel training and unlearning on ``torch.distributed``, launched by ``torchrun``.

Every rank holds a replica of the store (:func:`open_store`, :func:`replicate`) and the model. The one
optimisation loop (:func:`graphunlearn.train.loop.optimise`) wraps what it trains in PyTorch's
``DistributedDataParallel`` when a process group of more than one rank is active, so every step's
gradients are all-reduced (averaged) by DDP; the trainer hands each rank a disjoint share of each step's
training units (:func:`shard`: a generator seeded alike on every rank draws ``world_size x batch_size``
units and rank :math:`r` takes every ``world_size``-th from position :math:`r`, PyTorch's
``DistributedSampler`` convention: ``batch_size`` is per rank); validation scores are averaged over the
ranks (:func:`all_reduce_mean`), so early stopping decides the same everywhere; rank 0 alone writes
checkpoints. A deletion request is registered on rank 0, which journals it, and sent to the others
(:func:`broadcast_request`); :func:`check_store` compares every rank's
:meth:`~graphunlearn.GraphStore.state_hash` and stops the job on a mismatch, naming the ranks.

Backends: NCCL when the ranks run on CUDA devices, gloo on CPUs (:func:`init`). A collective that fails
(a rank died, or stopped answering within the process group's timeout) raises :class:`DistributedError`
naming this rank and what it was waiting for, instead of hanging.

PyG's own ``torch_geometric.distributed`` is deprecated since PyG 2.7 in favour of cuGraph; this module
builds on ``torch.distributed`` alone. ``docs/scaling.md`` has the plan for graphs larger than one machine.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist
from torch import Tensor, nn

from ..requests import DeletionRequest
from ..store import GraphStore

__all__ = ["DistributedError", "StoreMismatchError", "all_gather_object", "all_reduce_mean", "all_reduce_sum",
           "barrier", "broadcast_object", "broadcast_request", "check_same", "check_store", "data_parallel",
           "gather_cat", "init", "is_active", "is_main", "main_only", "on_main", "open_store", "rank", "rank_seed",
           "replicate", "shard", "share", "shutdown", "sync_buffers", "world_size"]

#: what ``torchrun`` sets for every rank, and :func:`init` reads
LAUNCH_ENV = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
#: seconds a rank waits in a collective before it gives up on the others (:func:`init`'s default)
DEFAULT_TIMEOUT = 300.0
_SEED_STRIDE = 0x9E3779B97F4A7C15  # rank r's own draws: seed + r * stride (mod 2**63), far apart per rank


class DistributedError(RuntimeError):
    """A collective failed (another rank died or did not answer within the timeout), or the ranks disagree."""


class StoreMismatchError(DistributedError):
    """The ranks' stores differ (:func:`check_store`): they would train or unlearn on different graphs."""


# ------------------------------------------------------------------------------------------- process group
def is_active() -> bool:
    """Whether a process group of more than one rank is initialised (the library then runs data-parallel)."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    """This process's rank (0 without a process group)."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def world_size() -> int:
    """The number of ranks (1 without a process group)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def is_main() -> bool:
    """Whether this is rank 0, the one that journals requests, writes files and shows progress."""
    return rank() == 0


def init(backend: str | None = None, *, timeout: float = DEFAULT_TIMEOUT) -> torch.device:
    """Join the process group ``torchrun`` describes in the environment (``RANK``, ``WORLD_SIZE``,
    ``MASTER_ADDR``, ``MASTER_PORT``; ``LOCAL_RANK`` picks the GPU) and return this rank's device.

    Args:
        backend: ``"nccl"`` or ``"gloo"``; default: NCCL when CUDA is available (each rank then uses
            ``cuda:LOCAL_RANK``), else gloo on the CPU.
        timeout: seconds a collective waits for the other ranks before raising (default 300).

    Returns:
        ``cuda:LOCAL_RANK`` under NCCL, else ``cpu``: put the store and the model there. Under NCCL the group
        also has gloo for CPU tensors, so a store and model left on the CPU still run (slowly).

    Raises:
        RuntimeError: the process was not launched by ``torchrun`` (the variables named are missing), a
            process group is already initialised, or ``torch.distributed`` is unavailable.
        ValueError: an unknown backend, NCCL without CUDA, or a timeout that is not positive.
    """
    if not dist.is_available():
        raise RuntimeError("distributed.init: this torch build has no torch.distributed")
    if dist.is_initialized():
        raise RuntimeError("distributed.init: a process group is already initialised; call it once per process")
    missing = [k for k in LAUNCH_ENV if k not in os.environ]
    if missing:
        raise RuntimeError(f"distributed.init: {', '.join(missing)} not set; launch with torchrun "
                           "(torchrun --nproc_per_node=N your_script.py)")
    if not (isinstance(timeout, (int, float)) and timeout > 0):
        raise ValueError(f"distributed.init: timeout must be a number of seconds > 0, got {timeout!r}")
    backend = backend or ("nccl" if torch.cuda.is_available() else "gloo")
    if backend not in ("nccl", "gloo"):
        raise ValueError(f"distributed.init: backend must be 'nccl' or 'gloo', got {backend!r}")
    if backend == "nccl" and not torch.cuda.is_available():
        raise ValueError("distributed.init: backend 'nccl' needs CUDA devices; use 'gloo' on CPUs")
    device = torch.device("cpu")
    spec = backend
    if backend == "nccl":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        torch.cuda.set_device(device)
        spec = "cpu:gloo,cuda:nccl"  # CUDA tensors through NCCL; a CPU store or model still works (gloo)
    dist.init_process_group(spec, timeout=timedelta(seconds=float(timeout)))
    return device


def shutdown() -> None:
    """Leave the process group (no-op without one)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _device() -> torch.device:
    """This rank's device: the current CUDA device when the group has NCCL, else the CPU."""
    if "nccl" in str(dist.get_backend()):
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


#: what gloo and NCCL say when a peer is gone or silent (they raise plain RuntimeErrors for some of it)
_LOST_PEER = ("Connection closed", "Connection reset", "Broken pipe", "timed out", "Timed out", "Timeout",
              "NCCL communicator was aborted", "ProcessGroupGloo", "ProcessGroupNCCL", "gloo/transport")


def _lost_peer(exc: BaseException) -> bool:
    """Whether ``exc`` is a communication failure (a rank died or stopped answering), not an error of the
    computation itself (out of memory, a shape or autograd error), which keeps its own type."""
    return isinstance(exc, dist.DistError) or (isinstance(exc, RuntimeError)
                                               and any(p in str(exc) for p in _LOST_PEER))


def collective(what: str, fn: Callable):
    """``fn()``, which runs a collective; a communication failure there (a rank died, or did not answer
    within the process group's timeout) as one :class:`DistributedError` naming this rank and ``what``. Any
    other error (out of memory, autograd) propagates unchanged."""
    try:
        return fn()
    except DistributedError:
        raise
    except Exception as exc:
        if not _lost_peer(exc):
            raise
        first = " ".join(str(exc).split())[:300]
        raise DistributedError(f"rank {rank()} of {world_size()}: {what} failed; another rank probably died or "
                               f"stopped answering within the timeout ({type(exc).__name__}: {first})") from exc


def barrier(what: str = "barrier") -> None:
    """Wait for every rank (no-op without an active group). Under gloo a monitored barrier names the ranks
    that did not arrive."""
    if not is_active():
        return
    if dist.get_backend() == "gloo":
        collective(what, lambda: dist.monitored_barrier(wait_all_ranks=True))
    else:
        collective(what, dist.barrier)


def broadcast_object(obj, what: str, src: int = 0):
    """Rank ``src``'s ``obj`` on every rank (pickled; the others' ``obj`` is ignored); ``obj`` itself
    without an active group."""
    if not is_active():
        return obj
    box = [obj if rank() == src else None]
    collective(what, lambda: dist.broadcast_object_list(box, src=src, device=_device()))
    return box[0]


def all_gather_object(obj, what: str) -> list:
    """Every rank's ``obj``, in rank order (``[obj]`` without an active group)."""
    if not is_active():
        return [obj]
    out = [None] * world_size()
    collective(what, lambda: dist.all_gather_object(out, obj))
    return out


def gather_cat(t: Tensor, what: str) -> Tensor:
    """Every rank's ``t`` (1-D, any length) concatenated in rank order, on ``t``'s device; ``t`` itself
    without an active group. For small tensors (validation scores): sent pickled through the CPU."""
    if not is_active():
        return t
    parts = all_gather_object(t.detach().cpu(), what)
    return torch.cat(parts).to(t.device)


def all_reduce_sum(values: list[float], what: str) -> list[float]:
    """Element-wise sums of ``values`` over the ranks (``values`` itself without an active group)."""
    if not is_active():
        return list(values)
    t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=_device())
    collective(what, lambda: dist.all_reduce(t))
    return t.tolist()


def share(units: Tensor) -> Tensor:
    """This rank's share of units that every rank holds alike (:func:`shard`), or all of them without an active
    group or when there are fewer units than ranks (every rank then takes them all)."""
    if not is_active() or units.size(-1) < world_size():
        return units
    return shard(units)


def all_reduce_mean(value: float | None, what: str) -> float | None:
    """The mean of ``value`` over the ranks (``None`` stays ``None``: every rank must pass ``None`` alike;
    NaN anywhere gives NaN everywhere)."""
    if value is None or not is_active():
        return value
    t = torch.tensor([float(value)], dtype=torch.float64, device=_device())
    collective(what, lambda: dist.all_reduce(t))
    return float(t) / world_size()


# ------------------------------------------------------------------------------------------ work sharing
def rank_seed(seed: int) -> int:
    """The seed of this rank's own draws (negatives, neighbour samples, a method's retained units): ``seed``
    on rank 0 (so one process draws exactly as without a group), far apart on the others."""
    r = rank()
    return seed if r == 0 else (seed + r * _SEED_STRIDE) % 2 ** 63


def shard(batch, rank_: int | None = None, world: int | None = None):
    """This rank's share of a batch of units drawn alike on every rank: along the last dimension (node or
    edge ids [K], pairs [2, K]), every ``world``-th unit from position ``rank`` (shares differ in size by at
    most one). ``None`` (a full-batch step) stays ``None``."""
    if batch is None:
        return None
    r, w = rank() if rank_ is None else rank_, world_size() if world is None else world
    return batch[..., r::w]


class _Step(nn.Module):
    """What DDP wraps: the parameters one loop optimises; its forward runs the step's loss, so that every
    parameter the loss touches, encoder, decoder or a method's operators, is inside DDP's forward."""

    def __init__(self, params: list[nn.Parameter]):
        super().__init__()
        self.params = nn.ParameterList(params)

    def forward(self, loss_fn: Callable[[], Tensor]) -> Tensor:
        return loss_fn()


def data_parallel(params: list[nn.Parameter], where: str) -> nn.Module:
    """DDP over ``params`` (those that require gradients): ``ddp(loss_fn)`` runs ``loss_fn()`` as its forward
    and all-reduces the parameters' gradients during ``backward``. Building it broadcasts rank 0's values
    of the parameters, so every rank starts from the same point. ``find_unused_parameters`` is on: a step
    may leave some parameters out (a featureless model's rows not sampled, a method's frozen layer)."""
    from torch.nn.parallel import DistributedDataParallel

    trainable = [p for p in params if p.requires_grad]
    module = _Step(trainable)
    return collective(f"{where}: DistributedDataParallel setup (broadcast of rank 0's parameters)",
                      lambda: DistributedDataParallel(module, find_unused_parameters=True))


def sync_buffers(module: nn.Module, what: str) -> None:
    """Rank 0's floating-point buffers of ``module`` (BatchNorm's running statistics, ...) on every rank: DDP
    here all-reduces gradients only, and each rank's buffers follow its own share of the data. No-op without
    an active group."""
    if not is_active():
        return
    for b in module.buffers():
        if b.is_floating_point():
            collective(what, lambda b=b: dist.broadcast(b, 0))


def check_same(value, what: str) -> None:
    """Raise :class:`DistributedError` naming the ranks whose ``value`` (a hash, a setting) differs from
    rank 0's; no-op without an active group."""
    values = all_gather_object(value, f"{what}: comparison")
    odd = [r for r, v in enumerate(values) if v != values[0]]
    if odd:
        held = [values[r] for r in odd]
        raise DistributedError(f"{what} differs between the ranks: rank(s) {odd} hold {held!r:.200}, rank 0 holds "
                               f"{values[0]!r:.80}; every rank must start from the same one")


# ---------------------------------------------------------------------------------------- stores, requests
def check_store(store: GraphStore, where: str = "distributed") -> str:
    """Every rank's content hash (:meth:`~graphunlearn.GraphStore.state_hash` with ``uid=False``: stores
    built alike from the same graph on each rank agree, whatever their uids), compared; returns it.

    Raises:
        StoreMismatchError: a rank holds another graph, other masks or other requests than rank 0 (the
            message lists the ranks that differ and the hashes' first digits).
        DistributedError: the comparison itself failed (a rank died).
    """
    mine = store.state_hash(uid=False)
    hashes = all_gather_object(mine, f"{where}: store hash check")
    odd = [r for r, h in enumerate(hashes) if h != hashes[0]]
    if odd:
        raise StoreMismatchError(
            f"{where}: the ranks' stores differ: rank(s) {odd} hold "
            f"{', '.join(hashes[r][:12] for r in odd)}..., rank 0 holds {hashes[0][:12]}... (another graph, other "
            "masks or other requests); register requests on rank 0 and send them with "
            "gu.distributed.broadcast_request, and open every rank's store from one folder "
            "(gu.distributed.open_store) or replicate rank 0's (gu.distributed.replicate)")
    return mine


def open_store(path: str | os.PathLike, device: torch.device | str | None = None) -> GraphStore:
    """The saved store at ``path`` on every rank: rank 0 opens it for writing (it journals the requests), then
    the others open it ``read_only`` (a consistent snapshot; requests reach them through
    :func:`broadcast_request`). ``device`` defaults to this rank's (``cuda:LOCAL_RANK`` under NCCL, else the
    CPU). Without an active group, :meth:`GraphStore.open`."""
    if not is_active():
        return GraphStore.open(path, device=device)
    device = _device() if device is None else device
    opened = []
    # rank 0 replays the journal before anyone reads the folder; its failure stops every rank
    on_main(lambda: opened.append(GraphStore.open(path, device=device)), f"open_store({str(Path(path))!r})")
    store = opened[0] if opened else None
    if not is_main():
        store = GraphStore.open(path, read_only=True, device=device)
    check_store(store, "open_store")
    return store


def replicate(store: GraphStore | None, device: torch.device | str | None = None) -> GraphStore:
    """Rank 0's in-memory ``store`` on every rank (the others pass ``None`` or anything; it is ignored): its
    graph, masks, uid and requests, sent once through the process group (pickled; for graphs that fit a
    broadcast; saved stores travel better with :func:`open_store`), onto ``device`` (default: rank 0's
    store's device type, on this rank: ``cuda:LOCAL_RANK`` for a CUDA store). Returns ``store`` itself on
    rank 0.

    Raises:
        TypeError: rank 0 passed something that is not a GraphStore.
    """
    if not is_active():
        return store

    def state():
        if not isinstance(store, GraphStore):
            raise TypeError(f"distributed.replicate: rank 0 must pass its GraphStore, got {type(store).__name__}")
        # _state() holds CPU copies: every rank unpickles onto the CPU, then moves to its own device
        return {"state": store._state(), "requests": [_row(r) for r in store.requests],
                "device_type": store.device.type}

    blob = on_main(state, "replicate: broadcast of rank 0's store")
    if is_main():
        return store
    target = torch.device(device if device is not None else _device() if blob["device_type"] == "cuda" else "cpu")
    copy = GraphStore._blank({k: v.to(target) if isinstance(v, Tensor) else v for k, v in blob["state"].items()})
    for req_id, kind, created, payload in blob["requests"]:
        copy.requests.append(copy._request_from_row(req_id, kind, created, payload, Path("rank 0")))
    copy._interrupted = None
    return copy


def _row(req: DeletionRequest) -> tuple[int, str, float, bytes | None]:
    from ..io import to_bytes

    return req.id, req.kind, req.created, None if req.redacted else to_bytes(req.to_payload())


def broadcast_request(store: GraphStore, request: DeletionRequest | None) -> DeletionRequest:
    """Send rank 0's newly registered ``request`` (registered and journaled there, e.g. by
    ``store.delete_edges``) to every rank, apply it to their stores, and check the stores equal.

    Args:
        store: this rank's replica.
        request: on rank 0, the request it just registered on ``store``; ignored on the others.

    Returns:
        This rank's request object (rank 0's own; on the others, the same request applied to their store).

    Raises:
        TypeError: rank 0 passed no request. ValueError: rank 0's request is not its store's latest.
        StoreMismatchError: after applying, a store differs from rank 0's (:func:`check_store`).
        DistributedError: a rank died.
    """
    if not is_active():
        return request

    def sent():
        if not isinstance(request, DeletionRequest):
            raise TypeError(f"broadcast_request: rank 0 must pass the DeletionRequest it registered, got "
                            f"{type(request).__name__}")
        if not store.requests or store.requests[-1] is not request:
            raise ValueError(f"broadcast_request: request {request.id} is not the latest request of rank 0's store "
                             "(send each request right after registering it)")
        return _row(request)

    row = on_main(sent, "broadcast_request")
    problem = None
    if not is_main():
        req_id, kind, created, payload = row
        try:
            if req_id != store._next_id:
                raise StoreMismatchError(f"broadcast_request: rank {rank()}'s store expects request "
                                         f"{store._next_id} next, rank 0 sent request {req_id}")
            request = store._request_from_row(req_id, kind, created, payload, Path("rank 0"))
            store._check_applicable(request, Path("rank 0"))
            store._apply(request)
        except Exception as exc:  # reported through check_store below, so that no rank is left waiting
            problem = f"rank {rank()} could not apply request {req_id}: {type(exc).__name__}: {exc}"
    problems = [p for p in all_gather_object(problem, "broadcast_request: applied?") if p]
    if problems:
        raise StoreMismatchError(f"broadcast_request: {'; '.join(problems)}")
    check_store(store, "broadcast_request")
    return request


def on_main(fn: Callable, what: str):
    """``fn()`` on rank 0, its result sent to every rank; when it raises, rank 0 re-raises and the others
    raise :class:`DistributedError` with its message, so no rank is left waiting in a collective for a rank
    that gave up. Without an active group, ``fn()``."""
    if not is_active():
        return fn()
    outcome = None
    if is_main():
        try:
            outcome = ("ok", fn())
        except Exception as exc:
            broadcast_object(("error", f"{type(exc).__name__}: {exc}"), what)
            raise
    outcome = broadcast_object(outcome, what)
    if outcome[0] == "error":
        raise DistributedError(f"rank {rank()} of {world_size()}: {what} failed on rank 0: {outcome[1]}")
    return outcome[1]


def main_only(fn: Callable, what: str):
    """``fn()`` on rank 0 only (a file write); the others wait for it and receive its result (so every rank
    returns the same), or raise :class:`DistributedError` when it failed there (:func:`on_main`)."""
    return on_main(fn, what)
