r"""Deletion-aware convolutions: PyG's GCN, GraphSAGE, GIN, LightGCN and GAT layers on a store's live view.

Each layer keeps the parameter names of its PyTorch Geometric counterpart, so
``layer.load_state_dict(pyg_layer.state_dict())`` works both ways, and computes the same function on the
live graph that the PyG layer computes on a graph rebuilt without the deleted elements. Aggregation runs on
``graphunlearn.kernels.masked_spmm`` over the store's cached CSR and live mask.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch_geometric.nn import MessagePassing

from ..kernels import csr_row_index, masked_spmm
from ..requests import LiveGraph, bound

_PLAIN_ATTR = "_graphunlearn_plain_live"


def resolve(graph: LiveGraph | Tensor, num_nodes: int) -> LiveGraph:
    """The :class:`~graphunlearn.requests.LiveGraph` a deletion-aware layer aggregates over.

    ``graph`` is a store's view, the ``edge_index`` a store handed out (``store.live().edge_index``, which
    leads back to the store's cached CSR and live masks), or any other ``edge_index`` [2, E] (every edge
    live; its CSR is built once by :func:`as_live` and kept with the tensor until it is modified in place).
    ``num_nodes``: N, used only for a plain ``edge_index``.

    Raises:
        TypeError: ``graph`` is neither a ``LiveGraph`` nor a tensor.
        ValueError: a plain ``edge_index`` that is not [2, E] of integers.
    """
    if isinstance(graph, LiveGraph):
        return graph
    if not isinstance(graph, Tensor):
        raise TypeError(f"expected a LiveGraph or an edge_index tensor [2, E], got {type(graph).__name__}")
    live = bound(graph)
    if live is not None:
        return live
    if graph.dim() != 2 or graph.size(0) != 2 or graph.is_floating_point():
        raise ValueError(f"edge_index must be an integer tensor of shape [2, E], got {graph.dtype} "
                         f"{list(graph.shape)}")
    cached = getattr(graph, _PLAIN_ATTR, None)
    if cached is not None and cached[0] == graph._version and cached[1] == num_nodes:
        return cached[2]
    live = as_live(graph, num_nodes)
    setattr(graph, _PLAIN_ATTR, (graph._version, num_nodes, live))
    return live


def _aggregate(x: Tensor, graph: LiveGraph, *, reduce: str = "sum", normalize: bool = False,
               weighted: bool = False) -> Tensor:
    # Like their PyG counterparts, only GCN reads edge weights; SAGE and GIN aggregate unweighted.
    return masked_spmm(graph.rowptr, graph.col, x, graph.mask, graph.edge_weight if weighted else None,
                       reduce=reduce, normalize=normalize, deg=graph.gcn_deg if normalize else None,
                       transpose=graph.transpose)


def _gcn_self_loops(graph: LiveGraph) -> tuple[Tensor, Tensor, Tensor]:
    """GCN's view of the live graph under PyG's ``add_remaining_self_loops``: ``(mask, deg, loop_weight)``.

    ``mask`` [S]: the live slots that are not self loops; ``loop_weight`` [N]: the weight of the node's last
    live stored loop (CSR keeps edge order within a row), or 1 where it has none; ``deg`` [N]:
    ``loop_weight`` plus the live weighted in-degree without loops. The store's cached ``gcn_deg`` (1 + live
    weighted in-degree, loops included) cannot give this: it does not say which part of a degree is loops.
    O(S) per call, no host synchronisation.
    """
    row = csr_row_index(graph.rowptr, graph.col.numel())
    col = graph.col.to(row.dtype)
    loop = col == row
    mask = ~loop if graph.mask is None else graph.mask & ~loop
    live_loop = loop if graph.mask is None else loop & graph.mask
    w = graph.edge_weight
    n = graph.num_nodes
    ones = torch.ones(n, device=row.device)
    if w is None:  # unweighted: PyG gives every loop, stored or added, weight 1
        loop_weight = ones
        w_slots = mask.float()
    else:
        w = w.detach().float()
        slot = torch.arange(row.numel(), device=row.device)
        last = torch.full((n,), -1, dtype=torch.long, device=row.device).scatter_reduce_(
            0, row, torch.where(live_loop, slot, -1), reduce="amax")
        loop_weight = torch.where(last >= 0, w[last.clamp(min=0)] if w.numel() else ones, ones)
        w_slots = torch.where(mask, w, torch.zeros((), device=w.device))
    deg = torch.zeros(n, device=row.device).index_add_(0, row, w_slots) + loop_weight
    return mask, deg, loop_weight


class GCNConv(MessagePassing):
    r"""GCN layer (Kipf and Welling, ICLR 2017) on the live graph:
    :math:`X' = \hat D^{-1/2} (A + I) \hat D^{-1/2} X W + b` with :math:`\hat D` from live (weighted) degrees.

    Args:
        in_channels: input feature size.
        out_channels: output feature size.
        bias: add a learnable bias (default ``True``).
        normalize: apply the symmetric normalisation with self loops (default ``True``); ``False`` sums.

    Shapes: x [N, in_channels] -> [N, out_channels].

    Stored self loops follow PyG's ``add_remaining_self_loops``: a node with a live stored loop keeps that
    loop (one of them, the last in edge order, when it has several, as PyG does on CPU) and gets no unit
    loop; a node without one gets a loop of weight 1. Parallel edges each count, as in PyG.
    """

    def __init__(self, in_channels: int, out_channels: int, bias: bool = True, normalize: bool = True):
        super().__init__()
        self.in_channels, self.out_channels, self.normalize = in_channels, out_channels, normalize
        self.lin = nn.Linear(in_channels, out_channels, bias=False)
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.xavier_uniform_(self.lin.weight)
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def forward(self, x: Tensor, graph: LiveGraph | Tensor) -> Tensor:
        graph = resolve(graph, x.size(0))
        x = self.lin(x)
        if self.normalize and graph.has_self_loops:  # O(S) more work per call; graphs without loops skip it
            mask, deg, loop_weight = _gcn_self_loops(graph)
            out = masked_spmm(graph.rowptr, graph.col, x, mask, graph.edge_weight, normalize=True,
                              self_loops=False, deg=deg, transpose=graph.transpose)
            out = out + (loop_weight / deg).unsqueeze(1).to(x.dtype) * x
        else:
            out = _aggregate(x, graph, normalize=self.normalize, weighted=True)
        return out if self.bias is None else out + self.bias

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.in_channels}, {self.out_channels})"


class SAGEConv(MessagePassing):
    r"""GraphSAGE layer (Hamilton et al., NeurIPS 2017) with mean aggregation over live in-edges:
    :math:`x'_i = W_1 x_i + W_2 \operatorname{mean}_{j \in N_{live}(i)} x_j`.

    Args:
        in_channels: input feature size.
        out_channels: output feature size.
        bias: bias of the neighbour transform ``lin_l`` (default ``True``).

    Shapes: x [N, in_channels] -> [N, out_channels].
    """

    def __init__(self, in_channels: int, out_channels: int, bias: bool = True):
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.lin_l = nn.Linear(in_channels, out_channels, bias=bias)
        self.lin_r = nn.Linear(in_channels, out_channels, bias=False)

    def reset_parameters(self) -> None:
        self.lin_l.reset_parameters()
        self.lin_r.reset_parameters()

    def forward(self, x: Tensor, graph: LiveGraph | Tensor) -> Tensor:
        graph = resolve(graph, x.size(0))
        return self.lin_l(_aggregate(x, graph, reduce="mean")) + self.lin_r(x)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.in_channels}, {self.out_channels}, aggr=mean)"


class GINConv(MessagePassing):
    r"""GIN layer (Xu et al., ICLR 2019): :math:`x'_i = h_\Theta((1 + \epsilon) x_i + \sum_{j \in N_{live}(i)} x_j)`.

    Args:
        nn: the MLP :math:`h_\Theta`.
        eps: initial :math:`\epsilon` (default 0).
        train_eps: make :math:`\epsilon` learnable (default ``False``).

    Shapes: x [N, F] -> [N, nn's output size].
    """

    def __init__(self, nn: torch.nn.Module, eps: float = 0.0, train_eps: bool = False):
        super().__init__()
        self.nn = nn
        if train_eps:
            self.eps = torch.nn.Parameter(torch.tensor([eps]))
        else:
            self.register_buffer("eps", torch.tensor([eps]))
        self.initial_eps = eps

    def reset_parameters(self) -> None:
        for module in self.nn.modules():
            if module is not self.nn and hasattr(module, "reset_parameters"):
                module.reset_parameters()
        self.eps.data.fill_(self.initial_eps)

    def forward(self, x: Tensor, graph: LiveGraph | Tensor) -> Tensor:
        graph = resolve(graph, x.size(0))
        return self.nn((1 + self.eps) * x + _aggregate(x, graph))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(nn={self.nn})"


class LGConv(MessagePassing):
    r"""LightGCN propagation (He et al., SIGIR 2020) on the live graph, no parameters:
    :math:`X' = D^{-1/2} A D^{-1/2} X` with :math:`D` the live in-degree (no self loops; isolated nodes get 0).

    Shapes: x [N, F] -> [N, F].
    """

    def forward(self, x: Tensor, graph: LiveGraph | Tensor) -> Tensor:
        graph = resolve(graph, x.size(0))
        # gcn_deg counts the self loop; LightGCN's normalisation does not.
        return masked_spmm(graph.rowptr, graph.col, x, graph.mask, graph.edge_weight, normalize=True,
                           self_loops=False, deg=graph.gcn_deg - 1, transpose=graph.transpose)


def live_edge_index(graph: LiveGraph) -> Tensor:
    """``edge_index`` [2, S_live] (source, destination) of the live slots, in CSR order: O(S) per call."""
    dst = csr_row_index(graph.rowptr, graph.col.numel())
    return torch.stack([graph.col[graph.mask], dst[graph.mask]])


class GATConv(MessagePassing):
    r"""Graph attention (Velickovic et al., ICLR 2018) on the live graph.

    Attention has no masked-aggregation kernel yet: this layer runs PyTorch Geometric's ``GATConv`` (held as
    ``self.conv``, so its state dict is PyG's with a ``conv.`` prefix) on the live edge list, rebuilt from
    the live mask at every call. Arguments go to ``torch_geometric.nn.GATConv``.

    Shapes: x [N, in_channels] -> [N, heads * out_channels] (or [N, out_channels] with ``concat=False``).
    """

    def __init__(self, in_channels: int, out_channels: int, **kwargs):
        super().__init__()
        from torch_geometric.nn import GATConv as PyGGATConv

        self.conv = PyGGATConv(in_channels, out_channels, **kwargs)

    def reset_parameters(self) -> None:
        self.conv.reset_parameters()

    def forward(self, x: Tensor, graph: LiveGraph | Tensor) -> Tensor:
        if isinstance(graph, Tensor):  # a store's live edge_index or a plain one: PyG's layer takes it as it is
            return self.conv(x, graph)
        return self.conv(x, graph.edge_index if graph.edge_index is not None else live_edge_index(graph))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.conv})"


def as_live(edge_index: Tensor, num_nodes: int, edge_weight: Tensor | None = None) -> LiveGraph:
    """A :class:`LiveGraph` for a plain ``edge_index`` [2, E] (every edge live), so the deletion-aware layers
    also run as ordinary PyG-style layers. Builds CSR and CSC: O(E log E) per call; hold on to the result."""
    from ..graph import build_csr
    from ..kernels import live_degree, transpose_csr

    src, dst = edge_index[0].long(), edge_index[1].long()
    csr = build_csr(dst, src, torch.arange(src.numel(), device=src.device), num_nodes)
    rowptr, col = csr.rowptr, csr.col
    w = None if edge_weight is None else edge_weight[csr.perm].float()
    mask = torch.ones(col.numel(), dtype=torch.bool, device=edge_index.device)
    deg = live_degree(rowptr, None, w, self_loops=True)
    rowptr_t, col_t, perm_t = transpose_csr(rowptr, col, num_nodes)
    return LiveGraph(num_nodes=num_nodes, rowptr=rowptr, col=col, mask=mask, edge_weight=w, gcn_deg=deg,
                     rowptr_t=rowptr_t, col_t=col_t, mask_t=mask, transpose=(rowptr_t, col_t, perm_t), x=None,
                     node_mask=torch.ones(num_nodes, dtype=torch.bool, device=edge_index.device),
                     has_self_loops=bool((src == dst).any()))
