"""Vectorised graph utilities over CSR: construction, slot ranges and k-hop neighbourhoods.

Everything here is a function of tensors; no Python loop runs over nodes or edges (only over hops). Every
tensor a function creates lies on the device of the tensors it is given.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .kernels import sort_by_row


@dataclass(frozen=True)
class CSR:
    """Compressed rows: the slots of row ``i`` are ``rowptr[i]:rowptr[i+1]``.

    Shapes: ``rowptr`` [num_rows + 1]; ``col``, ``eid`` [S] (the other endpoint, and the edge id of each
    slot); ``perm`` [S] maps CSR position -> position in the directed slot list it was built from.
    """

    rowptr: Tensor
    col: Tensor
    eid: Tensor
    perm: Tensor

    @property
    def num_rows(self) -> int:
        return self.rowptr.numel() - 1


def build_csr(rows: Tensor, cols: Tensor, eids: Tensor, num_rows: int) -> CSR:
    """Sort directed slots by row (stable, so ties keep their input order) into a :class:`CSR`."""
    rowptr, perm = sort_by_row(rows, num_rows)
    return CSR(rowptr=rowptr, col=cols[perm], eid=eids[perm], perm=perm)


def expand_ranges(starts: Tensor, counts: Tensor) -> Tensor:
    """Concatenate ``arange(starts[k], starts[k] + counts[k])`` for every k, without a Python loop."""
    total = int(counts.sum())
    if total == 0:
        return torch.empty(0, dtype=torch.long, device=starts.device)
    offsets = torch.cumsum(counts, 0) - counts
    base = torch.repeat_interleave(starts - offsets, counts)
    return base + torch.arange(total, dtype=torch.long, device=starts.device)


def row_slots(rowptr: Tensor, rows: Tensor) -> Tensor:
    """All CSR positions of the given rows."""
    starts = rowptr[rows]
    return expand_ranges(starts, rowptr[rows + 1] - starts)


def k_hop_layers(rowptr: Tensor, col: Tensor, slot_live, seeds: Tensor, num_hops: int,
                 num_nodes: int) -> list[Tensor]:
    """Breadth-first layers from ``seeds`` along CSR rows: ``layers[h]`` holds the nodes at distance exactly h.

    Each hop gathers the slots of the whole frontier at once, so the work is proportional to the
    frontier's degree sum. Only live slots are followed: ``slot_live`` is a [S] bool mask, a function
    ``slots -> bool mask`` (asked only about the slots gathered), or ``None`` (all).

    Shapes: ``rowptr`` [N + 1], ``col`` [S], ``seeds`` [K] -> list of num_hops + 1 tensors.
    """
    visited = torch.zeros(num_nodes, dtype=torch.bool, device=col.device)
    frontier = torch.unique(seeds.long())
    visited[frontier] = True
    layers = [frontier]
    for _ in range(num_hops):
        slots = row_slots(rowptr, frontier)
        if callable(slot_live):
            slots = slots[slot_live(slots)]
        elif slot_live is not None:
            slots = slots[slot_live[slots]]
        nbrs = col[slots]
        nbrs = torch.unique(nbrs[~visited[nbrs]])
        visited[nbrs] = True
        layers.append(nbrs)
        frontier = nbrs
    return layers


class PairIndex:
    """Looks up edge ids from (u, v) pairs through a sorted key array (``u * num_nodes + v``)."""

    def __init__(self, src: Tensor, dst: Tensor, num_nodes: int):
        self.num_nodes = num_nodes
        keys = src.long() * num_nodes + dst.long()
        self.keys, self.order = torch.sort(keys, stable=True)

    def lookup(self, src: Tensor, dst: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Returns ``(found, pair_index, edge_ids)``: ``found[k]`` says whether pair k is an edge, and
        every matching edge id (parallel edges included) is listed with the index of its pair."""
        keys = src.long() * self.num_nodes + dst.long()
        left = torch.searchsorted(self.keys, keys, side="left")
        right = torch.searchsorted(self.keys, keys, side="right")
        counts = right - left
        pair_index = torch.repeat_interleave(torch.arange(keys.numel(), device=keys.device), counts)
        return counts > 0, pair_index, self.order[expand_ranges(left, counts)]


def undirected_unique(edge_index: Tensor, num_nodes: int) -> tuple[Tensor, Tensor, Tensor]:
    """Each undirected edge once, as ``(u <= v)`` sorted by ``(u, v)``.

    Returns ``(edges [2, E], first [E], inverse [E_in])``: ``first[k]`` is the first input column of edge k,
    and ``inverse[c]`` the edge that input column c maps to.
    """
    u = torch.minimum(edge_index[0], edge_index[1]).long()
    v = torch.maximum(edge_index[0], edge_index[1]).long()
    uniq, inverse = torch.unique(u * num_nodes + v, return_inverse=True)
    num_in = u.numel()
    dev = edge_index.device
    first = torch.full((uniq.numel(),), num_in, dtype=torch.long, device=dev).scatter_reduce_(
        0, inverse, torch.arange(num_in, device=dev), reduce="amin")
    return torch.stack([u[first], v[first]]), first, inverse


def to_bidirected(edges: Tensor) -> Tensor:
    """``[2, E]`` one direction per edge -> ``[2, S]`` both directions (self loops once)."""
    u, v = edges
    nonloop = u != v
    return torch.stack([torch.cat([u, v[nonloop]]), torch.cat([v, u[nonloop]])])
