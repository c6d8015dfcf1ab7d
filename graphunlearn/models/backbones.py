"""The project's own backbones. They follow the protocol every model follows here (``model(x, edge_index)``
-> node representations [N, d] in the store's numbering) and get no special treatment.

``GNN`` (with the ``GCN``/``SAGE``/``GIN``/``GAT`` shorthands) returns node embeddings (link prediction's
decoder belongs to the task) or, with ``out_channels = num_classes``, node-classification logits.
``LightGCN`` and ``MF`` are the user-item backbones (users are nodes ``0..U-1``, items ``U..U+I-1``); they
return the stacked user and item embeddings [U + I, d]. Given the ``edge_index`` a store hands out
(``store.live().edge_index``), the deletion-aware layers aggregate with the masked kernels over the store's
cached CSR; given any other ``edge_index`` they build its CSR once and keep it with the tensor.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .. import nn as gnn
from ..requests import LiveGraph
from .layers import unwrapped

CONVS = ("gcn", "sage", "gin", "gat")
#: normalisations a GIN convolution's MLP can hold (see :class:`GNN`'s ``norm``)
NORMS = ("layer_norm",)
#: PyG's ready-made models (``torch_geometric.nn.models``) by the backbone names here
_PYG_MODELS = {"GCN": "gcn", "GraphSAGE": "sage", "GIN": "gin", "GAT": "gat"}


def _no_rng():
    """Build submodules without drawing from the global RNG: their constructors' own initialisation is
    overwritten by ``reset_parameters()`` anyway, and skipping those draws makes ``torch.manual_seed(s);
    Model(...)`` initialise exactly as ``torch.manual_seed(s); model.reset_parameters()`` does. So a retrain
    (``gu.models.fresh_copy(model, seed=s)``) on the seed the original was built with starts where the
    original started, as the protocol's gold ("retrained from scratch on the same seed") asks."""
    return torch.random.fork_rng(devices=[])


def _conv(kind: str, i: int, o: int, heads: int, norm: str | None = None) -> nn.Module:
    if kind == "gcn":
        return gnn.GCNConv(i, o)
    if kind == "sage":
        return gnn.SAGEConv(i, o)
    if kind == "gin":  # PyG's GIN places the MLP's normalisation after its first linear layer, before the ReLU
        inner = [nn.LayerNorm(o)] if norm == "layer_norm" else []
        return gnn.GINConv(nn.Sequential(nn.Linear(i, o), *inner, nn.ReLU(), nn.Linear(o, o)))
    if kind == "gat":
        return gnn.GATConv(i, o // heads if o % heads == 0 else o, heads=heads,
                           concat=o % heads == 0)
    raise ValueError(f"unknown conv {kind!r}; expected one of {CONVS}")


def _node_ids(x: Tensor | None) -> bool:
    """Whether ``x`` holds node ids [n] (integers, one per node of a subgraph) rather than features."""
    return x is not None and x.dim() == 1 and not x.is_floating_point()


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
        norm: ``"layer_norm"`` puts a LayerNorm inside each GIN convolution's MLP, after its first linear layer
            (where PyG's ``GIN`` puts its ``norm``, though PyG's ``LayerNorm`` by default normalises over the
            whole graph; this one is ``torch.nn.LayerNorm``, per node, so a sampled computation graph computes
            what the whole graph does); only for ``conv="gin"``; default ``None`` (none). The
            :func:`GIN` shorthand and the tasks' ``build_model("gin")`` use it: without it GIN's sum
            aggregation over raw features trains erratically (Cora node classification, the node recipe,
            seeds 0-4: test accuracy 0.28-0.72 without, 0.735-0.781 with). Batch normalisation is not offered:
            its running statistics are a memory of every training node, deleted ones too, that no mask reaches.

    Shapes: x [N, in_channels], ``edge_index`` [2, E] (or a ``LiveGraph``) -> [N, out_channels]. With
    learnable embeddings, ``x`` is ``None`` (the whole table: N = ``num_nodes``) or the integer ids [n] of a
    subgraph's nodes (its ``n_id``, as PyG's ``NeighborLoader`` examples pass for featureless graphs), whose
    table rows are the input.
    """

    def __init__(self, in_channels: int | None, hidden_channels: int = 128, out_channels: int = 64,
                 num_layers: int = 2, conv: str = "gcn", dropout: float = 0.0, num_nodes: int | None = None,
                 heads: int = 1, norm: str | None = None):
        super().__init__()
        if conv not in CONVS:
            raise ValueError(f"unknown conv {conv!r}; expected one of {CONVS}")
        if norm is not None and norm not in NORMS:
            raise ValueError(f"unknown norm {norm!r}; expected None or one of {NORMS}")
        if norm is not None and conv != "gin":
            raise ValueError(f"norm={norm!r} normalises inside GIN's MLPs; conv {conv!r} has none (use conv='gin' "
                             "or norm=None)")
        if num_layers < 1:
            raise ValueError(f"num_layers must be at least 1, got {num_layers}")
        if in_channels is None and not num_nodes:
            raise ValueError("a GNN without input features (in_channels=None) needs num_nodes for its embeddings")
        self.config = dict(in_channels=in_channels, hidden_channels=hidden_channels, out_channels=out_channels,
                           num_layers=num_layers, conv=conv, dropout=dropout, num_nodes=num_nodes, heads=heads)
        if norm is not None:  # recorded only when set: a checkpoint from before ``norm`` rebuilds unchanged
            self.config["norm"] = norm
        with _no_rng():  # the initialisation is reset_parameters()'s alone (see _no_rng)
            self.embedding = nn.Embedding(num_nodes, hidden_channels) if in_channels is None else None
            dims = [in_channels or hidden_channels] + [hidden_channels] * (num_layers - 1) + [out_channels]
            self.convs = nn.ModuleList(_conv(conv, dims[k], dims[k + 1], heads, norm) for k in range(num_layers))
        self.dropout = dropout
        self.reset_parameters()

    def reset_parameters(self) -> None:
        if self.embedding is not None:
            nn.init.xavier_uniform_(self.embedding.weight)
        for conv in self.convs:
            conv.reset_parameters()

    def forward(self, x: Tensor | None, edge_index: Tensor | LiveGraph) -> Tensor:
        if self.embedding is None:
            h = x
        elif x is not None and not x.is_floating_point():
            h = self.embedding(x)  # node ids (a sampled subgraph's n_id): PyG's convention for featureless graphs
        else:
            h = self.embedding.weight
        for k, conv in enumerate(self.convs):
            h = conv(h, edge_index)
            if k < len(self.convs) - 1:
                h = torch.relu(h)
                h = nn.functional.dropout(h, self.dropout, self.training)
        return h


def GCN(in_channels: int | None, **kwargs) -> GNN:  # noqa: N802 - PyG-style constructor names
    """2-layer GCN, hidden 128, output 64 (see :class:`GNN`)."""
    return GNN(in_channels, conv="gcn", **kwargs)


def SAGE(in_channels: int | None, **kwargs) -> GNN:  # noqa: N802
    return GNN(in_channels, conv="sage", **kwargs)


def GIN(in_channels: int | None, **kwargs) -> GNN:  # noqa: N802
    """2-layer GIN with a LayerNorm in each convolution's MLP (``norm="layer_norm"``; see :class:`GNN`)."""
    return GNN(in_channels, conv="gin", **{**default_options("gin"), **kwargs})


def default_options(backbone: str) -> dict:
    """The constructor options :class:`GNN` takes by default for ``backbone`` here (the shorthands' and the
    tasks' ``build_model``'s): ``{"norm": "layer_norm"}`` for GIN, nothing for the others."""
    return {"norm": "layer_norm"} if backbone == "gin" else {}


def backbone_name(model: nn.Module) -> str | None:
    """Which of :data:`CONVS` ``model`` is: the project's :class:`GNN` by its ``conv``, PyG's ready-made
    ``GCN``/``GraphSAGE``/``GIN``/``GAT`` by class; a method's wrapper (GNNDelete's, holding the model as
    ``.base``) by the model inside. ``None`` for any other model (the tasks' backbone recipes then do not
    apply)."""
    core = unwrapped(model)
    if isinstance(core, GNN):
        return core.config["conv"]
    cls = type(core)
    if cls.__module__.startswith("torch_geometric.nn.models"):
        return _PYG_MODELS.get(cls.__name__)
    return None


def GAT(in_channels: int | None, **kwargs) -> GNN:  # noqa: N802
    return GNN(in_channels, conv="gat", **kwargs)


class LightGCN(nn.Module):
    r"""LightGCN (He et al., SIGIR 2020): :math:`E = \frac{1}{L+1} \sum_{l=0}^{L} \tilde A^l E^{(0)}`.

    Args:
        num_users: users (nodes ``0..U-1``).
        num_items: items (nodes ``U..U+I-1``).
        embedding_dim: size (default 64).
        num_layers: propagation steps (default 3).

    Shapes: ``edge_index`` [2, E] over U + I nodes -> embeddings [U + I, d] (users first). The same
    function as PyG's ``LightGCN.get_embedding``. On a sampled computation graph
    (:mod:`graphunlearn.tasks.local`) ``x`` holds the integer ids [n] of the subgraph's nodes (PyG's
    convention for featureless graphs, as :class:`GNN`): :math:`E^{(0)}` is then the table's rows of those
    nodes and the output [n, d] one row per subgraph node; otherwise (``x`` ``None`` or features, which
    LightGCN does not read) :math:`E^{(0)}` is the whole table.
    """

    def __init__(self, num_users: int, num_items: int, embedding_dim: int = 64, num_layers: int = 3):
        super().__init__()
        self.config = dict(num_users=num_users, num_items=num_items, embedding_dim=embedding_dim,
                           num_layers=num_layers)
        with _no_rng():
            self.embedding = nn.Embedding(num_users + num_items, embedding_dim)
        self.prop = gnn.LGConv()
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.embedding.weight, std=0.1)

    def forward(self, x: Tensor | None, edge_index: Tensor | LiveGraph) -> Tensor:
        h = self.embedding(x) if _node_ids(x) else self.embedding.weight
        out = h
        for _ in range(self.config["num_layers"]):
            h = self.prop(h, edge_index)
            out = out + h
        return out / (self.config["num_layers"] + 1)


class MF(nn.Module):
    """Matrix factorisation: user and item embeddings, no graph. Same call signature as :class:`LightGCN`:
    ``model(x, edge_index)`` -> [U + I, d] (``edge_index`` never read). With integer node ids ``x`` [n] (a
    sampled computation graph's nodes: users ``0..U-1``, items ``U..U+I-1``) -> their rows [n, d], the same
    rows whether sampled or not; otherwise ``x`` is ignored."""

    def __init__(self, num_users: int, num_items: int, embedding_dim: int = 64):
        super().__init__()
        self.config = dict(num_users=num_users, num_items=num_items, embedding_dim=embedding_dim)
        with _no_rng():
            self.users = nn.Embedding(num_users, embedding_dim)
            self.items = nn.Embedding(num_items, embedding_dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.users.weight, std=0.1)
        nn.init.normal_(self.items.weight, std=0.1)

    def forward(self, x: Tensor | None = None, edge_index=None) -> Tensor:
        if _node_ids(x):
            nu = self.users.num_embeddings
            user = (x < nu).unsqueeze(1)
            # two gathers of n rows each, never the whole table (an id of the other kind reads a clamped row
            # that the mask drops)
            return torch.where(user, self.users(x.clamp(max=max(nu - 1, 0))), self.items((x - nu).clamp(min=0)))
        return torch.cat([self.users.weight, self.items.weight])
