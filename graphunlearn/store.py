"""The deletion-aware graph store: requests, masks, neighbourhoods, views, journal and erasure."""

from __future__ import annotations

import hashlib
import operator
import os
import re
import secrets
import sqlite3
import time
import uuid
import warnings
import weakref
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import Tensor
from torch_geometric.data import Data
from torch_geometric.utils import is_undirected as _pyg_is_undirected

from .graph import PairIndex, build_csr, k_hop_layers, row_slots, undirected_unique
from .io import (
    CorruptFileError,
    FolderLock,
    Journal,
    JournalRow,
    atomic_save,
    chain_start,
    commit_temp,
    fsync_dir,
    hash_tensor,
    safe_load,
    to_bytes,
    write_temp,
)
from .kernels import csr_row_index, live_degree, sort_by_row
from .requests import KINDS, Compaction, DeletionRequest, ForgetSet, LiveGraph, bind

FORMAT_VERSION = 2  # 2: hash-chained journal named by the snapshot, store uid; 1 is read and upgraded
STATE_FILE = "store.pt"
WRITER_LOCK = "writer.lock"  # held by the one writer while a saved store is open
STATE_LOCK = "state.lock"  # held around multi-file changes (save, checkpoint, compact) and while opening
# The store's derived caches; _load_state resets them and compact() zeroes them first.
CACHE_ATTRS = ("_csr", "_csc", "_csr_live", "_csc_live", "_csr_weight", "_csr_dst", "_gcn_deg", "_csr_pos",
               "_csc_pos", "_transpose", "_pairs", "_x_live", "_has_self_loops", "_live_ei", "_live_ei_eid",
               "_live_edge_ids", "_live_node_ids")
_PAYLOAD_KEYS = {"node_ids", "edge_ids", "feature_node_ids", "feature_columns", "params", "hops",
                 "subgraph_edge_ids"}
# Attributes the store interprets itself; every other node- or edge-level tensor is carried along.
_SPECIAL = {"x", "y", "edge_index", "edge_type", "edge_weight", "node_type", "num_nodes"}


class DeletionError(ValueError):
    """A deletion request was refused; the store is unchanged."""


def _fmt(ids, limit: int = 10) -> str:
    ids = ids.tolist() if isinstance(ids, Tensor) else list(ids)
    more = f" ... ({len(ids)} in all)" if len(ids) > limit else ""
    return f"{ids[:limit]}{more}"


class GraphStore:
    r"""A graph that forgets by masking: nodes, edges, edge classes, node classes and feature values.

    The store wraps a ``torch_geometric.data.Data`` (``x``, ``edge_index``, optional ``y``, integer
    ``edge_type``, ``edge_weight``, ``node_type``, and any other node- or edge-level tensors). An undirected
    graph keeps each edge once (``u <= v``) with both directions tied to one edge id, so deleting
    ``(u, v)`` deletes ``(v, u)`` too; ``store.edge_index`` lists the edges in that numbering.

    Deletion is masking, not rebuilding: CSR (by destination) and CSC are computed once and cached, and a
    request updates the live masks, live degrees and live features in time proportional to its size. The
    live view (:meth:`live`) feeds the deletion-aware layers of ``graphunlearn.nn``; :meth:`retained`
    rebuilds a plain ``Data`` without the deleted elements.

    Device: the store lives on one device (:attr:`device`). Every tensor it holds (the graph's arrays, masks,
    ``*_deleted_by``, caches, its requests' ids) and every tensor it hands out (views, requests,
    neighbourhoods, ``retained()``, ``forget_set()``) lies there; ids given by the user (lists, CPU tensors)
    are validated and moved there. :meth:`to` moves a store; files written by :meth:`save` hold CPU tensors,
    and :meth:`open` loads them onto the device it is given.

    Args:
        data: the graph. Its tensors are not modified (``compact()`` never zeroes them either).
        undirected: treat the graph as undirected (default: detect from ``edge_index``).
        num_hops: how many hops of affected neighbourhood to record per request (default 2).
        device: where the store lives (default: the device of ``data.edge_index``, so a CUDA ``Data`` makes a
            CUDA store). The tensors of ``data`` on another device are copied there.

    Raises:
        TypeError: ``data`` is not a ``Data``, or ``undirected`` is not a bool or ``None``.
        ValueError: a malformed ``edge_index``, ids out of range, node/edge attributes of the wrong size or
            dtype, an undirected graph that lists an edge twice in one direction, or an undirected edge
            whose two directions carry different attributes; ``num_hops`` negative or not an int.
    """

    def __init__(self, data: Data, *, undirected: bool | None = None, num_hops: int = 2,
                 device: torch.device | str | None = None):
        if not isinstance(data, Data):
            raise TypeError(f"GraphStore needs a torch_geometric.data.Data, got {type(data).__name__} "
                            "(convert a HeteroData with .to_homogeneous() first)")
        if type(num_hops) is not int or num_hops < 0:
            raise ValueError(f"num_hops must be a non-negative int, got {num_hops!r}")
        if type(undirected) not in (type(None), bool):
            raise TypeError(f"undirected must be True, False or None (detect), got {undirected!r}")
        if device is None:
            device = data.edge_index.device if isinstance(data.edge_index, Tensor) else torch.device("cpu")
        state = _canonical_state(data, undirected, torch.device(device))
        state.update(num_hops=num_hops)
        self._load_state(state)
        self._init_runtime(user_storages=_storages(data))

    def _init_runtime(self, *, user_storages: frozenset[int] = frozenset()) -> None:
        """What a store holds besides its state: requests, folder, journal, lock and flags."""
        self.requests: list[DeletionRequest] = []
        self._dir: Path | None = None
        self._journal: Journal | None = None
        self._journal_name: str | None = None
        self._lock: FolderLock | None = None
        self._read_only = False
        self._interrupted: int | None = None
        # (device, storage) of the user's Data tensors: compact() zeroes every tensor the store holds but these
        self._user_storages = user_storages

    @classmethod
    def _blank(cls, state: dict) -> GraphStore:
        store = cls.__new__(cls)
        store._load_state(state)
        store._init_runtime()
        return store

    # ------------------------------------------------------------------ state and caches
    def _load_state(self, s: dict) -> None:
        self.num_nodes: int = s["num_nodes"]
        self.undirected: bool = s["undirected"]
        self.num_hops: int = s["num_hops"]
        self.edge_index: Tensor = s["edge_index"]
        self.x: Tensor | None = s["x"]
        self.y: Tensor | None = s["y"]
        self.node_type: Tensor | None = s["node_type"]
        self.edge_type: Tensor | None = s["edge_type"]
        self.edge_weight: Tensor | None = s["edge_weight"]
        self.node_attrs: dict[str, Tensor] = dict(s["node_attrs"])
        self.edge_attrs: dict[str, Tensor] = dict(s["edge_attrs"])
        n, e, dev = self.num_nodes, self.edge_index.size(1), self.edge_index.device
        self.node_mask: Tensor = s.get("node_mask")
        self.edge_mask: Tensor = s.get("edge_mask")
        if self.node_mask is None:
            self.node_mask = torch.ones(n, dtype=torch.bool, device=dev)
        if self.edge_mask is None:
            self.edge_mask = torch.ones(e, dtype=torch.bool, device=dev)
        self.feature_mask: Tensor | None = s.get("feature_mask")  # [N, F] bool, made on first use
        self.node_deleted_by: Tensor = s.get("node_deleted_by")
        self.edge_deleted_by: Tensor = s.get("edge_deleted_by")
        if self.node_deleted_by is None:
            self.node_deleted_by = torch.full((n,), -1, dtype=torch.long, device=dev)
        if self.edge_deleted_by is None:
            self.edge_deleted_by = torch.full((e,), -1, dtype=torch.long, device=dev)
        # Unique per store, kept by save/open/compact: requests carry it so another store's are refused.
        self.uid: str = s.get("uid") or uuid.uuid4().hex
        self._next_id: int = s.get("next_id", 0)
        self._compacted_through: int = s.get("compacted_through", -1)
        # model tag -> ids of the requests that model has forgotten (the store knows no model, only tags)
        self.forgotten: dict[str, list[int]] = {k: list(v) for k, v in s.get("forgotten", {}).items()}
        for name in CACHE_ATTRS:  # built on first use (_structure, _pair_index, live_x)
            setattr(self, name, None)
        self._content_digest: tuple | None = None  # (versions, digest) of the graph's arrays (state_hash)

    def _state(self, journal: str | None = None, head: tuple[int, bytes] | None = None) -> dict:
        """What a snapshot file holds, with every tensor on the CPU (copies of a store on another device), so
        that the file is device-independent."""
        return _to_device({
            "format": FORMAT_VERSION, "num_nodes": self.num_nodes, "undirected": self.undirected,
            "num_hops": self.num_hops, "edge_index": self.edge_index, "x": self.x, "y": self.y,
            "node_type": self.node_type, "edge_type": self.edge_type, "edge_weight": self.edge_weight,
            "node_attrs": self.node_attrs, "edge_attrs": self.edge_attrs, "node_mask": self.node_mask,
            "edge_mask": self.edge_mask, "feature_mask": self.feature_mask,
            "node_deleted_by": self.node_deleted_by, "edge_deleted_by": self.edge_deleted_by,
            "uid": self.uid, "next_id": self._next_id, "compacted_through": self._compacted_through,
            "forgotten": self.forgotten, "journal": journal, "journal_head": head,
        }, torch.device("cpu"))

    def _structure(self) -> None:
        """Build CSR/CSC, their live slot masks and the live degrees once; deletions then patch them."""
        if self._csr is not None:
            return
        src, dst = self.edge_index
        eid = torch.arange(src.numel(), device=src.device)
        if self.undirected:
            loop = src == dst
            rev = eid[~loop]
            src, dst, eid = torch.cat([src, dst[rev]]), torch.cat([dst, src[rev]]), torch.cat([eid, rev])
        csr = build_csr(dst, src, eid, self.num_nodes)
        csc = csr if self.undirected else build_csr(src, dst, eid, self.num_nodes)
        self._csr, self._csc = csr, csc
        self._has_self_loops = bool((self.edge_index[0] == self.edge_index[1]).any())  # once per structure
        self._csr_live = self.edge_mask[csr.eid]
        self._csc_live = self._csr_live if csc is csr else self.edge_mask[csc.eid]
        self._csr_weight = None if self.edge_weight is None else self.edge_weight[csr.eid].float()
        self._csr_dst = csr_row_index(csr.rowptr)
        self._gcn_deg = live_degree(csr.rowptr, self._csr_live, self._csr_weight, self_loops=True)
        # Positions of each edge id in CSR (and CSC): an edge owns one slot, or two when undirected.
        self._csr_pos = _positions_by_edge(csr.eid, self.edge_index.size(1))
        self._csc_pos = self._csr_pos if csc is csr else _positions_by_edge(csc.eid, self.edge_index.size(1))
        if csc is csr:  # symmetric pattern, weights and mask: the kernels' backward reuses the CSR
            self._transpose = "symmetric"
        else:  # CSC position -> CSR position, so the backward can gather the CSR's mask and weights
            csr_pos_of_slot = torch.empty_like(csr.perm)
            csr_pos_of_slot[csr.perm] = torch.arange(csr.perm.numel(), device=csr.perm.device)
            self._transpose = (csc.rowptr, csc.col, csr_pos_of_slot[csc.perm])

    def _pair_index(self) -> PairIndex:
        if self._pairs is None:
            self._pairs = PairIndex(self.edge_index[0], self.edge_index[1], self.num_nodes)
        return self._pairs

    # ------------------------------------------------------------------ device
    @property
    def device(self) -> torch.device:
        """The device every tensor of the store lives on (set by the constructor, :meth:`to` and :meth:`open`)."""
        return self.edge_index.device

    def to(self, device: torch.device | str) -> GraphStore:
        """Move the store to ``device``, in place, and return it (like ``torch.nn.Module.to``).

        Moves the graph's arrays, masks, ``*_deleted_by``, the feature mask and the ids of every request record
        (``store.requests`` holds moved copies; a record kept from before still passes ``check_request``). The
        caches (CSR/CSC, live degrees, live features, live edge lists) are dropped and rebuilt on the new
        device on first use, so views taken before (``live()``, ``live_edge_ids()``, ...) are invalidated:
        they keep the old device's tensors and no longer follow requests. Take new ones. Moving to the device
        the store is on already changes nothing (views stay valid). A saved store's folder is untouched: its
        files hold CPU tensors whatever the device, and its journal goes on recording requests.

        Raises:
            RuntimeError: a request was interrupted while being applied (see the store's other methods).
        """
        device = torch.device(device)
        if device.index is None and device.type not in ("cpu", "meta"):
            device = torch.empty(0, device=device).device  # "cuda" -> "cuda:0", as tensors report it
        if device == self.device:
            return self
        if self._interrupted is not None:
            raise RuntimeError(f"to: request {self._interrupted} was interrupted while being applied; reopen or "
                               "rebuild the store")
        state = _to_device({k: getattr(self, k) for k in _STATE_TENSORS}, device)
        state["node_attrs"] = _to_device(self.node_attrs, device)
        state["edge_attrs"] = _to_device(self.edge_attrs, device)
        for name in CACHE_ATTRS:
            setattr(self, name, None)
        for name, value in state.items():
            setattr(self, name, value)
        self.requests = [r.to(device) for r in self.requests]
        self._user_storages = frozenset()  # every tensor was copied: none is the user's any more
        return self

    def live_edge_ids(self) -> Tensor:
        """Sorted ids of the live edges: [E_live] int64 on the store's device, in ``store.edge_index`` numbering
        (one id per undirected edge), equal to ``edge_mask.nonzero().squeeze(1)``.

        Computed on the first call after a request that deletes edges (and after ``compact()``, ``to()``, a
        reload) and cached: calls in between return the same tensor object without any work, so a training
        loop indexes with it every step without a host synchronisation. Read it, do not modify it.
        """
        if self._live_edge_ids is None:
            self._live_edge_ids = self.edge_mask.nonzero().squeeze(1)
        return self._live_edge_ids

    def live_node_ids(self) -> Tensor:
        """Sorted ids of the live nodes: [N_live] int64 on the store's device, equal to
        ``node_mask.nonzero().squeeze(1)``; cached like :meth:`live_edge_ids` (recomputed on the first call
        after a request that deletes nodes). Read it, do not modify it."""
        if self._live_node_ids is None:
            self._live_node_ids = self.node_mask.nonzero().squeeze(1)
        return self._live_node_ids

    # ------------------------------------------------------------------ properties
    @property
    def num_edges(self) -> int:
        """Edges in the store's numbering (undirected edges count once)."""
        return self.edge_index.size(1)

    @property
    def num_live_nodes(self) -> int:
        return int(self.node_mask.sum())

    @property
    def num_live_edges(self) -> int:
        return int(self.edge_mask.sum())

    @property
    def num_features(self) -> int:
        return 0 if self.x is None else self.x.size(1)

    def __repr__(self) -> str:
        return (f"GraphStore(nodes={self.num_live_nodes}/{self.num_nodes}, edges={self.num_live_edges}/"
                f"{self.num_edges}, undirected={self.undirected}, requests={len(self.requests)}"
                f"{', path=' + str(self._dir) if self._dir else ''})")

    # ------------------------------------------------------------------ requests
    def delete_edges(self, edges, *, layout: str = "auto") -> DeletionRequest:
        """Delete edges given as edge ids, ``(u, v)`` pairs, or an ``edge_index``.

        For an undirected graph ``(u, v)`` and ``(v, u)`` name the same edge; a pair names every live
        parallel edge between its endpoints.

        Args:
            edges: a tensor, NumPy array or (nested) list of ints.
            layout: how to read ``edges`` (default ``"auto"``): ``"ids"`` (1-D edge ids, ``store.edge_index``
                numbering), ``"pairs"`` ([K, 2]), ``"edge_index"`` ([2, K], PyG's layout). ``"auto"`` reads 1-D
                input as ids, a list of tuples as pairs, [2, K] as an edge_index and [K, 2] as pairs, and
                refuses a [2, 2] input that is not a list of tuples, since it reads both ways.

        Raises:
            DeletionError: unknown, out-of-range, already deleted or malformed edges; the store is unchanged.
        """
        self._require_open()
        ids = self._resolve_edges(edges, layout)
        self._refuse_deleted_edges(ids)
        return self._commit("edges", edge_ids=ids)

    def edge_ids(self, edges, *, layout: str = "auto") -> Tensor:
        """The store's edge ids of ``edges`` (read as in :meth:`delete_edges`), live or deleted; unknown pairs
        or ids raise :class:`DeletionError` naming them. Changes nothing."""
        return self._resolve_edges(edges, layout)

    def delete_nodes(self, nodes) -> DeletionRequest:
        """Delete nodes, their features and every live incident edge."""
        self._require_open()
        ids = self._check_node_ids(nodes, "delete_nodes: nodes")
        self._refuse_deleted_nodes(ids)
        return self._commit("nodes", node_ids=ids, edge_ids=self._live_incident_edges(ids))

    def delete_edge_class(self, edge_class: int) -> DeletionRequest:
        """Delete every live edge whose ``edge_type`` equals ``edge_class``."""
        self._require_open()
        if self.edge_type is None:
            raise DeletionError("delete_edge_class: this store has no edge_type")
        c = _scalar_id(edge_class, "edge_class")
        members = self.edge_type == c
        if not bool(members.any()):
            known = torch.unique(self.edge_type).tolist()
            raise DeletionError(f"delete_edge_class: unknown edge class {c}; known classes: {_fmt(known, 30)}")
        ids = (members & self.edge_mask).nonzero().squeeze(1)
        if ids.numel() == 0:
            by = torch.unique(self.edge_deleted_by[members]).tolist()
            raise DeletionError(f"delete_edge_class: every edge of class {c} is already deleted "
                                f"(by requests {by})")
        return self._commit("edge_class", edge_ids=ids, params={"edge_class": c})

    def delete_node_class(self, node_class: int) -> DeletionRequest:
        """Delete every live node whose label ``y`` equals ``node_class`` (with features and incident edges)."""
        self._require_open()
        if self.y is None or self.y.dim() != 1:
            raise DeletionError("delete_node_class: this store has no 1-D integer node labels y")
        c = _scalar_id(node_class, "node_class")
        members = self.y == c
        if not bool(members.any()):
            known = torch.unique(self.y).tolist()
            raise DeletionError(f"delete_node_class: unknown node class {c}; known classes: {_fmt(known, 30)}")
        ids = (members & self.node_mask).nonzero().squeeze(1)
        if ids.numel() == 0:
            by = torch.unique(self.node_deleted_by[members]).tolist()
            raise DeletionError(f"delete_node_class: every node of class {c} is already deleted "
                                f"(by requests {by})")
        return self._commit("node_class", node_ids=ids, edge_ids=self._live_incident_edges(ids),
                            params={"node_class": c})

    def delete_node_features(self, nodes, columns=None) -> DeletionRequest:
        """Delete feature values of live nodes: the given ``columns`` (1-D ints), or all columns (``None``).

        The nodes and their edges stay; the deleted values read as zero from then on.
        """
        self._require_open()
        if self.x is None:
            raise DeletionError("delete_node_features: this store has no node features x")
        ids = self._check_node_ids(nodes, "delete_node_features: nodes")
        dead = ids[~self.node_mask[ids]]
        if dead.numel():
            raise DeletionError(f"delete_node_features: nodes {_fmt(dead)} are already deleted (with all "
                                "their features)")
        cols = None
        if columns is not None:
            cols = _as_index_tensor(columns, "delete_node_features: columns", device=self.device).reshape(-1)
            bad = cols[(cols < 0) | (cols >= self.num_features)]
            if bad.numel():
                raise DeletionError(f"delete_node_features: columns {_fmt(bad)} are out of range "
                                    f"0..{self.num_features - 1}")
            cols = torch.unique(cols)
        if self.feature_mask is not None:
            sub = self.feature_mask[ids] if cols is None else self.feature_mask[ids][:, cols]
            gone = ids[~sub.all(dim=1)]
            if gone.numel():
                raise DeletionError(f"delete_node_features: some requested features of nodes {_fmt(gone)} "
                                    "are already deleted; request only the remaining columns")
        return self._commit("node_features", feature_node_ids=ids, feature_columns=cols)

    # ------------------------------------------------------------------ request plumbing
    def _commit(self, kind: str, *, node_ids=None, edge_ids=None, feature_node_ids=None,
                feature_columns=None, params=None) -> DeletionRequest:
        self._require_open()
        empty = torch.empty(0, dtype=torch.long, device=self.device)
        node_ids = empty if node_ids is None else node_ids
        edge_ids = empty if edge_ids is None else edge_ids
        feature_node_ids = empty if feature_node_ids is None else feature_node_ids
        # the neighbourhood (hops, enclosing subgraph) is computed when first read: registering costs time
        # proportional to the request (DeletionRequest.hops)
        req = DeletionRequest(id=self._next_id, kind=kind, node_ids=node_ids, edge_ids=edge_ids,
                              feature_node_ids=feature_node_ids, feature_columns=feature_columns,
                              params=params or {}, created=time.time(), store_uid=self.uid,
                              _lazy=_neighbourhood_of(self))
        payload = to_bytes(req.to_payload())
        try:
            if self._journal is not None:  # write ahead: durable before it takes effect
                self._journal.append(req.id, kind, req.summary(), payload, created=req.created)
            self._apply(req)
        except BaseException:
            # Maybe journaled, maybe half applied (Ctrl-C, MemoryError, a full disk): memory may no longer match
            # the journal. Refuse every later change, so no snapshot is written from it; reopening decides.
            self._interrupted = req.id
            raise
        if self._journal is not None:
            try:  # the request is durable and applied; the status only tells a reopen what it already knows
                self._journal.mark_applied(req.id)
            except sqlite3.Error as exc:
                warnings.warn(f"request {req.id} is journaled and applied, but marking it applied failed ({exc}); "
                              "reopening the store marks it", RuntimeWarning, stacklevel=3)
        return req

    def _apply(self, req: DeletionRequest) -> None:
        """Update masks, live degrees and live features for ``req``: work proportional to its size (and to
        the degrees of the rows whose in-edges it deletes)."""
        if self._csr is not None and req.edge_ids.numel():
            pos = row_slots(self._csr_pos[0], req.edge_ids)
            slots = self._csr_pos[1][pos]
            self._csr_live[slots] = False
            # Re-sum the touched rows instead of subtracting: subtraction drifts (1 + w - w != 1 in float32),
            # and a row left without live in-edges must read exactly 1, or LightGCN's D^-1/2 (of gcn_deg - 1)
            # turns a zero degree into ~3000. Costs the touched rows' degrees, which _commit's
            # neighbourhood already gathers; the sum runs in the slot order a fresh build uses.
            rows = torch.unique(self._csr_dst[slots])
            counts = self._csr.rowptr[rows + 1] - self._csr.rowptr[rows]
            rs = row_slots(self._csr.rowptr, rows)
            dev = rows.device
            w = torch.ones(rs.numel(), device=dev) if self._csr_weight is None else self._csr_weight[rs]
            w = torch.where(self._csr_live[rs], w, torch.zeros((), dtype=w.dtype, device=dev))
            local = torch.repeat_interleave(torch.arange(rows.numel(), device=dev), counts)
            self._gcn_deg[rows] = torch.zeros(rows.numel(), device=dev).index_add_(0, local, w) + 1.0
            if self._csc is not self._csr:
                self._csc_live[self._csc_pos[1][row_slots(self._csc_pos[0], req.edge_ids)]] = False
        self.edge_mask[req.edge_ids] = False
        self.edge_deleted_by[req.edge_ids] = req.id
        if req.edge_ids.numel():
            self._live_edge_ids = None  # recomputed on the next live_edge_ids(), once per request
        if req.node_ids.numel():
            self._live_node_ids = None
        if req.edge_ids.numel() and self._live_ei is not None:
            # the live edge_index handed to models changes in place (same tensor object, fewer columns), so
            # a view taken before the request never hands a deleted edge to a PyG layer
            keep = self.edge_mask.index_select(0, self._live_ei_eid)  # updated above: a gather, not a search
            self._live_ei_eid = self._live_ei_eid[keep]
            self._live_ei.set_(self._live_ei[:, keep].contiguous())
        self.node_mask[req.node_ids] = False
        self.node_deleted_by[req.node_ids] = req.id
        if self._x_live is not None:
            self._x_live[req.node_ids] = 0
        if req.feature_node_ids.numel():
            if self.feature_mask is None:
                self.feature_mask = torch.ones(self.x.shape, dtype=torch.bool, device=self.x.device)
            rows = req.feature_node_ids.unsqueeze(1)
            cols = slice(None) if req.feature_columns is None else req.feature_columns.unsqueeze(0)
            self.feature_mask[rows, cols] = False
            if self._x_live is not None:
                self._x_live[rows, cols] = 0
        self.requests.append(req)
        self._next_id = req.id + 1

    def _neighbourhood(self, req: DeletionRequest) -> tuple[list[Tensor], Tensor]:
        """``req``'s affected nodes per hop and enclosing subgraph, on the live graph just before ``req``: an
        edge was live then if it is live now or was deleted by ``req`` or a later request (``edge_deleted_by``),
        so the answer is the same whenever it is asked. Costs the degrees of the nodes it reaches (the slots
        gathered are the only ones looked at), plus O(N) for two node flags."""
        self._structure()
        dev = self.device
        node_ids, edge_ids, feature_node_ids = req.node_ids.to(dev), req.edge_ids.to(dev), req.feature_node_ids.to(dev)
        seeds = torch.cat([node_ids, self.edge_index[:, edge_ids].reshape(-1), feature_node_ids])

        def live_before(eid_of_slot: Tensor):
            def live(slots: Tensor) -> Tensor:
                by = self.edge_deleted_by[eid_of_slot[slots]]
                return (by < 0) | (by >= req.id)
            return live

        # Influence travels along message direction: from a node to the nodes that aggregate from it,
        # i.e. its out-neighbours, which are the rows of CSC. Undirected graphs: both directions.
        hops = k_hop_layers(self._csc.rowptr, self._csc.col, live_before(self._csc.eid), seeds, self.num_hops,
                            self.num_nodes)
        nodes = torch.cat(hops)
        inside = torch.zeros(self.num_nodes, dtype=torch.bool, device=nodes.device)
        inside[nodes] = True
        slots = row_slots(self._csr.rowptr, nodes)
        slots = slots[live_before(self._csr.eid)(slots) & inside[self._csr.col[slots]]]
        return hops, torch.unique(self._csr.eid[slots])

    def _live_incident_edges(self, nodes: Tensor) -> Tensor:
        self._structure()
        eids = []
        for csr, live in ((self._csr, self._csr_live), (self._csc, self._csc_live)):
            slots = row_slots(csr.rowptr, nodes)
            eids.append(csr.eid[slots[live[slots]]])
            if csr is self._csc:
                break
        return torch.unique(torch.cat(eids))

    def _check_node_ids(self, nodes, what: str) -> Tensor:
        ids = _as_index_tensor(nodes, what, device=self.device).reshape(-1)
        bad = ids[(ids < 0) | (ids >= self.num_nodes)]
        if bad.numel():
            raise DeletionError(f"node ids {_fmt(bad)} are out of range 0..{self.num_nodes - 1}")
        return torch.unique(ids)

    def _refuse_deleted_nodes(self, ids: Tensor) -> None:
        dead = ids[~self.node_mask[ids]]
        if dead.numel():
            by = self.node_deleted_by[dead]
            raise DeletionError(f"nodes {_fmt(dead)} are already deleted (by requests {_fmt(torch.unique(by))})")

    def _refuse_deleted_edges(self, ids: Tensor) -> None:
        dead = ids[~self.edge_mask[ids]]
        if dead.numel():
            pairs = self.edge_index[:, dead[:10]].t().tolist()
            by = torch.unique(self.edge_deleted_by[dead])
            raise DeletionError(f"edges {_fmt(dead)} (pairs {[tuple(p) for p in pairs]}) are already deleted "
                                f"(by requests {_fmt(by)})")

    def _resolve_edges(self, edges, layout: str = "auto") -> Tensor:
        if layout not in EDGE_LAYOUTS:
            raise DeletionError(f"delete_edges: layout must be one of {EDGE_LAYOUTS}, got {layout!r}")
        t = _as_index_tensor(edges, "delete_edges: edges", max_dim=2, device=self.device)
        if t.dim() == 1:
            if layout in ("auto", "ids"):
                return self._check_edge_ids(t)
            raise DeletionError(f"delete_edges: layout={layout!r} needs a 2-D input, got {t.numel()} ids")
        u, v = edge_endpoints(edges, t, layout, "delete_edges")
        return self._lookup_pairs(u, v)

    def _check_edge_ids(self, ids: Tensor) -> Tensor:
        bad = ids[(ids < 0) | (ids >= self.num_edges)]
        if bad.numel():
            raise DeletionError(f"delete_edges: edge ids {_fmt(bad)} are out of range 0..{self.num_edges - 1}")
        return torch.unique(ids)

    def _lookup_pairs(self, u: Tensor, v: Tensor) -> Tensor:
        if u.numel() == 0:
            raise DeletionError("delete_edges: empty request: no edges given")
        u, v = u.long(), v.long()
        bad = torch.unique(torch.cat([u, v])[(torch.cat([u, v]) < 0) | (torch.cat([u, v]) >= self.num_nodes)])
        if bad.numel():
            raise DeletionError(f"delete_edges: node ids {_fmt(bad)} are out of range 0..{self.num_nodes - 1}")
        if self.undirected:
            u, v = torch.minimum(u, v), torch.maximum(u, v)
        found, pair_index, ids = self._pair_index().lookup(u, v)
        if not bool(found.all()):
            missing = torch.stack([u, v], 1)[~found][:10].tolist()
            raise DeletionError(f"delete_edges: {int((~found).sum())} pairs are not edges of the graph: "
                                f"{[tuple(p) for p in missing]}")
        # A pair names its live parallel edges (directed multigraphs); one with no live copy left is kept
        # here so that the caller refuses it as already deleted.
        live = self.edge_mask[ids]
        has_live = torch.zeros(u.numel(), dtype=torch.bool, device=u.device)
        has_live[pair_index[live]] = True
        return torch.unique(ids[live | ~has_live[pair_index]])

    # ------------------------------------------------------------------ views
    def live(self) -> LiveGraph:
        """The live graph: what every model is handed (see :class:`~graphunlearn.requests.LiveGraph`).

        ``view.x`` and ``view.edge_index`` are what a PyTorch Geometric model takes: ``model(view.x,
        view.edge_index)`` runs on live edges only, in the store's node numbering. The project's
        deletion-aware layers (``graphunlearn.nn``) given that same ``edge_index`` find the store's cached CSR
        and live masks through it (:func:`graphunlearn.nn.resolve`) and aggregate with the masked kernels.
        Like the view's other tensors, ``edge_index`` changes in place when a request deletes edges (the same
        tensor object loses those columns: O(E) once per request, not per call), so a view taken earlier
        never hands a deleted edge to a model.
        """
        self._structure()
        if self._live_ei is None:
            self._live_ei, self._live_ei_eid = self._directed(self.edge_mask.nonzero().squeeze(1))
        view = LiveGraph(num_nodes=self.num_nodes, rowptr=self._csr.rowptr, col=self._csr.col,
                         mask=self._csr_live, edge_weight=self._csr_weight, gcn_deg=self._gcn_deg,
                         rowptr_t=self._csc.rowptr, col_t=self._csc.col, mask_t=self._csc_live,
                         transpose=self._transpose, x=self.live_x(), node_mask=self.node_mask,
                         has_self_loops=self._has_self_loops, edge_index=self._live_ei)
        bind(self._live_ei, view)
        return view

    # ------------------------------------------------------------------ sampled loaders (graphunlearn.sampling)
    def neighbor_loader(self, num_neighbors, input_nodes=None, *, batch_size: int = 1, shuffle: bool = False,
                        seed: int | None = None, **loader_kwargs):
        r"""A deletion-aware PyG ``NeighborLoader`` over the live graph (a
        :class:`~graphunlearn.sampling.LiveNeighborLoader`).

        Hop ``h`` draws for each node reached at hop ``h - 1`` at most ``num_neighbors[h - 1]`` of its live
        in-neighbours, uniformly without replacement (GraphSAGE's sampler, Hamilton et al., NeurIPS 2017), on
        the store's device. Batches are PyG ``Data`` with ``x`` (``live_x()``: deleted feature values zeroed),
        ``edge_index`` (local ids), ``n_id`` (seeds first), ``e_id`` (store edge ids; both directions of an
        undirected edge share one), ``batch_size``, ``input_id``, ``num_sampled_nodes`` / ``num_sampled_edges``,
        and ``y``, ``edge_weight``, ``node_type``, ``edge_type`` and the store's other node- and edge-level
        tensors when present. The loader reads the store's masks and features once per batch, so one made
        before a request never returns what the request deleted; seeds deleted after it was made are dropped
        from their batch (``batch_size`` and ``input_id`` count the rest). :meth:`compact` renumbers the store:
        a loader made before it raises; make a new one.

        Args:
            num_neighbors: per-hop fanouts, ints ``>= -1`` (``-1``: every live neighbour).
            input_nodes: seed node ids or an [N] bool mask (default ``None``: every node live now); they must be
                distinct live nodes (for a mask of all nodes, pass ``mask & store.node_mask``).
            batch_size: seeds per batch (default 1, as in PyG).
            shuffle: reshuffle the seeds each epoch (default ``False``).
            seed: makes the sampling and shuffling reproducible (default ``None``: torch's global generator).
            **loader_kwargs: ``transform``, ``transform_sampler_output`` and ``DataLoader`` options.

        Raises:
            ValueError: ``input_nodes`` malformed, out of range, repeated or deleted.
            TypeError / ValueError: a malformed ``num_neighbors`` or ``seed``.
            NotImplementedError: ``NeighborLoader`` options not supported (``replace``, ``disjoint``, temporal).
            RuntimeError: an interrupted request (see :meth:`to`); when iterated, a compacted store.
        """
        from .sampling import LiveNeighborLoader

        return LiveNeighborLoader(self._live_source("neighbor_loader"), num_neighbors, input_nodes,
                                  batch_size=batch_size, shuffle=shuffle, seed=seed, where="neighbor_loader",
                                  **loader_kwargs)

    def link_neighbor_loader(self, num_neighbors, edge_label_index=None, edge_label=None, *, neg_sampling=None,
                             batch_size: int = 1, shuffle: bool = False, seed: int | None = None, **loader_kwargs):
        r"""A deletion-aware PyG ``LinkNeighborLoader`` over the live graph (a
        :class:`~graphunlearn.sampling.LiveLinkNeighborLoader`; see :meth:`neighbor_loader` for sampling).

        Batches carry the sampled subgraph of the seed links' endpoints, ``input_id``, and ``edge_label_index``
        (local ids, ``n_id[edge_label_index]`` being the links) with ``edge_label``, or ``src_index`` /
        ``dst_pos_index`` / ``dst_neg_index`` for triplet negatives, as PyG lays them out. Negatives are drawn
        from live nodes only (like PyG's, they may by chance be true edges). A seed link that is an edge of the
        store names that edge: one deleted later is dropped from its batch, as is a link whose endpoint is.

        Args:
            num_neighbors: per-hop fanouts, ints ``>= -1``.
            edge_label_index: [2, P] seed links (default ``None``: every live edge, once each, in store edge
                order, as ``store.edge_index`` lists them).
            edge_label: [P, ...] labels of the links, or with ``edge_label_index=None`` [E, ...] labels by
                store edge id (default ``None``).
            neg_sampling: a PyG ``NegativeSampling`` or ``"binary"`` / ``"triplet"`` (default ``None``).
            batch_size, shuffle, seed, **loader_kwargs: as for :meth:`neighbor_loader`.

        Raises:
            ValueError: ``edge_label_index`` malformed, out of range or naming deleted nodes or edges;
                ``edge_label`` of the wrong length.
            TypeError / ValueError / NotImplementedError / RuntimeError: as for :meth:`neighbor_loader`.
        """
        from .sampling import LiveLinkNeighborLoader

        where = "link_neighbor_loader"
        source = self._live_source(where)
        if edge_label_index is None:
            edge_ids = self.live_edge_ids()
            edge_label_index = self.edge_index[:, edge_ids]
            if edge_label is not None:
                if not isinstance(edge_label, Tensor) or edge_label.dim() == 0 or edge_label.size(0) != self.num_edges:
                    raise ValueError(f"{where}: with edge_label_index=None, edge_label must have one row per store "
                                     f"edge ({self.num_edges}), got {_describe(edge_label)}")
                edge_label = edge_label[edge_ids.to(edge_label.device)]
        else:
            ei = edge_label_index if isinstance(edge_label_index, Tensor) else torch.as_tensor(edge_label_index)
            edge_ids = None
            if ei.dim() == 2 and ei.size(0) == 2 and not (ei.is_floating_point() or ei.dtype == torch.bool):
                u, v = ei.to(self.device).long()
                if self.undirected:
                    u, v = torch.minimum(u, v), torch.maximum(u, v)
                _, pair, ids = self._pair_index().lookup(u, v)
                # one edge id per pair, a live one when the pair has parallel copies (-1: the pair is no edge)
                key = ids + self.edge_mask[ids].long() * self.num_edges
                best = torch.full((u.numel(),), -1, dtype=torch.long, device=self.device)
                best = best.scatter_reduce(0, pair, key, reduce="amax")
                edge_ids = torch.where(best >= self.num_edges, best - self.num_edges, best)
        return LiveLinkNeighborLoader(source, num_neighbors, edge_label_index, edge_label, edge_ids=edge_ids,
                                      neg_sampling=neg_sampling, batch_size=batch_size, shuffle=shuffle, seed=seed,
                                      where=where, **loader_kwargs)

    def live_csr(self):
        """The live structure a sampler reads (:class:`~graphunlearn.sampling.LiveCSR`): the store's CSR by
        destination and its live masks, cached tensors (no copy), valid until the next request. What
        :func:`graphunlearn.sampling.sample_neighbors` and the local computation graphs of
        :mod:`graphunlearn.tasks.local` sample from.

        Raises:
            RuntimeError: a request was interrupted while being applied (reopen or rebuild the store).
        """
        return self._live_source("GraphStore.live_csr").graph()

    def _live_source(self, where: str):
        """The store as a :class:`~graphunlearn.sampling.LiveSource`: callables returning its current CSR, masks
        and attributes (the cached tensors, no copy); refused once :meth:`compact` has renumbered the store."""
        from .sampling import LiveCSR, LiveSource

        if self._interrupted is not None:
            raise RuntimeError(f"{where}: request {self._interrupted} was interrupted while being applied; reopen "
                               "or rebuild the store")
        numbering = self._compacted_through

        def graph() -> LiveCSR:
            if self._compacted_through != numbering or self._interrupted is not None:
                raise RuntimeError(f"{where}: the store was compacted (its nodes and edges renumbered) or a request "
                                   "was interrupted after this loader was made; make a new loader")
            self._structure()
            return LiveCSR(rowptr=self._csr.rowptr, col=self._csr.col, eid=self._csr.eid, slot_live=self._csr_live,
                           node_live=self.node_mask, edge_live=self.edge_mask, live_nodes=self.live_node_ids(),
                           version=self._next_id)

        def node_attrs() -> dict[str, Tensor]:
            named = {"x": self.live_x(), "y": self.y, "node_type": self.node_type, **self.node_attrs}
            return {k: v for k, v in named.items() if v is not None}

        def edge_attrs() -> dict[str, Tensor]:
            named = {"edge_weight": self.edge_weight, "edge_type": self.edge_type, **self.edge_attrs}
            return {k: v for k, v in named.items() if v is not None}

        return LiveSource(num_nodes=self.num_nodes, graph=graph, node_attrs=node_attrs, edge_attrs=edge_attrs)

    def live_data(self) -> Data:
        """The live graph as a PyG ``Data`` in the store's node numbering (deleted nodes stay, isolated and with
        zeroed features): ``x``, ``edge_index`` (live edges, both directions when undirected), ``edge_weight``
        (if the store has weights), ``y`` (if it has labels; -1 for deleted nodes), ``node_mask`` [N] (live
        nodes), ``num_nodes``. Copies, so the caller may modify them; for repeated reads without copying, use
        ``live().x`` and ``live().edge_index``."""
        view = self.live()
        data = Data(x=None if view.x is None else view.x.clone(), edge_index=view.edge_index.clone(),
                    num_nodes=self.num_nodes, node_mask=self.node_mask.clone())
        if self.edge_weight is not None:
            data.edge_weight = self.edge_weight[self._live_ei_eid]
        if self.y is not None:
            y = self.y.clone()
            y[~self.node_mask] = -1  # a deleted node's label is deleted data too
            data.y = y
        return data

    def live_x(self) -> Tensor | None:
        """Node features with deleted nodes and deleted feature values set to zero (cached, patched in place)."""
        if self.x is None:
            return None
        if self._x_live is None:
            x = self.x.clone()
            x[~self.node_mask] = 0
            if self.feature_mask is not None:
                x[~self.feature_mask] = 0
            self._x_live = x
        return self._x_live

    def live_edge_index(self) -> Tensor:
        """``edge_index`` [2, S] of the live graph in the store's node ids (both directions when undirected)."""
        ids = self.edge_mask.nonzero().squeeze(1)
        return self._directed(ids)[0]

    def _directed(self, ids: Tensor) -> tuple[Tensor, Tensor]:
        u, v = self.edge_index[:, ids]
        if not self.undirected:
            return torch.stack([u, v]), ids
        nonloop = u != v
        ei = torch.stack([torch.cat([u, v[nonloop]]), torch.cat([v, u[nonloop]])])
        return ei, torch.cat([ids, ids[nonloop]])

    def retained(self) -> Data:
        """The graph without deleted elements as a new ``Data`` with consecutive ids.

        Carries ``x`` (deleted feature values zeroed), ``y``, ``node_type``, ``edge_type``, ``edge_weight`` and the
        other node/edge tensors, plus ``orig_node_id`` [N'] and ``orig_edge_id`` [E'] (the store's ids of
        each kept node and each column of ``edge_index``).
        """
        return self._subgraph(self.node_mask.nonzero().squeeze(1), self.edge_mask.nonzero().squeeze(1))

    def _subgraph(self, nodes: Tensor, edge_ids: Tensor) -> Data:
        new_id = torch.full((self.num_nodes,), -1, dtype=torch.long, device=nodes.device)
        new_id[nodes] = torch.arange(nodes.numel(), device=nodes.device)
        ei, orig_eid = self._directed(edge_ids)
        data = Data(edge_index=new_id[ei], num_nodes=nodes.numel())
        x = self.live_x()
        if x is not None:
            data.x = x[nodes]
        for name, value in (("y", self.y), ("node_type", self.node_type), *self.node_attrs.items()):
            if value is not None:
                data[name] = value[nodes]
        for name, value in (("edge_type", self.edge_type), ("edge_weight", self.edge_weight),
                            *self.edge_attrs.items()):
            if value is not None:
                data[name] = value[orig_eid]
        data.orig_node_id = nodes
        data.orig_edge_id = orig_eid
        return data

    def affected_subgraph(self, request: DeletionRequest, hop: int | None = None) -> Data:
        """The live part of a request's enclosing subgraph (nodes within ``hop`` hops), as a ``Data``.

        ``orig_node_id`` / ``orig_edge_id`` map local ids back to the store's; ``hop`` holds each node's distance
        from the deleted elements.
        """
        self.check_request(request)
        nodes = request.affected_nodes(hop)
        nodes = nodes[self.node_mask[nodes]]
        self._structure()
        inside = torch.zeros(self.num_nodes, dtype=torch.bool, device=nodes.device)
        inside[nodes] = True
        slots = row_slots(self._csr.rowptr, nodes)
        slots = slots[self._csr_live[slots] & inside[self._csr.col[slots]]]
        data = self._subgraph(nodes, torch.unique(self._csr.eid[slots]))
        dist = torch.full((self.num_nodes,), -1, dtype=torch.long, device=nodes.device)
        for h, layer in enumerate(request.hops):
            dist[layer] = h
        data.hop = dist[nodes]
        return data

    def forget_set(self, requests: Sequence[DeletionRequest] | None = None) -> ForgetSet:
        """The nodes, edges and feature values removed by ``requests`` (default: every request not compacted)."""
        if requests is not None:
            if isinstance(requests, DeletionRequest) or not isinstance(requests, Sequence):
                raise TypeError(f"forget_set: requests must be a sequence of DeletionRequest, got "
                                f"{_describe(requests)}")
            for r in requests:
                if not isinstance(r, DeletionRequest) or r.store_uid != self.uid:
                    self.check_request(r)  # raises, naming what is wrong
        reqs = [r for r in (self.requests if requests is None else requests) if not r.redacted]
        empty = torch.empty(0, dtype=torch.long, device=self.device)
        node_ids = torch.cat([empty] + [r.node_ids for r in reqs])
        edge_ids = torch.cat([empty] + [r.edge_ids for r in reqs])
        entries = tuple((r.feature_node_ids, r.feature_columns) for r in reqs if r.feature_node_ids.numel())
        return ForgetSet(node_ids=node_ids, edge_ids=edge_ids, edge_index=self.edge_index[:, edge_ids],
                         feature_entries=entries)

    # ------------------------------------------------------------------ durability
    def save(self, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
        r"""Write the store to folder ``path`` and journal every later request there before applying it.

        The folder holds ``store.pt`` (the snapshot), ``journal-<token>.sqlite`` (the hash-chained request
        journal the snapshot names) and two lock files. The snapshot is the commit point: a new journal is
        written in full first, then the snapshot that names it replaces the old one atomically, then files of
        a replaced store are removed; so after a crash or an ``OSError`` (a full disk) the folder holds the
        old store or the new one, never a mix. Saving to the store's own folder is :meth:`checkpoint`.

        While saved, the store holds the folder's writer lock until :meth:`close` (or until the process ends):
        a second writer, in this process or another, gets :class:`~graphunlearn.io.StoreLockedError`.

        Args:
            path: the folder (created if missing).
            overwrite: replace a store already saved there (default ``False``).

        Raises:
            NotADirectoryError: ``path`` is a file. FileExistsError: it holds a store and ``overwrite`` is
            false. StoreLockedError: another writer has it open. RuntimeError: this store is closed or
            read-only.
        """
        self._require_writable("save")
        if type(overwrite) is not bool:
            raise TypeError(f"save: overwrite must be True or False, got {overwrite!r}")
        path = _folder_arg(path, "save")  # absolute, so that another spelling of the store's own folder is the same
        if path.exists() and not path.is_dir():
            raise NotADirectoryError(f"save: {path} exists and is not a folder")
        if path == self._dir:
            self.checkpoint()
            return path
        path.mkdir(parents=True, exist_ok=True)
        lock = FolderLock(path, WRITER_LOCK)
        try:
            with FolderLock(path, STATE_LOCK, blocking=True):
                if (path / STATE_FILE).exists() and not overwrite:
                    raise FileExistsError(f"save: {path} already holds a store; pass overwrite=True to replace it")
                journal, name, error = self._write_folder(path)
        except BaseException:
            lock.release()  # not committed: the folder is still the old store (or none)
            raise
        old_journal, old_lock = self._journal, self._lock
        self._journal, self._dir, self._lock, self._journal_name = journal, path, lock, name
        if old_journal is not None:
            old_journal.close()
        if old_lock is not None:
            old_lock.release()
        if error is not None:
            raise error
        return path

    def _write_folder(self, path: Path) -> tuple[Journal, str, BaseException | None]:
        """Write a new journal holding this store's requests (one transaction), then the snapshot naming it:
        the rename of the snapshot is the commit point. A failure before it removes the new journal and
        propagates, leaving the folder as it was; after it, the folder is this store's, and what fails
        later (the folder fsync, removing the replaced store's files) is returned to be raised once the
        caller has adopted the folder. Call with the folder's state lock held."""
        name = f"journal-{secrets.token_hex(8)}.sqlite"
        journal = Journal(path / name, store_uid=self.uid, create=True)
        try:
            journal.append_all([(r.id, r.kind, r.summary(), None if r.redacted else to_bytes(r.to_payload()),
                                 r.created) for r in self.requests])
            commit_temp(write_temp(self._state(name, journal.head), path / STATE_FILE), path / STATE_FILE)
        except BaseException:
            journal.close()
            _unlink_quietly(path / name)
            raise
        try:
            fsync_dir(path)
            _remove_strays(path, keep=name)
        except BaseException as exc:
            return journal, name, exc
        return journal, name, None

    def checkpoint(self) -> None:
        """Rewrite the snapshot of a saved store so that reopening needs no journal replay.

        Raises:
            RuntimeError: the store was never saved, or is closed or read-only.
        """
        if self._dir is None:
            raise RuntimeError("checkpoint: the store was never saved; call save(path) first")
        self._require_writable("checkpoint")
        self._check_journal_head("checkpoint")
        with FolderLock(self._dir, STATE_LOCK, blocking=True):
            atomic_save(self._state(self._journal_name, self._journal.head), self._dir / STATE_FILE)
            _remove_strays(self._dir, keep=self._journal_name)

    @classmethod
    def open(cls, path: str | os.PathLike, *, read_only: bool = False,
             device: torch.device | str | None = None) -> GraphStore:
        r"""Reopen a saved store; requests journaled after its snapshot are applied, each exactly once.

        Everything read is checked before it is used: the snapshot's fields (types, shapes, id ranges),
        that the journal belongs to this snapshot's store, the journal's hash chain and head (an edited,
        removed, inserted or reordered row is named), and every request's payload (serialized tensors only,
        loaded with ``weights_only=True``; ids within range; fields matching the kind). Leftovers of a crash
        are finished: an interrupted compaction's redaction and ``VACUUM``, temporary snapshot files and
        journals of a replaced store are removed.

        Args:
            path: the folder given to :meth:`save`.
            read_only: open a consistent snapshot without taking the writer lock (another process may be
                writing); the store refuses requests, ``save``, ``checkpoint`` and ``compact``, and leaves
                the folder untouched (default ``False``).
            device: the device to load the store onto (default CPU); the files are device-independent.

        Raises:
            FileNotFoundError: no saved store there. StoreLockedError: another writer has it open (not with
            ``read_only``). CorruptFileError: a file is truncated, junk, tampered with or from another store;
            the message names the file or the journal row.
        """
        if type(read_only) is not bool:
            raise TypeError(f"open: read_only must be True or False, got {read_only!r}")
        device = torch.device("cpu" if device is None else device)
        path = _folder_arg(path, "open")
        state_file = path / STATE_FILE
        if not state_file.is_file():
            cleaned = "" if read_only else _remove_leftovers_of_a_failed_save(path)
            raise FileNotFoundError(f"open: {state_file} does not exist (not a saved GraphStore folder){cleaned}")
        lock = None if read_only else FolderLock(path, WRITER_LOCK)
        journal = None
        try:
            with FolderLock(path, STATE_LOCK, shared=read_only, blocking=True):
                state = safe_load(state_file, what=str(state_file))  # CPU tensors
                _check_state(state, state_file)
                state = _to_device(state, device)  # replayed requests then run on the store's device
                if state["format"] == 1:
                    store, journal = cls._open_v1(path, state, read_only)
                else:
                    journal = Journal(path / state["journal"], store_uid=state["uid"], read_only=read_only)
                    rows = journal.verify()
                    store = cls._from_rows(path, state, rows, journal)
                    if not read_only:
                        _remove_strays(path, keep=state["journal"])
                        journal.redact_through(store._compacted_through)  # finish an interrupted compaction
                        for row in rows:
                            if row.id >= state["next_id"] and row.status != "applied":
                                journal.mark_applied(row.id)
        except BaseException:
            if journal is not None:
                journal.close()
            if lock is not None:
                lock.release()
            raise
        store._lock, store._read_only = lock, read_only
        if read_only:
            if journal is not None:
                journal.close()
            store._journal = None
        else:
            store._journal = journal
        return store

    @classmethod
    def _from_rows(cls, path: Path, state: dict, rows: list[JournalRow], journal: Journal) -> GraphStore:
        next_id = state["next_id"]
        head_id, head_chain = state["journal_head"]
        expected = rows[head_id].chain if 0 <= head_id < len(rows) else (chain_start(state["uid"]) if head_id == -1
                                                                         else None)
        if head_id != next_id - 1 or expected != head_chain:
            raise CorruptFileError(f"{journal.path}: the journal holds requests 0..{len(rows) - 1} but the snapshot "
                                   f"{path / STATE_FILE} was taken at request {next_id - 1} with another journal "
                                   "head: rows were removed or the journal was replaced")
        store = cls._blank(state)
        store._dir, store._journal_name = path, state["journal"]
        store._replay([(r.id, r.kind, r.created, r.payload) for r in rows], journal.path)
        return store

    def _replay(self, rows: list[tuple[int, str, float, bytes | None]], source: Path) -> None:
        """Take the journal's ``(id, kind, created, payload)`` rows onto the snapshot just loaded: rows before
        its ``next_id`` become its request records (after which the snapshot is checked against them), the
        rest are applied, each checked first. Payloads of compacted rows are dropped, as a crash may have cut
        ``compact()`` short before their redaction."""
        next_id, ct = self._next_id, self._compacted_through
        if next_id == 0:  # no request in the snapshot: check it before anything is replayed onto it
            self._check_snapshot(self._dir / STATE_FILE)
        for req_id, kind, created, payload in rows:
            if payload is None and req_id > ct:
                raise CorruptFileError(f"{source}: row {req_id} has no payload but was never compacted")
            req = self._request_from_row(req_id, kind, created, None if req_id <= ct else payload, source)
            if req_id < next_id:
                self.requests.append(req)  # already reflected in the snapshot's masks
                if req_id == next_id - 1:
                    self._check_snapshot(self._dir / STATE_FILE)
            else:
                self._check_applicable(req, source)
                self._apply(req)

    @classmethod
    def _open_v1(cls, path: Path, state: dict, read_only: bool) -> tuple[GraphStore, Journal | None]:
        """A folder saved before journals were hash-chained (format 1): read it, then (unless read-only)
        rewrite it as format 2 with the same atomic switch :meth:`save` uses."""
        old = path / "journal.sqlite"
        if not old.is_file():
            raise CorruptFileError(f"{old}: the store's journal is missing")
        try:
            conn = sqlite3.connect(f"{old.as_uri()}?mode=ro", uri=True)
            try:
                raw = conn.execute("SELECT id, kind, status, created, summary, payload FROM requests "
                                   "ORDER BY rowid").fetchall()
            finally:
                conn.close()
        except sqlite3.DatabaseError as exc:
            raise CorruptFileError(f"{old}: not a graphunlearn journal ({exc})") from None
        state = {**state, "uid": uuid.uuid4().hex}
        for k, (req_id, kind, _status, created, _summary, _payload) in enumerate(raw):
            if req_id != k or kind not in KINDS or not isinstance(created, float):
                raise CorruptFileError(f"{old}: row {k} is not request {k} of a known kind")
        store = cls._blank(state)
        store._dir = path
        store._replay([(r[0], r[1], r[3], r[5]) for r in raw], old)
        if read_only:
            return store, None
        journal, name, late = store._write_folder(path)
        store._journal_name = name
        if late is not None:
            journal.close()
            raise late
        return store, journal

    def _request_from_row(self, req_id: int, kind: str, created: float, payload, source: Path) -> DeletionRequest:
        """A journal row as a request, with every field checked against this store's ranges."""
        where = f"{source}: row {req_id} ({kind})"
        if payload is None:
            return DeletionRequest.from_payload(req_id, kind, created, None, store_uid=self.uid, device=self.device)
        if not isinstance(payload, bytes):
            raise CorruptFileError(f"{where}: the payload is a {type(payload).__name__}, not serialized bytes")
        p = safe_load(payload, what=f"{where} payload")
        if not isinstance(p, dict) or set(p) != _PAYLOAD_KEYS:
            raise CorruptFileError(f"{where}: the payload is not a request record (keys "
                                   f"{sorted(p) if isinstance(p, dict) else type(p).__name__})")
        n, e, f = self.num_nodes, self.num_edges, self.num_features

        def ids(value, name, high, allow_none=False):
            if value is None and allow_none:
                return
            if (not isinstance(value, Tensor) or value.layout != torch.strided or value.device.type != "cpu"
                    or value.dtype != torch.long or value.dim() != 1
                    or (value.numel() and (int(value.min()) < 0 or int(value.max()) >= high))
                    or (name != "feature_columns" and not name.startswith("hops") and value.numel() > 1
                        and not bool((value[1:] > value[:-1]).all()))):
                raise CorruptFileError(f"{where}: {name} must be 1-D int64 ids in 0..{high - 1} (sorted, unique), "
                                       f"got {_describe(value)}")

        for name in ("node_ids", "feature_node_ids"):
            ids(p[name], name, n)
        ids(p["edge_ids"], "edge_ids", e)
        ids(p["feature_columns"], "feature_columns", f, allow_none=True)
        # the neighbourhood is derived data: journaled once known, else None and computed when read
        if (p["hops"] is None) != (p["subgraph_edge_ids"] is None):
            raise CorruptFileError(f"{where}: hops and subgraph_edge_ids must both be given or both be None")
        if p["hops"] is not None:
            ids(p["subgraph_edge_ids"], "subgraph_edge_ids", e)
            if not isinstance(p["hops"], (list, tuple)) or not p["hops"]:
                raise CorruptFileError(f"{where}: hops must be a non-empty list of id tensors")
            for h, layer in enumerate(p["hops"]):
                ids(layer, f"hops[{h}]", n)
        p = _to_device(p, self.device)  # checked on the CPU, where it was loaded; used on the store's device
        params = p["params"]
        allowed = {"edge_class": {"edge_class"}, "node_class": {"node_class"}}.get(kind, set())
        if (not isinstance(params, dict) or set(params) != allowed
                or any(type(v) is not int for v in params.values())):
            raise CorruptFileError(f"{where}: params must be {sorted(allowed) or '{}'} with integer values, got "
                                   f"{params!r:.100}")
        needs = {"edges": "edge_ids", "edge_class": "edge_ids", "nodes": "node_ids", "node_class": "node_ids",
                 "node_features": "feature_node_ids"}[kind]
        if p[needs].numel() == 0:
            raise CorruptFileError(f"{where}: a {kind} request with no {needs}")
        if kind == "node_features" and self.x is None:
            raise CorruptFileError(f"{where}: a node_features request for a store without features")
        # what each kind may carry: a row that does more than its kind (a node's features with an edges
        # request, a class's edges that are not of that class) is not one the store wrote
        must_be_empty = {"edges": ("node_ids", "feature_node_ids"), "edge_class": ("node_ids", "feature_node_ids"),
                         "nodes": ("feature_node_ids",), "node_class": ("feature_node_ids",),
                         "node_features": ("node_ids", "edge_ids")}[kind]
        for name in must_be_empty:
            if p[name].numel():
                raise CorruptFileError(f"{where}: a {kind} request cannot carry {name}")
        if kind != "node_features" and p["feature_columns"] is not None:
            raise CorruptFileError(f"{where}: a {kind} request cannot carry feature_columns")
        if kind == "edge_class" and (self.edge_type is None or
                                     not bool((self.edge_type[p["edge_ids"]] == params["edge_class"]).all())):
            raise CorruptFileError(f"{where}: its edges are not all of class {params['edge_class']}")
        if kind == "node_class" and (self.y is None or self.y.dim() != 1 or
                                     not bool((self.y[p["node_ids"]] == params["node_class"]).all())):
            raise CorruptFileError(f"{where}: its nodes are not all of class {params['node_class']}")
        return DeletionRequest.from_payload(req_id, kind, created, p, store_uid=self.uid, device=self.device,
                                            lazy=_neighbourhood_of(self))

    def _check_applicable(self, req: DeletionRequest, source: Path) -> None:
        """A replayed request deletes only live elements, as it did when it was journaled, and a node request
        takes exactly the nodes' live incident edges with it."""
        where = f"{source}: row {req.id} ({req.kind})"
        dead_n = req.node_ids[~self.node_mask[req.node_ids]]
        dead_e = req.edge_ids[~self.edge_mask[req.edge_ids]]
        if dead_n.numel() or dead_e.numel():
            raise CorruptFileError(f"{where} deletes nodes {_fmt(dead_n)} / edges {_fmt(dead_e)} that are already "
                                   "deleted: the journal does not match the snapshot")
        if req.kind in ("nodes", "node_class") and not torch.equal(req.edge_ids,
                                                                    self._live_incident_edges(req.node_ids)):
            raise CorruptFileError(f"{where}: its edges are not the live edges of its nodes")
        if req.kind == "node_features":
            rows = req.feature_node_ids
            cells = self.feature_mask[rows] if self.feature_mask is not None else None
            if cells is not None and req.feature_columns is not None:
                cells = cells[:, req.feature_columns]
            if not bool(self.node_mask[rows].all()) or (cells is not None and not bool(cells.all())):
                raise CorruptFileError(f"{where}: deletes feature values that are already deleted")

    def _check_snapshot(self, file: Path) -> None:
        """The snapshot's masks say exactly what the journal's requests since the last compaction deleted:
        a deletion edited out of ``store.pt`` (a mask flipped back, ``compacted_through`` raised) is refused."""
        live_reqs = [r for r in self.requests if not r.redacted]
        dev = self.device
        node_by = torch.full((self.num_nodes,), -1, dtype=torch.long, device=dev)
        edge_by = torch.full((self.num_edges,), -1, dtype=torch.long, device=dev)
        fmask = torch.ones(self.x.shape, dtype=torch.bool, device=self.x.device) if self.x is not None else None
        for r in live_reqs:
            node_by[r.node_ids] = r.id
            edge_by[r.edge_ids] = r.id
            if r.feature_node_ids.numel():
                cols = slice(None) if r.feature_columns is None else r.feature_columns.unsqueeze(0)
                fmask[r.feature_node_ids.unsqueeze(1), cols] = False
        for what, expected, by, mask in (("node", node_by, self.node_deleted_by, self.node_mask),
                                         ("edge", edge_by, self.edge_deleted_by, self.edge_mask)):
            bad = ((expected != by) | (mask != (by == -1))).nonzero().squeeze(1)
            if bad.numel():
                k = int(bad[0])
                says = f"deleted by request {int(expected[k])}" if expected[k] >= 0 else "live"
                more = f" (and {bad.numel() - 1} more)" if bad.numel() > 1 else ""
                raise CorruptFileError(f"{file}: {what} {k} is {'live' if bool(mask[k]) else 'deleted'} (by request "
                                       f"{int(by[k])}) in the snapshot, but the journal says {says}{more}")
        dead = ~self.node_mask
        if self.num_edges and bool((self.edge_mask & (dead[self.edge_index[0]] | dead[self.edge_index[1]])).any()):
            raise CorruptFileError(f"{file}: a live edge touches a deleted node")
        if fmask is not None:
            stored = self.feature_mask if self.feature_mask is not None else torch.ones_like(fmask)
            if bool((~fmask & stored).any()):
                raise CorruptFileError(f"{file}: a deleted feature value is live again in the snapshot")
            erased = ~stored & fmask  # deleted by requests already compacted: their values must be gone
            if bool((self.x[erased] != 0).any()):
                raise CorruptFileError(f"{file}: feature values the snapshot calls compacted are still there")

    def check_request(self, request) -> DeletionRequest:
        """Return ``request`` if it is a live record of this store; raise a clear error otherwise.

        Raises:
            TypeError: ``request`` is not a :class:`~graphunlearn.DeletionRequest`.
            ValueError: it was registered with another store (another ``uid``), names a request id this
                store never issued, or was compacted (its ids were erased by ``compact()``), including a
                record kept from before the compaction.
        """
        if not isinstance(request, DeletionRequest):
            raise TypeError(f"expected a DeletionRequest, got {type(request).__name__}: {request!r:.80}")
        if request.store_uid != self.uid:
            raise ValueError(f"request {request.id} ({request.kind}) was registered with another store "
                             f"(store uid {request.store_uid or '?'}, this store's is {self.uid})")
        known = self.requests[request.id] if 0 <= request.id < len(self.requests) else None  # requests[k].id == k
        if known is None or known.kind != request.kind or known.created != request.created:
            raise ValueError(f"request {request.id} ({request.kind}) is not a request of this store "
                             f"(it holds requests 0..{len(self.requests) - 1})")
        if known.redacted or request.redacted:
            raise ValueError(f"request {request.id} ({request.kind}) was compacted: compact() erased its ids, so "
                             "it can no longer be unlearned or inspected")
        return known

    def check_requests(self, requests, *, where: str = "check_requests", name: str = "requests"
                       ) -> tuple[DeletionRequest, ...]:
        """One request or a list or tuple of them, as a non-empty tuple of this store's live requests.

        Raises:
            TypeError: ``requests`` is neither a request nor a list or tuple, or holds something else.
            ValueError: it is empty, or a request is another store's or compacted (see :meth:`check_request`).
        """
        if isinstance(requests, DeletionRequest):
            requests = (requests,)
        elif isinstance(requests, (list, tuple)):
            requests = tuple(requests)
        else:
            raise TypeError(f"{where}: {name} must be a DeletionRequest or a list or tuple of them, got "
                            f"{type(requests).__name__}: {requests!r:.80}")
        if not requests:
            raise ValueError(f"{where}: no request given: {name} holds no request")
        # the store's own records: after store.to(device) they hold ids on the store's device
        return tuple(self.check_request(r) for r in requests)

    def record_forgotten(self, model_tag: str, request_ids) -> None:
        """Note that the model tagged ``model_tag`` has forgotten ``request_ids`` (persisted by the next
        ``save``/``checkpoint``). ``graphunlearn.unlearn`` calls this.

        Raises:
            TypeError: an empty or non-str tag. DeletionError: ids that are not ints or not requests this store
            issued.
        """
        if not isinstance(model_tag, str) or not model_tag:
            raise TypeError(f"record_forgotten: model_tag must be a non-empty str, got {model_tag!r}")
        new = _as_index_tensor(request_ids, "record_forgotten: request_ids").reshape(-1).tolist()
        unknown = [i for i in new if not 0 <= i < self._next_id]
        if unknown:
            raise DeletionError(f"record_forgotten: request ids {_fmt(unknown)} are not requests of this store "
                                f"(it issued 0..{self._next_id - 1})")
        ids = sorted(set(self.forgotten.get(model_tag, [])) | set(new))
        self.forgotten[model_tag] = ids

    def forgotten_by(self, model_tag: str) -> list[int]:
        """Ids of the requests the model tagged ``model_tag`` has forgotten."""
        return list(self.forgotten.get(model_tag, []))

    # ------------------------------------------------------------------ audit
    def state_hash(self, *, uid: bool = True) -> str:
        r"""SHA-256 (hex) of what the store holds: its uid, the graph's arrays (``edge_index``, ``x``, ``y``,
        types, weights, other attributes), the deletion masks (nodes, edges, feature values), who deleted what
        (``*_deleted_by``), the next request id and how far it is compacted. Two stores with equal hashes
        hand every model the same live graph. With ``uid=False``, the uid is left out: the content hash that
        two stores built alike from the same graph share (what the ranks of a data-parallel job compare).
        The ledger of which model forgot what (:meth:`record_forgotten`)
        is not part of it: it records models, not data.

        The arrays are hashed once and again only when one of them is replaced or changed in place (tensor
        version counters tell; cost O(size of the graph)); the masks are hashed on every call (O(N + E), plus
        N x F once features were deleted).
        """
        arrays = [(name, getattr(self, name)) for name in ("edge_index", "x", "y", "node_type", "edge_type",
                                                           "edge_weight")]
        arrays += [(f"{kind}.{name}", attrs[name]) for kind, attrs in (("node", self.node_attrs),
                                                                      ("edge", self.edge_attrs))
                   for name in sorted(attrs)]
        key = tuple((name, None if t is None else (t.data_ptr(), t._version, tuple(t.shape))) for name, t in arrays)
        if self._content_digest is None or self._content_digest[0] != key:
            h = hashlib.sha256(f"graphunlearn store|{self.num_nodes}|{self.undirected}|".encode())
            for name, t in arrays:
                hash_tensor(h, name, t)
            self._content_digest = (key, h.digest())
        h = hashlib.sha256(self._content_digest[1])
        h.update(f"|{self.uid if uid else ''}|{self._next_id}|{self._compacted_through}|".encode())
        for name in ("node_mask", "edge_mask", "feature_mask", "node_deleted_by", "edge_deleted_by"):
            hash_tensor(h, name, getattr(self, name))
        return h.hexdigest()

    @property
    def compacted_through(self) -> int:
        """The last request whose ids :meth:`compact` erased (``-1``: never compacted)."""
        return self._compacted_through

    @property
    def journaled(self) -> bool:
        """``True`` for a saved store: its requests are journaled in its folder."""
        return self._dir is not None

    def journal_chain(self, request_id: int, *, verify: bool = False) -> str | None:
        """The journal's chain hash (hex) at ``request_id`` (``-1``: the hash the first row chains to), as
        :class:`~graphunlearn.io.Journal` computes it; ``None`` for a store that was never saved. With
        ``verify``, the whole journal file is re-read and checked first (its rows, digests and chain).

        Raises:
            DeletionError: ``request_id`` is not ``-1`` or a request of this store.
            CorruptFileError: (``verify``) the journal file was edited, truncated or damaged, naming the row.
            RuntimeError: the saved store was closed.
        """
        rid = _scalar_id(request_id, "journal_chain: request_id")
        if not -1 <= rid < self._next_id:
            raise DeletionError(f"journal_chain: request {rid} is not a request of this store (it issued "
                                f"0..{self._next_id - 1})")
        if self._dir is None:
            return None
        with self._reading_journal("journal_chain") as journal:
            if verify:
                journal.verify()
            chain = journal.chain_at(rid)
        return None if chain is None else chain.hex()

    def journal_payload_erased(self, request_id: int) -> bool | None:
        """Whether the journal row of ``request_id`` no longer holds its ids (redacted by :meth:`compact`);
        ``None`` for a store that was never saved or a request the journal does not hold."""
        if self._dir is None:
            return None
        with self._reading_journal("journal_payload_erased") as journal:
            return journal.is_redacted(int(request_id))

    @contextmanager
    def _reading_journal(self, what: str):
        """The store's open journal, or (a read-only store keeps none open) the folder's, opened read-only for
        the block."""
        if self._journal is not None:
            yield self._journal
            return
        if not self._read_only:
            raise RuntimeError(f"{what}: the store at {self._dir} was closed; reopen it with GraphStore.open")
        journal = Journal(self._dir / self._journal_name, store_uid=self.uid, read_only=True)
        try:
            yield journal
        finally:
            journal.close()

    @property
    def read_only(self) -> bool:
        """``True`` for a store opened with ``GraphStore.open(path, read_only=True)``."""
        return self._read_only

    def _require_open(self) -> None:
        self._require_writable("this request")

    def _require_writable(self, what: str) -> None:
        if self._interrupted is not None:
            where = (f"reopen it with GraphStore.open({str(self._dir)!r}), which applies the journaled request "
                     "in full" if self._dir is not None else "rebuild the store")
            raise RuntimeError(f"{what}: request {self._interrupted} was interrupted while being applied, so this "
                               f"store's memory may be half changed; {where}")
        if self._read_only:
            raise RuntimeError(f"{what}: the store at {self._dir} was opened read_only; open it with "
                               "GraphStore.open(path) to change it")
        if self._lock is not None and not self._lock.held:  # a forked child's copy gives its lock up
            raise RuntimeError(f"{what}: this copy of the store at {self._dir} does not hold its writer lock (it "
                               "was inherited by a forked process); open the folder again here to change it")
        if self._dir is not None and self._journal is None:
            raise RuntimeError(f"{what}: the store was closed: reopen it with GraphStore.open({str(self._dir)!r}) "
                               "so that changes are journaled")

    def close(self) -> None:
        """Close the journal of a saved store and release its writer lock; later requests, ``save`` and
        compaction are refused until it is reopened."""
        if self._journal is not None:
            self._journal.close()
            self._journal = None
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def __enter__(self) -> GraphStore:
        return self

    def __exit__(self, *exc) -> bool:
        self.close()
        return False

    # ------------------------------------------------------------------ erasure
    def compact(self) -> Compaction:
        """Physically remove deleted nodes, edges and feature values; returns old-to-new id maps.

        Afterwards the store no longer holds the erased values or ids, in memory (its caches are zeroed and
        rebuilt) or, when saved, in its folder: the snapshot is rewritten, past requests keep their id, kind
        and time but their ids and payloads are redacted, the journal is vacuumed with ``secure_delete`` on,
        and temporary files are removed. The new snapshot is the commit point; a crash after it is finished
        by the next :meth:`open`; a failure before it leaves the store as it was. Request objects kept from
        before are refused by ``check_request``, and views (``store.live()``) taken before are invalidated
        (their tensors are zeroed with the caches): take new ones.

        Raises:
            RuntimeError: the store is closed or read-only.
        """
        self._require_writable("compact")
        nodes = self.node_mask.nonzero().squeeze(1)
        edges = self.edge_mask.nonzero().squeeze(1)
        dev = self.device
        node_map = torch.full((self.num_nodes,), -1, dtype=torch.long, device=dev)
        node_map[nodes] = torch.arange(nodes.numel(), device=dev)
        edge_map = torch.full((self.num_edges,), -1, dtype=torch.long, device=dev)
        edge_map[edges] = torch.arange(edges.numel(), device=dev)
        x = self.live_x()
        feature_mask = None if self.feature_mask is None else self.feature_mask[nodes].clone()

        def take(t, idx):
            return None if t is None else t[idx].clone()

        state = {
            "num_nodes": nodes.numel(), "undirected": self.undirected, "num_hops": self.num_hops,
            "edge_index": node_map[self.edge_index[:, edges]], "x": take(x, nodes), "y": take(self.y, nodes),
            "node_type": take(self.node_type, nodes), "edge_type": take(self.edge_type, edges),
            "edge_weight": take(self.edge_weight, edges),
            "node_attrs": {k: take(v, nodes) for k, v in self.node_attrs.items()},
            "edge_attrs": {k: take(v, edges) for k, v in self.edge_attrs.items()},
            "feature_mask": feature_mask, "uid": self.uid, "next_id": self._next_id,
            "compacted_through": self._next_id - 1, "forgotten": self.forgotten,
        }
        requests = [DeletionRequest(id=r.id, kind=r.kind, params=r.params, created=r.created, redacted=True,
                                    store_uid=self.uid).to(dev) for r in self.requests]

        def swap():  # memory follows the disk: only once the new snapshot is in place (or there is no disk)
            self._scrub()
            self._load_state(state)
            self.requests, self._user_storages = requests, frozenset()

        if self._dir is None:
            swap()
            return Compaction(node_map=node_map, edge_map=edge_map)
        self._check_journal_head("compact")
        with FolderLock(self._dir, STATE_LOCK, blocking=True):
            snapshot = GraphStore._blank(state)._state(self._journal_name, self._journal.head)
            # a failure before the rename changes nothing; once commit_temp returns the disk is compacted
            commit_temp(write_temp(snapshot, self._dir / STATE_FILE), self._dir / STATE_FILE)
            swap()
            fsync_dir(self._dir)
            self._journal.redact_through(self._compacted_through)
            _remove_strays(self._dir, keep=self._journal_name)
        return Compaction(node_map=node_map, edge_map=edge_map)

    def _check_journal_head(self, what: str) -> None:
        head = self._journal.head[0]
        if head != self._next_id - 1:  # never write a snapshot that does not match its journal
            raise RuntimeError(f"{what}: the journal ends at request {head} but the store at {self._next_id - 1}; "
                               f"reopen it with GraphStore.open({str(self._dir)!r})")

    def _scrub(self) -> None:
        """Zero every tensor the store holds, in place, before dropping it, so that no copy of an erased value
        or id (a feature, an edge weight, a cached degree, CSR slots, pair keys) survives in memory. Tensors
        that share storage with the user's input ``Data`` are never written. Views handed out before (a
        ``LiveGraph``) are invalidated with it: take a new ``store.live()`` after ``compact()``."""
        held = [getattr(self, n, None) for n in CACHE_ATTRS]
        held += [self.x, self.y, self.node_type, self.edge_type, self.edge_weight, self.edge_index,
                 *self.node_attrs.values(), *self.edge_attrs.values()]
        seen: set[int] = set()
        for t in _tensors_in(held):
            ptr = (t.device, t.untyped_storage().data_ptr())
            if t.numel() and ptr not in self._user_storages and ptr not in seen:
                seen.add(ptr)
                t.zero_()
        for name in CACHE_ATTRS:
            setattr(self, name, None)


def _neighbourhood_of(store: GraphStore):
    """What a request calls to compute its neighbourhood when first read: the store's
    :meth:`GraphStore._neighbourhood`, held weakly (a request kept after its store is gone says so)."""
    ref = weakref.ref(store)

    def compute(req: DeletionRequest):
        owner = ref()
        if owner is None:
            raise RuntimeError(f"request {req.id}: its neighbourhood was never read, and its store is gone")
        if req.id <= owner._compacted_through:  # a record kept from before compact(): its ids are gone
            raise RuntimeError(f"request {req.id} was compacted: its ids were erased from the store, and with "
                               "them its neighbourhood")
        return owner._neighbourhood(req)

    return compute


def journal_path(folder: str | os.PathLike) -> Path:
    """The journal file of the store saved in ``folder`` (the one its snapshot names)."""
    folder = Path(folder)
    state = safe_load(folder / STATE_FILE)
    _check_state(state, folder / STATE_FILE)
    return folder / (state["journal"] if state["format"] == FORMAT_VERSION else "journal.sqlite")


_JOURNAL_NAME = re.compile(r"journal-[0-9a-f]{16}\.sqlite")


def _journal_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("journal*.sqlite") if p.name == "journal.sqlite" or
                  _JOURNAL_NAME.fullmatch(p.name))


def _storages(data: Data) -> frozenset[tuple[torch.device, int]]:
    """The storages behind a ``Data``'s tensors (views included), as ``(device, data_ptr)``: addresses on
    different devices are different storages."""
    return frozenset((v.device, v.untyped_storage().data_ptr()) for v in data.to_dict().values()
                     if isinstance(v, Tensor))


# The store's state tensors besides node_attrs / edge_attrs (what to() moves).
_STATE_TENSORS = ("edge_index", "x", "y", "node_type", "edge_type", "edge_weight", "node_mask", "edge_mask",
                  "feature_mask", "node_deleted_by", "edge_deleted_by")


def _to_device(obj, device: torch.device):
    """``obj`` with every tensor in it (looking inside dicts, lists and tuples, which are rebuilt) moved to
    ``device``; a tensor already there is kept as it is, not copied."""
    if isinstance(obj, Tensor):
        return obj.to(device)
    if isinstance(obj, dict):
        return {k: _to_device(v, device) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_to_device(v, device) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_to_device(v, device) for v in obj)
    return obj


def _tensors_in(objs) -> list[Tensor]:
    """Every tensor in ``objs``, looking inside tuples, lists, dicts and objects' attributes (CSR, PairIndex),
    one level deep."""
    out = []
    for obj in objs:
        if isinstance(obj, Tensor):
            out.append(obj)
        elif isinstance(obj, (tuple, list)):
            out += _tensors_in(obj)
        elif isinstance(obj, dict):
            out += _tensors_in(obj.values())
        elif hasattr(obj, "__dict__"):
            out += [v for v in vars(obj).values() if isinstance(v, Tensor)]
    return out


def _folder_arg(path, what: str) -> Path:
    """A folder argument as an absolute path (so that another spelling of the same folder is the same)."""
    if not isinstance(path, (str, os.PathLike)) or isinstance(path, bytes):
        raise TypeError(f"{what}: path must be a str or os.PathLike, got {_describe(path)}")
    return Path(path).resolve()


def _unlink_quietly(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass


def _remove_strays(folder: Path, keep: str) -> None:
    """Remove what a crash or a replaced store left in a store folder: temporary snapshot files (which hold
    the full state, deleted values included) and every journal but ``keep`` with its SQLite side files.
    Only names this module writes are touched. Call with the folder's state lock held."""
    doomed = list(folder.glob(f"{STATE_FILE}.*.tmp"))
    for journal in _journal_files(folder):
        if journal.name != keep:
            doomed += [journal] + [journal.with_name(journal.name + s) for s in ("-journal", "-wal", "-shm")]
    for path in doomed:
        _unlink_quietly(path)


def _remove_leftovers_of_a_failed_save(folder: Path) -> str:
    """A folder without a snapshot may still hold what a save that died before its commit point wrote (a
    journal with payloads, a temporary snapshot with every value): remove those files of ours, under the
    writer lock. Returns a note for the error message."""
    if not folder.is_dir() or not (list(folder.glob(f"{STATE_FILE}.*.tmp")) or _journal_files(folder)):
        return ""
    with FolderLock(folder, WRITER_LOCK), FolderLock(folder, STATE_LOCK, blocking=True):
        _remove_strays(folder, keep="")
    return "; removed the files an interrupted save() had left there"


def _describe(value) -> str:
    if isinstance(value, Tensor):
        return f"a {value.dtype} tensor of shape {tuple(value.shape)}"
    return f"{type(value).__name__} {value!r:.60}"


def _check_state(s, file: Path) -> None:
    """Check a loaded snapshot field by field before any of it is used; CorruptFileError names the field."""
    def bad(field: str, why: str):
        raise CorruptFileError(f"{file}: field {field!r} {why}")

    if not isinstance(s, dict):
        raise CorruptFileError(f"{file}: not a GraphStore snapshot (a {type(s).__name__})")
    fmt = s.get("format")
    if fmt not in (1, FORMAT_VERSION):
        raise CorruptFileError(f"{file}: unsupported format {fmt!r}, expected {FORMAT_VERSION} (or 1)")
    required = {"num_nodes", "undirected", "num_hops", "edge_index", "x", "y", "node_type", "edge_type",
                "edge_weight", "node_attrs", "edge_attrs", "node_mask", "edge_mask", "next_id"}
    if fmt == FORMAT_VERSION:
        required |= {"uid", "journal", "journal_head", "compacted_through"}
    missing = sorted(required - set(s))
    if missing:
        raise CorruptFileError(f"{file}: not a complete GraphStore snapshot: fields {missing} are missing")
    for name in ("num_nodes", "num_hops", "next_id"):
        if type(s[name]) is not int or s[name] < 0:
            bad(name, f"must be a non-negative int, got {s[name]!r:.40}")
    if type(s["undirected"]) is not bool:
        bad("undirected", "must be a bool")
    n = s["num_nodes"]
    ei = s["edge_index"]
    if not isinstance(ei, Tensor) or ei.dtype != torch.long or ei.dim() != 2 or ei.size(0) != 2:
        bad("edge_index", f"must be an int64 tensor [2, E], got {_describe(ei)}")
    if ei.numel() and (int(ei.min()) < 0 or int(ei.max()) >= n):
        bad("edge_index", f"holds node ids outside 0..{n - 1}")
    e = ei.size(1)

    def tensor(name, rows, *, dtype=None, floating=None, dim=None, optional=True, value=None):
        """The same rules the constructor applies (``_canonical_state``), so whatever it built loads back."""
        t = s.get(name) if value is None else value
        if t is None and optional:
            return
        want = [f"{rows} rows"] + ([f"dtype {dtype}"] if dtype is not None else []) + (
            [f"{dim} dimensions"] if dim is not None else []) + (
            ["a floating dtype" if floating else "an integer dtype"] if floating is not None else [])
        if (not isinstance(t, Tensor) or t.layout != torch.strided or t.dim() == 0 or t.size(0) != rows
                or (dtype is not None and t.dtype != dtype) or (dim is not None and t.dim() != dim)
                or (floating is not None and t.is_floating_point() != floating)):
            bad(name, f"must be a dense tensor with {', '.join(want)}, got {_describe(t)}")

    tensor("x", n, dim=2)
    tensor("y", n)
    tensor("node_type", n)
    tensor("edge_type", e, floating=False, dim=1)
    tensor("edge_weight", e, floating=True, dim=1)
    tensor("node_mask", n, dtype=torch.bool, dim=1, optional=False)
    tensor("edge_mask", e, dtype=torch.bool, dim=1, optional=False)
    tensor("node_deleted_by", n, dtype=torch.long, dim=1, optional=fmt == 1)
    tensor("edge_deleted_by", e, dtype=torch.long, dim=1, optional=fmt == 1)
    if s.get("feature_mask") is not None:
        fm, x = s["feature_mask"], s["x"]
        if x is None or not isinstance(fm, Tensor) or fm.dtype != torch.bool or fm.shape != x.shape:
            bad("feature_mask", f"must be a bool tensor shaped like x, got {_describe(fm)}")
    for group, rows in (("node_attrs", n), ("edge_attrs", e)):
        if not isinstance(s[group], dict) or not all(isinstance(k, str) for k in s[group]):
            bad(group, "must be a dict of named tensors")
        for k, v in s[group].items():
            tensor(f"{group}[{k!r}]", rows, optional=False, value=v)
    ct = s.get("compacted_through", -1)
    if type(ct) is not int or not -1 <= ct <= s["next_id"] - 1:
        bad("compacted_through", f"must be an int in -1..{s['next_id'] - 1}, got {ct!r:.40}")
    forgotten = s.get("forgotten", {})
    if not isinstance(forgotten, dict) or not all(isinstance(k, str) and isinstance(v, list) and
                                                  all(type(i) is int for i in v) for k, v in forgotten.items()):
        bad("forgotten", "must map model tags to lists of request ids")
    if fmt == FORMAT_VERSION:
        if not isinstance(s["uid"], str) or not re.fullmatch(r"[0-9a-f]{32}", s["uid"]):
            bad("uid", f"must be a 32-digit hex string, got {s['uid']!r:.40}")
        if not isinstance(s["journal"], str) or not _JOURNAL_NAME.fullmatch(s["journal"]):
            bad("journal", f"must name a journal file in the folder (journal-<16 hex>.sqlite), got "
                           f"{s['journal']!r:.60}")
        head = s["journal_head"]
        if (not isinstance(head, tuple) or len(head) != 2 or type(head[0]) is not int
                or not isinstance(head[1], bytes) or len(head[1]) != 32):
            bad("journal_head", "must be (request id, 32-byte hash)")


def edge_endpoints(edges, t: Tensor, layout: str, what: str) -> tuple[Tensor, Tensor]:
    """``(u, v)`` from a 2-D edge input ``t`` (the tensor form of the user's ``edges``) read as ``layout``:
    ``"edge_index"`` [2, K], ``"pairs"`` [K, 2], or ``"auto"`` (a list of tuples, or [K, 2] with K != 2, is
    pairs; else an edge_index; [2, 2] is ambiguous unless given as tuples).

    Raises:
        DeletionError: 1-D ids asked for, an ambiguous [2, 2], or a shape the layout does not allow; ``what``
            names the caller.
    """
    rows, cols = t.shape
    if layout == "ids":
        raise DeletionError(f"{what}: layout='ids' needs 1-D edge ids, got shape {tuple(t.shape)}")
    if layout == "auto":
        tuples = isinstance(edges, (list, tuple)) and all(isinstance(e, tuple) for e in edges)
        if (rows, cols) == (2, 2) and not tuples:
            raise DeletionError(f"{what}: a [2, 2] input is ambiguous (an edge_index of 2 edges, or 2 (u, v) "
                                "pairs): pass layout='edge_index' or layout='pairs'")
        layout = "pairs" if tuples or (cols == 2 and rows != 2) else "edge_index"
    if layout == "edge_index" and rows != 2:
        raise DeletionError(f"{what}: an edge_index must have shape [2, K], got {tuple(t.shape)} (a [K, 2] "
                            "tensor of pairs: pass layout='pairs')")
    if layout == "pairs":
        if cols != 2:
            raise DeletionError(f"{what}: (u, v) pairs must have two entries each, got shape {tuple(t.shape)}: "
                                f"{[tuple(r) for r in t[:5].tolist()]}")
        t = t.t()
    return t[0], t[1]


def _positions_by_edge(slot_eid: Tensor, num_edges: int) -> tuple[Tensor, Tensor]:
    """A CSR from edge id to the CSR positions that carry it: ``(ptr [E + 1], positions [S])``."""
    return sort_by_row(slot_eid, num_edges)


_INT64 = (-(2 ** 63), 2 ** 63 - 1)
EDGE_LAYOUTS = ("auto", "ids", "pairs", "edge_index")


def _scalar_id(value, name: str) -> int:
    """One integer id: ints and NumPy/0-d integer tensors; never a bool, float, string or None."""
    if isinstance(value, Tensor):
        if value.layout != torch.strided or value.device.type == "meta":
            raise DeletionError(f"{name}: expected an integer, got a {value.layout} tensor on {value.device}")
        if value.numel() != 1:
            raise DeletionError(f"{name} must be one integer, got a tensor of shape {tuple(value.shape)}")
        if value.is_floating_point() or value.is_complex() or value.dtype == torch.bool:
            raise DeletionError(f"{name}: {value!r} is not an integer id (dtype {value.dtype})")
        value = int(value)
    if isinstance(value, bool) or type(value).__name__ == "bool_" or not hasattr(value, "__index__"):
        raise DeletionError(f"{name}: {value!r} ({type(value).__name__}) is not an integer id")
    try:
        out = operator.index(value)
    except TypeError as exc:
        raise DeletionError(f"{name}: {value!r} ({type(value).__name__}) is not an integer id") from exc
    if not _INT64[0] <= out <= _INT64[1]:
        raise DeletionError(f"{name}: {out} is outside the int64 range of ids")
    return out


def _as_index_tensor(values, name: str, *, max_dim: int = 1, device: torch.device | str = "cpu") -> Tensor:
    """``values`` as an int64 tensor of ids (1-D, or up to ``max_dim`` dimensions) on ``device`` (default CPU).

    Accepts integer tensors and NumPy arrays, a single int, and lists, tuples, ranges, sets (sorted) and
    iterators of ints (or, with ``max_dim=2``, of equal-length sequences of ints). Refuses, with a
    :class:`DeletionError` naming ``name`` and the offending value: ``None``, strings, bools (``True`` is
    not node 1), floats, empty input, values outside int64, ragged or too-deep nesting.
    """
    if values is None or isinstance(values, (str, bytes, bytearray, memoryview, dict)):
        raise DeletionError(f"{name}: expected integer ids, got {_describe(values)}")
    if isinstance(values, Tensor) and (values.layout != torch.strided or values.device.type == "meta"):
        raise DeletionError(f"{name}: expected a dense tensor of integer ids, got {_describe(values)} "
                            f"({values.layout}, device {values.device})")
    if isinstance(values, Tensor) or type(values).__module__ == "numpy":
        try:
            t = torch.as_tensor(values, device=values.device if isinstance(values, Tensor) else "cpu")
        except (TypeError, ValueError, RuntimeError) as exc:
            raise DeletionError(f"{name}: expected integer ids, got {_describe(values)}") from exc
        if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
            raise DeletionError(f"{name}: expected integer ids, got dtype {t.dtype}")
        if t.dim() == 0:
            t = t.reshape(1)
    elif hasattr(values, "__index__") or isinstance(values, bool):
        t = torch.tensor([_scalar_id(values, name)], device="cpu")
    elif hasattr(values, "__iter__"):
        items = sorted(values) if isinstance(values, (set, frozenset)) else list(values)
        rows = []
        for item in items:
            if not isinstance(item, (str, bytes)) and hasattr(item, "__len__") and not (
                    isinstance(item, Tensor) and item.dim() == 0):
                rows.append([_scalar_id(v, name) for v in item])
            else:
                rows.append(_scalar_id(item, name))
        nested = [isinstance(r, list) for r in rows]
        if any(nested) and not all(nested):
            raise DeletionError(f"{name}: mixes single ids and sequences: {items[:5]!r:.100}")
        if any(nested) and len({len(r) for r in rows}) > 1:
            raise DeletionError(f"{name}: rows of different lengths: {items[:5]!r:.100}")
        t = torch.tensor(rows, dtype=torch.long, device="cpu") if rows else torch.empty(0, dtype=torch.long,
                                                                                       device="cpu")
    else:
        raise DeletionError(f"{name}: expected integer ids (a tensor, a list or an int), got {_describe(values)}")
    if t.numel() == 0:
        raise DeletionError(f"{name}: empty request: no ids given")
    if t.dim() > max_dim:
        raise DeletionError(f"{name}: expected {'a 1-D list of ids' if max_dim == 1 else 'ids or pairs'}, got "
                            f"shape {tuple(t.shape)}")
    return t.long().to(device)


def _canonical_state(data: Data, undirected: bool | None, device: torch.device) -> dict:
    """Validate ``data`` and turn it into the store's base arrays (one id per undirected edge) on ``device``
    (the tensors of ``data`` there already are kept as they are, not copied)."""
    num_nodes = data.num_nodes
    ei = data.edge_index
    if ei is None:
        raise ValueError("GraphStore: data.edge_index is missing")
    if not isinstance(ei, Tensor) or ei.dim() != 2 or ei.size(0) != 2 or ei.is_floating_point():
        raise ValueError(f"GraphStore: data.edge_index must be an integer tensor [2, E], got "
                         f"{getattr(ei, 'shape', type(ei))} {getattr(ei, 'dtype', '')}")
    ei = ei.long().to(device)
    if num_nodes is None:
        num_nodes = int(ei.max()) + 1 if ei.numel() else 0
    if ei.numel() and (int(ei.min()) < 0 or int(ei.max()) >= num_nodes):
        bad = torch.unique(ei[(ei < 0) | (ei >= num_nodes)])
        raise ValueError(f"GraphStore: edge_index holds node ids {_fmt(bad)} outside 0..{num_nodes - 1}")
    num_in = ei.size(1)
    node_attrs, edge_attrs = {}, {}
    for key in data.keys():
        if key in _SPECIAL:
            continue
        value = data[key]
        if not isinstance(value, Tensor):
            continue
        if data.is_node_attr(key) and value.size(0) == num_nodes:
            node_attrs[key] = value.to(device)
        elif data.is_edge_attr(key) and value.size(0) == num_in:
            edge_attrs[key] = value.to(device)
    x, y, node_type = (t.to(device) if isinstance(t, Tensor) else t for t in (data.x, data.y, data.get("node_type")))
    for name, t in (("x", x), ("y", y), ("node_type", node_type)):
        if t is not None and (not isinstance(t, Tensor) or t.size(0) != num_nodes):
            raise ValueError(f"GraphStore: data.{name} must have {num_nodes} rows, got {getattr(t, 'shape', t)}")
    if x is not None and x.dim() != 2:
        raise ValueError(f"GraphStore: data.x must be 2-D [N, F], got shape {tuple(x.shape)}")
    edge_type, edge_weight = (t.to(device) if isinstance(t, Tensor) else t
                              for t in (data.get("edge_type"), data.get("edge_weight")))
    if edge_type is not None and (edge_type.shape != (num_in,) or edge_type.is_floating_point()):
        raise ValueError(f"GraphStore: data.edge_type must be integer [{num_in}], got {tuple(edge_type.shape)} "
                         f"{edge_type.dtype}")
    if edge_weight is not None and (edge_weight.shape != (num_in,) or not edge_weight.is_floating_point()):
        raise ValueError(f"GraphStore: data.edge_weight must be floating [{num_in}], got "
                         f"{tuple(edge_weight.shape)} {edge_weight.dtype}")
    if undirected is None:
        undirected = bool(_pyg_is_undirected(ei, num_nodes=num_nodes))
    per_edge = {"edge_type": edge_type, "edge_weight": edge_weight, **edge_attrs}
    if undirected and num_in:
        # One id per undirected edge: a column repeated in the same direction would be merged into one
        # edge, and PyG's layers count each copy, so such a multigraph is refused rather than changed.
        keys, counts = torch.unique(ei[0] * num_nodes + ei[1], return_counts=True)
        if bool((counts > 1).any()):
            k = int(keys[counts > 1][0])
            raise ValueError(f"GraphStore: edge ({k // num_nodes}, {k % num_nodes}) appears {int(counts.max())} "
                             "times in edge_index; an undirected store keeps each edge once: coalesce it "
                             "(torch_geometric.utils.coalesce) or pass undirected=False to keep parallel edges")
    if undirected:
        canon, first, inverse = undirected_unique(ei, num_nodes)
        for name, value in per_edge.items():
            if value is None or num_in == 0:
                continue
            differs = (value[first][inverse] != value).reshape(num_in, -1).any(dim=1)
            if bool(differs.any()):
                k = int(differs.nonzero()[0])
                raise ValueError(f"GraphStore: undirected edge ({int(ei[0, k])}, {int(ei[1, k])}) has different "
                                 f"{name} values in its two directions; pass undirected=False to keep both")
        ei = canon
        per_edge = {k: (None if t is None else t[first]) for k, t in per_edge.items()}
    return {
        "num_nodes": num_nodes, "undirected": undirected, "edge_index": ei, "x": x, "y": y,
        "node_type": node_type, "edge_type": per_edge.pop("edge_type"), "edge_weight": per_edge.pop("edge_weight"),
        "node_attrs": node_attrs, "edge_attrs": per_edge,
    }
