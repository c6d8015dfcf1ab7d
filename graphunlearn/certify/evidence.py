"""The evidence a certificate carries beyond what ``unlearn`` measures itself: the protocol's metrics, and,
when gold models were retrained, the retrain gap and its noise floor."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from ..certificate import Certificate
from ..evaluate import evaluate
from ..store import GraphStore
from ..tasks import get_task


def attach_evidence(certificate: Certificate, model: nn.Module, store: GraphStore, split, *,
                    gold: nn.Module | None = None, gold2: nn.Module | None = None, original: nn.Module | None = None,
                    task=None, **options) -> Certificate:
    r"""Measure the protocol's metrics (``../shared/PROTOCOL.md``, :func:`graphunlearn.evaluate`) of ``model``
    after the certificate's requests and record them in ``certificate.body["evidence"]``; returns the
    certificate, re-sealed (its digest recomputed; a signature made before is dropped: sign after this).

    With ``gold`` (a model retrained without the deleted data) the retrain gap is included; with ``gold2``
    too (gold retrained with another seed), the same metrics of ``gold`` against ``gold2`` go to
    ``evidence["noise_floor"]``: how far two retrainings are from each other, the yardstick for the gap.
    ``original`` (the model before unlearning) adds the task's attack that needs it (node: ``mia_auroc``).

    Raises:
        ValueError: the store does not hold the certificate's requests (another store, or compacted since),
            or what :func:`graphunlearn.evaluate` raises.
    """
    certified = certificate.body.get("store", {}).get("uid")
    if store.uid != certified:
        raise ValueError(f"attach_evidence: the certificate is for store {certified}, not {store.uid}")
    requests = _requests(store, certificate.request_ids)
    found = get_task(task if task is not None else certificate.body.get("model", {}).get("task"), split,
                     "attach_evidence")
    ev = dict(certificate.body.get("evidence") or {})
    ev["metrics"] = dict(evaluate(model, store, split, requests, task=found, gold=gold, original=original,
                                  **options))
    if gold is not None:
        ev["gold_metrics"] = dict(evaluate(gold, store, split, requests, task=found, **options))
        if gold2 is not None:
            ev["noise_floor"] = dict(evaluate(gold2, store, split, requests, task=found, gold=gold, **options))
    certificate.body["evidence"] = ev
    return certificate.seal()


def _requests(store: GraphStore, ids: Sequence[int]):
    by_id = {r.id: r for r in store.requests}
    missing = [i for i in ids if i not in by_id]
    if missing:
        raise ValueError(f"the store holds no requests {missing} (it has {len(store.requests)})")
    return [by_id[i] for i in ids]
