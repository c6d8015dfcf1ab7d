"""GIN's defaults: a LayerNorm inside each convolution's MLP, and link prediction's own learning rate for it
(``Task.backbone_recipes``), picked by the trainer for the project's GIN and PyG's alike; checkpoints from
before ``norm`` rebuild unchanged."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch_geometric.nn.models import GIN as PygGIN

import graphunlearn as gu
from graphunlearn.tasks import LINK, NODE, REC


def layer_norms(model):
    return [m for m in model.modules() if isinstance(m, nn.LayerNorm)]


def test_gin_shorthand_and_task_backbones_normalise_inside_the_mlp():
    data = gu.datasets.synthetic(num_nodes=60, seed=0)
    store = gu.GraphStore(data)
    split = gu.datasets.node_split(data, seed=0)
    built = [gu.models.GIN(data.num_features), LINK.build_model("gin", store, None),
             NODE.build_model("gin", store, split)]
    for model in built:
        assert model.config["norm"] == "layer_norm"
        assert len(layer_norms(model)) == 2  # one per convolution, after the MLP's first linear layer
        first = model.convs[0].nn
        assert isinstance(first[0], nn.Linear) and isinstance(first[1], nn.LayerNorm)
    for kind in ("gcn", "sage", "gat"):
        assert not layer_norms(LINK.build_model(kind, store, None))
        assert "norm" not in LINK.build_model(kind, store, None).config
    assert not layer_norms(gu.models.GNN(data.num_features, conv="gin"))  # the plain GNN stays plain


@pytest.mark.parametrize("kwargs, match", [
    (dict(conv="gin", norm="batch_norm"), r"unknown norm 'batch_norm'"),
    (dict(conv="gcn", norm="layer_norm"), r"normalises inside GIN's MLPs; conv 'gcn' has none"),
])
def test_bad_norm_is_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        gu.models.GNN(8, **kwargs)


def test_plain_gin_keeps_the_layout_checkpoints_saved_before_norm_have():
    keys = set(gu.models.GNN(8, conv="gin").state_dict())
    assert keys == {f"convs.{k}.{name}" for k in (0, 1)
                    for name in ("eps", "nn.0.weight", "nn.0.bias", "nn.2.weight", "nn.2.bias")}
    assert {f"convs.{k}.nn.1.weight" for k in (0, 1)} <= set(gu.models.GIN(8).state_dict())  # the LayerNorm


def test_an_old_gin_checkpoint_loaded_into_a_new_gin_names_the_difference(tmp_path):
    gu.models.save_model(tmp_path / "old.pt", gu.models.GNN(8, conv="gin"))
    with pytest.raises(gu.io.CorruptFileError, match=r"config differs from the card's \(norm: card 'absent', "
                                                      r"model 'layer_norm'; leave out model="):
        gu.models.load_model(tmp_path / "old.pt", model=gu.models.GIN(8))
    assert "norm" not in gu.models.load_model(tmp_path / "old.pt").config  # rebuilt from the card: as saved


def test_checkpoint_round_trip_with_and_without_norm(tmp_path):
    for model in (gu.models.GIN(8), gu.models.GNN(8, conv="gin")):  # with norm, and as saved before norm
        gu.models.save_model(tmp_path / "m.pt", model)
        loaded = gu.models.load_model(tmp_path / "m.pt")
        assert loaded.config == model.config
        assert len(layer_norms(loaded)) == len(layer_norms(model))
        x, ei = torch.randn(5, 8), torch.tensor([[0, 1, 2, 3], [1, 2, 3, 4]])
        model.eval(), loaded.eval()
        torch.testing.assert_close(loaded(x, ei), model(x, ei))


def test_backbone_name():
    assert gu.models.backbone_name(gu.models.GIN(8)) == "gin"
    assert gu.models.backbone_name(gu.models.GCN(8)) == "gcn"
    assert gu.models.backbone_name(PygGIN(8, 16, num_layers=2)) == "gin"
    wrapped = gu.models.GNNDelete(gu.models.GIN(8), None, num_nodes=10, dims=[128, 64])
    assert gu.models.backbone_name(wrapped) == "gin"
    assert gu.models.backbone_name(nn.Linear(8, 8)) is None
    assert gu.models.backbone_name(gu.models.LightGCN(3, 4)) is None


def test_recipe_for_each_backbone():
    assert LINK.recipe_for(gu.models.GIN(8)) == {**LINK.recipe, "lr": 0.001, "patience": 100}
    assert LINK.recipe_for(PygGIN(8, 16, num_layers=2))["lr"] == 0.001
    assert LINK.recipe_for(gu.models.GCN(8)) == LINK.recipe
    assert LINK.recipe_for(nn.Linear(8, 8)) == LINK.recipe
    assert NODE.recipe_for(gu.models.GIN(8)) == NODE.recipe
    assert REC.recipe_for(gu.models.LightGCN(3, 4)) == REC.recipe
    assert LINK.recipe["lr"] == 0.01  # the table entry changes GIN's alone


def test_trainer_uses_the_backbone_recipe_and_records_it():
    data = gu.datasets.synthetic(num_nodes=80, seed=1)
    split = gu.datasets.link_split(data)
    store = gu.GraphStore(split.train_data)
    torch.manual_seed(0)
    gin = gu.models.GIN(data.num_features)
    assert gu.train.link_prediction(gin, store, split, epochs=5, progress=False).recipe["lr"] == 0.001
    assert gu.models.card_of(gin).recipe["lr"] == 0.001  # retraining (gold) reads the card: same recipe
    gin = gu.models.GIN(data.num_features)
    assert gu.train.link_prediction(gin, store, split, epochs=5, lr=0.02, progress=False).recipe["lr"] == 0.02
    gcn = gu.models.GCN(data.num_features)
    assert gu.train.link_prediction(gcn, store, split, epochs=5, progress=False).recipe["lr"] == 0.01


def test_gold_and_the_shadow_model_train_as_the_original_did():
    """Gold retrains with the recipe on the original's card, and the MIA's shadow model at the original's
    learning rate: GIN's 0.001 for a GIN trained with the defaults, 0.01 for one trained at 0.01 (e.g. before
    the backbone recipe existed)."""
    from graphunlearn.evaluate import attacks

    data = gu.datasets.synthetic(num_nodes=80, seed=1)
    split = gu.datasets.link_split(data)
    for lr in (None, 0.01):
        store = gu.GraphStore(split.train_data)
        torch.manual_seed(0)
        gin = gu.models.GIN(data.num_features)
        gu.train.link_prediction(gin, store, split, epochs=5, lr=lr, progress=False)
        expected = lr or 0.001
        assert attacks._trained_like(gin)["lr"] == expected
        req = store.delete_edges(split.train_data.edge_index[:, :4])
        gold = gu.unlearn(gin, store, req, "retrain", split=split, seed=0, certify=False, progress=False)
        assert gu.models.card_of(gold.model).recipe["lr"] == expected
    assert attacks._trained_like(gu.models.GIN(8))["lr"] == 0.001  # no card: the task's recipe for GIN
    assert attacks._trained_like(gu.models.GCN(8))["lr"] == 0.01
