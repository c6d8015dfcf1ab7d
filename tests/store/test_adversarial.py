"""Adversarial checks of the saved store (issue 9): random request sequences with crashes injected at every
durability step, failures the store is used after, tampered files, racing readers and awkward inputs.

Each test under "faults found" reproduces a fault this harness found in the first version of the saved store."""

from __future__ import annotations

import hashlib
import random
import shutil
import sqlite3
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch_geometric.data import Data

import graphunlearn.io as gio
import graphunlearn.store as gstore
from graphunlearn.graph import undirected_unique
from graphunlearn.io import CorruptFileError, Journal, StoreLockedError, to_bytes
from graphunlearn.store import STATE_FILE, DeletionError, GraphStore, journal_path
from tests.store.helpers import assert_same_snapshot, graph_a, snapshot, store_a

REPO = Path(__file__).resolve().parents[2]


class Crash(BaseException):
    """A simulated process death at an injected point; a BaseException so that no library code swallows it."""


def die(store: GraphStore) -> None:
    """A process death: files stay as they are, the SQLite connection and the locks go (a closed store too)."""
    if store._journal is not None:
        store._journal.conn.close()
        store._journal = None
    if store._lock is not None:
        store._lock.release()
        store._lock = None


# ----------------------------------------------------------------------------------------------- fixtures
def tagged_graph(seed: int, directed: bool, n: int = 12, m: int = 26, f: int = 3) -> Data:
    """A random graph whose nodes and edges carry their original id (``oid``/``eoid``) and distinctive float
    values (features from 5000, weights from 1000), so that a deleted value can be searched for as bytes."""
    g = torch.Generator().manual_seed(seed)
    ei = torch.stack([torch.randint(n, (m,), generator=g), torch.randint(n, (m,), generator=g)])
    if not directed:
        ei, _, _ = undirected_unique(ei, n)
    e = ei.size(1)
    etype = torch.randint(3, (e,), generator=g)
    w = 1000.0 + torch.arange(e, dtype=torch.float32) * 7.123 + seed
    eoid = torch.arange(e, dtype=torch.float32)
    if not directed:
        nl = ei[0] != ei[1]
        ei = torch.cat([ei, ei[:, nl].flip(0)], 1)
        etype, w, eoid = (torch.cat([t, t[nl]]) for t in (etype, w, eoid))
    x = 5000.0 + torch.arange(n * f, dtype=torch.float32).reshape(n, f) * 3.317 + seed
    d = Data(x=x, edge_index=ei, y=torch.randint(3, (n,), generator=g), edge_type=etype, edge_weight=w,
             num_nodes=n, oid=torch.arange(n).float())
    d.eoid = eoid
    return d


class Reference:
    """What is live, by original id: nodes, edges and (node, column) feature values."""

    def __init__(self, s: GraphStore):
        self.nodes, self.edges = set(range(s.num_nodes)), set(range(s.num_edges))
        self.feat = {(i, j) for i in range(s.num_nodes) for j in range(s.num_features)}

    @classmethod
    def observe(cls, s: GraphStore) -> Reference:
        r = cls.__new__(cls)
        oid, eoid = s.node_attrs["oid"].long(), s.edge_attrs["eoid"].long()
        r.nodes, r.edges = set(oid[s.node_mask].tolist()), set(eoid[s.edge_mask].tolist())
        fm = s.feature_mask if s.feature_mask is not None else torch.ones(s.x.shape, dtype=torch.bool)
        fm = fm & s.node_mask[:, None]
        r.feat = {(int(oid[i]), j) for i, j in fm.nonzero().tolist()}
        kept = s.retained()  # the rebuilt graph agrees with the masks
        assert set(kept.oid.long().tolist()) == r.nodes and set(kept.eoid.long().tolist()) == r.edges
        assert not s.live_x()[~fm].any(), "a deleted feature value is live"
        assert s.node_mask[s.edge_index[:, s.edge_mask]].all(), "a live edge touches a deleted node"
        return r

    def apply(self, s: GraphStore, req) -> None:
        oid, eoid = s.node_attrs["oid"].long(), s.edge_attrs["eoid"].long()
        for i in req.node_ids.tolist():
            self.nodes.discard(int(oid[i]))
            self.feat -= {(int(oid[i]), j) for j in range(s.num_features)}
        self.edges -= {int(eoid[e]) for e in req.edge_ids.tolist()}
        cols = range(s.num_features) if req.feature_columns is None else req.feature_columns.tolist()
        self.feat -= {(int(oid[i]), j) for i in req.feature_node_ids.tolist() for j in cols}

    def same(self, o: Reference) -> bool:
        return (self.nodes, self.edges, self.feat) == (o.nodes, o.edges, o.feat)


def random_request(s: GraphStore, rng: random.Random):
    live_n = s.node_mask.nonzero().squeeze(1).tolist()
    live_e = s.edge_mask.nonzero().squeeze(1).tolist()
    kinds = (["nodes", "features", "node_class"] if len(live_n) > 2 else []) + (
        ["edges", "pairs", "edge_class"] if live_e else [])
    if not kinds:
        return None
    kind = rng.choice(kinds)
    if kind == "nodes":
        return lambda: s.delete_nodes(rng.sample(live_n, 1))
    if kind == "features":
        node = rng.choice(live_n)
        cols = [j for j in range(s.num_features) if s.feature_mask is None or bool(s.feature_mask[node, j])]
        return (lambda: s.delete_node_features([node], rng.sample(cols, 1))) if cols else None
    if kind == "node_class":
        c = int(s.y[rng.choice(live_n)])
        return None if int((s.node_mask & (s.y == c)).sum()) >= len(live_n) - 1 else (lambda: s.delete_node_class(c))
    if kind == "edges":
        return lambda: s.delete_edges(rng.sample(live_e, min(2, len(live_e))))
    if kind == "pairs":
        u, v = s.edge_index[:, rng.choice(live_e)].tolist()
        return lambda: s.delete_edges([(u, v)], layout="pairs")
    c = int(s.edge_type[rng.choice(live_e)])
    return lambda: s.delete_edge_class(c)


def folder_bytes(path: Path) -> bytes:
    return b"".join(f.read_bytes() for f in sorted(Path(path).rglob("*")) if f.is_file())


def assert_erased(s: GraphStore, ref: Reference, x0: torch.Tensor, w0: torch.Tensor, path: Path | None) -> None:
    """No deleted feature value or edge weight in the store's tensors, nor (as float32 bytes) in its folder."""
    dead = [float(x0[i, j]) for i in range(x0.size(0)) for j in range(x0.size(1)) if (i, j) not in ref.feat]
    dead += [float(w0[e]) for e in range(w0.numel()) if e not in ref.edges]
    tensors = [s.x, s.edge_weight, *s.node_attrs.values(), *s.edge_attrs.values()]
    tensors += [getattr(s, name) for name in gstore.CACHE_ATTRS if isinstance(getattr(s, name), torch.Tensor)]
    for t in tensors:
        if t is not None and t.is_floating_point():
            assert not any(bool((t == v).any()) for v in dead), "a deleted value is still in the store's memory"
    if path is not None:
        blob = folder_bytes(path)
        left = [v for v in dead if struct.pack("<f", v) in blob]
        assert not left, f"deleted values {left[:5]} are still in {sorted(p.name for p in path.iterdir())}"


# Every internal step a crash may interrupt.
CRASH_POINTS = [
    (Journal, "append"), (Journal, "mark_applied"), (Journal, "redact_through"), (Journal, "finish_vacuum"),
    (Journal, "_transaction"), (gstore, "atomic_save"), (gio, "atomic_save"), (gio.os, "replace"),
    (gio.os, "fsync"), (gstore, "_remove_strays"), (GraphStore, "_apply"), (torch, "save"), (gio.os, "unlink"),
    (gio, "fsync_dir"), (gstore, "fsync_dir"), (gstore, "write_temp"), (gstore, "commit_temp"),
]


class Inject:
    """Raise ``exc`` at the ``k``-th call of ``owner.attr`` (once)."""

    def __init__(self, owner, attr, k, exc):
        self.owner, self.attr, self.orig, self.k, self.exc, self.n = owner, attr, getattr(owner, attr), k, exc, 0

    def __enter__(self):
        def wrapper(*a, **kw):
            self.n += 1
            if self.n == self.k:
                raise self.exc()
            return self.orig(*a, **kw)

        setattr(self.owner, self.attr, wrapper)
        return self

    def __exit__(self, *exc):
        setattr(self.owner, self.attr, self.orig)
        return False


def crash_run(seed: int, base: Path, steps: int = 18) -> None:
    """Random requests, saves, checkpoints, reopens, read-only opens, compactions, saves elsewhere and over
    another store; a crash is injected into a quarter of them. After every crash: reopen, compare with the
    reference (the crashed request may have been applied, once, or not at all), compact, and search the store's
    memory and folder for deleted values."""
    rng = random.Random(seed)
    directed = rng.random() < 0.5
    s = GraphStore(tagged_graph(seed, directed), undirected=not directed)
    x0, w0, ref = s.x.clone(), s.edge_weight.clone(), Reference(s)
    path = base / "st"
    s.save(path)
    try:
        for step in range(steps):
            op = rng.choice(["req"] * 5 + ["checkpoint", "reopen", "read_only", "compact", "elsewhere", "overwrite"])
            fn = None
            if op == "req":
                fn = random_request(s, rng)
                if fn is None:
                    continue
            elif op == "checkpoint":
                fn = s.checkpoint
            elif op == "compact":
                fn = s.compact
            elif op == "read_only":
                def fn():
                    r = GraphStore.open(path, read_only=True)  # noqa: B023 - called in this iteration
                    assert Reference.observe(r).same(ref)
            elif op == "reopen":
                def fn():
                    nonlocal s
                    s.close()
                    s = GraphStore.open(path)  # noqa: B023
            else:
                target = base / f"{op}{step}"
                if op == "overwrite":  # another store lives there first
                    o = GraphStore(tagged_graph(seed + 99, True), undirected=False)
                    o.save(target)
                    o.delete_nodes([0])
                    o.close()

                def fn(target=target, overwrite=op == "overwrite"):
                    nonlocal path
                    s.save(target, overwrite=overwrite)  # noqa: B023
                    path = target
            before = s._next_id
            if rng.random() < 0.25:
                owner, attr = rng.choice(CRASH_POINTS)
                try:
                    with Inject(owner, attr, rng.randint(1, 3), Crash):
                        result = fn()
                except Crash:
                    where = f"seed {seed} step {step}: crash in {op} at {attr}"
                    die(s)
                    if op in ("elsewhere", "overwrite") and not (target / STATE_FILE).is_file():
                        pass  # the save never reached a snapshot: the old folder is still the store
                    elif op in ("elsewhere", "overwrite") and GraphStore.open(target, read_only=True).uid == s.uid:
                        path = target  # past the commit point: the new folder is the store
                    s = GraphStore.open(path)
                    if op == "req" and s._next_id == before + 1:
                        ref.apply(s, s.requests[-1])  # journaled before the crash: applied exactly once
                    assert s._next_id == before or op == "req", where
                    assert Reference.observe(s).same(ref), where
                    s.compact()
                    assert_erased(s, ref, x0, w0, path)
                    continue
            else:
                result = fn()
            if op == "req":
                ref.apply(s, result)
            assert Reference.observe(s).same(ref), f"seed {seed} step {step}: {op}"
            if op == "compact":
                assert_erased(s, ref, x0, w0, path)
        s.close()
        s = GraphStore.open(path)
        assert Reference.observe(s).same(ref)
        s.compact()
        assert_erased(s, ref, x0, w0, path)
    finally:
        s.close()


# ----------------------------------------------------------------------------------------------- what held
def test_random_sequences_with_crashes_lose_nothing_and_erase_everything(tmp_path):
    for seed in range(12):
        base = tmp_path / str(seed)
        base.mkdir()
        crash_run(seed, base)
        shutil.rmtree(base)


def test_every_single_field_edit_of_every_journal_row_is_refused_or_harmless(tmp_path):
    ref = tmp_path / "ref"
    s = store_a()
    s.save(ref)
    s.delete_nodes([4])
    s.delete_edges([(0, 1)])
    s.checkpoint()
    s.delete_node_features([2], [1])
    s.delete_edge_class(1)
    s.close()
    good = GraphStore.open(ref, read_only=True)
    expected = (good.node_mask.tolist(), good.edge_mask.tolist(), good.feature_mask.tolist())
    conn = sqlite3.connect(journal_path(ref))
    rows = conn.execute("SELECT rowid, id, kind, status, created, summary, payload, salt, digest, chain "
                        "FROM requests").fetchall()
    conn.close()
    cols = ["id", "kind", "status", "created", "summary", "payload", "salt", "digest", "chain"]

    def variants(v):
        out = [None]
        if isinstance(v, int):
            out += [v + 1, v - 1]
        if isinstance(v, float):
            out += [v + 1.0]
        if isinstance(v, str):
            out += [v + "x", b"x"]
        if isinstance(v, bytes):
            out += [v[:-1], bytes([v[0] ^ 1]) + v[1:], v.decode("latin1"), 5]
        return out

    tried = 0
    for row in rows:
        for c, col in enumerate(cols):
            for value in variants(row[c + 1]):
                p = tmp_path / "t"
                shutil.rmtree(p, ignore_errors=True)
                shutil.copytree(ref, p)
                conn = sqlite3.connect(journal_path(p))
                try:
                    conn.execute(f"UPDATE requests SET {col} = ? WHERE rowid = ?", (value, row[0]))
                    conn.commit()
                except sqlite3.DatabaseError:  # the schema refuses it (NOT NULL, CHECK)
                    continue
                finally:
                    conn.close()
                files = {f.name: f.read_bytes() for f in p.iterdir() if not f.name.endswith(".lock")}
                for read_only in (True, False):
                    tried += 1
                    try:
                        o = GraphStore.open(p, read_only=read_only)
                    except CorruptFileError as exc:
                        assert str(journal_path(p)) in str(exc)
                        assert files == {f.name: f.read_bytes() for f in p.iterdir() if not f.name.endswith(".lock")}
                        continue
                    # accepted: only edits that change nothing the store reads (the status, equal values)
                    assert (o.node_mask.tolist(), o.edge_mask.tolist(), o.feature_mask.tolist()) == expected, (
                        row[1], col, value)
                    o.close()
    assert tried > 100


def test_path_traversal_through_the_snapshot_journal_field_is_refused(tmp_path):
    s = store_a()
    s.save(tmp_path / "st")
    s.close()
    (tmp_path / "journal-0000000000000000.sqlite").write_bytes(journal_path(tmp_path / "st").read_bytes())
    state = torch.load(tmp_path / "st" / STATE_FILE, weights_only=True)
    for name in ("../journal-0000000000000000.sqlite", str(tmp_path / "journal-0000000000000000.sqlite"),
                 "journal-0000000000000000.sqlite/../" + state["journal"], "journal.sqlite", ["x"], None):
        torch.save({**state, "journal": name}, tmp_path / "st" / STATE_FILE)
        with pytest.raises(CorruptFileError, match="journal"):
            GraphStore.open(tmp_path / "st")


@pytest.mark.parametrize("kind,payload,field", [
    ("edges", dict(edge_ids=[2]), "edge_ids"),
    ("edges", dict(edge_ids=torch.tensor([2], dtype=torch.int32)), "edge_ids"),
    ("edges", dict(edge_ids=torch.tensor([[2]])), "edge_ids"),
    ("edges", dict(edge_ids=torch.tensor([2 ** 62])), "edge_ids"),
    ("edges", dict(edge_ids=torch.tensor([-1])), "edge_ids"),
    ("edges", dict(edge_ids=torch.tensor([2]), hops=[]), "hops"),
    ("edges", dict(edge_ids=torch.tensor([2]), hops=[[1]]), "hops"),
    ("edge_class", dict(edge_ids=torch.tensor([1, 3]), params={"edge_class": True}), "params"),
    ("edge_class", dict(edge_ids=torch.tensor([1, 3]), params={"edge_class": 1.0}), "params"),
    ("edges", dict(edge_ids=torch.tensor([2]), params=[]), "params"),
])
def test_rechained_rows_with_wrong_structures_are_refused(tmp_path, kind, payload, field):
    """Even a row appended with the library's own chain (no key protects it) is validated field by field."""
    path = tmp_path / "st"
    s = store_a()
    s.save(path)
    s.delete_nodes([4])
    s.close()
    append_row(path, kind, payload)
    with pytest.raises(CorruptFileError, match=field):
        GraphStore.open(path)


def append_row(path: Path, kind: str, fields: dict) -> None:
    empty = torch.empty(0, dtype=torch.long)
    payload = {"node_ids": empty, "edge_ids": empty, "feature_node_ids": empty, "feature_columns": None,
               "params": {}, "hops": [torch.tensor([0])], "subgraph_edge_ids": empty, **fields}
    j = Journal(journal_path(path))
    j.append(j.head[0] + 1, kind, "crafted", to_bytes(payload))
    j.close()


@pytest.mark.slow
def test_a_hot_sqlite_journal_from_a_killed_compaction_is_rolled_back_and_erased(tmp_path):
    """A process killed inside the redaction transaction leaves a hot ``-journal`` holding the old pages (with
    the payloads); reopening rolls it back and the next compaction erases them."""
    path = tmp_path / "st"
    s = store_a()
    s.save(path)
    s.delete_nodes([4])
    s.delete_edges([(0, 1)])
    s.close()
    code = (
        "import os, sys\n"
        "from graphunlearn.io import Journal\n"
        "from graphunlearn.store import GraphStore\n"
        "s = GraphStore.open(sys.argv[1])\n"
        "orig = Journal._transaction\n"
        "def tx(self):\n"
        "    t = orig(self)\n"
        "    class T:\n"
        "        def __enter__(_): t.__enter__()\n"
        "        def __exit__(_, *a): os._exit(3)\n"
        "    return T()\n"
        "Journal.redact_through = (lambda r: lambda self, k: (setattr(Journal, '_transaction', tx), r(self, k))[1])("
        "Journal.redact_through)\n"
        "s.compact()\n")
    proc = subprocess.run([sys.executable, "-c", code, str(path)], cwd=REPO, capture_output=True, timeout=120)
    assert proc.returncode == 3, proc.stderr.decode()[-500:]
    assert any(p.name.endswith("-journal") for p in path.iterdir())
    o = GraphStore.open(path, read_only=True)
    assert o.num_nodes == 4 and all(q.redacted for q in o.requests)
    o = GraphStore.open(path)
    o.compact()
    o.close()
    conn = sqlite3.connect(journal_path(path))
    left = conn.execute("SELECT count(*) FROM requests WHERE payload IS NOT NULL OR salt IS NOT NULL").fetchone()
    assert left == (0,)
    conn.close()
    assert not any(p.name.endswith("-journal") for p in path.iterdir())
    assert b"PK\x03\x04" not in journal_path(path).read_bytes()  # no serialized payload left in any page


@pytest.mark.slow
def test_second_process_is_refused_while_the_writer_works(tmp_path):
    path = tmp_path / "st"
    n = 200
    s = GraphStore(Data(x=torch.randn(n, 2), edge_index=torch.stack([torch.arange(n - 1), torch.arange(1, n)]),
                        num_nodes=n), undirected=False)
    s.save(path)
    s.close()
    writer = (
        "import sys, time\n"
        "from graphunlearn.store import GraphStore\n"
        "s = GraphStore.open(sys.argv[1]); print('ready', flush=True)\n"
        "for i in range(60):\n"
        "    s.delete_edges(s.edge_mask.nonzero().squeeze(1)[:1])\n"
        "    if i % 7 == 6: s.compact()\n"
        "    if i % 5 == 4: s.checkpoint()\n"
        "sys.stdin.readline(); s.close()\n")
    proc = subprocess.Popen([sys.executable, "-c", writer, str(path)], cwd=REPO, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        seen = -1
        for _ in range(20):
            with pytest.raises(StoreLockedError, match="open for writing elsewhere"):
                GraphStore.open(path)
            with pytest.raises(StoreLockedError):
                store_a().save(path, overwrite=True)
            try:
                r = GraphStore.open(path, read_only=True)
            except CorruptFileError as exc:  # see test_reader_racing_an_append_sees_a_consistent_snapshot
                assert "head records" in str(exc)
                continue
            dead = r._next_id
            assert dead >= seen and int((~r.edge_mask).sum()) + (n - 1 - r.num_edges) == dead
            seen = dead
    finally:
        proc.stdin.write("\n")
        proc.stdin.flush()
        proc.wait(timeout=60)
    o = GraphStore.open(path)
    assert o._next_id == 60 and int((~o.edge_mask).sum()) + (n - 1 - o.num_edges) == 60
    o.close()


# ----------------------------------------------------------------------------------------------- faults found
def test_failed_compaction_does_not_renumber_the_journal(tmp_path, monkeypatch):
    path = tmp_path / "st"
    s = store_a()
    s.save(path)
    s.delete_nodes([0])

    def full_disk(*a, **kw):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(gstore, "write_temp", full_disk)  # the new snapshot cannot be written
    with pytest.raises(OSError):
        s.compact()
    monkeypatch.undo()
    s.delete_nodes([s.num_nodes - 1])  # the last node, whatever the numbering (features 13, 14, 15)
    live_rows = sorted(s.retained().x.tolist())
    s.close()
    o = GraphStore.open(path)
    assert sorted(o.retained().x.tolist()) == live_rows == [[4.0, 5.0, 6.0], [7.0, 8.0, 9.0], [10.0, 11.0, 12.0]]


def test_error_after_the_commit_point_of_save_keeps_a_store(tmp_path, monkeypatch):
    path = tmp_path / "st"
    old = store_a()
    old.save(path)
    old.delete_nodes([1])
    old.close()
    new = store_a()
    new.delete_nodes([3])

    def eio(folder):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(gstore, "fsync_dir", eio)
    with pytest.raises(OSError):
        new.save(path, overwrite=True)
    monkeypatch.undo()
    assert new._dir == path.resolve()  # past the commit point the folder is the new store, and new holds it
    new.delete_nodes([2])  # so what it acknowledges next is journaled there
    new.close()
    o = GraphStore.open(path)
    assert o.node_mask.tolist() == [True, True, False, False, True]


def test_checkpoint_after_an_interrupted_request_keeps_the_store_openable(tmp_path, monkeypatch):
    path = tmp_path / "st"
    s = store_a()
    s.save(path)
    s.delete_nodes([4])

    def interrupted(self, req):
        raise KeyboardInterrupt

    monkeypatch.setattr(GraphStore, "_apply", interrupted)
    with pytest.raises(KeyboardInterrupt):
        s.delete_nodes([0])
    monkeypatch.undo()
    for call in (s.checkpoint, s.compact, lambda: s.delete_nodes([1])):  # memory no longer matches the journal
        with pytest.raises(RuntimeError, match="request 1 was interrupted.*reopen it"):
            call()
    s.close()
    o = GraphStore.open(path)  # the journaled request is applied in full
    assert not o.node_mask[4] and not o.node_mask[0] and o._next_id == 2


def test_reader_racing_an_append_sees_a_consistent_snapshot(tmp_path, monkeypatch):
    path = tmp_path / "st"
    s = store_a()
    s.save(path)
    s.delete_nodes([4])
    verify = Journal.verify

    def writer_appends_meanwhile(self):
        if self.conn is not s._journal.conn and s._next_id == 1:
            s.delete_edges([(0, 1)])  # the writer does not take the state lock for a request
        return verify(self)

    monkeypatch.setattr(Journal, "verify", writer_appends_meanwhile)
    r = GraphStore.open(path, read_only=True)
    assert r._next_id in (1, 2) and not r.node_mask[4]


@pytest.mark.parametrize("field", ["node_mask", "edge_mask", "feature_mask"])
def test_snapshot_edit_cannot_resurrect_a_deletion(tmp_path, field):
    path = tmp_path / "st"
    s = store_a()
    s.save(path)
    s.delete_nodes([4])
    s.delete_edges([(0, 1)])
    s.delete_node_features([2], [1])
    s.checkpoint()
    s.close()
    state = torch.load(path / STATE_FILE, weights_only=True)
    mask = state[field].clone()
    mask[(~mask).nonzero()[0].tolist()] = True
    torch.save({**state, field: mask}, path / STATE_FILE)
    with pytest.raises(CorruptFileError, match="store.pt"):
        GraphStore.open(path, read_only=True)


def test_snapshot_edit_of_compacted_through_does_not_erase_records(tmp_path):
    path = tmp_path / "st"
    s = store_a()
    s.save(path)
    s.delete_nodes([4])
    s.delete_edges([(0, 1)])
    s.checkpoint()
    s.close()
    state = torch.load(path / STATE_FILE, weights_only=True)
    torch.save({**state, "compacted_through": 0}, path / STATE_FILE)
    try:
        o = GraphStore.open(path)
    except CorruptFileError:
        return
    o.close()
    assert not o.requests[0].redacted
    conn = sqlite3.connect(journal_path(path))
    assert conn.execute("SELECT payload IS NOT NULL FROM requests WHERE id = 0").fetchone() == (1,)
    conn.close()


@pytest.mark.parametrize("case", ["head_id NULL", "head_chain NULL", "head_chain text", "node_deleted_by None",
                                  "edge_deleted_by None"])
def test_wrongly_typed_meta_and_snapshot_fields_are_clear_errors(tmp_path, case):
    path = tmp_path / "st"
    s = store_a()
    s.save(path)
    s.delete_nodes([4])
    s.close()
    if case.startswith("head"):
        key, value = case.split()[0], (None if case.endswith("NULL") else "abc")
        conn = sqlite3.connect(journal_path(path))
        conn.execute("UPDATE meta SET value = ? WHERE key = ?", (value, key))
        conn.commit()
        conn.close()
    else:
        state = torch.load(path / STATE_FILE, weights_only=True)
        torch.save({**state, case.split()[0]: None}, path / STATE_FILE)
    with pytest.raises(CorruptFileError):
        GraphStore.open(path)


@pytest.mark.parametrize("kind,fields", [
    ("nodes", dict(node_ids=torch.tensor([1]))),  # incident edges 0 (0,1) and 2 (1,2) stay live
    ("edges", dict(node_ids=torch.tensor([1]), edge_ids=torch.tensor([0, 2]))),
    ("node_features", dict(node_ids=torch.tensor([0]), feature_node_ids=torch.tensor([1]))),
    ("edges", dict(edge_ids=torch.tensor([2]), feature_node_ids=torch.tensor([1]))),
    ("edge_class", dict(edge_ids=torch.tensor([2]), params={"edge_class": 1})),  # edge 2 is of class 0
])
def test_rechained_rows_must_match_their_kind(tmp_path, kind, fields):
    path = tmp_path / "st"
    s = store_a()
    s.save(path)
    s.delete_nodes([4])
    s.close()
    append_row(path, kind, fields)
    with pytest.raises(CorruptFileError):
        GraphStore.open(path)


@pytest.mark.parametrize("tensor", ["meta", "sparse"])
def test_payload_with_exotic_tensors_is_a_clear_error(tmp_path, tensor):
    path = tmp_path / "st"
    s = store_a()
    s.save(path)
    s.close()
    ids = torch.empty(1, dtype=torch.long, device="meta") if tensor == "meta" else torch.tensor([2]).to_sparse()
    append_row(path, "edges", dict(edge_ids=ids))
    with pytest.raises(CorruptFileError):
        GraphStore.open(path)


def test_read_only_open_leaves_the_folder_untouched(tmp_path):
    path = tmp_path / "st"
    s = store_a()
    s.save(path)
    s.close()
    (path / "state.lock").unlink()
    names = sorted(p.name for p in path.iterdir())
    GraphStore.open(path, read_only=True)
    assert sorted(p.name for p in path.iterdir()) == names


# ----------------------------------------------------------------------------------------------- bad inputs
def bad_calls():
    meta = torch.tensor([1], device="meta")
    sparse = torch.tensor([1, 2]).to_sparse()
    yield "delete_nodes(bytearray)", lambda s: s.delete_nodes(bytearray(b"\x01"))
    yield "delete_nodes(memoryview)", lambda s: s.delete_nodes(memoryview(b"\x01"))
    yield "delete_node_features(bytearray)", lambda s: s.delete_node_features(bytearray(b"\x01"))
    yield "delete_node_features(cols=bytearray)", lambda s: s.delete_node_features([1], bytearray(b"\x01"))
    yield "delete_nodes(meta)", lambda s: s.delete_nodes(meta)
    yield "delete_edges(meta)", lambda s: s.delete_edges(meta)
    yield "edge_ids(meta)", lambda s: s.edge_ids(meta)
    yield "delete_edge_class(meta)", lambda s: s.delete_edge_class(torch.tensor(1, device="meta"))
    yield "delete_nodes(sparse)", lambda s: s.delete_nodes(sparse)
    yield "delete_edges(sparse)", lambda s: s.delete_edges(sparse)
    yield "affected_subgraph(hop=tensor)", lambda s: s.affected_subgraph(s.requests[0], torch.tensor([1, 2]))
    yield "affected_subgraph(hop=1.5)", lambda s: s.affected_subgraph(s.requests[0], 1.5)
    yield "GraphStore(undirected=tensor)", lambda s: GraphStore(graph_a(), undirected=torch.tensor([True, False]))
    yield "record_forgotten(bytes)", lambda s: s.record_forgotten("m", b"AB")
    yield "record_forgotten(-5)", lambda s: s.record_forgotten("m", [-5])
    yield "record_forgotten(unknown id)", lambda s: s.record_forgotten("m", [10 ** 6])


@pytest.mark.parametrize("name,call", list(bad_calls()), ids=[n for n, _ in bad_calls()])
def test_awkward_inputs_are_refused_clearly_and_change_nothing(name, call):
    s = store_a()
    s.delete_nodes([0])
    before, forgotten = snapshot(s), dict(s.forgotten)
    with pytest.raises((DeletionError, TypeError, ValueError)) as info:
        call(s)
    assert not isinstance(info.value, (NotImplementedError,)) and "ambiguous" not in str(info.value)
    assert "slice indices" not in str(info.value)
    assert_same_snapshot(before, snapshot(s))
    assert s.forgotten == forgotten


def test_flags_must_be_bools(tmp_path):
    other = store_a()
    other.save(tmp_path / "st")
    other.close()
    with pytest.raises(TypeError):
        store_a().save(tmp_path / "st", overwrite="no")
    with pytest.raises(TypeError):
        GraphStore.open(tmp_path / "st", read_only="no")


GOOD_INPUTS = [
    ("[3, True]", lambda s: s.delete_nodes([3, True])),
    ("True", lambda s: s.delete_nodes(True)),
    ("None", lambda s: s.delete_nodes(None)),
    ("[None]", lambda s: s.delete_nodes([None])),
    ("1.0", lambda s: s.delete_nodes(1.0)),
    ("[1.0]", lambda s: s.delete_nodes([1.0])),
    ("float tensor", lambda s: s.delete_nodes(torch.tensor([1.0], requires_grad=True))),
    ("bool tensor", lambda s: s.delete_nodes(torch.tensor([True, False]))),
    ("np.bool_", lambda s: s.delete_nodes(np.bool_(True))),
    ("np float", lambda s: s.delete_nodes(np.array([1.0]))),
    ("np object", lambda s: s.delete_nodes(np.array([1, None], dtype=object))),
    ("str", lambda s: s.delete_nodes("1")),
    ("bytes", lambda s: s.delete_nodes(b"\x01")),
    ("dict", lambda s: s.delete_nodes({1: 2})),
    ("object", lambda s: s.delete_nodes(object())),
    ("ragged", lambda s: s.delete_edges([[1, 2], [3]])),
    ("too deep", lambda s: s.delete_edges([[[1]]])),
    ("mixed", lambda s: s.delete_edges([1, [2, 3]])),
    ("[2,2] tensor", lambda s: s.delete_edges(torch.tensor([[0, 1], [1, 2]]))),
    ("2**70", lambda s: s.delete_edge_class(2 ** 70)),
    ("[2**63]", lambda s: s.delete_nodes([2 ** 63])),
    ("-1", lambda s: s.delete_nodes([-1])),
    ("empty", lambda s: s.delete_nodes([])),
    ("empty tensor", lambda s: s.delete_edges(torch.empty(0, dtype=torch.long))),
    ("layout", lambda s: s.delete_edges([0], layout="rows")),
    ("num_hops", lambda s: GraphStore(graph_a(), num_hops=True)),
    ("undirected", lambda s: GraphStore(graph_a(), undirected=1)),
    ("forget_set", lambda s: s.forget_set(s.requests[0])),
    ("check_request", lambda s: s.check_request(0)),
    ("record_forgotten tag", lambda s: s.record_forgotten("", [0])),
    ("deleted node", lambda s: s.delete_nodes([0])),
]


@pytest.mark.parametrize("name,call", GOOD_INPUTS, ids=[n for n, _ in GOOD_INPUTS])
def test_refused_inputs_that_held(name, call):
    s = store_a()
    s.delete_nodes([0])
    before = snapshot(s)
    with pytest.raises((DeletionError, TypeError, ValueError)):
        call(s)
    assert_same_snapshot(before, snapshot(s))


def test_refused_request_on_a_saved_store_writes_nothing(tmp_path):
    path = tmp_path / "st"
    s = store_a()
    s.save(path)
    s.delete_nodes([4])
    digest = hashlib.sha256(journal_path(path).read_bytes()).hexdigest()
    for _name, call in GOOD_INPUTS[:20]:
        with pytest.raises((DeletionError, TypeError, ValueError)):
            call(s)
    assert hashlib.sha256(journal_path(path).read_bytes()).hexdigest() == digest
    s.close()
