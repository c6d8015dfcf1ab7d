"""A model whose validation score stays at chance is reported loudly by the trainer, recorded on its card,
and refused as an original by ``unlearn`` and the benchmark; a model that learned is not."""

from __future__ import annotations

import dataclasses
import warnings

import pytest
import torch
import torch_geometric.transforms as T

import graphunlearn as gu
from graphunlearn import bench
from graphunlearn.bench import engine
from graphunlearn.tasks import LINK, NODE, REC
from graphunlearn.train import ChanceLevelWarning


def dense_binary(seed: int = 0):
    """A small SBM graph whose features are dense 0/1 bag-of-words indicators, about a third of 400 columns
    set per node (each column with probability 0.3, 0.7 in its block's own 80 columns), as Amazon Photo's
    are (PyG binarises its counts; 259 of 745 words per node): the unscaled input that made the default link
    recipe collapse there (every ReLU of the first layer dies within a few Adam steps at lr 0.01)."""
    data = gu.datasets.synthetic(num_nodes=200, seed=seed)
    g = torch.Generator().manual_seed(seed)
    own = torch.arange(400).div(80, rounding_mode="floor").unsqueeze(0) == data.y.unsqueeze(1)  # 5 blocks
    data.x = (torch.rand(data.num_nodes, 400, generator=g) < 0.3 + 0.4 * own).float()
    return data


def train_link(data, **recipe):
    split = gu.datasets.link_split(data, val_ratio=0.2)  # >= 100 validation pairs: enough for a verdict
    assert split.val_pos.size(1) >= LINK.chance_min_units
    store = gu.GraphStore(split.train_data)
    torch.manual_seed(0)
    model = gu.models.GCN(data.num_features)
    result = gu.train.link_prediction(model, store, split, progress=False, **recipe)
    return model, store, split, result


@pytest.fixture(scope="module")
def collapsed():
    with pytest.warns(ChanceLevelWarning, match=r"did not learn: its best validation score was 0\.5000"):
        return train_link(dense_binary(), epochs=10)


def test_collapsed_link_model_warns_and_is_recorded(collapsed):
    model, _, _, result = collapsed
    assert result.best_val == pytest.approx(0.5, abs=1e-6)  # every pair scored alike
    assert result.at_chance is True
    card = gu.card_of(model)
    assert card.at_chance and card.validation == {"best_val": result.best_val, "chance": 0.5, "margin": 0.02,
                                                  "at_chance": True}
    assert "best_val" not in card.recipe  # the recipe stays what fit(**recipe) accepts


def test_unlearn_refuses_a_model_that_never_learned(collapsed):
    model, store, split, _ = collapsed
    req = store.delete_edges(split.train_pos[:, :3], layout="edge_index")
    for method in ("unlink", "retrain"):
        with pytest.raises(ValueError, match=r"never learned: its best validation score during training was "
                                             r"0\.5000, at chance for task 'link' \(chance 0\.5000 \+ margin 0\.02\)"):
            gu.unlearn(model, store, req, method, split=split)


def test_refusal_survives_a_checkpoint(collapsed, tmp_path):
    model, store, split, _ = collapsed
    gu.save_model(tmp_path / "m.pt", model)
    loaded = gu.load_model(tmp_path / "m.pt")
    assert gu.card_of(loaded).validation == gu.card_of(model).validation
    req = store.delete_edges(split.train_pos[:, 3:5], layout="edge_index")
    with pytest.raises(ValueError, match="never learned"):
        gu.unlearn(loaded, store, req, "unlink", split=split)


def test_normalised_features_learn_without_a_warning():
    """The same graph with PyG's row normalisation (what the amazon-photo and coauthor-cs loaders apply) does
    not collapse: the trainer is quiet and the model is accepted by unlearn."""
    data = T.NormalizeFeatures()(dense_binary())
    with warnings.catch_warnings():
        warnings.simplefilter("error", ChanceLevelWarning)
        model, store, split, result = train_link(data, epochs=15)
    assert result.at_chance is False and result.best_val > 0.6
    req = store.delete_edges(split.train_pos[:, :3], layout="edge_index")
    assert gu.unlearn(model, store, req, "unlink", split=split).card.validation == gu.card_of(model).validation


def test_shuffled_labels_node_model_warns():
    """Node labels drawn independently of the graph and the features: nothing to learn, so the best
    validation accuracy stays at the majority-class rate of the validation nodes (or below it)."""
    data = gu.datasets.synthetic(num_nodes=300, seed=0)
    g = torch.Generator().manual_seed(0)
    data.y = (torch.rand(data.num_nodes, generator=g) < 0.2).long()  # 80% class 0, independent of everything
    split = gu.datasets.node_split(data, train_ratio=0.4, val_ratio=0.4)  # 120 validation nodes
    store = gu.GraphStore(data)
    torch.manual_seed(0)
    model = gu.models.GCN(data.num_features, out_channels=2)
    with pytest.warns(ChanceLevelWarning, match="at chance for task 'node'"):
        result = gu.train.node_classification(model, store, split, epochs=20, progress=False)
    val_y = data.y[split.val_idx]
    majority = float(torch.bincount(val_y).max()) / val_y.numel()
    assert gu.card_of(model).validation["chance"] == pytest.approx(majority)
    assert result.best_val <= majority + 1e-6 and result.at_chance  # float32 accuracy against an exact rate
    req = store.delete_nodes(split.train_idx[:2])
    with pytest.raises(ValueError, match="never learned"):
        gu.unlearn(model, store, req, "finetune", split=split)


def test_learned_models_do_not_warn():
    data = gu.datasets.synthetic(num_nodes=300, seed=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ChanceLevelWarning)
        model, _, _, result = train_link(data, epochs=15)
        split = gu.datasets.node_split(data, train_ratio=0.4, val_ratio=0.4)
        torch.manual_seed(0)
        node_model = gu.models.GCN(data.num_features, out_channels=5)
        node = gu.train.node_classification(node_model, gu.GraphStore(data), split, epochs=15, progress=False)
    assert result.at_chance is False and not gu.card_of(model).at_chance
    assert node.at_chance is False and node.best_val > gu.card_of(node_model).validation["chance"]


def test_no_validation_means_no_verdict():
    """Without validation data (link training with ``split=None``, recommendation) there is nothing to judge:
    no warning, ``at_chance`` is ``None`` and the card records no validation."""
    data = gu.datasets.synthetic(num_nodes=100, seed=0)
    split = gu.datasets.link_split(data)
    model = gu.models.GCN(data.num_features)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ChanceLevelWarning)
        result = gu.train.link_prediction(model, gu.GraphStore(split.train_data), None, epochs=2, progress=False)
    assert result.at_chance is None and gu.card_of(model).validation is None and not gu.card_of(model).at_chance


def test_chance_rules_per_task():
    data = gu.datasets.synthetic(num_nodes=300, num_classes=2, seed=0)
    store = gu.GraphStore(data)
    pairs = torch.zeros(2, 100, dtype=torch.long)
    split = gu.datasets.LinkSplit(data, pairs, pairs, pairs, pairs, seed=0)
    # link: AUROC at most 0.5 + 0.02
    assert LINK.learned(0.52, store, split)["at_chance"] is True
    assert LINK.learned(0.5201, store, split)["at_chance"] is False
    assert LINK.learned(0.3, store, split)["at_chance"] is True  # anti-correlated scores: never above chance
    assert LINK.learned(None, store, split) is None and LINK.learned(float("nan"), store, split) is None
    assert LINK.chance_level(store, None) is None
    few = gu.datasets.LinkSplit(data, pairs[:, :99], pairs, pairs, pairs, seed=0)
    assert LINK.learned(0.5, store, few) is None  # 99 validation edges: too few to tell
    # node: the majority-class rate of the live validation nodes (100 of class 0 and 50 of class 1 -> 2/3)
    data.y = torch.tensor([0] * 100 + [1] * 200)
    store = gu.GraphStore(data)
    nsplit = gu.datasets.NodeSplit(torch.arange(150, 300), torch.arange(150), torch.arange(150, 300), False)
    assert NODE.chance_level(store, nsplit) == pytest.approx(2 / 3)
    assert NODE.learned(2 / 3, store, nsplit)["at_chance"] is True
    assert NODE.learned(0.7, store, nsplit)["at_chance"] is False
    store.delete_nodes(torch.arange(100, 140))  # only live validation nodes count: 100 + 10 -> 100/110
    assert NODE.chance_level(store, nsplit) == pytest.approx(100 / 110)
    store.delete_nodes(torch.arange(140, 145))  # 105 live: still judged; 99 live: not
    assert NODE.chance_level(store, nsplit) == pytest.approx(100 / 105)
    store.delete_nodes(torch.arange(6))
    assert NODE.chance_level(store, nsplit) is None and NODE.learned(0.1, store, nsplit) is None
    # recommendation has no validation score: no verdict
    assert REC.learned(0.1, store, None) is None


def test_toy_validation_sets_get_no_verdict():
    """A 60-node graph trained for 4 epochs (the size of many mechanics tests) has a handful of validation
    edges: its AUROC says nothing about chance, so there is no verdict and unlearn accepts it."""
    data = gu.datasets.synthetic(num_nodes=60, num_classes=3, num_features=8, avg_degree=6, seed=3)
    split = gu.datasets.link_split(data, seed=0)
    store = gu.GraphStore(split.train_data)
    torch.manual_seed(0)
    model = gu.models.GCN(8, hidden_channels=8, out_channels=8)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ChanceLevelWarning)
        result = gu.train.link_prediction(model, store, split, epochs=4, progress=False)
    assert split.val_pos.size(1) < 100 and result.at_chance is None and gu.card_of(model).validation is None
    gu.unlearn(model, store, store.delete_edges(store.live_edge_ids()[:2]), "unlink", split=split)


def test_benchmark_refuses_an_original_that_never_learned(tmp_path, monkeypatch):
    """The engine runs no method on an at-chance original: each method's row says why, the log and
    results.md say so, and the cell is not cached (it runs again once training is fixed)."""
    real, learned = engine._original, []

    def at_chance(cell, cache, task, graph, split, progress):
        model = real(cell, cache, task, graph, split, progress)
        card = gu.card_of(model)
        learned.append((model, card))
        twin = gu.models.GCN(graph.num_features)
        gu.models.set_card(twin, dataclasses.replace(card, validation={**card.validation, "best_val": 0.5,
                                                                        "at_chance": True}))
        return twin

    monkeypatch.setattr(engine, "_original", at_chance)
    config = {**bench.load_config("smoke-node"), "methods": ["retrain", "unlink"]}  # node: no attack to train
    lines = []
    rows = bench.run(config, tmp_path, progress=False, log=lines.append)
    assert {r["method"] for r in rows} == {"retrain", "unlink"}
    assert all(r["refused"].startswith("the original never learned: best validation 0.5000") for r in rows)
    assert all("test_acc" not in r and r["original_val"] == 0.5 for r in rows)
    assert any("REFUSED" in line for line in lines)
    assert not list((tmp_path / "cells").glob("*.json"))
    md = bench.write_outputs(rows, tmp_path, config, name="smoke-node").read_text()
    assert "Refused cells" in md and "never learned" in md
    # the same cell's real original learned: the engine would have run it
    (model, card), = learned
    assert not card.at_chance and engine._refused(bench.plan(config)[0], model) is None


def test_gold_card_records_what_its_own_training_measured():
    data = gu.datasets.synthetic(num_nodes=200, seed=0)
    model, store, split, result = train_link(data, epochs=20)
    req = store.delete_edges(store.live_edge_ids()[:5], layout="ids")
    gold = gu.unlearn(model, store, req, "retrain", split=split, seed=1, epochs=20)
    card = gu.card_of(gold.model)
    assert card.validation["best_val"] == pytest.approx(gold.info["val_score"])
    assert card.validation["best_val"] != pytest.approx(result.best_val)  # not the original's
