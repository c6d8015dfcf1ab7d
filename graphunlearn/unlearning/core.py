"""``unlearn(model, store, request, method=...)``: make a trained model forget registered requests."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone

import torch
from torch import nn

from .. import checks
from .. import distributed as dist
from ..certificate import Certificate, environment, forget_ids_hash, forget_ids_record
from ..kernels import count_launches
from ..metrics import roc_auc
from ..models import backbone_name
from ..models.card import ModelCard, card_of, set_card, weight_distance, weight_hash
from ..profiling import PeakMemory
from ..requests import DeletionRequest
from ..sampling.neighbor import fanouts
from ..store import GraphStore
from ..tasks import Task, get_task
from ..tasks import tasks as registered_tasks
from .base import _REGISTRY, Context


@dataclass
class UnlearnResult:
    """The unlearned model (a new object), the method, its wall time and the peak memory it added
    (``peak_mb``, see :class:`~graphunlearn.profiling.PeakMemory`), the requests, what it did (``info``:
    epochs, losses, ...), the resolved options, the new model's card, and the kernel launches during the
    method (``kernels``: ``"family/backend" -> count``; ``backend`` sums them up), and the
    deletion certificate (``certificate``, :class:`~graphunlearn.certificate.Certificate`; ``None`` with
    ``certify=False``)."""

    model: nn.Module
    method: str
    seconds: float
    requests: tuple[int, ...]
    info: dict = field(default_factory=dict)
    peak_mb: float = float("nan")
    options: dict = field(default_factory=dict)
    card: ModelCard | None = None
    kernels: dict = field(default_factory=dict)
    certificate: Certificate | None = None

    @property
    def backend(self) -> str:
        """Which kernel backends ran during the method (``"triton"``, ``"torch"``, both joined by ``+``, or
        ``"none"`` when the method launched no kernel, as ``unlink``)."""
        seen = sorted({key.split("/")[1] for key in self.kernels})
        return "+".join(seen) or "none"

    def __repr__(self) -> str:
        keys = ", ".join(f"{k}={v}" for k, v in self.info.items() if not isinstance(v, (list, dict)))
        return (f"UnlearnResult(method={self.method!r}, requests={self.requests}, seconds={self.seconds:.3f}, "
                f"peak_mb={self.peak_mb:.1f}, {keys})")


def resolve_task(model: nn.Module, task: str | Task | None, split, where: str) -> Task:
    """The task of ``model``: ``task`` when given, else its card's, else the split's (as ``unlearn`` finds it).

    Raises:
        ValueError: the card names a task's own decoder or head (code a card cannot hold: pass the task
            again), or neither a task, a card nor a split says which task.
    """
    card = card_of(model)
    if task is None and card is not None and card.decoder is not None:
        raise ValueError(f"{where}: the model was trained with the task's own decoder or head ({card.decoder}), which "
                         "a card cannot hold; pass the same task object again: task=...")
    if task is None and card is not None and card.task is not None:
        task = card.task
    if task is None and split is None:
        raise ValueError(f"{where}: the model carries no card saying its task (a deep copy has none); pass task= "
                         f"({', '.join(sorted(registered_tasks()))}) or split=")
    return get_task(task, split, where)


def _custom(task: Task) -> str | None:
    """A name for a task's own decoder or head (what a card records: the code itself cannot be saved)."""
    f = task.decoder if task.decoder is not None else getattr(task, "head", None)
    return None if f is None else getattr(f, "__qualname__", type(f).__name__)


def unlearn(model: nn.Module, store: GraphStore, request: DeletionRequest | Sequence[DeletionRequest],
            method: str = "d2dgn", *, split=None, task: str | Task | None = None, seed: int = 0,
            progress: bool = False, train_fn: Callable | None = None, autocast: bool = False,
            certify: bool = True, num_neighbors: list[int] | str | None = None, **options) -> UnlearnResult:
    r"""Return a copy of ``model`` that has forgotten ``request`` (one or several registered requests).

    Works on any model called as PyTorch Geometric models are (``model(x, edge_index)``, or PyG's
    ``get_embedding(edge_index)``): the project's backbones, PyG's ``BasicGNN`` family and ``LightGCN``, a
    hand-written ``MessagePassing`` stack. Every method runs the model on the store's live graph only.

    Args:
        model: a trained model; not modified. Its card (:func:`graphunlearn.models.card_of`, set by the
            trainer and by earlier ``unlearn`` calls) gives the task, the training recipe and the requests
            already forgotten, so requests can arrive in sequence.
        store: the store the requests were registered with.
        request: a :class:`~graphunlearn.DeletionRequest` or a sequence of them.
        method: a registered method name (see :func:`methods`; default ``"d2dgn"``).
        split: the task's split (``LinkSplit``, ``NodeSplit`` or ``RecSplit``) for validation and retraining.
        task: a task name or :class:`~graphunlearn.tasks.Task` (default: the model card's, else the split's).
        seed: seed for the method's randomness and any re-initialisation (default 0).
        progress: show progress bars (default ``False``).
        train_fn: ``train_fn(model, data, split) -> model``, the user's own training recipe for methods that
            retrain from scratch (``retrain``); ``data`` is a ``Data`` of the live graph in store numbering.
            Default: the project's trainer with the task's loss and the recipe on the model's card.
        autocast: run the method's losses under bfloat16 autocast (default off; see the README for the
            tolerance it costs).
        certify: build ``result.certificate`` (default on; :func:`build_certificate`): hashes of the store and
            both models, and two forward passes for the evidence, after the method's timer stops.
        num_neighbors: where a local method (:attr:`Method.local`: d2dgn, finetune, gnndelete (edge deletion),
            gradient_ascent, reverse_bpr) computes:
            per-hop fanouts (``-1``: all neighbours) of sampled computation graphs around each step's units
            (:mod:`graphunlearn.tasks.local`), so its cost follows the deletion and the sample, not the graph;
            ``"full"``: the whole live graph; ``None`` (default): as the original was trained (its card's
            ``num_neighbors``, i.e. the whole graph for a model trained full-batch). ``retrain`` always follows
            the card's recipe.
        **options: the method's options (its options dataclass, :attr:`Method.options_type`): unknown names
            are an error listing the valid ones; each value is checked for type and range. Options not given
            take the method's defaults for the model's backbone on this task
            (:meth:`Method.options_for`, e.g. d2dgn's on a GIN for link prediction), else its plain defaults.

    Data-parallel (under ``torchrun``, after :func:`graphunlearn.distributed.init`): every rank calls
    ``unlearn`` with its replica of the store and the same model and arguments. The stores are compared first
    (:func:`graphunlearn.distributed.check_store`); the methods' optimisation loops run under DDP, each rank
    drawing its own share of every step's sampled units (:meth:`Context.generator`); the unlearned weights
    are the same on every rank, and so is the result: rank 0's wall time, peak memory, ``info``, kernel
    counts, card tag and certificate are sent to the others.

    Raises:
        TypeError: an argument or option of the wrong type, a split of another task, a request that is not a
            ``DeletionRequest``, or a model the method cannot work on (e.g. no ``reset_parameters``).
        ValueError: a model whose card says it never learned (its best validation score stayed at chance,
            :class:`~graphunlearn.train.ChanceLevelWarning`), a value out of range, an unknown method, option
            or task, a task the method does not support, a request of another store or compacted, one the
            model has already forgotten, or a model on another device than the store (the message names both).
        FloatingPointError: the method's loss became NaN or infinite.
        graphunlearn.distributed.StoreMismatchError: in a data-parallel job, the ranks' stores differ.
        graphunlearn.distributed.DistributedError: in a data-parallel job, another rank died or stopped answering.
    All argument checks run before any work.
    """
    where = "unlearn"
    checks.check_instance(where, "model", model, nn.Module)
    checks.check_instance(where, "store", store, GraphStore)
    checks.check_instance(where, "method", method, str)
    checks.check_seed(where, seed)
    checks.check_bool(where, "progress", progress)
    checks.check_bool(where, "autocast", autocast)
    checks.check_bool(where, "certify", certify)
    if train_fn is not None and not callable(train_fn):
        raise TypeError(f"{where}: train_fn must be callable (model, data, split) -> model, got "
                        f"{type(train_fn).__name__}")
    if method not in _REGISTRY:
        raise ValueError(f"unknown unlearning method {method!r}; registered: {sorted(_REGISTRY)}")
    spec = _REGISTRY[method]
    card = card_of(model)
    if card is not None:  # a model whose validation stayed at chance learned nothing there is to forget
        card.check_learned(where)
    task = resolve_task(model, task, split, where)
    # the defaults for this backbone on this task (Method.options_for: d2dgn on GIN), then what the caller passed
    opts = spec.check_options(options, spec.options_for(task.name, backbone_name(model)))
    fanout = _computation(where, spec, card, num_neighbors)
    if not spec.supports(task):
        raise ValueError(f"method {method!r} supports tasks {spec.tasks}, not {task.name!r}")
    wrapper = getattr(model, "wrapper_config", None) or (card.wrapper if card is not None else None)
    if wrapper is not None and not spec.on_wrapped:
        raise ValueError(f"a model with {wrapper.get('kind')} modules added by {wrapper.get('method')} "
                         f"cannot be unlearned further with {method!r}: its added modules are tied to the requests it "
                         "was "
                         "built for; unlearn the original model with all the requests at once "
                         "(unlearn(original, store, [r1, r2], ...)) or use 'retrain'")
    task.check_device(where, model, store)
    split = task.to_device(split, store.device)
    requests = store.check_requests(request, where=where, name="request")  # this store's, not compacted
    task.warm(store, sampled=True) if fanout is not None else task.warm(store)  # a user task may not sample
    already = set(card.forgotten if card else ())
    for r in requests:
        if r.id in already:
            raise ValueError(f"the model has already forgotten request {r.id} (it forgot {sorted(already)})")
    if dist.is_active():
        dist.check_store(store, where)
        dist.check_same(weight_hash(model), f"{where}: the model's weights (weight_hash)")
    original = copy.deepcopy(model).eval()
    for p in original.parameters():
        p.requires_grad_(False)
    ctx = Context(copy.deepcopy(model), original, store, requests, task, split, seed, progress, opts, card,
                  train_fn, method, autocast, fanout,
                  fanouts_asked=fanout is not None and num_neighbors is not None)
    torch.manual_seed(seed)
    device = next(iter(model.parameters()), torch.empty(0)).device
    with PeakMemory(device) as cost, count_launches() as launched:
        info = spec.run(ctx) or {}
    out = info.pop("model", ctx.model)
    out.eval()
    forgotten = tuple(sorted(already | {r.id for r in requests}))
    out_wrapper = getattr(out, "wrapper_config", None)
    trained = card_of(out)  # set by the trainer when the method retrained: its recipe is the one used
    start = card or ModelCard(task=task.name)
    if trained is not None and trained is not card:
        start = replace(start, recipe=dict(trained.recipe), validation=trained.validation)  # what retraining measured
    new_card = replace(start, task=task.name, forgotten=forgotten,
                       tag=uuid.uuid4().hex, method=method, weight_hash=None,
                       wrapper=dict(out_wrapper) if out_wrapper else None,
                       decoder=_custom(task))
    set_card(out, new_card)
    store.record_forgotten(new_card.tag, forgotten)
    kernels = {f"{family}/{backend}": n for (family, backend), n in sorted(launched.counts.items())}
    result = UnlearnResult(out, method, cost.seconds, tuple(r.id for r in requests), info, peak_mb=cost.peak_mb,
                           options=opts.to_dict(), card=new_card, kernels=kernels)
    if certify:
        result.certificate = build_certificate(result, original, store, requests, task, split, seed, device)
    if dist.is_active():
        _same_on_every_rank(result, store)
    return result


def _same_on_every_rank(result: UnlearnResult, store: GraphStore) -> None:
    """Rank 0's measurements and records in ``result`` on every rank: wall time, peak memory, ``info`` (its
    losses are rank 0's share), kernel counts, the card's tag (recorded in the store's ledger instead of this
    rank's) and the certificate. The weights are the same already (DDP)."""
    mine = result.card.tag
    sent = dist.broadcast_object({"seconds": result.seconds, "peak_mb": result.peak_mb, "info": result.info,
                                  "kernels": result.kernels, "tag": mine, "certificate": result.certificate},
                                 "unlearn: rank 0's result")
    if dist.is_main():
        return
    result.seconds, result.peak_mb, result.kernels = sent["seconds"], sent["peak_mb"], sent["kernels"]
    result.info = sent["info"]
    result.card = replace(result.card, tag=sent["tag"])
    set_card(result.model, result.card)
    forgotten = store.forgotten.pop(mine, None)
    if forgotten is not None:
        store.forgotten[sent["tag"]] = forgotten
    result.certificate = sent["certificate"]


def _computation(where: str, spec, card, num_neighbors) -> list[int] | None:
    """The fanouts a method's steps sample with, or ``None`` for the whole graph (see ``unlearn``)."""
    if num_neighbors == "full":
        return None
    if num_neighbors is None:
        trained = (card.recipe or {}).get("num_neighbors") if card is not None else None
        return list(trained) if trained is not None and spec.local else None
    if isinstance(num_neighbors, str):
        raise ValueError(f"{where}: num_neighbors must be a list of per-hop fanouts, 'full' or None, got "
                         f"{num_neighbors!r}")
    hops = fanouts(where, num_neighbors)
    if spec.name == "retrain":
        raise ValueError(f"{where}: retrain trains gold with the original's recipe (its card's num_neighbors, "
                         f"{(card.recipe or {}).get('num_neighbors') if card is not None else None}); leave "
                         "num_neighbors unset")
    if not spec.local:
        raise ValueError(f"{where}: method {spec.name!r} runs on the whole graph; num_neighbors= (sampled "
                         "computation graphs) is for the local methods "
                         f"{sorted(m.name for m in _REGISTRY.values() if m.local)}")
    return hops


def build_certificate(result: UnlearnResult, original: nn.Module, store: GraphStore,
                      requests: Sequence[DeletionRequest], task: Task, split, seed: int,
                      device: torch.device) -> Certificate:
    """The certificate of one unlearning (see :mod:`graphunlearn.certificate`): the requests and a hash of
    their forget set, the store's state hash and journal positions, both weight hashes, the method with its
    resolved options and seed, the environment, the cost, and the evidence measured without a gold model:
    ``forget_vs_heldout_auroc`` (:meth:`Task.forget_vs_heldout`) of the unlearned and the original model.
    :func:`graphunlearn.certify.attach_evidence` adds the protocol's metrics and, with gold models, the
    retrain gap and its noise floor."""
    ids = forget_ids_record(store.uid, requests)
    counts = {"nodes": sum(r.node_ids.numel() for r in requests),
              "edges": sum(r.edge_ids.numel() for r in requests),
              "feature_values": sum(_feature_values(r, store) for r in requests)}
    last = store.requests[-1].id
    first = min(r.id for r in requests)
    card = result.card
    evidence = {"weight_change": weight_distance(original, result.model)}
    after = task.membership_scores(result.model, store, split, requests)
    before = task.membership_scores(original, store, split, requests)
    if after is not None and before is not None:
        for name, scores in (("forget_vs_heldout_auroc", after), ("original_forget_vs_heldout_auroc", before)):
            try:
                evidence[name] = roc_auc(*scores)
            except ValueError as exc:  # non-finite scores: recorded as not measured, with why
                evidence[name] = None
                evidence[f"{name}_error"] = str(exc)
        # did anything change: how far the held-out units' scores moved (0: the method changed nothing)
        evidence["heldout_score_shift"] = (after[1] - before[1]).abs().mean().item()
    body = {
        "certificate_id": uuid.uuid4().hex,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "requests": [{"id": r.id, "kind": r.kind, "summary": r.summary(), "created": r.created,
                      "params": dict(r.params)} for r in requests],
        "forget_set": {"sha256": forget_ids_hash(ids), **counts},
        "store": {"uid": store.uid, "state_hash": store.state_hash(), "num_nodes": store.num_nodes,
                  "num_edges": store.num_edges, "live_nodes": store.num_live_nodes,
                  "live_edges": store.num_live_edges, "compacted_through": store.compacted_through,
                  "journal_before": {"request": first - 1, "chain": _chain(store, first - 1)},
                  "journal_after": {"request": last, "chain": _chain(store, last)}},
        "model": {"task": task.name, "class": type(result.model).__name__, "tag": card.tag,
                  "forgotten": list(card.forgotten), "original_weights": weight_hash(original),
                  "unlearned_weights": weight_hash(result.model)},
        "method": {"name": result.method, "options": dict(result.options), "seed": seed,
                   "kernels": dict(result.kernels), "backend": result.backend},
        "cost": {"seconds": result.seconds, "peak_mb": result.peak_mb, "device": str(device)},
        "environment": environment(device),
        "evidence": evidence,
    }
    return Certificate(body, ids)


def _chain(store: GraphStore, request_id: int) -> str | None:
    """The journal's chain hash at ``request_id``, or ``None`` when there is no journal to read (never saved,
    or closed since: the method has run by now, and its result is not lost for want of a journal read)."""
    try:
        return store.journal_chain(request_id)
    except RuntimeError:
        return None


def _feature_values(r: DeletionRequest, store: GraphStore) -> int:
    if not r.feature_node_ids.numel() or store.x is None:
        return 0
    cols = store.x.size(1) if r.feature_columns is None else r.feature_columns.numel()
    return r.feature_node_ids.numel() * cols
