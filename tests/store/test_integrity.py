"""Issue 9: acknowledged deletions never come back. Locks, atomic overwrite, tamper-evident journals, damaged
files and format upgrades, each checked on the folder a saved store leaves."""

from __future__ import annotations

import gc
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch_geometric.data import Data

import graphunlearn as gu
from graphunlearn.io import CorruptFileError, Journal, StoreLockedError, atomic_save, safe_load, to_bytes
from graphunlearn.store import STATE_FILE, GraphStore, journal_path
from tests.store.helpers import die, folder_files, graph_a, store_a

REPO = Path(__file__).resolve().parents[2]


class SimulatedCrash(BaseException):
    pass


def saved(path: Path, requests: int = 2) -> GraphStore:
    s = store_a()
    s.save(path)
    if requests > 0:
        s.delete_nodes([4])
    if requests > 1:
        s.delete_edges([(0, 1)])
    return s


def sql(path: Path, query: str, *args) -> list[tuple]:
    conn = sqlite3.connect(journal_path(path))
    try:
        rows = conn.execute(query, args).fetchall()
        conn.commit()
        return rows
    finally:
        conn.close()


# ----------------------------------------------------------------------------------------------- one writer
def test_second_writer_in_the_same_process_is_refused(tmp_path):
    a = saved(tmp_path / "st")
    with pytest.raises(StoreLockedError, match="open for writing elsewhere .by this process.*read_only=True"):
        GraphStore.open(tmp_path / "st")
    other = store_a()
    with pytest.raises(StoreLockedError):
        other.save(tmp_path / "st", overwrite=True)
    assert other._dir is None
    a.close()
    with GraphStore.open(tmp_path / "st") as b:
        assert [r.id for r in b.requests] == [0, 1]


def test_a_store_dropped_without_close_releases_its_lock(tmp_path):
    a = saved(tmp_path / "st")
    del a
    gc.collect()
    GraphStore.open(tmp_path / "st").close()


def test_reader_keeps_its_snapshot_and_cannot_write(tmp_path):
    a = saved(tmp_path / "st")
    reader = GraphStore.open(tmp_path / "st", read_only=True)
    assert reader.read_only and [r.id for r in reader.requests] == [0, 1]
    files = {p.name: p.read_bytes() for p in (tmp_path / "st").iterdir() if not p.name.endswith(".lock")}
    a.delete_edges([(2, 3)])
    a.compact()  # renumbers everything and erases the ids the reader still holds in memory
    for call in (lambda: reader.delete_edges([0]), reader.checkpoint, reader.compact,
                 lambda: reader.save(tmp_path / "st", overwrite=True)):
        with pytest.raises(RuntimeError, match="read_only"):
            call()
    assert files != {p.name: p.read_bytes() for p in (tmp_path / "st").iterdir() if not p.name.endswith(".lock")}
    a.close()
    with GraphStore.open(tmp_path / "st") as b:  # A's deletions and erasure stand
        assert b.num_nodes == 4 and all(r.redacted for r in b.requests) and len(b.requests) == 3
    # opening read-only writes nothing to the folder
    before = {p.name: p.read_bytes() for p in (tmp_path / "st").iterdir()}
    GraphStore.open(tmp_path / "st", read_only=True)
    assert before == {p.name: p.read_bytes() for p in (tmp_path / "st").iterdir()}


HOLD = """
import sys, time
from graphunlearn.store import GraphStore
s = GraphStore.open(sys.argv[1])
s.delete_edges([(2, 3)])
print("ready", flush=True)
time.sleep(120)
"""


@pytest.mark.slow
def test_another_process_holding_the_store(tmp_path):
    path = tmp_path / "st"
    saved(path).close()
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(path)], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        with pytest.raises(StoreLockedError, match=f"by process {proc.pid}"):
            GraphStore.open(path)
        reader = GraphStore.open(path, read_only=True)  # sees the other process's acknowledged request
        assert [r.kind for r in reader.requests] == ["nodes", "edges", "edges"]
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    with GraphStore.open(path) as s:  # a dead writer leaves no stale lock
        assert [r.kind for r in s.requests] == ["nodes", "edges", "edges"]


# ----------------------------------------------------------------------------------------------- overwrite
@pytest.mark.parametrize("fail_at", ["journal rows", "snapshot", "snapshot fsync", "rename"])
def test_interrupted_overwrite_keeps_the_old_store(tmp_path, monkeypatch, fail_at):
    path = tmp_path / "st"
    saved(path).close()
    new = store_a()
    new.delete_edges([(3, 4)])
    if fail_at == "journal rows":
        monkeypatch.setattr(Journal, "append_all",
                            lambda *a, **k: (_ for _ in ()).throw(OSError(28, "No space left")))
    elif fail_at == "snapshot":
        monkeypatch.setattr(gu.store, "write_temp", lambda *a, **k: (_ for _ in ()).throw(SimulatedCrash()))
    elif fail_at == "rename":
        monkeypatch.setattr(gu.io.os, "replace", lambda *a: (_ for _ in ()).throw(OSError(5, "I/O error")))
    else:
        monkeypatch.setattr(os, "fsync", lambda fd: (_ for _ in ()).throw(OSError(28, "No space left")))
    with pytest.raises((OSError, SimulatedCrash)):
        new.save(path, overwrite=True)
    monkeypatch.undo()
    assert new._dir is None
    with GraphStore.open(path) as o:  # the old store, whole: its requests, its graph
        assert [r.kind for r in o.requests] == ["nodes", "edges"] and not o.node_mask[4]
    assert sorted(p.name for p in path.iterdir()) == folder_files(path)


def test_overwrite_crash_after_the_commit_point_gives_the_new_store(tmp_path, monkeypatch):
    path = tmp_path / "st"
    saved(path).close()
    old_journal = journal_path(path)
    new = store_a()
    new.delete_edges([(3, 4)])
    monkeypatch.setattr(gu.store, "_remove_strays", lambda *a, **k: (_ for _ in ()).throw(SimulatedCrash()))
    with pytest.raises(SimulatedCrash):
        new.save(path, overwrite=True)
    monkeypatch.undo()
    assert new._dir == path.resolve()  # past the commit point: the folder is new's, and new journals there
    die(new)
    assert old_journal.exists()  # the replaced store's journal is still there ...
    with GraphStore.open(path) as o:  # ... but the snapshot names the new one, and opening removes the old
        assert [r.kind for r in o.requests] == ["edges"] and o.node_mask.all() and not o.edge_mask[4]
    assert not old_journal.exists() and sorted(p.name for p in path.iterdir()) == folder_files(path)


# ----------------------------------------------------------------------------------------------- tampering
def tamper_cases():
    return {
        "payload replaced by a path": (
            lambda p: sql(p, "UPDATE requests SET payload = ? WHERE id = 1", str(p / STATE_FILE)),
            r"row 1 .*payload is a str"),
        "payload replaced by other bytes": (
            lambda p: sql(p, "UPDATE requests SET payload = ? WHERE id = 1", to_bytes({"node_ids": 1})),
            r"row 1 .*does not match its digest"),
        "summary edited": (lambda p: sql(p, "UPDATE requests SET summary = 'x' WHERE id = 0"),
                           r"row 0 .*chain breaks"),
        "time edited": (lambda p: sql(p, "UPDATE requests SET created = 1.0 WHERE id = 1"), r"row 1 .*chain breaks"),
        "kind edited": (lambda p: sql(p, "UPDATE requests SET kind = 'nodes' WHERE id = 2"), r"row 2 .*chain breaks"),
        "middle row removed": (lambda p: sql(p, "DELETE FROM requests WHERE id = 1"), r"expected request 1 here"),
        "last row removed": (lambda p: sql(p, "DELETE FROM requests WHERE id = 2"), r"ends at request 1.*head"),
        "journal emptied": (lambda p: sql(p, "DELETE FROM requests"), r"ends at request -1"),
        "journal and head emptied": (
            lambda p: (sql(p, "DELETE FROM requests"), sql(p, "UPDATE meta SET value = -1 WHERE key = 'head_id'"),
                       sql(p, "UPDATE meta SET value = ? WHERE key = 'head_chain'",
                           gu.io.chain_start(safe_load(p / STATE_FILE)["uid"]))),
            r"snapshot .* taken at request 1"),
        "rows reordered": (
            lambda p: (sql(p, "UPDATE requests SET id = 100 WHERE id = 0"),
                       sql(p, "UPDATE requests SET id = 0 WHERE id = 1"),
                       sql(p, "UPDATE requests SET id = 1 WHERE id = 100")),
            r"row 0 .*chain breaks"),
        "unknown kind": (lambda p: sql(p, "UPDATE requests SET kind = 'everything' WHERE id = 2"),
                         r"row 2 .*unknown kind"),
        "payload nulled": (lambda p: sql(p, "UPDATE requests SET payload = NULL, salt = NULL WHERE id = 2"),
                           r"row 2 .*chain breaks|no payload"),
        "meta of another store": (lambda p: sql(p, "UPDATE meta SET value = ? WHERE key = 'store_uid'", "f" * 32),
                                  r"belongs to store f{32}"),
        "snapshot names a path": (
            lambda p: atomic_save({**safe_load(p / STATE_FILE), "journal": "../elsewhere.sqlite"}, p / STATE_FILE),
            r"field 'journal' must name a journal file"),
    }


@pytest.mark.parametrize("case", list(tamper_cases()))
def test_tampered_journal_stops_open_naming_the_row(tmp_path, case):
    path = tmp_path / "st"
    s = saved(path)
    s.checkpoint()  # requests 0 and 1 in the snapshot, request 2 only in the journal
    s.delete_edges([(2, 3)])
    s.close()
    before = {p.name: p.read_bytes() for p in path.iterdir()}
    edit, pattern = tamper_cases()[case]
    edit(path)
    with pytest.raises(CorruptFileError, match=pattern) as err:
        GraphStore.open(path)
    assert str(path) in str(err.value)
    with pytest.raises(CorruptFileError):
        GraphStore.open(path, read_only=True)
    with pytest.raises(CorruptFileError):  # not StoreLockedError: the refused open held on to nothing
        GraphStore.open(path)
    if case != "snapshot names a path":
        assert (path / STATE_FILE).read_bytes() == before[STATE_FILE]  # open changed nothing it refused


def test_a_consistent_row_with_an_impossible_id_is_refused(tmp_path):
    """Someone who rewrites the chain consistently (no key protects it) still cannot delete node -1."""
    path = tmp_path / "st"
    saved(path, requests=0).close()
    journal = Journal(journal_path(path))
    payload = {"node_ids": torch.tensor([-1]), "edge_ids": torch.empty(0, dtype=torch.long),
               "feature_node_ids": torch.empty(0, dtype=torch.long), "feature_columns": None, "params": {},
               "hops": [torch.tensor([-1])], "subgraph_edge_ids": torch.empty(0, dtype=torch.long)}
    journal.append(0, "nodes", "forged", to_bytes(payload))
    journal.close()
    with pytest.raises(CorruptFileError, match=r"row 0 \(nodes\): node_ids must be 1-D int64 ids in 0..4"):
        GraphStore.open(path)


def test_another_stores_journal_swapped_in_is_refused(tmp_path):
    saved(tmp_path / "a").close()
    saved(tmp_path / "b").close()
    (journal_path(tmp_path / "b")).write_bytes(journal_path(tmp_path / "a").read_bytes())
    with pytest.raises(CorruptFileError, match="belongs to store .* the folder mixes two stores"):
        GraphStore.open(tmp_path / "b")


# ----------------------------------------------------------------------------------------------- damaged files
def damage_cases():
    def truncate(f: Path, frac: float = 0.5):
        data = f.read_bytes()
        f.write_bytes(data[: int(len(data) * frac)])

    return {
        "store.pt truncated": (lambda p: truncate(p / STATE_FILE), r"store\.pt: the file is truncated"),
        "store.pt empty": (lambda p: (p / STATE_FILE).write_bytes(b""), r"store\.pt: the file is truncated"),
        "store.pt junk": (lambda p: (p / STATE_FILE).write_bytes(os.urandom(3000)), r"store\.pt: "),
        "store.pt a list": (lambda p: torch.save([1, 2], p / STATE_FILE), r"store\.pt: not a GraphStore snapshot"),
        "store.pt field missing": (
            lambda p: atomic_save({k: v for k, v in safe_load(p / STATE_FILE).items() if k != "edge_mask"},
                                  p / STATE_FILE), r"fields \['edge_mask'\] are missing"),
        "store.pt float edge_index": (
            lambda p: atomic_save({**safe_load(p / STATE_FILE), "edge_index": torch.zeros(2, 5)}, p / STATE_FILE),
            r"field 'edge_index' must be an int64 tensor"),
        "store.pt mask too short": (
            lambda p: atomic_save({**safe_load(p / STATE_FILE), "node_mask": torch.ones(3, dtype=torch.bool)},
                                  p / STATE_FILE), r"field 'node_mask' must be a dense tensor with 5 rows"),
        "journal truncated": (lambda p: truncate(journal_path(p), 0.3), r"journal-[0-9a-f]+\.sqlite"),
        "journal junk": (lambda p: journal_path(p).write_bytes(os.urandom(5000)), r"not a graphunlearn journal"),
        "journal missing": (lambda p: journal_path(p).unlink(), r"journal is missing"),
    }


@pytest.mark.parametrize("case", list(damage_cases()))
def test_damaged_files_give_one_clear_error(tmp_path, case):
    path = tmp_path / "st"
    saved(path).close()
    edit, pattern = damage_cases()[case]
    edit(path)
    with pytest.raises(CorruptFileError, match=pattern) as err:
        GraphStore.open(path)
    assert "weights_only=False" not in str(err.value) and err.value.__cause__ is None
    assert isinstance(err.value, ValueError)
    with pytest.raises(CorruptFileError):  # not StoreLockedError: the refused open held on to nothing
        GraphStore.open(path)


# ----------------------------------------------------------------------------------------------- format 1
def write_format_1(store: GraphStore, path: Path) -> None:
    """The folder layout graphunlearn wrote before hash-chained journals: journal.sqlite, no uid."""
    path.mkdir(parents=True)
    state = {k: v for k, v in store._state().items() if k not in ("uid", "journal", "journal_head")}
    state["format"] = 1
    state["next_id"] = 1  # request 1 only in the journal, as after a crash
    state["node_mask"] = torch.ones(store.num_nodes, dtype=torch.bool)
    state["node_mask"][store.requests[0].node_ids] = False
    state["edge_mask"] = torch.ones(store.num_edges, dtype=torch.bool)
    state["edge_mask"][store.requests[0].edge_ids] = False
    state["edge_deleted_by"] = torch.where(state["edge_mask"], -1, 0)
    state["node_deleted_by"] = torch.where(state["node_mask"], -1, 0)
    atomic_save(state, path / STATE_FILE)
    conn = sqlite3.connect(path / "journal.sqlite")
    conn.execute("CREATE TABLE requests (id INTEGER PRIMARY KEY, kind TEXT NOT NULL, status TEXT NOT NULL, "
                 "created REAL NOT NULL, summary TEXT NOT NULL, payload BLOB)")
    for r in store.requests:
        conn.execute("INSERT INTO requests VALUES (?, ?, 'applied', ?, ?, ?)",
                     (r.id, r.kind, r.created, r.summary(), to_bytes(r.to_payload())))
    conn.commit()
    conn.close()


def test_format_1_folders_are_read_and_upgraded(tmp_path):
    s = store_a()
    s.delete_nodes([4])
    s.delete_edges([(0, 1)])
    write_format_1(s, tmp_path / "old")
    with GraphStore.open(tmp_path / "old") as o:
        assert [r.kind for r in o.requests] == ["nodes", "edges"]
        assert torch.equal(o.edge_mask, s.edge_mask) and torch.equal(o.node_mask, s.node_mask)
    assert safe_load(tmp_path / "old" / STATE_FILE)["format"] == 2
    assert not (tmp_path / "old" / "journal.sqlite").exists()
    assert sorted(p.name for p in (tmp_path / "old").iterdir()) == folder_files(tmp_path / "old")
    with GraphStore.open(tmp_path / "old") as o:
        assert torch.equal(o.edge_mask, s.edge_mask) and o.delete_edges([(2, 3)]).id == 2


# ----------------------------------------------------------------------------------------------- degenerate
def test_edgeless_graph_with_edge_types_round_trips(tmp_path):
    data = Data(x=torch.randn(3, 2), edge_index=torch.empty(2, 0, dtype=torch.long),
                edge_type=torch.empty(0, dtype=torch.long), edge_weight=torch.empty(0), y=torch.tensor([0, 1, 1]))
    for undirected in (None, True, False):
        s = GraphStore(data, undirected=undirected)
        assert s.num_edges == 0 and s.live().gcn_deg.tolist() == [1.0, 1.0, 1.0]
        with pytest.raises(gu.DeletionError, match="unknown edge class 0"):
            s.delete_edge_class(0)
        s.delete_node_class(1)
        assert s.retained().num_nodes == 1
    s.save(tmp_path / "st")
    s.compact()
    s.close()
    with GraphStore.open(tmp_path / "st") as o:
        assert o.num_nodes == 1 and o.num_edges == 0


def test_undirected_multigraph_is_refused_clearly():
    ei = torch.tensor([[0, 0, 1, 1, 1, 2], [1, 1, 0, 0, 2, 1]])
    with pytest.raises(ValueError, match=r"edge \(0, 1\) appears 2 times.*undirected=False"):
        GraphStore(Data(x=torch.randn(3, 2), edge_index=ei))
    s = GraphStore(Data(x=torch.randn(3, 2), edge_index=ei), undirected=False)
    assert s.num_edges == 6 and s.delete_edges([(0, 1)]).edge_ids.tolist() == [0, 1]


def test_crash_test_helper_is_honest(tmp_path):
    """``die`` in these tests must leave what a dead process leaves: locks free, files as they were."""
    path = tmp_path / "st"
    s = saved(path)
    files = {p.name: p.read_bytes() for p in path.iterdir()}
    die(s)
    assert files == {p.name: p.read_bytes() for p in path.iterdir()}
    GraphStore.open(path).close()


def test_store_arguments_are_checked_up_front():
    with pytest.raises(TypeError, match="undirected must be True, False or None"):
        GraphStore(graph_a(), undirected="yes")
    with pytest.raises(ValueError, match="num_hops"):
        GraphStore(graph_a(), num_hops=True)
    with pytest.raises(TypeError, match="needs a torch_geometric.data.Data"):
        GraphStore(None)
    s, other = store_a(), store_a()
    foreign = other.delete_nodes([1])
    with pytest.raises(ValueError, match="registered with another store"):
        s.affected_subgraph(foreign)
    with pytest.raises(ValueError, match="registered with another store"):
        s.forget_set([foreign])
    with pytest.raises(TypeError, match="sequence of DeletionRequest"):
        s.forget_set(foreign)
    mine = s.delete_nodes([1])
    s.compact()
    with pytest.raises(ValueError, match="was compacted"):
        s.affected_subgraph(mine)


def test_failed_compaction_rename_leaves_the_store_as_it_was(tmp_path, monkeypatch):
    path = tmp_path / "st"
    s = saved(path)
    before = (s.num_nodes, s.node_mask.clone(), s.edge_mask.clone())
    monkeypatch.setattr(gu.io.os, "replace", lambda *a: (_ for _ in ()).throw(OSError(28, "No space left")))
    with pytest.raises(OSError):
        s.compact()
    monkeypatch.undo()
    assert (s.num_nodes, s.node_mask.tolist(), s.edge_mask.tolist()) == (
        before[0], before[1].tolist(), before[2].tolist())
    s.delete_nodes([0])  # journaled in the numbering the disk still has
    s.close()
    with GraphStore.open(path) as o:
        assert o.num_nodes == 5 and o.node_mask.tolist() == [False, True, True, True, False]


def test_format_1_folder_opens_read_only_without_changing_it(tmp_path):
    s = store_a()
    s.delete_nodes([4])
    s.delete_edges([(0, 1)])
    write_format_1(s, tmp_path / "old")
    before = {p.name: p.read_bytes() for p in (tmp_path / "old").iterdir()}
    o = GraphStore.open(tmp_path / "old", read_only=True)
    assert o.read_only and torch.equal(o.edge_mask, s.edge_mask)
    assert before == {p.name: p.read_bytes() for p in (tmp_path / "old").iterdir()}


def test_what_the_constructor_accepts_loads_back(tmp_path):
    data = Data(x=torch.arange(6).reshape(3, 2), edge_index=torch.tensor([[0, 1], [1, 2]]),
                node_type=torch.tensor([0.5, 1.0, 2.0]), y=torch.tensor([[1, 0], [0, 1], [1, 1]]).bool())
    s = GraphStore(data)
    s.save(tmp_path / "st")
    s.delete_nodes([0])
    s.close()
    with GraphStore.open(tmp_path / "st") as o:
        assert o.x.dtype == torch.int64 and not o.node_mask[0]


def test_compact_zeroes_the_stores_own_copies_but_never_the_users():
    data = graph_a()  # undirected, given in both directions: the store keeps its own one-per-edge copies
    user = {k: v.clone() for k, v in data.to_dict().items() if torch.is_tensor(v)}
    s = GraphStore(data)
    own_weight, own_index = s.edge_weight, s.edge_index
    view = s.live()
    s.delete_edges([(0, 1)])
    s.compact()
    assert not own_weight.any() and not own_index.any()  # the canonical copies, erased values included
    assert not view.gcn_deg.any()  # a view taken before compaction is invalidated with the caches
    for k, v in user.items():  # the user's Data is untouched
        assert torch.equal(data[k], v), k


def test_a_failed_status_update_does_not_undo_an_acknowledged_request(tmp_path, monkeypatch):
    path = tmp_path / "st"
    s = saved(path, requests=0)

    def locked(self, req_id):
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(Journal, "mark_applied", locked)
    with pytest.warns(RuntimeWarning, match="journaled and applied"):
        req = s.delete_nodes([4])
    monkeypatch.undo()
    assert not s.node_mask[4] and s.delete_edges([(0, 1)]).id == req.id + 1  # the store goes on
    s.close()
    with GraphStore.open(path) as o:
        assert [r.kind for r in o.requests] == ["nodes", "edges"] and not o.node_mask[4]
    assert [r[0] for r in sql(path, "SELECT status FROM requests")] == ["applied", "applied"]
