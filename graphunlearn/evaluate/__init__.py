r"""Evidence that a model forgot what it was asked to and kept the rest (``../shared/PROTOCOL.md``).

:func:`evaluate` asks the task (:mod:`graphunlearn.tasks`) for its metrics; ``link_prediction``,
``node_classification`` and ``recommendation`` are the same call with the task fixed. Link prediction:
Dt/Df AUROC and AUPR, OGB's Hits@K on ``ogbl-*``; node classification: accuracy, macro-F1, accuracy on the
deleted nodes asked as an attacker would, the posterior-difference MIA; recommendation: Recall@20, NDCG@20,
forget-set Recall@20. With ``gold``, every task adds the retrain gap by region (deleted, 1-hop, 2-hop,
rest, test: KL, JS, logit distance, fidelity). All message passing runs on the retained graph. The
shadow-model attack and the MI ratio are in :mod:`.attacks`. Results are :class:`Metrics` (a dict that
prints as a table and saves as JSON); :class:`Report` holds several models side by side.
"""

from __future__ import annotations

from torch import nn

from .. import checks
from ..report import Metrics, Report
from ..store import GraphStore
from ..tasks import Task, get_task
from ..tasks.base import class_gap, edge_regions, pair_gap
from ..tasks.link import hits_at_k, ogb_hits, ogb_link_metric
from ..tasks.node import graph_before, macro_f1, node_regions
from .attacks import (
    MIAttacker,
    edge_reconstruction_auroc,
    link_confidence,
    mi_ratio,
    prediction_change,
    train_mi_attacker,
)

__all__ = ["MIAttacker", "Metrics", "Report", "class_gap", "edge_reconstruction_auroc", "edge_regions", "evaluate",
           "graph_before", "hits_at_k", "link_confidence", "prediction_change",
           "link_prediction", "macro_f1", "mi_ratio", "node_classification", "node_regions", "ogb_hits",
           "ogb_link_metric", "pair_gap", "recommendation", "train_mi_attacker"]


def evaluate(model: nn.Module, store: GraphStore, split, forget, *, task: str | Task | None = None,
             gold: nn.Module | None = None, original: nn.Module | None = None, gold2: nn.Module | None = None,
             _where: str | None = None, **options) -> Metrics:
    """The protocol's metrics of ``model`` after the requests in ``forget`` (one request or several), for
    ``task`` (default: the split's). ``gold``: a model retrained without the deleted data (adds the retrain
    gap); ``gold2``: gold retrained with another seed, for the noise floor: each metric ``m`` gains
    ``floor_m`` (``|m(gold2) - m(gold)|``; for a retrain-gap metric ``gap_*``, gold2's own gap to gold), the
    distance two retrainings land apart, against which ``|m - m(gold)|`` (or the gap) is read: within it, the
    model cannot be told from retraining on that metric; ``original``: the model before unlearning (node
    classification's membership attack); ``options``
    go to the task's ``evaluate`` (link: ``resamples``, ``seed``, ``hits_k``; rec: ``k``, ``batch_users``).

    Raises:
        TypeError, ValueError: an argument of the wrong type or out of range; a split of another task; a
            request not of ``store``; a model, gold or original on another device than the store; NaN or
            infinite model outputs (never reported as numbers).
    """
    where = _where or "evaluate"
    checks.check_instance(where, "model", model, nn.Module)
    checks.check_instance(where, "store", store, GraphStore)
    checks.check_instance(where, "gold", gold, nn.Module, allow_none=True)
    checks.check_instance(where, "original", original, nn.Module, allow_none=True)
    checks.check_instance(where, "gold2", gold2, nn.Module, allow_none=True)
    if gold2 is not None and gold is None:
        raise ValueError(f"{where}: gold2 (the noise floor) is read against gold: pass gold= too")
    found = get_task(task, split, where, split_optional=False)
    where = _where or f"evaluate ({found.name})"
    found.check_device(where, model, store)
    for name, other in (("gold", gold), ("original", original), ("gold2", gold2)):
        if other is not None:
            found.check_device(f"{where} ({name})", other, store)
    split = found.to_device(split, store.device)
    requests = store.check_requests(forget, where=where, name="forget")
    out = found.evaluate(model, store, split, requests, gold=gold, original=original, where=where, **options)
    if gold2 is not None:
        g = found.evaluate(gold, store, split, requests, gold=gold, where=f"{where} (gold)", **options)
        g2 = found.evaluate(gold2, store, split, requests, gold=gold, where=f"{where} (gold2)", **options)
        for k, v in list(out.items()):
            if not isinstance(v, (int, float)) or k not in g2:
                continue
            if k.startswith("gap_"):
                out[f"floor_{k}"] = g2[k]
            elif k in g:
                out[f"floor_{k}"] = abs(g2[k] - g[k])
    return out


def link_prediction(model: nn.Module, store: GraphStore, split, forget, **kwargs) -> Metrics:
    """:func:`evaluate` for link prediction (see :meth:`graphunlearn.tasks.LinkPrediction.evaluate`)."""
    return evaluate(model, store, split, forget, task="link", _where="evaluate.link_prediction", **kwargs)


def node_classification(model: nn.Module, store: GraphStore, split, forget, **kwargs) -> Metrics:
    """:func:`evaluate` for node classification (see :meth:`graphunlearn.tasks.NodeClassification.evaluate`)."""
    return evaluate(model, store, split, forget, task="node", _where="evaluate.node_classification", **kwargs)


def recommendation(model: nn.Module, store: GraphStore, split, forget, **kwargs) -> Metrics:
    """:func:`evaluate` for recommendation (see :meth:`graphunlearn.tasks.Recommendation.evaluate`)."""
    return evaluate(model, store, split, forget, task="rec", _where="evaluate.recommendation", **kwargs)
