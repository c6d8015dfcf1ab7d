"""HeteroGraphStore: a user-item HeteroData with its reverse relation, each rating tied to its reverse edge.

The graph (4 users, 5 items), columns of ``('user', 'rates', 'item')``:

    c0 (0, 0)  c1 (0, 1)  c2 (1, 1)  c3 (2, 2)  c4 (3, 4)  c5 (3, 0)

``T.ToUndirected()`` adds ``('item', 'rev_rates', 'user')`` with the same columns flipped.
"""

from __future__ import annotations

import pytest
import torch
import torch_geometric.transforms as T
from torch_geometric.data import HeteroData
from torch_geometric.nn import GCNConv

import graphunlearn as gu

FWD = ("user", "rates", "item")
REV = ("item", "rev_rates", "user")
RATES = [(0, 0), (0, 1), (1, 1), (2, 2), (3, 4), (3, 0)]
RATING = [5, 4, 3, 2, 1, 5]
USER_X = torch.arange(1, 13, dtype=torch.float32).reshape(4, 3)
ITEM_X = torch.arange(101, 116, dtype=torch.float32).reshape(5, 3)
USER_Y = torch.tensor([0, 1, 0, 1])


def hetero(rates=RATES, rating=RATING, user_x=USER_X, item_x=ITEM_X, user_y=USER_Y, num_items=5,
           undirected=True) -> HeteroData:
    """The user-item graph (only the given ratings), through ToUndirected unless ``undirected=False``."""
    data = HeteroData()
    data["user"].num_nodes = user_x.size(0) if user_x is not None else 4
    if user_x is not None:
        data["user"].x = user_x.clone()
    if user_y is not None:
        data["user"].y = user_y.clone()
    data["item"].num_nodes = num_items
    if item_x is not None:
        data["item"].x = item_x.clone()
    ei = torch.tensor(rates, dtype=torch.long).reshape(-1, 2).t()
    data[FWD].edge_index = ei
    data[FWD].rating = torch.tensor(rating, dtype=torch.long)
    return T.ToUndirected()(data) if undirected else data


def pairs(ei: torch.Tensor) -> list[tuple[int, int]]:
    return [tuple(p) for p in ei.t().tolist()]


def snapshot(hs: gu.HeteroGraphStore):
    s = hs.store
    return (s.node_mask.clone(), s.edge_mask.clone(), len(s.requests),
            None if s.feature_mask is None else s.feature_mask.clone())


def assert_unchanged(hs, before):
    after = snapshot(hs)
    for a, b in zip(before, after):
        if isinstance(a, torch.Tensor):
            assert torch.equal(a, b)
        else:
            assert a == b


def assert_same_hetero(got: HeteroData, want: HeteroData, skip=("orig_node_id", "orig_edge_id", "node_mask")):
    assert isinstance(got, HeteroData)
    assert got.node_types == want.node_types
    assert sorted(got.edge_types) == sorted(want.edge_types)
    for nt in want.node_types:
        assert got[nt].num_nodes == want[nt].num_nodes, nt
        keys = {k for k in got[nt].keys() if k not in skip} | set(want[nt].keys())
        for k in keys - {"num_nodes"}:
            assert torch.equal(got[nt][k], want[nt][k]), (nt, k)
    for et in want.edge_types:
        keys = {k for k in got[et].keys() if k not in skip} | set(want[et].keys())
        for k in keys:
            assert torch.equal(got[et][k], want[et][k]), (et, k)


# ----------------------------------------------------------------------------------------------- construction
def test_layout_pairs_and_classes():
    data = hetero()
    hs = gu.HeteroGraphStore(data)
    s = hs.store
    assert hs.rev_edge_types == {FWD: REV} and hs.symmetric_edge_types == []
    assert s.undirected and s.num_nodes == 9 and s.num_edges == 6  # each rating once, tied to its reverse
    assert hs.node_offset == {"user": 0, "item": 4}
    assert s.node_type.tolist() == [0] * 4 + [1] * 5
    assert hs.edge_class == {FWD: data.edge_types.index(FWD), REV: data.edge_types.index(FWD)}
    assert torch.unique(s.edge_type).tolist() == [data.edge_types.index(FWD)]
    assert hs.features_concatenated and torch.equal(s.x, torch.cat([USER_X, ITEM_X]))
    assert s.y is None  # items carry no y
    # the store's live edge_index is PyG's homogeneous form of the graph (both directions)
    hom = data.to_homogeneous()
    assert sorted(pairs(s.live_edge_index())) == sorted(pairs(hom.edge_index))
    assert hs.global_ids("item", [0, 4]).tolist() == [4, 8]
    kind, local = hs.local_ids(torch.tensor([8, 0, 3, 4]))
    assert kind.tolist() == [1, 0, 0, 1] and local.tolist() == [4, 0, 3, 0]
    # nothing deleted: live() and retained() give the input back
    assert_same_hetero(hs.live(), data)
    assert_same_hetero(hs.retained(), data)
    assert data[FWD].edge_index.tolist() == [list(c) for c in zip(*RATES)]  # the input was not touched


def test_no_reverse_relations_are_stored_directed():
    data = hetero(undirected=False)
    hs = gu.HeteroGraphStore(data)
    assert not hs.store.undirected and hs.rev_edge_types == {}
    assert hs.store.num_edges == 6
    req = hs.delete_edges(FWD, [(0, 1)])
    assert req.edge_ids.tolist() == [1]
    assert pairs(hs.live()[FWD].edge_index) == [p for p in RATES if p != (0, 1)]
    hs.delete_edge_class(FWD)
    assert hs.store.num_live_edges == 0


def test_explicit_rev_edge_types():
    data = hetero(undirected=False)
    data["item", "rated_by", "user"].edge_index = data[FWD].edge_index.flip(0)
    with pytest.warns(UserWarning, match="rated_by.*not named as its reverse"):  # not detected by name
        assert not gu.HeteroGraphStore(data.clone()).store.undirected
    rev = ("item", "rated_by", "user")
    hs = gu.HeteroGraphStore(data, rev_edge_types={FWD: rev, rev: FWD})  # a mirror entry is accepted
    assert hs.rev_edge_types == {FWD: rev} and hs.store.undirected
    hs.delete_edges(FWD, [(2, 2)])
    live = hs.live()
    assert (2, 2) not in pairs(live[FWD].edge_index) and (2, 2) not in pairs(live[rev].edge_index)
    with pytest.raises(ValueError, match="cannot be the reverse"):
        gu.HeteroGraphStore(data, rev_edge_types={FWD: FWD})
    with pytest.raises(ValueError, match="nope"):
        gu.HeteroGraphStore(data, rev_edge_types={FWD: ("item", "nope", "user")})


@pytest.mark.parametrize("how", ["drop", "change", "duplicate"])
def test_mismatched_reverse_is_refused(how):
    data = hetero()
    rev = data[REV].edge_index
    if how == "drop":
        data[REV].edge_index = rev[:, 1:]
    elif how == "change":
        rev = rev.clone()
        rev[0, 2] = 3  # (item 1, user 1) -> (item 3, user 1): a rating that does not exist
        data[REV].edge_index = rev
    else:
        data[REV].edge_index = torch.cat([rev, rev[:, :1]], 1)
    differ = {"drop": 1, "change": 2, "duplicate": 1}[how]
    with pytest.raises(ValueError, match=rf"'rev_rates'.*{differ} edges differ"):
        gu.HeteroGraphStore(data)


def test_mixing_relations_with_and_without_reverse_is_refused():
    data = hetero()
    data["user", "views", "item"].edge_index = torch.tensor([[0, 1], [3, 3]])
    with pytest.raises(ValueError, match="'views'.*no reverse"):
        gu.HeteroGraphStore(data)


def test_two_relations_on_one_node_pair_are_refused():
    data = hetero(undirected=False)
    data["user", "clicks", "item"].edge_index = torch.tensor([[1, 0], [3, 1]])  # (0, 1) is also rated
    data = T.ToUndirected()(data)
    with pytest.raises(ValueError, match=r"'rates'.*'clicks'.*same two nodes"):
        gu.HeteroGraphStore(data)


def test_symmetric_same_type_relation():
    data = hetero(undirected=False)
    data["user", "follows", "user"].edge_index = torch.tensor([[0, 2, 3], [1, 1, 3]])
    data = T.ToUndirected()(data)  # merges follows into one symmetric relation, adds rev_rates
    follows = ("user", "follows", "user")
    hs = gu.HeteroGraphStore(data)
    assert hs.symmetric_edge_types == [follows] and hs.rev_edge_types == {FWD: REV}
    assert hs.store.num_edges == 6 + 3
    hs.delete_edges(follows, [(1, 0)])  # names the edge (0, 1) too
    live = pairs(hs.live()[follows].edge_index)
    assert sorted(live) == [(1, 2), (2, 1), (3, 3)]
    hs.delete_edge_class(follows)
    assert hs.live()[follows].edge_index.size(1) == 0 and hs.live()[FWD].edge_index.size(1) == 6


# ----------------------------------------------------------------------------------------------- deletion
@pytest.mark.parametrize("named", [FWD, REV])
def test_delete_edges_removes_both_directions(named):
    hs = gu.HeteroGraphStore(hetero())
    gone = [(0, 1), (3, 4)]
    req = hs.delete_edges(named, gone if named == FWD else [(v, u) for u, v in gone])
    assert isinstance(req, gu.DeletionRequest) and req.kind == "edges" and req.edge_ids.numel() == 2
    hs.store.check_request(req)
    live = hs.live()
    kept = [p for p in RATES if p not in gone]
    assert pairs(live[FWD].edge_index) == kept
    assert pairs(live[REV].edge_index) == [(v, u) for u, v in kept]
    homo = set(pairs(hs.store.live_edge_index()))
    for u, v in gone:
        assert (u, v + 4) not in homo and (v + 4, u) not in homo
    assert {t: c.tolist() for t, c in hs.edges_by_type(req.edge_ids).items()} == {FWD: [1, 4], REV: [1, 4]}


def test_delete_edges_layouts():
    hs = gu.HeteroGraphStore(hetero())
    hs.delete_edges(FWD, torch.tensor([[0, 2], [0, 2]]), layout="edge_index")  # (0, 0) and (2, 2)
    hs.delete_edges(REV, [5])  # column 5 of rev_rates: item 0 -> user 3
    assert pairs(hs.live()[FWD].edge_index) == [(0, 1), (1, 1), (3, 4)]
    assert hs.edge_ids("rates", [(0, 1)]).tolist() == hs.edge_ids("rev_rates", [(1, 0)]).tolist()


@pytest.mark.parametrize("named", [FWD, REV, "rates", "rev_rates"])
def test_delete_edge_class_revokes_the_relation_both_ways(named):
    hs = gu.HeteroGraphStore(hetero())
    req = hs.delete_edge_class(named)
    assert req.kind == "edge_class" and req.edge_ids.numel() == 6
    live = hs.live()
    assert live[FWD].edge_index.size(1) == 0 and live[REV].edge_index.size(1) == 0
    assert hs.store.num_live_edges == 0 and hs.store.live_edge_index().size(1) == 0
    with pytest.raises(gu.DeletionError, match="already deleted"):
        hs.delete_edge_class(FWD if named in (REV, "rev_rates") else REV)


def test_delete_nodes_removes_edges_both_ways():
    hs = gu.HeteroGraphStore(hetero())
    req = hs.delete_nodes("user", [3])
    assert req.node_ids.tolist() == [3] and req.edge_ids.numel() == 2
    by_type = hs.nodes_by_type(req.node_ids)
    assert by_type["user"].tolist() == [3] and by_type["item"].tolist() == []
    live = hs.live()
    assert all(u != 3 for u, _ in pairs(live[FWD].edge_index))
    assert all(u != 3 for _, u in pairs(live[REV].edge_index))
    assert live["user"].node_mask.tolist() == [True, True, True, False]
    assert torch.equal(live["user"].x[3], torch.zeros(3)) and torch.equal(live["user"].x[:3], USER_X[:3])
    req = hs.delete_nodes("item", torch.tensor([1]))
    assert hs.global_ids("item", 1).tolist() == req.node_ids.tolist()
    assert pairs(hs.live()[FWD].edge_index) == [(0, 0), (2, 2)]


BAD = [
    (lambda hs: hs.delete_nodes("user", [1, 4]), r"'user'.*\[4\]"),
    (lambda hs: hs.delete_nodes("movie", [0]), "'movie'"),
    (lambda hs: hs.delete_nodes("user", []), "empty"),
    (lambda hs: hs.delete_nodes("user", [0.5]), "integer"),
    (lambda hs: hs.delete_edges(("user", "likes", "item"), [(0, 0)]), "likes"),
    (lambda hs: hs.delete_edges(FWD, [(0, 0), (0, 2)]), r"not edges.*\(0, 2\)"),
    (lambda hs: hs.delete_edges(FWD, [(0, 0), (0, 9)]), r"target ids \[9\].*'item'"),
    (lambda hs: hs.delete_edges(REV, [(0, 3), (5, 0)]), r"source ids \[5\].*'item'"),
    (lambda hs: hs.delete_edges(FWD, [6]), r"edge ids \[6\]"),
    (lambda hs: hs.delete_edges(FWD, [[0, 1], [0, 1]]), "ambiguous"),
    (lambda hs: hs.delete_edge_class(("item", "rates", "user")), "unknown edge type"),
    (lambda hs: hs.delete_node_features("item", [7]), r"'item'.*\[7\]"),
    (lambda hs: hs.delete_node_features("user", [0], columns=[3]), r"columns \[3\]"),
]


@pytest.mark.parametrize("call, message", BAD)
def test_bad_requests_raise_and_change_nothing(call, message):
    hs = gu.HeteroGraphStore(hetero())
    hs.delete_nodes("item", [3])
    before = snapshot(hs)
    with pytest.raises(gu.DeletionError, match=message):
        call(hs)
    assert_unchanged(hs, before)


@pytest.mark.parametrize("call, message", [
    (lambda hs: hs.delete_nodes("user", [0, 2]), r"'user': nodes \[2\] are already deleted"),
    (lambda hs: hs.delete_edges(REV, [(2, 2)]), r"pair \(2, 2\) already deleted"),
    (lambda hs: hs.delete_edges(FWD, [(0, 0), (1, 1)]), r"pair \(1, 1\) already deleted"),
    (lambda hs: hs.delete_node_features("user", [2]), r"nodes \[2\] are already deleted"),
    (lambda hs: hs.delete_node_features("item", [0], columns=[1, 2]), "already deleted"),
])
def test_already_deleted_is_refused(call, message):
    hs = gu.HeteroGraphStore(hetero())
    hs.delete_nodes("user", [2])
    hs.delete_edges(FWD, [(1, 1)])
    hs.delete_node_features("item", [0], columns=[2])
    before = snapshot(hs)
    with pytest.raises(gu.DeletionError, match=message):
        call(hs)
    assert_unchanged(hs, before)


# ----------------------------------------------------------------------------------------------- views
def deleted_example() -> gu.HeteroGraphStore:
    hs = gu.HeteroGraphStore(hetero())
    hs.delete_edges(FWD, [(1, 1)])
    hs.delete_nodes("item", [2])  # takes (2, 2) with it
    hs.delete_node_features("user", [3], columns=[0, 2])
    return hs


def test_retained_and_live_equal_graphs_rebuilt_by_hand():
    hs = deleted_example()
    kept = [0, 1, 4, 5]  # columns left: (0, 0), (0, 1), (3, 4), (3, 0)
    user_x = USER_X.clone()
    user_x[3, [0, 2]] = 0
    # retained: item 2 gone, items renumbered 0, 1, 3, 4 -> 0, 1, 2, 3
    new_item = {0: 0, 1: 1, 3: 2, 4: 3}
    want = hetero(rates=[(u, new_item[v]) for u, v in (RATES[c] for c in kept)], rating=[RATING[c] for c in kept],
                  user_x=user_x, item_x=ITEM_X[[0, 1, 3, 4]], num_items=4)
    got = hs.retained()
    assert_same_hetero(got, want)
    assert got["user"].orig_node_id.tolist() == [0, 1, 2, 3]
    assert got["item"].orig_node_id.tolist() == [0, 1, 3, 4]
    assert got[FWD].orig_edge_id.tolist() == kept and got[REV].orig_edge_id.tolist() == kept
    assert torch.equal(got[REV].edge_index, got[FWD].edge_index.flip(0))
    # live: the original numbering, item 2's features zeroed
    item_x = ITEM_X.clone()
    item_x[2] = 0
    want = hetero(rates=[RATES[c] for c in kept], rating=[RATING[c] for c in kept], user_x=user_x, item_x=item_x)
    got = hs.live()
    assert_same_hetero(got, want)
    assert got["item"].node_mask.tolist() == [True, True, False, True, True]
    assert torch.equal(hs.store.live_x(), torch.cat([user_x, item_x]))


def test_features_of_different_widths_stay_per_type():
    hs = gu.HeteroGraphStore(hetero(item_x=torch.ones(5, 2)))
    assert not hs.features_concatenated and hs.store.x is None and hs.store.live().x is None
    with pytest.raises(gu.DeletionError, match="not held by the store"):
        hs.delete_node_features("user", [0])
    hs.delete_nodes("item", [0])
    live, kept = hs.live(), hs.retained()
    assert torch.equal(live["item"].x[0], torch.zeros(2)) and torch.equal(live["item"].x[1:], torch.ones(4, 2))
    assert kept["item"].x.shape == (4, 2) and torch.equal(kept["user"].x, USER_X)


def test_edge_weight_goes_to_the_store():
    w = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    data = hetero(undirected=False)
    data[FWD].edge_weight = w
    data = T.ToUndirected()(data)
    hs = gu.HeteroGraphStore(data)
    assert sorted(hs.store.edge_weight.tolist()) == w.tolist()
    data[REV].edge_weight = w.flip(0)
    with pytest.raises(ValueError, match="edge_weight of .*'rev_rates'"):
        gu.HeteroGraphStore(data)


def test_empty_node_type_and_id_translation():
    data = HeteroData()
    data["user"].num_nodes = 2
    data["shop"].num_nodes = 0
    data["item"].num_nodes = 3
    data["user", "rates", "item"].edge_index = torch.tensor([[0, 1], [2, 0]])
    hs = gu.HeteroGraphStore(T.ToUndirected()(data))
    kind, local = hs.local_ids([0, 1, 2, 3, 4])
    assert [hs.node_types[k] for k in kind.tolist()] == ["user", "user", "item", "item", "item"]
    assert local.tolist() == [0, 1, 0, 1, 2]
    with pytest.raises(gu.DeletionError, match=r"\[5\]"):
        hs.local_ids([5])
    hs.delete_nodes("item", [2])
    assert pairs(hs.retained()[FWD].edge_index) == [(1, 0)]


def test_compacted_store_is_detected():
    hs = gu.HeteroGraphStore(hetero())
    hs.delete_nodes("user", [0])
    hs.store.compact()
    with pytest.raises(RuntimeError, match="compacted"):
        hs.live()


# ----------------------------------------------------------------------------------------------- a model
def test_gcn_on_the_store_equals_gcn_on_the_rebuilt_graph():
    hs = deleted_example()
    hs.delete_nodes("user", [1])
    torch.manual_seed(0)
    conv = GCNConv(3, 4)
    s = hs.store
    with torch.no_grad():
        out = conv(s.live_x(), s.live_edge_index())[s.node_mask]
        rebuilt = hs.retained()
        for store in rebuilt.stores:  # a plain HeteroData, as a user would build it
            for key in ("orig_node_id", "orig_edge_id"):
                if key in store:
                    del store[key]
        hom = rebuilt.to_homogeneous()
        want = conv(hom.x, hom.edge_index)
    assert out.shape == want.shape == (3 + 4, 4)
    assert torch.allclose(out, want, atol=1e-5)
    # and the store's undirected live graph is exactly the rebuilt graph's two directions
    new_id = torch.full((s.num_nodes,), -1)
    new_id[s.node_mask] = torch.arange(int(s.node_mask.sum()))
    assert sorted(pairs(new_id[s.live_edge_index()])) == sorted(pairs(hom.edge_index))


def test_requests_go_straight_to_unlearn():
    hs = gu.HeteroGraphStore(hetero())
    req = hs.delete_edges(FWD, [(0, 1)])
    torch.manual_seed(0)
    model = gu.models.GCN(3, hidden_channels=4, out_channels=4)
    res = gu.unlearn(model, hs.store, req, "unlink", task="link")
    assert res.requests == (req.id,)
