"""Durability: save / open round trips, the write-ahead journal, crash recovery and safe loading."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import graphunlearn as gu
from graphunlearn.io import CorruptFileError, Journal, atomic_save, safe_load, to_bytes
from graphunlearn.store import STATE_FILE, GraphStore, journal_path
from tests.conftest import assert_close
from tests.store.helpers import die, folder_files, graph_a, random_graph, store_a

REPO = Path(__file__).resolve().parents[2]


class SimulatedCrash(BaseException):
    """Raised in place of a process death; a BaseException so that no library code swallows it."""


def journal_table(path: Path) -> list[tuple]:
    """(id, kind, status, payload is null) straight from the SQLite file, without the library."""
    conn = sqlite3.connect(journal_path(path))
    try:
        return conn.execute("SELECT id, kind, status, payload IS NULL FROM requests ORDER BY id").fetchall()
    finally:
        conn.close()


def assert_requests_equal(a: list, b: list) -> None:
    assert [(r.id, r.kind, r.params, r.redacted) for r in a] == [(r.id, r.kind, r.params, r.redacted) for r in b]
    for r, q in zip(a, b):
        assert r.created == pytest.approx(q.created)
        for name in ("node_ids", "edge_ids", "feature_node_ids", "subgraph_edge_ids"):
            assert torch.equal(getattr(r, name), getattr(q, name)), (r.id, name)
        assert (r.feature_columns is None) == (q.feature_columns is None)
        if r.feature_columns is not None:
            assert torch.equal(r.feature_columns, q.feature_columns)
        assert len(r.hops) == len(q.hops) and all(torch.equal(h, k) for h, k in zip(r.hops, q.hops))


def assert_stores_equal(a: GraphStore, b: GraphStore) -> None:
    assert (a.num_nodes, a.num_edges, a.undirected, a.num_hops) == (b.num_nodes, b.num_edges, b.undirected, b.num_hops)
    for name in ("edge_index", "node_mask", "edge_mask", "node_deleted_by", "edge_deleted_by"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name
    assert (a.feature_mask is None) == (b.feature_mask is None)
    if a.feature_mask is not None:
        assert torch.equal(a.feature_mask, b.feature_mask)
    assert a._next_id == b._next_id
    assert_requests_equal(a.requests, b.requests)
    ka, kb = a.retained(), b.retained()
    assert sorted(ka.keys()) == sorted(kb.keys())
    for key in ka.keys():
        assert torch.equal(ka[key], kb[key]) if torch.is_tensor(ka[key]) else ka[key] == kb[key], key
    la, lb = a.live(), b.live()
    for name in ("mask", "mask_t", "x", "node_mask"):
        assert torch.equal(getattr(la, name), getattr(lb, name)), name
    assert_close(la.gcn_deg, lb.gcn_deg, what="gcn_deg")  # patched incrementally vs built from the masks


def rich_graph(directed: bool):
    data = random_graph(11, directed=directed, num_nodes=14, num_edges=30)
    data.node_secret = torch.arange(14.0) * 3
    data.edge_attr = torch.arange(data.edge_index.size(1) * 2, dtype=torch.float32).reshape(-1, 2)
    if not directed:  # the two directions of an edge must agree
        ei = data.edge_index
        key = torch.minimum(ei[0], ei[1]) * 100 + torch.maximum(ei[0], ei[1])
        data.edge_attr = torch.stack([key.float(), -key.float()], 1)
    return data


def some_requests(s: GraphStore, part: int) -> None:
    live_e = s.edge_mask.nonzero().squeeze(1)
    live_n = s.node_mask.nonzero().squeeze(1)
    if part == 0:
        s.delete_edges(live_e[:2])
        s.delete_nodes(live_n[-1:])
        s.delete_node_features(live_n[:2], [1])
    else:
        s.delete_edge_class(int(s.edge_type[live_e[-1]]))
        s.delete_node_features(live_n[2:3])
        s.delete_node_class(int(s.y[live_n[0]]))


# ----------------------------------------------------------------------------------------------- round trip
@pytest.mark.parametrize("directed", [False, True], ids=["undirected", "directed"])
def test_save_open_round_trip(tmp_path, directed):
    s = GraphStore(rich_graph(directed), undirected=not directed, num_hops=3)
    some_requests(s, 0)
    path = s.save(tmp_path / "store")
    assert path == (tmp_path / "store").resolve() and (path / STATE_FILE).is_file() and journal_path(path).is_file()
    assert [row[2] for row in journal_table(path)] == ["applied"] * 3
    o = GraphStore.open(path, read_only=True)  # s still holds the writer lock: a reader sees its snapshot
    assert_stores_equal(s, o)
    assert "node_secret" in o.node_attrs and "edge_attr" in o.edge_attrs
    # requests after save are journaled (written, then marked applied) and replayed on open
    some_requests(s, 1)
    assert journal_table(path) == [(i, r.kind, "applied", 0) for i, r in enumerate(s.requests)]
    snap = safe_load(path / STATE_FILE)
    assert snap["next_id"] == 3  # the snapshot still predates them: the journal alone carries them
    s.close()
    o.close()
    o = GraphStore.open(path)
    assert_stores_equal(s, o)
    # reopening again applies nothing twice
    o.close()
    o = GraphStore.open(path)
    assert [r.id for r in o.requests] == list(range(6))
    assert_stores_equal(s, o)
    o.close()


def test_payload_in_journal_is_the_request(tmp_path):
    s = store_a()
    s.save(tmp_path / "st")
    req = s.delete_node_features([1, 3], [2, 0])
    conn = sqlite3.connect(journal_path(tmp_path / "st"))
    (payload, summary), = conn.execute("SELECT payload, summary FROM requests WHERE id = 0").fetchall()
    conn.close()
    p = safe_load(payload)
    assert p["feature_node_ids"].tolist() == [1, 3] and p["feature_columns"].tolist() == [0, 2]
    assert p["hops"] is None and p["subgraph_edge_ids"] is None  # derived data: computed when read
    assert summary == req.summary()
    s.close()
    o = GraphStore.open(tmp_path / "st")  # the reopened record computes the same neighbourhood
    assert [h.tolist() for h in o.requests[0].hops] == [h.tolist() for h in req.hops]
    assert torch.equal(o.requests[0].subgraph_edge_ids, req.subgraph_edge_ids)
    o.close()


def test_checkpoint_folds_the_journal_into_the_snapshot(tmp_path):
    s = store_a()
    with pytest.raises(RuntimeError, match="never saved"):
        s.checkpoint()
    s.save(tmp_path / "st")
    s.delete_nodes([2])
    s.delete_node_features([0])
    assert safe_load(tmp_path / "st" / STATE_FILE)["node_mask"].all()
    s.checkpoint()
    snap = safe_load(tmp_path / "st" / STATE_FILE)
    assert snap["next_id"] == 2 and snap["node_mask"].tolist() == [True, True, False, True, True]
    assert snap["feature_mask"][0].sum() == 0 and torch.equal(snap["edge_mask"], s.edge_mask)
    s.delete_edges([(3, 4)])
    s.close()
    o = GraphStore.open(tmp_path / "st")
    assert [r.id for r in o.requests] == [0, 1, 2]
    assert o.edge_mask.tolist() == [True, False, False, False, False]
    assert [h.tolist() for h in o.requests[0].hops] == [[0, 1, 2, 3], [4], []]
    o.close()


def test_save_elsewhere_moves_the_journal(tmp_path):
    s = store_a()
    s.save(tmp_path / "one")
    s.delete_nodes([2])
    s.save(tmp_path / "two")  # a full copy; later requests are journaled there
    s.delete_edges([(0, 1)])
    assert [r[0] for r in journal_table(tmp_path / "one")] == [0]
    assert [r[0] for r in journal_table(tmp_path / "two")] == [0, 1]
    s.close()
    one, two = GraphStore.open(tmp_path / "one"), GraphStore.open(tmp_path / "two")
    assert len(one.requests) == 1 and one.edge_mask.tolist() == [True, False, False, False, True]
    assert len(two.requests) == 2 and two.edge_mask.tolist() == [False, False, False, False, True]
    one.close()
    two.close()


def test_save_refuses_to_overwrite_another_store(tmp_path):
    other = store_a()
    other.save(tmp_path / "st")
    other.delete_nodes([0])
    other.close()
    s = store_a()
    s.delete_edges([(3, 4)])
    with pytest.raises(FileExistsError, match="already holds a store"):
        s.save(tmp_path / "st")
    assert s._dir is None and s._journal is None
    o = GraphStore.open(tmp_path / "st")  # the other store is intact
    assert o.requests[0].kind == "nodes" and o.node_mask.tolist() == [False, True, True, True, True]
    o.close()
    s.save(tmp_path / "st", overwrite=True)
    s.close()
    o = GraphStore.open(tmp_path / "st")
    assert [r.kind for r in o.requests] == ["edges"] and o.node_mask.all()
    assert journal_table(tmp_path / "st") == [(0, "edges", "applied", 0)]
    o.close()


def test_save_into_own_folder_by_another_spelling(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    s = store_a()
    s.save("st")
    s.delete_nodes([2])
    s.save(tmp_path / "st")  # the same folder, absolute: a checkpoint, not "another store"
    s.save(Path("st") / ".." / "st")
    assert journal_table(tmp_path / "st") == [(0, "nodes", "applied", 0)]
    # the store keeps writing to its folder after the working directory changes
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    s.delete_edges([(0, 1)])
    s.checkpoint()
    assert not (tmp_path / "elsewhere" / "st").exists()
    assert safe_load(tmp_path / "st" / STATE_FILE)["next_id"] == 2
    s.close()
    o = GraphStore.open(tmp_path / "st")
    assert [r.id for r in o.requests] == [0, 1]
    o.close()


def test_save_and_open_bad_paths(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError):
        store_a().save(tmp_path / "file")
    with pytest.raises(FileNotFoundError, match="not a saved GraphStore"):
        GraphStore.open(tmp_path / "nothing")
    (tmp_path / "fmt").mkdir()
    atomic_save({"format": 99}, tmp_path / "fmt" / STATE_FILE)
    with pytest.raises(ValueError, match="format 99"):
        GraphStore.open(tmp_path / "fmt")


# ----------------------------------------------------------------------------------------------- crashes
CRASH_SCRIPT = """
import os, sys
from graphunlearn.store import GraphStore
store = GraphStore.open(sys.argv[1])
GraphStore._apply = lambda self, req: os._exit(3)   # the process dies after the journal write
store.delete_edges([(0, 1)])
os._exit(0)
"""


def reference_after_crash() -> GraphStore:
    ref = store_a()
    ref.delete_nodes([4])
    ref.delete_node_features([0], [1])
    ref.delete_edges([(0, 1)])
    return ref


def test_crash_between_journal_and_apply_in_a_real_process(tmp_path):
    path = tmp_path / "st"
    s = store_a()
    s.delete_nodes([4])  # in the snapshot
    s.save(path)
    s.delete_node_features([0], [1])  # only in the journal
    s.close()
    proc = subprocess.run([sys.executable, "-c", CRASH_SCRIPT, str(path)], cwd=REPO, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 3, proc.stderr
    assert journal_table(path) == [(0, "nodes", "applied", 0), (1, "node_features", "applied", 0),
                                   (2, "edges", "pending", 0)]
    ref = reference_after_crash()
    o = GraphStore.open(path)
    assert [r.id for r in o.requests] == [0, 1, 2]
    assert o.requests[2].edge_ids.tolist() == [0]
    assert o.edge_mask.tolist() == [False, True, True, True, False]
    assert_stores_equal(ref, o)
    assert [row[2] for row in journal_table(path)] == ["applied"] * 3
    o.close()
    o = GraphStore.open(path)  # a second reopen does not apply it again
    assert [r.id for r in o.requests] == [0, 1, 2]
    assert_stores_equal(ref, o)
    # and the store goes on: the next request gets the next id
    assert o.delete_edges([(0, 2)]).id == 3
    o.close()
    o = GraphStore.open(path)
    assert [r.id for r in o.requests] == [0, 1, 2, 3] and o.edge_mask.tolist() == [False, False, True, True, False]
    o.close()


def test_crash_after_apply_before_mark_applied(tmp_path, monkeypatch):
    path = tmp_path / "st"
    s = store_a()
    s.save(path)
    s.delete_nodes([4])
    s.delete_node_features([0], [1])

    def crash(self, req_id):
        raise SimulatedCrash

    monkeypatch.setattr(Journal, "mark_applied", crash)
    with pytest.raises(SimulatedCrash):
        s.delete_edges([(0, 1)])
    monkeypatch.undo()
    die(s)  # the process is gone: nothing more reaches the disk
    assert journal_table(path)[-1] == (2, "edges", "pending", 0)
    o = GraphStore.open(path)
    assert_stores_equal(reference_after_crash(), o)
    assert [row[2] for row in journal_table(path)] == ["applied"] * 3
    o.close()


def test_crash_before_the_journal_write_loses_only_that_request(tmp_path, monkeypatch):
    path = tmp_path / "st"
    s = store_a()
    s.save(path)
    s.delete_nodes([4])

    def crash(self, *args, **kwargs):
        raise SimulatedCrash

    monkeypatch.setattr(Journal, "append", crash)
    with pytest.raises(SimulatedCrash):
        s.delete_edges([(0, 1)])
    monkeypatch.undo()
    assert s.edge_mask[0], "a request must not take effect before it is journaled"
    die(s)
    o = GraphStore.open(path)
    assert [r.id for r in o.requests] == [0] and o.edge_mask.tolist() == [True, True, True, True, False]
    o.close()


def test_failed_snapshot_write_leaves_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "st"
    s = store_a()
    s.save(path)
    s.delete_nodes([2])
    before = (path / STATE_FILE).read_bytes()
    real_save = torch.save

    def torn(obj, f, *a, **k):
        real_save(obj, f, *a, **k)
        f.write(b"garbage")
        raise SimulatedCrash

    monkeypatch.setattr(torch, "save", torn)
    with pytest.raises(SimulatedCrash):
        s.checkpoint()
    monkeypatch.undo()
    assert (path / STATE_FILE).read_bytes() == before
    assert sorted(p.name for p in path.iterdir()) == folder_files(path)  # no temporary file left
    die(s)
    o = GraphStore.open(path)  # the journal still carries the request
    assert o.node_mask.tolist() == [True, True, False, True, True]
    o.close()


# ----------------------------------------------------------------------------------------------- safe loading
class Evil:
    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_in_state_file_is_refused(tmp_path):
    path = tmp_path / "st"
    store_a().save(path)
    marker = tmp_path / "pwned"
    torch.save({"format": 1, "x": Evil(str(marker))}, path / STATE_FILE)
    with pytest.raises(CorruptFileError, match="store.pt: it holds objects outside the safe-loading allowlist") as e:
        GraphStore.open(path)
    assert "weights_only=False" not in str(e.value) and e.value.__cause__ is None
    assert not marker.exists()


def test_malicious_pickle_in_journal_is_refused(tmp_path):
    path = tmp_path / "st"
    s = store_a()
    s.save(path)
    s.close()
    marker = tmp_path / "pwned"
    evil = to_bytes({"edge_ids": Evil(str(marker))})
    # even with a digest that matches (someone who knows the format), the payload is never unpickled as code
    journal = Journal(journal_path(path))
    journal.append(0, "edges", "x", evil)
    journal.close()
    atomic_save({**safe_load(path / STATE_FILE), "next_id": 0}, path / STATE_FILE)
    with pytest.raises(CorruptFileError, match=r"row 0 \(edges\) payload: it holds objects outside"):
        GraphStore.open(path)
    assert not marker.exists()


def test_safe_load_refuses_objects_but_loads_tensors(tmp_path):
    marker = tmp_path / "pwned"
    with pytest.raises(CorruptFileError, match="allowlist"):
        safe_load(to_bytes([Evil(str(marker))]))
    assert not marker.exists()
    obj = {"a": torch.arange(3), "b": [1, None, (2.5, "s")]}
    back = safe_load(to_bytes(obj))
    assert torch.equal(back["a"], obj["a"]) and back["b"] == [1, None, (2.5, "s")]


def test_unsaved_store_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    s = gu.GraphStore(graph_a())
    s.delete_nodes([1])
    assert list(tmp_path.iterdir()) == []


def test_closed_store_refuses_changes(tmp_path):
    store = store_a()
    store.save(tmp_path / "s")
    store.close()
    with pytest.raises(RuntimeError, match="the store was closed"):
        store.delete_edges([0])
    with pytest.raises(RuntimeError, match="the store was closed"):
        store.compact()
    assert store.num_live_edges == store.num_edges and not store.requests
    reopened = GraphStore.open(tmp_path / "s")
    reopened.delete_edges([0])
    reopened.close()
    with GraphStore.open(tmp_path / "s") as again:
        assert again.num_live_edges == store.num_edges - 1
