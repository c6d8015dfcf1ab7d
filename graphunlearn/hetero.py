"""Heterogeneous graphs in the deletion-aware store: a ``HeteroData`` over one homogeneous :class:`GraphStore`.

A recommendation graph is usually a ``HeteroData`` holding a relation and its reverse, e.g.
``data['user', 'rates', 'item']`` plus ``data['item', 'rev_rates', 'user']`` as added by
``torch_geometric.transforms.ToUndirected()``. Stored as two unrelated directed relations, deleting a rating
would leave its reverse edge live, and messages would keep flowing from the deleted rating. The
:class:`HeteroGraphStore` ties every forward edge to its reverse: both are ONE edge of an undirected
:class:`~graphunlearn.GraphStore`, so every deletion removes both directions.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping

import torch
from torch import Tensor
from torch_geometric.data import Data, HeteroData
from torch_geometric.utils import is_undirected as _pyg_is_undirected

from .graph import PairIndex
from .requests import DeletionRequest
from .store import DeletionError, GraphStore, _as_index_tensor, _fmt, edge_endpoints

EdgeType = tuple[str, str, str]
_LAYOUTS = ("auto", "ids", "pairs", "edge_index")


def _show(edge_type: EdgeType) -> str:
    return "(" + ", ".join(repr(p) for p in edge_type) + ")"


class HeteroGraphStore:
    r"""A ``HeteroData`` held in one homogeneous :class:`~graphunlearn.GraphStore`, with type-aware deletion.

    **Layout.** Node types are laid out in ``data.node_types`` order, like ``HeteroData.to_homogeneous()``:
    the global (store) id of node ``i`` of type ``t`` is ``offset[t] + i`` with ``offset[t]`` the number of
    nodes of the types before ``t``; ``store.node_type[g]`` is the index of ``g``'s type in ``node_types``.
    Edge classes are relations: ``store.edge_type[e]`` is the index, in ``data.edge_types``, of the relation
    edge ``e`` is stored under (the forward relation of a pair), so ``store.delete_edge_class(c)`` revokes a
    relation and both of its directions.

    **Reverse relations.** A relation ``(s, r, d)`` and its reverse ``(d, r', s)`` are a pair when given as
    ``rev_edge_types={(s, r, d): (d, r', s)}`` (as for PyG's ``LinkNeighborLoader``) or, for the relations
    not named there, when detected as ``ToUndirected()`` makes them: ``r' == 'rev_' + r``. A same-type
    relation ``(s, r, s)`` whose ``edge_index`` is symmetric (``ToUndirected()`` merges those into one
    relation) is *symmetric*: its ``(u, v)`` and ``(v, u)`` are one edge; ``rev_edge_types={t: t}`` declares it
    explicitly. When any pair or symmetric relation exists, the store is undirected (``store.undirected``):
    each forward edge is stored once and its reverse is the same store edge, so deleting either direction
    deletes both. The reverse relation must hold exactly the flipped forward edges. A graph without pairs
    or symmetric relations is stored directed (``undirected=False``), one store edge per column of each
    relation; it warns (``UserWarning``) when two relations hold exactly each other's flipped edges without
    being named as a pair, since deleting from one would then leave the other live.

    **Features.** When every node type has a 2-D ``x`` of the same width and dtype, the store holds their
    concatenation (``store.x`` [N, F]) and :meth:`delete_node_features` works. Otherwise the store holds no
    features (``store.x is None``, so ``store.live().x`` is ``None``; feed per-type features to the model
    yourself): the per-type ``x`` are kept here and :meth:`live` / :meth:`retained` carry them (deleted nodes'
    rows zeroed / dropped), and :meth:`delete_node_features` is refused. ``y`` is concatenated into
    ``store.y`` when every node type has one with the same trailing shape and dtype; an ``edge_weight`` when
    every stored relation has a 1-D floating one of the same dtype. Every other node- or edge-level tensor
    (``size(0)`` equal to the type's number of nodes / edges) stays per type and is carried by the views.

    **Requests.** Each ``delete_*`` method takes ids local to the named type, validates everything first
    (bad ids or types raise :class:`~graphunlearn.DeletionError` naming them and nothing changes), and
    returns the homogeneous store's :class:`~graphunlearn.DeletionRequest`, to be passed on as
    ``gu.unlearn(model, hs.store, request, ...)``; its ``node_ids`` / ``edge_ids`` are in the store's
    numbering (translate them back with :meth:`nodes_by_type` / :meth:`edges_by_type`).

    **Compaction.** ``hs.store.compact()`` renumbers the store and with it invalidates this object's maps:
    every method then raises ``RuntimeError``; build a new ``HeteroGraphStore`` from :meth:`retained`.

    Args:
        data: the graph; every edge type needs an integer ``edge_index`` [2, E] with ids within its node
            types, and every node type a known ``num_nodes``. Its tensors are never modified.
        rev_edge_types: ``{forward edge type: reverse edge type}`` pairs (``{t: t}`` for a symmetric same-type
            relation); an entry and its mirror may both be given. Relations not named are detected as above.
        num_hops: passed to :class:`~graphunlearn.GraphStore` (hops of affected neighbourhood per request).

    Attributes:
        store: the homogeneous :class:`~graphunlearn.GraphStore` (what ``gu.unlearn`` and trainers receive).
        node_types, edge_types: the types of ``data``, in its order.
        rev_edge_types: ``{forward: reverse}`` of the pairs in use; symmetric_edge_types: the symmetric ones.
        node_offset: ``{node type: offset}``; num_nodes_dict: ``{node type: number of nodes}``.
        edge_class: ``{edge type: store edge class}`` (a reverse shares its forward's class).
        features_concatenated: whether ``store.x`` holds every node type's ``x``.

    Raises:
        TypeError: ``data`` is not a ``HeteroData``; ``rev_edge_types`` is not a mapping.
        ValueError: a relation without ``edge_index``, or with a malformed one or ids outside its node
            types; a node type without ``num_nodes``; ``rev_edge_types`` naming unknown edge types, a
            reverse whose source/destination are not the forward's swapped, or a type twice; a reverse
            relation that is not exactly the flipped forward relation (names the edge types and how many
            edges differ); a graph mixing paired or symmetric relations with relations that have edges
            but no reverse (one store cannot hold tied and untied edges; names both groups); in an
            undirected store, a relation listing an edge twice, or two stored edges linking the same pair
            of nodes (names the relations and the nodes); a reverse whose ``edge_weight`` differs from its
            forward's; and whatever :class:`~graphunlearn.GraphStore` refuses (``num_hops``).
    """

    def __init__(self, data: HeteroData, rev_edge_types: Mapping | None = None, num_hops: int = 2):
        if not isinstance(data, HeteroData):
            raise TypeError(f"HeteroGraphStore needs a torch_geometric.data.HeteroData, got {type(data).__name__}"
                            " (a homogeneous Data goes to GraphStore)")
        if rev_edge_types is not None and not isinstance(rev_edge_types, Mapping):
            raise TypeError(f"rev_edge_types must be a dict {{forward edge type: reverse edge type}} or None, got "
                            f"{type(rev_edge_types).__name__}")
        self.node_types: list[str] = list(data.node_types)
        self.edge_types: list[EdgeType] = [tuple(t) for t in data.edge_types]
        self._read_nodes(data)
        self._read_edges(data)
        pairs, symmetric = self._pairs(rev_edge_types or {})
        self.rev_edge_types: dict[EdgeType, EdgeType] = pairs
        self.symmetric_edge_types: list[EdgeType] = symmetric
        reverse_of = {rev: fwd for fwd, rev in pairs.items()}
        tied = [*pairs, *pairs.values(), *symmetric]
        untied = [t for t in self.edge_types if t not in tied and self._ei[t].size(1)]
        if tied and untied:
            raise ValueError(
                f"HeteroGraphStore: edge types {[_show(t) for t in untied]} have no reverse relation while "
                f"{[_show(t) for t in tied]} are paired or symmetric; one store cannot tie some edges to their "
                "reverse and not others. Add the missing reverses (torch_geometric.transforms.ToUndirected()), "
                "name them with rev_edge_types={forward: reverse}, or drop the paired reverses")
        undirected = bool(tied)
        if not undirected:
            self._warn_unnamed_reverses()
        # stored relation of each type: itself, or the forward of its pair; its class is that index in edge_types
        self._stored_as = {t: reverse_of.get(t, t) for t in self.edge_types}
        self.edge_class: dict[EdgeType, int] = {t: self.edge_types.index(s) for t, s in self._stored_as.items()}
        stored = [t for t in self.edge_types if t not in reverse_of]
        self._build(stored, undirected, num_hops)
        self._pair_cache: dict[EdgeType, PairIndex] = {}

    # ------------------------------------------------------------------ construction
    def _read_nodes(self, data: HeteroData) -> None:
        self.num_nodes_dict: dict[str, int] = {}
        self.node_offset: dict[str, int] = {}
        self._x: dict[str, Tensor | None] = {}
        self._node_attrs: dict[str, dict[str, Tensor]] = {}  # everything but x, y included
        offset = 0
        for nt in self.node_types:
            store = data[nt]
            n = store.num_nodes
            if n is None:
                raise ValueError(f"HeteroGraphStore: node type {nt!r} has no num_nodes (set data[{nt!r}].num_nodes)")
            x = store.get("x")
            if x is not None and (not isinstance(x, Tensor) or x.dim() != 2 or x.size(0) != n):
                raise ValueError(f"HeteroGraphStore: data[{nt!r}].x must be 2-D [{n}, F], got "
                                 f"{getattr(x, 'shape', type(x).__name__)}")
            self._x[nt] = x
            self._node_attrs[nt] = {k: v for k, v in store.items() if k not in ("x", "num_nodes")
                                    and isinstance(v, Tensor) and v.dim() > 0 and v.size(0) == n}
            self.num_nodes_dict[nt] = n
            self.node_offset[nt] = offset
            offset += n
        self._num_nodes = offset
        xs = list(self._x.values())
        self.features_concatenated: bool = bool(xs) and all(
            x is not None and x.size(1) == xs[0].size(1) and x.dtype == xs[0].dtype for x in xs)

    def _read_edges(self, data: HeteroData) -> None:
        self._ei: dict[EdgeType, Tensor] = {}
        self._edge_attrs: dict[EdgeType, dict[str, Tensor]] = {}
        for t in self.edge_types:
            s, _, d = t
            for nt in (s, d):
                if nt not in self.num_nodes_dict:
                    raise ValueError(f"HeteroGraphStore: edge type {_show(t)} names node type {nt!r}, which data "
                                     f"does not hold (node types: {self.node_types})")
            store = data[t]
            ei = store.get("edge_index")
            if ei is None:
                raise ValueError(f"HeteroGraphStore: edge type {_show(t)} has no edge_index (adj_t and other "
                                 "layouts are not supported)")
            if not isinstance(ei, Tensor) or ei.dim() != 2 or ei.size(0) != 2 or ei.is_floating_point() \
                    or ei.dtype == torch.bool:
                raise ValueError(f"HeteroGraphStore: edge type {_show(t)}: edge_index must be an integer tensor "
                                 f"[2, E], got {getattr(ei, 'shape', type(ei).__name__)} {getattr(ei, 'dtype', '')}")
            ei = ei.long()
            for row, nt in ((0, s), (1, d)):
                n = self.num_nodes_dict[nt]
                bad = ei[row][(ei[row] < 0) | (ei[row] >= n)]
                if bad.numel():
                    raise ValueError(f"HeteroGraphStore: edge type {_show(t)}: {'source' if row == 0 else 'target'}"
                                     f" ids {_fmt(torch.unique(bad))} are outside 0..{n - 1} (node type {nt!r})")
            self._ei[t] = ei
            e = ei.size(1)
            self._edge_attrs[t] = {k: v for k, v in store.items() if k != "edge_index" and "index" not in k
                                   and isinstance(v, Tensor) and v.dim() > 0 and v.size(0) == e}

    def _edge_type_arg(self, t, what: str, error=ValueError) -> EdgeType:
        if isinstance(t, str):
            hits = [et for et in self.edge_types if et[1] == t]
            if len(hits) == 1:
                return hits[0]
            why = "matches several edge types" if hits else "is not a relation of the graph"
            raise error(f"{what}: {t!r} {why}; edge types: {[_show(e) for e in self.edge_types]}")
        if isinstance(t, (tuple, list)) and len(t) == 3 and tuple(t) in self.edge_types:
            return tuple(t)
        raise error(f"{what}: unknown edge type {t!r}; edge types: {[_show(e) for e in self.edge_types]}")

    def _pairs(self, explicit: Mapping) -> tuple[dict[EdgeType, EdgeType], list[EdgeType]]:
        pairs: dict[EdgeType, EdgeType] = {}
        symmetric: list[EdgeType] = []
        used: set[EdgeType] = set()
        for fwd, rev in explicit.items():
            fwd = self._edge_type_arg(fwd, "rev_edge_types")
            rev = self._edge_type_arg(rev, "rev_edge_types")
            if (rev, fwd) in pairs.items() or (fwd == rev and fwd in symmetric):
                continue  # the mirror of an entry already taken
            if (rev[0], rev[2]) != (fwd[2], fwd[0]):
                raise ValueError(f"rev_edge_types: {_show(rev)} cannot be the reverse of {_show(fwd)}: a reverse "
                                 f"goes from {fwd[2]!r} to {fwd[0]!r}")
            for t in {fwd, rev}:
                if t in used:
                    raise ValueError(f"rev_edge_types: edge type {_show(t)} is named in two pairs")
                used.add(t)
            if fwd == rev:
                symmetric.append(fwd)
            else:
                pairs[fwd] = rev
        for t in self.edge_types:  # PyG's ToUndirected: (s, r, d) -> (d, 'rev_' + r, s)
            s, r, d = t
            fwd = (d, r[4:], s)
            if t not in used and r.startswith("rev_") and fwd in self.edge_types and fwd not in used and fwd != t:
                pairs[fwd] = t
                used.update((fwd, t))
        for t in self.edge_types:  # same-type relations that ToUndirected made symmetric
            ei = self._ei[t]
            if t not in used and t[0] == t[2] and ei.size(1) and _pyg_is_undirected(
                    ei, num_nodes=self.num_nodes_dict[t[0]]):
                symmetric.append(t)
                used.add(t)
        return {f: pairs[f] for f in self.edge_types if f in pairs}, [t for t in self.edge_types if t in symmetric]

    def _warn_unnamed_reverses(self) -> None:
        """A directed store keeps a relation and its reverse apart: deleting one leaves the other live. Warn
        when two relations hold exactly each other's flipped edges but were not named as a pair."""
        for i, a in enumerate(self.edge_types):
            for b in self.edge_types[i + 1:]:
                ea, eb = self._ei[a], self._ei[b]
                if (b[0], b[2]) != (a[2], a[0]) or ea.size(1) != eb.size(1) or ea.size(1) == 0:
                    continue
                m = max(self.num_nodes_dict[a[0]], self.num_nodes_dict[a[2]], 1)
                if torch.equal(torch.sort(ea[0] * m + ea[1]).values, torch.sort(eb[1] * m + eb[0]).values):
                    warnings.warn(f"HeteroGraphStore: {_show(b)} holds exactly the flipped edges of {_show(a)} but "
                                  "is not named as its reverse, so the store keeps them apart and deleting an edge "
                                  f"of one leaves the other live; pass rev_edge_types={{{a!r}: {b!r}}} to tie them",
                                  UserWarning, stacklevel=3)

    def _global(self, t: EdgeType, ei: Tensor) -> tuple[Tensor, Tensor]:
        return ei[0] + self.node_offset[t[0]], ei[1] + self.node_offset[t[2]]

    def _build(self, stored: list[EdgeType], undirected: bool, num_hops: int) -> None:
        n = self._num_nodes
        cols, srcs, dsts, classes = [], [], [], []
        for t in stored:
            ei = self._ei[t]
            if undirected:
                _refuse_duplicates(t, ei, self.num_nodes_dict)
            # a symmetric relation is stored once per edge, as its (u <= v) columns
            c = (ei[0] <= ei[1]).nonzero().squeeze(1) if t in self.symmetric_edge_types else torch.arange(ei.size(1))
            u, v = self._global(t, ei[:, c])
            cols.append(c)
            srcs.append(u)
            dsts.append(v)
            classes.append(torch.full((c.numel(),), self.edge_class[t], dtype=torch.long))
        empty = torch.empty(0, dtype=torch.long)
        src, dst = torch.cat([empty, *srcs]), torch.cat([empty, *dsts])
        edge_type = torch.cat([empty, *classes])
        if undirected:
            self._refuse_collisions(stored, cols, src, dst)
        g = Data(edge_index=torch.stack([src, dst]), edge_type=edge_type, num_nodes=n)
        g.node_type = torch.repeat_interleave(torch.arange(len(self.node_types)),
                                              torch.tensor([self.num_nodes_dict[t] for t in self.node_types],
                                                           dtype=torch.long))
        if self.features_concatenated:
            g.x = torch.cat([self._x[t] for t in self.node_types])
        ys = [self._node_attrs[t].get("y") for t in self.node_types]
        if ys and all(y is not None and y.shape[1:] == ys[0].shape[1:] and y.dtype == ys[0].dtype for y in ys):
            g.y = torch.cat(ys)
        weights = [self._edge_attrs[t].get("edge_weight") for t in stored]
        if stored and all(w is not None and w.dim() == 1 and w.is_floating_point() and w.dtype == weights[0].dtype
                          for w in weights):
            g.edge_weight = torch.cat([w[c] for w, c in zip(weights, cols)])
        self.store = GraphStore(g, undirected=undirected, num_hops=num_hops)
        # Every tensor handed to the store above is a copy made here, not the user's: let compact() zero them.
        self.store._user_storages = frozenset()
        self._num_store_edges = self.store.num_edges
        # store edge id of every column of every relation (a reverse's columns share their forward's ids)
        self._col_eid: dict[EdgeType, Tensor] = {}
        if not undirected:
            start = 0
            for t in stored:
                e = self._ei[t].size(1)
                self._col_eid[t] = torch.arange(start, start + e)
                start += e
            return
        se = self.store.edge_index
        keys = se[0] * n + se[1]  # sorted and unique: the store's canonical (u <= v) order
        # the direction each store edge was given in (its forward relation's src -> dst)
        fwd_src, fwd_dst = torch.empty_like(se[0]), torch.empty_like(se[1])
        eid_all = torch.searchsorted(keys, torch.minimum(src, dst) * n + torch.maximum(src, dst))
        fwd_src[eid_all], fwd_dst[eid_all] = src, dst
        for t in self.edge_types:
            fwd = self._stored_as[t]
            ei = self._ei[t]
            if t == fwd:
                u, v = self._global(t, ei)
            else:  # a reverse: its column (a, b) is the forward edge (b, a)
                v, u = self._global(t, ei)
            eid, found = _lookup(keys, torch.minimum(u, v) * n + torch.maximum(u, v))
            ok = found.clone()
            ok[found] = self.store.edge_type[eid[found]] == self.edge_class[t]
            if t not in self.symmetric_edge_types:  # a symmetric relation's columns may name either direction
                sel = ok.clone()
                ok[sel] = (fwd_src[eid[sel]] == u[sel]) & (fwd_dst[eid[sel]] == v[sel])
            # each stored edge must be named by exactly one column (two for a symmetric relation's non-loops)
            hits = torch.bincount(eid[ok], minlength=se.size(1))
            members = (self.store.edge_type == self.edge_class[t]).nonzero().squeeze(1)
            want = torch.ones(members.numel(), dtype=torch.long)
            if t in self.symmetric_edge_types:
                want += (se[0, members] != se[1, members]).long()
            missing = int((want - hits[members]).clamp(min=0).sum())
            extra = int((~ok).sum()) + int((hits[members] - want).clamp(min=0).sum())
            if missing or extra:
                if t in self.symmetric_edge_types:
                    raise ValueError(f"HeteroGraphStore: symmetric edge type {_show(t)} is not symmetric: "
                                     f"{missing + extra} edges differ ({missing} edges lack their reverse (v, u), "
                                     f"{extra} columns have no partner)")
                raise ValueError(f"HeteroGraphStore: edge type {_show(t)} is not the reverse of {_show(fwd)}: "
                                 f"{missing + extra} edges differ ({missing} edges of {_show(fwd)} have no "
                                 f"flipped copy in {_show(t)}, {extra} columns of {_show(t)} are not a flipped "
                                 f"edge of {_show(fwd)}; sizes {self._ei[fwd].size(1)} and {ei.size(1)})")
            self._col_eid[t] = eid
            w = self._edge_attrs[t].get("edge_weight")
            if self.store.edge_weight is not None and w is not None and (t != fwd or t in self.symmetric_edge_types):
                if not (w.dim() == 1 and bool((w == self.store.edge_weight[eid]).all())):
                    raise ValueError(f"HeteroGraphStore: edge_weight of {_show(t)} differs from that of the tied "
                                     f"direction in {_show(fwd)}; a tied edge carries one weight")

    def _refuse_collisions(self, stored: list[EdgeType], cols: list[Tensor], src: Tensor, dst: Tensor) -> None:
        """An undirected store keeps one edge per node pair: two stored columns with the same endpoints are
        refused, naming their relations and local ids."""
        if src.numel() == 0:
            return
        n = self._num_nodes
        keys = torch.minimum(src, dst) * n + torch.maximum(src, dst)
        uniq, inverse, counts = torch.unique(keys, return_inverse=True, return_counts=True)
        if not bool((counts > 1).any()):
            return
        first = int((counts > 1).nonzero()[0])
        at = (inverse == first).nonzero().squeeze(1)[:2].tolist()
        owner = torch.repeat_interleave(torch.arange(len(stored)), torch.tensor([c.numel() for c in cols]))
        starts = torch.cumsum(torch.tensor([0] + [c.numel() for c in cols]), 0)
        named = []
        for k in at:
            t = stored[int(owner[k])]
            col = int(cols[int(owner[k])][k - int(starts[int(owner[k])])])
            named.append(f"{_show(t)} column {col} {tuple(self._ei[t][:, col].tolist())}")
        raise ValueError(f"HeteroGraphStore: {named[0]} and {named[1]} link the same two nodes; an undirected store "
                         "keeps one edge per node pair, so their deletions could not be told apart")

    # ------------------------------------------------------------------ ids and types
    def _check_fresh(self) -> None:
        if self.store.num_nodes != self._num_nodes or self.store.num_edges != self._num_store_edges:
            raise RuntimeError("HeteroGraphStore: the store was compacted (renumbered) after this object was built; "
                               "build a new HeteroGraphStore from the compacted graph (hs.retained() taken before)")

    def _node_type_arg(self, node_type, what: str) -> str:
        if isinstance(node_type, str) and node_type in self.num_nodes_dict:
            return node_type
        raise DeletionError(f"{what}: unknown node type {node_type!r}; node types: {self.node_types}")

    def _local_nodes(self, nt: str, ids, what: str) -> Tensor:
        """Unique local ids of node type ``nt`` (range-checked)."""
        t = _as_index_tensor(ids, what).reshape(-1)
        n = self.num_nodes_dict[nt]
        bad = t[(t < 0) | (t >= n)]
        if bad.numel():
            raise DeletionError(f"{what}: {nt!r} node ids {_fmt(torch.unique(bad))} are out of range 0..{n - 1}")
        return torch.unique(t)

    def global_ids(self, node_type: str, local) -> Tensor:
        """Store ids of nodes ``local`` of ``node_type``: ``node_offset[node_type] + local`` ([K] -> [K], order kept).

        Raises:
            DeletionError (a ValueError): unknown node type, ids out of range or not integers.
        """
        nt = self._node_type_arg(node_type, "global_ids")
        t = _as_index_tensor(local, "global_ids").reshape(-1)
        n = self.num_nodes_dict[nt]
        bad = t[(t < 0) | (t >= n)]
        if bad.numel():
            raise DeletionError(f"global_ids: {nt!r} node ids {_fmt(torch.unique(bad))} are out of range 0..{n - 1}")
        return t + self.node_offset[nt]

    def local_ids(self, global_ids) -> tuple[Tensor, Tensor]:
        """``(type_index [K], local [K])`` of store node ids ``global_ids`` [K], order kept; ``node_types[i]`` names
        type index ``i``.

        Raises:
            DeletionError (a ValueError): ids out of range ``0..N-1`` or not integers.
        """
        g = _as_index_tensor(global_ids, "local_ids").reshape(-1)
        bad = g[(g < 0) | (g >= self._num_nodes)]
        if bad.numel():
            raise DeletionError(f"local_ids: node ids {_fmt(torch.unique(bad))} are out of range "
                                f"0..{self._num_nodes - 1}")
        offsets = torch.tensor([self.node_offset[t] for t in self.node_types], dtype=torch.long)
        # the last type whose offset is <= g: it holds g (an empty type shares its successor's offset)
        kind = torch.searchsorted(offsets, g, right=True) - 1
        return kind, g - offsets[kind]

    def nodes_by_type(self, global_ids: Tensor) -> dict[str, Tensor]:
        """Store node ids (e.g. ``request.node_ids``) split by node type: ``{node type: sorted local ids}``."""
        if isinstance(global_ids, Tensor) and global_ids.numel() == 0:
            return {t: torch.empty(0, dtype=torch.long) for t in self.node_types}
        kind, local = self.local_ids(global_ids)
        return {t: torch.unique(local[kind == i]) for i, t in enumerate(self.node_types)}

    def edges_by_type(self, edge_ids: Tensor) -> dict[EdgeType, Tensor]:
        """Store edge ids (e.g. ``request.edge_ids``) as ``{edge type: sorted columns of data[edge type].edge_index}``;
        a tied edge shows up under its forward and its reverse relation (twice in a symmetric one)."""
        self._check_fresh()
        chosen = torch.zeros(self._num_store_edges, dtype=torch.bool)
        if isinstance(edge_ids, Tensor) and edge_ids.numel() == 0:
            return {t: torch.empty(0, dtype=torch.long) for t in self.edge_types}
        ids = _as_index_tensor(edge_ids, "edges_by_type").reshape(-1)
        bad = ids[(ids < 0) | (ids >= self._num_store_edges)]
        if bad.numel():
            raise DeletionError(f"edges_by_type: edge ids {_fmt(bad)} are out of range 0..{self._num_store_edges - 1}")
        chosen[ids] = True
        return {t: chosen[eid].nonzero().squeeze(1) for t, eid in self._col_eid.items()}

    def edge_ids(self, edge_type, edges, *, layout: str = "auto") -> Tensor:
        """Sorted store edge ids of ``edges`` of ``edge_type`` (read as in :meth:`delete_edges`), live or deleted.

        Raises:
            DeletionError: unknown edge type, malformed input, ids out of range, pairs that are not edges.
        """
        self._check_fresh()
        t = self._edge_type_arg(edge_type, "edge_ids", DeletionError)
        return self._resolve(t, edges, layout, "edge_ids")[0]

    def _resolve(self, t: EdgeType, edges, layout: str, what: str) -> tuple[Tensor, list[str]]:
        """Store edge ids named by ``edges`` of relation ``t``, and a description of each already deleted one."""
        what = f"{what} {_show(t)}"
        if layout not in _LAYOUTS:
            raise DeletionError(f"{what}: layout must be one of {_LAYOUTS}, got {layout!r}")
        x = _as_index_tensor(edges, f"{what}: edges", max_dim=2)
        ei, col_eid = self._ei[t], self._col_eid[t]
        mask = self.store.edge_mask
        if x.dim() == 1:
            if layout not in ("auto", "ids"):
                raise DeletionError(f"{what}: layout={layout!r} needs a 2-D input, got {x.numel()} ids")
            bad = x[(x < 0) | (x >= ei.size(1))]
            if bad.numel():
                raise DeletionError(f"{what}: edge ids {_fmt(torch.unique(bad))} are out of range "
                                    f"0..{ei.size(1) - 1} (columns of its edge_index)")
            cols = torch.unique(x)
            dead = cols[~mask[col_eid[cols]]]
            return torch.unique(col_eid[cols]), [f"column {int(c)} {tuple(ei[:, c].tolist())}" for c in dead[:10]]
        u, v = edge_endpoints(edges, x, layout, what)
        for ids, nt, side in ((u, t[0], "source"), (v, t[2], "target")):
            n = self.num_nodes_dict[nt]
            bad = ids[(ids < 0) | (ids >= n)]
            if bad.numel():
                raise DeletionError(f"{what}: {side} ids {_fmt(torch.unique(bad))} are out of range 0..{n - 1} "
                                    f"(node type {nt!r})")
        if t not in self._pair_cache:
            m = max(self.num_nodes_dict[t[0]], self.num_nodes_dict[t[2]], 1)
            self._pair_cache[t] = PairIndex(ei[0], ei[1], m)
        found, pair_index, pos = self._pair_cache[t].lookup(u, v)
        if not bool(found.all()):
            missing = torch.stack([u, v], 1)[~found][:10].tolist()
            raise DeletionError(f"{what}: {int((~found).sum())} pairs are not edges of {_show(t)}: "
                                f"{[tuple(p) for p in missing]}")
        eids = col_eid[pos]
        # a pair names its live parallel columns; one with none live is kept, to be refused as already deleted
        live = mask[eids]
        has_live = torch.zeros(u.numel(), dtype=torch.bool)
        has_live[pair_index[live]] = True
        dead = (~has_live).nonzero().squeeze(1)
        return (torch.unique(eids[live | ~has_live[pair_index]]),
                [f"pair {(int(u[i]), int(v[i]))}" for i in dead[:10]])

    # ------------------------------------------------------------------ requests
    def _call(self, what: str, fn) -> DeletionRequest:
        try:
            return fn()
        except DeletionError as exc:  # a check only the store makes: its ids are global
            raise DeletionError(f"{what}: {exc} (ids in the homogeneous store's numbering; node offsets "
                                f"{self.node_offset})") from exc

    def delete_edges(self, edge_type, edges, *, layout: str = "auto") -> DeletionRequest:
        """Delete edges of one relation, and with each its tied reverse (both directions go).

        Args:
            edge_type: ``(src, rel, dst)`` (or a relation name that is unique); the forward or the reverse
                relation of a pair may be named, or a symmetric relation (``(u, v)`` and ``(v, u)`` are one edge).
            edges: ``(u, v)`` pairs [K, 2] or an ``edge_index`` [2, K] with ``u`` a local id of ``src`` and
                ``v`` of ``dst``, or 1-D column ids of ``data[edge_type].edge_index``; a tensor, NumPy array
                or (nested) list of ints. A pair names every live parallel edge between its endpoints.
            layout: ``"auto"`` (default), ``"ids"``, ``"pairs"`` or ``"edge_index"``, read as in
                :meth:`GraphStore.delete_edges <graphunlearn.GraphStore.delete_edges>` (a [2, 2] input
                needs an explicit layout).

        Returns:
            the store's :class:`~graphunlearn.DeletionRequest` (kind ``"edges"``, store edge ids).

        Raises:
            DeletionError: unknown edge type; malformed input; ids out of range of their node type; pairs that
            are not edges; edges already deleted (named with the requests that deleted them). Nothing changes.
        """
        self._check_fresh()
        t = self._edge_type_arg(edge_type, "delete_edges", DeletionError)
        eids, dead = self._resolve(t, edges, layout, "delete_edges")
        if dead:
            by = torch.unique(self.store.edge_deleted_by[eids[~self.store.edge_mask[eids]]])
            raise DeletionError(f"delete_edges {_show(t)}: {', '.join(dead)} already deleted (by requests "
                                f"{_fmt(by)})")
        return self._call(f"delete_edges {_show(t)}", lambda: self.store.delete_edges(eids, layout="ids"))

    def delete_nodes(self, node_type: str, ids) -> DeletionRequest:
        """Delete nodes of ``node_type`` (local ids [K]) with their features and every live incident edge, in
        every relation and both directions.

        Returns:
            the store's :class:`~graphunlearn.DeletionRequest` (kind ``"nodes"``, store ids).

        Raises:
            DeletionError: unknown node type; ids not integers, out of range ``0..num_nodes_dict[node_type]-1``
            or already deleted (named, in local ids). Nothing changes.
        """
        self._check_fresh()
        nt = self._node_type_arg(node_type, "delete_nodes")
        local = self._local_nodes(nt, ids, f"delete_nodes {nt!r}")
        g = local + self.node_offset[nt]
        dead = ~self.store.node_mask[g]
        if bool(dead.any()):
            by = torch.unique(self.store.node_deleted_by[g[dead]])
            raise DeletionError(f"delete_nodes {nt!r}: nodes {_fmt(local[dead])} are already deleted (by requests "
                                f"{_fmt(by)})")
        return self._call(f"delete_nodes {nt!r}", lambda: self.store.delete_nodes(g))

    def delete_edge_class(self, edge_type) -> DeletionRequest:
        """Revoke a relation: delete every live edge of ``edge_type`` and of its tied reverse (either may be
        named). The request is the store's ``delete_edge_class(edge_class[edge_type])``.

        Raises:
            DeletionError: unknown edge type; a relation without edges; every edge of it already deleted.
        """
        self._check_fresh()
        t = self._edge_type_arg(edge_type, "delete_edge_class", DeletionError)
        c = self.edge_class[t]
        members = self.store.edge_type == c
        if not bool(members.any()):
            raise DeletionError(f"delete_edge_class: edge type {_show(t)} has no edges")
        if not bool((members & self.store.edge_mask).any()):
            by = torch.unique(self.store.edge_deleted_by[members])
            raise DeletionError(f"delete_edge_class: every edge of {_show(t)} is already deleted (by requests "
                                f"{_fmt(by)})")
        return self._call(f"delete_edge_class {_show(t)}", lambda: self.store.delete_edge_class(c))

    def delete_node_features(self, node_type: str, ids, columns=None) -> DeletionRequest:
        """Delete feature values of live nodes of ``node_type`` (local ids [K]): ``columns`` (1-D ints) or all.

        Only when the features are concatenated (``features_concatenated``); the nodes and edges stay, the
        values read as zero in ``store.live_x()``, :meth:`live` and :meth:`retained`.

        Raises:
            DeletionError: features not concatenated; unknown node type; ids out of range or of deleted nodes;
            columns out of range; values already deleted. Nothing changes.
        """
        self._check_fresh()
        nt = self._node_type_arg(node_type, "delete_node_features")
        if not self.features_concatenated:
            widths = {t: (None if x is None else tuple(x.shape[1:])) for t, x in self._x.items()}
            raise DeletionError("delete_node_features: the node types' features are not held by the store (x of "
                                f"every node type must have the same width and dtype; got {widths})")
        local = self._local_nodes(nt, ids, f"delete_node_features {nt!r}")
        g = local + self.node_offset[nt]
        dead = ~self.store.node_mask[g]
        if bool(dead.any()):
            raise DeletionError(f"delete_node_features {nt!r}: nodes {_fmt(local[dead])} are already deleted (with "
                                "all their features)")
        return self._call(f"delete_node_features {nt!r}", lambda: self.store.delete_node_features(g, columns))

    # ------------------------------------------------------------------ views
    def _x_of(self, nt: str) -> Tensor | None:
        """``x`` of ``nt`` in original numbering with deleted nodes and deleted values zeroed (a new tensor)."""
        off, n = self.node_offset[nt], self.num_nodes_dict[nt]
        if self.features_concatenated:
            return self.store.live_x()[off:off + n].clone()
        x = self._x[nt]
        if x is None:
            return None
        x = x.clone()
        x[~self.store.node_mask[off:off + n]] = 0
        return x

    def live(self) -> HeteroData:
        """The live graph as a ``HeteroData`` in the ORIGINAL numbering.

        Every node type keeps all its nodes (``num_nodes`` unchanged) and carries ``x`` with deleted nodes and
        deleted feature values zeroed, its other node tensors (``y`` ...) unchanged, and ``node_mask`` [n] (bool,
        ``False`` for deleted nodes: exclude them from losses and metrics). Every edge type keeps only its live
        columns, in their original order: ``edge_index`` [2, E'], its edge tensors and ``orig_edge_id`` [E'] (the
        columns' positions in the input ``edge_index``); a pair's forward and reverse list the same edges.
        """
        self._check_fresh()
        out = HeteroData()
        for nt in self.node_types:
            off, n = self.node_offset[nt], self.num_nodes_dict[nt]
            store = out[nt]
            store.num_nodes = n
            x = self._x_of(nt)
            if x is not None:
                store.x = x
            for k, v in self._node_attrs[nt].items():
                store[k] = v.clone()
            store.node_mask = self.store.node_mask[off:off + n].clone()
        for t in self.edge_types:
            cols = self.store.edge_mask[self._col_eid[t]].nonzero().squeeze(1)
            self._put_edges(out[t], t, cols, self._ei[t][:, cols])
        return out

    def retained(self) -> HeteroData:
        """The graph without deleted elements as a new ``HeteroData`` with consecutive ids per node type.

        Every node type holds its live nodes in their original order, with ``x`` (deleted feature values
        zeroed) and its other node tensors sliced, and ``orig_node_id`` [n'] (original local ids). Every edge
        type holds its live columns in their original order, renumbered, with its edge tensors and
        ``orig_edge_id`` [E'] (positions in the input ``edge_index``); a reverse is the flipped forward.
        """
        self._check_fresh()
        out, new_id = HeteroData(), {}
        for nt in self.node_types:
            off, n = self.node_offset[nt], self.num_nodes_dict[nt]
            keep = self.store.node_mask[off:off + n].nonzero().squeeze(1)
            ids = torch.full((n,), -1, dtype=torch.long)
            ids[keep] = torch.arange(keep.numel())
            new_id[nt] = ids
            store = out[nt]
            store.num_nodes = keep.numel()
            x = self._x_of(nt)
            if x is not None:
                store.x = x[keep]
            for k, v in self._node_attrs[nt].items():
                store[k] = v[keep]
            store.orig_node_id = keep
        for t in self.edge_types:
            cols = self.store.edge_mask[self._col_eid[t]].nonzero().squeeze(1)
            ei = self._ei[t][:, cols]
            self._put_edges(out[t], t, cols, torch.stack([new_id[t[0]][ei[0]], new_id[t[2]][ei[1]]]))
        return out

    def _put_edges(self, store, t: EdgeType, cols: Tensor, edge_index: Tensor) -> None:
        store.edge_index = edge_index
        for k, v in self._edge_attrs[t].items():
            store[k] = v[cols]
        store.orig_edge_id = cols

    def __repr__(self) -> str:
        nodes = ", ".join(f"{t}={int(self.store.node_mask[self.node_offset[t]:self.node_offset[t] + n].sum())}/{n}"
                          for t, n in self.num_nodes_dict.items())
        return (f"HeteroGraphStore(nodes: {nodes}; pairs={len(self.rev_edge_types)}, symmetric="
                f"{len(self.symmetric_edge_types)}, undirected={self.store.undirected}, store={self.store!r})")


def _lookup(keys: Tensor, queries: Tensor) -> tuple[Tensor, Tensor]:
    """Positions of ``queries`` in the sorted unique ``keys`` and whether each is there."""
    pos = torch.searchsorted(keys, queries).clamp(max=max(keys.numel() - 1, 0))
    if keys.numel() == 0:
        return pos, torch.zeros(queries.numel(), dtype=torch.bool)
    return pos, keys[pos] == queries


def _refuse_duplicates(t: EdgeType, ei: Tensor, sizes: dict[str, int]) -> None:
    if ei.size(1) == 0:
        return
    m = max(sizes[t[0]], sizes[t[2]], 1)
    keys, counts = torch.unique(ei[0] * m + ei[1], return_counts=True)
    if bool((counts > 1).any()):
        k = int(keys[counts > 1][0])
        raise ValueError(f"HeteroGraphStore: edge type {_show(t)} lists edge ({k // m}, {k % m}) "
                         f"{int(counts[counts > 1][0])} times; an undirected store keeps each edge once: coalesce "
                         "it (torch_geometric.utils.coalesce)")
