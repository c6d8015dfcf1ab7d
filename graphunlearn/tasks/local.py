r"""Local computation: a model's representations of a few nodes from their sampled computation graph.

On a large graph a training step, an unlearning step or an evaluation needs the representations of the
nodes its units touch (the endpoints of a batch of pairs, a batch of nodes), not of every node. A
:math:`K`-layer message-passing model computes them exactly from the nodes' :math:`K`-hop computation
graph; this module samples that graph from the store's *live* CSR with the deletion-aware sampler
(:func:`graphunlearn.sampling.sample_neighbors`, ``num_neighbors`` per hop, ``-1`` for all neighbours, as
PyG's ``NeighborLoader`` takes them) and runs the model on it. A deleted node, edge or feature value never
enters: the sampler draws only live slots between live nodes, features are the store's live features, and
a deleted node asked for is an isolated node with zeroed features, as on the full live graph.

The cost is that of the sampled subgraph: at most :math:`B \prod_h k_h` nodes for :math:`B` seeds and
fanouts :math:`k_h`, whatever the graph's size. With sampled fanouts the representations are the
stochastic estimates mini-batch GNN training uses (Hamilton et al., NeurIPS 2017, GraphSAGE's sampler;
PyG's ``NeighborLoader``); normalisations such as GCN's degrees are those of the sampled subgraph, as in
PyG. With all neighbours (``-1`` per hop) a seed's representation equals its full-graph one for layers
that aggregate over in-neighbours with the target's own normalisation (SAGE, GIN, GAT); GCN's symmetric
normalisation also reads each source's degree, which the last hop's nodes lack, so it is exact only with
one hop more than the model has layers. Edge weights are not carried yet: a store with ``edge_weight`` is
refused. Models without node features (a learnable table of all N nodes) receive the subgraph's node ids as
``x``, PyG's convention for featureless graphs (:class:`~graphunlearn.models.GNN` follows it).

Embedding models (recommendation's LightGCN, :func:`embedding_graph`) read a computation graph with the
store's *live* degrees instead of the subgraph's, each sampled row rescaled by :math:`d_i / |S_i|`, so that
a layer is an unbiased estimate of the full-graph layer and, with all neighbours, exact with as many hops
as the model has layers.
"""

from __future__ import annotations

import dataclasses
import weakref
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..graph import build_csr, row_slots
from ..kernels import live_degree, transpose_csr
from ..requests import LiveGraph, bind
from ..sampling import sample_neighbors
from ..sampling.neighbor import fanouts
from ..store import GraphStore
from .ops import pick, run_model, sample_pairs


@dataclass
class ComputationGraph:
    """A sampled computation graph: ``nodes`` [n] global ids (the seeds first, in order), ``x`` [n, F] their
    live features (or their ids [n] on a store without features), ``edge_index`` [2, m] in local ids
    (messages flow ``edge_index[0] -> edge_index[1]``), ``edge_id`` [m] the store's edge ids, and
    ``num_seeds``."""

    nodes: Tensor
    x: Tensor
    edge_index: Tensor
    edge_id: Tensor
    num_seeds: int

    @property
    def num_nodes(self) -> int:
        return self.nodes.numel()

    def encode(self, model: nn.Module, where: str = "local computation") -> Tensor:
        """``model``'s representations [n, d] of the graph's nodes (``model(x, edge_index)`` on the subgraph).
        A model tied to the store's node numbering that says so with an ``on_nodes(nodes)`` context
        (:meth:`~graphunlearn.models.GNNDelete.on_nodes`: its deletion operators find their nodes by id) runs
        inside it, told the subgraph's ``nodes``, so that every sampled path (a task's validation,
        :func:`embed`, calibration) asks it correctly.

        Raises:
            ValueError: the model returned another number of rows than the subgraph has nodes (a model that
                keeps a table of all N nodes must read node ids from ``x``).
        """
        on_nodes = getattr(model, "on_nodes", None)
        if callable(on_nodes):
            with on_nodes(self.nodes):
                z = run_model(model, self.x, self.edge_index)
        else:
            z = run_model(model, self.x, self.edge_index)
        rows = z[0].size(0) if isinstance(z, (tuple, list)) else z.size(0)
        if rows != self.num_nodes:
            raise ValueError(f"{where}: {type(model).__name__} returned {rows} rows for a sampled computation graph "
                             f"of {self.num_nodes} nodes; on a sampled subgraph a model is called as model(x, "
                             "edge_index) with the subgraph's features, or its node ids as x on a graph without "
                             "features (PyG's convention: look up nn.Embedding rows with x), and must return one "
                             "row per node")
        return z


_SCRATCH: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _scratch(store: GraphStore, num_nodes: int) -> Tensor:
    """The store's sampling scratch (int64 [N], all -1 between calls), made once per store, size and device, so
    that a step does not pay O(N) to allocate it."""
    buf = _SCRATCH.get(store)
    if buf is None or buf.numel() != num_nodes or buf.device != store.device:
        buf = torch.full((num_nodes,), -1, dtype=torch.long, device=store.device)
        _SCRATCH[store] = buf
    return buf


def computation_graph(store: GraphStore, seeds: Tensor, num_neighbors: Sequence[int],
                      generator: torch.Generator | None = None) -> ComputationGraph:
    """The sampled computation graph of ``seeds`` [B] (distinct node ids) on the store's live graph.

    Live seeds are sampled from with ``num_neighbors`` (one fanout per hop, ``-1``: all live neighbours);
    deleted seeds stay isolated (no live edge reaches them) with zeroed features (on a store without
    features: their ids, as on the whole live graph).

    Raises:
        ValueError: seeds out of range, or live seeds repeated; a malformed ``num_neighbors``.
        NotImplementedError: a store with edge weights.
    """
    where = "computation_graph"
    hops = fanouts(where, num_neighbors)
    if store.edge_weight is not None:
        raise NotImplementedError(f"{where}: the store has edge weights, which sampled computation graphs do not "
                                  "carry yet; train and unlearn on the whole graph (num_neighbors=None / 'full')")
    seeds = seeds.to(store.device, torch.long)
    if seeds.numel() and (int(seeds.min()) < 0 or int(seeds.max()) >= store.num_nodes):
        raise ValueError(f"{where}: seed ids must lie in [0, {store.num_nodes}), got min {int(seeds.min())}, "
                         f"max {int(seeds.max())}")
    alive = store.node_mask[seeds]
    live_seeds, dead_seeds = seeds[alive], seeds[~alive]
    csr = store.live_csr()
    out = sample_neighbors(csr, live_seeds, hops, generator=generator, scratch=_scratch(store, csr.num_nodes))
    nodes = torch.cat([out.node, dead_seeds])
    # seeds back in the order given: the sampler puts the live ones first, then their neighbours
    order = torch.empty(seeds.numel(), dtype=torch.long, device=seeds.device)
    order[alive.nonzero().squeeze(1)] = torch.arange(live_seeds.numel(), device=seeds.device)
    order[(~alive).nonzero().squeeze(1)] = torch.arange(dead_seeds.numel(), device=seeds.device) + out.node.numel()
    rest = torch.ones(nodes.numel(), dtype=torch.bool, device=seeds.device)
    rest[order] = False
    perm = torch.cat([order, rest.nonzero().squeeze(1)])  # new position -> old position
    new_of = torch.empty_like(perm)
    new_of[perm] = torch.arange(perm.numel(), device=perm.device)
    nodes = nodes[perm]
    edge_index = new_of[torch.stack([out.row, out.col])]
    x = store.live_x()
    x = nodes if x is None else x.index_select(0, nodes)
    return ComputationGraph(nodes, x, edge_index, out.edge, seeds.numel())


def localize(store: GraphStore, units: Sequence[Tensor], num_neighbors: Sequence[int],
             generator: torch.Generator | None = None) -> tuple[ComputationGraph, list[Tensor]]:
    """One computation graph for every node the ``units`` touch (node ids [K] or node pairs [2, K]) and the
    units in its local numbering (same shapes), so that ``task.unit_logits(model, graph.encode(model),
    local_units)`` reads exactly the rows of those nodes."""
    flat = torch.cat([u.reshape(-1).to(store.device, torch.long) for u in units]) if units else \
        torch.empty(0, dtype=torch.long, device=store.device)
    seeds, inverse = torch.unique(flat, return_inverse=True)
    graph = computation_graph(store, seeds, num_neighbors, generator)
    local, at = [], 0
    for u in units:
        local.append(inverse[at:at + u.numel()].reshape(u.shape))
        at += u.numel()
    return graph, local


_DEGREES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def live_degrees(store: GraphStore) -> tuple[Tensor, bool]:
    """``(degree, self_loops)``: each node's live in-degree [N] float32 (the live slots of its CSR row whose
    source is live: what :func:`~graphunlearn.sampling.sample_neighbors` draws from, and what LightGCN's
    normalisation reads on the whole live graph, ``gcn_deg - 1``), and whether the store holds any self loop.
    Built once per request (O(S)) and kept beside the store's live CSR."""
    csr = store.live_csr()
    cached = _DEGREES.get(store)
    if cached is not None and cached[0] == csr.version and cached[1] is csr.rowptr:
        return cached[2]
    live = csr.slot_live & csr.node_live.index_select(0, csr.col)
    found = (live_degree(csr.rowptr, live), bool((store.edge_index[0] == store.edge_index[1]).any()))
    _DEGREES[store] = (csr.version, csr.rowptr, found)
    return found


def embedding_graph(store: GraphStore, graph: ComputationGraph) -> ComputationGraph:
    r"""``graph`` as a model of learnable node embeddings reads it (recommendation's LightGCN and MF, a
    featureless :class:`~graphunlearn.models.GNN`): ``x`` the node ids [n] (whatever features the store
    holds; the model looks up its table's rows with them) and ``edge_index`` bound
    (:func:`graphunlearn.requests.bind`) to a :class:`~graphunlearn.requests.LiveGraph` that the
    deletion-aware layers (:mod:`graphunlearn.nn`) aggregate over: degrees are the store's live degrees
    :math:`d` (:func:`live_degrees`), not the subgraph's, and each sampled message :math:`j \to i` weighs
    :math:`d_i / |S_i|` (:math:`S_i`: the neighbours drawn for :math:`i`). LightGCN's layer then reads

    .. math::
        h'_i = \frac{d_i}{|S_i|} \sum_{j \in S_i} \frac{h_j}{\sqrt{d_i d_j}},

    an unbiased estimate of :math:`\sum_{j \in N(i)} h_j / \sqrt{d_i d_j}` (each neighbour is drawn with
    probability :math:`|S_i| / d_i`), and exactly that sum with all neighbours (the weights are then 1), so
    an :math:`L`-layer LightGCN is exact with ``[-1] * L``; GCN's layer likewise, on a store without self
    loops. A node of the last hop receives nothing (its own row enters through the layers of the nodes it
    was drawn for). PyTorch Geometric's own layers ignore the binding and see the plain subgraph.

    ``graph`` must be one of ``store``'s (:func:`computation_graph`). Costs O(m log m) for the subgraph's
    m edges (its CSR and transpose), without host synchronisation (the live degrees' one, a check for self
    loops, happens once per request).
    """
    n = graph.num_nodes
    deg_all, loops = live_degrees(store)
    src, dst = graph.edge_index[0], graph.edge_index[1]
    m = src.numel()
    dev = src.device
    deg = deg_all.index_select(0, graph.nodes)
    drawn = torch.zeros(n, dtype=deg.dtype, device=dev).index_add_(0, dst, torch.ones(m, dtype=deg.dtype,
                                                                                     device=dev))
    weight = (deg / drawn.clamp(min=1)).index_select(0, dst)
    csr = build_csr(dst, src, torch.arange(m, device=dev), n)
    rowptr_t, col_t, perm_t = transpose_csr(csr.rowptr, csr.col, n)
    ones = torch.ones(m, dtype=torch.bool, device=dev)
    edge_index = graph.edge_index.view_as(graph.edge_index)  # a new tensor object: the binding is its own
    live = LiveGraph(num_nodes=n, rowptr=csr.rowptr, col=csr.col, mask=ones, edge_weight=weight[csr.perm],
                     gcn_deg=deg + 1.0, rowptr_t=rowptr_t, col_t=col_t, mask_t=ones,
                     transpose=(rowptr_t, col_t, perm_t),
                     x=None, node_mask=torch.ones(n, dtype=torch.bool, device=dev), has_self_loops=loops,
                     edge_index=edge_index)
    bind(edge_index, live)
    return dataclasses.replace(graph, x=graph.nodes, edge_index=edge_index)


@torch.no_grad()
def embed(model: nn.Module, store: GraphStore, nodes: Tensor, num_neighbors: Sequence[int], *,
          generator: torch.Generator | None = None, chunk: int = 4096) -> Tensor:
    """``model``'s representations [len(nodes), d] of ``nodes``, computed ``chunk`` distinct nodes at a time on
    their sampled computation graphs (no gradient; evaluation's path on a graph too large for one pass)."""
    nodes = nodes.to(store.device, torch.long)
    uniq, inverse = torch.unique(nodes, return_inverse=True)
    parts = []
    for start in range(0, uniq.numel(), chunk):
        graph = computation_graph(store, uniq[start:start + chunk], num_neighbors, generator)
        parts.append(graph.encode(model)[:graph.num_seeds])
    if not parts:
        raise ValueError("embed: no nodes asked for")
    return torch.cat(parts)[inverse]


def neighbourhood(store: GraphStore, nodes: Tensor) -> tuple[Tensor, Tensor]:
    """The live one-hop neighbourhood of ``nodes`` (live or deleted), read from the store's CSR rows:
    ``(neighbours, edge_ids)``, the distinct live nodes adjacent to them through any edge that existed and
    the live edges among those slots. Costs the sum of the nodes' degrees, not the graph's size."""
    csr = store.live_csr()
    slots = row_slots(csr.rowptr, torch.unique(nodes.to(store.device, torch.long)))
    nbr = csr.col.index_select(0, slots)
    alive = csr.node_live.index_select(0, nbr)
    edges = csr.eid.index_select(0, slots)[csr.slot_live.index_select(0, slots) & alive]
    return torch.unique(nbr[alive]), torch.unique(edges)


def retain_sampler(store: GraphStore, deleted_nodes: Tensor, deleted_edges: Tensor, *, pairwise: bool,
                   cap: int):
    r"""Retained units for a local unlearning step, at most ``cap`` per call (pair tasks add as many sampled
    non-edges): half drawn from the live one-hop neighbourhood of the deleted elements (the endpoints of
    the deleted edges and the deleted nodes: :func:`neighbourhood`; live edges for pair tasks, live nodes
    otherwise), the rest uniformly from all live units. Returns ``(sample(generator) -> units, near_nodes)``.

    Unlike the full-graph samplers (``Task.retain_sampler``: every live unit of the requests' whole
    :math:`k`-hop subgraph each step), nothing here grows with the graph: on a heavy-tailed graph the 2-hop
    neighbourhood of a thousand random edges is most of the graph.
    """
    endpoints = store.edge_index[:, deleted_edges].reshape(-1)
    near_nodes, near_edges = neighbourhood(store, torch.cat([endpoints, deleted_nodes.to(endpoints.device)]))
    live_nodes = store.live_node_ids()
    near = near_edges if pairwise else near_nodes
    pool = store.live_edge_ids() if pairwise else live_nodes
    half = min(cap // 2, near.numel())

    def sample(generator: torch.Generator) -> Tensor:
        chosen = torch.cat([pick(near, half, generator), pick(pool, cap - half, generator)])
        if not pairwise:
            return chosen
        kept = store.edge_index[:, chosen]
        return torch.cat([kept, sample_pairs(live_nodes, kept.size(1), generator)], 1)

    return sample, near_nodes
