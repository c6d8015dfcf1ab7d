"""Bad arguments are refused up front with one clear error naming them; degenerate graphs and diverging
losses are refused, never turned into numbers."""

from __future__ import annotations

import pytest
import torch

import graphunlearn as gu
from graphunlearn import evaluate, models, train, unlearning
from graphunlearn.unlearning import Option, unlearn


@pytest.fixture(scope="module")
def tiny():
    data = gu.datasets.synthetic(num_nodes=60, num_classes=3, num_features=8, avg_degree=6, seed=3)
    split = gu.datasets.link_split(data, seed=0)
    node_split = gu.datasets.node_split(data, seed=0)
    torch.manual_seed(0)
    model = models.GCN(8, hidden_channels=8, out_channels=8)
    train.link_prediction(model, gu.GraphStore(split.train_data), split, epochs=3, progress=False)
    return split, node_split, model


@pytest.fixture
def no_work(monkeypatch):
    """Fail the test if unlearn gets as far as building a method's context (i.e. starts working)."""
    def refuse(*args, **kwargs):
        raise AssertionError("unlearn started work before refusing a bad argument")

    monkeypatch.setattr(unlearning.core, "Context", refuse)


def _bad_unlearn_calls(split, node_split, model, store, req):
    return [
        (TypeError, "model must be a Module, got NoneType", dict(model=None)),
        (TypeError, "store must be a GraphStore, got dict", dict(store={})),
        (TypeError, "request must be a DeletionRequest or a list or tuple of them, got int: 0", dict(request=0)),
        (TypeError, "request must be a DeletionRequest.*got str", dict(request="r0")),
        (TypeError, "expected a DeletionRequest, got int", dict(request=[req, 3])),
        (ValueError, "no request given", dict(request=[])),
        (TypeError, "method must be a str, got int", dict(method=1)),
        (ValueError, "unknown unlearning method 'forget'", dict(method="forget")),
        (TypeError, r"split \(task 'link'\) must be a LinkSplit or None, got NodeSplit", dict(split=node_split)),
        (TypeError, r"split \(task 'link'\) must be a LinkSplit or None, got dict", dict(split={"val_pos": 0})),
        (TypeError, r"task must be a task name \(\['link', 'node', 'rec'\]\) or a Task, got int", dict(task=1)),
        (ValueError, r"unknown task 'graph'; registered: \['link', 'node', 'rec'\]", dict(task="graph")),
        (TypeError, "seed must be an int, got str: 'x'", dict(seed="x")),
        (TypeError, "seed must be an int, got float", dict(seed=1.5)),
        (TypeError, "progress must be True or False, got str", dict(progress="no")),
        (TypeError, "option epochs must be an int, got str: 'ten'", dict(epochs="ten")),
        (TypeError, "option epochs must be an int, got float", dict(epochs=10.0)),
        (TypeError, "option epochs must be an int, got bool", dict(epochs=True)),
        (ValueError, "option epochs must be >= 1, got -1", dict(epochs=-1)),
        (ValueError, "option epochs must be >= 1, got 0", dict(epochs=0)),
        (ValueError, r"option alpha must be a finite number in \[0, 1\], got 5", dict(alpha=5)),
        (ValueError, r"option alpha must be a finite number in \[0, 1\], got nan", dict(alpha=float("nan"))),
        (ValueError, "option lr must be a finite number > 0, got -1", dict(lr=-1)),
        (ValueError, "option lr must be a finite number > 0, got 0", dict(lr=0)),
        (TypeError, "option lr must be a number, got str", dict(lr="0.1")),
        (ValueError, "option tau must be a finite number > 0", dict(tau=0.0)),
        (ValueError, "option beta must be a finite number >= 0", dict(beta=-0.5)),
        (TypeError, "option from_scratch must be True or False, got int", dict(from_scratch=1)),
        (ValueError, r"option destroyer must be one of \['random', 'random_edges', 'uniform'\], got 'zeros'",
         dict(destroyer="zeros")),
        (ValueError, "option eval_every must be >= 1", dict(eval_every=0)),
        (ValueError, r"unknown option\(s\) \['alpah'\]", dict(alpah=0.3)),
    ]


def test_unlearn_refuses_each_bad_argument_before_any_work(tiny, no_work):
    split, node_split, model = tiny
    store = gu.GraphStore(split.train_data)
    req = store.delete_edges([0])
    good = dict(model=model, store=store, request=req, method="d2dgn", split=split)
    for error, message, change in _bad_unlearn_calls(split, node_split, model, store, req):
        args = {**good, **change}
        with pytest.raises(error, match=message):
            unlearn(args.pop("model"), args.pop("store"), args.pop("request"), args.pop("method"), **args)


@pytest.mark.parametrize("method, option, value, error, message", [
    ("retrain", "epochs", "ten", TypeError, "option epochs must be an int or None, got str"),
    ("finetune", "lr", float("inf"), ValueError, "option lr must be a finite number > 0, got inf"),
    ("gradient_ascent", "epochs", -3, ValueError, "option epochs must be >= 1, got -3"),
    ("gnndelete", "lam", 1.5, ValueError, r"option lam must be a finite number in \[0, 1\]"),
    ("gnndelete", "init", "ones", ValueError, r"option init must be one of \['identity', 'reference'\]"),
])
def test_every_method_validates_its_options(tiny, no_work, method, option, value, error, message):
    split, _, model = tiny
    store = gu.GraphStore(split.train_data)
    req = store.delete_edges([0])
    with pytest.raises(error, match=message):
        unlearn(model, store, req, method, split=split, **{option: value})


def test_rec_options_are_validated_too(no_work):
    spec = unlearning.methods()["reverse_bpr"]
    with pytest.raises(ValueError, match=r"option alpha must be a finite number in \[0, 1\], got 2"):
        spec.check_options({"alpha": 2})
    with pytest.raises(ValueError, match="option batch_size must be >= 1, got 0"):
        spec.check_options({"batch_size": 0})
    with pytest.raises(ValueError, match="option weight_decay must be a finite number >= 0"):
        spec.check_options({"weight_decay": -1e-4})
    spec.check_options({"alpha": 1, "batch_size": 2, "reset_deleted": False})  # an int where a float is asked: fine


def test_every_registered_option_has_a_spec_and_its_default_passes_it():
    for name, method in unlearning.methods().items():
        assert set(method.specs) == set(method.options), name
        for option, spec in method.specs.items():
            assert isinstance(spec, Option) and spec.doc, f"{name}.{option} has no documented meaning"
            spec.check(name, option, method.options[option])


def test_option_types_inferred_from_defaults_and_registration_checked():
    import dataclasses

    @dataclasses.dataclass
    class Opts(unlearning.Options):
        k: int = unlearning.option(3, doc="k")
        share: float = unlearning.option(0.5, doc="share")

    assert Opts.specs()["k"].type is int and Opts.specs()["share"].type is float
    with pytest.raises(TypeError, match="option k must be an int, got str"):
        Opts.specs()["k"].check("m", "k", "3")
    with pytest.raises(ValueError, match=r"register\('x'\): tasks must be a non-empty sequence drawn from"):
        unlearning.register("x", tasks=("graph",))
    with pytest.raises(ValueError, match="already registered"):
        unlearning.register("d2dgn", tasks=("link",))(lambda ctx: {})


@pytest.mark.parametrize("fn, kwargs, error, message", [
    ("link_prediction", dict(model=None), TypeError, "train.link_prediction: model must be a Module"),
    ("link_prediction", dict(store=None), TypeError, "train.link_prediction: store must be a GraphStore"),
    ("link_prediction", dict(split="node"), TypeError, r"split \(task 'link'\) must be a LinkSplit or None, got str"),
    ("link_prediction", dict(epochs="ten"), TypeError, "epochs must be an int, got str"),
    ("link_prediction", dict(epochs=-1), ValueError, "epochs must be >= 1, got -1"),
    ("link_prediction", dict(lr=-1), ValueError, "lr must be a finite number > 0, got -1"),
    ("link_prediction", dict(weight_decay=-1.0), ValueError, "weight_decay must be a finite number >= 0"),
    ("link_prediction", dict(patience=0), ValueError, "patience must be >= 1"),
    ("link_prediction", dict(eval_every=0), ValueError, "eval_every must be >= 1"),
    ("link_prediction", dict(seed="x"), TypeError, "seed must be an int, got str"),
    ("link_prediction", dict(seed=2**70), ValueError, "seed must be in"),
    ("link_prediction", dict(progress=None), TypeError, "progress must be True or False"),
    ("link_prediction", dict(checkpoint=5), TypeError, "checkpoint must be a str or PathLike or None, got int"),
    ("node_classification", dict(split=None), ValueError, "node_classification: node classification needs split="),
    ("recommendation", dict(split=None), ValueError, "train.recommendation: recommendation needs split="),
    ("node_classification", dict(split=0), TypeError, r"split \(task 'node'\) must be a NodeSplit or None, got int"),
])
def test_training_loops_refuse_bad_arguments(tiny, fn, kwargs, error, message):
    split, node_split, model = tiny
    args = dict(model=model, store=gu.GraphStore(split.train_data),
                split=node_split if fn == "node_classification" else split)
    args = {"progress": False, **args, **kwargs}
    before = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(error, match=message):
        getattr(train, fn)(args.pop("model"), args.pop("store"), args.pop("split"), **args)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))  # refused before any step


def test_evaluate_functions_refuse_bad_arguments(tiny):
    split, node_split, model = tiny
    store = gu.GraphStore(split.train_data)
    req = store.delete_edges([0])
    with pytest.raises(TypeError, match="evaluate.link_prediction: model must be a Module, got NoneType"):
        evaluate.link_prediction(None, store, split, req)
    with pytest.raises(TypeError, match=r"link_prediction: split \(task 'link'\) must be a LinkSplit, got NodeSplit"):
        evaluate.link_prediction(model, store, node_split, req)
    with pytest.raises(TypeError, match="forget must be a DeletionRequest or a list or tuple of them, got int"):
        evaluate.link_prediction(model, store, split, 0)
    with pytest.raises(ValueError, match="forget holds no request"):
        evaluate.link_prediction(model, store, split, [])
    with pytest.raises(ValueError, match="resamples must be >= 1, got 0"):
        evaluate.link_prediction(model, store, split, req, resamples=0)
    with pytest.raises(ValueError, match="hits_k must be >= 1"):
        evaluate.link_prediction(model, store, split, req, hits_k=0)
    with pytest.raises(TypeError, match="gold must be a Module or None, got str"):
        evaluate.link_prediction(model, store, split, req, gold="gold")
    with pytest.raises(ValueError, match="registered with another store"):
        evaluate.link_prediction(model, gu.GraphStore(split.train_data), split, req)
    with pytest.raises(TypeError, match=r"node_classification: split \(task 'node'\) must be a NodeSplit, got Link"):
        evaluate.node_classification(model, store, split, req)
    with pytest.raises(TypeError, match=r"evaluate.recommendation: split \(task 'rec'\) must be a RecSplit"):
        evaluate.recommendation(model, store, split, req)
    with pytest.raises(ValueError, match="evaluate.train_mi_attacker: epochs must be >= 1"):
        evaluate.train_mi_attacker(model, store, epochs=0)
    with pytest.raises(TypeError, match="evaluate.mi_ratio: attacker must be a MIAttacker"):
        evaluate.mi_ratio(None, model, model, store, req)


def test_link_evaluation_after_every_training_edge_is_deleted(tiny):
    split, _, model = tiny
    store = gu.GraphStore(split.train_data)
    req = store.delete_edges(torch.arange(store.edge_index.size(1)))
    assert store.num_live_edges == 0
    with pytest.raises(ValueError, match=r"no live training edges left \(every edge was deleted\)"):
        evaluate.link_prediction(model, store, split, req, resamples=2)
    with pytest.raises(ValueError, match="train.link_prediction: the store has no live edges"):
        train.link_prediction(models.fresh_copy(model), store, split, epochs=2, progress=False)
    for method in ("finetune", "d2dgn"):
        with pytest.raises(ValueError, match=f"{method}: .*no live .*(left|to train on)"):
            unlearn(model, store, req, method, split=split, epochs=1)
    with pytest.raises(ValueError, match="train_mi_attacker: 0 live edge"):
        evaluate.train_mi_attacker(model, store, epochs=1)


def _nan_copy(model):
    import copy

    bad = copy.deepcopy(model)
    with torch.no_grad():
        for p in bad.parameters():
            p.fill_(float("nan"))
    gu.models.set_card(bad, gu.card_of(model))
    return bad


def test_nan_model_gets_no_metrics(tiny):
    split, node_split, model = tiny
    store = gu.GraphStore(split.train_data)
    req = store.delete_edges([0, 1])
    bad = _nan_copy(model)
    with pytest.raises(ValueError, match="evaluate.link_prediction: .* outputs of model are not finite"):
        evaluate.link_prediction(bad, store, split, req, resamples=2)
    with pytest.raises(ValueError, match="outputs of gold are not finite"):
        evaluate.link_prediction(model, store, split, req, resamples=2, gold=bad)
    with pytest.raises(ValueError, match="roc_auc: .* not finite"):
        gu.tasks.LINK.validate(bad, store, split)
    with pytest.raises(ValueError, match="node accuracy: .* logits of the nodes asked are not finite"):
        gu.tasks.NODE.accuracy(bad, store, node_split.val_idx)  # argmax would read NaN rows as a class
    node_req = store.delete_nodes(node_split.train_idx[:2])
    with pytest.raises(ValueError, match="evaluate.node_classification: .* outputs of model are not finite"):
        evaluate.node_classification(bad, store, node_split, node_req)
    with pytest.raises(ValueError, match="outputs of original are not finite"):
        evaluate.node_classification(model, store, node_split, node_req, original=bad)


def test_diverging_losses_raise(tiny):
    split, _, model = tiny
    store = gu.GraphStore(split.train_data)
    req = store.delete_edges([0, 1])
    with pytest.raises(FloatingPointError, match="finetune: the loss became NaN or infinite at epoch 1"):
        unlearn(_nan_copy(model), store, req, "finetune", split=split, epochs=2)
    with pytest.raises(FloatingPointError, match="finetune"):  # finite at first, then the weights overflow
        unlearn(model, store, req, "finetune", split=split, epochs=5, lr=1e30)
    with pytest.raises(FloatingPointError, match="d2dgn"):
        unlearn(_nan_copy(model), store, req, "d2dgn", split=split, epochs=2)
    with pytest.raises(FloatingPointError, match=r"gnndelete \(layer 1\): the loss became NaN or infinite at epoch"):
        unlearn(_nan_copy(model), store, req, "gnndelete", split=split, epochs=2)
    with pytest.raises(FloatingPointError, match="gradient_ascent: the loss became NaN or infinite at epoch 1"):
        unlearn(_nan_copy(model), store, req, "gradient_ascent", epochs=2)
    fresh = gu.GraphStore(split.train_data)
    for kwargs in (dict(split=split, eval_every=1), dict(split=None)):  # checked at evaluations and at the end
        with pytest.raises(FloatingPointError, match="train.link_prediction: .*NaN or infinite"):
            train.link_prediction(_nan_copy(model), fresh, epochs=3, progress=False, **kwargs)
    with pytest.raises(FloatingPointError, match="train.link_prediction"):
        train.link_prediction(models.fresh_copy(model), fresh, split, epochs=4, lr=1e30, eval_every=2,
                              progress=False)


def test_load_checkpoint_refuses_what_is_not_a_checkpoint(tiny, tmp_path):
    from graphunlearn.io import CorruptFileError, atomic_save

    _, _, model = tiny
    atomic_save({"weights": torch.ones(2)}, tmp_path / "dict.pt")
    with pytest.raises(CorruptFileError, match=r"dict\.pt: not a graphunlearn model checkpoint"):
        gu.load_model(tmp_path / "dict.pt")
    gu.save_model(tmp_path / "m.pt", model)
    blob = torch.load(tmp_path / "m.pt", weights_only=True)
    first = next(iter(blob["state_dict"]))
    blob["state_dict"][first] = torch.zeros(1, 1)  # weights of the wrong shape
    atomic_save(blob, tmp_path / "bad.pt")
    with pytest.raises(CorruptFileError, match=r"bad\.pt: the weights do not fit the GNN given \(.*size"):
        gu.load_model(tmp_path / "bad.pt")
    blob = torch.load(tmp_path / "m.pt", weights_only=True)
    blob["state_dict"][first] = blob["state_dict"][first] + 1  # same shape, altered values
    atomic_save(blob, tmp_path / "edited.pt")
    with pytest.raises(CorruptFileError, match=r"edited\.pt: the weights do not match the card's weight_hash"):
        gu.load_model(tmp_path / "edited.pt")
    (tmp_path / "cut.pt").write_bytes((tmp_path / "m.pt").read_bytes()[:100])
    with pytest.raises(CorruptFileError, match=r"cut\.pt: the file is truncated"):
        gu.load_model(tmp_path / "cut.pt")
    with pytest.raises(TypeError, match="load_model: path must be"):
        gu.load_model(None)


def test_a_model_and_a_store_on_different_devices_are_refused_naming_both(tiny):
    """No GPU here: a model on the meta device stands in for one on another device than the store's."""
    split, _, model = tiny
    store = gu.GraphStore(split.train_data)
    req = store.delete_edges([0, 1])
    elsewhere = models.fresh_copy(model).to("meta")
    message = r"the model is on meta and the store on cpu; move one \(model.to\('cpu'\) or store.to\('meta'\)\)"
    with pytest.raises(ValueError, match=message):
        train.link_prediction(elsewhere, store, split, epochs=1, progress=False)
    with pytest.raises(ValueError, match=message):
        unlearn(elsewhere, store, req, "d2dgn", split=split, task="link")
    with pytest.raises(ValueError, match=message):
        evaluate.link_prediction(elsewhere, store, split, req)
