"""The method contract: typed options, the registry, and what a method is handed (:class:`Context`).

A method is one module under ``graphunlearn/unlearning/algorithms/``: an options dataclass (a subclass of
:class:`Options` whose fields are declared with :func:`option`: default, type, valid range and meaning in
one place; validated in ``__post_init__``), a function ``run(ctx) -> info`` and one :func:`register` call
naming the tasks it supports. Adding a method is those three steps; the contract test
(``tests/unlearning/test_contract.py``) then holds it to the promises every method keeps.
"""

from __future__ import annotations

import builtins
import dataclasses
import numbers
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from .. import checks
from ..models.card import ModelCard
from ..requests import DeletionRequest
from ..store import GraphStore
from ..tasks import Task
from ..tasks import tasks as registered_tasks
from ..tasks.base import affected_nodes
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
    def from_dict(cls, values: dict) -> Options:
        """Options from keyword values; unknown names raise ``ValueError`` listing the valid ones."""
        unknown = sorted(set(values) - set(cls.specs()))
        if unknown:
            raise ValueError(f"unknown option(s) {unknown} for method {cls.method!r}; valid options: {cls.defaults()}")
        return cls(**values)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Method:
    """A registered method: its name, ``run(ctx) -> info``, the tasks it supports, its options type, its
    docstring, whether it may run on a model another method wrapped (``on_wrapped``), and what it needs of
    a model (``requires``, in words; it refuses models that lack it with a ``TypeError`` naming the gap)."""

    name: str
    run: Callable[[Context], dict]
    tasks: tuple[str, ...]
    options_type: type[Options]
    doc: str
    on_wrapped: bool = False
    requires: str = "any model"
    local: bool = False

    def supports(self, task: Task) -> bool:
        """Whether the method runs on ``task`` (``tasks=("*",)``: any task, through the Task contract alone)."""
        return "*" in self.tasks or task.name in self.tasks

    @property
    def options(self) -> dict:
        """Option names and defaults (what the CLI lists and the benchmark's cache key holds)."""
        return self.options_type.defaults()

    @property
    def specs(self) -> dict[str, Option]:
        return self.options_type.specs()

    def check_options(self, options: dict) -> Options:
        """Validated options (names and values) as the method's options dataclass."""
        return self.options_type.from_dict(options)


_REGISTRY: dict[str, Method] = {}


def register(name: str, *, tasks: Sequence[str], options: type[Options] | None = None,
             on_wrapped: bool = False, requires: str = "any model", local: bool = False) -> Callable:
    """Register ``run(ctx) -> info`` as unlearning method ``name`` for ``tasks`` (task names, or ``("*",)`` for
    a method that uses only the :class:`~graphunlearn.tasks.Task` contract and so runs on any task, a
    fourth one included) with the options dataclass
    ``options`` (default: none); ``requires`` says in words what it needs of a model; ``local``: its steps
    compute through :meth:`Context.step_graph`, so it runs on sampled computation graphs when asked
    (``unlearn(num_neighbors=...)``). Refuses a second method of the same name."""
    if not isinstance(name, str) or not name:
        raise TypeError(f"register: name must be a non-empty str, got {name!r}")
    known = sorted(registered_tasks())
    if isinstance(tasks, str) or not tasks or not set(tasks) <= set(known) | {"*"}:
        raise ValueError(f"register({name!r}): tasks must be a non-empty sequence drawn from {known}, got {tasks!r}")
    options = options or type(f"{name}Options", (Options,), {"__annotations__": {}})
    options = dataclass(options) if not dataclasses.is_dataclass(options) else options
    options.method = name
    options()  # the defaults must pass their own checks

    def wrap(fn):
        if name in _REGISTRY:
            raise ValueError(f"unlearning method {name!r} is already registered")
        _REGISTRY[name] = Method(name, fn, tuple(tasks), options, (fn.__doc__ or "").strip(), on_wrapped, requires,
                                 local)
        return fn
    return wrap


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

    def optimise(self, loss_fn: Callable[[int], Tensor], *, epochs: int, lr: float, params=None,
                 select: bool = True, eval_every: int = 1) -> dict:
        """The one loop (:func:`~graphunlearn.train.loop.optimise`) on ``self.model``: ``loss_fn(epoch)`` per
        step, the best validation epoch kept when ``select``. Returns the info a method reports."""
        run: LoopResult = optimise(self.model, lambda epoch, _batch: loss_fn(epoch), epochs=epochs, lr=lr,
                                   params=params,
                                   validate=(lambda: self._task_validate(self.model))
                                   if select and self.split is not None else None,
                                   eval_every=eval_every, select=select, progress=self.progress, desc=self.method,
                                   autocast=self.autocast)
        return {"epochs": run.epochs_run, "selected_epoch": run.best_epoch, "val_score": run.best_val,
                "losses": run.losses, "computation": "full graph" if self.num_neighbors is None
                else f"sampled {self.num_neighbors}"}


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
                with torch.no_grad():
                    ctx._frozen[key] = (model, ctx.encode(model))  # the model kept: its id stays its own
            return ctx._frozen[key][1]
        if frozen:
            with torch.no_grad():
                return self.graph.encode(model, ctx.method)
        return self.graph.encode(model, ctx.method)
