"""No host synchronisation inside a step: the trainer's and every method's inner loop never reads a value
back from the device (``.item()``, ``bool(tensor)``, ``.tolist()``, ``int(tensor)``) or builds a tensor whose
shape depends on data (boolean-mask indexing, ``nonzero``, ``unique``, ``masked_select``). On a GPU each of
those stalls the step until the device catches up; on this CPU-only machine they are counted instead,
between the start of a step's loss and the end of its backward (``graphunlearn.train.loop.IN_STEP``).

The torch backend's CPU-only finiteness probe (``kernels.masked_spmm._host_finite``) is switched off here, so
the aggregation takes the path it takes on a device (the gather reference), which must not synchronise
either. ``bincount`` and ``repeat_interleave`` without ``output_size`` read sizes back from the device, so
they count too.
"""

from __future__ import annotations

import collections
import contextlib
import importlib

import pytest
import torch

import graphunlearn as gu
from graphunlearn.train import loop

SYNCS = collections.Counter()


def _counting(name, fn):
    def wrapper(*args, **kwargs):
        if loop.IN_STEP:
            SYNCS[name] += 1
        return fn(*args, **kwargs)
    return wrapper


def _bool_index(index) -> bool:
    items = index if isinstance(index, tuple) else (index,)
    return any(isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in items)


@contextlib.contextmanager
def count_syncs(monkeypatch):
    SYNCS.clear()
    for name in ("item", "tolist", "__bool__", "__int__", "__float__", "__index__", "nonzero", "unique",
                 "masked_select"):
        monkeypatch.setattr(torch.Tensor, name, _counting(f"Tensor.{name}", getattr(torch.Tensor, name)))
    for name in ("nonzero", "unique", "masked_select", "bincount"):
        monkeypatch.setattr(torch, name, _counting(f"torch.{name}", getattr(torch, name)))
    repeat = torch.repeat_interleave

    def repeat_interleave(input, repeats=None, *args, output_size=None, **kwargs):
        if loop.IN_STEP and isinstance(repeats, torch.Tensor) and output_size is None:
            SYNCS["repeat_interleave without output_size"] += 1
        return repeat(input, repeats, *args, output_size=output_size, **kwargs)

    monkeypatch.setattr(torch, "repeat_interleave", repeat_interleave)
    getitem = torch.Tensor.__getitem__

    def indexed(self, index):
        if loop.IN_STEP and _bool_index(index):
            SYNCS["boolean-mask indexing"] += 1
        return getitem(self, index)

    monkeypatch.setattr(torch.Tensor, "__getitem__", indexed)
    spmm_module = importlib.import_module("graphunlearn.kernels.masked_spmm")  # the module, not the function
    monkeypatch.setattr(spmm_module, "_host_finite", lambda *tensors: False)  # the device path
    yield SYNCS


@pytest.fixture(scope="module")
def link():
    data = gu.datasets.synthetic(num_nodes=60, num_classes=3, num_features=8, avg_degree=6, seed=3)
    split = gu.datasets.link_split(data, seed=0)
    torch.manual_seed(0)
    model = gu.models.GCN(8, hidden_channels=8, out_channels=8)
    gu.train.link_prediction(model, gu.GraphStore(split.train_data), split, epochs=4, progress=False)
    return data, split, model


@pytest.fixture(scope="module")
def node():
    data = gu.datasets.synthetic(num_nodes=60, num_classes=3, num_features=8, avg_degree=6, seed=3)
    split = gu.datasets.node_split(data, seed=0)
    torch.manual_seed(0)
    model = gu.models.GCN(8, hidden_channels=8, out_channels=3)
    gu.train.node_classification(model, gu.GraphStore(data), split, epochs=4, progress=False)
    return data, split, model


@pytest.fixture(scope="module")
def rec():
    data = gu.datasets.load("synthetic-rec", num_users=20, num_items=15, interactions_per_user=5)
    split = gu.datasets.user_item_split(data, seed=0)
    torch.manual_seed(0)
    model = gu.models.LightGCN(split.num_users, split.num_items, embedding_dim=8)
    gu.train.recommendation(model, gu.GraphStore(split.train_data), split, epochs=2, batch_size=16, progress=False)
    return data, split, model


def test_training_steps_do_not_synchronise(monkeypatch, link, node, rec):
    with count_syncs(monkeypatch) as syncs:
        _, split, _ = link
        gu.train.link_prediction(gu.models.GCN(8, hidden_channels=8, out_channels=8), gu.GraphStore(split.train_data),
                                 split, epochs=3, progress=False)
        data, split, _ = node
        gu.train.node_classification(gu.models.GCN(8, hidden_channels=8, out_channels=3), gu.GraphStore(data), split,
                                     epochs=3, progress=False)
        _, split, _ = rec
        gu.train.recommendation(gu.models.LightGCN(split.num_users, split.num_items, embedding_dim=8),
                                gu.GraphStore(split.train_data), split, epochs=2, batch_size=16, progress=False)
    assert not syncs, f"host synchronisations inside training steps: {dict(syncs)}"


@pytest.mark.parametrize("method, task", [("finetune", "link"), ("gradient_ascent", "link"), ("d2dgn", "link"),
                                          ("gnndelete", "link"), ("retrain", "link"), ("d2dgn", "node"),
                                          ("finetune", "node"), ("reverse_bpr", "rec")])
def test_method_steps_do_not_synchronise(monkeypatch, link, node, rec, method, task):
    data, split, model = {"link": link, "node": node, "rec": rec}[task]
    store = gu.GraphStore(data if task == "node" else split.train_data)
    if task == "node":
        req = store.delete_nodes(split.train_idx[:3])
    else:
        req = store.delete_edges(store.live_edge_ids()[:4])
    options = {"epochs": 3}
    with count_syncs(monkeypatch) as syncs:
        res = gu.unlearn(model, store, req, method, split=split, **options)
    assert res.info.get("epochs", 0) > 0
    assert not syncs, f"{method} ({task}): host synchronisations inside its steps: {dict(syncs)}"


def test_the_counter_sees_a_synchronising_step(monkeypatch, link):
    """The check itself works: a step that reads its loss back is caught."""
    _, split, model = link
    store = gu.GraphStore(split.train_data)
    twin = gu.models.fresh_copy(model, seed=0).requires_grad_(True)
    view = store.live()

    def reads_back(epoch, batch):
        loss = twin(view.x, view.edge_index).pow(2).mean()
        float(loss.item())  # the kind of line this test exists to keep out
        return loss

    with count_syncs(monkeypatch) as syncs:
        loop.optimise(twin, reads_back, epochs=2, lr=1e-3)
    assert syncs["Tensor.item"] == 2
