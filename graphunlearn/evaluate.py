r"""Evidence that a model forgot what it was asked to and kept the rest (``../shared/PROTOCOL.md``).

Implemented so far. Link prediction: Dt-AUROC/AUPR on test edges, Df-AUROC/AUPR (deleted edges
labelled 0 against an equal-size resample of retained edges labelled 1, averaged over resamples) and the
retrain gap to a gold model by region (deleted edges, their 1-hop and 2-hop neighbourhoods, the rest, the
test pairs): mean two-class KL and JS divergence, mean logit L2 distance and fidelity. All message passing
runs on the retained graph. Node classification: accuracy, macro-F1, posterior-difference MIA AUROC.
Recommendation: Recall@20, NDCG@20, forget-set Recall@20. The MI ratio with a shadow-trained attacker.
Not yet: the OGB Hits@K evaluator.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from .metrics import average_precision, roc_auc
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


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.4f}"
    return str(v)


def _as_requests(forget) -> tuple[DeletionRequest, ...]:
    return (forget,) if isinstance(forget, DeletionRequest) else tuple(forget)


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


def link_prediction(model: nn.Module, store: GraphStore, split, forget, *, gold: nn.Module | None = None,
                    resamples: int = 500, seed: int = 0) -> dict[str, float]:
    """Link-prediction metrics of ``model`` after the requests in ``forget`` (see the module docstring).

    Returns a flat dict: ``dt_auroc``, ``dt_aupr``, ``df_auroc``, ``df_aupr`` and, with ``gold``, the gap
    metrics ``gap_<region>_<kl|js|l2|fidelity>``.
    """
    requests = _as_requests(forget)
    z = link_scores(model, store)
    out = {"dt_auroc": roc_auc(GNN.decode(z, split.test_pos), GNN.decode(z, split.test_neg)),
           "dt_aupr": average_precision(GNN.decode(z, split.test_pos), GNN.decode(z, split.test_neg))}
    deleted = torch.unique(torch.cat([r.edge_ids for r in requests]))
    if deleted.numel():
        df_scores = GNN.decode(z, store.edge_index[:, deleted])
        live = store.edge_mask.nonzero().squeeze(1)
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
        test = torch.cat([split.test_pos, split.test_neg], 1)
        for region, pairs in edge_regions(store, requests, test).items():
            for k, v in retrain_gap(z, z_gold, pairs).items():
                out[f"gap_{region}_{k}"] = v
    return out


@torch.no_grad()
def node_classification(model: nn.Module, store: GraphStore, split, forget, *, original: nn.Module | None = None,
                        gold: nn.Module | None = None) -> dict[str, float]:
    """Node-classification metrics after the requests in ``forget`` (``../shared/PROTOCOL.md``).

    ``test_acc`` and ``test_macro_f1`` on live test nodes; with ``original``, the posterior-difference
    membership attack: members are the deleted training nodes, non-members as many test nodes, score
    ``||softmax_original(v) - softmax_model(v)||_2`` with the original model run on the graph before the
    requests and the model on the live graph, reported as ``mia_auroc`` (0.5 is ideal). With ``gold``:
    ``gold_acc_deleted``, the gold model's accuracy on the deleted nodes (on the live graph, where they
    are isolated and featureless), beside the model's ``acc_deleted``.
    """
    requests = _as_requests(forget)
    view = store.live()
    model.eval()
    logits = model(view.x, view)
    test = split.test_idx[store.node_mask[split.test_idx]]
    pred, y = logits[test].argmax(1), store.y[test]
    out = {"test_acc": (pred == y).float().mean().item() if test.numel() else float("nan"),
           "test_macro_f1": macro_f1(pred, y)}
    deleted = torch.unique(torch.cat([r.node_ids for r in requests]))
    if deleted.numel():
        out["acc_deleted"] = (logits[deleted].argmax(1) == store.y[deleted]).float().mean().item()
        if gold is not None:
            gold.eval()
            out["gold_acc_deleted"] = (gold(view.x, view)[deleted].argmax(1) == store.y[deleted]).float().mean().item()
        members = deleted[torch.isin(deleted, split.train_idx)]
        if original is not None and members.numel() and test.numel():
            # the original model as it answered before the requests (their nodes, edges and features back)
            x_before, before = graph_before(store, requests)
            original.eval()
            diff = (torch.softmax(original(x_before, before), 1) - torch.softmax(logits, 1)).norm(dim=1)
            g = torch.Generator().manual_seed(0)
            non_members = test[torch.randperm(test.numel(), generator=g)[: members.numel()]]
            out["mia_auroc"] = roc_auc(diff[members], diff[non_members])
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
def recommendation(model: nn.Module, store: GraphStore, split, forget, *, k: int = 20) -> dict[str, float]:
    """Recall@k and NDCG@k on the test interactions, and Recall@k on the forgotten interactions (lower is
    better; compare with the gold model's). Items a user keeps in the retained training graph are excluded
    from that user's ranking; for the forget-set recall they are too, so a forgotten item competes with the
    items the user has not interacted with."""
    requests = _as_requests(forget)
    nu = split.num_users
    view = store.live()
    model.eval()
    ue, ie = model(view.x, view)
    scores = ue @ ie.t()
    kept = store.edge_index[:, store.edge_mask]
    scores[kept[0], kept[1] - nu] = float("-inf")
    top = scores.topk(min(k, scores.size(1)), dim=1).indices
    out = {f"recall@{k}": _recall(top, split.test_pos[0], split.test_pos[1] - nu, nu),
           f"ndcg@{k}": _ndcg(top, split.test_pos[0], split.test_pos[1] - nu, nu)}
    deleted = torch.unique(torch.cat([r.edge_ids for r in requests]))
    if deleted.numel():
        df = store.edge_index[:, deleted]
        out[f"forget_recall@{k}"] = _recall(top, df[0], df[1] - nu, nu)
    return out


def _hits(top: Tensor, users: Tensor, items: Tensor, num_users: int) -> tuple[Tensor, Tensor]:
    """Per user: the number of held-out items and a [U, k] hit matrix of the top-k list."""
    relevant = torch.zeros(num_users, max(int(items.max()) + 1, int(top.max()) + 1), dtype=torch.bool)
    relevant[users, items] = True
    return relevant.sum(1), relevant.gather(1, top)


def _recall(top: Tensor, users: Tensor, items: Tensor, num_users: int) -> float:
    if users.numel() == 0:
        return float("nan")
    count, hits = _hits(top, users, items, num_users)
    have = count > 0
    return (hits[have].sum(1).float() / count[have].float()).mean().item()  # LightGCN's Recall@k


def _ndcg(top: Tensor, users: Tensor, items: Tensor, num_users: int) -> float:
    if users.numel() == 0:
        return float("nan")
    count, hits = _hits(top, users, items, num_users)
    have = count > 0
    discount = 1.0 / torch.log2(torch.arange(2, top.size(1) + 2, dtype=torch.float))
    dcg = (hits.float() * discount).sum(1)
    ideal = torch.cumsum(discount, 0)[(count.clamp(max=top.size(1)) - 1).clamp(min=0)]
    return (dcg[have] / ideal[have]).mean().item()


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
                      seed: int = 0) -> MIAttacker:
    """Train a shadow model and an attacker, as ``../shared/PROTOCOL.md`` describes.

    The live training edges are split in half: the shadow model (same architecture as ``model``, fresh
    weights, the link-prediction loop) trains on one half ("present"); the other half is held out
    ("absent"). The attacker learns present vs absent from the shadow model's embeddings of those pairs.
    """
    from torch_geometric.data import Data

    from . import train as gt

    g = torch.Generator().manual_seed(seed)
    live = store.edge_mask.nonzero().squeeze(1)
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
    n = min(present.size(1), absent.size(1))
    pairs = torch.cat([present[:, :n], absent[:, :n]], 1)
    labels = torch.cat([torch.ones(n), torch.zeros(n)])
    attacker = MIAttacker(z.size(1))
    opt = torch.optim.Adam(attacker.parameters(), lr=0.01)
    feats = MIAttacker.features(z, pairs)
    for _ in range(attack_steps):
        loss = nn.functional.binary_cross_entropy_with_logits(attacker.mlp(feats).squeeze(1), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return attacker.eval()


@torch.no_grad()
def mi_ratio(attacker: MIAttacker, before: nn.Module, after: nn.Module, store: GraphStore, forget) -> float:
    """``mean P_before(present) / mean P_after(present)`` over the deleted edges, both models run on the
    retained graph. Above 1: the attacker is less sure after unlearning that the deleted edges were used."""
    requests = _as_requests(forget)
    deleted = torch.unique(torch.cat([r.edge_ids for r in requests]))
    if deleted.numel() == 0:
        raise ValueError("mi_ratio: the requests delete no edges")
    pairs = store.edge_index[:, deleted]
    p_before = attacker(link_scores(before, store), pairs).mean()
    p_after = attacker(link_scores(after, store), pairs).mean()
    return (p_before / p_after).item()
