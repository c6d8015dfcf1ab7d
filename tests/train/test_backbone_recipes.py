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
