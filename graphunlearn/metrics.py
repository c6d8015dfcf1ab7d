r"""Threshold-free ranking metrics: AUROC and average precision from torchmetrics, on the scores' device.

Both take the scores of the positives and of the negatives separately and refuse what they cannot rank:
an empty class, or a score that is not finite (NaN or inf), so a model that produced NaN embeddings gets
an error rather than a confident number. Ties are handled as torchmetrics (and scikit-learn) define them:
AUROC counts a tied positive-negative pair as half a correct ordering, and average precision steps over
distinct thresholds, so 2 positives and 2 negatives all tied give 0.5 for both.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torchmetrics.functional.classification import binary_auroc, binary_average_precision


class NonFiniteScoreError(ValueError):
    """Scores (or logits) that are NaN or infinite were given to a metric."""


def check_finite(where: str, values: Tensor, what: str = "scores") -> None:
    """Raise :class:`NonFiniteScoreError` naming ``where`` and how many of ``values`` are NaN or infinite."""
    bad = int((~torch.isfinite(values)).sum()) if values.is_floating_point() else 0
    if bad:
        nan = int(torch.isnan(values).sum())
        raise NonFiniteScoreError(f"{where}: {bad} of {values.numel()} {what} are not finite ({nan} NaN, "
                                  f"{bad - nan} inf); the model's outputs are NaN or infinite (did training "
                                  "diverge?), so no metric is computed")


def _ranked(where: str, pos, neg) -> tuple[Tensor, Tensor]:
    """Validated scores in [0, 1] with the same order and ties as ``pos`` then ``neg``, and their labels."""
    sides = []
    for side, values in (("positive", pos), ("negative", neg)):
        if not isinstance(values, Tensor):
            raise TypeError(f"{where}: the {side} scores must be a torch.Tensor, got {type(values).__name__}")
        if values.is_complex() or values.dtype == torch.bool:
            raise TypeError(f"{where}: the {side} scores must be real numbers, got dtype {values.dtype}")
        values = values.detach().reshape(-1)
        check_finite(where, values, f"{side} scores")
        sides.append(values)
    pos, neg = sides
    if pos.numel() == 0 or neg.numel() == 0:
        raise ValueError(f"{where} needs both classes, got {pos.numel()} positives and {neg.numel()} negatives")
    scores = torch.cat([pos.double(), neg.to(pos.device).double()])
    # torchmetrics reads scores outside [0, 1] as logits and applies a sigmoid, which in float32 maps every
    # logit above ~17 to exactly 1.0 and so invents ties (scores 30 and 40 compared as equal: AUROC 0.625
    # where the true value is 0.75). Dense ranks scaled into [0, 1] keep the order and the ties exactly.
    uniq, inverse = torch.unique(scores, return_inverse=True)
    ranked = inverse.double() / max(1, uniq.numel() - 1)
    labels = torch.cat([torch.ones(pos.numel(), dtype=torch.long, device=scores.device),
                        torch.zeros(neg.numel(), dtype=torch.long, device=scores.device)])
    return ranked, labels


def roc_auc(pos: Tensor, neg: Tensor) -> float:
    r"""Area under the ROC curve of scores ``pos`` (label 1) against ``neg`` (label 0): the probability that a
    random positive scores above a random negative, ties counted half (Mann-Whitney U / (n_pos n_neg)),
    from ``torchmetrics.functional.classification.binary_auroc``.

    Raises:
        ValueError: a class is empty, or a score is NaN or infinite (:class:`NonFiniteScoreError`, naming how
            many and on which side).

    Shapes: pos [P] (any shape, flattened), neg [N].
    """
    scores, labels = _ranked("roc_auc", pos, neg)
    return float(binary_auroc(scores, labels, validate_args=False))


def average_precision(pos: Tensor, neg: Tensor) -> float:
    r"""Average precision of ``pos`` (label 1) against ``neg`` (label 0): :math:`\sum_n (R_n - R_{n-1}) P_n`
    over the distinct score thresholds (tied scores enter together), as scikit-learn's
    ``average_precision_score``; from ``torchmetrics.functional.classification.binary_average_precision``.

    Raises:
        ValueError: a class is empty, or a score is NaN or infinite (:class:`NonFiniteScoreError`).

    Shapes: pos [P], neg [N].
    """
    scores, labels = _ranked("average_precision", pos, neg)
    return float(binary_average_precision(scores, labels, validate_args=False))
