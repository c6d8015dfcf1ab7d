"""Metrics against hand-computed values, and the examples as smoke tests of the main job."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from graphunlearn.evaluate import Report, pair_gap
from graphunlearn.metrics import average_precision, roc_auc
from graphunlearn.tasks import dot_product

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
    def retrain_gap(a, b, p):
        return pair_gap(dot_product(a, p), dot_product(b, p))

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
    assert set(report["rows"]) == {"gold (retrain)", "gold, seed + 1", "unlink", "d2dgn", "gnndelete"}
    assert (out / "report.png").stat().st_size > 1000
    assert "d2dgn.cert.json (+ .md): VERIFIED" in run.stdout
    cert = json.loads((out / "d2dgn.cert.json").read_text())
    assert "gap_deleted_kl" in cert["body"]["evidence"]["metrics"]  # the retrain gap against the demo's gold
    assert "gap_deleted_kl" in cert["body"]["evidence"]["noise_floor"]  # and the second gold's, its floor
    assert "d2dgn: within the noise floor" in run.stdout


@pytest.mark.slow
def test_store_walkthrough_runs(tmp_path):
    env = {**os.environ, "GRAPHUNLEARN_DATA": str(tmp_path / "empty-data-root")}
    run = subprocess.run([sys.executable, str(REPO / "examples" / "store_walkthrough.py"), "--out",
                          str(tmp_path / "s")], capture_output=True, text=True, timeout=600, env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "max |diff|" in run.stdout and "compact:" in run.stdout


def test_recall_and_ndcg_by_hand():
    from graphunlearn.tasks.rec import _rank_stats

    top = torch.tensor([[2, 0, 1], [1, 2, 0]])  # user 0 ranks item 2 first; user 1 ranks item 1 first
    users, items = torch.tensor([0, 0, 1]), torch.tensor([0, 3, 0])  # user 0 holds {0, 3}, user 1 {0}
    # user 0: one of two relevant items in its top 3 -> 1/2; user 1: 1/1
    recall, ndcg, count = _rank_stats(top, users, items, 4)
    assert count == 2
    assert recall == pytest.approx(0.5 + 1.0)
    d = [1 / torch.log2(torch.tensor(float(i))).item() for i in (2, 3, 4)]
    ndcg0 = d[1] / (d[0] + d[1])  # hit at rank 2; ideal: two hits at ranks 1, 2
    ndcg1 = d[2] / d[0]  # hit at rank 3; ideal: one hit at rank 1
    assert ndcg == pytest.approx(ndcg0 + ndcg1, rel=1e-6)


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
    # both models get the same query (the graph before the request): an unchanged model leaks nothing
    same = gu.evaluate.node_classification(model, store, split, req, original=model)
    assert same["mia_auroc"] == pytest.approx(0.5)

    class MovesOn(torch.nn.Module):  # changes its answers for the deleted nodes only: fully detectable
        def __init__(self, base, nodes):
            super().__init__()
            self.base, self.nodes = base, nodes

        def forward(self, x, graph):
            out = self.base(x, graph).clone()
            out[self.nodes] = out[self.nodes].flip(1) * 3
            return out

    leaky = gu.evaluate.node_classification(MovesOn(model, req.node_ids), store, split, req, original=model)
    assert leaky["mia_auroc"] == pytest.approx(1.0)
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


def test_hits_at_k_matches_ogb_evaluator():
    from ogb.linkproppred import Evaluator

    from graphunlearn.evaluate import hits_at_k, ogb_hits, ogb_link_metric

    g = torch.Generator().manual_seed(0)
    pos, neg = torch.randn(300, generator=g) + 1.0, torch.randn(1000, generator=g)
    kth = torch.topk(neg, 20).values[-1]
    pos[:7] = kth  # ties with the K-th negative do not count as hits
    ref = Evaluator("ogbl-ddi").eval({"y_pred_pos": pos, "y_pred_neg": neg})["hits@20"]
    assert ref == pytest.approx(float((pos > kth).sum()) / 300) and float((pos >= kth).sum()) - 7 == (pos > kth).sum()
    assert hits_at_k(pos, neg, 20) == pytest.approx(ref)
    assert ogb_hits("ogbl-ddi", pos, neg) == pytest.approx(ref)
    assert 0 < ref < 1
    assert hits_at_k(pos, neg[:10], 20) == 1.0  # fewer negatives than K: OGB's convention
    assert ogb_link_metric("ogbl-ddi") == ("hits@20", 20)
    assert ogb_link_metric("ogbl-collab") == ("hits@50", 50)
    assert ogb_link_metric("cora") is None and ogb_link_metric(None) is None


def _small_link_run():
    """A GCN trained briefly for link prediction on a small synthetic graph, and 5% "in" edges deleted."""
    import graphunlearn as gu

    data = gu.datasets.synthetic(num_nodes=150, num_classes=3, num_features=8, seed=0)
    split = gu.datasets.link_split(data, seed=1)
    store = gu.GraphStore(split.train_data)
    torch.manual_seed(0)
    model = gu.models.GCN(8, hidden_channels=16, out_channels=8)
    gu.train.link_prediction(model, store, split, epochs=10, progress=False)
    req = store.delete_edges(gu.datasets.forget_edges(split, 0.05, "in", seed=0))
    return model, store, split, req


def test_link_metrics_print_save_and_hits(tmp_path):
    import json

    import graphunlearn as gu

    model, store, split, req = _small_link_run()
    m = gu.evaluate.link_prediction(model, store, split, req, gold=model, resamples=5, hits_k=10)
    assert "hits@10" in m and 0 <= m["hits@10"] <= 1
    assert m["gap_test_kl"] == pytest.approx(0.0, abs=1e-6) and m["gap_deleted_fidelity"] == 1.0
    assert "dt_auroc" in str(m) and m.task == "link"
    m.to_json(tmp_path / "m.json")
    assert json.loads((tmp_path / "m.json").read_text())["metrics"]["dt_auroc"] == pytest.approx(m["dt_auroc"])


def test_node_gap_by_region():
    import graphunlearn as gu
    from graphunlearn.evaluate import class_gap, node_regions

    data = gu.datasets.synthetic(num_nodes=200, num_classes=3, num_features=8, seed=0)
    split = gu.datasets.node_split(data, seed=0)
    store = gu.GraphStore(data)
    torch.manual_seed(0)
    model = gu.models.GCN(8, hidden_channels=16, out_channels=3)
    gu.train.node_classification(model, store, split, epochs=20, progress=False)
    req = store.delete_nodes(split.train_idx[:5])
    regions = node_regions(store, [req], split.test_idx)
    assert torch.equal(regions["deleted"], torch.sort(split.train_idx[:5]).values)
    everything = torch.cat([regions[r] for r in ("deleted", "hop1", "hop2", "rest")])
    assert torch.equal(torch.sort(everything).values, torch.arange(200))  # a partition of the nodes
    assert set(regions["hop1"].tolist()) <= set(req.affected_nodes(1).tolist())
    same = gu.evaluate.node_classification(model, store, split, req, gold=model)
    assert same["gap_hop1_kl"] == pytest.approx(0.0, abs=1e-6) and same["gap_test_fidelity"] == 1.0
    a, b = torch.tensor([[2.0, 0.0]]), torch.tensor([[0.0, 2.0]])
    gap = class_gap(a, b)
    p, q = torch.softmax(b, 1), torch.softmax(a, 1)
    assert gap["kl"] == pytest.approx((p * (p / q).log()).sum().item(), rel=1e-5)
    assert gap["fidelity"] == 0.0 and gap["l2"] == pytest.approx(8 ** 0.5, rel=1e-6) and 0 < gap["js"] < 0.7


def test_recommendation_batches_agree_and_drop_deleted_users():
    from torch_geometric.data import Data

    import graphunlearn as gu

    g = torch.Generator().manual_seed(0)
    nu, ni = 40, 30
    pairs = torch.unique(torch.stack([torch.randint(nu, (400,), generator=g),
                                      torch.randint(ni, (400,), generator=g) + nu]), dim=1)
    data = Data(edge_index=torch.cat([pairs, pairs.flip(0)], 1), num_nodes=nu + ni)
    data.num_users, data.num_items = nu, ni
    split = gu.datasets.user_item_split(data, test_ratio=0.2, seed=0)
    store = gu.GraphStore(split.train_data)
    torch.manual_seed(0)
    model = gu.models.LightGCN(nu, ni, embedding_dim=8)
    gu.train.recommendation(model, store, split, epochs=5, batch_size=64, progress=False)
    req = store.delete_edges(split.train_pos[:, :20])
    whole = gu.evaluate.recommendation(model, store, split, req, k=5, gold=model)
    pieces = gu.evaluate.recommendation(model, store, split, req, k=5, batch_users=7)
    for key in ("recall@5", "ndcg@5", "forget_recall@5"):
        assert pieces[key] == pytest.approx(whole[key], rel=1e-6)
    assert whole["gap_test_kl"] == pytest.approx(0.0, abs=1e-6)
    user = int(split.test_pos[0, 0])
    gone = store.delete_nodes([user])  # a user who left: their test interactions are not ranked any more
    after = gu.evaluate.recommendation(model, store, split, [req, gone], k=5)
    import dataclasses

    without = dataclasses.replace(split, test_pos=split.test_pos[:, split.test_pos[0] != user])
    expected = gu.evaluate.recommendation(model, store, without, [req, gone], k=5)
    assert after["recall@5"] == pytest.approx(expected["recall@5"])
    assert after["ndcg@5"] == pytest.approx(expected["ndcg@5"])


def test_recommendation_ranking_by_hand():
    """Two users, four items, fixed MF embeddings: the ranks, exclusions and catalogue rules by hand."""
    from torch_geometric.data import Data

    import graphunlearn as gu
    from graphunlearn.datasets import RecSplit

    nu, ni = 2, 4  # users 0, 1; items are nodes 2..5
    train = torch.tensor([[0, 0, 1, 1], [2, 3, 4, 5]])
    data = Data(edge_index=torch.cat([train, train.flip(0)], 1), num_nodes=nu + ni)
    test = torch.tensor([[0, 0, 1], [4, 5, 3]])
    split = RecSplit(data, train, test, nu, ni, official=True)
    store = gu.GraphStore(data)
    model = gu.models.MF(nu, ni, embedding_dim=1)
    with torch.no_grad():
        model.users.weight.copy_(torch.tensor([[1.0], [-1.0]]))
        model.items.weight.copy_(torch.tensor([[4.0], [3.0], [2.0], [1.0]]))  # items 2, 3, 4, 5
    req = store.delete_edges([(0, 2)])  # user 0 forgets item 2, its only training interaction: out of the catalogue
    m = gu.evaluate.recommendation(model, store, split, req, k=1)
    # the forget ranking keeps item 2: user 0 keeps item 3 and ranks 2 (4.0) > 4 > 5, top-1 = its forgotten item;
    # the test ranking leaves item 2 out: user 0's top-1 is item 4, user 1's item 3 (a model retrained without
    # item 2 would not know it)
    assert m["forget_recall@1"] == pytest.approx(1.0)
    assert m["recall@1"] == pytest.approx((1 / 2 + 1 / 1) / 2)
    assert m["ndcg@1"] == pytest.approx((1.0 + 1.0) / 2)
    # item 3 loses its only training interaction too: its test pair (1, 3) is not counted, and user 0 (who now
    # keeps nothing) ranks 4 first among the catalogue's items 4 and 5, 2 first among all
    gone = store.delete_edges([(0, 3)])
    m2 = gu.evaluate.recommendation(model, store, split, [req, gone], k=1)
    assert m2["recall@1"] == pytest.approx(1 / 2)
    assert m2["forget_recall@1"] == pytest.approx(1 / 2)
    assert gu.tasks.rec.removed_items(store, nu, ni).tolist() == [True, True, False, False]


def test_node_gap_on_deleted_nodes_asks_the_graph_before():
    import graphunlearn as gu

    data = gu.datasets.synthetic(num_nodes=200, num_classes=3, num_features=8, seed=0)
    split = gu.datasets.node_split(data, seed=0)
    store = gu.GraphStore(data)
    torch.manual_seed(0)
    model = gu.models.GCN(8, hidden_channels=16, out_channels=3)
    gu.train.node_classification(model, store, split, epochs=20, progress=False)
    torch.manual_seed(1)
    other = gu.models.GCN(8, hidden_channels=16, out_channels=3)
    req = store.delete_nodes(split.train_idx[:6])
    m = gu.evaluate.node_classification(model, store, split, req, gold=other)
    x_before, before = gu.evaluate.graph_before(store, [req])
    with torch.no_grad():
        expect = gu.evaluate.class_gap(model(x_before, before)[req.node_ids], other(x_before, before)[req.node_ids])
    assert m["gap_deleted_kl"] == pytest.approx(expect["kl"]) and m["gap_deleted_fidelity"] == expect["fidelity"]


def test_rec_metrics_with_a_task_decoder_equal_the_matrix_product_path():
    """The chunked decoder path of recommendation ranking gives what the one-matrix-product path gives when
    the decoder is the dot product."""
    import graphunlearn as gu

    data = gu.datasets.load("synthetic-rec", num_users=30, num_items=25, interactions_per_user=6)
    split = gu.datasets.user_item_split(data, seed=0)
    store = gu.GraphStore(split.train_data)
    torch.manual_seed(0)
    model = gu.models.LightGCN(split.num_users, split.num_items, embedding_dim=8)
    gu.train.recommendation(model, store, split, epochs=3, batch_size=64, progress=False)
    req = store.delete_edges(store.edge_mask.nonzero().squeeze(1)[:5])
    plain = gu.evaluate.evaluate(model, store, split, req, k=5, batch_users=7)
    decoded = gu.evaluate.evaluate(model, store, split, req, k=5, batch_users=7,
                                   task=gu.tasks.Recommendation(decoder=gu.tasks.dot_product))
    assert plain.keys() == decoded.keys()
    for key, value in plain.items():
        assert decoded[key] == pytest.approx(value, abs=1e-6), key


def test_noise_floor_from_a_second_gold():
    import graphunlearn as gu

    model, store, split, req = _small_link_run()
    gold, gold2 = (gu.unlearn(model, store, req, "retrain", split=split, seed=s, epochs=10).model for s in (0, 1))
    m = gu.evaluate.evaluate(model, store, split, req, gold=gold, gold2=gold2, resamples=5)
    g = gu.evaluate.evaluate(gold, store, split, req, gold=gold, resamples=5)
    g2 = gu.evaluate.evaluate(gold2, store, split, req, gold=gold, resamples=5)
    assert m["floor_dt_auroc"] == pytest.approx(abs(g2["dt_auroc"] - g["dt_auroc"]))
    assert m["floor_gap_test_kl"] == pytest.approx(g2["gap_test_kl"]) and m["floor_gap_test_kl"] > 0
    with pytest.raises(ValueError, match="pass gold= too"):
        gu.evaluate.evaluate(model, store, split, req, gold2=gold2)
