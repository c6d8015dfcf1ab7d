"""A method's defaults for one backbone (``register(backbone_options=...)``, ``Method.options_for``): d2dgn on GIN
runs with its own learning rate, destroyer and weighting, on GCN with its own learning rate (link prediction); the
caller's options win; other backbones, other tasks and the benchmark keys of their cells are unchanged; a uniform
destroyer is a destroyer whose every output is zero."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from torch_geometric.nn.models import GIN as PygGIN

import graphunlearn as gu
from graphunlearn.bench import engine
from graphunlearn.unlearning import base, methods, unlearn
from graphunlearn.unlearning.algorithms import d2dgn
from graphunlearn.unlearning.base import Options, option, register


@pytest.fixture(scope="module")
def setup():
    data = gu.datasets.synthetic(num_nodes=120, num_classes=4, num_features=8, avg_degree=6, seed=3)
    split = gu.datasets.link_split(data, seed=0)
    models = {}
    for kind in ("gcn", "gin"):
        store = gu.GraphStore(split.train_data)
        torch.manual_seed(0)
        model = gu.tasks.LINK.build_model(kind, store, split)
        gu.train.fit(model, store, split, task="link", epochs=15, eval_every=5, progress=False)
        models[kind] = model
    return split, models


def _request(split):
    store = gu.GraphStore(split.train_data)
    return store, store.delete_edges(gu.datasets.forget_edges(split, 0.05, "in", seed=1))


def _df_prob(model, store, split):
    """Mean probability of the deleted edges, message passing on the live graph."""
    pairs = gu.datasets.forget_edges(split, 0.05, "in", seed=1)
    with torch.no_grad():
        z = gu.tasks.encode(model.eval(), store.live())
        return torch.sigmoid(gu.tasks.dot_product(z, pairs)).mean().item()


def test_d2dgn_runs_with_a_backbones_own_defaults_and_the_caller_still_wins(setup):
    split, models = setup
    spec = methods()["d2dgn"]
    gin = spec.backbone_options["link/gin"]
    assert gin and set(gin) <= set(spec.options)
    assert any(spec.options[k] != v for k, v in gin.items())  # they differ from the plain defaults
    store, req = _request(split)
    res = unlearn(models["gin"], store, req, "d2dgn", split=split, epochs=2, certify=False)
    assert res.options == {**spec.options_for("link", "gin"), "epochs": 2} == {**spec.options, **gin, "epochs": 2}
    store, req = _request(split)
    res = unlearn(models["gin"], store, req, "d2dgn", split=split, epochs=2, lr=0.003, certify=False)
    assert res.options["lr"] == 0.003 and res.options["destroyer"] == gin.get("destroyer", spec.options["destroyer"])
    store, req = _request(split)
    res = unlearn(models["gcn"], store, req, "d2dgn", split=split, epochs=2, certify=False)
    assert res.options == {**spec.options, **spec.backbone_options["link/gcn"], "epochs": 2}
    assert res.options["lr"] == 0.0025 and spec.options["lr"] == 0.005
    assert spec.options_for("link", "gat")["lr"] == 0.0025
    assert spec.options == spec.options_for("link", None) == spec.options_for("link", "sage")  # no entry of their own
    assert spec.options_for("node", "gin") == spec.options_for("node", "gcn") == spec.options  # link entries only


def test_a_bad_option_on_a_gin_fails_before_any_work(setup):
    split, models = setup
    store, req = _request(split)
    before = store.state_hash()
    with pytest.raises(ValueError, match="option alpha must be a finite number in"):
        unlearn(models["gin"], store, req, "d2dgn", split=split, alpha=2.0)
    with pytest.raises(ValueError, match=r"option destroyer must be one of"):
        unlearn(models["gin"], store, req, "d2dgn", split=split, destroyer="zero")
    # an unknown name lists the defaults this model runs with
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['alpah'\].*'lr': 0.0001, .*'destroyer': 'uniform'"):
        unlearn(models["gin"], store, req, "d2dgn", split=split, alpah=0.5)
    assert store.state_hash() == before and gu.card_of(models["gin"]).forgotten == ()


def test_backbone_options_are_read_only_and_methods_stay_hashable():
    spec = methods()["d2dgn"]
    with pytest.raises(TypeError):
        spec.backbone_options["link/gin"]["lr"] = 1.0
    with pytest.raises(TypeError):
        spec.backbone_options["gcn"] = {}
    assert hash(spec) == hash(methods()["d2dgn"])


def test_pygs_gin_is_a_gin_for_the_methods_too():
    model = PygGIN(8, 16, num_layers=2, out_channels=8)
    assert gu.models.backbone_name(model) == "gin"
    spec = methods()["d2dgn"]
    assert spec.options_for("link", gu.models.backbone_name(model)) == spec.options_for("link", "gin") != spec.options


def test_benchmark_cells_key_a_backbones_own_defaults_and_leave_the_others_as_they_were():
    config = dict(task="link", datasets=["synthetic"], backbones=["gcn", "gin", "gat", "sage"],
                  methods=["d2dgn", "unlink"], fractions=[0.05], settings=["in"], seeds=[0], epochs=5,
                  options={"d2dgn": {"epochs": 3}})
    cells = {c["backbone"]: c for c in engine.plan(config)}
    spec = methods()["d2dgn"]
    assert cells["sage"]["method_options"]["d2dgn"] == {**spec.options, "epochs": 3}  # no entry: the plain defaults
    assert cells["gat"]["method_options"]["d2dgn"] == {**spec.options, **spec.backbone_options["link/gat"], "epochs": 3}
    assert cells["gcn"]["method_options"]["d2dgn"] == {**spec.options, **spec.backbone_options["link/gcn"], "epochs": 3}
    assert cells["gin"]["method_options"]["d2dgn"] == {**spec.options, **spec.backbone_options["link/gin"], "epochs": 3}
    # the config's own options win over the backbone's
    lr = dict(config, options={"d2dgn": {"lr": 0.002}})
    assert {c["backbone"]: c for c in engine.plan(lr)}["gin"]["method_options"]["d2dgn"]["lr"] == 0.002


def test_register_refuses_backbone_options_its_options_refuse():
    @dataclasses.dataclass
    class _Opts(Options):
        lr: float = option(0.01, float, low=0, low_open=True)

    def bad(backbone_options):
        register("_bad_backbone_options", tasks=("link",), options=_Opts,
                 backbone_options=backbone_options)(lambda ctx: {})

    with pytest.raises(ValueError, match=r"unknown option\(s\) \['lrr'\]"):
        bad({"gin": {"lrr": 1.0}})
    with pytest.raises(ValueError, match="option lr must be a finite number > 0, got -1"):
        bad({"gin": {"lr": -1}})
    # a key that could never apply: an unknown backbone, a task the method does not run on, a misspelling
    for key in ("GIN", "links/gin", "node/gin", "gin/link", "lightgcn"):
        with pytest.raises(ValueError, match=f"backbone_options key {key!r} must be a backbone of"):
            bad({key: {"lr": 0.1}})
    with pytest.raises(TypeError, match=r"backbone_options\['gin'\] must be a mapping"):
        bad({"gin": 0.1})
    assert "_bad_backbone_options" not in methods()  # nothing was registered


def _zero_the_random_destroyer(monkeypatch):
    """d2dgn's random destroyer, with every parameter zeroed (its logits and embeddings are then zero)."""
    fresh = d2dgn.fresh_copy

    def zeroed(m, seed=None):
        out = fresh(m, seed=seed)
        with torch.no_grad():
            for p in out.parameters():
                p.zero_()
        return out

    monkeypatch.setattr(d2dgn, "fresh_copy", zeroed)


def _same_weights(a, b):
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values()):
        torch.testing.assert_close(x, y, atol=1e-6, rtol=1e-5, msg=name)


def test_uniform_destroyer_is_a_destroyer_whose_every_output_is_zero(setup, monkeypatch):
    """destroyer="uniform" distils the deleted edges toward probability 0.5 and the deleted nodes' embeddings
    toward zero: exactly what a destroyer with every parameter zeroed teaches (the GCN's logits and embeddings
    are then zero), without running one."""
    split, models = setup
    model = models["gcn"]
    store, req = _request(split)
    uniform = unlearn(model, store, req, "d2dgn", split=split, epochs=3, destroyer="uniform", certify=False)
    _zero_the_random_destroyer(monkeypatch)
    store, req = _request(split)
    twin = unlearn(model, store, req, "d2dgn", split=split, epochs=3, destroyer="random", certify=False)
    _same_weights(uniform.model, twin.model)
    # and, weighed enough, it moves the deleted edges toward 0.5 from where the original scored them
    monkeypatch.undo()
    store, req = _request(split)
    pulled = unlearn(model, store, req, "d2dgn", split=split, epochs=20, eval_every=20, alpha=0.2,
                     destroyer="uniform", certify=False)
    before = _df_prob(model, store, split)
    assert abs(_df_prob(pulled.model, store, split) - 0.5) < abs(before - 0.5) / 2


def test_a_backbones_entry_for_every_task_and_one_for_a_task_combine(monkeypatch):
    monkeypatch.setattr(base, "_REGISTRY", dict(base._REGISTRY))  # the registration ends with the test
    @dataclasses.dataclass
    class _Opts(Options):
        lr: float = option(0.01, float, low=0, low_open=True)
        alpha: float = option(0.5, float, low=0, high=1)

    register("_combined_backbone_options", tasks=("link", "node"), options=_Opts,
             backbone_options={"gin": {"lr": 0.001, "alpha": 0.7}, "link/gin": {"alpha": 0.9}})(lambda ctx: {})
    spec = methods()["_combined_backbone_options"]
    assert spec.options_for("link", "gin") == {"lr": 0.001, "alpha": 0.9}
    assert spec.options_for("node", "gin") == {"lr": 0.001, "alpha": 0.7}
    assert spec.options_for("link", "gcn") == {"lr": 0.01, "alpha": 0.5}


def test_uniform_destroyer_on_node_classification_is_a_zeroed_destroyer(monkeypatch):
    """Node classification: the softmax KL toward equal class probabilities and the deleted nodes' embeddings
    toward zero, as a zeroed destroyer teaches."""
    data = gu.datasets.synthetic(num_nodes=120, num_classes=4, num_features=8, avg_degree=6, seed=3)
    split = gu.datasets.node_split(data, seed=0)
    store = gu.GraphStore(data)
    torch.manual_seed(0)
    model = gu.tasks.NODE.build_model("gcn", store, split)
    gu.train.fit(model, store, split, task="node", epochs=10, eval_every=5, progress=False)
    doomed = split.train_idx[:4].tolist()

    def run(destroyer):
        store = gu.GraphStore(data)
        req = store.delete_nodes(doomed)
        return unlearn(model, store, req, "d2dgn", split=split, epochs=3, certify=False, destroyer=destroyer).model

    uniform = run("uniform")
    _zero_the_random_destroyer(monkeypatch)
    twin = run("random")
    _same_weights(uniform, twin)


def test_graphunlearn_methods_lists_a_backbones_own_defaults(capsys):
    from graphunlearn.cli import main

    main(["methods"])
    out = capsys.readouterr().out
    for entry in ("link/gcn", "link/gat", "link/gin"):
        chosen = methods()["d2dgn"].backbone_options[entry]
        assert f"on {entry}: {json.dumps(dict(chosen))}" in out
