"""Erasure: compact() physically removes deleted data, in memory and in the store's folder."""

from __future__ import annotations

import io
import sqlite3
import struct
import zipfile
from pathlib import Path

import pytest
import torch
from torch_geometric.data import Data

import graphunlearn as gu
from graphunlearn.io import Journal, safe_load
from graphunlearn.store import STATE_FILE, GraphStore, journal_path
from tests.conftest import assert_close
from tests.store.helpers import die, features, folder_files, pairs_of, random_graph, store_a


class SimulatedCrash(BaseException):
    pass


@pytest.fixture(autouse=True)
def sqlite_without_secure_delete(monkeypatch):
    """Some SQLite builds (Debian's) zero freed space by default; most do not. Test the common case."""
    connect = sqlite3.connect

    def insecure(*args, **kwargs):
        conn = connect(*args, **kwargs)
        conn.execute("PRAGMA secure_delete=OFF")
        return conn

    monkeypatch.setattr(sqlite3, "connect", insecure)
    monkeypatch.setattr(Journal, "SECURE_DELETE", False)


def retained_in_new_ids(kept: Data, node_map: torch.Tensor, edge_map: torch.Tensor) -> Data:
    """A retained() view taken before compaction, renumbered with the compaction's maps."""
    out = kept.clone()
    out.orig_node_id = node_map[kept.orig_node_id]
    out.orig_edge_id = edge_map[kept.orig_edge_id]
    return out


def assert_same_data(a: Data, b: Data) -> None:
    assert sorted(a.keys()) == sorted(b.keys())
    # compare column multisets (edge order inside retained() is an implementation detail)
    def cols(d):
        parts = [d.edge_index.t(), d.orig_edge_id.unsqueeze(1)]
        for k in d.keys():
            if k not in ("edge_index", "orig_edge_id") and d.is_edge_attr(k) and torch.is_tensor(d[k]):
                parts.append(d[k].reshape(d.edge_index.size(1), -1).double())
        return sorted(map(tuple, torch.cat([p.double() for p in parts], 1).tolist()))

    assert cols(a) == cols(b)
    for k in a.keys():
        if torch.is_tensor(a[k]) and not a.is_edge_attr(k):
            assert torch.equal(a[k], b[k]), k
    assert a.num_nodes == b.num_nodes


# ----------------------------------------------------------------------------------------------- in memory
def test_compact_by_hand():
    s = store_a()
    s.delete_nodes([2])  # e1, e2, e3
    s.delete_node_features([4], [0])
    before = s.retained()
    c = s.compact()
    assert isinstance(c, gu.Compaction)
    assert c.node_map.tolist() == [0, 1, -1, 2, 3]
    assert c.edge_map.tolist() == [0, -1, -1, -1, 1]
    assert s.num_nodes == 4 and s.num_edges == 2 and s.edge_index.tolist() == [[0, 2], [1, 3]]
    assert s.node_mask.all() and s.edge_mask.all()
    assert (s.node_deleted_by == -1).all() and (s.edge_deleted_by == -1).all()
    assert s.feature_mask.tolist() == [[True] * 3] * 3 + [[False, True, True]]
    x = features(5)[[0, 1, 3, 4]]
    x[3, 0] = 0
    assert torch.equal(s.x, x)  # the erased values are gone from the base array itself
    assert s.y.tolist() == [0, 1, 2, 1] and s.edge_type.tolist() == [0, 2] and s.edge_weight.tolist() == [1.0, 5.0]
    assert s.node_attrs["train_mask"].tolist() == [True, False, False, True]
    assert_same_data(retained_in_new_ids(before, c.node_map, c.edge_map), s.retained())
    # past requests are redacted: kind, id and time stay, ids are gone
    assert [(r.id, r.kind, r.redacted) for r in s.requests] == [(0, "nodes", True), (1, "node_features", True)]
    assert all(r.node_ids.numel() == 0 and r.edge_ids.numel() == 0 and r.hops == () for r in s.requests)
    assert "compacted" in s.requests[0].summary()
    with pytest.raises(RuntimeError, match="compacted"):
        s.requests[0].affected_nodes()
    assert s.forget_set().node_ids.numel() == 0 and s.forget_set().feature_entries == ()
    # new requests use the new ids and go on with the request numbering
    r = s.delete_edges([(3, 2)])
    assert r.id == 2 and r.edge_ids.tolist() == [1] and [h.tolist() for h in r.hops] == [[2, 3], [], []]
    with pytest.raises(gu.DeletionError, match="already deleted"):
        s.delete_node_features([3], [0])
    with pytest.raises(gu.DeletionError, match="out of range"):
        s.delete_nodes([4])


def test_compact_with_nothing_deleted_is_identity():
    s = store_a()
    before = s.retained()
    c = s.compact()
    assert c.node_map.tolist() == list(range(5)) and c.edge_map.tolist() == list(range(5))
    assert_same_data(before, s.retained())


@pytest.mark.parametrize("directed", [False, True], ids=["undirected", "directed"])
@pytest.mark.parametrize("seed", range(3))
def test_compact_random(seed, directed):
    data = random_graph(seed, directed=directed, num_nodes=40, num_edges=120)
    data.edge_attr = torch.randn(data.edge_index.size(1), 2)
    if not directed:
        data.edge_attr = data.edge_weight.unsqueeze(1).repeat(1, 2)  # equal in both directions
    s = gu.GraphStore(data, undirected=not directed)
    g = torch.Generator().manual_seed(seed)
    s.delete_nodes(torch.randperm(40, generator=g)[:5])
    live_e = s.edge_mask.nonzero().squeeze(1)
    s.delete_edges(live_e[torch.randperm(live_e.numel(), generator=g)[:10]])
    live_n = s.node_mask.nonzero().squeeze(1)
    s.delete_node_features(live_n[:4], [1, 2])
    before = s.retained()
    old_mask_n, old_mask_e = s.node_mask.clone(), s.edge_mask.clone()
    c = s.compact()
    # the maps: live elements numbered consecutively in their old order, erased ones -1
    assert c.node_map[old_mask_n].tolist() == list(range(int(old_mask_n.sum())))
    assert (c.node_map[~old_mask_n] == -1).all()
    assert c.edge_map[old_mask_e].tolist() == list(range(int(old_mask_e.sum())))
    assert (c.edge_map[~old_mask_e] == -1).all()
    after = s.retained()
    assert_same_data(retained_in_new_ids(before, c.node_map, c.edge_map), after)
    # the compacted store's live view is that of a fresh store on the retained graph
    fresh = gu.GraphStore(Data(**{k: before[k] for k in before.keys() if not k.startswith("orig_")}),
                          undirected=not directed)
    assert pairs_of(fresh.live_edge_index()) == pairs_of(s.live_edge_index())
    assert_close(s.live().gcn_deg, fresh.live().gcn_deg, what="gcn_deg after compact")
    assert torch.equal(s.live().x, fresh.live().x)


# ----------------------------------------------------------------------------------------------- on disk
SECRET_ROW = [4242.125, -4243.25, 4244.375]  # features of the node to be deleted
SECRET_VALUE = 9191.5  # one feature value of a live node, to be deleted
SECRET_WEIGHT = 7777.75  # weight of an edge to be deleted
SECRET_ATTR = 31337.5  # node attribute of the deleted node
N_BIG = 5000  # large node ids make the serialised id tensors distinctive byte strings


def secret_graph():
    """An undirected random graph with distinctive values on what will be erased."""
    g = torch.Generator().manual_seed(0)
    src = torch.randint(N_BIG, (6000,), generator=g)
    dst = torch.randint(N_BIG, (6000,), generator=g)
    canon = torch.unique(torch.stack([torch.minimum(src, dst), torch.maximum(src, dst)]), dim=1)
    canon = canon[:, canon[0] != canon[1]]
    e = canon.size(1)
    weight = torch.rand(e, generator=g) + 0.5
    x = torch.rand(N_BIG, 3, generator=g)
    victim = int(canon[0, 123])  # a node with at least one edge
    x[victim] = torch.tensor(SECRET_ROW)
    other = int(canon[1, 4000])
    x[other, 2] = SECRET_VALUE
    cut = 2500  # an edge whose endpoints are neither victim nor other
    while victim in canon[:, cut].tolist() or other in canon[:, cut].tolist():
        cut += 1
    weight[cut] = SECRET_WEIGHT
    secret = torch.zeros(N_BIG)
    secret[victim] = SECRET_ATTR
    data = Data(x=x, edge_index=torch.cat([canon, canon.flip(0)], 1), edge_weight=torch.cat([weight, weight]),
                node_secret=secret, y=torch.randint(3, (N_BIG,), generator=g), num_nodes=N_BIG)
    return data, victim, other, tuple(canon[:, cut].tolist())


def f32(v: float) -> bytes:
    return struct.pack("<f", v)


def folder_bytes(path: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(path.iterdir()) if p.is_file())


def payload_chunks(path: Path) -> list[bytes]:
    """The raw tensor data (>= 16 bytes) of every journaled request payload: the ids the requests held."""
    conn = sqlite3.connect(journal_path(path))
    blobs = [b for (b,) in conn.execute("SELECT payload FROM requests WHERE payload IS NOT NULL")]
    conn.close()
    chunks = []
    for blob in blobs:
        with zipfile.ZipFile(io.BytesIO(blob)) as z:
            chunks += [z.read(n) for n in z.namelist() if "/data/" in n and len(z.read(n)) >= 16]
    return chunks


def secrets_in(blob: bytes) -> dict[str, bool]:
    return {
        "row": f32(SECRET_ROW[0]) + f32(SECRET_ROW[1]) + f32(SECRET_ROW[2]) in blob,
        "value": f32(SECRET_VALUE) in blob,
        "weight": f32(SECRET_WEIGHT) in blob,
        "attr": f32(SECRET_ATTR) in blob,
    }


def erase_setup(path: Path):
    data, victim, other, cut = secret_graph()
    s = GraphStore(data)
    s.save(path)
    s.delete_nodes([victim])  # journaled only: the snapshot still holds the row
    s.delete_node_features([other], [2])
    s.delete_edges([cut])
    kept = s.retained()
    chunks = payload_chunks(path)
    assert chunks  # the ids journaled (the neighbourhoods are not: they are computed when read)
    # sanity: before compaction the folder does hold every secret, so the checks below can fail
    blob = folder_bytes(path)
    assert all(secrets_in(blob).values())
    assert all(c in journal_path(path).read_bytes() for c in chunks)
    return s, data, victim, other, cut, kept, chunks


def check_erased(path: Path, chunks, victim, other, cut, node_map):
    blob = folder_bytes(path)
    assert secrets_in(blob) == dict.fromkeys(("row", "value", "weight", "attr"), False)
    journal = journal_path(path).read_bytes()
    # (only the journal is searched for them: in store.pt short runs of small ints occur anyway)
    leaked = [c[:16].hex() for c in chunks if c in journal]
    assert not leaked, f"erased request ids still on disk: {leaked}"
    assert sorted(p.name for p in path.iterdir()) == folder_files(path)
    state = safe_load(path / STATE_FILE)
    assert state["num_nodes"] == N_BIG - 1 and state["node_mask"].all() and state["edge_mask"].all()
    assert (state["node_deleted_by"] == -1).all() and (state["edge_deleted_by"] == -1).all()
    u, v = node_map[torch.tensor(cut)].tolist()
    assert (min(u, v), max(u, v)) not in set(pairs_of(state["edge_index"]))
    assert int(node_map[victim]) == -1 and not (state["x"] == SECRET_ROW[0]).any()
    assert state["x"][node_map[other], 2] == 0
    conn = sqlite3.connect(journal_path(path))
    rows = conn.execute("SELECT id, payload IS NULL FROM requests ORDER BY id").fetchall()
    conn.close()
    return rows


def test_compact_erases_from_the_folder(tmp_path):
    path = tmp_path / "st"
    s, data, victim, other, cut, kept, chunks = erase_setup(path)
    c = s.compact()
    rows = check_erased(path, chunks, victim, other, cut, c.node_map)
    assert rows == [(0, 1), (1, 1), (2, 1)]
    assert_same_data(retained_in_new_ids(kept, c.node_map, c.edge_map), s.retained())
    # new requests after compaction are journaled and reopen correctly
    live = s.edge_mask.nonzero().squeeze(1)
    r = s.delete_edges(live[:3])
    assert r.id == 3
    s.close()
    o = GraphStore.open(path)
    assert [(q.id, q.redacted) for q in o.requests] == [(0, True), (1, True), (2, True), (3, False)]
    assert [q.kind for q in o.requests] == ["nodes", "node_features", "edges", "edges"]
    assert o.requests[3].edge_ids.tolist() == live[:3].tolist()
    assert o.num_nodes == N_BIG - 1 and o.edge_mask.sum() == live.numel() - 3
    assert torch.equal(o.retained().edge_index, s.retained().edge_index)
    assert secrets_in(folder_bytes(path)) == dict.fromkeys(("row", "value", "weight", "attr"), False)
    # a second compaction redacts the new request too
    o.compact()
    o.close()
    o = GraphStore.open(path)
    assert all(q.redacted for q in o.requests) and o.edge_mask.all() and o._next_id == 4
    o.close()


def test_crash_inside_compact_is_finished_on_open(tmp_path, monkeypatch):
    path = tmp_path / "st"
    s, data, victim, other, cut, kept, chunks = erase_setup(path)

    def crash(self, req_id):
        raise SimulatedCrash

    monkeypatch.setattr(Journal, "redact_through", crash)  # dies after the new snapshot, before redaction
    with pytest.raises(SimulatedCrash):
        s.compact()
    monkeypatch.undo()
    die(s)
    assert all(c in journal_path(path).read_bytes() for c in chunks)  # not yet erased from the journal
    o = GraphStore.open(path)
    node_map = torch.full((N_BIG,), -1, dtype=torch.long)
    node_map[torch.arange(N_BIG) != victim] = torch.arange(N_BIG - 1)
    rows = check_erased(path, chunks, victim, other, cut, node_map)
    assert rows == [(0, 1), (1, 1), (2, 1)]
    assert all(q.redacted for q in o.requests) and o.node_mask.all() and o.num_nodes == N_BIG - 1
    o.close()


def test_compact_then_save_elsewhere_writes_no_erased_ids(tmp_path):
    data, victim, other, cut = secret_graph()
    s = GraphStore(data)
    s.delete_nodes([victim])
    s.delete_edges([cut])
    s.delete_node_features([other], [2])
    s.compact()
    s.save(tmp_path / "st")
    assert secrets_in(folder_bytes(tmp_path / "st")) == dict.fromkeys(("row", "value", "weight", "attr"), False)
    conn = sqlite3.connect(journal_path(tmp_path / "st"))
    assert conn.execute("SELECT id, payload IS NULL FROM requests").fetchall() == [(0, 1), (1, 1), (2, 1)]
    conn.close()
    s.close()
    o = GraphStore.open(tmp_path / "st")
    assert [(q.id, q.kind, q.redacted) for q in o.requests] == [(0, "nodes", True), (1, "edges", True),
                                                                (2, "node_features", True)]
    o.close()


def test_crash_between_redaction_and_vacuum_is_vacuumed_on_open(tmp_path, monkeypatch):
    path = tmp_path / "st"
    s, data, victim, other, cut, kept, chunks = erase_setup(path)

    def crash(self):
        raise SimulatedCrash

    monkeypatch.setattr(Journal, "finish_vacuum", crash)  # payloads nulled and committed, VACUUM never ran
    with pytest.raises(SimulatedCrash):
        s.compact()
    monkeypatch.undo()
    monkeypatch.setattr(Journal, "SECURE_DELETE", False)
    die(s)
    conn = sqlite3.connect(journal_path(path))
    assert conn.execute("SELECT value FROM meta WHERE key = 'needs_vacuum'").fetchall() == [(1,)]
    conn.close()
    assert any(c in journal_path(path).read_bytes() for c in chunks), "freed pages still hold the payloads"
    o = GraphStore.open(path)  # finishes the VACUUM although no payload is left to null
    node_map = torch.full((N_BIG,), -1, dtype=torch.long)
    node_map[torch.arange(N_BIG) != victim] = torch.arange(N_BIG - 1)
    assert check_erased(path, chunks, victim, other, cut, node_map) == [(0, 1), (1, 1), (2, 1)]
    o.close()


def test_crashed_checkpoint_leftovers_are_erased_by_compact(tmp_path):
    path = tmp_path / "st"
    s, data, victim, other, cut, kept, chunks = erase_setup(path)
    # what a process killed inside checkpoint() leaves: a temporary snapshot holding the full state
    leftover = path / f"{STATE_FILE}.abc123.tmp"
    torch.save(s._state(s._journal_name, s._journal.head), leftover)
    assert all(secrets_in(folder_bytes(path)).values())
    c = s.compact()
    assert not leftover.exists()
    check_erased(path, chunks, victim, other, cut, c.node_map)
    s.close()


def test_crashed_checkpoint_leftovers_are_removed_on_open(tmp_path):
    path = tmp_path / "st"
    s = store_a()
    s.save(path)
    s.delete_nodes([2])
    leftover = path / f"{STATE_FILE}.x1y2.tmp"
    leftover.write_bytes(b"partial state")
    s.close()
    GraphStore.open(path).close()
    assert sorted(p.name for p in path.iterdir()) == folder_files(path)


def test_compact_leaves_no_deleted_value_in_memory():
    data, victim, other, cut = secret_graph()
    s = GraphStore(data)
    view = s.live()  # builds every cache: CSR weights, live degrees, live features
    assert (view.edge_weight == SECRET_WEIGHT).any() and (view.x == torch.tensor(SECRET_ROW)).all(1).any()
    s.delete_edges([cut])
    s.delete_nodes([victim])
    s.delete_node_features([other], [2])
    s.compact()

    def tensors(obj):
        for value in vars(obj).values():
            items = value.values() if isinstance(value, dict) else value
            items = items if isinstance(items, (list, tuple, type({}.values()))) else [value]
            yield from (v for v in items if isinstance(v, torch.Tensor))

    found = [t.shape for t in tensors(s) if t.is_floating_point() and
             ((t == SECRET_WEIGHT).any() or (t == SECRET_VALUE).any() or (t == SECRET_ROW[0]).any())]
    assert not found, f"erased values still in the store's tensors of shapes {found}"
    # caches handed out before the compaction were the store's own: zeroed, not left holding erased values
    assert not (view.edge_weight == SECRET_WEIGHT).any() and not view.x.any()
    s.live()  # and the store rebuilds them from what is left
    assert not (s._csr_weight == SECRET_WEIGHT).any()
