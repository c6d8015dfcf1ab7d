r"""PyG's ``NodeLoader`` and ``LinkLoader`` over a deletion-aware graph.

:class:`LiveNeighborLoader` and :class:`LiveLinkNeighborLoader` are PyG's own loaders driven by
:class:`~graphunlearn.sampling.LiveNeighborSampler`; they give batches laid out as PyG's ``NeighborLoader``
and ``LinkNeighborLoader`` give them. What they add:

* They read the graph through a :class:`LiveSource`, whose callables return the *current* tensors, once per
  batch: a loader made before a deletion request never returns a node, edge or feature value that the
  request deleted. Features are joined from the source's live features (deleted values zeroed), in the main
  process; a batch that a worker process sampled before a request (``num_workers > 0``) is spotted by the
  graph's ``version`` and sampled again there.
* Seeds deleted after the loader was made (nodes, or links whose endpoint or edge was deleted) are dropped
  from their batch: ``batch_size`` and ``input_id`` then count and name the seeds that remain (a batch can
  be empty). At construction, deleted seeds are refused instead, as a caller's mistake.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor
from torch_geometric.data import Data
from torch_geometric.loader import LinkLoader, NodeLoader
from torch_geometric.sampler import SamplerOutput

from .neighbor import LiveCSR, LiveNeighborSampler, _fmt


@dataclass(frozen=True)
class LiveSource:
    r"""Where a loader reads the graph: callables that return the *current* tensors, called once per batch.

    Args:
        num_nodes: N, the graph's node count (fixed for the source's lifetime).
        graph: returns the current :class:`LiveCSR` (its ``edge_live`` is needed by link loaders that check
            seed links against edges); may raise when the graph was renumbered.
        node_attrs: returns ``{name: [N, ...] tensor}``, the node-level attributes a batch carries, indexed
            by ``n_id`` (``x`` with deleted nodes and feature values zeroed).
        edge_attrs: returns ``{name: [E, ...] tensor}``, the edge-level attributes, indexed by ``e_id``.
    """

    num_nodes: int
    graph: Callable[[], LiveCSR]
    node_attrs: Callable[[], dict[str, Tensor]]
    edge_attrs: Callable[[], dict[str, Tensor]]


@dataclass(frozen=True)
class _Stamp:
    """Appended to a sampler output's metadata: the graph version it was sampled at, and its loader index."""

    version: int
    index: Tensor


# NeighborLoader / LinkNeighborLoader options these loaders do not implement, refused by name.
_UNSUPPORTED = ("replace", "subgraph_type", "disjoint", "temporal_strategy", "time_attr", "weight_attr",
                "is_sorted", "directed", "input_time", "edge_label_time", "input_id", "custom_cls")


def _prepare(where: str, source, kwargs: dict, seed, shuffle) -> None:
    if not isinstance(source, LiveSource):
        raise TypeError(f"{where}: source must be a LiveSource, got {type(source).__name__}")
    for name in _UNSUPPORTED:
        if name in kwargs:
            raise NotImplementedError(f"{where}: the option {name}= of PyG's neighbour loaders is not supported "
                                      "by the deletion-aware loaders")
    if kwargs.get("filter_per_worker"):
        raise ValueError(f"{where}: filter_per_worker=True is not supported: features are joined in the main "
                         "process, where a batch sampled by a worker before a deletion request is sampled again")
    kwargs["filter_per_worker"] = False
    if seed is not None and shuffle and kwargs.get("generator") is None:
        kwargs["generator"] = torch.Generator().manual_seed(seed)  # the shuffling order, reproducibly


def _as_ids(where: str, name: str, value, *, dim: int) -> Tensor:
    t = value if isinstance(value, Tensor) else torch.as_tensor(value)
    if t.dtype == torch.bool or t.is_floating_point() or t.is_complex() or t.dim() != dim:
        want = "1-D" if dim == 1 else "[2, P]"
        raise ValueError(f"{where}: {name} must be a {want} tensor of integer ids, got dtype {t.dtype} and "
                         f"shape {tuple(t.shape)}")
    return t.long().cpu()


def _batch(source: LiveSource, out: SamplerOutput) -> Data:
    """A ``Data`` for the sampled subgraph, its attributes read from the source now."""
    data = Data()
    node, edge = out.node, out.edge
    for name, value in source.node_attrs().items():
        data[name] = value.index_select(0, node.to(value.device))
    data.edge_index = torch.stack([out.row, out.col])
    for name, value in source.edge_attrs().items():
        data[name] = value.index_select(0, edge.to(value.device))
    data.num_nodes = node.numel()
    data.n_id = node
    data.e_id = edge
    data.batch = out.batch
    data.num_sampled_nodes = out.num_sampled_nodes
    data.num_sampled_edges = out.num_sampled_edges
    return data


def _fresh(loader, out: SamplerOutput) -> SamplerOutput:
    """``out``, or the same batch sampled again here when a request arrived since it was sampled."""
    stamp = out.metadata[-1] if isinstance(out.metadata, tuple) and out.metadata else None
    if isinstance(stamp, _Stamp) and stamp.version != loader.source.graph().version:
        out = loader.collate_fn(stamp.index)
    return out


class LiveNeighborLoader(NodeLoader):
    r"""PyG's ``NodeLoader`` with a :class:`LiveNeighborSampler`: deletion-aware ``NeighborLoader`` batches.

    Each batch is a ``Data`` as PyG's ``NeighborLoader`` makes it: ``n_id`` [n] (the seeds first, in batch
    order), ``edge_index`` [2, m] in local ids (``edge_index[1]`` is the node whose neighbour
    ``edge_index[0]`` was drawn), ``e_id`` [m] (the source's edge ids; both directions of an undirected edge
    share one), ``batch_size`` (seeds in the batch), ``input_id`` (their positions in ``input_nodes``),
    ``num_sampled_nodes`` / ``num_sampled_edges`` (per hop), and every attribute of the source indexed by
    ``n_id`` / ``e_id`` (``x``, ``y``, ``edge_weight``, ...). A GNN's output for the seeds is
    ``out[:batch.batch_size]``.

    Args:
        source: the graph (:class:`LiveSource`).
        num_neighbors: per-hop fanouts (ints ``>= -1``; ``-1`` takes every live neighbour).
        input_nodes: seed nodes: ids or an [N] bool mask (default ``None``: the nodes live now). They must be
            distinct live nodes; ones deleted later are dropped from their batch.
        seed: seeds the sampler and, with ``shuffle``, the shuffling order (default ``None``: torch's global
            generator), so two loaders with the same seed give the same batches.
        batch_size: seeds per batch (default 1, as in PyG).
        shuffle: reshuffle the seeds every epoch (default ``False``).
        where: the name error messages start with (default ``"LiveNeighborLoader"``).
        **kwargs: ``transform``, ``transform_sampler_output`` and ``torch.utils.data.DataLoader`` options
            (``drop_last``, ``num_workers``, ...).

    Raises:
        TypeError: ``source`` is not a :class:`LiveSource`; a malformed ``num_neighbors``.
        ValueError: ``input_nodes`` malformed, out of range, repeated or deleted; ``filter_per_worker=True``.
        NotImplementedError: a ``NeighborLoader`` option these loaders lack (``replace``, ``disjoint``,
            ``time_attr``, ...).
    """

    def __init__(self, source: LiveSource, num_neighbors, input_nodes=None, *, seed: int | None = None,
                 batch_size: int = 1, shuffle: bool = False, where: str = "LiveNeighborLoader", **kwargs):
        _prepare(where, source, kwargs, seed, shuffle)
        graph = source.graph()
        nodes = self._input_nodes(where, input_nodes, graph)
        sampler = LiveNeighborSampler(source.graph, num_neighbors, seed=seed)
        # no seeds left (everything deleted): an empty epoch, which torch's RandomSampler would refuse
        super().__init__(Data(num_nodes=source.num_nodes), sampler, input_nodes=nodes, batch_size=batch_size,
                         shuffle=shuffle and nodes.numel() > 0, **kwargs)
        self.source = source

    @staticmethod
    def _input_nodes(where: str, input_nodes, graph: LiveCSR) -> Tensor:
        n = graph.num_nodes
        if input_nodes is None:
            return graph.node_live.nonzero().squeeze(1).cpu()
        if isinstance(input_nodes, Tensor) and input_nodes.dtype == torch.bool:
            if input_nodes.shape != (n,):
                raise ValueError(f"{where}: input_nodes as a mask must have shape ({n},), got "
                                 f"{tuple(input_nodes.shape)}")
            ids = input_nodes.nonzero().squeeze(1).cpu()
        else:
            ids = _as_ids(where, "input_nodes", input_nodes, dim=1)
        bad = ids[(ids < 0) | (ids >= n)]
        if bad.numel():
            raise ValueError(f"{where}: input_nodes {_fmt(bad)} are out of range 0..{n - 1}")
        uniq, counts = torch.unique(ids, return_counts=True)
        if bool((counts > 1).any()):
            raise ValueError(f"{where}: input_nodes repeats nodes {_fmt(uniq[counts > 1])}; seeds must be distinct")
        dead = ids[~graph.node_live[ids.to(graph.device)].cpu()]
        if dead.numel():
            raise ValueError(f"{where}: input_nodes {_fmt(dead)} are deleted; pass live nodes (for a mask: "
                             "mask & store.node_mask)")
        return ids

    def collate_fn(self, index) -> SamplerOutput:
        """Sample the batch ``index`` (positions in ``input_nodes``), dropping seeds deleted since."""
        index = index if isinstance(index, Tensor) else torch.tensor(index, dtype=torch.long)
        graph = self.source.graph()
        inputs = self.input_data[index]
        alive = graph.node_live[inputs.node.to(graph.device)].cpu()
        if not bool(alive.all()):
            inputs = inputs[alive.nonzero().squeeze(1)]
        out = self.node_sampler.sample_from_nodes(inputs)
        out.metadata = (*out.metadata, _Stamp(graph.version, index))
        return out

    def filter_fn(self, out: SamplerOutput) -> Data:
        """Join the sampled subgraph with the source's current attributes, as PyG's ``NodeLoader`` does."""
        out = _fresh(self, out)
        if self.transform_sampler_output:
            out = self.transform_sampler_output(out)
        data = _batch(self.source, out)
        data.input_id = out.metadata[0]
        data.seed_time = out.metadata[1]
        data.batch_size = out.metadata[0].size(0)
        return data if self.transform is None else self.transform(data)


class LiveLinkNeighborLoader(LinkLoader):
    r"""PyG's ``LinkLoader`` with a :class:`LiveNeighborSampler`: deletion-aware ``LinkNeighborLoader`` batches.

    Each batch is laid out as PyG's ``LinkNeighborLoader`` gives it: the sampled subgraph of the seed links'
    endpoints (``n_id``, ``edge_index``, ``e_id``, ``num_sampled_*``, the source's attributes; see
    :class:`LiveNeighborLoader`), ``input_id`` (positions of the batch's links in ``edge_label_index``) and,
    without negatives or with ``binary`` ones, ``edge_label_index`` [2, P + P_neg] in local ids
    (``n_id[edge_label_index]`` are the links, positives first in ``input_id`` order) and ``edge_label``
    (1 for positives and 0 for negatives when no labels were given; else labels + 1 if their minimum is
    0, as PyG does); with ``triplet`` negatives, ``src_index``, ``dst_pos_index`` and ``dst_neg_index``. As
    in PyG, link batches carry no ``batch_size``. Negatives are drawn from live nodes only; as in PyG they
    may by chance be true edges.

    Args:
        source: the graph (:class:`LiveSource`).
        num_neighbors: per-hop fanouts.
        edge_label_index: [2, P] seed links (source, destination).
        edge_label: [P, ...] their labels (default ``None``).
        edge_ids: [P] the source's edge id of each link, or -1 for a pair that is no edge (default ``None``:
            links are not checked against edges). A link whose edge is deleted is refused at construction
            and dropped from its batch afterwards, as one whose endpoint is deleted always is.
        neg_sampling: a ``NegativeSampling`` (or its mode string), default ``None``.
        seed, batch_size, shuffle, where, **kwargs: as for :class:`LiveNeighborLoader`
            (``neg_sampling_ratio`` is accepted, as in PyG).

    Raises:
        TypeError: ``source`` is not a :class:`LiveSource`; a malformed ``num_neighbors``.
        ValueError: ``edge_label_index`` malformed, out of range, or naming deleted nodes or edges;
            ``edge_label`` / ``edge_ids`` of the wrong length; ``edge_label`` with triplet negatives;
            ``filter_per_worker=True``.
        NotImplementedError: a ``LinkNeighborLoader`` option these loaders lack.
    """

    def __init__(self, source: LiveSource, num_neighbors, edge_label_index, edge_label: Tensor | None = None, *,
                 edge_ids: Tensor | None = None, neg_sampling=None, seed: int | None = None, batch_size: int = 1,
                 shuffle: bool = False, where: str = "LiveLinkNeighborLoader", **kwargs):
        _prepare(where, source, kwargs, seed, shuffle)
        graph = source.graph()
        n = graph.num_nodes
        ei = _as_ids(where, "edge_label_index", edge_label_index, dim=2)
        if ei.size(0) != 2:
            raise ValueError(f"{where}: edge_label_index must have shape [2, P], got {tuple(ei.shape)}")
        p = ei.size(1)
        bad = ei[:, ((ei < 0) | (ei >= n)).any(0)]
        if bad.numel():
            raise ValueError(f"{where}: edge_label_index names nodes out of range 0..{n - 1}: pairs "
                             f"{bad.t()[:10].tolist()}")
        dead = ei[:, ~(graph.node_live[ei[0].to(graph.device)] & graph.node_live[ei[1].to(graph.device)]).cpu()]
        if dead.numel():
            raise ValueError(f"{where}: edge_label_index names deleted nodes: pairs {dead.t()[:10].tolist()}"
                             f"{f' ({dead.size(1)} in all)' if dead.size(1) > 10 else ''}")
        if edge_ids is not None:
            edge_ids = _as_ids(where, "edge_ids", edge_ids, dim=1)
            if edge_ids.numel() != p:
                raise ValueError(f"{where}: edge_ids must have one entry per link ({p}), got {edge_ids.numel()}")
            if graph.edge_live is None:
                raise ValueError(f"{where}: edge_ids needs the source's LiveCSR.edge_live")
            e = edge_ids.to(graph.device)
            gone = ((e >= 0) & ~graph.edge_live[e.clamp(min=0)]).cpu()
            if bool(gone.any()):
                raise ValueError(f"{where}: edge_label_index names deleted edges {_fmt(edge_ids[gone])} (pairs "
                                 f"{ei[:, gone].t()[:10].tolist()})")
        if edge_label is not None and (not isinstance(edge_label, Tensor) or edge_label.dim() == 0
                                       or edge_label.size(0) != p):
            shape = tuple(edge_label.shape) if isinstance(edge_label, Tensor) else type(edge_label).__name__
            raise ValueError(f"{where}: edge_label must be a tensor with one row per link ({p}), got {shape}")
        sampler = LiveNeighborSampler(source.graph, num_neighbors, seed=seed)
        super().__init__(Data(num_nodes=source.num_nodes), sampler, edge_label_index=ei,
                         edge_label=None if edge_label is None else edge_label.cpu(), neg_sampling=neg_sampling,
                         batch_size=batch_size, shuffle=shuffle and p > 0, **kwargs)
        self.source = source
        self.edge_ids = edge_ids

    def collate_fn(self, index) -> SamplerOutput:
        """Sample the batch ``index`` (positions in ``edge_label_index``), dropping links deleted since."""
        index = index if isinstance(index, Tensor) else torch.tensor(index, dtype=torch.long)
        graph = self.source.graph()
        inputs = self.input_data[index]
        dev = graph.device
        alive = graph.node_live[inputs.row.to(dev)] & graph.node_live[inputs.col.to(dev)]
        if self.edge_ids is not None:
            e = self.edge_ids[index].to(dev)
            alive &= (e < 0) | graph.edge_live[e.clamp(min=0)]
        alive = alive.cpu()
        if not bool(alive.all()):
            inputs = inputs[alive.nonzero().squeeze(1)]
        out = self.link_sampler.sample_from_edges(inputs, neg_sampling=self.neg_sampling)
        out.metadata = (*out.metadata, _Stamp(graph.version, index))
        return out

    def filter_fn(self, out: SamplerOutput) -> Data:
        """Join the sampled subgraph with the source's current attributes, as PyG's ``LinkLoader`` does."""
        out = _fresh(self, out)
        if self.transform_sampler_output:
            out = self.transform_sampler_output(out)
        data = _batch(self.source, out)
        data.input_id = out.metadata[0]
        if self.neg_sampling is None or self.neg_sampling.is_binary():
            data.edge_label_index = out.metadata[1]
            data.edge_label = out.metadata[2]
            data.edge_label_time = out.metadata[3]
        else:
            data.src_index = out.metadata[1]
            data.dst_pos_index = out.metadata[2]
            data.dst_neg_index = out.metadata[3]
            data.seed_time = out.metadata[4]
        return data if self.transform is None else self.transform(data)
