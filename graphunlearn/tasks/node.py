"""Node classification: the model's output (or a head on it) is the class logits; the units are nodes."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.data import Data

from .. import distributed as dist
from ..datasets import splits as ds
from ..kernels import kl_distill_loss
from ..metrics import check_finite, roc_auc
from ..models import CONVS, GNN, default_options
from ..nn import as_live
from ..report import Metrics
from ..requests import DeletionRequest, bind
from ..store import DeletionError, GraphStore
from .base import (
    Task,
    affected_nodes,
    check_scores,
    class_gap,
    deleted_node_ids,
    live_nodes,
    make_generator,
    pick,
    register_task,
    run_model,
    val_subset,
)


def macro_f1(pred: Tensor, y: Tensor) -> float:
    """Unweighted mean of per-class F1 over the classes present in ``y`` or ``pred``."""
    scores = []
    for c in torch.unique(torch.cat([pred, y])):
        tp = ((pred == c) & (y == c)).sum().item()
        fp = ((pred == c) & (y != c)).sum().item()
        fn = ((pred != c) & (y == c)).sum().item()
        scores.append(0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
    return sum(scores) / len(scores) if scores else float("nan")


def node_regions(store: GraphStore, requests: Sequence[DeletionRequest], test_idx: Tensor) -> dict[str, Tensor]:
    """Node ids per region: the deleted nodes (and nodes whose features were deleted), live nodes within 1 hop
    of the deleted elements (``hop1``), within 2 hops but not 1 (``hop2``), the other live nodes (``rest``)
    and the live test nodes (``test``)."""
    deleted = torch.unique(torch.cat([torch.cat([r.node_ids, r.feature_node_ids]) for r in requests]))
    device = store.node_mask.device
    region = torch.full((store.num_nodes,), 3, dtype=torch.long, device=device)
    for hop in (2, 1):
        if any(r.num_hops >= hop for r in requests):
            region[torch.cat([r.affected_nodes(min(hop, r.num_hops)) for r in requests])] = hop
    region[deleted] = 0
    region[~store.node_mask] = 0
    live = store.node_mask.clone()
    live[deleted] = False
    ids = torch.arange(store.num_nodes, device=device)
    return {"deleted": deleted, "hop1": ids[live & (region == 1)], "hop2": ids[live & (region == 2)],
            "rest": ids[live & (region == 3)], "test": test_idx[store.node_mask[test_idx]]}


def graph_before(store: GraphStore, requests: Sequence[DeletionRequest],
                 rows: Tensor | None = None) -> tuple[Tensor | None, Tensor]:
    """Features and ``edge_index`` of the graph as it was before ``requests``: the live graph with the
    requests' own nodes, edges and feature values put back (other requests stay applied: a deleted node's row
    comes back without the values another request erased, and a node another request deleted stays deleted,
    with the values the asked requests erased from it).

    ``rows`` (1-D node ids [R], optional, repeats allowed): return only those feature rows, in that order ([R, F]
    instead of [N, F]), built without a copy of the whole matrix (nor of the feature mask); ``edge_index`` stays
    the whole graph's.
    """
    eids = torch.unique(torch.cat([store.live_edge_ids()] + [r.edge_ids for r in requests]))
    edge_index, orig = store._directed(eids)
    if store.edge_weight is not None:  # the project's layers read weights through the view bound to the tensor
        bind(edge_index, as_live(edge_index, store.num_nodes, store.edge_weight[orig]))
    x = store.live_x()
    if x is None:
        return None, edge_index
    fm = store.feature_mask  # False: a value erased
    if rows is None:
        x, keep, pos = x.clone(), None if fm is None else fm.clone(), None
    else:  # pos: a node's row in x (-1: not among rows)
        rows = torch.as_tensor(rows, dtype=torch.long, device=x.device).reshape(-1)
        uniq, inverse = torch.unique(rows, return_inverse=True)
        if uniq.numel() < rows.numel():  # repeated ids: build each row once, then repeat it
            return graph_before(store, requests, rows=uniq)[0][inverse], edge_index
        x, keep = x[rows], None if fm is None else fm[rows]
        pos = torch.full((store.num_nodes,), -1, dtype=torch.long, device=x.device)
        pos[rows] = torch.arange(rows.numel(), device=x.device)

    def here(ids: Tensor) -> tuple[Tensor, Tensor]:  # the store's ids among the rows, and their rows in x
        if pos is None:
            return ids, ids
        at = pos[ids]
        return ids[at >= 0], at[at >= 0]

    back = torch.cat([r.node_ids for r in requests]) if requests else None  # the nodes put back
    cells = []
    for r in requests:
        ids = r.feature_node_ids
        if ids.numel():  # a node another request deleted stays deleted, erased values and all
            ids = ids[store.node_mask[ids] | torch.isin(ids, back)]
            cols = slice(None) if r.feature_columns is None else r.feature_columns.unsqueeze(0)
            cells.append((*here(ids), cols))
    if keep is not None:
        for _, at, cols in cells:  # the requests' own erased values come back, others' stay erased
            keep[at.unsqueeze(1), cols] = True
    for r in requests:
        ids, at = here(r.node_ids)
        x[at] = store.x[ids] if keep is None else store.x[ids] * keep[at]
    for ids, at, cols in cells:
        x[at.unsqueeze(1), cols] = store.x[ids.unsqueeze(1), cols]
    return x, edge_index


def draw_node_class(store: GraphStore, split: ds.NodeSplit, seed: int = 0) -> int:
    """A node class drawn uniformly by ``seed`` among the labels of the live training nodes (labels below
    zero, unlabelled, are not classes): the class the ``"class"`` forget setting deletes.

    Raises:
        DeletionError: a store without 1-D labels ``y``, or no live labelled training node.
    """
    if store.y is None or store.y.dim() != 1:
        raise DeletionError("node classification, forget setting 'class': the store has no 1-D node labels y")
    train = split.train_idx[store.node_mask[split.train_idx]]
    classes = torch.unique(store.y[train])
    classes = classes[classes >= 0]
    if classes.numel() == 0:
        raise DeletionError("node classification, forget setting 'class': no live labelled training node")
    g = torch.Generator().manual_seed(seed)
    return int(classes[torch.randint(classes.numel(), (1,), generator=g)].item())


class NodeClassification(Task):
    r"""Node classification (split: :class:`~graphunlearn.datasets.NodeSplit`).

    Loss: cross-entropy on the live training nodes. Validation: accuracy on the live validation nodes. Units:
    node ids [K]; logits [K, C]; distillation is the softmax KL at temperature :math:`\tau`.

    Args:
        head: ``head(z) -> logits`` [N, C] applied to the model's output (default: the output is the logits).
            A head with trainable weights belongs inside the model.
    """

    name = "node"
    val_metric = "accuracy"  # on the live validation nodes
    split_type = ds.NodeSplit
    recipe = dict(epochs=200, lr=0.01, weight_decay=5e-4, patience=50, eval_every=1, batch_size=None)
    backbones = CONVS
    sampled_training = True
    headline = ("test_acc", "test_macro_f1", "mia_auroc", "acc_deleted", "gap_deleted_kl", "gap_test_kl", "gap_hop1_kl",
                "seconds", "peak_mb")
    plot_axes = ("mia_auroc", "test_acc")

    def build_model(self, backbone, store, split, hidden_channels=128, out_channels=64):
        self._check_backbone(backbone)
        if store.y is None:
            raise ValueError("node classification needs node labels y; the store has none")
        return GNN(store.num_features, conv=backbone, hidden_channels=hidden_channels,
                   out_channels=int(store.y.max()) + 1, **default_options(backbone))

    def describe_split(self, split):
        return (f"{split.train_idx.numel()} training, {split.val_idx.numel()} validation, "
                f"{split.test_idx.numel()} test nodes")

    def __init__(self, head: Callable[[Tensor], Tensor] | None = None):
        super().__init__(None)
        if head is not None and not callable(head):
            raise TypeError(f"NodeClassification: head must be callable z -> logits, got {type(head).__name__}")
        self.head = head

    def logits(self, model: nn.Module, store: GraphStore) -> Tensor:
        """Class logits [N, C] of ``model`` on the store's live graph (the head applied, if any)."""
        view = store.live()
        return self._ask(model, view.x, view.edge_index)

    def _ask(self, model, x, edge_index):
        z = run_model(model, x, edge_index)
        return z if self.head is None else self.head(z)

    def check_trainable(self, store, split, where):
        if store.y is None:
            raise ValueError(f"{where}: the store has no labels y")
        if split is None:
            raise ValueError(f"{where}: node classification needs split= (its training nodes)")
        if not bool(store.node_mask[split.train_idx].any()):
            raise ValueError(f"{where}: no live training nodes left (every node of split.train_idx was deleted)")

    def batches(self, store, split, generator, batch_size):
        """Full batch (``None``), or the live training nodes in random order, ``batch_size`` at a time."""
        if batch_size is None:
            return (None,)
        train = split.train_idx[store.node_mask[split.train_idx]]
        return train[torch.randperm(train.numel(), generator=generator, device=train.device)].split(batch_size)

    def sample_batch(self, store, split, generator, size):
        return pick(split.train_idx[store.node_mask[split.train_idx]], size, generator)

    def loss(self, model, store, split, batch, generator, recipe):
        if batch is not None:  # a mini-batch of live training nodes
            z, (nodes,) = self.encode_for(model, store, [batch], recipe.get("num_neighbors"), generator)
            return F.cross_entropy(self.unit_logits(model, z, nodes), store.y[batch])
        # the mean over the live training nodes, as a weighted mean over all of them: no data-dependent
        # shape, so no host sync per step (a deleted node's weight is 0: its label never counts)
        train = split.train_idx
        live = store.node_mask[train].to(torch.float32)
        per_node = F.cross_entropy(self.logits(model, store)[train], store.y[train], reduction="none")
        return (per_node * live).sum() / live.sum().clamp(min=1)

    @torch.no_grad()
    def validate(self, model, store, split, num_neighbors=None):
        if split is None:
            return None
        if num_neighbors is None:
            return self.accuracy(model, store, split.val_idx)
        from .local import embed

        model.eval()
        # the subset is fixed over the split's validation positions before liveness is read, so that deleting
        # a validation node drops it without drawing the rest anew (every model of a run reads the same nodes)
        nodes = split.val_idx[val_subset(split.val_idx.numel(), self.sampled_val_units, split.val_idx.device)]
        nodes = nodes[store.node_mask[nodes]]
        if not nodes.numel():
            return float("nan")
        # data-parallel: each rank classifies its share of the subset; the counts are summed over the ranks
        shared = dist.is_active() and nodes.numel() >= dist.world_size()
        nodes = dist.shard(nodes) if shared else nodes
        z = embed(model, store, nodes, num_neighbors, generator=make_generator(0, store.device))
        logits = self.unit_logits(model, z, torch.arange(nodes.numel(), device=z.device))
        hits = logits.argmax(1) == store.y[nodes]
        if shared:  # the finiteness check too is summed first, so that every rank raises or none
            bad, correct, total = dist.all_reduce_sum([float((~torch.isfinite(logits)).sum()), float(hits.sum()),
                                                       nodes.numel()], "node validation accuracy")
            if bad:
                check_finite("node accuracy", logits.new_full((1,), float("nan")), "logits of the nodes asked")
            return correct / total
        check_finite("node accuracy", logits, "logits of the nodes asked")
        return float(hits.float().mean())

    def chance_level(self, store, split):
        """The majority-class rate on the live validation nodes: the accuracy of always answering the class
        most frequent there (the best a model that ignores its input can do). ``None`` without a split or
        labels, or with fewer than :attr:`chance_min_units` live validation nodes."""
        if split is None or store.y is None:
            return None
        y = store.y[split.val_idx[store.node_mask[split.val_idx]]]
        labelled = y[y >= 0]  # a negative label (unlabelled) is never predicted: it counts as a miss
        if y.numel() < self.chance_min_units or not labelled.numel():
            return None
        return float(torch.bincount(labelled).max()) / y.numel()

    @torch.no_grad()
    def accuracy(self, model: nn.Module, store: GraphStore, nodes: Tensor) -> float:
        """Accuracy on the live ``nodes`` (NaN when none is live; ``NonFiniteScoreError`` on NaN or infinite
        logits there, which ``argmax`` would otherwise read as a confident class)."""
        model.eval()
        nodes = nodes[store.node_mask[nodes]]
        logits = self.logits(model, store)[nodes]
        check_finite("node accuracy", logits, "logits of the nodes asked")
        return float((logits.argmax(1) == store.y[nodes]).float().mean()) if nodes.numel() else float("nan")

    # units: nodes
    def forget_units(self, store, requests, split):
        return deleted_node_ids(requests)

    def retain_sampler(self, store, requests, split, ratio, cap=None):
        near = affected_nodes(store, requests)
        alive = live_nodes(store)
        n = int(ratio * max(1, near.numel()))

        def sample(generator):
            units = torch.cat([near, pick(alive, n, generator)])
            if cap is not None and units.numel() > cap:
                units = units[torch.randperm(units.numel(), generator=generator, device=units.device)[:cap]]
            return units
        return sample

    def unit_logits(self, model, z, units):
        return (z if self.head is None else self.head(z))[units]

    def heldout_units(self, split):
        return split.val_idx

    heldout_is_validation = True

    @torch.no_grad()
    def membership_scores(self, model, store, split, requests):
        """Scores of deleted training nodes and of live validation nodes (never trained on): the log-probability
        of each node's true class, asked on the graph before the requests (:func:`graph_before`: an attacker
        holding the deleted records queries with them, as :meth:`evaluate` asks)."""
        if split is None or store.y is None:
            return None
        deleted = deleted_node_ids(requests)
        deleted = deleted[torch.isin(deleted, split.train_idx)]
        held = split.val_idx[store.node_mask[split.val_idx]]
        if not deleted.numel() or not held.numel():
            return None
        was = model.training
        model.eval()
        try:
            x_before, before = graph_before(store, requests)
            logp = torch.log_softmax(self._ask(model, x_before, before), 1)
        finally:
            model.train(was)
        picked = logp.gather(1, store.y.reshape(-1, 1)).squeeze(1)
        return picked[deleted], picked[held]

    def distill_loss(self, student, teacher, tau):
        return kl_distill_loss(student, teacher, tau=tau, reduction="mean")

    def unit_loss(self, logits, units, store):
        return F.cross_entropy(logits, store.y[units])

    # evidence
    @torch.no_grad()
    def evaluate(self, model: nn.Module, store: GraphStore, split, requests: Sequence[DeletionRequest], *,
                 gold: nn.Module | None = None, original: nn.Module | None = None,
                 where: str = "evaluate.node_classification") -> Metrics:
        """Node-classification metrics after ``requests`` (``../shared/PROTOCOL.md``).

        ``test_acc`` and ``test_macro_f1`` on live test nodes, the model run on the live graph.

        Questions about the deleted nodes are asked the way an attacker who holds their records would ask
        them: by querying with the graph as it was before the requests (:func:`graph_before`: their features
        and edges back). On the live graph they are isolated and featureless, so every model, gold included,
        would give them one constant answer. ``acc_deleted`` is the model's accuracy on them,
        ``gold_acc_deleted`` gold's (the target). With ``original``, the posterior-difference membership
        attack (Chen et al., CCS 2021): members are the deleted training nodes, non-members as many live test
        nodes, score ``||softmax_original(v) - softmax_model(v)||_2``; ``mia_auroc`` near 0.5 means the
        deletion cannot be told from the outputs (a model that did not change, such as ``unlink``, scores
        exactly 0.5 while not forgetting: read it beside ``acc_deleted`` and the retrain gap). With ``gold``:
        the retrain gap by region (:func:`node_regions`, :func:`~graphunlearn.tasks.base.class_gap`) as
        ``gap_<region>_<kl|js|l2|fidelity>``; for the ``deleted`` region (the deleted nodes and the nodes whose
        feature values were deleted) both models are asked on the graph before, so an erased feature value is
        put back as the attacker holding the record would (before 2026-12-01 a feature-only request's nodes
        were asked on the live graph, without their values, and with deleted nodes in the same requests
        the feature-erased ones were left out of the region's gap; no committed benchmark deleted features).
        ``acc_deleted``, ``gold_acc_deleted`` and ``mia_auroc`` are about deleted nodes only: absent for
        requests that only erase feature values.

        Raises:
            ValueError: a store without labels, or NaN or infinite model outputs.
        """
        if store.y is None:
            raise ValueError(f"{where}: the store has no labels y")
        model.eval()
        logits = self.logits(model, store)
        check_scores(where, "model", logits[store.node_mask])
        test = split.test_idx[store.node_mask[split.test_idx]]
        pred, y = logits[test].argmax(1), store.y[test]
        out = Metrics("node", {"test_acc": (pred == y).float().mean().item() if test.numel() else float("nan"),
                               "test_macro_f1": macro_f1(pred, y)})
        deleted = deleted_node_ids(requests)
        # the deleted nodes and the nodes whose feature values were deleted, asked with their records
        recorded = torch.unique(torch.cat([deleted] + [r.feature_node_ids for r in requests]))
        if gold is not None:
            gold.eval()
        if recorded.numel():
            x_before, before = graph_before(store, requests)
            asked = self._ask(model, x_before, before)
            check_scores(where, "model (asked on the graph before the requests)", asked[recorded])
            if gold is not None:
                gold_asked = self._ask(gold, x_before, before)
                check_scores(where, "gold (asked on the graph before the requests)", gold_asked[recorded])
        if deleted.numel():
            out["acc_deleted"] = (asked[deleted].argmax(1) == store.y[deleted]).float().mean().item()
            if gold is not None:
                out["gold_acc_deleted"] = (gold_asked[deleted].argmax(1) == store.y[deleted]).float().mean().item()
            members = deleted[torch.isin(deleted, split.train_idx)]
            if original is not None and members.numel() and test.numel():
                original.eval()
                asked_original = self._ask(original, x_before, before)
                check_scores(where, "original", asked_original[torch.cat([members, test])])
                diff = (torch.softmax(asked_original, 1) - torch.softmax(asked, 1)).norm(dim=1)
                g = make_generator(0, test.device)
                non_members = test[torch.randperm(test.numel(), generator=g, device=test.device)[: members.numel()]]
                out["mia_auroc"] = roc_auc(diff[members], diff[non_members])
        if gold is not None:
            gold_logits = self.logits(gold, store)
            check_scores(where, "gold", gold_logits[store.node_mask])
            for region, nodes in node_regions(store, requests, split.test_idx).items():
                if region == "deleted" and recorded.numel():  # asked as the attacker asks (see above)
                    gap = class_gap(asked[nodes], gold_asked[nodes])
                else:
                    gap = class_gap(logits[nodes], gold_logits[nodes])
                for k, v in gap.items():
                    out[f"gap_{region}_{k}"] = v
        return out

    # splits
    def make_split(self, data: Data, seed: int) -> tuple[ds.NodeSplit, Data]:
        if data.get("y") is None:
            raise ValueError("node classification needs node labels y; this dataset has none")
        return ds.node_split(data, seed=seed), data

    #: the forget sets :meth:`sample_forget` draws (the benchmark's settings for node classification)
    forget_settings = ("nodes", "features", "class")
    unsized_settings = ("class",)

    def sample_forget(self, store, split, fraction, seed=0, setting="nodes", **_):
        """Delete ``fraction`` of the training nodes (``setting="nodes"``), or every feature value of them
        (``"features"``: the nodes, their labels and edges stay), drawn by
        :func:`~graphunlearn.datasets.forget_nodes`, or every node of one class (``"class"``:
        :meth:`~graphunlearn.GraphStore.delete_node_class`, training, validation, test and unlabelled nodes
        alike, with their edges; the class is drawn uniformly by ``seed`` among the classes of the live training
        nodes, and ``fraction`` is not read), and return the request.

        Raises:
            ValueError: an unknown ``setting``, or a fraction :func:`~graphunlearn.datasets.forget_nodes`
                refuses; :class:`~graphunlearn.DeletionError` (a ``ValueError``) for ``"features"`` on a store
                without features, or ``"class"`` on a store without 1-D labels or without live labelled
                training nodes.
        """
        if setting not in self.forget_settings:
            raise ValueError(f"node classification: unknown forget setting {setting!r}; known: "
                             f"{list(self.forget_settings)}")
        if setting == "class":
            return store.delete_node_class(draw_node_class(store, split, seed))
        nodes = ds.forget_nodes(split, fraction=fraction, seed=seed)
        return store.delete_nodes(nodes) if setting == "nodes" else store.delete_node_features(nodes)

    def live_split(self, split, store):
        def live(idx):
            return idx[store.node_mask[idx]]

        return ds.NodeSplit(live(split.train_idx), live(split.val_idx), live(split.test_idx), split.official)

    def split_keys(self):
        return ("train_idx", "val_idx", "test_idx", "official")

    def split_to_dict(self, split):
        return {"train_idx": split.train_idx, "val_idx": split.val_idx, "test_idx": split.test_idx,
                "official": split.official}

    def split_from_dict(self, blob, store):
        return ds.NodeSplit(blob["train_idx"], blob["val_idx"], blob["test_idx"], blob["official"])


NODE = register_task(NodeClassification())
