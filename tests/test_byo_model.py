"""Bring your own model: PyG's models and hand-written MessagePassing stacks go through the store, training,
unlearning, evaluation and checkpoints exactly as the project's own backbones do."""

from __future__ import annotations

import pytest
import torch
import torch_geometric.nn as torch_geometric_nn
from torch import nn
from torch_geometric.data import Data
from torch_geometric.nn import GCNConv, SAGEConv
from torch_geometric.nn.models import GAE, GAT, GCN, GIN, GraphSAGE, LightGCN
from torch_geometric.utils import to_undirected

import graphunlearn as gu

F_IN, HIDDEN, OUT = 8, 16, 8


# ----------------------------------------------------------------------------------------------- helpers
def small_graph(num_nodes: int = 40, seed: int = 0) -> Data:
    """An undirected random graph with features, labels (``y``), ``node_type`` and a symmetric ``edge_type``."""
    g = torch.Generator().manual_seed(seed)
    src = torch.randint(num_nodes, (110,), generator=g)
    dst = torch.randint(num_nodes, (110,), generator=g)
    keep = src != dst
    edge_index = to_undirected(torch.stack([src[keep], dst[keep]]), num_nodes=num_nodes)
    y = torch.randint(3, (num_nodes,), generator=g)
    data = Data(x=torch.randn(num_nodes, F_IN, generator=g), edge_index=edge_index, y=y, num_nodes=num_nodes)
    data.node_type = y.clone()
    data.edge_type = (edge_index[0] + edge_index[1]) % 3  # the same class for both directions of an edge
    return data


class SageStack(nn.Module):
    """A hand-written model: two PyG ``SAGEConv`` layers, ``forward(x, edge_index)``, no ``reset_parameters``
    of its own (its layers have theirs)."""

    def __init__(self, in_channels: int = F_IN, hidden: int = HIDDEN, out: int = OUT):
        super().__init__()
        self.conv1 = SAGEConv(in_channels, hidden)
        self.conv2 = SAGEConv(hidden, out)

    def forward(self, x, edge_index):
        return self.conv2(self.conv1(x, edge_index).relu(), edge_index)


class BareTop(nn.Module):
    """Holds a bare ``nn.Parameter`` on the model itself and has no ``reset_parameters``."""

    def __init__(self):
        super().__init__()
        self.conv = GCNConv(F_IN, OUT)
        self.scale = nn.Parameter(torch.ones(OUT))

    def forward(self, x, edge_index):
        return self.conv(x, edge_index) * self.scale


class Gate(nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(OUT))

    def forward(self, h):
        return h * self.weight


class BareNested(nn.Module):
    """A submodule (``gate``) holds a bare ``nn.Parameter`` and has no ``reset_parameters``."""

    def __init__(self):
        super().__init__()
        self.conv = GCNConv(F_IN, OUT)
        self.gate = Gate()

    def forward(self, x, edge_index):
        return self.gate(self.conv(x, edge_index))


MODELS = {
    "pyg-GCN": lambda: GCN(F_IN, HIDDEN, num_layers=2, out_channels=OUT, dropout=0.5),
    "pyg-GraphSAGE": lambda: GraphSAGE(F_IN, HIDDEN, num_layers=2, out_channels=OUT, dropout=0.5),
    "pyg-GIN": lambda: GIN(F_IN, HIDDEN, num_layers=2, out_channels=OUT, dropout=0.5),
    "pyg-GAT": lambda: GAT(F_IN, HIDDEN, num_layers=2, out_channels=OUT, heads=2, dropout=0.5),
    "handwritten-SAGEConv-stack": SageStack,
    "graphunlearn-GCN": lambda: gu.models.GCN(F_IN, hidden_channels=HIDDEN, out_channels=OUT),
}

REQUESTS = {
    "edges": lambda s: s.delete_edges(s.edge_index[:, :6], layout="edge_index"),
    "nodes": lambda s: s.delete_nodes([1, 2, 3]),
    "edge_class": lambda s: s.delete_edge_class(1),
    "node_class": lambda s: s.delete_node_class(2),
    "node_features": lambda s: s.delete_node_features([4, 5, 6], columns=[0, 3]),
}

LINK_METHODS = [name for name, m in sorted(gu.methods().items()) if "link" in m.tasks]


def few_epochs(method: str, epochs: int = 2) -> dict:
    return {"epochs": epochs} if "epochs" in gu.methods()[method].options else {}


def state_of(model: nn.Module) -> dict:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def assert_state_equal(model: nn.Module, before: dict, what: str) -> None:
    after = model.state_dict()
    assert after.keys() == before.keys(), what
    for k, v in before.items():
        assert torch.equal(after[k], v), f"{what}: {k} changed"


def pyg_gcn() -> GCN:
    return GCN(F_IN, HIDDEN, num_layers=2, out_channels=OUT)


class CountingDecoder:
    """The negative squared distance decoder of the brief, counting its calls."""

    def __init__(self):
        self.calls = 0

    def __call__(self, z, p):
        self.calls += 1
        return (z[p[0]] - z[p[1]]).pow(2).sum(-1).neg()


class DecodingGCN(nn.Module):
    """A user model with its own ``decode(z, pairs)`` (negative squared distance), counting its calls."""

    def __init__(self):
        super().__init__()
        self.encoder = pyg_gcn()
        self.decode_calls = 0

    def forward(self, x, edge_index):
        return self.encoder(x, edge_index)

    def decode(self, z, pairs):
        self.decode_calls += 1
        return (z[pairs[0]] - z[pairs[1]]).pow(2).sum(-1).neg()


# ----------------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def link_data():
    data = gu.datasets.synthetic(num_nodes=60, num_classes=3, num_features=F_IN, avg_degree=6, seed=1)
    return gu.datasets.link_split(data, val_ratio=0.1, test_ratio=0.1, seed=0)


@pytest.fixture(scope="module")
def trained_gcn(link_data):
    """A PyG GCN trained for link prediction for a few epochs (never modified by the tests)."""
    split = link_data
    torch.manual_seed(0)
    model = pyg_gcn()
    gu.train.fit(model, gu.GraphStore(split.train_data), split, task="link", epochs=10, seed=0, progress=False)
    return model


@pytest.fixture(scope="module")
def rec_data():
    data = gu.datasets.load("synthetic-rec", num_users=20, num_items=15, num_groups=3, interactions_per_user=6,
                            seed=0)
    return gu.datasets.user_item_split(data, seed=0)


@pytest.fixture(scope="module")
def trained_lightgcn(rec_data):
    split = rec_data
    torch.manual_seed(0)
    model = LightGCN(split.num_users + split.num_items, embedding_dim=8, num_layers=2)
    result = gu.train.recommendation(model, gu.GraphStore(split.train_data), split, epochs=5, seed=0,
                                     progress=False)
    assert result.epochs_run == 5
    return model


def deleted_link_request(store: gu.GraphStore, split) -> gu.DeletionRequest:
    return store.delete_edges(split.train_pos[:, :4], layout="edge_index")


# ----------------------------------------------------------------------------------------------- (a) live == rebuilt
@pytest.mark.parametrize("kind", list(REQUESTS))
@pytest.mark.parametrize("model_name", list(MODELS))
def test_model_on_live_graph_equals_model_on_rebuilt_graph(model_name, kind):
    torch.manual_seed(0)
    model = MODELS[model_name]().eval()
    data = small_graph()
    store = gu.GraphStore(data)
    REQUESTS[kind](store)
    rebuilt = store.retained()
    with torch.no_grad():
        live = gu.tasks.encode(model, store.live())
        on_rebuilt = model(rebuilt.x, rebuilt.edge_index)
        full = model(data.x, data.edge_index)
    ids = rebuilt.orig_node_id
    assert live.shape == (data.num_nodes, OUT)
    torch.testing.assert_close(live[ids], on_rebuilt, atol=1e-5, rtol=1e-5)
    # the request mattered: otherwise the comparison above would prove nothing
    assert not torch.allclose(live[ids], full[ids], atol=1e-5), f"{kind} did not change any live node's output"


# ----------------------------------------------------------------------------------------------- (b) link methods
@pytest.mark.parametrize("method", LINK_METHODS)
def test_every_link_method_returns_a_model_called_like_the_users(method, link_data, trained_gcn):
    split, model = link_data, trained_gcn
    store = gu.GraphStore(split.train_data)
    req = deleted_link_request(store, split)
    before = state_of(model)
    res = gu.unlearn(model, store, req, method, split=split, seed=0, **few_epochs(method))
    assert_state_equal(model, before, f"unlearn({method}) modified the user's model")
    assert res.model is not model
    assert res.method == method and res.requests == (req.id,)
    assert gu.card_of(res.model).forgotten == (req.id,) and gu.card_of(res.model).task == "link"
    view = store.live()
    with torch.no_grad():
        out = res.model(view.x, view.edge_index)  # exactly how the user calls their own model
        assert out.shape == (store.num_nodes, OUT)
        assert torch.isfinite(out).all()
        torch.testing.assert_close(gu.tasks.encode(res.model, view), out)
    if method == "gnndelete":
        assert isinstance(res.model, gu.models.GNNDelete) and isinstance(res.model.base, GCN)
    else:
        assert isinstance(res.model, GCN)
    metrics = gu.evaluate.link_prediction(res.model, store, split, req, resamples=5)
    assert 0.0 <= metrics["dt_auroc"] <= 1.0 and 0.0 <= metrics["df_auroc"] <= 1.0


def test_gnndelete_on_a_pyg_model_saves_and_reloads(link_data, trained_gcn, tmp_path):
    split = link_data
    store = gu.GraphStore(split.train_data)
    req = deleted_link_request(store, split)
    res = gu.unlearn(trained_gcn, store, req, "gnndelete", split=split, epochs=3)
    path = tmp_path / "gnndelete.pt"
    gu.save_model(path, res.model)
    loaded = gu.load_model(path, model=pyg_gcn())
    assert isinstance(loaded, gu.models.GNNDelete) and isinstance(loaded.base, GCN)
    card = gu.card_of(loaded)
    assert card.method == "gnndelete" and card.forgotten == (req.id,) and card.wrapper["kind"] == "gnndelete"
    view = store.live()
    with torch.no_grad():
        assert torch.equal(loaded(view.x, view.edge_index), res.model(view.x, view.edge_index))
        # the operators matter: the reloaded model is not just the base model
        assert not torch.equal(loaded(view.x, view.edge_index), trained_gcn(view.x, view.edge_index))


# ----------------------------------------------------------------------------------------------- (c) node task
def test_pyg_graphsage_node_classification_and_d2dgn():
    data = gu.datasets.synthetic(num_nodes=60, num_classes=3, num_features=F_IN, avg_degree=6, seed=2)
    split = gu.datasets.node_split(data, seed=0)
    store = gu.GraphStore(data)
    torch.manual_seed(0)
    model = GraphSAGE(F_IN, HIDDEN, num_layers=2, out_channels=3)
    result = gu.train.fit(model, store, split, task="node", epochs=20, seed=0, progress=False)
    assert result.best_val is not None and result.best_val > 0.5
    assert gu.card_of(model).task == "node"
    req = store.delete_nodes(split.train_idx[:3])
    before = state_of(model)
    res = gu.unlearn(model, store, req, "d2dgn", split=split, epochs=3)
    assert_state_equal(model, before, "unlearn(d2dgn) modified the user's GraphSAGE")
    assert isinstance(res.model, GraphSAGE) and res.card.task == "node"
    view = store.live()
    with torch.no_grad():
        out = res.model(view.x, view.edge_index)
        assert out.shape == (data.num_nodes, 3)
        assert (out - model(view.x, view.edge_index)).abs().max() > 1e-6
    metrics = gu.evaluate.node_classification(res.model, store, split, req, original=model)
    assert 0.0 <= metrics["test_acc"] <= 1.0 and "acc_deleted" in metrics and "mia_auroc" in metrics


# ----------------------------------------------------------------------------------------------- (d) PyG LightGCN
@pytest.mark.parametrize("method", ["reverse_bpr", "retrain"])
def test_pyg_lightgcn_unlearns_interactions(method, rec_data, trained_lightgcn):
    split, model = rec_data, trained_lightgcn
    assert gu.card_of(model).task == "rec"
    store = gu.GraphStore(split.train_data)
    req = store.delete_edges(split.train_pos[:, :4], layout="edge_index")
    before = state_of(model)
    res = gu.unlearn(model, store, req, method, split=split, epochs=2)
    assert_state_equal(model, before, f"unlearn({method}) modified the user's LightGCN")
    assert isinstance(res.model, LightGCN)
    view = store.live()
    with torch.no_grad():
        z = res.model.get_embedding(view.edge_index)
        assert z.shape == (split.num_users + split.num_items, 8)
        torch.testing.assert_close(gu.tasks.encode(res.model, view), z)
        assert (z - model.get_embedding(view.edge_index)).abs().max() > 1e-6
    metrics = gu.evaluate.recommendation(res.model, store, split, req)
    assert 0.0 <= metrics["recall@20"] <= 1.0


def test_reverse_bpr_reset_deleted_gives_a_deleted_user_a_fresh_row(rec_data, trained_lightgcn):
    split, model = rec_data, trained_lightgcn
    user = int(split.train_pos[0, 0])
    from graphunlearn.unlearning.algorithms.reverse_bpr import RESET_SEED_OFFSET

    fresh = gu.models.fresh_copy(model, seed=RESET_SEED_OFFSET).embedding.weight.detach()  # seed 0 + the offset
    original = model.embedding.weight.detach()
    rows = {}
    for reset in (True, False):
        store = gu.GraphStore(split.train_data)
        req = store.delete_nodes([user])
        # a vanishing learning rate: what changes the rows is the reset, not the optimisation
        res = gu.unlearn(model, store, req, "reverse_bpr", split=split, seed=0, epochs=1, lr=1e-9,
                         reset_deleted=reset)
        rows[reset] = res.model.embedding.weight.detach()
        assert res.info["reset_rows"] == (1 if reset else 0)
    others = torch.arange(original.size(0)) != user
    assert (rows[True][user] - original[user]).abs().max() > 1e-3, "the deleted user's row was not changed"
    torch.testing.assert_close(rows[True][user], fresh[user], atol=1e-6, rtol=0)
    torch.testing.assert_close(rows[True][others], original[others], atol=1e-6, rtol=0)
    torch.testing.assert_close(rows[False][user], original[user], atol=1e-6, rtol=0)


@pytest.fixture(scope="module")
def square_mf():
    """MF with as many users as items: the two embedding tables have the same number of rows."""
    data = gu.datasets.load("synthetic-rec", num_users=20, num_items=20, num_groups=3, interactions_per_user=5,
                            seed=0)
    split = gu.datasets.user_item_split(data, seed=0)
    torch.manual_seed(0)
    model = gu.models.MF(20, 20, embedding_dim=8)
    gu.train.recommendation(model, gu.GraphStore(split.train_data), split, epochs=2, seed=0, progress=False)
    return split, model


def test_reverse_bpr_resets_a_deleted_user_when_users_and_items_are_as_many(square_mf):
    split, model = square_mf
    user = int(split.train_pos[0, 0])
    store = gu.GraphStore(split.train_data)
    req = store.delete_nodes([user])
    res = gu.unlearn(model, store, req, "reverse_bpr", split=split, seed=0, epochs=1, lr=1e-9, reset_deleted=True)
    from graphunlearn.unlearning.algorithms.reverse_bpr import RESET_SEED_OFFSET

    fresh = gu.models.fresh_copy(model, seed=RESET_SEED_OFFSET)  # unlearn's seed 0 + the offset
    torch.testing.assert_close(res.model.users.weight[user], fresh.users.weight[user], atol=1e-6, rtol=0)


def test_reverse_bpr_deleting_an_item_leaves_users_alone_when_users_and_items_are_as_many(square_mf):
    split, model = square_mf
    item = 5
    store = gu.GraphStore(split.train_data)
    req = store.delete_nodes([split.num_users + item])
    res = gu.unlearn(model, store, req, "reverse_bpr", split=split, seed=0, epochs=1, lr=1e-9, reset_deleted=True)
    torch.testing.assert_close(res.model.users.weight.detach(), model.users.weight.detach(), atol=1e-6, rtol=0)


# ----------------------------------------------------------------------------------------------- (e) train_fn
def test_retrain_calls_the_users_train_fn_once_on_the_retained_graph(link_data, trained_gcn):
    split, model = link_data, trained_gcn
    store = gu.GraphStore(split.train_data)
    req = deleted_link_request(store, split)
    calls = []
    returned = pyg_gcn()

    def train_fn(m, data, s):
        calls.append((m, data, s))
        return returned

    res = gu.unlearn(model, store, req, "retrain", split=split, train_fn=train_fn)
    assert len(calls) == 1
    given, data, given_split = calls[0]
    assert given_split.train_pos.size(1) == store.num_live_edges  # the live split: deleted edges gone
    assert torch.equal(given_split.test_pos, split.test_pos)
    assert isinstance(given, GCN) and given is not model
    assert any(not torch.equal(a, b) for a, b in zip(given.state_dict().values(), model.state_dict().values())), \
        "train_fn was not given a freshly initialised copy"
    assert isinstance(data, Data) and data.num_nodes == store.num_nodes
    deleted = store.edge_index[:, req.edge_ids]
    keys = set((data.edge_index[0] * store.num_nodes + data.edge_index[1]).tolist())
    for u, v in deleted.t().tolist():
        assert u * store.num_nodes + v not in keys and v * store.num_nodes + u not in keys, \
            f"deleted edge ({u}, {v}) reached train_fn"
    assert data.edge_index.size(1) == 2 * store.num_live_edges
    torch.testing.assert_close(data.x, store.live().x)
    assert res.model is returned and res.info.get("train_fn", "").endswith("<locals>.train_fn")
    assert gu.card_of(returned).forgotten == (req.id,)


def test_a_train_fn_that_edits_its_data_in_place_leaves_the_store_alone(link_data, trained_gcn):
    split = link_data
    store = gu.GraphStore(split.train_data)
    req = deleted_link_request(store, split)
    x_before = store.live().x.clone()

    def train_fn(m, data, s):
        data.x.mul_(0.0)  # e.g. a user's in-place feature normalisation
        return m

    gu.unlearn(trained_gcn, store, req, "retrain", split=split, train_fn=train_fn)
    torch.testing.assert_close(store.live().x, x_before)


# ------------------------------------------------------------------------------------- (f) no reset_parameters
@pytest.mark.parametrize("method", ["retrain", "d2dgn"])
@pytest.mark.parametrize("factory, named", [(BareTop, "<the model itself>"), (BareNested, "'gate'")],
                         ids=["parameter-on-model", "parameter-on-submodule"])
def test_a_model_without_reset_parameters_is_refused_and_nothing_changes(method, factory, named, link_data):
    split = link_data
    store = gu.GraphStore(split.train_data)
    torch.manual_seed(0)
    model = factory()
    gu.train.fit(model, store, split, task="link", epochs=2, progress=False)
    card = gu.card_of(model)
    req = deleted_link_request(store, split)
    before = state_of(model)
    live_edges, requests = store.num_live_edges, len(store.requests)
    with pytest.raises(TypeError, match="reset_parameters") as err:
        gu.unlearn(model, store, req, method, split=split, epochs=2)
    assert named in str(err.value) and type(model).__name__ in str(err.value)
    assert_state_equal(model, before, f"a refused unlearn({method}) modified the model")
    assert gu.card_of(model) == card
    assert store.forgotten == {} and store.num_live_edges == live_edges and len(store.requests) == requests


# ----------------------------------------------------------------------------------------------- (g) decoders
def test_a_task_decoder_is_used_by_fit_unlearn_and_evaluate(link_data):
    split = link_data
    store = gu.GraphStore(split.train_data)
    dec = CountingDecoder()
    task = gu.tasks.LinkPrediction(decoder=dec)
    torch.manual_seed(0)
    with_dec = pyg_gcn()
    plain = pyg_gcn()
    plain.load_state_dict(with_dec.state_dict())
    gu.train.fit(with_dec, store, split, task=task, epochs=5, seed=0, progress=False)
    assert dec.calls > 0, "fit did not call the task's decoder"
    gu.train.fit(plain, store, split, task="link", epochs=5, seed=0, progress=False)
    assert any(not torch.equal(a, b) for a, b in zip(with_dec.state_dict().values(), plain.state_dict().values())), \
        "training with the distance decoder gave the same weights as the dot product"

    view = store.live()
    with torch.no_grad():
        z = gu.tasks.encode(with_dec, view)
    pairs = split.test_pos
    torch.testing.assert_close(task.decode(with_dec, z, pairs), (z[pairs[0]] - z[pairs[1]]).pow(2).sum(-1).neg())
    assert not torch.allclose(task.decode(with_dec, z, pairs), gu.tasks.dot_product(z, pairs))

    req = deleted_link_request(store, split)
    calls = dec.calls
    ours = gu.evaluate.evaluate(with_dec, store, split, req, task=task, resamples=5)
    assert dec.calls > calls, "evaluate did not call the task's decoder"
    dot = gu.evaluate.evaluate(with_dec, store, split, req, task="link", resamples=5)
    assert dict(ours) != dict(dot)

    for method in ("gradient_ascent", "d2dgn", "finetune"):
        calls = dec.calls
        res = gu.unlearn(with_dec, store, req, method, split=split, task=task, epochs=2)
        assert dec.calls > calls, f"unlearn({method}, task=...) did not call the task's decoder"
        assert res.card.task == "link"


def test_a_models_own_decode_is_used_by_default(link_data):
    split = link_data
    store = gu.GraphStore(split.train_data)
    torch.manual_seed(0)
    model = DecodingGCN()
    gu.train.fit(model, store, split, task="link", epochs=5, seed=0, progress=False)
    assert model.decode_calls > 0, "fit did not use the model's decode"

    req = deleted_link_request(store, split)
    calls = model.decode_calls
    gu.evaluate.link_prediction(model, store, split, req, resamples=5)
    assert model.decode_calls > calls, "evaluate did not use the model's decode"

    res = gu.unlearn(model, store, req, "gradient_ascent", split=split, epochs=2)
    assert res.model.decode_calls > 0  # its copy counted the calls made during unlearning
    calls = res.model.decode_calls
    gu.evaluate.link_prediction(res.model, store, split, req, resamples=5)
    assert res.model.decode_calls > calls

    wrapped = gu.unlearn(model, store, req, "gnndelete", split=split, epochs=2).model
    base_calls = wrapped.base.decode_calls
    z = gu.tasks.encode(wrapped, store.live())
    out = gu.tasks.LINK.decode(wrapped, z, split.test_pos)
    assert wrapped.base.decode_calls == base_calls + 1, "GNNDelete did not pass decode on to the model"
    torch.testing.assert_close(out, (z[split.test_pos[0]] - z[split.test_pos[1]]).pow(2).sum(-1).neg())

    # a task decoder takes precedence over the model's own
    dec = CountingDecoder()
    calls = model.decode_calls
    gu.tasks.LinkPrediction(decoder=dec).decode(model, z, split.test_pos)
    assert dec.calls == 1 and model.decode_calls == calls


def test_pyg_gae_decode_is_read_as_logits(link_data):
    split = link_data
    store = gu.GraphStore(split.train_data)
    torch.manual_seed(0)
    gae = GAE(pyg_gcn()).eval()
    with torch.no_grad():
        z = gu.tasks.encode(gae, store.live())
        logits = gu.tasks.LINK.decode(gae, z, split.test_pos)
    torch.testing.assert_close(logits, gu.tasks.dot_product(z, split.test_pos))


# ----------------------------------------------------------------------------------------------- review fixes
class MyConv(torch_geometric_nn.MessagePassing):
    """A hand-written layer that inherits MessagePassing.reset_parameters (which resets only its aggregation)."""

    def __init__(self, i: int, o: int):
        super().__init__(aggr="mean")
        self.lin = nn.Linear(i, o)

    def forward(self, x, edge_index):
        return self.propagate(edge_index, x=self.lin(x))


class MyStack(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1, self.c2 = MyConv(F_IN, HIDDEN), MyConv(HIDDEN, OUT)

    def forward(self, x, edge_index):
        return self.c2(self.c1(x, edge_index).relu(), edge_index)


def test_a_hand_written_message_passing_layer_is_really_re_initialised():
    model = MyStack()
    fresh = gu.models.fresh_copy(model, seed=3)
    for name, p in model.named_parameters():
        assert not torch.equal(p, dict(fresh.named_parameters())[name]), f"{name} kept the trained weights"


def test_a_view_taken_before_a_request_loses_the_deleted_edges(link_data):
    store = gu.GraphStore(link_data.train_data)
    view = store.live()
    edge_index = view.edge_index
    store.delete_nodes([3])
    assert not bool((edge_index == 3).any()) and store.live().edge_index is edge_index
    rebuilt = store.retained()
    model = pyg_gcn().eval()
    with torch.no_grad():
        live = model(view.x, view.edge_index)[rebuilt.orig_node_id]
        torch.testing.assert_close(live, model(rebuilt.x, rebuilt.edge_index))


def test_gnndelete_keeps_the_wrapped_model_frozen_in_eval_mode(link_data):
    split = link_data
    store = gu.GraphStore(split.train_data)
    torch.manual_seed(0)
    model = GCN(F_IN, HIDDEN, num_layers=2, out_channels=OUT, norm="batch_norm", dropout=0.5)
    gu.train.fit(model, store, split, task="link", epochs=3, progress=False)
    stats = {k: v.clone() for k, v in model.state_dict().items() if "running" in k}
    res = gu.unlearn(model, store, deleted_link_request(store, split), "gnndelete", split=split, epochs=2)
    for k, v in stats.items():
        assert torch.equal(res.model.base.state_dict()[k], v), f"batch-norm statistic {k} moved"
    res.model.train()
    assert not res.model.base.training and res.model.operators.training


def test_gnndelete_around_gae_scores_logits(link_data):
    split = link_data
    store = gu.GraphStore(split.train_data)
    torch.manual_seed(0)
    gae = GAE(pyg_gcn())
    gu.train.fit(gae, store, split, task="link", epochs=3, progress=False)
    res = gu.unlearn(gae, store, deleted_link_request(store, split), "gnndelete", split=split, epochs=1)
    with torch.no_grad():
        z = gu.tasks.encode(res.model, store.live())
        torch.testing.assert_close(gu.tasks.LINK.decode(res.model, z, split.test_pos),
                                   gu.tasks.dot_product(z, split.test_pos))


def test_train_fn_sees_no_deleted_node_label_or_training_node():
    data = small_graph()
    split = gu.datasets.node_split(data, seed=0)
    store = gu.GraphStore(data)
    torch.manual_seed(0)
    model = GraphSAGE(F_IN, HIDDEN, num_layers=2, out_channels=3)
    gu.train.fit(model, store, split, task="node", epochs=3, progress=False)
    gone = split.train_idx[:3]
    req = store.delete_nodes(gone)
    seen = {}

    def train_fn(m, d, s):
        seen.update(y=d.y.clone(), mask=d.node_mask.clone(), train=s.train_idx.clone())
        return m

    gu.unlearn(model, store, req, "retrain", split=split, train_fn=train_fn)
    assert bool((seen["y"][gone] == -1).all()) and not bool(seen["mask"][gone].any())
    assert not bool(torch.isin(seen["train"], gone).any())
    with pytest.raises(ValueError, match="with train_fn= your function decides the budget"):
        gu.unlearn(model, store, req, "retrain", split=split, train_fn=train_fn, epochs=3)
    with pytest.raises(TypeError, match="train_fn must return the trained model"):
        gu.unlearn(model, store, req, "retrain", split=split, train_fn=lambda m, d, s: 0.5)


def test_a_model_trained_with_a_task_decoder_is_not_silently_read_with_the_dot_product(link_data):
    split = link_data
    store = gu.GraphStore(split.train_data)
    task = gu.tasks.LinkPrediction(decoder=CountingDecoder())
    model = pyg_gcn()
    gu.train.fit(model, store, split, task=task, epochs=2, progress=False)
    assert gu.card_of(model).decoder == "CountingDecoder"
    req = deleted_link_request(store, split)
    with pytest.raises(ValueError, match="trained with the task's own decoder or head"):
        gu.unlearn(model, store, req, "d2dgn", split=split)
    assert gu.unlearn(model, store, req, "d2dgn", split=split, task=task, epochs=1).card.decoder == "CountingDecoder"


def test_checkpoints_from_before_model_cards_still_load(tmp_path):
    from graphunlearn.io import atomic_save

    model = gu.models.GCN(F_IN, hidden_channels=8, out_channels=4)
    atomic_save({"class": "GNN", "config": dict(model.config), "recipe": {"task": "link", "epochs": 3},
                 "forgotten": [1], "tag": "t", "state_dict": model.state_dict()}, tmp_path / "old.pt")
    loaded = gu.load_model(tmp_path / "old.pt")
    card = gu.card_of(loaded)
    assert card.task == "link" and card.recipe == {"epochs": 3} and card.forgotten == (1,) and card.tag == "t"
    for k, v in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v)


def test_gnndelete_operators_live_on_the_models_device():
    """No GPU here: a model on the meta device stands in for one on CUDA."""
    base = pyg_gcn().to("meta")
    wrapped = gu.models.GNNDelete(base, None, 40, [HIDDEN, OUT])
    assert {p.device.type for p in wrapped.operators.parameters()} == {"meta"}
    assert wrapped.masks.device.type == "meta"
