"""Link prediction: score node pairs from node representations; the deleted units are edges."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.data import Data

from .. import checks
from .. import distributed as dist
from ..datasets import splits as ds
from ..metrics import average_precision, check_finite, roc_auc
from ..models import CONVS, GNN, default_options
from ..report import Metrics
from ..requests import DeletionRequest
from ..store import GraphStore
from .base import (
    Task,
    check_scores,
    deleted_edge_ids,
    live_nodes,
    make_generator,
    pair_gap,
    pick,
    register_task,
    sample_pairs,
    val_subset,
)


def hits_at_k(pos: Tensor, neg: Tensor, k: int) -> float:
    """OGB's Hits@K: the fraction of positive scores strictly above the K-th highest negative score (1.0
    when there are fewer than K negatives)."""
    checks.check_int("hits_at_k", "k", k, low=1)
    if pos.numel() == 0:
        raise ValueError("hits_at_k needs at least one positive score")
    check_finite("hits_at_k", pos, "positive scores")
    check_finite("hits_at_k", neg, "negative scores")
    if neg.numel() < k:
        return 1.0
    kth = torch.topk(neg, k).values[-1]
    return (pos > kth).float().mean().item()


def ogb_link_metric(name: str | None) -> tuple[str, int] | None:
    """``("hits@K", K)`` for an OGB link dataset whose official metric is Hits@K, else ``None``."""
    if not name or not str(name).startswith("ogbl-"):
        return None
    from ogb.linkproppred import Evaluator

    try:
        evaluator = Evaluator(name)
    except (ValueError, KeyError):
        return None
    metric = evaluator.eval_metric
    return (metric, int(metric.split("@")[1])) if metric.startswith("hits@") else None


def ogb_hits(name: str, pos: Tensor, neg: Tensor) -> float:
    """The dataset's Hits@K computed by OGB's own ``Evaluator``."""
    from ogb.linkproppred import Evaluator

    evaluator = Evaluator(name)
    return float(evaluator.eval({"y_pred_pos": pos.float(), "y_pred_neg": neg.float()})[evaluator.eval_metric])


def _test_metrics(split, pos_scores: Tensor, neg_scores: Tensor, hits_k: int | None) -> Metrics:
    """Dt-AUROC and AUPR of the test pairs' scores, and OGB's official Hits@K on an ``ogbl-*`` dataset (or
    ``hits@hits_k`` when asked for another K, or anywhere)."""
    out = Metrics("link", {"dt_auroc": roc_auc(pos_scores, neg_scores),
                           "dt_aupr": average_precision(pos_scores, neg_scores)})
    name = getattr(split.train_data, "name", None)
    official = ogb_link_metric(name)
    if official is not None and (hits_k is None or hits_k == official[1]):
        out[official[0]] = ogb_hits(name, pos_scores, neg_scores)
    elif hits_k is not None:
        out[f"hits@{hits_k}"] = hits_at_k(pos_scores, neg_scores, hits_k)
    return out


class LinkPrediction(Task):
    r"""Link prediction (split: :class:`~graphunlearn.datasets.LinkSplit`).

    Loss: binary cross-entropy of the live edges (label 1) against as many uniformly sampled node pairs
    (label 0). Validation: AUROC of ``split.val_pos`` against ``split.val_neg``. Units: node pairs [2, K].
    Metrics (:meth:`evaluate`): Dt/Df AUROC and AUPR, OGB's Hits@K on ``ogbl-*`` datasets, the retrain gap.
    """

    name = "link"
    val_metric = "AUROC"  # validation positives against validation negatives
    split_type = ds.LinkSplit
    pairwise = True
    # 500 epochs at most: GCN on the row-normalised Amazon Photo is still improving at 200 (validation AUROC
    # 0.888 at 200, 0.955 at 500); early stopping (patience 50) ends runs that have settled, as Cora's does
    # at epoch 160
    recipe = dict(epochs=500, lr=0.01, weight_decay=0.0, patience=50, eval_every=5, batch_size=None)
    #: GIN's sum aggregation learns erratically for link prediction at lr 0.01 (Cora, seeds 42/21/13 and +1:
    #: test AUROC 0.58-0.84); at 0.001 (the rate GNNDelete's own code trains with) it is steady (0.90-0.92),
    #: but slower: on Amazon Photo validation AUROC peaks by chance at epoch 5 (0.78), dips, and passes that
    #: only at epoch 60 on its way to 0.955 at 200, so patience 50 stopped there; hence patience 100
    backbone_recipes = {"gin": dict(lr=0.001, patience=100)}
    backbones = CONVS
    sampled_training = True
    headline = ("dt_auroc", "df_auroc", "hits@20", "mi_ratio", "gap_test_kl", "gap_deleted_kl", "seconds", "peak_mb")
    plot_axes = ("df_auroc", "dt_auroc")

    def build_model(self, backbone, store, split, hidden_channels=128, out_channels=64):
        self._check_backbone(backbone)
        return GNN(store.num_features or None, conv=backbone, num_nodes=store.num_nodes,
                   hidden_channels=hidden_channels, out_channels=out_channels, **default_options(backbone))

    def check_trainable(self, store, split, where):
        if store.num_live_edges == 0:
            raise ValueError(f"{where}: the store has no live edges to train on (every edge was deleted)")

    def batches(self, store, split, generator, batch_size):
        """Full batch (``None``), or the live edge ids in random order, ``batch_size`` at a time."""
        if batch_size is None:
            return (None,)
        live = store.live_edge_ids()
        return live[torch.randperm(live.numel(), generator=generator, device=live.device)].split(batch_size)

    def sample_batch(self, store, split, generator, size):
        return pick(store.live_edge_ids(), size, generator)

    def loss(self, model, store, split, batch, generator, recipe):
        ids = store.live_edge_ids() if batch is None else batch  # cached per request: no host sync per step
        pos = store.edge_index[:, ids]
        neg = sample_pairs(live_nodes(store), pos.size(1), generator)
        z, (pairs,) = self.encode_for(model, store, [torch.cat([pos, neg], 1)], recipe.get("num_neighbors"),
                                      generator)
        logits = self.decode(model, z, pairs)
        labels = torch.cat([torch.ones(pos.size(1), device=logits.device),
                            torch.zeros(neg.size(1), device=logits.device)])
        return F.binary_cross_entropy_with_logits(logits, labels)

    @torch.no_grad()
    def validate(self, model, store, split, num_neighbors=None):
        if split is None:
            return None
        model.eval()
        pos, neg = split.val_pos, split.val_neg
        if num_neighbors is None:
            z = self.encode(model, store)
            return roc_auc(self.decode(model, z, pos), self.decode(model, z, neg))
        from .local import embed

        k = self.sampled_val_units
        pos = pos[:, val_subset(pos.size(1), k, pos.device)]
        neg = neg[:, val_subset(neg.size(1), k, neg.device)]
        # data-parallel: each rank scores its share of the subset, and the AUROC reads every rank's scores
        shared = dist.is_active() and min(pos.size(1), neg.size(1)) >= dist.world_size()
        if shared:
            pos, neg = dist.shard(pos), dist.shard(neg)
        nodes = torch.cat([pos, neg], 1)
        z = embed(model, store, nodes.reshape(-1), num_neighbors, generator=make_generator(0, store.device))
        local = torch.arange(nodes.numel(), device=z.device).view(2, -1)
        scores = self.decode(model, z, local)
        pos_scores, neg_scores = scores[:pos.size(1)], scores[pos.size(1):]
        if shared:
            pos_scores = dist.gather_cat(pos_scores, "link validation scores")
            neg_scores = dist.gather_cat(neg_scores, "link validation scores")
        return roc_auc(pos_scores, neg_scores)

    #: AUROC within 0.02 of 0.5: a model that scores every pair alike (the collapse of a diverged run) or at
    #: random sits there; a trained GCN is above 0.85 on every graph of ../shared/data
    chance_margin = 0.02

    def chance_level(self, store, split):
        """0.5: the validation AUROC of scores that do not tell edges from non-edges (``None`` without a split
        or with fewer than :attr:`chance_min_units` validation pairs of either label)."""
        if split is None or min(split.val_pos.size(1), split.val_neg.size(1)) < self.chance_min_units:
            return None
        return 0.5

    # units: node pairs
    def forget_units(self, store, requests, split):
        return store.edge_index[:, deleted_edge_ids(requests)]

    def retain_sampler(self, store, requests, split, ratio, cap=None):
        eids = torch.unique(torch.cat([r.subgraph_edge_ids for r in requests]))
        near = eids[store.edge_mask[eids]]  # live edges of the affected subgraph
        live = store.live_edge_ids()
        others = live[~torch.isin(live, near)] if near.numel() else live
        # at most as many as there are: on a dense graph the affected subgraph is nearly every edge, and
        # drawing ratio x |near| from the few others would repeat each of them many times
        num = min(int(ratio * max(1, near.numel())), others.numel())
        nodes = live_nodes(store)

        def sample(generator):
            kept = store.edge_index[:, torch.cat([near, pick(others, num, generator)])]
            if cap is not None and kept.size(1) > cap:
                kept = kept[:, torch.randperm(kept.size(1), generator=generator, device=kept.device)[:cap]]
            # as many non-edges, so the student also keeps what the teacher says about absent pairs
            return torch.cat([kept, sample_pairs(nodes, kept.size(1), generator)], 1)
        return sample

    def unit_logits(self, model, z, units):
        return self.decode(model, z, units)

    def heldout_units(self, split):
        return split.val_pos  # true edges held out of training (validation positives)

    heldout_is_validation = True

    # evidence
    def evaluate(self, model: nn.Module, store: GraphStore, split, requests: Sequence[DeletionRequest], *,
                 gold: nn.Module | None = None, original: nn.Module | None = None, resamples: int = 500,
                 seed: int = 0, hits_k: int | None = None, num_neighbors: list[int] | None = None,
                 where: str = "evaluate.link_prediction") -> Metrics:
        """Link-prediction metrics after ``requests``: ``dt_auroc``, ``dt_aupr`` (test pairs), ``df_auroc``,
        ``df_aupr`` (deleted edges labelled 0 against an equal-size resample of live edges labelled 1, mean
        over ``resamples``), OGB's ``hits@K`` on an ``ogbl-*`` dataset (``hits_k`` asks for it anywhere),
        and with ``gold`` the retrain gap ``gap_<deleted|hop1|hop2|rest|test>_<kl|js|l2|fidelity>``.

        With ``num_neighbors`` (a graph too large for one full pass), representations come from sampled
        computation graphs (:func:`graphunlearn.tasks.local.embed`, seeded by ``seed``, the same
        neighbourhoods for the model and gold); the live edges Df is ranked against are resampled from a pool
        of ``max(10,000, 10 |Df|)`` live edges drawn once, and the retrain gap covers the ``deleted`` and
        ``test`` regions only.

        Raises:
            ValueError: deleted edges but no live edge left to rank them against; NaN or infinite outputs.
        """
        checks.check_int(where, "resamples", resamples, low=1)
        checks.check_seed(where, seed)
        checks.check_int(where, "hits_k", hits_k, low=1, allow_none=True)
        deleted = deleted_edge_ids(requests)
        live = store.live_edge_ids()
        if deleted.numel() and live.numel() == 0:
            raise ValueError(f"{where}: no live training edges left (every edge was deleted), so the deleted edges "
                             "cannot be ranked against retained ones (Df-AUROC/AUPR are undefined)")
        if num_neighbors is not None:
            return self._evaluate_sampled(model, store, split, deleted, live, gold, resamples, seed, hits_k,
                                          num_neighbors, where)
        with torch.no_grad():
            model.eval()
            z = self.encode(model, store)
            check_scores(where, "model", z)
            out = _test_metrics(split, self.decode(model, z, split.test_pos), self.decode(model, z, split.test_neg),
                                hits_k)
            if deleted.numel():
                df_scores = self.decode(model, z, store.edge_index[:, deleted])
                g = make_generator(seed, live.device)
                aurocs, auprs = [], []
                for _ in range(resamples):
                    sample = pick(live, deleted.numel(), g)
                    kept = self.decode(model, z, store.edge_index[:, sample])
                    aurocs.append(roc_auc(kept, df_scores))  # retained edges are the positives, Df the negatives
                    auprs.append(average_precision(kept, df_scores))
                out["df_auroc"] = sum(aurocs) / len(aurocs)
                out["df_aupr"] = sum(auprs) / len(auprs)
            if gold is not None:
                test = torch.cat([split.test_pos, split.test_neg], 1)
                out.update(self.pair_gaps(model, z, gold, store, requests, test, where))
        return out

    @torch.no_grad()
    def _evaluate_sampled(self, model, store, split, deleted, live, gold, resamples, seed, hits_k, num_neighbors,
                          where) -> Metrics:
        from .local import embed

        g = make_generator(seed, live.device)
        pool = pick(live, min(live.numel(), max(10_000, 10 * deleted.numel())), g) if deleted.numel() else live[:0]
        parts = {"test": torch.cat([split.test_pos, split.test_neg], 1), "deleted": store.edge_index[:, deleted],
                 "pool": store.edge_index[:, pool]}
        pairs = torch.cat(list(parts.values()), 1)

        def scores(m, name):
            m.eval()
            z = embed(m, store, pairs.reshape(-1), num_neighbors, generator=make_generator(seed, store.device))
            check_scores(where, name, z)
            s = self.decode(m, z, torch.arange(pairs.numel(), device=z.device).view(2, -1))
            out, at = {}, 0
            for key, part in parts.items():
                out[key] = s[at:at + part.size(1)]
                at += part.size(1)
            return out

        mine = scores(model, "model")
        n_pos = split.test_pos.size(1)
        out = _test_metrics(split, mine["test"][:n_pos], mine["test"][n_pos:], hits_k)
        if deleted.numel():
            aurocs, auprs = [], []
            for _ in range(resamples):
                kept = mine["pool"][torch.randint(pool.numel(), (deleted.numel(),), generator=g, device=g.device)]
                aurocs.append(roc_auc(kept, mine["deleted"]))
                auprs.append(average_precision(kept, mine["deleted"]))
            out["df_auroc"] = sum(aurocs) / len(aurocs)
            out["df_aupr"] = sum(auprs) / len(auprs)
        if gold is not None:
            theirs = scores(gold, "gold")
            for region in ("deleted", "test"):
                out.update({f"gap_{region}_{k}": v for k, v in pair_gap(mine[region], theirs[region]).items()})
        return out

    # splits
    def make_split(self, data: Data, seed: int) -> tuple[ds.LinkSplit, Data]:
        """The protocol's split of ``data`` and the graph its store holds (the training edges)."""
        split = ds.link_split(data, seed=seed)
        return split, split.train_data

    #: where the deleted training edges lie: near the test edges (``in``) or away from them (``out``)
    forget_settings = ("in", "out")

    def sample_forget(self, store: GraphStore, split, fraction: float, seed: int = 0, setting: str = "in",
                      **_) -> DeletionRequest:
        """Delete ``fraction`` of the training edges (``setting`` ``"in"``: near the test edges; ``"out"``:
        away from them, ``../shared/PROTOCOL.md``) and return the request."""
        return store.delete_edges(ds.forget_edges(split, fraction, setting, seed=seed), layout="edge_index")

    def live_split(self, split, store):
        return ds.LinkSplit(store.live_data(), split.val_pos, split.val_neg, split.test_pos, split.test_neg,
                            seed=split.seed, official=split.official)

    def split_keys(self):
        return ("val_pos", "val_neg", "test_pos", "test_neg", "seed", "official")

    def split_to_dict(self, split):
        return {"val_pos": split.val_pos, "val_neg": split.val_neg, "test_pos": split.test_pos,
                "test_neg": split.test_neg, "seed": None if split.official else split.seed,
                "official": split.official}

    def split_from_dict(self, blob, store):
        return ds.LinkSplit(self.stored_train_data(blob, store), blob["val_pos"], blob["val_neg"], blob["test_pos"],
                            blob["test_neg"],
                            seed=blob["seed"], official=blob["official"])


LINK = register_task(LinkPrediction())
