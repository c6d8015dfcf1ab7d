"""Metrics against hand-computed values, and the examples as smoke tests of the main job."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from graphunlearn.evaluate import Report, retrain_gap
from graphunlearn.metrics import average_precision, roc_auc

REPO = Path(__file__).resolve().parents[1]


def test_roc_auc_by_hand():
    assert roc_auc(torch.tensor([3.0, 2.0]), torch.tensor([1.0, 0.0])) == 1.0
    assert roc_auc(torch.tensor([0.0]), torch.tensor([1.0])) == 0.0
    # pos {2, 0.5}, neg {1, 0.5}: pairs (2>1) (2>0.5) (0.5<1) (0.5=0.5 counts half) -> 2.5 / 4
    assert roc_auc(torch.tensor([2.0, 0.5]), torch.tensor([1.0, 0.5])) == pytest.approx(0.625)
    with pytest.raises(ValueError, match="both classes"):
        roc_auc(torch.tensor([1.0]), torch.tensor([]))


def test_average_precision_by_hand():
    # ranking: pos(3) neg(2) pos(1): precision at the hits 1/1 and 2/3 -> (1 + 2/3) / 2
    assert average_precision(torch.tensor([3.0, 1.0]), torch.tensor([2.0])) == pytest.approx((1 + 2 / 3) / 2)


def test_retrain_gap_identity_and_difference():
    z = torch.randn(6, 3, generator=torch.Generator().manual_seed(0))
    pairs = torch.tensor([[0, 1, 2], [3, 4, 5]])
    same = retrain_gap(z, z, pairs)
    assert same == {"kl": 0.0, "js": 0.0, "l2": 0.0, "fidelity": 1.0}
    flipped = z.clone()
    flipped[pairs[0]] = -z[pairs[0]]  # negate one endpoint of each pair: every pair's logit flips sign
    other = retrain_gap(z, flipped, pairs)
    assert other["fidelity"] == 0.0 and other["kl"] > 0 and 0 < other["js"] <= 0.6932
    assert other["l2"] == pytest.approx(2 * (z[pairs[0]] * z[pairs[1]]).sum(1).abs().mean().item(), rel=1e-5)


def test_report_table_and_json(tmp_path):
    r = Report("link", rows={"gold": {"dt_auroc": 0.9, "df_auroc": 0.6}, "m": {"dt_auroc": 0.85}})
    text = r.table()
    assert "gold" in text and "0.9000" in text and "-" in text.splitlines()[2]
    r.to_json(tmp_path / "r.json")
    assert json.loads((tmp_path / "r.json").read_text())["rows"]["m"]["dt_auroc"] == 0.85


@pytest.mark.slow
def test_link_unlearning_demo_runs_on_the_synthetic_default(tmp_path):
    out = tmp_path / "demo"
    env = {**os.environ, "GRAPHUNLEARN_DATA": str(tmp_path / "empty-data-root")}  # no Cora there
    run = subprocess.run([sys.executable, str(REPO / "examples" / "link_unlearning_demo.py"), "--epochs", "30",
                          "--no-progress", "--out", str(out)], capture_output=True, text=True, timeout=600, env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "synthetic SBM graph" in run.stdout and "gold (retrain)" in run.stdout
    report = json.loads((out / "report.json").read_text())
    assert set(report["rows"]) == {"gold (retrain)", "unlink", "d2dgn", "gnndelete"}
    assert (out / "report.png").stat().st_size > 1000


@pytest.mark.slow
def test_store_walkthrough_runs(tmp_path):
    env = {**os.environ, "GRAPHUNLEARN_DATA": str(tmp_path / "empty-data-root")}
    run = subprocess.run([sys.executable, str(REPO / "examples" / "store_walkthrough.py"), "--out",
                          str(tmp_path / "s")], capture_output=True, text=True, timeout=600, env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "max |diff|" in run.stdout and "compact:" in run.stdout


def test_recall_and_ndcg_by_hand():
    from graphunlearn.evaluate import _ndcg, _recall

    top = torch.tensor([[2, 0, 1], [1, 2, 0]])  # user 0 ranks item 2 first; user 1 ranks item 1 first
    users, items = torch.tensor([0, 0, 1]), torch.tensor([0, 3, 0])  # user 0 holds {0, 3}, user 1 {0}
    # user 0: one of two relevant items in its top 3 -> 1/2; user 1: 1/1
    assert _recall(top, users, items, 2) == pytest.approx((0.5 + 1.0) / 2)
    d = [1 / torch.log2(torch.tensor(float(i))).item() for i in (2, 3, 4)]
    ndcg0 = d[1] / (d[0] + d[1])  # hit at rank 2; ideal: two hits at ranks 1, 2
    ndcg1 = d[2] / d[0]  # hit at rank 3; ideal: one hit at rank 1
    assert _ndcg(top, users, items, 2) == pytest.approx((ndcg0 + ndcg1) / 2, rel=1e-6)


def test_macro_f1_by_hand():
    from graphunlearn.evaluate import macro_f1

    pred, y = torch.tensor([0, 0, 1, 1]), torch.tensor([0, 1, 1, 1])
    # class 0: tp 1, fp 1, fn 0 -> 2/3; class 1: tp 2, fp 0, fn 1 -> 4/5
    assert macro_f1(pred, y) == pytest.approx((2 / 3 + 4 / 5) / 2)


def test_node_and_rec_reports_run():
    import graphunlearn as gu

    data = gu.datasets.synthetic(num_nodes=200, num_classes=3, num_features=8, seed=0)
    split = gu.datasets.node_split(data, seed=0)
    store = gu.GraphStore(data)
    torch.manual_seed(0)
    model = gu.models.GCN(8, hidden_channels=16, out_channels=3)
    gu.train.node_classification(model, store, split, epochs=30, progress=False)
    req = store.delete_nodes(split.train_idx[:10])
    out = gu.unlearn(model, store, req, "finetune", split=split, epochs=5)
    r = gu.evaluate.node_classification(out.model, store, split, req, original=model, gold=model)
    assert 0 <= r["test_acc"] <= 1 and 0 <= r["mia_auroc"] <= 1 and "gold_acc_deleted" in r
    # the original answers for the deleted nodes as they were (graph before the request); the same weights
    # on the live graph answer for isolated, featureless nodes: their posteriors move, test nodes' barely
    same = gu.evaluate.node_classification(model, store, split, req, original=model)
    assert same["mia_auroc"] > 0.8
    x_before, before = gu.evaluate.graph_before(store, [req])
    fresh = gu.GraphStore(data)
    with torch.no_grad():
        assert torch.allclose(model(x_before, before), model(fresh.live_x(), fresh.live()), atol=1e-5)


def test_mi_attacker_learns_membership_and_ratio():
    import graphunlearn as gu
    from graphunlearn.evaluate import mi_ratio, train_mi_attacker

    data = gu.datasets.synthetic(num_nodes=300, num_classes=10, num_features=16, avg_degree=8, homophily=0.95,
                                 seed=1)
    split = gu.datasets.link_split(data, seed=42)
    store = gu.GraphStore(split.train_data)
    torch.manual_seed(0)
    model = gu.models.GCN(16, hidden_channels=32, out_channels=16)
    gu.train.link_prediction(model, store, split, epochs=60, progress=False)
    req = store.delete_edges(gu.datasets.forget_edges(split, 0.05, "in", seed=3))
    attacker = train_mi_attacker(model, store, epochs=60, seed=0)
    assert mi_ratio(attacker, model, model, store, req) == pytest.approx(1.0)
    ga = gu.unlearn(model, store, req, "gradient_ascent", split=split, epochs=20, lr=0.01).model
    assert mi_ratio(attacker, model, ga, store, req) != pytest.approx(1.0)
