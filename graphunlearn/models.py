"""Backbones for the three tasks, all running on a store's live view (or a plain ``edge_index``).

``GNN`` (with the ``GCN``/``SAGE``/``GIN``/``GAT`` shorthands) returns node embeddings, as PyG users expect
from ``model(x, edge_index)``; ``decode`` scores pairs with a dot product for link prediction, and with
``out_channels = num_classes`` the output is the node-classification logits. ``LightGCN`` and ``MF`` are
the user-item backbones (users are nodes ``0..U-1``, items ``U..U+I-1``).
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

from . import nn as gnn
from .requests import LiveGraph

CONVS = ("gcn", "sage", "gin", "gat")


def _conv(kind: str, i: int, o: int, heads: int) -> nn.Module:
    if kind == "gcn":
        return gnn.GCNConv(i, o)
    if kind == "sage":
        return gnn.SAGEConv(i, o)
    if kind == "gin":
        return gnn.GINConv(nn.Sequential(nn.Linear(i, o), nn.ReLU(), nn.Linear(o, o)))
    if kind == "gat":
        return gnn.GATConv(i, o // heads if o % heads == 0 else o, heads=heads,
                           concat=o % heads == 0)
    raise ValueError(f"unknown conv {kind!r}; expected one of {CONVS}")


class GNN(nn.Module):
    r"""A stack of deletion-aware convolutions with ReLU and dropout between layers.

    Args:
        in_channels: input feature size, or ``None`` for learnable node embeddings (graphs without
            features, such as ogbl-ddi; then ``num_nodes`` is required).
        hidden_channels: hidden size (default 128).
        out_channels: output size (default 64: embeddings for a dot-product decoder).
        num_layers: number of convolutions (default 2).
        conv: ``"gcn"`` (default), ``"sage"``, ``"gin"`` or ``"gat"``.
        dropout: dropout between layers (default 0.0).
        num_nodes: nodes of the learnable embedding table (only with ``in_channels=None``).
        heads: attention heads for GAT (default 1).

    Shapes: x [N, in_channels] (ignored with learnable embeddings), graph a ``LiveGraph`` or an
    ``edge_index`` [2, E] -> [N, out_channels].
    """

    def __init__(self, in_channels: int | None, hidden_channels: int = 128, out_channels: int = 64,
                 num_layers: int = 2, conv: str = "gcn", dropout: float = 0.0, num_nodes: int | None = None,
                 heads: int = 1):
        super().__init__()
        if conv not in CONVS:
            raise ValueError(f"unknown conv {conv!r}; expected one of {CONVS}")
        if num_layers < 1:
            raise ValueError(f"num_layers must be at least 1, got {num_layers}")
        if in_channels is None and not num_nodes:
            raise ValueError("a GNN without input features (in_channels=None) needs num_nodes for its embeddings")
        self.config = dict(in_channels=in_channels, hidden_channels=hidden_channels, out_channels=out_channels,
                           num_layers=num_layers, conv=conv, dropout=dropout, num_nodes=num_nodes, heads=heads)
        self.embedding = nn.Embedding(num_nodes, hidden_channels) if in_channels is None else None
        dims = [in_channels or hidden_channels] + [hidden_channels] * (num_layers - 1) + [out_channels]
        self.convs = nn.ModuleList(_conv(conv, dims[k], dims[k + 1], heads) for k in range(num_layers))
        self.dropout = dropout
        self.reset_parameters()

    def reset_parameters(self) -> None:
        if self.embedding is not None:
            nn.init.xavier_uniform_(self.embedding.weight)
        for conv in self.convs:
            conv.reset_parameters()

    def forward(self, x: Tensor | None, graph: LiveGraph | Tensor) -> Tensor:
        if isinstance(graph, Tensor):
            n = self.embedding.num_embeddings if self.embedding is not None else x.size(0)
            graph = gnn.as_live(graph, n)
        h = self.embedding.weight if self.embedding is not None else x
        for k, conv in enumerate(self.convs):
            h = conv(h, graph)
            if k < len(self.convs) - 1:
                h = torch.relu(h)
                h = nn.functional.dropout(h, self.dropout, self.training)
        return h

    @staticmethod
    def decode(z: Tensor, pairs: Tensor) -> Tensor:
        """Dot-product link logits. Shapes: z [N, d], pairs [2, K] -> [K]."""
        return (z[pairs[0]] * z[pairs[1]]).sum(dim=-1)

    def fresh(self) -> GNN:
        """A newly initialised model of the same architecture (the starting point of a retrain)."""
        return type(self)(**self.config)


def GCN(in_channels: int | None, **kwargs) -> GNN:  # noqa: N802 - PyG-style constructor names
    """2-layer GCN, hidden 128, output 64 (see :class:`GNN`)."""
    return GNN(in_channels, conv="gcn", **kwargs)


def SAGE(in_channels: int | None, **kwargs) -> GNN:  # noqa: N802
    return GNN(in_channels, conv="sage", **kwargs)


def GIN(in_channels: int | None, **kwargs) -> GNN:  # noqa: N802
    return GNN(in_channels, conv="gin", **kwargs)


def GAT(in_channels: int | None, **kwargs) -> GNN:  # noqa: N802
    return GNN(in_channels, conv="gat", **kwargs)


class LightGCN(nn.Module):
    r"""LightGCN (He et al., SIGIR 2020): :math:`E = \frac{1}{L+1} \sum_{l=0}^{L} \tilde A^l E^{(0)}`.

    Args:
        num_users: users (nodes ``0..U-1``).
        num_items: items (nodes ``U..U+I-1``).
        embedding_dim: size (default 64).
        num_layers: propagation steps (default 3).

    Shapes: graph over U + I nodes -> (user embeddings [U, d], item embeddings [I, d]).
    """

    def __init__(self, num_users: int, num_items: int, embedding_dim: int = 64, num_layers: int = 3):
        super().__init__()
        self.config = dict(num_users=num_users, num_items=num_items, embedding_dim=embedding_dim,
                           num_layers=num_layers)
        self.embedding = nn.Embedding(num_users + num_items, embedding_dim)
        self.prop = gnn.LGConv()
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.embedding.weight, std=0.1)

    def forward(self, x: Tensor | None, graph: LiveGraph | Tensor) -> tuple[Tensor, Tensor]:
        if isinstance(graph, Tensor):
            graph = gnn.as_live(graph, self.embedding.num_embeddings)
        h = self.embedding.weight
        out = h
        for _ in range(self.config["num_layers"]):
            h = self.prop(h, graph)
            out = out + h
        out = out / (self.config["num_layers"] + 1)
        return out[: self.config["num_users"]], out[self.config["num_users"]:]

    def fresh(self) -> LightGCN:
        return type(self)(**self.config)


class MF(nn.Module):
    """Matrix factorisation: user and item embeddings, no graph. Same call signature as :class:`LightGCN`."""

    def __init__(self, num_users: int, num_items: int, embedding_dim: int = 64):
        super().__init__()
        self.config = dict(num_users=num_users, num_items=num_items, embedding_dim=embedding_dim)
        self.users = nn.Embedding(num_users, embedding_dim)
        self.items = nn.Embedding(num_items, embedding_dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.users.weight, std=0.1)
        nn.init.normal_(self.items.weight, std=0.1)

    def forward(self, x: Tensor | None = None, graph=None) -> tuple[Tensor, Tensor]:
        return self.users.weight, self.items.weight

    def fresh(self) -> MF:
        return type(self)(**self.config)


def clone_model(model: nn.Module) -> nn.Module:
    """A deep copy (weights included) that shares nothing with ``model``."""
    return copy.deepcopy(model)


class GNNDeleteModel(nn.Module):
    r"""A frozen GNN with one deletion operator per layer (GNNDelete, Cheng et al., ICLR 2023).

    After layer :math:`l` the representations of the nodes in the affected set :math:`S_l` (live nodes within
    :math:`l` hops of the deleted elements) pass through a trainable linear operator :math:`W_l`; every other
    node keeps the original representation. Operators start as the identity, so before training the model
    equals the original. Called like the wrapped :class:`~graphunlearn.models.GNN`: ``model(x, graph)``.
    """

    def __init__(self, base: GNN, affected: list[Tensor], num_nodes: int, dims: list[int],
                 init: str = "identity"):
        super().__init__()
        if not isinstance(base, GNN):
            raise TypeError(f"gnndelete wraps a graphunlearn.models.GNN, got {type(base).__name__}")
        self.base = base
        for p in self.base.parameters():
            p.requires_grad_(False)
        self.operators = nn.ModuleList()
        for d in dims:
            op = nn.Linear(d, d)
            with torch.no_grad():
                if init == "identity":
                    op.weight.copy_(torch.eye(d))
                elif init == "reference":  # the reference code's ones/1000 start (collapses the embeddings)
                    op.weight.fill_(1.0 / 1000)
                else:
                    raise ValueError(f"gnndelete: init must be 'identity' or 'reference', got {init!r}")
                op.bias.zero_()
            self.operators.append(op)
        masks = []
        for nodes in affected:
            m = torch.zeros(num_nodes, dtype=torch.bool)
            m[nodes] = True
            masks.append(m)
        self.register_buffer("masks", torch.stack(masks))
        self.config = {"base": dict(base.config), "num_nodes": num_nodes, "dims": list(dims), "init": init}

    @classmethod
    def from_config(cls, config: dict) -> GNNDeleteModel:
        """An empty model of the saved shape; ``load_state_dict`` then restores weights and affected sets."""
        empty = [torch.empty(0, dtype=torch.long)] * len(config["dims"])
        return cls(GNN(**config["base"]), empty, config["num_nodes"], config["dims"], init=config["init"])

    def layers(self, x, graph, upto: int | None = None, identity: bool = False) -> list[Tensor]:
        """Per-layer outputs (after the operator, before the activation), the first ``upto`` layers;
        ``identity=True`` skips the operators (the original model)."""
        if isinstance(graph, Tensor):
            graph = gnn.as_live(graph, self.masks.size(1))
        h = self.base.embedding.weight if self.base.embedding is not None else x
        outs = []
        n_layers = len(self.base.convs) if upto is None else upto
        for k in range(n_layers):
            h = self.base.convs[k](h, graph)
            if not identity:
                h = torch.where(self.masks[k].unsqueeze(1), self.operators[k](h), h)
            outs.append(h)
            if k < len(self.base.convs) - 1:
                h = torch.relu(h)
        return outs

    def forward(self, x, graph) -> Tensor:
        return self.layers(x, graph)[-1]

    decode = staticmethod(GNN.decode)

    def fresh(self) -> GNN:
        return self.base.fresh()
