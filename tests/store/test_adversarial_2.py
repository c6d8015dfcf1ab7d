"""Second adversarial pass over the saved store (issue 9), against the fixed version: forked children holding a
writer store, deaths at every durability step (the disk is copied at the instant of death, so no cleanup
handler runs), random histories reopened read-only after every step, and a reader racing a writer process.

The forked-child and interrupted-save tests reproduce faults this pass found; the rest record what held."""

from __future__ import annotations

import multiprocessing as mp
import random
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch_geometric.data import Data

import graphunlearn.io as gio
import graphunlearn.store as gstore
from graphunlearn.io import CorruptFileError, Journal, StoreLockedError
from graphunlearn.store import STATE_FILE, DeletionError, GraphStore
from tests.store.helpers import store_a
from tests.store.test_adversarial import Reference, folder_bytes, tagged_graph

REPO = Path(__file__).resolve().parents[2]
NODE4_FEATURES = [struct.pack("<f", v) for v in (13.0, 14.0, 15.0)]  # x of node 4 in store_a()


# ----------------------------------------------------------------------------------------------- fork
def _child_checkpoints(store, go, done):
    go.wait(30)
    try:
        store.checkpoint()
        done.put("checkpointed")
    except (RuntimeError, StoreLockedError) as exc:
        done.put(f"refused: {exc}")


def _child_waits(started, go):
    started.set()
    go.wait(30)


def _fork_child(store, go, done):
    ctx = mp.get_context("fork")
    proc = ctx.Process(target=_child_checkpoints, args=(store, go, done))
    proc.start()
    return proc


@pytest.mark.skipif(not hasattr(gio, "fcntl") or gio.fcntl is None, reason="needs flock")
def _open_when_free(path, seconds: float = 20.0):
    """Open as the writer, retrying while a just-forked child has not yet run its after-fork hook (until it
    does, its inherited copy of the lock's file description keeps the flock held: the README's "a parent that
    closes and reopens at once may be refused and should retry"). On a loaded machine that takes a moment."""
    import time

    deadline = time.monotonic() + seconds
    while True:
        try:
            return GraphStore.open(path)
        except gio.StoreLockedError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def test_forked_child_cannot_write_once_another_writer_holds_the_folder(tmp_path):
    path = tmp_path / "st"
    s = store_a()
    s.save(path)
    s.delete_nodes([4])
    ctx = mp.get_context("fork")
    go, done = ctx.Event(), ctx.Queue()
    proc = _fork_child(s, go, done)
    try:
        s.close()
        w = _open_when_free(path)  # the lock passed to a new writer, as promised
        w.compact()  # node 4's features are erased from the folder
        w.close()
        go.set()
        outcome = done.get(timeout=60)
    finally:
        proc.join(60)
        if proc.is_alive():
            proc.kill()
    blob = (path / STATE_FILE).read_bytes()
    assert outcome.startswith("refused"), "the child wrote a snapshot without holding the writer lock"
    assert not any(v in blob for v in NODE4_FEATURES)
    with GraphStore.open(path) as o:
        assert o.num_nodes == 4


@pytest.mark.skipif(not hasattr(gio, "fcntl") or gio.fcntl is None, reason="needs flock")
def test_a_new_writer_opens_while_a_forked_child_lives(tmp_path):
    path = tmp_path / "st"
    s = store_a()
    s.save(path)
    s.delete_nodes([4])
    ctx = mp.get_context("fork")
    go, started = ctx.Event(), ctx.Event()
    proc = ctx.Process(target=_child_waits, args=(started, go))
    proc.start()
    try:
        # until the child has run its at-fork hook its copy of the descriptor holds the lock (a short race)
        assert started.wait(30)
        with pytest.raises(StoreLockedError):
            GraphStore.open(path)  # the parent still holds it
        s.close()
        w = GraphStore.open(path)  # the child's copy of the lock descriptor was dropped at fork
        w.delete_nodes([0])
        w.close()
    finally:
        go.set()
        proc.join(30)
    with GraphStore.open(path, read_only=True) as o:
        assert o.node_mask.tolist() == [False, True, True, True, False]


# ----------------------------------------------------------------------------------------------- deaths
DEATH_POINTS = [(gio.os, "replace"), (gio.os, "fsync"), (gstore, "fsync_dir"), (gio, "fsync_dir"),
                (gstore, "write_temp"), (gstore, "commit_temp"), (Journal, "append_all"), (Journal, "append"),
                (Journal, "mark_applied"), (Journal, "redact_through"), (Journal, "finish_vacuum"),
                (gstore, "_remove_strays"), (GraphStore, "_apply"), (gstore, "atomic_save"), (gio.os, "unlink")]


class DiskAtDeath:
    """Copy ``root`` just before and just after every call of each durability step: each copy is the disk of a
    process that died at that instant (no ``except`` clause, no cleanup ran). The operation itself completes."""

    def __init__(self, root: Path, points=DEATH_POINTS):
        self.root, self.points, self.copies = root, points, []

    def _take(self, label):
        dst = Path(f"{self.root}-dead{len(self.copies)}")
        shutil.copytree(self.root, dst)
        self.copies.append((label, dst))

    def __enter__(self):
        self.saved = [(owner, attr, getattr(owner, attr)) for owner, attr in self.points]
        for owner, attr, orig in self.saved:
            def wrapper(*a, _orig=orig, _attr=attr, **kw):
                self._take(f"before {_attr}")
                out = _orig(*a, **kw)
                self._take(f"after {_attr}")
                return out

            setattr(owner, attr, wrapper)
        return self

    def __exit__(self, *exc):
        for owner, attr, orig in reversed(self.saved):
            setattr(owner, attr, orig)
        return False


def _dead_values(x0, w0, ref: Reference) -> list[bytes]:
    dead = [float(x0[i, j]) for i in range(x0.size(0)) for j in range(x0.size(1)) if (i, j) not in ref.feat]
    dead += [float(w0[e]) for e in range(w0.numel()) if e not in ref.edges]
    return [struct.pack("<f", v) for v in dead]


def _history(root: Path, seed: int, directed: bool) -> GraphStore:
    s = GraphStore(tagged_graph(seed, directed), undirected=not directed)
    s.save(root / "P")
    s.delete_nodes([1])
    s.delete_node_features([2], [0])
    s.delete_edges(s.edge_mask.nonzero().squeeze(1)[:2])
    if seed % 2:
        s.checkpoint()
    return s


OPS = {
    "nodes": lambda s, root: s.delete_nodes([3]),
    "features": lambda s, root: s.delete_node_features([5]),
    "edge_class": lambda s, root: s.delete_edge_class(int(s.edge_type[s.edge_mask][0])),
    "node_class": lambda s, root: s.delete_node_class(int(s.y[7])),
    "checkpoint": lambda s, root: s.checkpoint(),
    "compact": lambda s, root: s.compact(),
    "save_over": lambda s, root: s.save(root / "Q", overwrite=True),
}


def _check_dead_disk(copy: Path, uid: str, before: Reference, after: Reference, x0, w0, where: str):
    path = copy / "P"
    q = copy / "Q"
    if (q / STATE_FILE).is_file() and GraphStore.open(q, read_only=True).uid == uid:
        path = q  # past the commit point of save: the store lives in Q
    seen = Reference.observe(GraphStore.open(path, read_only=True))
    s = GraphStore.open(path)
    try:
        now = Reference.observe(s)
        assert now.same(before) or now.same(after), where
        assert seen.same(now), f"{where}: the read-only open disagrees with the writer's"
        s.compact()
        blob = folder_bytes(path)
        assert not any(v in blob for v in _dead_values(x0, w0, now)), f"{where}: a deleted value is on disk"
    finally:
        s.close()


@pytest.mark.slow
@pytest.mark.parametrize("op", list(OPS))
def test_death_at_every_durability_step_keeps_old_or_new_and_erases(tmp_path, op):
    for seed, directed in ((1, True), (2, False)):
        root = tmp_path / f"{op}{seed}" / "root"
        root.mkdir(parents=True)
        s = _history(root, seed, directed)
        if op == "save_over":  # another store lives in Q first
            o = GraphStore(tagged_graph(seed + 50, True), undirected=False)
            o.save(root / "Q")
            o.delete_nodes([0])
            o.close()
        fresh = GraphStore(tagged_graph(seed, directed), undirected=not directed)
        x0, w0, before, uid = fresh.x.clone(), fresh.edge_weight.clone(), Reference.observe(s), s.uid
        with DiskAtDeath(root) as deaths:
            OPS[op](s, root)
        after = Reference.observe(s)
        s.close()
        assert deaths.copies
        for label, copy in deaths.copies:
            _check_dead_disk(copy, uid, before, after, x0, w0, f"{op} seed {seed}: death {label}")


def test_death_inside_save_to_a_new_folder_leaves_no_deleted_values_behind(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    s = store_a()
    s.save(root / "P")
    s.delete_nodes([4])  # features 13, 14, 15 are deleted but not yet compacted
    with DiskAtDeath(root, [(gio.os, "replace")]) as deaths:  # the snapshot's rename: the commit point
        s.save(root / "Q")
    s.close()
    label, copy = deaths.copies[0]
    assert label == "before replace" and not (copy / "Q" / STATE_FILE).exists()
    with pytest.raises(FileNotFoundError):
        GraphStore.open(copy / "Q")  # Q never became a store
    with GraphStore.open(copy / "P") as p:  # the store is still P: reopen and compact it
        p.compact()
    left = sorted(f.name for f in (copy / "Q").iterdir() if any(v in f.read_bytes() for v in NODE4_FEATURES))
    assert not left, f"deleted feature values of node 4 are still in {left}"


# ----------------------------------------------------------------------------------------------- histories
def _random_graph(rng: random.Random, directed: bool) -> Data:
    n, m = rng.randint(1, 9), rng.randint(0, 16)
    g = torch.Generator().manual_seed(rng.randint(0, 10**6))
    ei = torch.stack([torch.randint(n, (m,), generator=g), torch.randint(n, (m,), generator=g)])
    base_t, base_w = torch.randint(3, (m,), generator=g), torch.rand(m, generator=g) + 0.1
    if not directed:  # one copy per unordered pair, both directions, attributes equal in both
        key = torch.minimum(ei[0], ei[1]) * n + torch.maximum(ei[0], ei[1])
        key, first = torch.unique(key, return_inverse=True)
        u, v = key // n, key % n
        pick = torch.zeros(key.numel(), dtype=torch.long).scatter_(0, first, torch.arange(m))
        base_t, base_w = base_t[pick], base_w[pick]
        nl = u != v
        ei = torch.cat([torch.stack([u, v]), torch.stack([v[nl], u[nl]])], 1)
        base_t, base_w = torch.cat([base_t, base_t[nl]]), torch.cat([base_w, base_w[nl]])
    d = Data(edge_index=ei, num_nodes=n)
    if rng.random() < 0.7:
        d.x = torch.randn(n, rng.randint(1, 4), generator=g)
    if rng.random() < 0.7:
        d.y = torch.randint(3, (n,), generator=g)
    if rng.random() < 0.6:
        d.edge_type = base_t
        if rng.random() < 0.7:
            d.edge_weight = base_w
    return d


def _random_request(s: GraphStore, rng: random.Random) -> None:
    live_n = s.node_mask.nonzero().squeeze(1).tolist()
    live_e = s.edge_mask.nonzero().squeeze(1).tolist()
    kinds = (["nodes"] if live_n else []) + (["features"] if live_n and s.x is not None else []) + (
        ["node_class"] if live_n and s.y is not None else []) + (["edges", "pairs"] if live_e else []) + (
        ["edge_class"] if live_e and s.edge_type is not None else [])
    if not kinds:
        return
    kind = rng.choice(kinds)
    try:
        if kind == "nodes":
            s.delete_nodes(rng.sample(live_n, rng.randint(1, min(2, len(live_n)))))
        elif kind == "features":
            cols = None if rng.random() < 0.3 else [rng.randrange(s.num_features)]
            s.delete_node_features([rng.choice(live_n)], cols)
        elif kind == "node_class":
            s.delete_node_class(int(s.y[rng.choice(live_n)]))
        elif kind == "edges":
            s.delete_edges(rng.sample(live_e, min(len(live_e), rng.randint(1, 2))))
        elif kind == "pairs":
            u, v = s.edge_index[:, rng.choice(live_e)].tolist()
            s.delete_edges([(u, v)], layout="pairs")
        else:
            s.delete_edge_class(int(s.edge_type[rng.choice(live_e)]))
    except DeletionError:  # e.g. the features of that node in that column are already deleted
        pass


def _view(s: GraphStore):
    kept = s.retained()
    fm = None if s.feature_mask is None else (s.feature_mask & s.node_mask[:, None]).tolist()
    return (s.num_nodes, s.num_edges, s.node_mask.tolist(), s.edge_mask.tolist(), fm,
            None if kept.x is None else kept.x.tolist(), kept.edge_index.tolist(), s._next_id)


@pytest.mark.parametrize("seed", range(4))
def test_random_legitimate_histories_always_reopen_identically(tmp_path, seed):
    """Every kind, directed and undirected, self loops, stores with and without x/y/edge_type/edge_weight,
    num_hops 0..3, repeated compactions: after each step a read-only open equals the store in memory (no false
    positive of the snapshot cross-check or the kind checks)."""
    for sub in range(3):
        rng = random.Random(1000 * seed + sub)
        directed = rng.random() < 0.5
        s = GraphStore(_random_graph(rng, directed), undirected=not directed, num_hops=rng.randint(0, 3))
        path = tmp_path / f"s{sub}"
        s.save(path)
        for step in range(20):
            op = rng.choice(["request"] * 6 + ["checkpoint", "compact", "reopen"])
            if op == "request":
                _random_request(s, rng)
            elif op == "checkpoint":
                s.checkpoint()
            elif op == "compact":
                s.compact()
            else:
                s.close()
                s = GraphStore.open(path)
            assert _view(GraphStore.open(path, read_only=True)) == _view(s), f"seed {seed}/{sub} step {step} {op}"
        s.close()


# ----------------------------------------------------------------------------------------------- processes
@pytest.mark.slow
def test_reader_beside_a_writer_process_never_refuses_nor_goes_back(tmp_path):
    n = 300
    path = tmp_path / "st"
    s = GraphStore(Data(x=torch.randn(n, 2), edge_index=torch.stack([torch.arange(n - 1), torch.arange(1, n)]),
                        num_nodes=n), undirected=False)
    s.save(path)
    s.close()
    writer = ("import sys\nfrom graphunlearn.store import GraphStore\n"
              "s = GraphStore.open(sys.argv[1]); print('ready', flush=True)\n"
              "for i in range(120):\n"
              "    s.delete_edges(s.edge_mask.nonzero().squeeze(1)[:1])\n"
              "    if i % 11 == 10: s.compact()\n"
              "    if i % 4 == 3: s.checkpoint()\n"
              "    if i % 37 == 36: s.close(); s = GraphStore.open(sys.argv[1])\n"
              "    if i == 70: s.save(sys.argv[1], overwrite=True)\n"
              "s.close()\n")
    proc = subprocess.Popen([sys.executable, "-c", writer, str(path)], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        seen, opens = -1, 0
        while proc.poll() is None:
            try:
                r = GraphStore.open(path, read_only=True)
            except CorruptFileError as exc:  # a healthy store, mid-write: never a reason to refuse
                pytest.fail(f"the reader refused a healthy store: {exc}")
            opens += 1
            dead = r._next_id
            assert int((~r.edge_mask).sum()) + (n - 1 - r.num_edges) == dead
            assert dead >= seen, f"the reader went back from {seen} to {dead}"
            seen = dead
    finally:
        proc.wait(timeout=120)
    assert proc.returncode == 0 and opens > 0
    with GraphStore.open(path) as o:
        assert o._next_id == 120

