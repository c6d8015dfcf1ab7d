"""Ranking metrics: ties as the libraries define them, scores they cannot rank refused."""

from __future__ import annotations

import pytest
import torch

from graphunlearn.evaluate import hits_at_k
from graphunlearn.metrics import NonFiniteScoreError, average_precision, roc_auc


def test_all_tied_scores_give_chance_not_perfection():
    # a collapsed model: 2 positives and 2 negatives with one score; the old AP put positives first (1.0)
    tied = torch.tensor([0.5, 0.5])
    assert average_precision(tied, tied) == pytest.approx(0.5)
    assert roc_auc(tied, tied) == pytest.approx(0.5)
    # any class sizes: AP of all-tied scores is the positive rate, AUROC one half
    assert average_precision(torch.zeros(3), torch.zeros(7)) == pytest.approx(0.3)
    assert roc_auc(torch.zeros(3), torch.zeros(7)) == pytest.approx(0.5)


def test_partial_ties_by_hand():
    # pos {2, 0.5}, neg {1, 0.5}: pairs (2>1) (2>0.5) (0.5<1) (0.5=0.5 counts half) -> 2.5 / 4
    assert roc_auc(torch.tensor([2.0, 0.5]), torch.tensor([1.0, 0.5])) == pytest.approx(0.625)
    # thresholds 2: P=1 R=1/2; 1: P=1/2 R=1/2; 0.5 (one pos, one neg together): P=2/4 R=1 -> 1/2 + 1/2 * 1/2
    assert average_precision(torch.tensor([2.0, 0.5]), torch.tensor([1.0, 0.5])) == pytest.approx(0.75)
    # no ties: pos(3) neg(2) pos(1) -> (1 + 2/3) / 2
    assert average_precision(torch.tensor([3.0, 1.0]), torch.tensor([2.0])) == pytest.approx((1 + 2 / 3) / 2)


def test_large_logits_are_not_squashed_into_ties():
    # torchmetrics applies a sigmoid to scores outside [0, 1]; in float32 sigmoid(30) == sigmoid(40) == 1.0
    pos, neg = torch.tensor([40.0, 1.0]), torch.tensor([30.0, 0.0])
    assert roc_auc(pos, neg) == pytest.approx(0.75)
    assert roc_auc(pos * 1e3, neg * 1e3) == pytest.approx(0.75)
    assert average_precision(pos, neg) == pytest.approx((1 + 2 / 3) / 2)


@pytest.mark.parametrize("seed", range(4))
def test_matches_scikit_learn_on_tied_scores(seed):
    sk = pytest.importorskip("sklearn.metrics")
    g = torch.Generator().manual_seed(seed)
    for _ in range(25):
        n_pos, n_neg = (int(v) for v in torch.randint(1, 40, (2,), generator=g))
        scale = float(torch.rand((), generator=g)) * 100 - 50
        pos = torch.randint(0, 6, (n_pos,), generator=g).float() * scale  # few distinct values: many ties
        neg = torch.randint(0, 6, (n_neg,), generator=g).float() * scale
        labels = [1] * n_pos + [0] * n_neg
        scores = torch.cat([pos, neg]).double().numpy()
        if len(set(labels)) == 2:
            assert roc_auc(pos, neg) == pytest.approx(sk.roc_auc_score(labels, scores), abs=1e-6)
            assert average_precision(pos, neg) == pytest.approx(sk.average_precision_score(labels, scores), abs=1e-6)


@pytest.mark.parametrize("fn", [roc_auc, average_precision])
def test_non_finite_scores_are_refused(fn):
    with pytest.raises(NonFiniteScoreError, match=r"1 of 2 positive scores are not finite \(1 NaN, 0 inf\)"):
        fn(torch.tensor([float("nan"), 1.0]), torch.tensor([0.0, 2.0]))
    with pytest.raises(ValueError, match=r"2 of 3 negative scores are not finite \(0 NaN, 2 inf\)"):
        fn(torch.tensor([1.0]), torch.tensor([float("inf"), 0.0, -float("inf")]))
    with pytest.raises(ValueError, match="not finite"):  # a model whose embeddings are all NaN
        fn(torch.full((5,), float("nan")), torch.full((5,), float("nan")))


@pytest.mark.parametrize("fn", [roc_auc, average_precision])
def test_empty_class_and_wrong_types_are_refused(fn):
    with pytest.raises(ValueError, match="needs both classes, got 1 positives and 0 negatives"):
        fn(torch.tensor([1.0]), torch.tensor([]))
    with pytest.raises(ValueError, match="needs both classes, got 0 positives"):
        fn(torch.tensor([]), torch.tensor([1.0]))
    with pytest.raises(TypeError, match="positive scores must be a torch.Tensor, got list"):
        fn([1.0], torch.tensor([0.0]))


def test_metrics_accept_any_float_dtype_and_shape():
    pos, neg = torch.tensor([[3.0], [1.0]], dtype=torch.float16), torch.tensor([2.0], dtype=torch.float64)
    assert average_precision(pos, neg) == pytest.approx((1 + 2 / 3) / 2)
    assert roc_auc(pos, neg) == pytest.approx(0.5)


def test_hits_at_k_refuses_non_finite_scores_and_bad_k():
    with pytest.raises(ValueError, match="negative scores are not finite"):
        hits_at_k(torch.tensor([1.0]), torch.tensor([float("nan")]), 1)
    with pytest.raises(ValueError, match="k must be >= 1, got 0"):
        hits_at_k(torch.tensor([1.0]), torch.tensor([0.0]), 0)
