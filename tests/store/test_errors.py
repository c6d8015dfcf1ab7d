"""Bad input gets a clear error naming the offending values, and leaves the store exactly as it was."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from torch_geometric.data import Data

import graphunlearn as gu
from tests.store.helpers import assert_same_snapshot, features, graph_a, snapshot, store_a, store_b


def prepared_a(path=None) -> gu.GraphStore:
    """Graph A after three requests: r0 deletes e2 (1,2); r1 deletes node 4 (and e4); r2 deletes x[0, 1]."""
    s = store_a()
    if path is not None:
        s.save(path)
    s.delete_edges([(1, 2)])
    s.delete_nodes([4])
    s.delete_node_features([0], [1])
    return s


# (call, regular expressions that must all appear in the message)
CASES = {
    # ids out of range
    "edge id too large": (lambda s: s.delete_edges([0, 99]), [r"\b99\b", "out of range", r"0\.\.4"]),
    "edge id negative": (lambda s: s.delete_edges(torch.tensor([-3])), [r"-3", "out of range"]),
    "node id too large": (lambda s: s.delete_nodes([0, 7]), [r"\b7\b", "out of range"]),
    "node id negative": (lambda s: s.delete_nodes([-1]), [r"-1", "out of range"]),
    "pair node out of range": (lambda s: s.delete_edges([(0, 1), (3, 12)]), [r"\b12\b", "out of range"]),
    "feature node out of range": (lambda s: s.delete_node_features([5]), [r"\b5\b", "out of range"]),
    # pairs that are not edges
    "pair not an edge": (lambda s: s.delete_edges([(0, 1), (0, 3)]), ["not edges", r"\(0, 3\)"]),
    "edge_index not an edge": (lambda s: s.delete_edges(torch.tensor([[0, 1], [3, 4]]), layout="edge_index"),
                               ["not edges", r"\(0, 3\)", r"\(1, 4\)"]),
    # already deleted: say so, and by which request
    "edge already deleted": (lambda s: s.delete_edges([(2, 1)]),
                             ["already deleted", r"\b2\b", r"\(1, 2\)", r"requests \[0\]"]),
    "edge id already deleted with a live one": (lambda s: s.delete_edges([0, 2]), ["already deleted",
                                                                              r"requests \[0\]"]),
    "edge deleted with its node": (lambda s: s.delete_edges([(4, 3)]), ["already deleted", r"requests \[1\]"]),
    "edges deleted by two requests": (lambda s: s.delete_edges([2, 4]), ["already deleted", r"requests \[0, 1\]"]),
    "node already deleted": (lambda s: s.delete_nodes([3, 4]), ["already deleted", r"\[4\]", r"requests \[1\]"]),
    "features of deleted node": (lambda s: s.delete_node_features([4]), ["already deleted", r"\[4\]"]),
    "feature already deleted": (lambda s: s.delete_node_features([0, 2], [1]), ["already deleted", r"\[0\]"]),
    "all features incl. deleted one": (lambda s: s.delete_node_features([0]), ["already deleted", r"\[0\]"]),
    # classes
    "unknown edge class": (lambda s: s.delete_edge_class(9), ["unknown edge class 9", r"\[0, 1, 2\]"]),
    "edge class all deleted": (lambda s: s.delete_edge_class(2), ["class 2", "already deleted", r"\[1\]"]),
    "unknown node class": (lambda s: s.delete_node_class(5), ["unknown node class 5", r"\[0, 1, 2\]"]),
    "edge class float": (lambda s: s.delete_edge_class(1.0), ["edge_class", "integer"]),
    "edge class bool": (lambda s: s.delete_edge_class(True), ["edge_class", "integer"]),
    "edge class float tensor": (lambda s: s.delete_edge_class(torch.tensor(1.0)), ["edge_class", "integer"]),
    "node class str": (lambda s: s.delete_node_class("1"), ["node_class", "integer"]),
    "node class numpy float": (lambda s: s.delete_node_class(np.float64(1.0)), ["node_class", "integer"]),
    "node class numpy bool": (lambda s: s.delete_node_class(np.bool_(True)), ["node_class", "integer"]),
    "node class two values": (lambda s: s.delete_node_class(torch.tensor([0, 1])), ["node_class", "one integer"]),
    # empty requests
    "empty edge list": (lambda s: s.delete_edges([]), ["empty"]),
    "empty edge id tensor": (lambda s: s.delete_edges(torch.tensor([], dtype=torch.long)), ["empty"]),
    "empty edge_index": (lambda s: s.delete_edges(torch.empty(2, 0, dtype=torch.long)), ["empty"]),
    "empty node list": (lambda s: s.delete_nodes([]), ["empty"]),
    "empty feature nodes": (lambda s: s.delete_node_features([]), ["empty"]),
    "empty feature columns": (lambda s: s.delete_node_features([2], []), ["empty"]),
    # dtypes
    "float edge ids": (lambda s: s.delete_edges(torch.tensor([0.0, 1.0])), ["dtype", "float"]),
    "float edge list": (lambda s: s.delete_edges([0.5]), ["integer"]),
    "bool edge mask": (lambda s: s.delete_edges(torch.tensor([True, False, False, False, False])), ["bool"]),
    "bool node list": (lambda s: s.delete_nodes([True, False]), ["bool"]),
    "bool node": (lambda s: s.delete_nodes(True), ["bool"]),
    "float node tensor": (lambda s: s.delete_nodes(torch.tensor([1.0])), ["float"]),
    "numpy float nodes": (lambda s: s.delete_nodes(np.array([1.0, 2.0])), ["float"]),
    "float pairs": (lambda s: s.delete_edges([(0.0, 1.0)]), ["integer"]),
    "float columns": (lambda s: s.delete_node_features([2], [0.5]), ["integer", "float"]),
    "string nodes": (lambda s: s.delete_nodes("abc"), ["integer"]),
    "mixed ids and pairs": (lambda s: s.delete_edges([0, (1, 2)]), ["mixes single ids and sequences"]),
    # shapes
    "K x 3 as pairs": (lambda s: s.delete_edges(torch.tensor([[0, 1, 2], [0, 2, 3]]), layout="pairs"),
                       [r"two entries", r"\(2, 3\)"]),
    "K x 2 as edge_index": (lambda s: s.delete_edges(torch.tensor([[0, 1], [0, 2], [2, 3]]), layout="edge_index"),
                            [r"\[2, K\]", r"\(3, 2\)", "layout='pairs'"]),
    "2 x 2 ambiguous": (lambda s: s.delete_edges(torch.tensor([[0, 1], [1, 2]])), ["ambiguous", "layout="]),
    "2 x 2 lists ambiguous": (lambda s: s.delete_edges([[0, 1], [1, 2]]), ["ambiguous", "layout="]),
    "ids as pairs": (lambda s: s.delete_edges([0, 1], layout="pairs"), ["2-D"]),
    "pairs as ids": (lambda s: s.delete_edges([(0, 1)], layout="ids"), ["1-D"]),
    "unknown layout": (lambda s: s.delete_edges([0], layout="coo"), ["layout", "coo"]),
    "3-d tensor": (lambda s: s.delete_edges(torch.zeros(2, 1, 1, dtype=torch.long)), ["shape"]),
    "0-d float tensor": (lambda s: s.delete_edges(torch.tensor(0.0)), ["dtype"]),
    "triple": (lambda s: s.delete_edges([(0, 1, 2)]), ["two entries", r"\(0, 1, 2\)"]),
    # not ids at all (issue 9: no raw RuntimeError / OverflowError, no bool taken as an id)
    "None nodes": (lambda s: s.delete_nodes(None), ["delete_nodes: nodes", "NoneType"]),
    "list of None": (lambda s: s.delete_nodes([None]), ["delete_nodes: nodes", "None", "not an integer id"]),
    "object nodes": (lambda s: s.delete_nodes(object()), ["delete_nodes: nodes", "object"]),
    "bool among ids": (lambda s: s.delete_nodes([3, True]), ["True", "bool", "not an integer id"]),
    "numpy bool among ids": (lambda s: s.delete_nodes([3, np.bool_(True)]), ["True", "not an integer id"]),
    "huge node id": (lambda s: s.delete_nodes([2 ** 70]), ["int64"]),
    "huge edge class": (lambda s: s.delete_edge_class(2 ** 70), ["edge_class", "int64"]),
    "dict nodes": (lambda s: s.delete_nodes({1: 2}), ["dict"]),
    "ragged pairs": (lambda s: s.delete_edges([[0, 1], [2]]), ["different lengths"]),
    "None edges": (lambda s: s.delete_edges(None), ["delete_edges: edges", "NoneType"]),
    "None columns": (lambda s: s.delete_node_features([2], [None]), ["columns", "None"]),
    "2-d node ids": (lambda s: s.delete_nodes([[0, 1]]), ["1-D", r"\(1, 2\)"]),
    "2-d columns": (lambda s: s.delete_node_features([2], torch.tensor([[0]])), ["1-D"]),
    # feature columns
    "column out of range": (lambda s: s.delete_node_features([2], [0, 3]), [r"columns \[3\]", "out of range",
                                                                            r"0\.\.2"]),
    "negative column": (lambda s: s.delete_node_features([2], [-1]), [r"\[-1\]", "out of range"]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_refused_with_clear_message_and_store_unchanged(case):
    call, patterns = CASES[case]
    s = prepared_a()
    before = snapshot(s)
    with pytest.raises(gu.DeletionError) as info:
        call(s)
    msg = str(info.value)
    for pat in patterns:
        assert re.search(pat, msg), f"{case}: {pat!r} not in {msg!r}"
    assert_same_snapshot(before, snapshot(s))
    # a refused request consumes no id: the next valid one gets id 3
    assert s.delete_edges([(0, 2)]).id == 3


@pytest.mark.parametrize("case", ["node id too large", "edge already deleted", "feature already deleted",
                                  "unknown edge class", "2 x 2 ambiguous", "bool among ids"])
def test_refused_request_is_not_journaled(case, tmp_path):
    s = prepared_a(tmp_path / "store")
    before = snapshot(s)
    assert len(before["journal"]) == 3
    with pytest.raises(gu.DeletionError):
        CASES[case][0](s)
    assert_same_snapshot(before, snapshot(s))
    s.close()
    reopened = gu.GraphStore.open(tmp_path / "store")
    assert [r.id for r in reopened.requests] == [0, 1, 2]
    assert torch.equal(reopened.edge_mask, before["edge_mask"])
    reopened.close()


def test_deletion_error_is_a_value_error():
    assert issubclass(gu.DeletionError, ValueError)


def test_directed_reverse_pair_is_not_an_edge():
    s = store_b()
    before = snapshot(s)
    with pytest.raises(gu.DeletionError, match=r"1 pairs are not edges.*\(2, 1\)"):
        s.delete_edges([(1, 2), (2, 1)])
    assert_same_snapshot(before, snapshot(s))


def test_node_class_all_deleted():
    s = store_a()
    s.delete_nodes([1])
    s.delete_nodes([4])  # class 1 is {1, 4}
    before = snapshot(s)
    with pytest.raises(gu.DeletionError, match=r"every node of class 1 is already deleted \(by requests \[0, 1\]\)"):
        s.delete_node_class(1)
    assert_same_snapshot(before, snapshot(s))


@pytest.mark.parametrize("missing, call, pattern", [
    ("edge_type", lambda s: s.delete_edge_class(0), "no edge_type"),
    ("y", lambda s: s.delete_node_class(0), "no 1-D integer node labels"),
    ("x", lambda s: s.delete_node_features([0]), "no node features"),
])
def test_store_without_attribute(missing, call, pattern):
    data = graph_a()
    del data[missing]
    s = gu.GraphStore(data)
    before = snapshot(s)
    with pytest.raises(gu.DeletionError, match=pattern):
        call(s)
    assert_same_snapshot(before, snapshot(s))


def test_store_with_multilabel_y_refuses_node_class():
    data = graph_a()
    data.y = torch.zeros(5, 2, dtype=torch.long)
    s = gu.GraphStore(data)
    with pytest.raises(gu.DeletionError, match="1-D"):
        s.delete_node_class(0)


@pytest.mark.parametrize("kw, pattern", [
    ({"edge_index": torch.tensor([[0, 5], [1, 0]])}, r"node ids \[5\] outside"),
    ({"edge_index": torch.tensor([[0.0], [1.0]])}, "integer tensor"),
    ({"edge_index": torch.tensor([0, 1])}, r"\[2, E\]"),
    ({"x": torch.zeros(4, 2)}, "x must have 5 rows"),
    ({"edge_type": torch.tensor([0.5, 0.5])}, "edge_type"),
    ({"edge_weight": torch.tensor([1, 1])}, "edge_weight"),
])
def test_bad_graph_is_refused_at_construction(kw, pattern):
    data = Data(x=features(5), edge_index=torch.tensor([[0, 1], [1, 0]]), num_nodes=5)
    for k, v in kw.items():
        data[k] = v
    with pytest.raises(ValueError, match=pattern):
        gu.GraphStore(data)


def test_not_a_data_object():
    with pytest.raises(TypeError, match="torch_geometric.data.Data"):
        gu.GraphStore({"edge_index": torch.tensor([[0], [1]])})


def test_numpy_and_tensor_integer_class_ids_are_accepted():
    s = store_a()
    assert s.delete_edge_class(np.int64(1)).params == {"edge_class": 1}
    assert s.delete_node_class(np.int32(2)).params == {"node_class": 2}
    assert s.delete_node_class(torch.tensor(1)).params == {"node_class": 1}
    assert all(type(r.params[k]) is int for r in s.requests for k in r.params)
