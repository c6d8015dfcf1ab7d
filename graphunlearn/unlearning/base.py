"""The method contract: typed options, the registry, and what a method is handed (:class:`Context`).

A method is one module under ``graphunlearn/unlearning/algorithms/``: an options dataclass (a subclass of
:class:`Options` whose fields are declared with :func:`option`: default, type, valid range and meaning in
one place; validated in ``__post_init__``), a function ``run(ctx) -> info`` and one :func:`register` call
naming the tasks it supports. Adding a method is those three steps; the contract test
(``tests/unlearning/test_contract.py``) then holds it to the promises every method keeps.
"""

from __future__ import annotations

import builtins
import copy
import dataclasses
import math
import numbers
import types
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from .. import checks
from .. import distributed as dist
from ..graph import row_slots
from ..metrics import roc_auc
from ..models import CONVS
from ..models.card import ModelCard
from ..requests import DeletionRequest
from ..store import GraphStore
from ..tasks import Task
from ..tasks import tasks as registered_tasks
from ..tasks.base import affected_nodes, make_generator
from ..train.loop import LoopResult, optimise, validated


# ----------------------------------------------------------------------------------------------- options
@dataclass(frozen=True)
class Option:
    """One option's specification: its type (``int``, ``float``, ``bool``, ``str``), valid range (``low``,
    ``high``; ``low_open``: ``low`` itself excluded, as for a learning rate), ``choices`` for strings,
    ``allow_none``, and its meaning (``doc``, with units). An ``int`` is accepted where a ``float`` is asked
    for; a ``bool`` never counts as a number."""

    type: type
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    allow_none: bool = False
    choices: tuple | None = None
    doc: str = ""

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


def option(default, type: type | None = None, *, low: float | None = None, high: float | None = None,
           low_open: bool = False, allow_none: bool = False, choices: Sequence | None = None, doc: str = ""):
    """A field of an :class:`Options` dataclass with its :class:`Option` spec (type inferred from the
    default when not given)."""
    if type is None:
        if default is None:
            raise TypeError("option: a None default needs its type")
        type = (bool if isinstance(default, bool) else int if isinstance(default, numbers.Integral)
                else float if isinstance(default, numbers.Real) else builtins.type(default))
    spec = Option(type, low, high, low_open, allow_none or default is None, tuple(choices) if choices else None, doc)
    return field(default=default, metadata={"option": spec})


def epochs(default: int | None, doc: str = "optimisation epochs") -> dataclasses.Field:
    return option(default, int, low=1, allow_none=default is None, doc=doc)


def learning_rate(default: float) -> dataclasses.Field:
    return option(default, float, low=0, low_open=True, doc="Adam learning rate (> 0)")


def fraction(default: float, doc: str) -> dataclasses.Field:
    return option(default, float, low=0, high=1, doc=doc)


#: whether the learning methods calibrate by default (``docs/calibration.md``: chosen on development seeds)
CALIBRATE = False
#: the largest drop in validation score below the original's that calibration accepts for a checkpoint
CALIBRATE_TOLERANCE = 0.01


def calibrate_switch(default: bool = CALIBRATE) -> dataclasses.Field:
    """The common ``calibrate`` option of the learning methods (:class:`Calibration`)."""
    return option(default, bool, doc="calibrated forgetting: stop where the deleted units score like held-out "
                  "validation units (degree-matched AUROC 0.5; docs/calibration.md)")


def calibration(options: Options) -> dict:
    """The keyword arguments of :meth:`Context.optimise` that the common calibration options set
    (``calibrate``, ``calibrate_tolerance``, ``calibrate_every`` and, where the method declares it,
    ``calibrate_reference``)."""
    return {"calibrate": options.calibrate, "tolerance": options.calibrate_tolerance,
            "check_every": options.calibrate_every, "reference": getattr(options, "calibrate_reference", None)}


def calibrate_reference() -> dataclasses.Field:
    """The common ``calibrate_reference`` option: the validation score eligibility is measured against
    (``None``, the default: the original's, i.e. the model the call starts from). A stream passes the score of
    its last retrained (or first) model, so that the tolerance bounds the stream's cumulative loss of utility
    rather than each request's (``gu.stream``, ``docs/calibration.md``)."""
    return option(None, float, allow_none=True,
                  doc="with calibrate: the validation score a checkpoint may lose at most calibrate_tolerance "
                      "against (None: the original's; gu.stream passes its last retrained model's)")


def calibrate_every(default: int = 1) -> dataclasses.Field:
    """The common ``calibrate_every`` option: epochs between calibration checks."""
    return option(default, int, low=1, doc="with calibrate: epochs between checks (each is a validation and a "
                  "forward pass over the deleted and held-out units), replacing the method's own validation cadence")


def calibrate_tolerance(default: float = CALIBRATE_TOLERANCE) -> dataclasses.Field:
    """The common ``calibrate_tolerance`` option: validation utility a calibrated checkpoint may lose."""
    return option(default, float, low=0, high=1, doc="with calibrate: a checkpoint is eligible only if its "
                  "validation score is at least the original's minus this")


@dataclass
class Options:
    """Base class of the methods' options. Each field's :class:`Option` is checked on construction."""

    method = "?"  # set by register()

    def __post_init__(self):
        for f in dataclasses.fields(self):
            f.metadata["option"].check(type(self).method, f.name, getattr(self, f.name))

    @classmethod
    def specs(cls) -> dict[str, Option]:
        return {f.name: f.metadata["option"] for f in dataclasses.fields(cls)}

    @classmethod
    def defaults(cls) -> dict:
        return {f.name: f.default for f in dataclasses.fields(cls)}

    @classmethod
    def from_dict(cls, values: dict, defaults: dict | None = None) -> Options:
        """Options from keyword values; unknown names raise ``ValueError`` listing the valid ones with their
        defaults (``defaults``: those the caller's model runs with, :meth:`Method.options_for`; else the plain
        ones)."""
        unknown = sorted(set(values) - set(cls.specs()))
        if unknown:
            raise ValueError(f"unknown option(s) {unknown} for method {cls.method!r}; valid options: "
                             f"{defaults if defaults is not None else cls.defaults()}")
        return cls(**values)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Method:
    """A registered method: its name, ``run(ctx) -> info``, the tasks it supports, its options type, its
    docstring, whether it may run on a model another method wrapped (``on_wrapped``), what it needs of
    a model (``requires``, in words; it refuses models that lack it with a ``TypeError`` naming the gap),
    whether it runs on sampled computation graphs (``local``), and its defaults for particular backbones
    (``backbone_options``, read-only: :meth:`options_for`)."""

    name: str
    run: Callable[[Context], dict]
    tasks: tuple[str, ...]
    options_type: type[Options]
    doc: str
    on_wrapped: bool = False
    requires: str = "any model"
    local: bool = False
    backbone_options: Mapping[str, Mapping] = field(default_factory=dict, hash=False, compare=False)

    def supports(self, task: Task) -> bool:
        """Whether the method runs on ``task`` (``tasks=("*",)``: any task, through the Task contract alone)."""
        return "*" in self.tasks or task.name in self.tasks

    @property
    def options(self) -> dict:
        """Option names and defaults (what the CLI lists; a model of a backbone with entries of its own runs
        with :meth:`options_for`, which the benchmark's cache keys hold)."""
        return self.options_type.defaults()

    def options_for(self, task: str, backbone: str | None) -> dict:
        """The defaults a model of ``backbone`` (:func:`graphunlearn.models.backbone_name`: ``"gcn"``, ``"gin"``,
        ...; ``None`` for a model it does not name) runs with on task ``task``: :attr:`options`, updated with the
        method's entry for the backbone on every task (``register(backbone_options={"gin": ...})``), then with
        its entry for the backbone on that task (``{"link/gin": ...}``), where it has them."""
        return {**self.options, **self.backbone_options.get(backbone, {}),
                **self.backbone_options.get(f"{task}/{backbone}", {})}

    @property
    def specs(self) -> dict[str, Option]:
        return self.options_type.specs()

    def check_options(self, options: dict, defaults: dict | None = None) -> Options:
        """Validated options (names and values) as the method's options dataclass: ``options`` over
        ``defaults`` (the model's, :meth:`options_for`; default: none, the dataclass's own fill in)."""
        return self.options_type.from_dict({**(defaults or {}), **options}, defaults)


_REGISTRY: dict[str, Method] = {}


def register(name: str, *, tasks: Sequence[str], options: type[Options] | None = None,
             on_wrapped: bool = False, requires: str = "any model", local: bool = False,
             backbone_options: Mapping[str, Mapping] | None = None) -> Callable:
    """Register ``run(ctx) -> info`` as unlearning method ``name`` for ``tasks`` (task names, or ``("*",)`` for
    a method that uses only the :class:`~graphunlearn.tasks.Task` contract and so runs on any task, a
    fourth one included) with the options dataclass
    ``options`` (default: none); ``requires`` says in words what it needs of a model; ``local``: its steps
    compute through :meth:`Context.step_graph`, so it runs on sampled computation graphs when asked
    (``unlearn(num_neighbors=...)``); ``backbone_options``: defaults that differ for one backbone, by
    :func:`graphunlearn.models.backbone_name`, on every task (``{"gin": {"lr": 0.0005}}``) or on one
    (``{"link/gin": ...}``); what the caller passes still wins (:meth:`Method.options_for`). Refuses a second
    method of the same name, and backbone options the options type refuses."""
    if not isinstance(name, str) or not name:
        raise TypeError(f"register: name must be a non-empty str, got {name!r}")
    known = sorted(registered_tasks())
    if isinstance(tasks, str) or not tasks or not set(tasks) <= set(known) | {"*"}:
        raise ValueError(f"register({name!r}): tasks must be a non-empty sequence drawn from {known}, got {tasks!r}")
    options = options or type(f"{name}Options", (Options,), {"__annotations__": {}})
    options = dataclass(options) if not dataclasses.is_dataclass(options) else options
    options.method = name
    options()  # the defaults must pass their own checks
    backbone_options = _check_backbone_options(name, backbone_options or {}, tasks, options)

    def wrap(fn):
        if name in _REGISTRY:
            raise ValueError(f"unlearning method {name!r} is already registered")
        _REGISTRY[name] = Method(name, fn, tuple(tasks), options, (fn.__doc__ or "").strip(), on_wrapped, requires,
                                 local, backbone_options)
        return fn
    return wrap


def _check_backbone_options(name: str, backbone_options: Mapping, tasks: Sequence[str],
                            options: type[Options]) -> Mapping[str, Mapping]:
    """``register``'s ``backbone_options``, checked (each key a backbone :func:`graphunlearn.models.backbone_name`
    can return, optionally after one of the method's tasks and a slash; each entry options the options type
    accepts) and frozen."""
    out = {}
    runs_on = set(registered_tasks()) if "*" in tasks else set(tasks)
    for key, chosen in backbone_options.items():
        task, _, backbone = key.rpartition("/") if isinstance(key, str) else ("", "", key)
        if backbone not in CONVS or (task and task not in runs_on):
            raise ValueError(f"register({name!r}): backbone_options key {key!r} must be a backbone of {list(CONVS)}, "
                             f"optionally after one of the method's tasks {sorted(runs_on)} and '/' (e.g. 'link/gin')")
        if not isinstance(chosen, Mapping):
            raise TypeError(f"register({name!r}): backbone_options[{key!r}] must be a mapping of option names to "
                            f"values, got {type(chosen).__name__}")
        options.from_dict(dict(chosen))  # the entry must pass the options' own checks
        out[key] = types.MappingProxyType(dict(chosen))
    return types.MappingProxyType(out)


def methods() -> dict[str, Method]:
    """The registered methods by name."""
    return dict(_REGISTRY)


# ----------------------------------------------------------------------------------------------- context
@dataclass
class Context:
    """What a method gets: a private copy of the model (``model``, which it may train or replace), the frozen
    ``original``, the store, the requests, the task object, the split, the seed, the options, the original's
    card, and the user's training function for retraining (``train_fn``, or ``None``)."""

    model: nn.Module
    original: nn.Module
    store: GraphStore
    requests: tuple[DeletionRequest, ...]
    task: Task
    split: object
    seed: int
    progress: bool
    options: Options
    card: ModelCard | None = None
    train_fn: Callable | None = None
    method: str = ""
    autocast: bool = False
    #: per-hop fanouts of the sampled computation graphs the method's steps and validation run on, or
    #: ``None``: the whole live graph (see :meth:`step_graph`)
    num_neighbors: list[int] | None = None
    #: whether the caller asked for :attr:`num_neighbors` (``unlearn(num_neighbors=[...])``) rather than the
    #: model's card supplying them: a method that cannot sample a request may fall back to the whole graph
    #: only when the fanouts were not asked for
    fanouts_asked: bool = False
    _frozen: dict = field(default_factory=dict, repr=False)

    @property
    def deleted_nodes(self) -> Tensor:
        return torch.unique(torch.cat([r.node_ids for r in self.requests]))

    def affected_nodes(self, hop: int | None = None) -> Tensor:
        """Live nodes within ``hop`` hops of the deleted elements (union over the requests)."""
        return affected_nodes(self.store, self.requests, hop)

    def encode(self, model: nn.Module) -> Tensor:
        """``model``'s node representations on the live graph (the task's :meth:`~graphunlearn.tasks.Task.encode`)."""
        return self.task.encode(model, self.store)

    def generator(self) -> torch.Generator:
        """A generator for the method's per-step draws (retained units, negatives, neighbour samples) on the
        store's device, seeded with :attr:`seed`; in a data-parallel job each rank's is its own
        (:func:`graphunlearn.distributed.rank_seed`; rank 0's is :attr:`seed`), so the ranks' steps draw
        different samples whose gradients DDP averages (methods divide their per-step budget between the
        ranks with :meth:`per_rank`). Draws that every rank must make alike (a graph built from them, which
        the ranks compare) use ``make_generator(ctx.seed, ...)`` instead."""
        return make_generator(dist.rank_seed(self.seed), self.store.device)

    def share(self, units: Tensor) -> Tensor:
        """This rank's share of a step's units (node ids [K] or pairs [2, K]) in a data-parallel job (every
        ``world_size``-th from position ``rank``, :func:`graphunlearn.distributed.shard`), so the ranks split
        the step's work and DDP's average of their gradients is the step's; all of ``units`` without a
        process group, or when there are fewer units than ranks (each rank then takes them all, and the
        average is still theirs). Units every rank holds alike (the forget set) are split exactly; a share of
        units each rank drew with its own :meth:`generator` is a random half of an independent draw."""
        return dist.share(units)

    def per_rank(self, num: int) -> int:
        """How many of ``num`` units per step each rank draws in a data-parallel job (``ceil(num /
        world_size)``; ``num`` itself in one process)."""
        return -(-num // dist.world_size())

    @property
    def local(self) -> bool:
        """Whether steps run on sampled computation graphs (:attr:`num_neighbors` is set)."""
        return self.num_neighbors is not None

    def step_graph(self, units: Sequence[Tensor], generator: torch.Generator | None = None) -> StepGraph:
        """What one step computes on: the whole live graph, or (with :attr:`num_neighbors`) one sampled
        computation graph of every node ``units`` touch (node ids [K] or pairs [2, K]), shared by every model
        the step runs so that student and teachers see the same neighbourhoods. Its ``units`` index the
        rows of what its ``encode`` returns."""
        return StepGraph(self, units, generator)

    def _task_validate(self, model: nn.Module) -> float | None:
        if self.num_neighbors is None:
            return self.task.validate(model, self.store, self.split)
        return self.task.validate(model, self.store, self.split, num_neighbors=self.num_neighbors)

    def validate(self, model: nn.Module, epoch: int | None = None) -> float | None:
        """The task's validation score of ``model`` (``None`` without a split; on sampled computation graphs
        when :attr:`local`); NaN or infinite outputs raise ``FloatingPointError``."""
        if self.split is None:
            return None
        return validated(self.method, epoch, lambda: self._task_validate(model))

    @property
    def computation(self) -> str:
        return "full graph" if self.num_neighbors is None else f"sampled {self.num_neighbors}"

    def optimise(self, loss_fn: Callable[[int], Tensor], *, epochs: int, lr: float, params=None,
                 select: bool = True, eval_every: int = 1, calibrate: bool = False,
                 tolerance: float = CALIBRATE_TOLERANCE, check_every: int = 1,
                 reference: float | None = None, desc: str | None = None) -> dict:
        """The one loop (:func:`~graphunlearn.train.loop.optimise`) on ``self.model``: ``loss_fn(epoch)`` per
        step, the best validation epoch kept when ``select``. With ``calibrate``, :class:`Calibration` decides
        instead: it checks every ``check_every`` epochs (in place of ``eval_every``), stops at the first
        eligible check where the deleted units score like held-out validation units, and keeps the eligible
        checkpoint closest to that (``tolerance``: the validation score a checkpoint may lose against the
        original's, or ``reference`` when given); its decision is ``info["calibration"]`` (where calibration
        cannot run: the reason, and the usual selection). The methods pass their common options with
        ``**calibration(options)``. ``desc``: how the progress bar and errors name the loop (default: the
        method's name; gnndelete names the layer it trains). Returns the info a method reports."""
        desc = desc or self.method
        cal = Calibration(self, tolerance, reference=reference) if calibrate else None
        if cal is not None and cal.reason is None:
            return self._calibrated(loss_fn, cal, epochs, lr, params, check_every, desc)
        run: LoopResult = optimise(self.model, lambda epoch, _batch: loss_fn(epoch), epochs=epochs, lr=lr,
                                   params=params,
                                   validate=(lambda: self._task_validate(self.model))
                                   if select and self.split is not None else None,
                                   eval_every=eval_every, select=select, progress=self.progress, desc=desc,
                                   autocast=self.autocast)
        info = {"epochs": run.epochs_run, "selected_epoch": run.best_epoch, "val_score": run.best_val,
                "losses": run.losses, "computation": self.computation}
        if cal is not None:
            info["calibration"] = cal.decision()
        return info

    def _calibrated(self, loss_fn: Callable[[int], Tensor], cal: Calibration, epochs: int, lr: float, params,
                    eval_every: int, desc: str) -> dict:
        """:meth:`optimise` under :class:`Calibration`: the loop validates every ``eval_every`` epochs, each
        validation is also a calibration check, and the first check that ends the run leaves the loop (the
        loop has no stopping hook but patience, which reads one score)."""
        losses: list[Tensor] = []  # device scalars, read once at the end (no host sync per step)
        at = [0]

        def step(epoch: int, _batch) -> Tensor:
            at[0] = epoch
            loss = loss_fn(epoch)
            losses.append(loss.detach().float())
            return loss

        def validate() -> float | None:
            val = cal.validate(self.model)
            stop = cal.check(at[0], self.model, val)
            if dist.is_active():  # rank 0's decision, so that every rank leaves the loop at the same check
                stop = dist.broadcast_object(stop, f"{self.method}: calibration decision")
            if stop:
                raise _CalibrationStop
            return val

        if not cal.start(self.model):
            params = list(params) if params is not None else None
            start = copy.deepcopy(self.model.state_dict())
            for attempt in range(BACKTRACKS + 1):
                losses.clear()
                try:
                    optimise(self.model, step, epochs=epochs, lr=lr, params=params, validate=validate,
                             eval_every=eval_every, select=False, progress=self.progress, desc=desc,
                             autocast=self.autocast)
                except _CalibrationStop:
                    pass
                if cal.stopped_at != eval_every or attempt == BACKTRACKS:
                    break
                # the first check already crossed: the crossing lies inside one interval of steps, too
                # coarse to place; again from the start, with smaller steps
                cal.rewind(lr)
                self.model.load_state_dict(start)
                lr = lr / BACKTRACK_FACTOR
        cal.lr = lr
        decision = cal.restore(self.model)
        return {"epochs": at[0], "selected_epoch": decision["selected_epoch"], "val_score": decision["val_score"],
                "losses": torch.stack(losses).tolist() if losses else [], "computation": self.computation,
                "calibration": decision}


def _full_precision(device: torch.device):
    """A context that turns autocast off (a cached teacher output is computed as before the loop was)."""
    return torch.autocast(torch.device(device).type, enabled=False)


class StepGraph:
    """One step's computation (:meth:`Context.step_graph`): ``units`` renumbered for the rows ``encode``
    returns. On the whole graph, a frozen model's representations (``frozen=True``: the original, a teacher)
    are computed once per unlearning and reused; on a sampled computation graph, once per step, without
    gradient."""

    def __init__(self, ctx: Context, units: Sequence[Tensor], generator: torch.Generator | None):
        self.ctx = ctx
        if ctx.num_neighbors is None:
            self.graph, self.units = None, list(units)
        else:
            from ..tasks.local import localize

            self.graph, self.units = localize(ctx.store, units, ctx.num_neighbors, generator)

    def encode(self, model: nn.Module, frozen: bool = False) -> Tensor:
        """``model``'s representations for this step's units (``frozen``: no gradient, cached on the whole
        graph)."""
        ctx = self.ctx
        if self.graph is None:
            if not frozen:
                return ctx.encode(model)
            key = id(model)
            if key not in ctx._frozen:
                with torch.no_grad(), _full_precision(ctx.store.device):  # reused every step: never cached in bf16
                    ctx._frozen[key] = (model, ctx.encode(model))  # the model kept: its id stays its own
            return ctx._frozen[key][1]
        if frozen:
            with torch.no_grad():
                return self.graph.encode(model, ctx.method)
        return self.graph.encode(model, ctx.method)


# ----------------------------------------------------------------------------------------------- calibration
#: held-out groups of :func:`matched_auroc`: the held-out units are cut at the quantiles of their degree
#: covariate into this many groups (docs/calibration.md; Cora's 263 validation edges give about 65 a group)
CALIBRATION_BINS = 4


def matched_auroc(forget: Tensor, heldout: Tensor, forget_cov: Tensor | None = None,
                  heldout_cov: Tensor | None = None, bins: int = CALIBRATION_BINS) -> float:
    r"""AUROC of the deleted units' scores ``forget`` (label 1) against held-out units' ``heldout`` (label 0),
    matched on a covariate: the held-out units are cut into ``bins`` groups at the quantiles of
    ``heldout_cov`` (boundaries taken among the held-out values, so no group between distinct boundaries is
    empty), each deleted unit is ranked against the held-out units of its own group only, and the groups'
    AUROCs are averaged with weights :math:`|F_b| / |F|`:

    .. math::
        \mathrm{AUROC}_{\text{matched}} = \sum_b \frac{|F_b|}{|F|}\,
        P\big(s(f) > s(h) \mid f \in F_b,\ h \in H_b\big)

    (ties count half). A deleted unit above every held-out covariate joins the highest group that holds
    held-out units. Without covariates (``None``), the plain AUROC. 0.5: the deleted units score like
    held-out units of the same degree; above: the model still ranks them as training data.

    Shapes: forget [F], heldout [H], forget_cov [F], heldout_cov [H].

    Raises:
        ValueError: either side empty, or a NaN or infinite score (:func:`~graphunlearn.metrics.roc_auc`).
    """
    if forget_cov is None or heldout_cov is None or bins <= 1 or heldout.numel() < 2 * bins:
        return roc_auc(forget, heldout)
    qs = torch.linspace(0, 1, bins + 1, device=heldout_cov.device)[1:-1]
    edges = torch.quantile(heldout_cov.float(), qs, interpolation="lower")
    b_h = torch.bucketize(heldout_cov.float(), edges)
    b_f = torch.bucketize(forget_cov.float(), edges).clamp(max=int(b_h.max()))
    total = 0.0
    for b in torch.unique(b_f).tolist():
        f = forget[b_f == b]
        total += roc_auc(f, heldout[b_h == b]) * f.numel()
    return total / forget.numel()


def _same_weights(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


#: restarts with smaller steps when the first check after the start already crosses 0.5, and the factor the
#: learning rate is divided by each time: d2dgn's plain 0.005 becomes 0.001, the step the Cora stream of 5-edge
#: requests needed (docs/methods.md, measured when GCN ran the plain rate; on a GCN's link prediction its
#: 0.0025 now becomes 0.0005), then 0.0002 (docs/calibration.md)
BACKTRACKS = 2
BACKTRACK_FACTOR = 5.0


class RequestRefused(ValueError):
    """A method was asked to forget requests of a kind it does not take (``heldout_distill`` or ``gnndelete``
    given requests that only erase feature values; ``gradient_ascent`` given no deleted unit): raised before
    any change, so nothing is modified. A ``ValueError``, so existing handlers still catch it; the benchmark
    records the method as refused for that cell (:func:`graphunlearn.bench.run`) instead of stopping the run.
    A misconfiguration (a missing ``split=``, an unknown option) is a plain ``ValueError``, never this."""


class _CalibrationStop(Exception):
    """Raised from a calibration check to leave the loop at the epoch where the rule stops."""


class Calibration:
    r"""Calibrated forgetting (``docs/calibration.md``): how far a learning method forgets, decided from the
    forget set and held-out validation units alone (never test data, never a gold model).

    At epoch 0 and at every validation point :math:`t` it measures the model's degree-matched
    forget-vs-held-out AUROC :math:`m_t` (:func:`matched_auroc` of the deleted units' scores against those of
    the held-out validation units the task names, :meth:`~graphunlearn.tasks.Task.heldout_units`, on the live
    graph) beside the validation score :math:`v_t`. A checkpoint is *eligible* when
    :math:`v_t \ge v_{\text{ref}} - \text{tolerance}`, where :math:`v_{\text{ref}}` is the original model's
    validation score on the live graph, or ``reference`` when given (a stream's last retrained model's). The
    run stops at the first eligible checkpoint with :math:`m_t \le 0.5` (the deleted units now score no higher
    than units the model never trained on); the model kept is the eligible checkpoint with
    :math:`|m_t - 0.5|` smallest (the crossing, or the one just before it), else, when none was eligible,
    the best validation checkpoint. A run that stops at its first check after the start crossed inside one
    interval of steps: it starts again from the same weights with the learning rate divided by
    :data:`BACKTRACK_FACTOR`, at most :data:`BACKTRACKS` times.

    Read: the deleted units (``Task.forget_units``), the held-out validation units (validation positives for
    link prediction, live validation nodes for node classification, validation interactions for
    recommendation), the validation units the task's ``validate`` reads, and the live graph's degrees. A task
    whose held-out units are not validation data (``Task.calibration_unavailable``: recommendation without
    validation interactions, whose held-out ones are its test interactions) is not calibrated. The validation
    score is the task's :meth:`~graphunlearn.tasks.Task.calibration_validate`: its ``validate``, except for
    recommendation on sampled computation graphs, whose ``validate`` ranks every item on the whole graph: there
    a sampled AUC (:meth:`~graphunlearn.tasks.rec.Recommendation.sampled_validate`).
    On sampled computation graphs (``unlearn(num_neighbors=...)``) pair scores come from sampled
    computation graphs of the deleted pairs and of the live ones among the held-out pairs sampled validation
    reads (``Task.sampled_heldout_units``: a fixed random subset of ``Task.sampled_val_units`` positions),
    drawn with a fixed seed at every check; node classification asks deleted nodes on the graph before the requests,
    which sampled graphs do not rebuild, so it is calibrated on the whole graph only.
    """

    target = 0.5

    def __init__(self, ctx: Context, tolerance: float, bins: int = CALIBRATION_BINS,
                 reference: float | None = None):
        self.ctx, self.tolerance, self.bins = ctx, float(tolerance), bins
        self.given_reference = None if reference is None else float(reference)
        self.forget: Tensor | None = None  # deleted pairs [2, F] (pair tasks; node tasks ask the task)
        self.heldout: Tensor | None = None  # held-out validation pairs [2, H]
        self.cov: tuple[Tensor, Tensor] | None = None  # their degree covariates
        self.original_auroc: float | None = None
        self.checks: list[dict] = []
        self.reason: str | None = None
        self.reference: float | None = None
        self._best: tuple | None = None  # (distance to target, epoch, val, state) of the eligible checkpoint kept
        self._fallback: tuple | None = None  # (epoch, val, state) of the best validation checkpoint
        self.stopped_at: int | None = None
        self.attempts: list[dict] = []  # runs restarted with smaller steps (rewind)
        self.lr: float | None = None  # the learning rate of the run kept
        task, split, store = ctx.task, ctx.split, ctx.store
        if split is None:
            self.reason = "no split: no held-out validation units to compare the deleted units with"
            return
        self.reason = task.calibration_unavailable(split, ctx.local)
        if self.reason is not None:  # held-out units that are test data, or a task that cannot check on samples
            return
        if task.pairwise:
            forget = task.forget_units(store, ctx.requests, split)
            held = task.sampled_heldout_units(split, store) if ctx.local else task.live_heldout_units(split, store)
            if not forget.numel() or held is None or not held.numel():
                self.reason = "no deleted units" if not forget.numel() else "no held-out validation units"
                return
            self.forget, self.heldout = forget, held
            self.cov = (self._degree_covariate(forget), self._degree_covariate(held))
        elif ctx.local:
            self.reason = (f"task {task.name!r} asks deleted units on the graph before the requests, which sampled "
                           "computation graphs do not rebuild: calibrate on the whole graph (num_neighbors='full')")
            return
        elif task.membership_scores(ctx.original, store, split, ctx.requests) is None:
            self.reason = "no deleted training units or no live held-out validation units"

    def _degree_covariate(self, pairs: Tensor) -> Tensor:
        r""":math:`\log(1 + d_u) + \log(1 + d_v)` of each pair, live degrees read from the store's CSR rows of
        the pairs' endpoints only (a deleted edge no longer counts, a held-out edge never did)."""
        csr = self.ctx.store.live_csr()
        nodes, inverse = torch.unique(pairs.reshape(-1), return_inverse=True)
        slots = row_slots(csr.rowptr, nodes)
        live = csr.slot_live[slots] & csr.node_live[csr.col[slots]]
        owner = torch.repeat_interleave(torch.arange(nodes.numel(), device=nodes.device),
                                        csr.rowptr[nodes + 1] - csr.rowptr[nodes])
        degree = torch.zeros(nodes.numel(), device=nodes.device).index_add_(0, owner, live.float())
        return torch.log1p(degree)[inverse].view(pairs.shape).sum(0)

    @torch.no_grad()
    def scores(self, model: nn.Module) -> tuple[Tensor, Tensor]:
        """The model's scores ``(deleted [F], held-out [H])``: pair logits on the live graph (or on sampled
        computation graphs), node tasks' :meth:`~graphunlearn.tasks.Task.membership_scores`."""
        ctx, task = self.ctx, self.ctx.task
        if self.forget is None:
            return task.membership_scores(model, ctx.store, ctx.split, ctx.requests)
        was = model.training
        model.eval()
        try:
            pairs = torch.cat([self.forget, self.heldout], 1)
            if ctx.local:
                from ..tasks.local import embed

                z = embed(model, ctx.store, pairs.reshape(-1), ctx.num_neighbors,
                          generator=make_generator(0, ctx.store.device))
                s = task.unit_logits(model, z, torch.arange(pairs.numel(), device=z.device).view(2, -1))
            else:
                s = task.unit_logits(model, task.encode(model, ctx.store), pairs)
        finally:
            model.train(was)
        s = s.reshape(-1)
        return s[:self.forget.size(1)], s[self.forget.size(1):]

    def validate(self, model: nn.Module) -> float | None:
        """The validation score the eligibility reads (:meth:`~graphunlearn.tasks.Task.calibration_validate`:
        the task's ``validate``; recommendation on sampled computation graphs, a sampled AUC)."""
        ctx = self.ctx
        return ctx.task.calibration_validate(model, ctx.store, ctx.split, num_neighbors=ctx.num_neighbors)

    def auroc(self, model: nn.Module) -> float:
        """The degree-matched forget-vs-held-out AUROC :math:`m` of ``model`` (:func:`matched_auroc`)."""
        f, h = self.scores(model)
        cf, ch = self.cov if self.cov is not None else (None, None)
        return matched_auroc(f, h, cf, ch, self.bins)

    def start(self, model: nn.Module) -> bool:
        """Measure the original (the eligibility reference) and check ``model`` at epoch 0; ``True`` when the
        rule already stops there (the deleted units score like held-out ones before any step)."""
        ctx = self.ctx
        original_val = validated(ctx.method, None, lambda: self.validate(ctx.original))
        self.reference = original_val if self.given_reference is None else self.given_reference
        if _same_weights(model, ctx.original):  # the usual start: epoch 0 is the original, measured once
            stop = validated(ctx.method, 0, lambda: self.check(0, model, original_val))
            self.original_auroc = self.checks[-1]["auroc"]
        else:
            self.original_auroc = validated(ctx.method, None, lambda: self.auroc(ctx.original))
            val = validated(ctx.method, 0, lambda: self.validate(model))
            stop = validated(ctx.method, 0, lambda: self.check(0, model, val))
        self._started = (list(self.checks), self._best, self._fallback)
        return stop

    def rewind(self, lr: float) -> None:
        """Record the run just made (with learning rate ``lr``) as an attempt and forget its checkpoints: the
        next run starts again from epoch 0."""
        self.attempts.append({"lr": lr, "stopped_at": self.stopped_at, "checks": self.checks[1:]})
        checks, self._best, self._fallback = self._started
        self.checks, self.stopped_at = list(checks), None

    def eligible(self, val: float | None) -> bool:
        if val is None or math.isnan(val):
            return False
        return self.reference is None or math.isnan(self.reference) or val >= self.reference - self.tolerance

    def check(self, epoch: int, model: nn.Module, val: float | None) -> bool:
        """Record checkpoint ``epoch`` (its validation score ``val``, its :meth:`auroc`) and keep its weights
        when it is the best so far; ``True``: the rule stops here."""
        m = self.auroc(model)
        ok = self.eligible(val)
        self.checks.append({"epoch": epoch, "val": val, "auroc": m, "eligible": ok})
        if ok:
            gap = abs(m - self.target)
            if self._best is None or gap < self._best[0]:
                self._best = (gap, epoch, val, copy.deepcopy(model.state_dict()))
        elif self._best is None and val is not None and not math.isnan(val) and \
                (self._fallback is None or val > self._fallback[1]):
            self._fallback = (epoch, val, copy.deepcopy(model.state_dict()))  # only until one is eligible
        if ok and m <= self.target:
            self.stopped_at = epoch
            return True
        return False

    def restore(self, model: nn.Module) -> dict:
        """Load the kept checkpoint's weights into ``model`` (eval mode) and return :meth:`decision`."""
        kept = self._best[1:] if self._best is not None else self._fallback
        if kept is not None:
            model.load_state_dict(kept[2])
        model.eval()
        return self.decision()

    def decision(self) -> dict:
        """What calibration decided: ``target``, ``tolerance``, ``reference_val`` (the validation score
        eligibility was measured against), ``val_metric`` (what that score measures,
        :meth:`~graphunlearn.tasks.Task.calibration_metric`: ``"AUROC"``, ``"accuracy"``, ``"Recall@20"``,
        ``"sampled AUC"``, ...), ``reference`` (``"original"``: the original's; ``"given"``: the
        ``calibrate_reference`` option's), ``original_auroc``, ``checks`` (epoch, val, auroc, eligible per
        check), ``stopped_at`` (the epoch the rule stopped, ``None``: the budget ran out), ``selected_epoch``,
        ``val_score`` and ``auroc``
        of the checkpoint kept, ``fallback`` (no eligible checkpoint: the best validation one was kept), the
        units read and the computation; ``{"skipped": reason}`` where calibration could not run."""
        if self.reason is not None:
            return {"skipped": self.reason}
        kept = self._best[1:] if self._best is not None else self._fallback
        epoch = kept[0] if kept is not None else None
        auroc = next((c["auroc"] for c in self.checks if c["epoch"] == epoch), None)
        forget = self.forget.size(1) if self.forget is not None else None
        heldout = self.heldout.size(1) if self.heldout is not None else None
        ctx = self.ctx
        return {"target": self.target, "tolerance": self.tolerance, "reference_val": self.reference,
                "val_metric": ctx.task.calibration_metric(ctx.num_neighbors),
                "reference": "original" if self.given_reference is None else "given",
                "original_auroc": self.original_auroc, "checks": list(self.checks),
                "stopped_at": self.stopped_at, "selected_epoch": epoch,
                "val_score": kept[1] if kept is not None else None, "auroc": auroc,
                "fallback": self._best is None, "lr": self.lr, "attempts": list(self.attempts),
                "forget_units": forget, "heldout_units": heldout,
                "matched_on": "endpoint degree" if self.cov is not None else None, "bins": self.bins,
                "computation": self.ctx.computation}
