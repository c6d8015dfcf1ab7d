"""The record of one deletion request and the views a store hands out."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

import torch
from torch import Tensor

KINDS = ("edges", "nodes", "edge_class", "node_features", "node_class")


def _empty() -> Tensor:
    return torch.empty(0, dtype=torch.long, device="cpu")


def _cpu(t: Tensor | None) -> Tensor | None:
    return None if t is None else t.cpu()


@dataclass(frozen=True, eq=False)
class DeletionRequest:
    """One request registered with a :class:`~graphunlearn.GraphStore`.

    Attributes:
        id: the store's sequence number for the request (0, 1, 2, ...).
        kind: one of ``"edges"``, ``"nodes"``, ``"edge_class"``, ``"node_features"``, ``"node_class"``.
        node_ids: nodes the request deletes (with their features and incident edges).
        edge_ids: edges the request deletes, in the store's edge numbering (``store.edge_index``),
            including the live incident edges of deleted nodes.
        feature_node_ids: nodes whose features the request deletes (``kind == "node_features"``).
        feature_columns: the deleted feature columns, or ``None`` for all of them.
        params: the request's arguments that are not ids (for example ``{"edge_class": 3}``).
        hops: ``hops[h]`` holds the nodes at distance exactly ``h`` from the deleted elements (``hops[0]``:
            endpoints of deleted edges, deleted nodes, nodes whose features were deleted), measured on the
            live graph just before the request, along the direction messages flow.
        subgraph_edge_ids: the edges of the enclosing subgraph: edges live before the request whose two
            endpoints both lie within ``num_hops`` of the deleted elements (GNNDelete's subgraph of Df;
            it includes the deleted edges themselves).

        ``hops`` and ``subgraph_edge_ids`` are computed when first read, not when the request is registered
        (so registering costs time proportional to the request), and cached on the record. They are exact
        whenever they are read: an edge was live just before request ``k`` if it is live now or was deleted
        by request ``k`` or a later one, which the store's ``edge_deleted_by`` says. ``neighbourhood_known``
        tells whether they have been computed.
        created: UNIX time at which the request was registered.
        redacted: ``True`` once ``store.compact()`` erased the ids this record held.
        store_uid: the unique id of the store that registered the request (``GraphStore.uid``), so that a
            request is never taken for another store's.

    A store's requests hold their tensors on the store's device (``store.device``); ``store.to(device)``
    replaces them with moved copies (:meth:`to`). Their journal payloads (:meth:`to_payload`) are CPU copies.
    """

    id: int
    kind: str
    node_ids: Tensor = field(default_factory=_empty)
    edge_ids: Tensor = field(default_factory=_empty)
    feature_node_ids: Tensor = field(default_factory=_empty)
    feature_columns: Tensor | None = None
    params: dict = field(default_factory=dict)
    created: float = 0.0
    redacted: bool = False
    store_uid: str = ""
    # the neighbourhood, once known; else _lazy(self) computes it (the store's, bound weakly)
    _hops: tuple[Tensor, ...] | None = field(default=None, repr=False)
    _subgraph: Tensor | None = field(default=None, repr=False)
    _lazy: Callable[[DeletionRequest], tuple[tuple[Tensor, ...], Tensor]] | None = field(default=None, repr=False)

    def __post_init__(self):
        if self.redacted and self._hops is None:  # a compacted record has no neighbourhood left to compute
            object.__setattr__(self, "_hops", ())
            object.__setattr__(self, "_subgraph", self.edge_ids[:0])

    def _known(self) -> None:
        if self._hops is not None:
            return
        if self._lazy is None:
            raise RuntimeError(f"request {self.id}: its neighbourhood is unknown and no store can compute it")
        hops, sub = self._lazy(self)
        object.__setattr__(self, "_hops", tuple(hops))
        object.__setattr__(self, "_subgraph", sub)

    def __getstate__(self) -> dict:
        """For pickling (``torch.save``, worker processes): the neighbourhood is computed first, and the link
        to the store (a closure) is left out."""
        if self._hops is None and self._lazy is not None:
            self._known()
        state = dict(self.__dict__)
        state["_lazy"] = None
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)

    @property
    def hops(self) -> tuple[Tensor, ...]:
        self._known()
        return self._hops

    @property
    def subgraph_edge_ids(self) -> Tensor:
        self._known()
        return self._subgraph

    @property
    def neighbourhood_known(self) -> bool:
        """Whether ``hops`` and ``subgraph_edge_ids`` have been computed (they are, on first read)."""
        return self._hops is not None

    @property
    def num_hops(self) -> int:
        return len(self.hops) - 1

    def affected_nodes(self, hop: int | None = None) -> Tensor:
        """Sorted ids of the nodes within ``hop`` hops (default: the store's ``num_hops``) of the deleted elements."""
        if self.redacted:
            raise RuntimeError(f"request {self.id} was compacted: its ids were erased from the store")
        if hop is None:
            hop = self.num_hops
        if type(hop) is not int:
            raise TypeError(f"hop must be an int or None, got {type(hop).__name__}: {hop!r:.40}")
        if not 0 <= hop <= self.num_hops:
            raise ValueError(f"hop={hop} is outside 0..{self.num_hops} (the store's num_hops when request "
                             f"{self.id} was registered)")
        return torch.sort(torch.cat(self.hops[: hop + 1])).values

    def affected_edges(self) -> Tensor:
        """Edge ids of the enclosing subgraph (see ``subgraph_edge_ids``)."""
        return self.subgraph_edge_ids

    def summary(self) -> str:
        parts = [f"request {self.id}: {self.kind}"]
        if self.params:
            parts.append(", ".join(f"{k}={v}" for k, v in self.params.items()))
        if self.redacted:
            parts.append("(compacted: ids erased)")
        else:
            parts.append(f"{self.node_ids.numel()} nodes, {self.edge_ids.numel()} edges")
            if self.feature_node_ids.numel():
                cols = "all" if self.feature_columns is None else self.feature_columns.numel()
                parts.append(f"features of {self.feature_node_ids.numel()} nodes ({cols} columns)")
            if self.neighbourhood_known:  # never computed for a summary: that is the lazy part's cost
                sizes = "/".join(str(h.numel()) for h in self.hops)
                parts.append(f"affected per hop {sizes}")
        return "; ".join(parts)

    def __repr__(self) -> str:
        return f"DeletionRequest({self.summary()})"

    def to(self, device: torch.device | str) -> DeletionRequest:
        """This record with its tensors on ``device`` (itself when they are there already)."""
        device = torch.device(device)
        tensors = (self.node_ids, self.edge_ids, self.feature_node_ids, self.feature_columns, self._subgraph,
                   *(self._hops or ()))
        if all(t is None or t.device == device for t in tensors):
            return self

        def move(t: Tensor | None) -> Tensor | None:
            return None if t is None else t.to(device)

        return replace(self, node_ids=move(self.node_ids), edge_ids=move(self.edge_ids),
                       feature_node_ids=move(self.feature_node_ids), feature_columns=move(self.feature_columns),
                       _hops=None if self._hops is None else tuple(move(h) for h in self._hops),
                       _subgraph=move(self._subgraph))

    def to_payload(self) -> dict:
        """Tensors, lists and primitives only, so it loads back with ``weights_only=True``. The tensors are CPU
        copies (the record itself when it is on the CPU), so what is serialised from it is device-independent."""
        return {
            "node_ids": _cpu(self.node_ids), "edge_ids": _cpu(self.edge_ids),
            "feature_node_ids": _cpu(self.feature_node_ids), "feature_columns": _cpu(self.feature_columns),
            "params": dict(self.params),
            # derived data, recomputable exactly from the store: journaled only once known (None before)
            "hops": None if self._hops is None else [_cpu(h) for h in self._hops],
            "subgraph_edge_ids": _cpu(self._subgraph),
        }

    @classmethod
    def from_payload(cls, req_id: int, kind: str, created: float, payload: dict | None,
                     store_uid: str = "", device: torch.device | str = "cpu",
                     lazy: Callable | None = None) -> DeletionRequest:
        """The record a payload (:meth:`to_payload`) describes, its tensors on ``device`` (default CPU);
        ``payload=None``: a redacted record (the request was compacted). ``lazy`` computes the neighbourhood
        when the payload holds none."""
        if payload is None:
            return cls(id=req_id, kind=kind, created=created, redacted=True, store_uid=store_uid).to(device)
        hops = payload["hops"]
        return cls(id=req_id, kind=kind, created=created, node_ids=payload["node_ids"],
                   edge_ids=payload["edge_ids"], feature_node_ids=payload["feature_node_ids"],
                   feature_columns=payload["feature_columns"], params=payload["params"],
                   _hops=None if hops is None else tuple(hops), _subgraph=payload["subgraph_edge_ids"],
                   store_uid=store_uid, _lazy=lazy).to(device)


@dataclass(frozen=True)
class ForgetSet:
    """What a set of requests removed, in the store's ids.

    Shapes: ``node_ids`` [K], ``edge_ids`` [M], ``edge_index`` [2, M] (endpoints of the deleted edges, one
    direction per edge for undirected graphs), ``feature_entries``: ``(node_ids, columns or None)`` pairs.
    """

    node_ids: Tensor
    edge_ids: Tensor
    edge_index: Tensor
    feature_entries: tuple[tuple[Tensor, Tensor | None], ...]


@dataclass(frozen=True)
class LiveGraph:
    """The store's live structure for masked message passing (no copy of the graph).

    The tensors are the store's own caches, on the store's device, and change in place when a deletion
    arrives; they are meant to be read by the deletion-aware layers (``graphunlearn.nn``), not modified. A view
    is invalidated by ``store.compact()`` and by ``store.to()`` onto another device: take a new one.

    Shapes: ``rowptr`` [N + 1], ``col`` / ``mask`` / ``edge_weight`` [S] (CSR by destination: slot ``s`` of
    row ``i`` carries the message ``col[s] -> i``), ``gcn_deg`` [N] (1 + live weighted in-degree),
    ``rowptr_t`` / ``col_t`` / ``mask_t`` the transpose (CSC; the same tensors for undirected graphs),
    ``transpose`` what ``graphunlearn.kernels.masked_spmm`` needs for its backward (``"symmetric"`` for
    undirected graphs, else ``(rowptr_t, col_t, perm_t)``),
    ``x`` [N, F] with deleted nodes and feature values zeroed, ``node_mask`` [N]; ``has_self_loops``:
    whether the graph stores any self loop, live or not (``False`` lets GCN use ``gcn_deg`` as it is);
    ``edge_index`` [2, S_live]: the live edges (both directions when undirected) as PyTorch Geometric layers
    take them, built once per request by the store and bound to this view (:func:`bind`).
    """

    num_nodes: int
    rowptr: Tensor
    col: Tensor
    mask: Tensor
    edge_weight: Tensor | None
    gcn_deg: Tensor
    rowptr_t: Tensor
    col_t: Tensor
    mask_t: Tensor
    transpose: str | tuple[Tensor, Tensor, Tensor]
    x: Tensor | None
    node_mask: Tensor
    has_self_loops: bool = True
    edge_index: Tensor | None = None


_BOUND_ATTR = "_graphunlearn_live_graph"


def bind(edge_index: Tensor, graph: LiveGraph) -> None:
    """Remember that ``edge_index`` is ``graph``'s live edge list, so that the deletion-aware layers given the
    tensor (as PyG layers are given one) find the cached CSR and live masks (:func:`bound`). The link is kept
    on the tensor object itself: a copy, slice or ``.to()`` of it is a plain ``edge_index`` again."""
    setattr(edge_index, _BOUND_ATTR, graph)


def bound(edge_index: Tensor) -> LiveGraph | None:
    """The :class:`LiveGraph` ``edge_index`` was handed out for by a store (see :func:`bind`), or ``None``."""
    return getattr(edge_index, _BOUND_ATTR, None)


@dataclass(frozen=True)
class Compaction:
    """Old-to-new id maps returned by ``store.compact()``; -1 marks an erased node or edge."""

    node_map: Tensor
    edge_map: Tensor
