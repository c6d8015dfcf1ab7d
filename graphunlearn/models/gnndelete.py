r"""GNNDelete's deletion operators on any PyTorch Geometric model (Cheng et al., ICLR 2023).

After message-passing layer :math:`l` of the wrapped model, the representations of the nodes in the affected
set :math:`S_l` (live nodes within :math:`l` hops of the deleted elements) pass through a trainable linear
operator :math:`W_l`; every other node keeps the layer's output: :math:`h'^l_v = W_l h^l_v` for
:math:`v \in S_l`, else :math:`h^l_v`. The operators attach through forward hooks on the model's
``torch_geometric.nn.MessagePassing`` submodules (:func:`~graphunlearn.models.message_passing_layers`), so
any model whose layers are PyG layers works, not only the project's.

The sets :math:`S_l` are node ids of the store the operators were trained on. A graph in another numbering
is accepted in two cases: a subgraph whose nodes' store ids are given (:meth:`GNNDelete.on_nodes`, e.g. a
sampled computation graph's ``nodes``), and, after node deletion, a graph of as many nodes as were live then,
read in the retained numbering (the live nodes in increasing id order, as ``GraphStore.retained()`` and
``compact()`` number them).
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import contextmanager

import torch
from torch import Tensor, nn

from .layers import message_passing_layers

INITS = ("identity", "reference")


class GNNDelete(nn.Module):
    r"""A frozen model with one deletion operator per message-passing layer.

    Args:
        base: the trained model (kept, frozen, as ``self.base``; pass a copy to keep the original apart).
        affected: per layer, the node ids :math:`S_l` its operator applies to (``None``: none yet, as when
            loading; the masks are then restored by ``load_state_dict``).
        num_nodes: N, the number of rows of each layer's output (the store's node count).
        dims: per layer, the width of its output.
        init: ``"identity"`` (default: before training the wrapped model equals ``base``) or
            ``"reference"`` (the reference code's ones/1000 start).
        live: after node deletion, the store's live-node mask [N] when the operators were trained (default
            ``None``: no node was deleted). The model then also runs on a graph of ``live.sum()`` nodes in the
            retained numbering (``store.retained()``, a compacted store), each operator acting on the same
            nodes there.

    Called exactly like ``base`` (``model(x, edge_index)`` or whatever its signature is); ``decode`` and
    ``get_embedding`` are passed on when ``base`` has them. On a subgraph (a sampled computation graph), call
    it inside ``with model.on_nodes(graph.nodes):`` so that the operators find their nodes' rows. Save with
    :func:`~graphunlearn.models.save_model` and load with ``load_model(path, model=<an instance of base's
    architecture>)``: the card carries what is needed to rebuild the operators.

    Raises:
        ValueError: ``dims`` or ``affected`` do not have one entry per message-passing layer of ``base``, an
            unknown ``init``, or (when called) a graph whose node count is neither ``num_nodes`` nor, after
            node deletion, the live count (inside :meth:`on_nodes`: not the number of nodes given).
    """

    def __init__(self, base: nn.Module, affected: Sequence[Tensor] | None, num_nodes: int, dims: Sequence[int],
                 init: str = "identity", live: Tensor | None = None):
        super().__init__()
        if init not in INITS:
            raise ValueError(f"gnndelete: init must be one of {INITS}, got {init!r}")
        self.base = base
        for p in self.base.parameters():
            p.requires_grad_(False)
        self.layer_paths = [path for path, _ in message_passing_layers(base)]
        if len(dims) != len(self.layer_paths):
            raise ValueError(f"gnndelete: {len(dims)} operator widths for {len(self.layer_paths)} message-passing "
                             f"layers ({self.layer_paths})")
        if affected is not None and len(affected) != len(dims):
            raise ValueError(f"gnndelete: {len(affected)} affected sets for {len(dims)} layers")
        device = next(iter(base.parameters()), torch.empty(0)).device
        self.operators = nn.ModuleList()
        for d in dims:
            op = nn.Linear(d, d, device=device)
            with torch.no_grad():
                if init == "identity":
                    op.weight.copy_(torch.eye(d, device=device))
                else:
                    op.weight.fill_(1.0 / 1000)
                op.bias.zero_()
            self.operators.append(op)
        masks = torch.zeros(len(dims), num_nodes, dtype=torch.bool, device=device)
        for k, nodes in enumerate(affected or ()):
            masks[k, nodes] = True
        self.register_buffer("masks", masks)
        self.wrapper_config = {"kind": "gnndelete", "method": "gnndelete", "num_nodes": int(num_nodes),
                               "dims": [int(d) for d in dims],
                               "init": init}
        if live is not None:
            if live.shape != (num_nodes,):
                raise ValueError(f"gnndelete: live must be a mask of num_nodes={num_nodes} entries, got shape "
                                 f"{list(live.shape)}")
            self.register_buffer("live", live.to(device=device, dtype=torch.bool).clone())
            self.wrapper_config["live_nodes"] = int(live.sum())
        else:
            self.live = None
        self._skip = False
        self._record: list[Tensor] | None = None
        self._subset: Tensor | None = None
        if callable(getattr(base, "decode", None)):
            self.decode = base.decode  # the base's own method: its signature (e.g. GAE's sigmoid flag) shows
        if callable(getattr(base, "get_embedding", None)):
            self.get_embedding = self._get_embedding

    def _hook(self, k: int):
        def hook(module, inputs, output):
            if not isinstance(output, Tensor):
                raise TypeError(f"gnndelete: layer {self.layer_paths[k]} returned {type(output).__name__}; "
                                "operators need a tensor [N, d]")
            if not self._skip:
                output = torch.where(self._mask(k, output.size(0)).unsqueeze(1), self.operators[k](output), output)
            if self._record is not None:
                self._record.append(output)
            return output
        return hook

    def _mask(self, k: int, rows: int) -> Tensor:
        """Layer ``k``'s operator mask for an output of ``rows`` nodes: the rows of the subgraph's nodes when
        their store ids are set (:meth:`on_nodes`), else the store's numbering, or after node deletion the
        retained numbering (the live nodes in id order)."""
        if self._subset is not None:  # first: a subgraph may have as many nodes as the store, in another order
            if rows != self._subset.numel():
                raise ValueError(f"gnndelete: layer {self.layer_paths[k]} returned {rows} rows on a subgraph of "
                                 f"{self._subset.numel()} nodes (on_nodes); the model must return one row per node")
            return self.masks[k][self._subset]
        if rows == self.masks.size(1):
            return self.masks[k]
        live = int(self.live.sum()) if self.live is not None else None  # not on the training path: N rows
        if live is not None and rows == live:
            return self.masks[k][self.live]
        retained = f" or {live} (the nodes live after the deletion, in the retained numbering)" \
            if live is not None else ""
        raise ValueError(f"gnndelete: the operators are tied to the store's node numbering: a graph of "
                         f"{self.masks.size(1)} nodes{retained}; got one of {rows}")

    @contextmanager
    def _attached(self):
        modules = dict(self.base.named_modules())
        handles = [modules[path].register_forward_hook(self._hook(k)) for k, path in enumerate(self.layer_paths)]
        try:
            yield
        finally:
            for h in handles:
                h.remove()

    def forward(self, *args, **kwargs):
        with self._attached():
            return self.base(*args, **kwargs)

    def train(self, mode: bool = True) -> GNNDelete:
        """Train mode for the operators only: the wrapped model stays in eval mode (frozen: no dropout, no
        batch-norm statistics updated)."""
        super().train(mode)
        self.base.eval()
        return self

    def _get_embedding(self, *args, **kwargs):
        with self._attached():
            return self.base.get_embedding(*args, **kwargs)

    @contextmanager
    def on_nodes(self, nodes: Tensor | None):
        """Within the block the model runs on a subgraph whose rows are the store's nodes ``nodes`` [n] (int64
        ids, in row order; a sampled computation graph's ``nodes``,
        :class:`~graphunlearn.tasks.local.ComputationGraph`): each operator acts on the rows of its nodes
        there. ``None``: the store's numbering (as outside the block). The ids are not range-checked (no host
        synchronisation per call); an id outside ``[0, num_nodes)`` raises ``IndexError`` when the model runs.

        Raises:
            ValueError: (when the model runs inside the block) a layer returned another number of rows than
                ``nodes`` has.
        """
        before = self._subset
        self._subset = nodes
        try:
            yield self
        finally:
            self._subset = before

    def layer_outputs(self, call, *, identity: bool = False, subset: Tensor | None = None) -> list[Tensor]:
        """Each message-passing layer's output (after its operator) during ``call(self)``, a function that
        runs the model (e.g. ``lambda m: m(x, edge_index)``); ``identity=True`` skips the operators (the
        base model's own layer outputs). ``subset``: ``call`` runs the model on the subgraph of these store
        node ids, in this order (each operator then acts on the same nodes there, :meth:`on_nodes`)."""
        self._record, self._skip = [], identity
        try:
            with self.on_nodes(subset if subset is not None else self._subset):  # inside on_nodes: its ids
                call(self)
            return self._record
        finally:
            self._record, self._skip = None, False


def wrap_from_card(model: nn.Module, wrapper: dict, where) -> GNNDelete:
    """An empty :class:`GNNDelete` around ``model`` of the shape a card's ``wrapper`` records (its weights and
    masks come from ``load_state_dict``)."""
    from ..io import CorruptFileError

    if not isinstance(wrapper, dict) or wrapper.get("kind") != "gnndelete":
        raise CorruptFileError(f"{where}: unknown model wrapper {wrapper!r}")
    try:
        live = torch.zeros(wrapper["num_nodes"], dtype=torch.bool) if "live_nodes" in wrapper else None
        out = GNNDelete(model, None, wrapper["num_nodes"], wrapper["dims"], init=wrapper["init"], live=live)
        if live is not None:  # the mask itself comes with the weights (load_state_dict)
            out.wrapper_config["live_nodes"] = int(wrapper["live_nodes"])
        return out
    except (KeyError, TypeError, ValueError) as exc:
        raise CorruptFileError(f"{where}: the gnndelete wrapper does not fit the model given ({exc})") from None
