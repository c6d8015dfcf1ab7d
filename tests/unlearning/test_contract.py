"""The contract every registered unlearning method keeps, on every task it declares.

Parametrised over ``sorted(gu.methods())``, so a method registered later is held to it without editing this
file (a method for a task without a fixture below fails loudly until one is added). For each method and
task: (i) the original model is never modified; (ii) the returned model on the live graph equals it on the
graph rebuilt without the deleted elements; (iii) a task it does not declare, or a model kind it cannot work
on, is refused with a clear error; (iv) its options round-trip and are validated; (v) it changes the model
(a method that silently does nothing is caught), except ``unlink``, which by definition keeps the weights.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, is_dataclass

import pytest
import torch
from torch import nn
from torch_geometric.nn import GCNConv

import graphunlearn as gu
from graphunlearn.tasks import run_model

METHODS = sorted(gu.methods())
def declared_tasks(method: str) -> tuple[str, ...]:
    """The tasks a method declares; ``("*",)`` (the Task contract alone) means every registered task."""
    tasks = gu.methods()[method].tasks
    return tuple(sorted(gu.tasks.tasks())) if "*" in tasks else tasks


CASES = [(name, task) for name in METHODS for task in declared_tasks(name)]
TASKS = ("link", "node", "rec")
F_IN = 8


# ----------------------------------------------------------------------------------------------- fixtures
@dataclass
class Setup:
    """A tiny trained model of one task (its weights and card), and how to build a store and a request."""

    task: str
    split: object
    graph: object  # the Data a store is built from
    factory: object  # () -> an untrained model of the architecture
    state: dict
    card: gu.ModelCard
    delete: object  # (store, split) -> DeletionRequest

    def model(self) -> nn.Module:
        m = self.factory()
        m.load_state_dict(self.state)
        m.eval()
        gu.models.set_card(m, self.card)
        return m

    def store(self) -> gu.GraphStore:
        return gu.GraphStore(self.graph)


@functools.cache
def setup(task: str) -> Setup:
    torch.manual_seed(0)
    if task == "link":
        data = gu.datasets.synthetic(num_nodes=60, num_classes=3, num_features=F_IN, avg_degree=6, seed=1)
        split = gu.datasets.link_split(data, val_ratio=0.1, test_ratio=0.1, seed=0)
        graph = split.train_data
        factory = lambda: gu.models.GCN(F_IN, hidden_channels=16, out_channels=8)  # noqa: E731
        delete = lambda store, s: store.delete_edges(s.train_pos[:, :4], layout="edge_index")  # noqa: E731
        epochs = 10
    elif task == "node":
        data = gu.datasets.synthetic(num_nodes=60, num_classes=3, num_features=F_IN, avg_degree=6, seed=2)
        split = gu.datasets.node_split(data, seed=0)
        graph = data
        factory = lambda: gu.models.GCN(F_IN, hidden_channels=16, out_channels=3)  # noqa: E731
        delete = lambda store, s: store.delete_nodes(s.train_idx[:3])  # noqa: E731
        epochs = 10
    elif task == "rec":
        data = gu.datasets.load("synthetic-rec", num_users=20, num_items=15, num_groups=3, interactions_per_user=6,
                                seed=0)
        split = gu.datasets.user_item_split(data, seed=0)
        graph = split.train_data
        factory = lambda: gu.models.LightGCN(20, 15, embedding_dim=8, num_layers=2)  # noqa: E731
        delete = lambda store, s: store.delete_edges(s.train_pos[:, :4], layout="edge_index")  # noqa: E731
        epochs = 5
    else:
        pytest.fail(f"a method declares task {task!r}, which has no fixture in the contract test; add one")
    model = factory()
    gu.train.fit(model, gu.GraphStore(graph), split, task=task, epochs=epochs, seed=0, progress=False)
    return Setup(task, split, graph, factory, {k: v.clone() for k, v in model.state_dict().items()},
                 gu.card_of(model), delete)


def small_options(method: str) -> dict:
    return {"epochs": 2} if "epochs" in gu.methods()[method].options else {}


@dataclass
class Run:
    model: nn.Module
    before: dict
    store: gu.GraphStore
    request: gu.DeletionRequest
    result: gu.UnlearnResult


@functools.cache
def run(method: str, task: str) -> Run:
    """One unlearning run per (method, task), shared by the read-only checks below."""
    s = setup(task)
    model, store = s.model(), s.store()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    req = s.delete(store, s.split)
    result = gu.unlearn(model, store, req, method, split=s.split, seed=0, **small_options(method))
    return Run(model, before, store, req, result)


def outputs(model: nn.Module, store: gu.GraphStore) -> torch.Tensor:
    with torch.no_grad():
        return gu.tasks.encode(model, store.live())


# ----------------------------------------------------------------------------------------------- (i)
@pytest.mark.parametrize("method, task", CASES)
def test_the_original_model_is_not_modified(method, task):
    r = run(method, task)
    after = r.model.state_dict()
    assert after.keys() == r.before.keys()
    for k, v in r.before.items():
        assert torch.equal(after[k], v), f"unlearn({method!r}) on {task} modified the original model's {k}"
    assert r.result.model is not r.model
    assert r.result.method == method and r.result.requests == (r.request.id,)
    card = gu.card_of(r.result.model)
    assert card is r.result.card and card.task == task and card.method == method
    assert card.forgotten == (r.request.id,) and r.store.forgotten_by(card.tag) == [r.request.id]
    assert gu.card_of(r.model).forgotten == ()


# ----------------------------------------------------------------------------------------------- (ii)
@pytest.mark.parametrize("method, task", CASES)
def test_the_returned_model_on_the_live_graph_equals_it_on_the_rebuilt_graph(method, task):
    r = run(method, task)
    model = r.result.model
    rebuilt = r.store.retained()
    with torch.no_grad():
        on_live = outputs(model, r.store)
        on_rebuilt = run_model(model, rebuilt.get("x"), rebuilt.edge_index)
    assert torch.isfinite(on_live).all()
    torch.testing.assert_close(on_live[rebuilt.orig_node_id], on_rebuilt, atol=1e-5, rtol=1e-5)
    # and the deletion reaches the model: with the deleted elements back, its outputs change (a model that
    # ignores the edge_index it is given, e.g. one holding the full graph, passes the check above)
    graph = setup(task).graph
    with torch.no_grad():
        on_full = run_model(model, graph.get("x"), graph.edge_index)
    assert not torch.allclose(on_live, on_full, atol=1e-6), \
        f"the model {method!r} returned gives the same outputs with and without the deleted elements"


# ----------------------------------------------------------------------------------------------- (iii)
@pytest.mark.parametrize("method", METHODS)
def test_a_task_the_method_does_not_declare_is_refused(method):
    declared = declared_tasks(method)
    wrong = [t for t in TASKS if t not in declared]
    if not wrong:
        pytest.skip(f"{method} supports every task ({declared})")
    s = setup(declared[0])
    model, store = s.model(), s.store()
    req = s.delete(store, s.split)
    for task in wrong:
        with pytest.raises(ValueError, match=rf"(?s)(?=.*'{method}')(?=.*'{task}')"):
            gu.unlearn(model, store, req, method, task=task, **small_options(method))
    # the natural mistake: a model trained for the wrong task, with that task's split
    w = setup(wrong[0])
    wrong_model, wrong_store = w.model(), w.store()
    wrong_req = w.delete(wrong_store, w.split)
    with pytest.raises(ValueError, match=rf"(?s)(?=.*'{method}')(?=.*'{wrong[0]}')"):
        gu.unlearn(wrong_model, wrong_store, wrong_req, method, split=w.split, **small_options(method))
    assert store.forgotten == {} and wrong_store.forgotten == {}


class NoReset(nn.Module):
    """A message-passing model holding a bare parameter and no ``reset_parameters``."""

    def __init__(self):
        super().__init__()
        self.conv = GCNConv(F_IN, 8)
        self.scale = nn.Parameter(torch.ones(8))

    def forward(self, x, edge_index):
        return self.conv(x, edge_index) * self.scale


class BareEmbeddings(nn.Module):
    """A recommender holding its user and item rows in a bare parameter, no ``reset_parameters``."""

    def __init__(self, num_nodes: int = 35, dim: int = 8):
        super().__init__()
        self.rows = nn.Parameter(0.1 * torch.randn(num_nodes, dim))

    def forward(self, x, edge_index):
        return self.rows


def _gnndelete_on_mf():
    s = setup("rec")
    store = s.store()
    model = gu.models.MF(20, 15, embedding_dim=8)
    return model, store, s.delete(store, s.split), dict(task="link"), (TypeError, ValueError), "MessagePassing"


def _no_reset_link():
    s = setup("link")
    store = s.store()
    return NoReset(), store, s.delete(store, s.split), dict(split=s.split, task="link"), TypeError, \
        "reset_parameters"


def _no_reset_rec_user_deleted():
    s = setup("rec")
    store = s.store()
    req = store.delete_nodes([int(s.split.train_pos[0, 0])])
    return BareEmbeddings(), store, req, dict(split=s.split, task="rec", reset_deleted=True), TypeError, \
        "reset_parameters"


REQUIREMENTS = {
    "gnndelete": _gnndelete_on_mf,  # needs MessagePassing layers to attach its operators to
    "retrain": _no_reset_link,  # re-initialises the architecture
    "d2dgn": _no_reset_link,  # its destroyer is a re-initialised copy
    "reverse_bpr": _no_reset_rec_user_deleted,  # reset_deleted re-initialises deleted users' rows
}


@pytest.mark.parametrize("method", METHODS)
def test_a_model_the_method_cannot_work_on_is_refused_clearly(method):
    if method not in REQUIREMENTS:
        pytest.skip(f"no model requirement known for {method}")
    model, store, req, kwargs, error, words = REQUIREMENTS[method]()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(error, match=words) as err:
        gu.unlearn(model, store, req, method, **kwargs, **small_options(method))
    assert type(model).__name__ in str(err.value)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])
    assert store.forgotten == {}


# ----------------------------------------------------------------------------------------------- (iv)
@pytest.mark.parametrize("method", METHODS)
def test_options_round_trip_and_are_validated(method):
    m = gu.methods()[method]
    assert is_dataclass(m.options_type) and issubclass(m.options_type, gu.unlearning.Options)
    assert m.options_type.from_dict(m.options).to_dict() == m.options
    assert set(m.options_type.specs()) == set(m.options)
    assert m.options_type.from_dict({}).to_dict() == m.options  # defaults are valid

    with pytest.raises(ValueError, match="no_such_option") as err:
        m.options_type.from_dict({"no_such_option": 1})
    for name in m.options:
        assert name in str(err.value), f"the error for an unknown option does not list {name!r}"
    s = setup(declared_tasks(m.name)[0])
    model, store = s.model(), s.store()
    req = s.delete(store, s.split)
    with pytest.raises(ValueError, match="no_such_option"):
        gu.unlearn(model, store, req, method, split=s.split, no_such_option=1)

    checked = 0
    for name, spec in m.options_type.specs().items():
        if spec.type not in (int, float):
            continue
        bad = []
        if spec.low is not None:
            bad.append(spec.low - 1 if spec.type is int else spec.low - 0.5)
            if spec.low_open:
                bad.append(spec.type(spec.low))
        if spec.high is not None:
            bad.append(spec.high + 1 if spec.type is int else spec.high + 0.5)
        for value in bad:
            value = int(value) if spec.type is int else float(value)
            with pytest.raises(ValueError, match=name):
                m.options_type.from_dict({name: value})
            with pytest.raises(ValueError, match=name):
                gu.unlearn(model, store, req, method, split=s.split, **{name: value})
            checked += 1
    assert store.forgotten == {}
    if any(spec.type in (int, float) and spec.low is not None for spec in m.options_type.specs().values()):
        assert checked


# ----------------------------------------------------------------------------------------------- (v)
@pytest.mark.parametrize("method, task", CASES)
def test_the_method_changes_the_model(method, task):
    r = run(method, task)
    before, after = outputs(r.model, r.store), outputs(r.result.model, r.store)
    if method == "unlink":  # by definition: the graph changes, the weights do not
        assert torch.equal(before, after)
        for k, v in r.model.state_dict().items():
            assert torch.equal(r.result.model.state_dict()[k], v)
        return
    diff = (after - before).abs().max().item()
    assert diff > 1e-6, f"unlearn({method!r}) on {task} left the model's outputs unchanged (max diff {diff:.2e})"
