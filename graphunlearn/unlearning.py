r"""``unlearn(model, store, request, method=...)``: make a trained model forget a registered request.

Methods are registered by name with their options and defaults; ``methods()`` lists them. Every method
returns a new model (the original is never modified) and works with message passing on the store's live
graph only, so the deleted elements never reach the model again. Model selection (epochs, early stopping)
uses validation data and training losses only, never forget-set or test metrics.
"""

from __future__ import annotations

import copy
import inspect
import math
import numbers
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from . import checks
from . import models as gm
from . import train as gt
from .datasets.splits import LinkSplit, NodeSplit, RecSplit
from .kernels import binary_kl_distill_loss, bpr_loss, kl_distill_loss
from .models import GNNDeleteModel
from .profiling import PeakMemory
from .requests import DeletionRequest
from .store import GraphStore

TASKS = ("link", "node", "rec")
_SPLITS = {"link": LinkSplit, "node": NodeSplit, "rec": RecSplit}


@dataclass
class UnlearnResult:
    """The unlearned model (a new object), the method, its wall time and the peak memory it added
    (``peak_mb``, see :class:`~graphunlearn.profiling.PeakMemory`), and what it did (epochs, losses)."""

    model: nn.Module
    method: str
    seconds: float
    requests: tuple[int, ...]
    info: dict = field(default_factory=dict)
    peak_mb: float = float("nan")

    def __repr__(self) -> str:
        keys = ", ".join(f"{k}={v}" for k, v in self.info.items() if not isinstance(v, (list, dict)))
        return (f"UnlearnResult(method={self.method!r}, requests={self.requests}, seconds={self.seconds:.3f}, "
                f"peak_mb={self.peak_mb:.1f}, {keys})")


@dataclass
class Context:
    """What a method gets: a private copy of the model, the frozen original, the store, the requests."""

    model: nn.Module
    original: nn.Module
    store: GraphStore
    requests: tuple[DeletionRequest, ...]
    task: str
    split: object
    seed: int
    progress: bool
    options: dict

    @property
    def deleted_edges(self) -> Tensor:
        """Edge ids removed by the requests (store numbering)."""
        return torch.unique(torch.cat([r.edge_ids for r in self.requests]))

    @property
    def deleted_nodes(self) -> Tensor:
        return torch.unique(torch.cat([r.node_ids for r in self.requests]))

    def affected_nodes(self, hop: int | None = None) -> Tensor:
        """Live nodes within ``hop`` hops of the deleted elements (union over the requests)."""
        nodes = torch.unique(torch.cat([r.affected_nodes(hop) for r in self.requests]))
        return nodes[self.store.node_mask[nodes]]

    def affected_live_edges(self) -> Tensor:
        eids = torch.unique(torch.cat([r.subgraph_edge_ids for r in self.requests]))
        return eids[self.store.edge_mask[eids]]


@dataclass(frozen=True)
class Option:
    """One method option: its default, its type (``int``, ``float``, ``bool`` or ``str``) and valid values.

    ``low``/``high`` bound numbers (``low_open``: ``low`` itself is excluded, as for a learning rate, which
    must be > 0); ``choices`` lists the valid strings; ``allow_none`` admits ``None``. An ``int`` is accepted
    where a ``float`` is asked for, a ``bool`` never counts as a number.
    """

    default: object
    type: type
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    allow_none: bool = False
    choices: tuple | None = None

    def check(self, method: str, name: str, value) -> None:
        """Raise ``TypeError`` (wrong type) or ``ValueError`` (out of range) naming the method, option, value."""
        if value is None and self.allow_none:
            return
        where = f"unlearn(method={method!r})"
        if self.type is bool:
            checks.check_bool(where, f"option {name}", value)
        elif self.type is int:
            checks.check_int(where, f"option {name}", value, low=self.low, high=self.high, allow_none=self.allow_none)
        elif self.type is float:
            checks.check_float(where, f"option {name}", value, low=self.low, high=self.high, low_open=self.low_open,
                            allow_none=self.allow_none)
        elif not isinstance(value, self.type):
            raise TypeError(f"{where}: option {name} must be a {self.type.__name__}"
                            f"{' or None' if self.allow_none else ''}, got {type(value).__name__}: {value!r:.80}")
        if self.choices is not None and value not in self.choices:
            raise ValueError(f"{where}: option {name} must be one of {list(self.choices)}, got {value!r}")

    @staticmethod
    def infer(default) -> Option:
        """The spec of an option registered with a bare default: its type, any value when the default is None."""
        if isinstance(default, bool):
            return Option(default, bool)
        if isinstance(default, numbers.Integral):
            return Option(default, int)
        if isinstance(default, numbers.Real):
            return Option(default, float)
        return Option(default, object if default is None else type(default), allow_none=default is None)


def _epochs(default, allow_none: bool = False) -> Option:
    return Option(default, int, low=1, allow_none=allow_none)


def _lr(default: float) -> Option:
    return Option(default, float, low=0, low_open=True)


def _fraction(default: float) -> Option:
    return Option(default, float, low=0, high=1)


@dataclass(frozen=True)
class Method:
    name: str
    fn: Callable[[Context], dict]
    tasks: tuple[str, ...]
    options: dict  # name -> default (what the CLI lists and the benchmark's cache key holds)
    doc: str
    specs: dict = field(default_factory=dict)  # name -> Option; options without one are typed by their default

    def check_options(self, options: dict) -> None:
        """Validate ``options`` (names and values) against this method's option specs."""
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            raise ValueError(f"unknown option(s) {unknown} for method {self.name!r}; valid options: "
                             f"{ {k: v for k, v in self.options.items()} }")
        for name, value in options.items():
            spec = self.specs.get(name) or Option.infer(self.options[name])
            spec.check(self.name, name, value)


_REGISTRY: dict[str, Method] = {}


def register(name: str, *, tasks: Sequence[str], **options) -> Callable:
    """Register ``fn(ctx) -> info`` as unlearning method ``name`` with keyword options: each an
    :class:`Option` (default, type, valid range) or a bare default (then any value of the default's type)."""
    if not isinstance(name, str) or not name:
        raise TypeError(f"register: name must be a non-empty str, got {name!r}")
    bad = sorted(set(tasks) - set(TASKS))
    if isinstance(tasks, str) or bad:
        raise ValueError(f"register({name!r}): tasks must be a sequence drawn from {TASKS}, got {tasks!r}")
    specs = {k: v if isinstance(v, Option) else Option.infer(v) for k, v in options.items()}
    for k, spec in specs.items():
        if spec.default is not None or not spec.allow_none:
            spec.check(name, k, spec.default)

    def wrap(fn):
        if name in _REGISTRY:
            raise ValueError(f"unlearning method {name!r} is already registered")
        _REGISTRY[name] = Method(name, fn, tuple(tasks), {k: v.default for k, v in specs.items()},
                                 inspect.getdoc(fn) or "", specs)
        return fn
    return wrap


def methods() -> dict[str, Method]:
    """The registered methods by name."""
    return dict(_REGISTRY)


def unlearn(model: nn.Module, store: GraphStore, request: DeletionRequest | Sequence[DeletionRequest],
            method: str = "d2dgn", *, split=None, task: str | None = None, seed: int = 0, progress: bool = False,
            **options) -> UnlearnResult:
    r"""Return a copy of ``model`` that has forgotten ``request`` (one or several registered requests).

    Args:
        model: a trained model; not modified. Its ``forgotten_requests`` (set by an earlier ``unlearn``)
            say which requests it has already forgotten, so requests can arrive in sequence.
        store: the store the requests were registered with.
        request: a :class:`~graphunlearn.DeletionRequest` or a sequence of them.
        method: a registered method name (see :func:`methods`; default ``"d2dgn"``).
        split: the task's split (``LinkSplit``, ``NodeSplit`` or ``RecSplit``) for validation and retraining.
        task: ``"link"``, ``"node"`` or ``"rec"`` (default: the task the model was trained for).
        seed: seed for the method's randomness (default 0).
        progress: show progress bars (default ``False``).
        **options: the method's options; unknown names are an error listing the valid ones, and each value is
            checked against the method's :class:`Option` spec (type and range).

    Raises:
        TypeError: an argument or option of the wrong type (``model=None``, ``request=0``, a split of another
            task, ``epochs="ten"``), or a request that is not a ``DeletionRequest``.
        ValueError: a value out of range (``epochs=-1``, ``alpha=5``, ``lr=-1``), an unknown method, option or
            task, a request of another store or compacted, or one the model has already forgotten.
        FloatingPointError: the method's loss became NaN or infinite.
    All argument checks run before any work.
    """
    where = "unlearn"
    checks.check_instance(where, "model", model, nn.Module)
    checks.check_instance(where, "store", store, GraphStore)
    checks.check_instance(where, "method", method, str)
    checks.check_instance(where, "task", task, str, allow_none=True)
    checks.check_seed(where, seed)
    checks.check_bool(where, "progress", progress)
    if method not in _REGISTRY:
        raise ValueError(f"unknown unlearning method {method!r}; registered: {sorted(_REGISTRY)}")
    spec = _REGISTRY[method]
    spec.check_options(options)
    recipe = getattr(model, gt.RECIPE_ATTR, None) or {}
    task = task or recipe.get("task")
    if task not in TASKS:
        raise ValueError(f"task {task!r} is not one of {TASKS}; pass task= (the model carries no training recipe)")
    if task not in spec.tasks:
        raise ValueError(f"method {method!r} supports tasks {spec.tasks}, not {task!r}")
    split_cls = _SPLITS[task]
    checks.check_instance(where, f"split (task {task!r})", split, split_cls, allow_none=True)
    if isinstance(model, GNNDeleteModel) and method not in ("retrain", "unlink"):
        raise ValueError(f"a GNNDelete model cannot be unlearned further with {method!r}: its operators are tied to "
                         "the requests it was built for; unlearn the original model with all the requests at once "
                         "(unlearn(original, store, [r1, r2], ...)) or use 'retrain'")
    requests = store.check_requests(request, where=where, name="request")  # this store's, not compacted
    already = set(getattr(model, "forgotten_requests", ()))
    for r in requests:
        if r.id in already:
            raise ValueError(f"the model has already forgotten request {r.id} (it forgot {sorted(already)})")
    opts = {**spec.options, **options}
    original = copy.deepcopy(model).eval()
    for p in original.parameters():
        p.requires_grad_(False)
    ctx = Context(copy.deepcopy(model), original, store, requests, task, split, seed, progress, opts)
    torch.manual_seed(seed)
    device = next(iter(model.parameters()), torch.empty(0)).device
    with PeakMemory(device) as cost:
        info = spec.fn(ctx) or {}
    out = info.pop("model", ctx.model)
    out.eval()
    if recipe:
        setattr(out, gt.RECIPE_ATTR, dict(recipe))
    out.forgotten_requests = tuple(sorted(already | {r.id for r in requests}))
    out.graphunlearn_tag = uuid.uuid4().hex  # each unlearned model is a new model
    store.record_forgotten(out.graphunlearn_tag, out.forgotten_requests)
    return UnlearnResult(out, method, cost.seconds, tuple(r.id for r in requests), info, peak_mb=cost.peak_mb)


# ----------------------------------------------------------------------------------------------- helpers
def _embed(model: nn.Module, store: GraphStore):
    view = store.live()
    return model(view.x, view)


def _select(ctx: Context, model: nn.Module, desc: str = "unlearn", epoch: int | None = None) -> float | None:
    """Validation score for model selection: AUROC (link) or accuracy (node); None where no split is given.
    NaN or infinite validation outputs raise ``FloatingPointError`` (the method diverged)."""
    if ctx.split is None or ctx.task == "rec":
        return None
    if ctx.task == "link":
        return gt._diverged(desc, epoch, gt.evaluate_link_auc, model, ctx.store, ctx.split.val_pos,
                            ctx.split.val_neg)
    return gt._diverged(desc, epoch, gt.node_accuracy, model, ctx.store, ctx.split.val_idx)


def _optimise(ctx: Context, loss_fn: Callable[[int], Tensor], params, *, epochs: int, lr: float,
              select: bool = True, eval_every: int = 1, desc: str = "unlearn") -> dict:
    """Adam on ``loss_fn(epoch)``; keeps the epoch with the best validation score when ``select``."""
    opt = torch.optim.Adam(params, lr=lr)
    losses, best, best_epoch = [], None, 0
    best_state = copy.deepcopy(ctx.model.state_dict())
    for epoch in tqdm(range(1, epochs + 1), desc=desc, disable=not ctx.progress, leave=False):
        ctx.model.train()
        loss = loss_fn(epoch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())  # read every epoch anyway, so the check costs no extra host sync
        if not math.isfinite(losses[-1]):
            raise FloatingPointError(f"{desc}: the loss is {losses[-1]} at epoch {epoch}; the method diverged "
                                     f"(try a smaller lr than {lr}) or the model or inputs hold NaN or inf values")
        if select and (epoch % eval_every == 0 or epoch == epochs):
            score = _select(ctx, ctx.model, desc, epoch)
            if score is not None and (best is None or score > best):
                best, best_epoch = score, epoch
                best_state = copy.deepcopy(ctx.model.state_dict())
    if select and best is not None:
        ctx.model.load_state_dict(best_state)
    else:
        best_epoch = epochs
    return {"epochs": epochs, "selected_epoch": best_epoch, "val_score": best, "losses": losses}


def _deleted_pairs(ctx: Context) -> Tensor:
    return ctx.store.edge_index[:, ctx.deleted_edges]


def _live_pairs(store: GraphStore, num: int, g: torch.Generator, exclude: Tensor | None = None) -> Tensor:
    live = store.edge_mask.nonzero().squeeze(1)
    if exclude is not None and exclude.numel():
        live = live[~torch.isin(live, exclude)]
    if live.numel() == 0 or num == 0:
        return torch.empty(2, 0, dtype=torch.long)
    pick = live[torch.randint(live.numel(), (num,), generator=g)]
    return store.edge_index[:, pick]


# ----------------------------------------------------------------------------------------------- methods
@register("retrain", tasks=TASKS, epochs=_epochs(None, allow_none=True))
def _retrain(ctx: Context) -> dict:
    r"""Gold standard: a newly initialised model of the same architecture trained from scratch on the retained
    graph with the recipe the original was trained with (``epochs`` overrides its epoch budget)."""
    recipe = dict(getattr(ctx.original, gt.RECIPE_ATTR, None) or {})
    recipe.pop("task", None)
    if ctx.options["epochs"] is not None:
        recipe["epochs"] = ctx.options["epochs"]
    recipe["progress"] = ctx.progress
    model = ctx.original.fresh()
    trainer = {"link": gt.link_prediction, "node": gt.node_classification, "rec": gt.recommendation}[ctx.task]
    if ctx.task != "link" and ctx.split is None:
        raise ValueError(f"retrain for task {ctx.task!r} needs split=")
    result = trainer(model, ctx.store, ctx.split, **recipe)
    return {"model": model, "epochs": result.epochs_run, "selected_epoch": result.best_epoch,
            "val_score": result.best_val}


@register("unlink", tasks=TASKS)
def _unlink(ctx: Context) -> dict:
    r"""UtU (Tan et al., WWW 2024): only remove the deleted elements from the graph; no training. The store's
    live view already excludes them, so the model is returned as it is."""
    return {"epochs": 0}


@register("finetune", tasks=("link", "node"), epochs=_epochs(20), lr=_lr(0.005))
def _finetune(ctx: Context) -> dict:
    r"""Continue training the original weights on the retained graph with the task loss (link: BCE against
    sampled negatives; node: cross-entropy on live training nodes), keeping the best validation epoch."""
    g = torch.Generator().manual_seed(ctx.seed)
    store = ctx.store
    if ctx.task == "node" and ctx.split is None:
        raise ValueError("finetune for node classification needs split= (its training nodes)")
    if ctx.task == "node" and not bool(store.node_mask[ctx.split.train_idx].any()):
        raise ValueError("finetune: no live training nodes left (every node of split.train_idx was deleted)")
    if ctx.task == "link" and store.num_live_edges == 0:
        raise ValueError("finetune: no live training edges left (every edge was deleted), nothing to train on")

    def loss_fn(_):
        z = _embed(ctx.model, store)
        if ctx.task == "node":
            train = ctx.split.train_idx[store.node_mask[ctx.split.train_idx]]
            return F.cross_entropy(z[train], store.y[train])
        pos = store.edge_index[:, store.edge_mask]
        neg = gt.sample_pairs(store.node_mask.nonzero().squeeze(1), pos.size(1), g)
        logits = gm.GNN.decode(z, torch.cat([pos, neg], 1))
        return F.binary_cross_entropy_with_logits(logits, torch.cat([torch.ones(pos.size(1)),
                                                                     torch.zeros(neg.size(1))]))

    return _optimise(ctx, loss_fn, ctx.model.parameters(), epochs=ctx.options["epochs"], lr=ctx.options["lr"],
                     desc="finetune")


@register("gradient_ascent", tasks=("link",), epochs=_epochs(5), lr=_lr(0.001))
def _gradient_ascent(ctx: Context) -> dict:
    r"""Gradient ascent on the forget set: maximise the training loss of the deleted edges,
    :math:`\max_\theta \sum_{(u,v) \in D_f} \mathrm{BCE}(\sigma(z_u^\top z_v), 1)`, for a fixed number of epochs
    (selecting on validation would undo it)."""
    pairs = _deleted_pairs(ctx)
    if pairs.size(1) == 0:
        raise ValueError("gradient_ascent needs deleted edges; the requests delete none")

    def loss_fn(_):
        logits = gm.GNN.decode(_embed(ctx.model, ctx.store), pairs)
        return -F.binary_cross_entropy_with_logits(logits, torch.ones(pairs.size(1)))

    return _optimise(ctx, loss_fn, ctx.model.parameters(), epochs=ctx.options["epochs"], lr=ctx.options["lr"],
                     select=False, desc="gradient_ascent")


@register("d2dgn", tasks=("link", "node"), epochs=_epochs(8), lr=_lr(0.005), alpha=_fraction(0.99),
          tau=Option(1.0, float, low=0, low_open=True), beta=Option(1.0, float, low=0),
          sample_ratio=Option(1.0, float, low=0), from_scratch=Option(False, bool),
          destroyer=Option("random", str, choices=("random", "random_edges")), eval_every=Option(4, int, low=1),
          max_pairs=Option(None, int, low=1, allow_none=True))
def _d2dgn(ctx: Context) -> dict:
    r"""Distill to Delete (Sinha et al., arXiv 2309.16173): a student learns from two frozen teachers,

    .. math::
        L = \alpha \big[\mathrm{KL}_\tau(T_p \,\|\, S)_{R} + \beta\, \mathrm{MSE}(h_S, h_{T_p})_{V_R}\big]
          + (1 - \alpha)\, \big[\mathrm{KL}_\tau(T_d \,\|\, S)_{D_f} + \beta\, \mathrm{MSE}(h_S, h_{T_d})_{V_f}\big]

    The preserver :math:`T_p` is the original model, the destroyer :math:`T_d` a newly initialised model of
    the same architecture (``destroyer="random"``) or one trained briefly on random edges
    (``"random_edges"``). Every model passes messages over the retained graph only. For link prediction,
    R holds the live edges of the affected neighbourhood, as many other live edges (``sample_ratio``) and
    as many sampled node pairs, scored with the two-class KL on the dot-product logits; :math:`D_f` are the
    deleted edges. ``max_pairs`` caps the retained edges drawn per epoch (a fresh uniform sample of the
    affected and other live edges each epoch; on dense graphs such as ogbl-ddi the 2-hop neighbourhood of
    a few thousand edges is nearly the whole graph; link task only). For node classification the KL is over
    class logits, R the live affected nodes plus a sample. :math:`V_R` are the live affected nodes plus a
    sample, :math:`V_f` the deleted nodes. The student starts from the original weights
    (``from_scratch=True``: from a fresh initialisation). The epoch kept is the one with the best validation score.

    Defaults: ``alpha=0.99`` was chosen on a development seed (7, outside the protocol's seeds) of Cora,
    GCN, 2.5% "in" edges (with ``alpha=0.5`` and 30 epochs it over-forgot: Df-AUROC 0.77 against 0.66 on
    another draw; test AUROC 0.87 against 0.92). The budget was 10 epochs with validation every 2 until the
    five-seed benchmark measured 9.7x gold's speed against the 10x asked for; on development seeds 7 and 8
    the epoch selected was 4 both times, so 8 epochs with validation every 4 keep the same model there
    (seed 7: Dt-AUROC 0.919, Df 0.691 against gold's 0.921 and 0.750) and skip the rest. With a
    randomly initialised destroyer the dot-product decoder scores nearby pairs high (GCN smoothing), so on
    the small synthetic graph the destroyer term raised the deleted edges' scores instead.
    """
    o = ctx.options
    g = torch.Generator().manual_seed(ctx.seed)
    store = ctx.store
    if o["from_scratch"]:
        ctx.model = ctx.original.fresh()
    torch.manual_seed(ctx.seed + 1)
    destroyer = ctx.original.fresh().eval()
    if o["destroyer"] == "random_edges":
        destroyer = _random_edge_teacher(ctx, g)
    elif o["destroyer"] != "random":
        raise ValueError(f"d2dgn: destroyer must be 'random' or 'random_edges', got {o['destroyer']!r}")
    with torch.no_grad():
        h_p = _embed(ctx.original, store)
        h_d = _embed(destroyer, store)
    tau, alpha, beta = float(o["tau"]), float(o["alpha"]), float(o["beta"])
    live_nodes = store.node_mask.nonzero().squeeze(1)
    if live_nodes.numel() == 0:
        raise ValueError("d2dgn: no live nodes left (every node was deleted), nothing to preserve")
    if ctx.task == "link" and store.num_live_edges == 0:
        raise ValueError("d2dgn: no live edges left (every edge was deleted), nothing to preserve")
    affected = ctx.affected_nodes()
    deleted_nodes = ctx.deleted_nodes
    n_sample = int(o["sample_ratio"] * max(1, affected.numel()))

    if ctx.task == "link":
        sub = ctx.affected_live_edges()
        df = _deleted_pairs(ctx)
        cap = o["max_pairs"]  # a positive int or None (checked by its Option)

        def loss_fn(_):
            h = _embed(ctx.model, store)
            other = _live_pairs(store, int(o["sample_ratio"] * max(1, sub.numel())), g, exclude=sub)
            kept = torch.cat([store.edge_index[:, sub], other], 1)
            if cap is not None and kept.size(1) > cap:
                kept = kept[:, torch.randperm(kept.size(1), generator=g)[:cap]]
            pairs = torch.cat([kept, gt.sample_pairs(live_nodes, kept.size(1), g)], 1)
            p = torch.sigmoid(gm.GNN.decode(h_p, pairs) / tau)
            loss_r = binary_kl_distill_loss(gm.GNN.decode(h, pairs), p, tau=tau, reduction="mean")
            nodes = torch.cat([affected, live_nodes[torch.randint(live_nodes.numel(), (n_sample,), generator=g)]])
            loss_r = loss_r + beta * F.mse_loss(h[nodes], h_p[nodes])
            loss_f = torch.zeros(())
            if df.size(1):
                q = torch.sigmoid(gm.GNN.decode(h_d, df) / tau)
                loss_f = binary_kl_distill_loss(gm.GNN.decode(h, df), q, tau=tau, reduction="mean")
            if deleted_nodes.numel():
                loss_f = loss_f + beta * F.mse_loss(h[deleted_nodes], h_d[deleted_nodes])
            return alpha * loss_r + (1 - alpha) * loss_f
    else:
        def loss_fn(_):
            h = _embed(ctx.model, store)
            nodes = torch.cat([affected, live_nodes[torch.randint(live_nodes.numel(), (n_sample,), generator=g)]])
            loss_r = kl_distill_loss(h[nodes], h_p[nodes], tau=tau, reduction="mean") \
                + beta * F.mse_loss(h[nodes], h_p[nodes])
            loss_f = torch.zeros(())
            if deleted_nodes.numel():
                loss_f = kl_distill_loss(h[deleted_nodes], h_d[deleted_nodes], tau=tau, reduction="mean") \
                    + beta * F.mse_loss(h[deleted_nodes], h_d[deleted_nodes])
            return alpha * loss_r + (1 - alpha) * loss_f

    return _optimise(ctx, loss_fn, ctx.model.parameters(), epochs=o["epochs"], lr=o["lr"],
                     eval_every=o["eval_every"], desc="d2dgn")


def _random_edge_teacher(ctx: Context, g: torch.Generator) -> nn.Module:
    """A destroyer trained briefly on as many uniformly random node pairs as the graph has edges."""
    from torch_geometric.data import Data

    store = ctx.store
    n = store.num_nodes
    m = store.num_live_edges
    pairs = torch.stack([torch.randint(n, (m,), generator=g), torch.randint(n, (m,), generator=g)])
    pairs = pairs[:, pairs[0] != pairs[1]]
    fake = GraphStore(Data(x=store.live_x(), edge_index=torch.cat([pairs, pairs.flip(0)], 1), num_nodes=n))
    teacher = ctx.original.fresh()
    gt.link_prediction(teacher, fake, None, epochs=20, seed=ctx.seed, progress=False)
    return teacher.eval()


def _reset_rows(model: nn.Module, nodes: Tensor, num_users: int) -> int:
    """Give the deleted users' and items' own embedding rows a fresh initialisation (as a model retrained
    without them would have); returns how many rows were reset. LightGCN keeps one table over all nodes,
    MF one for users and one for items."""
    if nodes.numel() == 0:
        return 0
    fresh = model.fresh()
    with torch.no_grad():
        if isinstance(model, gm.LightGCN):
            model.embedding.weight[nodes] = fresh.embedding.weight[nodes]
        elif isinstance(model, gm.MF):
            users, items = nodes[nodes < num_users], nodes[nodes >= num_users] - num_users
            model.users.weight[users] = fresh.users.weight[users]
            model.items.weight[items] = fresh.items.weight[items]
        else:
            raise ValueError(f"reverse_bpr: reset_deleted needs a LightGCN or MF model, got {type(model).__name__}")
    return int(nodes.numel())


@register("reverse_bpr", tasks=("rec",), epochs=_epochs(10), lr=_lr(0.005), alpha=_fraction(0.5),
          batch_size=Option(4096, int, low=1), weight_decay=Option(1e-4, float, low=0),
          reset_deleted=Option(True, bool))
def _reverse_bpr(ctx: Context) -> dict:
    r"""MMRecUn-style reverse BPR (Sinha et al., arXiv 2405.15328) for LightGCN / MF:

    .. math::
        L = \alpha \sum_{(u,i) \in D_f} -\ln\sigma(x_{uj} - x_{ui})
          + (1 - \alpha) \sum_{(u,i) \in D_r} -\ln\sigma(x_{ui} - x_{uj})

    with one sampled negative item :math:`j` per interaction, on the fused (reverse) BPR kernel, message
    passing over the retained interactions only. Fixed epochs (each pairs the forget set with a batch of
    retained interactions of ``batch_size``). Request kinds: interactions (edges), users or items (nodes),
    item groups (edge or node classes): every deleted user-item edge is in :math:`D_f`. With
    ``reset_deleted`` (default), deleted user and item nodes first get freshly initialised embedding rows:
    a deleted node's own row is nothing but what was learnt from its data, and reverse BPR alone left it
    in place (dev seed 7 on MovieLens-100k, 2.5% of users: forget-set Recall@20 0.25 without the reset,
    0.00 with it, 0.02 for gold).

    The defaults (10 epochs, ``alpha=0.5``) were chosen on a development seed (7) of MovieLens-100k,
    LightGCN, item groups of 2.5%: Recall@20 0.250 against gold's 0.255 (20 epochs: 0.242; 50: 0.233).
    """
    o = ctx.options
    config = getattr(ctx.original, "config", {})
    nu = ctx.split.num_users if ctx.split is not None else config.get("num_users")
    ni = ctx.split.num_items if ctx.split is not None else config.get("num_items")
    if nu is None or ni is None:
        raise ValueError("reverse_bpr needs split= (a RecSplit) or a LightGCN/MF model that knows its sizes")
    g = torch.Generator().manual_seed(ctx.seed)
    df = _deleted_pairs(ctx)
    forget_u, forget_i = df[0], df[1] - nu
    if df.size(1) == 0:
        raise ValueError("reverse_bpr: the requests delete no interactions")
    alpha, bs = float(o["alpha"]), int(o["batch_size"])
    reset = _reset_rows(ctx.model, ctx.deleted_nodes, nu) if o["reset_deleted"] else 0

    def loss_fn(_):
        kept = gt.interactions(ctx.store, nu)
        pick = torch.randint(kept.size(1), (min(bs, kept.size(1)),), generator=g) if kept.size(1) \
            else torch.empty(0, dtype=torch.long)  # every interaction deleted: the forget term alone
        users = torch.cat([forget_u, kept[0, pick]])
        pos = torch.cat([forget_i, kept[1, pick]])
        neg = gt.sample_negative_items(users, ctx.store, nu, ni, g)
        sign = torch.cat([-torch.ones(forget_u.numel()), torch.ones(pick.numel())])
        weight = torch.cat([torch.full((forget_u.numel(),), alpha / forget_u.numel()),
                            torch.full((pick.numel(),), (1 - alpha) / max(1, pick.numel()))])
        view = ctx.store.live()
        ue, ie = ctx.model(view.x, view)
        loss = bpr_loss(ue, ie, users, pos, neg, sign, weight, reduction="sum")
        reg = (ue[users].pow(2).sum() + ie[pos].pow(2).sum() + ie[neg].pow(2).sum()) / (2 * users.numel())
        return loss + o["weight_decay"] * reg

    info = _optimise(ctx, loss_fn, ctx.model.parameters(), epochs=o["epochs"], lr=o["lr"], select=False,
                     desc="reverse_bpr")
    info["reset_rows"] = reset
    return info


@register("gnndelete", tasks=("link",), epochs=_epochs(20), lr=_lr(0.01), lam=_fraction(0.05),
          init=Option("identity", str, choices=("identity", "reference")))
def _gnndelete(ctx: Context) -> dict:
    r"""GNNDelete (Cheng et al., ICLR 2023): frozen original weights plus one trainable deletion operator
    per layer, applied only to the affected nodes (see :class:`GNNDeleteModel`), trained layer by layer:

    .. math::
        L_l = \lambda\, \mathrm{MSE}\big([h^l_u \| h^l_v]_{(u,v) \in D_f}, [h^l_a \| h^l_b]_{(a,b) \sim V^2}\big)
            + (1 - \lambda)\, \mathrm{MSE}(h^l_{S_l}, \bar h^l_{S_l})

    (deleted-edge consistency and neighbourhood influence; :math:`\bar h` is the original model on the graph
    without the deleted edges). Differences from the reference code, which measured 4 AUROC points below
    gold on Cora and over-forgot: operators start as the identity (``init="reference"`` restores its
    ones/1000 start), neighbourhoods are computed on the undirected live graph, the deleted edges are not in
    the message passing, and each layer's optimiser state and gradients are its own (layer ``l`` trains with
    the earlier operators frozen and their outputs detached). Defaults (``lam=0.05``, 20 epochs per layer)
    were chosen on a development seed (7) of Cora, GCN, 2.5% "in": Df-AUROC 0.763 against gold 0.734, test
    AUROC 0.913 against 0.921; ``lam=0.5`` with 50 epochs over-forgot (0.90 against 0.66 on another draw).
    """
    o = ctx.options
    g = torch.Generator().manual_seed(ctx.seed)
    store = ctx.store
    base = ctx.original
    n_layers = len(base.convs)
    max_hop = min(r.num_hops for r in ctx.requests)
    affected = [ctx.affected_nodes(min(k + 1, max_hop)) for k in range(n_layers)]
    df = _deleted_pairs(ctx)
    if df.size(1) == 0:
        raise ValueError("gnndelete: the requests delete no edges")
    live_nodes = store.node_mask.nonzero().squeeze(1)
    view = store.live()
    with torch.no_grad():  # the original model's layers on the graph without the deleted edges
        untouched = [torch.empty(0, dtype=torch.long)] * n_layers
        dims = [1] * n_layers
        reference = GNNDeleteModel(base, untouched, store.num_nodes, dims).layers(view.x, view, identity=True)
    dims = [r.size(1) for r in reference]
    model = GNNDeleteModel(copy.deepcopy(base), affected, store.num_nodes, dims, init=o["init"])
    info = {"epochs": o["epochs"] * n_layers, "losses": []}
    for k in range(n_layers):
        params = list(model.operators[k].parameters())
        for j, op in enumerate(model.operators):
            op.requires_grad_(j == k)
        opt = torch.optim.Adam(params, lr=o["lr"])
        mask = model.masks[k]
        for epoch in tqdm(range(1, o["epochs"] + 1), desc=f"gnndelete layer {k + 1}", disable=not ctx.progress,
                          leave=False):
            h = model.layers(view.x, view, upto=k + 1)[-1]
            rand = gt.sample_pairs(live_nodes, df.size(1), g)
            dec = F.mse_loss(torch.cat([h[df[0]], h[df[1]]], 1), torch.cat([h[rand[0]], h[rand[1]]], 1))
            ni = F.mse_loss(h[mask], reference[k][mask]) if bool(mask.any()) else torch.zeros(())
            loss = o["lam"] * dec + (1 - o["lam"]) * ni
            opt.zero_grad()
            loss.backward()
            opt.step()
            info["losses"].append(loss.item())
            if not math.isfinite(info["losses"][-1]):
                raise FloatingPointError(f"gnndelete: the loss is {info['losses'][-1]} at layer {k + 1}, epoch "
                                         f"{epoch}; the method diverged (try a smaller lr than {o['lr']}) or the "
                                         "model or inputs hold NaN or inf values")
    for op in model.operators:
        op.requires_grad_(True)
    info["model"] = model
    info["val_score"] = _select(ctx, model, "gnndelete")
    return info
