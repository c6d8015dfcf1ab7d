r"""Evidence that a model forgot what it was asked to and kept the rest (``../shared/PROTOCOL.md``).

Implemented so far. Link prediction: Dt-AUROC/AUPR on test edges, Df-AUROC/AUPR (deleted edges
labelled 0 against an equal-size resample of retained edges labelled 1, averaged over resamples) and the
retrain gap to a gold model by region (deleted edges, their 1-hop and 2-hop neighbourhoods, the rest, the
test pairs): mean two-class KL and JS divergence, mean logit L2 distance and fidelity. All message passing
runs on the retained graph. Node classification: accuracy, macro-F1, posterior-difference MIA AUROC.
Recommendation: Recall@20, NDCG@20, forget-set Recall@20, ranked in batches of users. The MI ratio with a
shadow-trained attacker. Hits@K with OGB's own evaluator where the dataset defines it (``ogbl-*``). The
retrain gap by region for every task. Each task's function returns :class:`Metrics` (a dict that prints as
a table and saves as JSON); :class:`Report` holds several models side by side.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from . import checks
from . import train as gt
from .datasets.splits import LinkSplit, NodeSplit, RecSplit
from .metrics import average_precision, check_finite, roc_auc
from .models import GNN
from .requests import DeletionRequest
from .store import GraphStore


@dataclass
class Report:
    """Metrics per model (rows) for one task, printable as a table and savable as JSON."""

    task: str
    rows: dict[str, dict[str, float]] = field(default_factory=dict)
    meta: dict = field(default_factory=dict)

    def columns(self) -> list[str]:
        cols: list[str] = []
        for row in self.rows.values():
            cols += [c for c in row if c not in cols]
        return cols

    def table(self, columns: Sequence[str] | None = None) -> str:
        cols = list(columns or self.columns())
        header = ["model"] + cols
        body = [[name] + [_fmt(row.get(c)) for c in cols] for name, row in self.rows.items()]
        widths = [max(len(r[i]) for r in [header] + body) for i in range(len(header))]
        lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths))]
        lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths)) for r in body]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()

    def to_json(self, path: str | os.PathLike) -> None:
        with open(path, "w") as f:
            json.dump({"task": self.task, "meta": self.meta, "rows": self.rows}, f, indent=2, default=float)


class Metrics(dict):
    """One model's metrics: a plain ``dict`` of floats that also prints as a two-column table and saves as
    JSON (``to_json``)."""

    def __init__(self, task: str, values: dict | None = None):
        super().__init__(values or {})
        self.task = task

    def table(self) -> str:
        width = max((len(k) for k in self), default=6)
        return "\n".join([f"{'metric'.ljust(width)}  {self.task}"] + [f"{k.ljust(width)}  {_fmt(v)}"
                                                                     for k, v in self.items()])

    def __str__(self) -> str:
        return self.table()

    def to_json(self, path: str | os.PathLike) -> None:
        with open(path, "w") as f:
            json.dump({"task": self.task, "metrics": dict(self)}, f, indent=2, default=float)


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.4f}"
    return str(v)


def _check_scores(where: str, model_name: str, z) -> None:
    """NaN or infinite embeddings would be ranked as numbers; refuse them, naming the model."""
    for t in z if isinstance(z, (tuple, list)) else (z,):
        check_finite(where, t, f"outputs of {model_name}")


@torch.no_grad()
def link_scores(model: nn.Module, store: GraphStore) -> Tensor:
    view = store.live()
    model.eval()
    return model(view.x, view)


def edge_regions(store: GraphStore, requests: Sequence[DeletionRequest], test_pairs: Tensor) -> dict[str, Tensor]:
    """Pairs [2, K] per region: ``deleted``; live edges with both endpoints within 1 hop of the deleted
    elements (``hop1``), within 2 hops but not 1 (``hop2``); the other live edges (``rest``); ``test``."""
    deleted = torch.unique(torch.cat([r.edge_ids for r in requests]))
    live = store.edge_mask.nonzero().squeeze(1)
    u, v = store.edge_index[:, live]
    region = torch.full((live.numel(),), 3, dtype=torch.long)
    for hop in (2, 1):
        if any(r.num_hops >= hop for r in requests):
            inside = torch.zeros(store.num_nodes, dtype=torch.bool)
            inside[torch.cat([r.affected_nodes(min(hop, r.num_hops)) for r in requests])] = True
            region[inside[u] & inside[v]] = hop
    pairs = store.edge_index[:, live]
    return {"deleted": store.edge_index[:, deleted], "hop1": pairs[:, region == 1], "hop2": pairs[:, region == 2],
            "rest": pairs[:, region == 3], "test": test_pairs}


def _bernoulli_kl(p: Tensor, q: Tensor, eps: float = 1e-7) -> Tensor:
    """KL(Bernoulli(p) || Bernoulli(q)) elementwise, i.e. between the 2-class distributions [p, 1 - p]."""
    p, q = p.clamp(eps, 1 - eps), q.clamp(eps, 1 - eps)
    return p * (p / q).log() + (1 - p) * ((1 - p) / (1 - q)).log()


def retrain_gap(z: Tensor, z_gold: Tensor, pairs: Tensor) -> dict[str, float]:
    """Mean two-class KL(gold || model), JS, logit L2 and fidelity (agreement at 0.5) over ``pairs``."""
    if pairs.size(1) == 0:
        return {"kl": float("nan"), "js": float("nan"), "l2": float("nan"), "fidelity": float("nan")}
    a, b = GNN.decode(z, pairs), GNN.decode(z_gold, pairs)
    p, q = torch.sigmoid(b), torch.sigmoid(a)  # gold, model
    m = (p + q) / 2
    kl = _bernoulli_kl
    return {"kl": kl(p, q).mean().item(), "js": (0.5 * kl(p, m) + 0.5 * kl(q, m)).mean().item(),
            "l2": (a - b).abs().mean().item(), "fidelity": ((a > 0) == (b > 0)).float().mean().item()}


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


def link_prediction(model: nn.Module, store: GraphStore, split, forget, *, gold: nn.Module | None = None,
                    resamples: int = 500, seed: int = 0, hits_k: int | None = None) -> Metrics:
    """Link-prediction metrics of ``model`` after the requests in ``forget`` (see the module docstring).

    Returns :class:`Metrics` (a flat dict): ``dt_auroc``, ``dt_aupr``, ``df_auroc``, ``df_aupr``; on an OGB
    link dataset with a Hits@K metric (``split.train_data.name``, e.g. ``ogbl-ddi``), ``hits@K`` from OGB's
    evaluator on the test pairs (``hits_k`` asks for Hits@K on any dataset, computed the same way); with
    ``gold``, the gap metrics ``gap_<region>_<kl|js|l2|fidelity>``.

    Raises:
        TypeError, ValueError: an argument of the wrong type or out of range; a request not of ``store``;
            deleted edges but no live edge left to compare them with (Df-AUROC is undefined); NaN or
            infinite model outputs (never reported as numbers).
    """
    where = "evaluate.link_prediction"
    gt._check_common(where, model, store, split, LinkSplit)
    checks.check_instance(where, "gold", gold, nn.Module, allow_none=True)
    checks.check_int(where, "resamples", resamples, low=1)
    checks.check_seed(where, seed)
    checks.check_int(where, "hits_k", hits_k, low=1, allow_none=True)
    requests = store.check_requests(forget, where=where, name="forget")
    deleted = torch.unique(torch.cat([r.edge_ids for r in requests]))
    live = store.edge_mask.nonzero().squeeze(1)
    if deleted.numel() and live.numel() == 0:
        raise ValueError(f"{where}: no live training edges left (every edge was deleted), so the deleted edges "
                         "cannot be ranked against retained ones (Df-AUROC/AUPR are undefined)")
    z = link_scores(model, store)
    _check_scores(where, "model", z)
    pos_scores, neg_scores = GNN.decode(z, split.test_pos), GNN.decode(z, split.test_neg)
    out = Metrics("link", {"dt_auroc": roc_auc(pos_scores, neg_scores),
                           "dt_aupr": average_precision(pos_scores, neg_scores)})
    name = getattr(split.train_data, "name", None)
    official = ogb_link_metric(name)
    if official is not None and (hits_k is None or hits_k == official[1]):
        out[official[0]] = ogb_hits(name, pos_scores, neg_scores)
    elif hits_k is not None:
        out[f"hits@{hits_k}"] = hits_at_k(pos_scores, neg_scores, hits_k)
    if deleted.numel():
        df_scores = GNN.decode(z, store.edge_index[:, deleted])
        g = torch.Generator().manual_seed(seed)
        aurocs, auprs = [], []
        for _ in range(resamples):
            sample = live[torch.randint(live.numel(), (deleted.numel(),), generator=g)]
            kept = GNN.decode(z, store.edge_index[:, sample])
            aurocs.append(roc_auc(kept, df_scores))  # retained edges are the positives, Df the negatives
            auprs.append(average_precision(kept, df_scores))
        out["df_auroc"] = sum(aurocs) / len(aurocs)
        out["df_aupr"] = sum(auprs) / len(auprs)
    if gold is not None:
        z_gold = link_scores(gold, store)
        _check_scores(where, "gold", z_gold)
        test = torch.cat([split.test_pos, split.test_neg], 1)
        for region, pairs in edge_regions(store, requests, test).items():
            for k, v in retrain_gap(z, z_gold, pairs).items():
                out[f"gap_{region}_{k}"] = v
    return out


def node_regions(store: GraphStore, requests: Sequence[DeletionRequest], test_idx: Tensor) -> dict[str, Tensor]:
    """Node ids per region: the deleted nodes (and nodes whose features were deleted), live nodes within 1 hop
    of the deleted elements (``hop1``), within 2 hops but not 1 (``hop2``), the other live nodes (``rest``)
    and the live test nodes (``test``)."""
    deleted = torch.unique(torch.cat([torch.cat([r.node_ids, r.feature_node_ids]) for r in requests]))
    region = torch.full((store.num_nodes,), 3, dtype=torch.long)
    for hop in (2, 1):
        if any(r.num_hops >= hop for r in requests):
            region[torch.cat([r.affected_nodes(min(hop, r.num_hops)) for r in requests])] = hop
    region[deleted] = 0
    region[~store.node_mask] = 0
    live = store.node_mask.clone()
    live[deleted] = False
    ids = torch.arange(store.num_nodes)
    return {"deleted": deleted, "hop1": ids[live & (region == 1)], "hop2": ids[live & (region == 2)],
            "rest": ids[live & (region == 3)], "test": test_idx[store.node_mask[test_idx]]}


def class_gap(logits: Tensor, gold_logits: Tensor) -> dict[str, float]:
    """Mean KL(gold || model) and JS divergence between the softmax distributions, mean L2 distance between
    the logit vectors and fidelity (argmax agreement), over the rows given."""
    if logits.size(0) == 0:
        return {"kl": float("nan"), "js": float("nan"), "l2": float("nan"), "fidelity": float("nan")}
    lp, lq = torch.log_softmax(gold_logits, 1), torch.log_softmax(logits, 1)
    lm = torch.logsumexp(torch.stack([lp, lq]), 0) - math.log(2)
    kl_pq = (lp.exp() * (lp - lq)).sum(1)
    js = 0.5 * (lp.exp() * (lp - lm)).sum(1) + 0.5 * (lq.exp() * (lq - lm)).sum(1)
    return {"kl": kl_pq.mean().item(), "js": js.mean().item(), "l2": (logits - gold_logits).norm(dim=1).mean().item(),
            "fidelity": (logits.argmax(1) == gold_logits.argmax(1)).float().mean().item()}


@torch.no_grad()
def node_classification(model: nn.Module, store: GraphStore, split, forget, *, original: nn.Module | None = None,
                        gold: nn.Module | None = None) -> Metrics:
    """Node-classification metrics after the requests in ``forget`` (``../shared/PROTOCOL.md``).

    ``test_acc`` and ``test_macro_f1`` on live test nodes, the model run on the live graph.

    Questions about the deleted nodes are asked the way an attacker who holds their records would ask them:
    by querying with the graph as it was before the requests (:func:`graph_before`: their features and
    edges back). On the live graph they are isolated and featureless, so every model, gold included, would
    give them one constant answer and the comparison would say nothing. ``acc_deleted`` is the model's
    accuracy on them, ``gold_acc_deleted`` gold's (the target). With ``original``, the posterior-difference
    membership attack (Chen et al., CCS 2021): the attacker sends the same query to the original and the
    unlearned model; members are the deleted training nodes, non-members as many live test nodes, score
    ``||softmax_original(v) - softmax_model(v)||_2``; ``mia_auroc`` near 0.5 means the deletion cannot be
    told from the outputs (compare with gold's; a model that did not change at all, such as ``unlink``,
    scores exactly 0.5 while not forgetting: read it beside ``acc_deleted`` and the retrain gap).
    With ``gold``: the retrain gap by region on the live graph (:func:`node_regions`, :func:`class_gap`) as
    ``gap_<region>_<kl|js|l2|fidelity>``; for the deleted nodes both models are asked on the graph before.

    Raises:
        TypeError, ValueError: an argument of the wrong type, a request not of ``store``, a store without
            labels, or NaN or infinite model outputs (never reported as numbers).
    """
    where = "evaluate.node_classification"
    gt._check_common(where, model, store, split, NodeSplit)
    checks.check_instance(where, "original", original, nn.Module, allow_none=True)
    checks.check_instance(where, "gold", gold, nn.Module, allow_none=True)
    requests = store.check_requests(forget, where=where, name="forget")
    if store.y is None:
        raise ValueError(f"{where}: the store has no labels y")
    view = store.live()
    model.eval()
    logits = model(view.x, view)
    _check_scores(where, "model", logits[store.node_mask])
    test = split.test_idx[store.node_mask[split.test_idx]]
    pred, y = logits[test].argmax(1), store.y[test]
    out = Metrics("node", {"test_acc": (pred == y).float().mean().item() if test.numel() else float("nan"),
                           "test_macro_f1": macro_f1(pred, y)})
    deleted = torch.unique(torch.cat([r.node_ids for r in requests]))
    if gold is not None:
        gold.eval()
    if deleted.numel():
        x_before, before = graph_before(store, requests)
        asked = model(x_before, before)
        _check_scores(where, "model (asked on the graph before the requests)", asked[deleted])
        out["acc_deleted"] = (asked[deleted].argmax(1) == store.y[deleted]).float().mean().item()
        if gold is not None:
            gold_asked = gold(x_before, before)
            _check_scores(where, "gold (asked on the graph before the requests)", gold_asked[deleted])
            out["gold_acc_deleted"] = (gold_asked[deleted].argmax(1) == store.y[deleted]).float().mean().item()
        members = deleted[torch.isin(deleted, split.train_idx)]
        if original is not None and members.numel() and test.numel():
            original.eval()
            asked_original = original(x_before, before)
            _check_scores(where, "original", asked_original[torch.cat([members, test])])
            diff = (torch.softmax(asked_original, 1) - torch.softmax(asked, 1)).norm(dim=1)
            g = torch.Generator().manual_seed(0)
            non_members = test[torch.randperm(test.numel(), generator=g)[: members.numel()]]
            out["mia_auroc"] = roc_auc(diff[members], diff[non_members])
    if gold is not None:
        gold_logits = gold(view.x, view)
        _check_scores(where, "gold", gold_logits[store.node_mask])
        for region, nodes in node_regions(store, requests, split.test_idx).items():
            if region == "deleted" and deleted.numel():  # asked as the attacker asks (see above)
                gap = class_gap(asked[deleted], gold_asked[deleted])
            else:
                gap = class_gap(logits[nodes], gold_logits[nodes])
            for k, v in gap.items():
                out[f"gap_{region}_{k}"] = v
    return out


def graph_before(store: GraphStore, requests: Sequence[DeletionRequest]):
    """Features and a ``LiveGraph`` of the graph as it was before ``requests``: the live graph with the
    requests' own nodes, edges and feature values put back (other requests stay applied)."""
    from .nn import as_live

    eids = torch.unique(torch.cat([store.edge_mask.nonzero().squeeze(1)] + [r.edge_ids for r in requests]))
    edge_index, orig = store._directed(eids)
    weight = None if store.edge_weight is None else store.edge_weight[orig]
    x = store.live_x()
    if x is not None:
        x = x.clone()
        for r in requests:
            x[r.node_ids] = store.x[r.node_ids]
            if r.feature_node_ids.numel():
                cols = slice(None) if r.feature_columns is None else r.feature_columns.unsqueeze(0)
                rows = r.feature_node_ids.unsqueeze(1)
                x[rows, cols] = store.x[rows, cols]
    return x, as_live(edge_index, store.num_nodes, weight)


def macro_f1(pred: Tensor, y: Tensor) -> float:
    """Unweighted mean of per-class F1 over the classes present in ``y`` or ``pred``."""
    scores = []
    for c in torch.unique(torch.cat([pred, y])):
        tp = ((pred == c) & (y == c)).sum().item()
        fp = ((pred == c) & (y != c)).sum().item()
        fn = ((pred != c) & (y == c)).sum().item()
        scores.append(0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
    return sum(scores) / len(scores) if scores else float("nan")


@torch.no_grad()
def recommendation(model: nn.Module, store: GraphStore, split, forget, *, k: int = 20, gold: nn.Module | None = None,
                   batch_users: int = 1024) -> Metrics:
    """Recall@k and NDCG@k on the test interactions, and Recall@k on the forgotten interactions
    (``forget_recall@k``: lower is better; compare with the gold model's). Items a user keeps in the retained
    training graph are excluded from that user's ranking; for the forget-set recall they are too, so a
    forgotten item competes with the items the user has not interacted with. Test interactions count only
    where both ends are still in the catalogue: a deleted user has nothing left to rank, and an item whose
    every training interaction the requests deleted (a revoked licence) is out of the catalogue, so its
    test interactions would reward models that still recommend it. Users are ranked in batches of
    ``batch_users`` (memory O(batch x items)). With ``gold``: the retrain gap by region on user-item scores
    (two-class, as for links): ``gap_<deleted|hop1|hop2|rest|test>_<kl|js|l2|fidelity>``. Errors as
    :func:`link_prediction`."""
    where = "evaluate.recommendation"
    gt._check_common(where, model, store, split, RecSplit)
    checks.check_int(where, "k", k, low=1)
    checks.check_instance(where, "gold", gold, nn.Module, allow_none=True)
    checks.check_int(where, "batch_users", batch_users, low=1)
    requests = store.check_requests(forget, where=where, name="forget")
    nu, ni = split.num_users, split.num_items
    z = _rec_embeddings(model, store)
    _check_scores(where, "model", z)
    deleted = torch.unique(torch.cat([r.edge_ids for r in requests]))
    test = split.test_pos[:, store.node_mask[split.test_pos[0]] & store.node_mask[split.test_pos[1]]]
    if deleted.numel():
        live_count = torch.bincount(store.edge_index[1, store.edge_mask], minlength=nu + ni)
        touched = torch.zeros(nu + ni, dtype=torch.bool)
        touched[store.edge_index[1, deleted]] = True
        removed = touched & (live_count == 0)
        test = test[:, ~removed[test[1]]]
    df = store.edge_index[:, deleted]
    kept = store.edge_index[:, store.edge_mask]
    stats = {"test": [0.0, 0.0, 0], "forget": [0.0, 0.0, 0]}  # recall sum, ndcg sum, users
    for b0 in range(0, nu, batch_users):
        users = torch.arange(b0, min(nu, b0 + batch_users))
        scores = z[users] @ z[nu:nu + ni].t()
        mine = (kept[0] >= b0) & (kept[0] < b0 + users.numel())
        scores[kept[0, mine] - b0, kept[1, mine] - nu] = float("-inf")
        top = scores.topk(min(k, ni), dim=1).indices
        for name, pairs in (("test", test), ("forget", df)):
            inside = (pairs[0] >= b0) & (pairs[0] < b0 + users.numel())
            if bool(inside.any()):
                r, n, c = _rank_stats(top, pairs[0, inside] - b0, pairs[1, inside] - nu, ni)
                stats[name][0] += r
                stats[name][1] += n
                stats[name][2] += c
    out = Metrics("rec")
    out[f"recall@{k}"] = stats["test"][0] / stats["test"][2] if stats["test"][2] else float("nan")
    out[f"ndcg@{k}"] = stats["test"][1] / stats["test"][2] if stats["test"][2] else float("nan")
    if deleted.numel():
        out[f"forget_recall@{k}"] = stats["forget"][0] / stats["forget"][2] if stats["forget"][2] else float("nan")
    if gold is not None:
        z_gold = _rec_embeddings(gold, store)
        _check_scores(where, "gold", z_gold)
        for region, pairs in edge_regions(store, requests, test).items():
            for key, v in retrain_gap(z, z_gold, pairs).items():
                out[f"gap_{region}_{key}"] = v
    return out


def _rec_embeddings(model: nn.Module, store: GraphStore) -> Tensor:
    """User and item embeddings stacked in store numbering (items after users), so ``GNN.decode`` scores
    store pairs."""
    view = store.live()
    model.eval()
    ue, ie = model(view.x, view)
    return torch.cat([ue, ie])


def _rank_stats(top: Tensor, rows: Tensor, items: Tensor, num_items: int) -> tuple[float, float, int]:
    """Sums of per-user Recall@k and NDCG@k over the users in ``rows`` (LightGCN's definitions: recall divides
    by the user's number of held-out items, the ideal DCG by min(that, k)), and the number of such users."""
    relevant = torch.zeros(top.size(0), num_items, dtype=torch.bool)
    relevant[rows, items] = True
    count = relevant.sum(1)
    hits = relevant.gather(1, top)
    have = count > 0
    recall = hits[have].sum(1).float() / count[have].float()
    discount = 1.0 / torch.log2(torch.arange(2, top.size(1) + 2, dtype=torch.float))
    dcg = (hits.float() * discount).sum(1)
    ideal = torch.cumsum(discount, 0)[(count.clamp(max=top.size(1)) - 1).clamp(min=0)]
    return recall.sum().item(), (dcg[have] / ideal[have]).sum().item(), int(have.sum())


class MIAttacker(nn.Module):
    """Membership-inference attacker on link embeddings: an MLP on ``[z_u * z_v, |z_u - z_v|]``."""

    def __init__(self, dim: int, hidden: int = 64):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(2 * dim, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    @staticmethod
    def features(z: Tensor, pairs: Tensor) -> Tensor:
        a, b = z[pairs[0]], z[pairs[1]]
        return torch.cat([a * b, (a - b).abs()], 1)

    def forward(self, z: Tensor, pairs: Tensor) -> Tensor:
        """P(present) per pair. Shapes: z [N, d], pairs [2, K] -> [K]."""
        return torch.sigmoid(self.mlp(self.features(z, pairs)).squeeze(1))


def train_mi_attacker(model: nn.Module, store: GraphStore, *, epochs: int = 100, attack_steps: int = 300,
                      max_pairs: int = 20000, seed: int = 0) -> MIAttacker:
    """Train a shadow model and an attacker, as ``../shared/PROTOCOL.md`` describes.

    The live training edges are split in half: the shadow model (same architecture as ``model``, fresh
    weights, the link-prediction loop, ``epochs``) trains on one half ("present"); the other half is held
    out ("absent"). The attacker learns present vs absent from the shadow model's embeddings of up to
    ``max_pairs`` pairs of each kind (a uniform sample: the full halves of ogbl-ddi are 0.5M pairs each).
    """
    from torch_geometric.data import Data

    where = "evaluate.train_mi_attacker"
    checks.check_instance(where, "model", model, nn.Module)
    checks.check_instance(where, "store", store, GraphStore)
    checks.check_int(where, "epochs", epochs, low=1)
    checks.check_int(where, "attack_steps", attack_steps, low=1)
    checks.check_int(where, "max_pairs", max_pairs, low=1)
    checks.check_seed(where, seed)
    if not callable(getattr(model, "fresh", None)):
        raise TypeError(f"{where}: model must have a fresh() method (a graphunlearn model), got "
                        f"{type(model).__name__}")
    g = torch.Generator().manual_seed(seed)
    live = store.edge_mask.nonzero().squeeze(1)
    if live.numel() < 2:
        raise ValueError(f"{where}: {live.numel()} live edge(s) left; the shadow model needs at least 2 (one "
                         "present, one absent)")
    perm = live[torch.randperm(live.numel(), generator=g)]
    present, absent = store.edge_index[:, perm[: perm.numel() // 2]], store.edge_index[:, perm[perm.numel() // 2:]]
    shadow_graph = Data(x=store.live_x(), edge_index=torch.cat([present, present.flip(0)], 1),
                        num_nodes=store.num_nodes)
    shadow_store = GraphStore(shadow_graph, undirected=True)
    torch.manual_seed(seed)
    shadow = model.fresh()
    gt.link_prediction(shadow, shadow_store, None, epochs=epochs, seed=seed, progress=False)
    with torch.no_grad():
        z = link_scores(shadow, shadow_store)
    _check_scores(where, "the shadow model", z)
    n = min(present.size(1), absent.size(1), max_pairs)  # both halves are already in random order
    pairs = torch.cat([present[:, :n], absent[:, :n]], 1)
    labels = torch.cat([torch.ones(n), torch.zeros(n)])
    attacker = MIAttacker(z.size(1))
    opt = torch.optim.Adam(attacker.parameters(), lr=0.01)
    feats = MIAttacker.features(z, pairs)
    first_bad = gt._FirstBad()
    for step in range(1, attack_steps + 1):
        loss = nn.functional.binary_cross_entropy_with_logits(attacker.mlp(feats).squeeze(1), labels)
        first_bad.update(loss, step)
        opt.zero_grad()
        loss.backward()
        opt.step()
    first_bad.check(f"{where} (attacker)", "step")
    return attacker.eval()


@torch.no_grad()
def mi_ratio(attacker: MIAttacker, before: nn.Module, after: nn.Module, store: GraphStore, forget) -> float:
    """``mean P_before(present) / mean P_after(present)`` over the deleted edges, both models run on the
    retained graph. Above 1: the attacker is less sure after unlearning that the deleted edges were used."""
    where = "evaluate.mi_ratio"
    checks.check_instance(where, "attacker", attacker, MIAttacker)
    checks.check_instance(where, "before", before, nn.Module)
    checks.check_instance(where, "after", after, nn.Module)
    checks.check_instance(where, "store", store, GraphStore)
    requests = store.check_requests(forget, where=where, name="forget")
    deleted = torch.unique(torch.cat([r.edge_ids for r in requests]))
    if deleted.numel() == 0:
        raise ValueError("mi_ratio: the requests delete no edges")
    pairs = store.edge_index[:, deleted]
    z_before, z_after = link_scores(before, store), link_scores(after, store)
    _check_scores(where, "before", z_before)
    _check_scores(where, "after", z_after)
    p_before = attacker(z_before, pairs).mean()
    p_after = attacker(z_after, pairs).mean()
    return (p_before / p_after).item()
