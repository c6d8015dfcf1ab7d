r"""Request streams: erasure requests arrive one after another, and each is unlearned as it comes, with a
policy for when fast unlearning is no longer enough and the model is retrained from scratch instead.

A stream is a sequence of requests (:class:`StreamRequest`, read from a JSON-lines file by
:func:`read_requests`, or requests already registered with the store). :func:`stream` takes them ``batch``
at a time; each group is registered with the store and then unlearned from the model of the step before
(:func:`graphunlearn.unlearn`), or, when the :class:`RetrainPolicy` says so, the model is retrained from
scratch on the live graph (``method="retrain"``), which forgets everything deleted so far at once. Every
step is recorded (:class:`StreamStep`) with its cost, what it forgot, the validation score and its
deletion certificate, and the certificates can be written to a folder as the stream goes.

ScaleGUN (Yi et al., 2024) tracks a removal budget and retrains when it is spent; :class:`RetrainPolicy`
offers that budget (on the deleted training units), a cap on the number of requests unlearned since the last
retrain, and a limit on how far the validation score may drift.
"""

from __future__ import annotations

import itertools
import json
import math
import numbers
import os
from collections.abc import Iterable, Sequence, Sized
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm

from .. import checks
from ..certificate import MIN_KEY_BYTES
from ..models.card import card_of
from ..requests import KINDS, DeletionRequest
from ..store import GraphStore
from ..tasks import Task
from ..unlearning import methods, unlearn
from ..unlearning.core import _computation, resolve_task

__all__ = ["RetrainPolicy", "StreamError", "StreamRequest", "StreamResult", "StreamStep", "read_requests", "stream",
           "write_requests"]

#: the fields each kind of request line holds besides ``kind``, ``arrival`` and ``ref`` (required, optional)
_FIELDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "edges": (("edges",), ()),
    "nodes": (("nodes",), ()),
    "node_features": (("nodes",), ("columns",)),
    "edge_class": (("class",), ()),
    "node_class": (("class",), ()),
}
assert set(_FIELDS) == set(KINDS), "every kind of deletion the store knows has a request line"
_COMMON = ("kind", "arrival", "ref")


# ------------------------------------------------------------------------------------------------ requests
def _id(value, field_name: str, single: bool = False) -> int:
    """A non-negative int id (never a bool, never a float such as ``3.0``: JSON ids are written as integers)."""
    what = "an integer >= 0" if single else "integer ids >= 0"
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"field {field_name!r} must {'be' if single else 'hold'} {what}, got "
                         f"{type(value).__name__}: {value!r:.40}")
    if value < 0:
        raise ValueError(f"field {field_name!r} must {'be' if single else 'hold'} {what}, got {value}")
    return int(value)


def _ids(value, field_name: str) -> tuple[int, ...]:
    if isinstance(value, (str, bytes, dict)) or not isinstance(value, Iterable):
        raise ValueError(f"field {field_name!r} must be a list of integer ids, got {type(value).__name__}: "
                         f"{value!r:.40}")
    out = tuple(_id(v, field_name) for v in value)
    if not out:
        raise ValueError(f"field {field_name!r} is empty: a request must delete something")
    return out


def _pairs(value) -> tuple[tuple[int, int], ...]:
    if isinstance(value, (str, bytes, dict)) or not isinstance(value, Iterable):
        raise ValueError(f"field 'edges' must be a list of [u, v] pairs, got {type(value).__name__}: {value!r:.40}")
    out = []
    for k, pair in enumerate(value):
        if isinstance(pair, (str, bytes, dict)) or not isinstance(pair, Sequence) or len(pair) != 2:
            raise ValueError(f"field 'edges': entry {k} must be a pair [u, v] of node ids, got {pair!r:.40}")
        out.append((_id(pair[0], "edges"), _id(pair[1], "edges")))
    if not out:
        raise ValueError("field 'edges' is empty: a request must delete something")
    return tuple(out)


@dataclass(frozen=True)
class StreamRequest:
    r"""One request of a stream, not yet registered with a store: what a line of a request file says.

    Args:
        kind: ``"edges"``, ``"nodes"``, ``"node_features"``, ``"edge_class"`` or ``"node_class"``.
        edges: for ``"edges"``: the ``(u, v)`` pairs to delete (an undirected store deletes ``(v, u)`` too).
        nodes: for ``"nodes"`` and ``"node_features"``: the node ids.
        columns: for ``"node_features"``: the feature columns (default ``None``: all of them).
        label: for ``"edge_class"`` and ``"node_class"``: the class (``"class"`` in a request file).
        arrival: when the request arrived, in seconds (default ``None``: not said).
        ref: the caller's own id for the request, e.g. a ticket number (default ``None``).
        source: where it was read (``"FILE:LINE"``; default ``""``), named by errors.

    Lists (and tensors) of ids are stored as tuples of ints. Every field is checked on construction.

    Raises:
        ValueError: an unknown kind, the ids the kind needs missing or empty, ids given that the kind does not
            take, ids that are not non-negative integers, an arrival that is not a finite number >= 0, or a
            ``ref`` that is not a string. The message names the field.
    """

    kind: str
    edges: tuple[tuple[int, int], ...] = ()
    nodes: tuple[int, ...] = ()
    columns: tuple[int, ...] | None = None
    label: int | None = None
    arrival: float | None = None
    ref: str | None = None
    source: str = field(default="", compare=False)

    def __post_init__(self):
        if self.kind not in _FIELDS:
            raise ValueError(f"field 'kind': unknown kind {self.kind!r}; one of {', '.join(_FIELDS)}")
        set_ = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731 - frozen dataclass
        for name in ("edges", "nodes", "columns", "label"):  # ids may come as tensors: read them as ints
            if isinstance(getattr(self, name), torch.Tensor):
                set_(name, getattr(self, name).tolist())
        wants = {"edges": self.kind == "edges", "nodes": self.kind in ("nodes", "node_features"),
                 "columns": self.kind == "node_features", "label": self.kind in ("edge_class", "node_class")}
        given = {name: _has(getattr(self, name)) for name in wants}
        extra = [name for name in wants if given[name] and not wants[name]]
        if extra:
            raise ValueError(f"field {_file_name(extra[0])!r}: a {self.kind!r} request takes no {_file_name(extra[0])}")
        if self.kind == "edges":
            set_("edges", _pairs(self.edges))
        if wants["nodes"]:
            set_("nodes", _ids(self.nodes, "nodes"))
        if self.columns is not None:
            set_("columns", _ids(self.columns, "columns"))
        if wants["label"]:
            if self.label is None:
                raise ValueError(f"field 'class': a {self.kind!r} request needs the class to delete")
            set_("label", _id(self.label, "class", single=True))
        if self.arrival is not None:
            if isinstance(self.arrival, bool) or not isinstance(self.arrival, numbers.Real) \
                    or not math.isfinite(self.arrival) or self.arrival < 0:
                raise ValueError(f"field 'arrival' must be a finite number of seconds >= 0, got {self.arrival!r:.40}")
            set_("arrival", float(self.arrival))
        if self.ref is not None and not isinstance(self.ref, str):
            raise ValueError(f"field 'ref' must be a string, got {type(self.ref).__name__}: {self.ref!r:.40}")

    @classmethod
    def from_dict(cls, blob: dict, source: str = "") -> StreamRequest:
        """The request a request-file object describes (``{"kind": "edges", "edges": [[u, v], ...]}``, see
        :func:`read_requests`).

        Raises:
            ValueError: ``blob`` is not an object, lacks ``kind`` or a field its kind needs, holds a field its
                kind does not take, or a bad value (see the class); the message names the field.
        """
        if not isinstance(blob, dict):
            raise ValueError(f"a request must be a JSON object such as {{\"kind\": \"edges\", \"edges\": [[0, 1]]}}, "
                             f"got {type(blob).__name__}")
        if "kind" not in blob:
            raise ValueError("field 'kind' is missing; one of " + ", ".join(_FIELDS))
        kind = blob["kind"]
        if not isinstance(kind, str) or kind not in _FIELDS:
            raise ValueError(f"field 'kind': unknown kind {kind!r}; one of {', '.join(_FIELDS)}")
        required, optional = _FIELDS[kind]
        missing = [f for f in required if f not in blob]
        if missing:
            raise ValueError(f"field {missing[0]!r} is missing: a {kind!r} request needs {', '.join(required)}")
        unknown = sorted(set(blob) - set(required) - set(optional) - set(_COMMON))
        if unknown:
            allowed = ", ".join((*required, *optional, *_COMMON))
            raise ValueError(f"field {unknown[0]!r} is not a field of a {kind!r} request (its fields: {allowed})")
        values = {"edges": blob.get("edges", ()), "nodes": blob.get("nodes", ()), "columns": blob.get("columns"),
                  "label": blob.get("class")}
        if kind == "edges" and blob["edges"] in ((), []):
            raise ValueError("field 'edges' is empty: a request must delete something")
        if kind in ("nodes", "node_features") and blob["nodes"] in ((), []):
            raise ValueError("field 'nodes' is empty: a request must delete something")
        if kind in ("edge_class", "node_class") and blob["class"] is None:
            raise ValueError("field 'class' must be an integer class, got null")
        return cls(kind, arrival=blob.get("arrival"), ref=blob.get("ref"), source=source, **values)

    def to_dict(self) -> dict:
        """This request as a request-file object (what :meth:`from_dict` reads)."""
        out: dict = {"kind": self.kind}
        if self.kind == "edges":
            out["edges"] = [list(p) for p in self.edges]
        if self.kind in ("nodes", "node_features"):
            out["nodes"] = list(self.nodes)
        if self.columns is not None:
            out["columns"] = list(self.columns)
        if self.label is not None:
            out["class"] = self.label
        if self.arrival is not None:
            out["arrival"] = self.arrival
        if self.ref is not None:
            out["ref"] = self.ref
        return out

    def register(self, store: GraphStore) -> DeletionRequest:
        """Register this request with ``store`` (``delete_edges`` with ``layout="pairs"``, ``delete_nodes``,
        ``delete_node_features``, ``delete_edge_class`` or ``delete_node_class``) and return its record.

        Raises:
            DeletionError: the store refuses it (unknown or out-of-range ids, elements already deleted, a class
                the store does not hold); the store is unchanged.
        """
        checks.check_instance("StreamRequest.register", "store", store, GraphStore)
        if self.kind == "edges":
            return store.delete_edges([list(p) for p in self.edges], layout="pairs")
        if self.kind == "nodes":
            return store.delete_nodes(list(self.nodes))
        if self.kind == "node_features":
            return store.delete_node_features(list(self.nodes),
                                              None if self.columns is None else list(self.columns))
        if self.kind == "edge_class":
            return store.delete_edge_class(self.label)
        return store.delete_node_class(self.label)

    def describe(self) -> str:
        """A few words: the kind and how many ids (``"edges (3 pairs)"``)."""
        if self.kind == "edges":
            return f"edges ({len(self.edges)} pairs)"
        if self.kind == "nodes":
            return f"nodes ({len(self.nodes)})"
        if self.kind == "node_features":
            cols = "all columns" if self.columns is None else f"{len(self.columns)} columns"
            return f"node_features ({len(self.nodes)} nodes, {cols})"
        return f"{self.kind} {self.label}"


def _has(value) -> bool:
    """Whether a field was given: not ``None``, and not an empty list."""
    return value is not None and not (isinstance(value, Sized) and len(value) == 0)


def _file_name(name: str) -> str:
    return "class" if name == "label" else name


def read_requests(path: str | os.PathLike) -> list[StreamRequest]:
    r"""The requests of a JSON-lines file, one object per line, in order.

    Each line is one of::

        {"kind": "edges", "edges": [[u, v], ...]}
        {"kind": "nodes", "nodes": [n, ...]}
        {"kind": "node_features", "nodes": [n, ...], "columns": [c, ...]}   # columns optional: all
        {"kind": "edge_class", "class": c}
        {"kind": "node_class", "class": c}

    each with an optional ``"arrival"`` (seconds, a number >= 0; the arrivals given never go backwards) and an
    optional ``"ref"`` (your own id for the request, a string). Ids are store node ids (integers); edges are
    pairs of them. Blank lines and lines starting with ``#`` are skipped.

    Args:
        path: the file.

    Returns:
        A list of :class:`StreamRequest` (their ``source`` is ``"FILE:LINE"``); empty for a file of comments.

    Raises:
        FileNotFoundError: no such file.
        ValueError: a line that is not a JSON object, of an unknown kind, lacking a field its kind needs or
            holding one it does not take, with ids that are not non-negative integers, an arrival earlier than
            the one before, or a ref that is not a string. The message names the file, the line number and the
            field.
    """
    checks.check_instance("read_requests", "path", path, (str, os.PathLike))
    path = Path(path)
    out: list[StreamRequest] = []
    last: tuple[float, int] | None = None  # the latest arrival so far and its line
    with path.open(encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            where = f"{path}:{number}"
            try:
                blob = json.loads(text)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{where}: not valid JSON ({exc.msg} at column {exc.colno})") from None
            try:
                req = StreamRequest.from_dict(blob, source=where)
            except ValueError as exc:
                raise ValueError(f"{where}: {exc}") from None
            if req.arrival is not None:
                if last is not None and req.arrival < last[0]:
                    raise ValueError(f"{where}: field 'arrival' goes backwards: {req.arrival} is earlier than "
                                     f"{last[0]} on line {last[1]} (requests are listed in arrival order)")
                last = (req.arrival, number)
            out.append(req)
    return out


def write_requests(path: str | os.PathLike, requests: Iterable[StreamRequest]) -> Path:
    """Write ``requests`` as a JSON-lines file :func:`read_requests` reads back; returns the path.

    Raises:
        TypeError: an entry that is not a :class:`StreamRequest`.
    """
    checks.check_instance("write_requests", "path", path, (str, os.PathLike))
    lines = []
    for k, r in enumerate(requests):
        checks.check_instance("write_requests", f"requests[{k}]", r, StreamRequest)
        lines.append(json.dumps(r.to_dict()))
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("\n".join(lines) + ("\n" if lines else ""), encoding="utf-8")
    os.replace(tmp, path)  # whole or not at all
    return path


# -------------------------------------------------------------------------------------------------- policy
@dataclass(frozen=True)
class RetrainPolicy:
    r"""When a stream retrains from scratch instead of unlearning. ``RetrainPolicy()`` never retrains.

    Each rule is checked before a step, once its requests are registered; the first that fires makes the step
    a retrain (``method="retrain"`` on the live graph: the new model forgets every request deleted so far),
    and every count starts again from zero after it.

    Args:
        budget: a fraction in (0, 1] of the task's training units (edges for link prediction and
            recommendation, which are the store's edges; training nodes, ``split.train_idx``, for node
            classification). With :math:`u` the units deleted since the last retrain (or the start),
            including this step's, and :math:`U` the units at the start of the stream, the step retrains when
            :math:`u > \text{budget} \cdot U` (ScaleGUN's removal budget, counted in deleted units). Units are
            counted from the requests' records: a deleted node's incident edges count for link prediction,
            feature deletions count no unit (use ``max_requests`` or ``max_val_drop`` for those). Default
            ``None``: no budget.
        max_requests: the number of requests that may be unlearned since the last retrain: a step retrains
            when its requests would take the count above ``max_requests`` (with ``batch=1`` and
            ``max_requests=k``, every ``(k+1)``-th step retrains). Default ``None``: no cap.
        max_val_drop: how far the task's validation score (``task.validate(model, store, split)``, e.g. link
            AUROC, node accuracy) may fall, in absolute points (0.02 = two points), below its value for the
            model at the start of the stream or after the last retrain. Measured after each unlearning; when
            the drop exceeds it, the **next** step retrains (the step that drifted keeps its model and
            certificate, so the record shows the drift; a stream that ends drifted says so in
            :attr:`StreamResult.retrain_due`). Needs ``split=`` and a task with a validation score
            (recommendation has none). Default ``None``.

    Raises:
        TypeError: a field of the wrong type. ValueError: ``budget`` outside (0, 1], ``max_requests`` < 1, or
            ``max_val_drop`` negative or not finite.
    """

    budget: float | None = None
    max_requests: int | None = None
    max_val_drop: float | None = None

    def __post_init__(self):
        where = "RetrainPolicy"
        checks.check_float(where, "budget", self.budget, low=0, high=1, low_open=True, allow_none=True)
        checks.check_int(where, "max_requests", self.max_requests, low=1, allow_none=True)
        checks.check_float(where, "max_val_drop", self.max_val_drop, low=0, allow_none=True)

    @property
    def never(self) -> bool:
        """``True`` when no rule is set (the stream only unlearns)."""
        return self.budget is None and self.max_requests is None and self.max_val_drop is None

    def reason(self, *, units: int, total_units: int, requests: int, drifted: bool) -> str | None:
        """Why the next step retrains, or ``None``: ``"budget"``, ``"max_requests"`` or ``"val_drop"``.

        Args:
            units: training units deleted since the last retrain, this step's included.
            total_units: the training units at the start of the stream.
            requests: requests unlearned since the last retrain, this step's included.
            drifted: the validation score fell more than ``max_val_drop`` after the step before.
        """
        if self.budget is not None and units > self.budget * total_units:
            return "budget"
        if self.max_requests is not None and requests > self.max_requests:
            return "max_requests"
        if self.max_val_drop is not None and drifted:
            return "val_drop"
        return None


# ------------------------------------------------------------------------------------------------- results
@dataclass
class StreamStep:
    """One step of a stream.

    Attributes:
        step: its number, from 1.
        requests: the store's ids of the requests that arrived in this step.
        refs: their ``ref`` (``None`` where none was given, or for requests passed already registered).
        arrival: the latest arrival time among them (``None`` when none was given).
        action: ``"unlearn"`` or ``"retrain"``. reason: why it retrained (see :meth:`RetrainPolicy.reason`).
        method: the method that ran (``"retrain"`` for a retrain).
        forgotten: the ids handed to the method: this step's requests, and for a retrain also every earlier
            request of the store the model had not yet forgotten.
        seconds: the method's wall time. peak_mb: the peak memory it added (MiB).
        cumulative_seconds: the methods' wall time from the first step to this one.
        units: the training units this step's requests deleted. units_since_retrain: deleted since the last
            retrain (0 right after one); the budget's count.
        val_score: the task's validation score after the step (``None`` without a split or a score).
        certificate: the step's deletion certificate (``None`` when ``unlearn`` gave none).
        certificate_path: where it was written (``None`` when not written).
    """

    step: int
    requests: tuple[int, ...]
    refs: tuple[str | None, ...]
    arrival: float | None
    action: str
    reason: str | None
    method: str
    forgotten: tuple[int, ...]
    seconds: float
    peak_mb: float
    cumulative_seconds: float
    units: int
    units_since_retrain: int
    val_score: float | None
    certificate: object | None = None
    certificate_path: Path | None = None

    def to_dict(self) -> dict:
        """The step as plain values (the certificate as its path)."""
        return {"step": self.step, "requests": list(self.requests), "refs": list(self.refs), "arrival": self.arrival,
                "action": self.action, "reason": self.reason, "method": self.method,
                "forgotten": list(self.forgotten), "seconds": self.seconds, "peak_mb": self.peak_mb,
                "cumulative_seconds": self.cumulative_seconds, "units": self.units,
                "units_since_retrain": self.units_since_retrain, "val_score": self.val_score,
                "certificate": None if self.certificate_path is None else str(self.certificate_path)}


@dataclass
class StreamResult:
    """What a stream did: the final ``model`` (it has forgotten every request of the stream), the ``steps``
    (:class:`StreamStep`), ``total_seconds`` (the methods' wall time summed over the steps), ``total_units``
    (the training units at the start, the budget's denominator), the ``policy``, and ``retrain_due``: the
    reason the next request would be met by a retrain (``"val_drop"`` after a drifting last step), else
    ``None``. ``state`` holds what a later ``stream(result.model, ..., resume=result)`` continues from (the
    policy's counts since the last retrain, the validation baseline, the anchor, the requests seen)."""

    model: nn.Module
    steps: list[StreamStep] = field(default_factory=list)
    total_seconds: float = 0.0
    total_units: int = 0
    policy: RetrainPolicy = field(default_factory=RetrainPolicy)
    retrain_due: str | None = None
    state: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def retrains(self) -> list[int]:
        """The numbers of the steps that retrained."""
        return [s.step for s in self.steps if s.action == "retrain"]

    @property
    def requests(self) -> tuple[int, ...]:
        """The store's ids of every request of the stream, in order."""
        return tuple(i for s in self.steps for i in s.requests)

    def rows(self) -> list[dict]:
        """One dict per step (:meth:`StreamStep.to_dict`)."""
        return [s.to_dict() for s in self.steps]

    def table(self) -> str:
        """The steps as a plain-text table: step, requests, refs, action, method, seconds, cumulative
        seconds, peak MiB, units deleted and since the last retrain, validation score."""
        head = ["step", "requests", "refs", "action", "method", "seconds", "cumulative", "peak_mb", "units",
                "since_retrain", "val"]
        rows = []
        for s in self.steps:
            refs = ",".join(r for r in s.refs if r is not None)
            action = s.action if s.reason is None else f"{s.action} ({s.reason})"
            rows.append([str(s.step), _id_text(s.requests), _short(refs or "-"), action, s.method,
                         f"{s.seconds:.3f}", f"{s.cumulative_seconds:.3f}", f"{s.peak_mb:.0f}", str(s.units),
                         str(s.units_since_retrain), "-" if s.val_score is None else f"{s.val_score:.4f}"])
        widths = [max(len(h), *(len(r[k]) for r in rows)) if rows else len(h) for k, h in enumerate(head)]
        lines = ["  ".join(h.ljust(w) for h, w in zip(head, widths)).rstrip()]
        lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
        retrains = self.retrains
        lines.append(f"{len(self.steps)} steps, {len(self.requests)} requests, {len(retrains)} retrains"
                     f"{' (steps ' + _id_text(retrains) + ')' if retrains else ''}; methods' time "
                     f"{self.total_seconds:.3f} s" + (f"; a retrain is due ({self.retrain_due})"
                                                      if self.retrain_due else ""))
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (f"StreamResult(steps={len(self.steps)}, requests={len(self.requests)}, retrains={self.retrains}, "
                f"total_seconds={self.total_seconds:.3f})")


def _id_text(ids: Sequence[int]) -> str:
    ids = list(ids)
    if len(ids) > 2 and ids == list(range(ids[0], ids[0] + len(ids))):
        return f"{ids[0]}-{ids[-1]}"
    return _short(",".join(map(str, ids)))


def _short(text: str, width: int = 24) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


class StreamError(ValueError):
    """A stream stopped at a request it could not register, or at a step the method refused.

    Attributes:
        partial: the :class:`StreamResult` of the steps completed before (their models, certificates and the
            store's state stand).
        position: the failing request's position in the stream (from 1).
        ref: its ``ref`` (``None`` when it had none).
        registered: requests of the failing step that were registered with the store but not unlearned (the
            store holds their deletions; unlearn them, e.g. by continuing the stream with them).
    """

    def __init__(self, message: str, partial: StreamResult, position: int, ref: str | None = None,
                 registered: tuple[DeletionRequest, ...] = ()):
        super().__init__(message)
        self.partial = partial
        self.position = position
        self.ref = ref
        self.registered = registered


# ------------------------------------------------------------------------------------------------- stream
def _units(task: Task, split, request: DeletionRequest) -> int:
    """Training units ``request`` deleted: edges for a pairwise task, training nodes otherwise."""
    if task.pairwise:
        return int(request.edge_ids.numel())
    nodes = request.node_ids
    train = getattr(split, "train_idx", None)
    if train is None or nodes.numel() == 0:
        return int(nodes.numel())
    return int(torch.isin(nodes, train.to(nodes.device)).sum())


def _total_units(task: Task, store: GraphStore, split) -> int:
    if task.pairwise:
        return store.num_edges
    train = getattr(split, "train_idx", None)
    return store.num_nodes if train is None else int(train.numel())


def _validate(task: Task, model: nn.Module, store: GraphStore, split) -> float | None:
    if split is None:
        return None
    score = task.validate(model, store, split)
    return None if score is None else float(score)


def _reference_on(model: nn.Module, split, method: str, options: dict) -> str | list[int] | None:
    """What a calibrating step's eligibility is measured on: ``None`` when the steps do not calibrate,
    ``"whole graph"``, or the fanouts of the sampled computation graphs (``unlearn``'s resolution of
    ``num_neighbors`` for ``model``)."""
    spec = methods()[method]
    if split is None or not options.get("calibrate") or "calibrate_reference" not in spec.options:
        return None
    fanout = _computation("stream", spec, card_of(model), options.get("num_neighbors"))
    return "whole graph" if fanout is None else fanout


def _calibration_score(task: Task, model: nn.Module, store: GraphStore, split, method: str, options: dict,
                       baseline: float | None) -> float | None:
    """The score a calibrating step measures eligibility against when ``model`` anchors the stream: its
    :meth:`~graphunlearn.tasks.Task.calibration_validate` on the computation the steps run
    (:func:`_reference_on`: the whole graph, where it is ``baseline``, or sampled computation graphs, where
    recommendation's score is a sampled AUC rather than Recall@20). ``None`` when the steps do not
    calibrate."""
    on = _reference_on(model, split, method, options)
    if on is None or on == "whole graph":
        return None if on is None else baseline
    score = task.calibration_validate(model, store, split, num_neighbors=on)
    return None if score is None else float(score)


def _resumed_reference(where: str, state: dict, model: nn.Module, split, method: str, options: dict,
                       baseline: float | None) -> float | None:
    """The calibration reference a resumed stream continues with: ``baseline`` on the whole graph (the
    anchoring model's validation score, which the state keeps), the state's own where it was measured on the
    same sampled computation graphs (``None`` where calibration found nothing to measure there, as the
    resumed stream did).

    Raises:
        ValueError: the steps calibrate on sampled computation graphs but the resumed stream measured its
            reference on another computation, or not at all (it did not calibrate, or ran before the
            reference was kept); the anchoring model is gone, so it cannot be measured again.
    """
    on = _reference_on(model, split, method, options)
    if on is None or on == "whole graph":
        return None if on is None else baseline
    was = state.get("reference_on", "no record (a stream from before the reference was kept)")
    if was != on:  # measured on these graphs but found nothing to measure (calibration skipped): None resumes
        was = "nothing (it did not calibrate)" if was is None else was
        raise ValueError(f"{where}: these options calibrate on sampled computation graphs (fanouts {on}), but the "
                         f"resumed stream measured its calibration reference on {was}; the model it anchors on is "
                         "gone, so resume with the options the stream ran with")
    return state["reference"]


def stream(model: nn.Module, store: GraphStore, requests, *, split=None, method: str = "d2dgn",
           task: str | Task | None = None, batch: int = 1, policy: RetrainPolicy | None = None, seed: int = 0,
           certificates: str | os.PathLike | None = None, key: bytes | str | None = None, progress: bool = False,
           from_anchor: bool = False, resume: StreamResult | None = None, **options) -> StreamResult:
    r"""Apply a stream of deletion requests to ``model``, one unlearning per ``batch`` requests, retraining
    from scratch instead whenever ``policy`` says so.

    Step :math:`k` (from 1) takes the next ``batch`` requests, registers them with ``store`` and runs
    ``unlearn(model_{k-1}, store, group, method, seed=seed + k, **options)``; when the policy fires it runs
    ``unlearn(model_{k-1}, store, pending, "retrain", seed=seed + k)`` instead, where ``pending`` is every
    request of the store that :math:`\text{model}_{k-1}`'s card does not list as forgotten (the group included):
    a model retrained on the live graph has forgotten all of them. :math:`\text{model}_k` is the result. The
    final model's card therefore lists every request of the stream as forgotten (and, once a step has
    retrained, every request of the store before it too).

    Args:
        model: the trained model to start from; not modified.
        store: the store the requests are registered with (each group is registered as its step begins).
        requests: :class:`StreamRequest` objects, requests already registered with ``store``
            (:class:`~graphunlearn.DeletionRequest`) or both, as any iterable (read lazily, so a generator can
            feed requests as they arrive), or the path of a request file (:func:`read_requests`).
        split: the task's split, for validation scores and for retraining (node classification and
            recommendation need it to retrain). Default ``None``.
        method: the unlearning method of ordinary steps (default ``"d2dgn"``). A method that wraps the model
            (``gnndelete``) cannot unlearn its own output again, so it suits ``batch`` covering the whole stream, or
            ``from_anchor=True``.
        task: a task name or :class:`~graphunlearn.tasks.Task` (default: the model card's, else the split's).
        batch: requests per step (default 1).
        policy: when to retrain (default ``None``: ``RetrainPolicy()``, never).
        seed: step :math:`k` runs with seed ``seed + k`` (default 0).
        certificates: a folder to write each step's certificate into, as ``step-0001.json`` and its Markdown
            rendering ``step-0001.md`` (default ``None``: not written). Created with the first certificate.
        key: sign each step's certificate with HMAC-SHA256 under this key (at least 16 bytes; see
            :func:`graphunlearn.certificate.load_key`) before it is written (default ``None``: unsigned).
        progress: show a progress bar over the steps, and the training bar of retraining steps (default
            ``False``).
        from_anchor: each unlearning step starts again from the *anchor* (the stream's first model, or the
            model of its last retraining step) and unlearns every request since it, the step's group
            included: ``unlearn(anchor, store, pending + group, method, ...)``, ``pending`` chosen as a
            retraining step chooses it (every request of the store that the anchor's card does not list as
            forgotten). A step then carries no error from earlier steps (an unlearned model is never
            unlearned again, so a wrapping method such as ``gnndelete`` can serve every step), and its forget
            set grows with the requests since the anchor. Default ``False``: step :math:`k` unlearns its own
            group from :math:`\text{model}_{k-1}`.
        resume: the :class:`StreamResult` of an earlier call to continue (default ``None``: a new stream): the
            policy's counts since the last retrain, the validation baseline (and so the calibration anchor),
            the anchor model, the requests seen, the step numbers (so the seeds ``seed + k``) and the position
            in the stream carry over, so that a stream fed in pieces behaves as one (pass the same ``seed``).
            ``model`` must be ``resume.model`` and ``from_anchor`` as it was; a :class:`StreamError`'s
            ``.partial`` resumes too, its first step also unlearning the requests the failed step registered.
            ``total_seconds`` and ``cumulative_seconds`` count the steps of this call.
        **options: ``method``'s options, checked before anything is registered (a retrain step uses the
            training recipe on the model's card). With ``calibrate=True`` and no ``calibrate_reference``,
            each step's calibration measures eligibility against the calibration score of the stream's last
            retrained model (the first model until a step retrains), measured when it took over on the
            computation the steps run (its validation score; on sampled computation graphs the task's
            ``calibration_validate``, for recommendation a sampled AUC), so that ``calibrate_tolerance`` bounds
            the stream's cumulative loss of validation utility, not each request's (``docs/calibration.md``).

    Returns:
        A :class:`StreamResult`: the final model, the steps, the total time.

    Raises:
        TypeError: an argument of the wrong type, or options the method refuses by type.
        ValueError: an unknown method or task, a method that does not support the task, options out of range,
            ``max_val_drop`` without a split or a task with a validation score, an empty stream, or a
            ``resume`` whose model is not ``model`` or whose ``from_anchor`` differs.
        StreamError: (a ``ValueError``) a request that cannot be registered (bad ids, already deleted, another
            store's record, given twice) or a step the method refuses (``ValueError``, ``TypeError`` or
            ``FloatingPointError`` from ``unlearn``); the message names the request's position in the stream
            (from 1), its ``ref`` and its source line, and ``.partial`` holds the steps done before.
    """
    where = "stream"
    checks.check_instance(where, "model", model, nn.Module)
    checks.check_instance(where, "store", store, GraphStore)
    checks.check_instance(where, "method", method, str)
    checks.check_int(where, "batch", batch, low=1)
    checks.check_instance(where, "policy", policy, RetrainPolicy, allow_none=True)
    checks.check_seed(where, seed)
    checks.check_instance(where, "certificates", certificates, (str, os.PathLike), allow_none=True)
    checks.check_instance(where, "key", key, (bytes, bytearray, str), allow_none=True)
    if key is not None and len(key.encode() if isinstance(key, str) else key) < MIN_KEY_BYTES:
        raise ValueError(f"{where}: the signing key is too short; use at least {MIN_KEY_BYTES} bytes")
    checks.check_bool(where, "progress", progress)
    registry = methods()
    if method not in registry:
        raise ValueError(f"{where}: unknown unlearning method {method!r}; registered: {sorted(registry)}")
    spec = registry[method]
    spec.check_options(options)  # bad options fail here, before any request is registered
    task_obj = resolve_task(model, task, split, where)
    if not spec.supports(task_obj):
        raise ValueError(f"{where}: method {method!r} supports tasks {spec.tasks}, not {task_obj.name!r}")
    policy = policy or RetrainPolicy()
    if isinstance(requests, (str, os.PathLike)):
        requests = read_requests(requests)
    if isinstance(requests, (DeletionRequest, StreamRequest)) or not isinstance(requests, Iterable):
        raise TypeError(f"{where}: requests must be an iterable of StreamRequest or DeletionRequest, or the path of "
                        f"a request file, got {type(requests).__name__}")
    checks.check_bool(where, "from_anchor", from_anchor)
    checks.check_instance(where, "resume", resume, StreamResult, allow_none=True)
    state = dict(resume.state) if resume is not None else {}
    if resume is not None and (resume.model is not model or not state):
        raise ValueError(f"{where}: resume continues the stream that returned it: pass its model (resume.model)")
    if resume is not None and state["from_anchor"] != from_anchor:
        raise ValueError(f"{where}: the resumed stream ran with from_anchor={state['from_anchor']}, not {from_anchor}")
    split = task_obj.to_device(split, store.device)
    baseline = state["baseline"] if resume is not None else _validate(task_obj, model, store, split)
    reference = _resumed_reference(where, state, model, split, method, options, baseline) if resume is not None \
        else _calibration_score(task_obj, model, store, split, method, options, baseline)
    if policy.max_val_drop is not None and baseline is None:
        raise ValueError(f"{where}: policy.max_val_drop needs a validation score, but "
                         + ("no split was given (pass split=)" if split is None
                            else f"the {task_obj.name!r} task gives none"))
    total = len(requests) if isinstance(requests, Sized) else None
    runner = _Runner(store, task_obj, split, method, options, policy, seed, progress,
                     None if certificates is None else Path(certificates), key,
                     StreamResult(model, total_units=resume.total_units if resume is not None
                                  else _total_units(task_obj, store, split), policy=policy), baseline,
                     reference, anchor=state.get("anchor", model) if from_anchor else None)
    if resume is not None:
        runner.units, runner.unlearned, runner.drifted = state["units"], state["unlearned"], state["drifted"]
        runner.seen, runner.offset, runner.position = set(state["seen"]), state["steps"], state["position"]
        runner.carry = list(state["carry"])
    start = runner.position
    it = iter(requests)
    bar = tqdm(total=None if total is None else math.ceil(total / batch), desc="stream", unit="step",
               disable=not progress, leave=False)
    try:
        while chunk := list(itertools.islice(it, batch)):
            step = runner.step(chunk)
            bar.update(1)
            bar.set_postfix({"action": step.action, "s": f"{step.seconds:.2f}"})
    finally:
        bar.close()
        runner.result.state = runner.state()  # also on a StreamError: its .partial can be resumed
    if runner.position == start:
        raise ValueError(f"{where}: no request given: the stream is empty")
    runner.result.retrain_due = "val_drop" if runner.drifted else None
    return runner.result


class _Runner:
    """A stream's state between steps: the policy's counts since the last retrain, the validation baseline,
    the requests seen, the position in the stream, and the result so far."""

    def __init__(self, store: GraphStore, task: Task, split, method: str, options: dict, policy: RetrainPolicy,
                 seed: int, progress: bool, folder: Path | None, key, result: StreamResult,
                 baseline: float | None, reference: float | None, anchor: nn.Module | None = None):
        self.store, self.task, self.split, self.method, self.options = store, task, split, method, options
        self.policy, self.seed, self.progress, self.folder, self.key = policy, seed, progress, folder, key
        self.result = result
        self.baseline = baseline
        self.reference = reference  # calibrate_reference: the anchoring model's score on the steps' computation
        self.units = 0  # training units deleted since the last retrain (the budget's count)
        self.unlearned = 0  # requests unlearned since the last retrain
        self.drifted = False  # the last unlearning fell more than max_val_drop below the baseline
        self.position = 0  # requests taken from the stream so far
        self.seen: set[int] = set()
        self.anchor = anchor  # from_anchor: the model every unlearning step starts from (None: the last model)
        self.offset = 0  # steps of the streams this one resumes: step numbers (and seeds) continue from them
        self.carry: list[DeletionRequest] = []  # registered by a failed step, not unlearned: the next step's

    def state(self) -> dict:
        """What ``stream(..., resume=result)`` continues from (:attr:`StreamResult.state`)."""
        return {"baseline": self.baseline, "reference": self.reference,
                "reference_on": _reference_on(self.result.model, self.split, self.method, self.options),
                "units": self.units,
                "unlearned": self.unlearned,
                "drifted": self.drifted, "seen": frozenset(self.seen), "anchor": self.anchor,
                "from_anchor": self.anchor is not None, "steps": self.offset + len(self.result.steps),
                "position": self.position, "carry": tuple(self.carry)}

    def _pending(self, model: nn.Module, group: list[DeletionRequest]) -> list[DeletionRequest]:
        """The store's live requests that ``model``'s card does not list as forgotten, ``group`` excluded."""
        card = card_of(model)
        skip = set(card.forgotten if card else ()) | {r.id for r in group}
        return [r for r in self.store.requests if not r.redacted and r.id not in skip]

    def _anchored(self, options: dict) -> dict:
        """``options`` with ``calibrate_reference`` set to the last retrained (or first) model's calibration
        score (:func:`_calibration_score`) when the method calibrates, declares that option and the caller did
        not set it."""
        if not options.get("calibrate") or options.get("calibrate_reference") is not None \
                or self.reference is None or "calibrate_reference" not in methods()[self.method].options:
            return options
        return {**options, "calibrate_reference": float(self.reference)}

    def step(self, chunk: list) -> StreamStep:
        """Register ``chunk``, then unlearn it or retrain; append the step to the result and return it."""
        number = self.offset + len(self.result.steps) + 1
        # requests a failed step registered but did not unlearn (a resumed stream's first step takes them)
        group: list[DeletionRequest] = list(self.carry)
        refs: list[str | None] = [None] * len(group)
        arrivals: list[float] = []
        self.carry = []
        for item in chunk:
            self.position += 1
            try:
                req = _register(item, self.store, self.seen)
            except (ValueError, TypeError) as exc:
                self.carry = list(group)
                raise StreamError(_stop_message(self.position, item, number, exc, group), self.result,
                                  self.position, getattr(item, "ref", None), tuple(group)) from exc
            self.seen.add(req.id)
            group.append(req)
            refs.append(getattr(item, "ref", None))
            if getattr(item, "arrival", None) is not None:
                arrivals.append(item.arrival)
        units = sum(_units(self.task, self.split, r) for r in group)
        reason = self.policy.reason(units=self.units + units, total_units=self.result.total_units,
                                    requests=self.unlearned + len(group), drifted=self.drifted)
        model = self.result.model
        if reason is None and self.anchor is not None:  # from the anchor: every request since it, again
            model = self.anchor
            action, method, options = "unlearn", self.method, self._anchored(self.options)
            handed = self._pending(model, group) + group
        elif reason is None:
            action, method, handed, options = "unlearn", self.method, list(group), self._anchored(self.options)
        else:
            action, method, handed, options = "retrain", "retrain", self._pending(model, group) + group, {}
        try:
            out = unlearn(model, self.store, handed, method, split=self.split, task=self.task,
                          seed=self.seed + number, progress=self.progress and action == "retrain", **options)
        except (ValueError, TypeError, FloatingPointError) as exc:
            self.carry = list(group)
            first = self.position - len(group) + 1
            named = [r for r in refs if r is not None]
            raise StreamError(f"stream stopped at step {number} (requests {first}..{self.position} of the stream"
                              + (f", refs {named}" if named else "") + f"): {method} refused: "
                              + " ".join(str(exc).split()) + f"; requests {[r.id for r in group]} were registered "
                              f"but not unlearned; {_before(number)}",
                              self.result, first, refs[0], tuple(group)) from exc
        val = _validate(self.task, out.model, self.store, self.split)
        if action == "retrain":
            self.units, self.unlearned, self.baseline, self.drifted = 0, 0, val, False
            self.reference = _calibration_score(self.task, out.model, self.store, self.split, self.method,
                                                self.options, val)
            if self.anchor is not None:
                self.anchor = out.model
        else:
            self.units += units
            self.unlearned += len(group)
            if self.policy.max_val_drop is not None:
                self.drifted = val is not None and self.baseline - val > self.policy.max_val_drop
        cert = getattr(out, "certificate", None)
        if cert is not None and self.key is not None:
            cert.sign(self.key)
        cert_path = None
        if self.folder is not None and cert is not None:
            self.folder.mkdir(parents=True, exist_ok=True)  # made with the first certificate: none empty on failure
            cert_path = cert.save(self.folder / f"step-{number:04d}.json")  # and its Markdown page, step-NNNN.md
        total = self.result.total_seconds + out.seconds
        step = StreamStep(step=number, requests=tuple(r.id for r in group), refs=tuple(refs),
                          arrival=max(arrivals) if arrivals else None, action=action, reason=reason, method=method,
                          forgotten=tuple(sorted(r.id for r in handed)), seconds=out.seconds, peak_mb=out.peak_mb,
                          cumulative_seconds=total, units=units, units_since_retrain=self.units, val_score=val,
                          certificate=cert, certificate_path=cert_path)
        self.result.steps.append(step)
        self.result.model = out.model
        self.result.total_seconds = total
        return step


def _register(item, store: GraphStore, seen: set[int]) -> DeletionRequest:
    if isinstance(item, StreamRequest):
        return item.register(store)
    if isinstance(item, DeletionRequest):
        req = store.check_request(item)
        if req.id in seen:
            raise ValueError(f"request {req.id} ({req.kind}) was given twice in this stream")
        return req
    raise TypeError(f"a stream holds StreamRequest or DeletionRequest objects, got {type(item).__name__}: "
                    f"{item!r:.60}")


def _stop_message(position: int, item, step: int, exc: BaseException, group: list[DeletionRequest]) -> str:
    ref = getattr(item, "ref", None)
    source = getattr(item, "source", "")
    what = item.describe() if isinstance(item, StreamRequest) else type(item).__name__
    parts = [f"stream stopped at request {position} ({what}"
             + (f", ref {ref!r}" if ref is not None else "") + (f", {source}" if source else "") + f"), step {step}: "
             + " ".join(str(exc).split())]
    if group:
        parts.append(f"requests {[r.id for r in group]} of this step were registered but not unlearned")
    parts.append(_before(step))
    return "; ".join(parts)


def _before(step: int) -> str:
    if step == 1:
        return "no step had run"
    return f"the {step - 1} step{'s' if step > 2 else ''} before stand (StreamError.partial)"
