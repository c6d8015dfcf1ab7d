"""Threshold-free ranking metrics in plain torch (no scikit-learn dependency)."""

from __future__ import annotations

import torch
from torch import Tensor


def roc_auc(pos: Tensor, neg: Tensor) -> float:
    """Area under the ROC curve of scores ``pos`` (label 1) against ``neg`` (label 0), ties counted half
    (the Mann-Whitney U statistic)."""
    if pos.numel() == 0 or neg.numel() == 0:
        raise ValueError(f"roc_auc needs both classes, got {pos.numel()} positives and {neg.numel()} negatives")
    scores = torch.cat([pos, neg]).double()
    order = torch.argsort(scores)
    ranks = torch.empty_like(scores)
    ranks[order] = torch.arange(1, scores.numel() + 1, dtype=torch.float64)
    # average ranks over ties
    uniq, inverse, counts = torch.unique(scores, return_inverse=True, return_counts=True)
    sums = torch.zeros(uniq.numel(), dtype=torch.float64).index_add_(0, inverse, ranks)
    ranks = (sums / counts)[inverse]
    n_pos, n_neg = pos.numel(), neg.numel()
    return float((ranks[:n_pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def average_precision(pos: Tensor, neg: Tensor) -> float:
    """Average precision (area under the precision-recall curve, step-wise) of ``pos`` against ``neg``."""
    if pos.numel() == 0:
        raise ValueError("average_precision needs at least one positive")
    scores = torch.cat([pos, neg]).double()
    labels = torch.cat([torch.ones(pos.numel()), torch.zeros(neg.numel())]).double()
    order = torch.argsort(scores, descending=True, stable=True)
    hits = torch.cumsum(labels[order], 0)
    precision = hits / torch.arange(1, scores.numel() + 1, dtype=torch.float64)
    return float((precision * labels[order]).sum() / pos.numel())
