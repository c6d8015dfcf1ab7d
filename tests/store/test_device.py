"""The store's device: every tensor it holds or hands out lies on ``store.device``; files are device-independent.

Without a GPU the missing-device check runs the store under ``torch.set_default_device("meta")`` with its data on
the CPU: a tensor created without an explicit device lands on the meta device, and then either fails when it
meets a CPU tensor or shows up, on the wrong device, in what the store holds or returns (both are checked).
"""

from __future__ import annotations

import dataclasses
import io
import sqlite3

import pytest
import torch
from torch import Tensor
from torch_geometric.data import Data

import graphunlearn as gu
from graphunlearn.graph import CSR, PairIndex, build_csr, expand_ranges, k_hop_layers, undirected_unique
from graphunlearn.requests import DeletionRequest, LiveGraph
from graphunlearn.store import CACHE_ATTRS, STATE_FILE, journal_path

from .helpers import graph_a, graph_b


# ----------------------------------------------------------------------------------------------- helpers
def tensors_of(obj, seen=None) -> list[Tensor]:
    """Every tensor reachable from ``obj`` through containers, dataclasses, ``Data`` and plain objects."""
    seen = {} if seen is None else seen
    if id(obj) in seen:
        return []
    seen[id(obj)] = obj  # kept alive, so that the id of a temporary (Data.to_dict()) is never reused
    if isinstance(obj, Tensor):
        return [obj]
    if isinstance(obj, Data):
        return tensors_of(obj.to_dict(), seen)
    if isinstance(obj, dict):
        return [t for v in obj.values() for t in tensors_of(v, seen)]
    if isinstance(obj, (list, tuple)):
        return [t for v in obj for t in tensors_of(v, seen)]
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return [t for f in dataclasses.fields(obj) for t in tensors_of(getattr(obj, f.name), seen)]
    if isinstance(obj, PairIndex):
        return tensors_of(vars(obj), seen)
    return []


def store_tensors(s: gu.GraphStore) -> list[Tensor]:
    held = [s.edge_index, s.x, s.y, s.node_type, s.edge_type, s.edge_weight, s.node_attrs, s.edge_attrs,
            s.node_mask, s.edge_mask, s.feature_mask, s.node_deleted_by, s.edge_deleted_by, s.requests]
    held += [getattr(s, name) for name in CACHE_ATTRS]
    return tensors_of(held)


def assert_on(device: str, *objs) -> None:
    for obj in objs:
        bad = [(tuple(t.shape), str(t.device)) for t in tensors_of(obj) if t.device.type != device]
        assert not bad, f"tensors off {device}: {bad[:5]}"


def assert_store_on(s: gu.GraphStore, device: str) -> None:
    assert s.device.type == device
    bad = [(tuple(t.shape), str(t.device)) for t in store_tensors(s) if t.device.type != device]
    assert not bad, f"the store holds tensors off {device}: {bad[:5]}"


def state_of(s: gu.GraphStore) -> dict:
    """What a store is, for comparisons: masks, arrays, deleted_by, live features and request ids."""
    out = {k: getattr(s, k) for k in ("edge_index", "x", "y", "edge_type", "edge_weight", "node_mask", "edge_mask",
                                      "feature_mask", "node_deleted_by", "edge_deleted_by")}
    out["attrs"] = (dict(s.node_attrs), dict(s.edge_attrs))
    out["live_x"] = s.live_x()
    out["requests"] = [(r.id, r.kind, r.redacted, _payload(r) if not r.redacted else None) for r in s.requests]
    return out


def _payload(r) -> dict:
    r.hops  # noqa: B018 - the neighbourhood is computed when first read; compare it computed on both sides
    return r.to_payload()


def assert_same(a, b, where="") -> None:
    if isinstance(a, Tensor):
        assert isinstance(b, Tensor) and a.dtype == b.dtype and a.shape == b.shape, where
        assert torch.equal(a.cpu(), b.cpu()), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            assert_same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


def run_sequence(s: gu.GraphStore, device: str) -> list:
    """Every view and every request kind; returns what the store handed out (all on ``device``)."""
    out = [s.live(), s.live_data(), s.retained(), s.live_edge_ids(), s.live_node_ids(), s.live_edge_index()]
    u, v = s.edge_index[:, 0].tolist()
    out.append(s.edge_ids([(u, v)], layout="pairs"))
    reqs = [s.delete_edges([(u, v)], layout="pairs")]
    reqs.append(s.delete_nodes([4]))
    reqs.append(s.delete_edge_class(1))
    reqs.append(s.delete_node_class(2))
    reqs.append(s.delete_node_features([2], columns=[0, 2]))
    reqs.append(s.delete_node_features(torch.tensor([1], device="cpu")))
    out += reqs
    out += [s.affected_subgraph(r) for r in reqs]
    out += [r.affected_nodes() for r in reqs] + [r.affected_edges() for r in reqs]
    out += [s.forget_set(), s.forget_set(reqs[:2]), s.live(), s.live_data(), s.retained()]
    out += [s.live_edge_ids(), s.live_node_ids()]
    assert_on(device, out)
    assert_store_on(s, device)
    return out


STORES = [pytest.param(graph_a, None, id="undirected"), pytest.param(graph_b, False, id="directed")]


# ----------------------------------------------------------------------------------------------- (a) default
@pytest.mark.parametrize("make, undirected", STORES)
def test_explicit_cpu_equals_default(make, undirected):
    a = gu.GraphStore(make(), undirected=undirected)
    b = gu.GraphStore(make(), undirected=undirected, device="cpu")
    assert a.device == b.device == torch.device("cpu")
    run_sequence(a, "cpu")
    run_sequence(b, "cpu")
    sa, sb = state_of(a), state_of(b)
    assert_same(sa, sb)
    assert_same(a.live_edge_index(), b.live_edge_index())


def test_default_device_is_that_of_edge_index():
    data = graph_a()
    s = gu.GraphStore(data)
    assert s.device == data.edge_index.device
    assert s.x is data.x  # a tensor already on the store's device is kept, not copied


# ----------------------------------------------------------------------------------------------- (b) no device missing
def scenario(data: Data, undirected: bool | None, folder) -> list:
    """Construction, every view, every request kind, save, journaled requests, reopen (replay), checkpoint,
    compaction of a saved and of an in-memory store; returns everything handed out and the stores' tensors."""
    s = gu.GraphStore(data, undirected=undirected, device="cpu")
    out = run_sequence(s, "cpu")
    assert out[-2].numel() == s.num_live_edges == 1 and out[-1].numel() == s.num_live_nodes == 3
    out += store_tensors(s)
    s.save(folder)
    s.live()
    extra = s.delete_edges(s.live_edge_ids()[:1])
    out += [extra, s.affected_subgraph(extra)]
    s.close()
    t = gu.GraphStore.open(folder, device="cpu")
    assert_same(state_of(s), state_of(t))
    t.checkpoint()
    out += [t.compact(), t.live(), t.retained(), t.live_edge_ids(), t.live_node_ids(), *store_tensors(t)]
    t.close()
    r = gu.GraphStore.open(folder, read_only=True)
    out += store_tensors(r)
    r.close()
    m = gu.GraphStore(data, undirected=undirected, device="cpu")
    m.delete_nodes(0)  # a single int
    m.delete_node_features([2])
    out += [m.compact(), m.live(), m.retained(), m.live_data(), *store_tensors(m)]
    assert m.to("cpu") is m
    return out


def unweighted_a() -> Data:
    data = graph_a()
    del data.edge_weight
    return data


SCENARIOS = STORES + [pytest.param(unweighted_a, None, id="unweighted")]


@pytest.mark.parametrize("make, undirected", SCENARIOS)
def test_every_tensor_is_created_on_the_store_device(make, undirected, tmp_path):
    """Under a meta default device, a ``torch.zeros/ones/full/arange/empty/tensor`` call in the store (or in
    ``graphunlearn.graph``) that does not name its device makes a meta tensor. Mixed with the store's CPU
    tensors it raises; one that slips through shows up, off the CPU, in what the store holds or returns; and
    one written into a CPU tensor (``cpu[idx] = meta`` is silently a no-op) leaves values that differ from the
    same scenario run with the ordinary default device. All three are checked. Construction (PyG's
    undirected detection included), SQLite and ``torch.save``/``torch.load`` run under the meta default too:
    nothing had to be left outside the check."""
    data = make()  # the user's data is built on the CPU, before the default device changes
    expected = scenario(data, undirected, tmp_path / "reference")
    torch.set_default_device("meta")
    try:
        got = scenario(data, undirected, tmp_path / "meta")
    finally:
        torch.set_default_device(None)
    assert torch.empty(0).device.type == "cpu"
    assert_on("cpu", got)
    a, b = tensors_of(expected), tensors_of(got)
    assert len(a) == len(b)
    for k, (x, y) in enumerate(zip(a, b)):
        assert x.dtype == y.dtype and x.shape == y.shape and torch.equal(x, y), f"tensor {k} differs: {x} {y}"


def test_graph_helpers_create_on_their_inputs_device():
    torch.set_default_device("meta")
    try:
        ei = torch.tensor([[0, 1, 2, 2], [1, 0, 3, 1]], device="cpu")
        eid = torch.arange(4, device="cpu")
        csr = build_csr(ei[1], ei[0], eid, 4)
        starts, counts = torch.tensor([0, 5], device="cpu"), torch.tensor([2, 0], device="cpu")
        out = [csr, expand_ranges(starts, counts), expand_ranges(starts, torch.zeros(2, dtype=torch.long,
                                                                                         device="cpu"))]
        out += k_hop_layers(csr.rowptr, csr.col, None, torch.tensor([0], device="cpu"), 2, 4)
        pairs = PairIndex(ei[0], ei[1], 4)
        out += [pairs, *pairs.lookup(torch.tensor([0, 2], device="cpu"), torch.tensor([1, 0], device="cpu"))]
        out += list(undirected_unique(ei, 4))
        assert_on("cpu", out)
        assert isinstance(csr, CSR)
    finally:
        torch.set_default_device(None)


# ----------------------------------------------------------------------------------------------- (c) to / open / files
@pytest.mark.parametrize("make, undirected", STORES)
def test_to_round_trip_keeps_everything(make, undirected):
    s = gu.GraphStore(make(), undirected=undirected)
    s.live()
    s.delete_edges([0])
    s.delete_node_features([2], columns=[1])
    before = state_of(s)
    view_ei = s.live().edge_index.clone()
    assert s.to("cpu") is s and s.to(torch.device("cpu")) is s
    assert_same(before, state_of(s))
    assert torch.equal(s.live().edge_index, view_ei)
    s.delete_nodes([4])
    assert_store_on(s, "cpu")


def test_to_another_device_moves_everything_and_drops_the_caches():
    """Moving onto a device where nothing can run (meta) still has to move every tensor the store holds."""
    s = gu.GraphStore(graph_a())
    view = s.live()
    s.delete_edges([0])
    s.live_edge_ids()
    assert s.to("meta") is s
    assert_store_on(s, "meta")
    assert all(getattr(s, name) is None for name in CACHE_ATTRS)
    assert view.edge_index.device.type == "cpu"  # a view taken before keeps the old device's tensors
    assert isinstance(view, LiveGraph)  # (meta tensors hold no data, so the store cannot come back from there)


def test_open_loads_onto_the_device_and_files_hold_cpu_tensors(tmp_path):
    s = gu.GraphStore(graph_a())
    s.delete_edges([1])
    s.save(tmp_path / "s")
    s.delete_nodes([4])  # journaled only: reopening replays it
    s.close()
    raw = torch.load(tmp_path / "s" / STATE_FILE, weights_only=True)
    assert all(t.device.type == "cpu" for t in tensors_of(raw))
    conn = sqlite3.connect(journal_path(tmp_path / "s"))
    try:
        payloads = [p for (p,) in conn.execute("SELECT payload FROM requests ORDER BY id")]
    finally:
        conn.close()
    assert len(payloads) == 2
    for payload in payloads:
        loaded = torch.load(io.BytesIO(payload), weights_only=True)
        assert all(t.device.type == "cpu" for t in tensors_of(loaded))
    t = gu.GraphStore.open(tmp_path / "s", device="cpu")
    assert t.device == torch.device("cpu")
    assert_store_on(t, "cpu")
    assert_same(state_of(s), state_of(t))
    t.close()
    u = gu.GraphStore.open(tmp_path / "s")  # default: CPU
    assert u.device == torch.device("cpu")
    u.close()


def test_payloads_are_cpu_copies_of_the_request():
    s = gu.GraphStore(graph_a())
    r = s.delete_nodes([0])
    p = r.to_payload()
    assert p["node_ids"] is r.node_ids  # on the CPU already: no copy
    assert r.to("cpu") is r
    moved = r.to("meta")
    assert_on("meta", moved)
    assert moved.id == r.id and moved.kind == r.kind and moved.created == r.created
    red = DeletionRequest.from_payload(3, "edges", 0.0, None, device="meta")
    assert red.redacted and red.node_ids.device.type == "meta"


# ----------------------------------------------------------------------------------------------- (d) live id caches
@pytest.mark.parametrize("make, undirected", STORES)
def test_live_ids_are_cached_per_request(make, undirected):
    s = gu.GraphStore(make(), undirected=undirected)

    def check():
        e, n = s.live_edge_ids(), s.live_node_ids()
        assert torch.equal(e, s.edge_mask.nonzero().squeeze(1)) and e.dtype == torch.long and e.dim() == 1
        assert torch.equal(n, s.node_mask.nonzero().squeeze(1)) and n.dtype == torch.long and n.dim() == 1
        assert s.live_edge_ids() is e and s.live_node_ids() is n  # cached between requests
        return e, n

    e0, n0 = check()
    s.delete_edges([0])
    e1, n1 = check()
    assert e1 is not e0 and n1 is n0  # an edge request leaves the node list as it was
    s.delete_nodes([4])
    e2, n2 = check()
    assert e2 is not e1 and n2 is not n1
    s.delete_node_features([2])
    e3, n3 = check()
    assert e3 is e2 and n3 is n2
    s.delete_edge_class(int(s.edge_type[s.live_edge_ids()[0]]))
    check()
    s.compact()
    e5, n5 = check()
    assert e5.numel() == s.num_edges and n5.numel() == s.num_nodes
