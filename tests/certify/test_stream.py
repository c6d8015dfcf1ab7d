"""Request streams: the request file, the retrain policy, gu.stream on a tiny graph, and `graphunlearn stream`."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import graphunlearn as gu
from graphunlearn import models, train
from graphunlearn.certify.stream import (
    RetrainPolicy,
    StreamError,
    StreamRequest,
    read_requests,
    stream,
    write_requests,
)
from graphunlearn.cli import main
from graphunlearn.tasks.link import LinkPrediction

REPO = Path(__file__).resolve().parents[2]

# ---------------------------------------------------------------------------------------------- request file
GOOD = """\
# a comment, then a blank line

{"kind": "edges", "edges": [[0, 1], [2, 3]], "arrival": 0.5, "ref": "T-1"}
{"kind": "nodes", "nodes": [7], "arrival": 0.5}
{"kind": "node_features", "nodes": [4, 5], "columns": [0, 2]}
{"kind": "node_features", "nodes": [6], "arrival": 2}
{"kind": "edge_class", "class": 1, "ref": "licence-9"}
  {"kind": "node_class", "class": 0}
"""


def test_read_requests_reads_every_kind(tmp_path):
    path = tmp_path / "req.jsonl"
    path.write_text(GOOD)
    got = read_requests(path)
    assert [r.kind for r in got] == ["edges", "nodes", "node_features", "node_features", "edge_class", "node_class"]
    assert got[0].edges == ((0, 1), (2, 3)) and got[0].arrival == 0.5 and got[0].ref == "T-1"
    assert got[1].nodes == (7,) and got[1].ref is None
    assert got[2].columns == (0, 2) and got[3].columns is None and got[3].arrival == 2.0
    assert got[4].label == 1 and got[5].label == 0
    assert got[0].source == f"{path}:3" and got[5].source == f"{path}:8"
    again = write_requests(tmp_path / "copy.jsonl", got)
    assert read_requests(again) == got  # what write_requests writes reads back the same


@pytest.mark.parametrize("line, needles", [
    ('{"kind": "edges", "edges": [[0, 1]]', ["not valid JSON"]),
    ('[1, 2]', ["JSON object"]),
    ('{"edges": [[0, 1]]}', ["field 'kind' is missing"]),
    ('{"kind": "users", "nodes": [1]}', ["field 'kind'", "unknown kind 'users'"]),
    ('{"kind": "edges"}', ["field 'edges' is missing"]),
    ('{"kind": "nodes", "nodes": []}', ["field 'nodes' is empty"]),
    ('{"kind": "nodes", "nodes": [1, 2.5]}', ["field 'nodes'", "integer ids", "2.5"]),
    ('{"kind": "nodes", "nodes": ["3"]}', ["field 'nodes'", "integer ids"]),
    ('{"kind": "nodes", "nodes": [true]}', ["field 'nodes'", "integer ids"]),
    ('{"kind": "nodes", "nodes": [-4]}', ["field 'nodes' must hold integer ids >= 0, got -4"]),
    ('{"kind": "nodes", "nodes": 3}', ["field 'nodes'", "list of integer ids"]),
    ('{"kind": "edges", "edges": [[0, 1, 2]]}', ["field 'edges'", "entry 0", "pair"]),
    ('{"kind": "edges", "edges": [[0, 1.0]]}', ["field 'edges'", "integer ids"]),
    ('{"kind": "nodes", "nodes": [1], "columns": [0]}', ["field 'columns'", "not a field of a 'nodes' request"]),
    ('{"kind": "nodes", "nodes": [1], "arival": 3}', ["field 'arival'", "not a field"]),
    ('{"kind": "node_features", "nodes": [1], "columns": ["a"]}', ["field 'columns'", "integer ids"]),
    ('{"kind": "edge_class"}', ["field 'class' is missing"]),
    ('{"kind": "edge_class", "class": "spam"}', ["field 'class' must be an integer >= 0", "str"]),
    ('{"kind": "edge_class", "class": -1}', ["field 'class' must be an integer >= 0"]),
    ('{"kind": "node_class", "class": null}', ["field 'class'", "null"]),
    ('{"kind": "nodes", "nodes": [1], "arrival": -1}', ["field 'arrival'", ">= 0"]),
    ('{"kind": "nodes", "nodes": [1], "arrival": "soon"}', ["field 'arrival'"]),
    ('{"kind": "nodes", "nodes": [1], "arrival": NaN}', ["field 'arrival'"]),
    ('{"kind": "nodes", "nodes": [1], "arrival": 4}', ["field 'arrival' goes backwards", "line 2"]),
    ('{"kind": "nodes", "nodes": [1], "ref": 7}', ["field 'ref'", "string"]),
])
def test_read_requests_names_file_line_and_field(tmp_path, line, needles):
    path = tmp_path / "bad.jsonl"
    path.write_text('# header\n{"kind": "nodes", "nodes": [0], "arrival": 5}\n' + line + "\n")
    with pytest.raises(ValueError) as info:
        read_requests(path)
    message = str(info.value)
    assert message.startswith(f"{path}:3: "), message
    for needle in needles:
        assert needle in message, message


def test_stream_request_checks_fields_when_built():
    with pytest.raises(ValueError, match="a 'nodes' request takes no edges"):
        StreamRequest("nodes", nodes=[1], edges=[(0, 1)])
    with pytest.raises(ValueError, match="field 'class'"):
        StreamRequest("node_class")
    assert StreamRequest("nodes", nodes=[3, 4]).nodes == (3, 4)  # lists become tuples: hashable, frozen


# ---------------------------------------------------------------------------------------------- policy
@pytest.mark.parametrize("kwargs, error, needle", [
    ({"budget": 0}, ValueError, "budget must be a finite number in (0, 1]"),
    ({"budget": 1.5}, ValueError, "budget"),
    ({"budget": float("nan")}, ValueError, "budget"),
    ({"budget": "0.1"}, TypeError, "budget must be a number"),
    ({"max_requests": 0}, ValueError, "max_requests must be >= 1"),
    ({"max_requests": 2.0}, TypeError, "max_requests must be an int"),
    ({"max_requests": True}, TypeError, "max_requests"),
    ({"max_val_drop": -0.01}, ValueError, "max_val_drop"),
    ({"max_val_drop": math.inf}, ValueError, "max_val_drop"),
])
def test_policy_refuses_bad_fields(kwargs, error, needle):
    with pytest.raises(error) as info:
        RetrainPolicy(**kwargs)
    assert needle in str(info.value) and "RetrainPolicy" in str(info.value)


def test_policy_rules():
    assert RetrainPolicy().never and not RetrainPolicy(budget=1.0).never
    assert RetrainPolicy().reason(units=10 ** 9, total_units=1, requests=10 ** 9, drifted=True) is None
    p = RetrainPolicy(budget=0.1)
    assert p.reason(units=10, total_units=100, requests=1, drifted=False) is None  # 10 is not above 10
    assert p.reason(units=11, total_units=100, requests=1, drifted=False) == "budget"
    q = RetrainPolicy(max_requests=2)
    assert q.reason(units=0, total_units=1, requests=2, drifted=False) is None
    assert q.reason(units=0, total_units=1, requests=3, drifted=False) == "max_requests"
    assert RetrainPolicy(max_val_drop=0.02).reason(units=0, total_units=1, requests=1, drifted=True) == "val_drop"


# ---------------------------------------------------------------------------------------------- streams
@pytest.fixture(scope="module")
def link_setup():
    data = gu.datasets.synthetic(num_nodes=120, num_classes=4, num_features=8, avg_degree=6, homophily=0.9, seed=1)
    split = gu.datasets.link_split(data, seed=42)
    store = gu.GraphStore(split.train_data)
    torch.manual_seed(0)
    model = models.GCN(8, hidden_channels=16, out_channels=8)
    train.link_prediction(model, store, split, epochs=20, eval_every=5, progress=False)
    return split, model


def _edges(store, first: int, count: int, per: int = 1, ref: str = "r") -> list[StreamRequest]:
    """``count`` requests of ``per`` distinct store edges each, from edge id ``first`` on."""
    ei = store.edge_index
    return [StreamRequest("edges", edges=[tuple(ei[:, first + k * per + j].tolist()) for j in range(per)],
                          ref=f"{ref}{k}") for k in range(count)]


def _live_pairs(store) -> set[tuple[int, int]]:
    ei = store.live().edge_index
    return set(zip(ei[0].tolist(), ei[1].tolist()))


def test_stream_batches_and_forgets_everything(link_setup, tmp_path):
    split, model = link_setup
    store = gu.GraphStore(split.train_data)
    reqs = _edges(store, 0, 4) + [StreamRequest("nodes", nodes=[5], ref="node-5")]
    res = stream(model, store, reqs, split=split, batch=2, certificates=tmp_path / "certs", epochs=2)
    assert [s.step for s in res.steps] == [1, 2, 3] and [len(s.requests) for s in res.steps] == [2, 2, 1]
    assert [s.action for s in res.steps] == ["unlearn"] * 3 and res.retrains == []
    assert res.steps[0].refs == ("r0", "r1") and res.steps[2].refs == ("node-5",)
    # costs add up
    running = 0.0
    for s in res.steps:
        running += s.seconds
        assert s.seconds > 0 and s.cumulative_seconds == pytest.approx(running)
    assert res.total_seconds == pytest.approx(sum(s.seconds for s in res.steps))
    # the deleted edges and node are gone from the live graph, in both directions
    live = _live_pairs(store)
    for r in reqs[:4]:
        (u, v), = r.edges
        assert (u, v) not in live and (v, u) not in live
    assert not bool(store.node_mask[5]) and 5 not in {u for u, _ in live} | {v for _, v in live}
    # the final model has forgotten every request; the store's ledger agrees
    card = gu.card_of(res.model)
    assert card.forgotten == tuple(range(5)) == res.requests
    assert store.forgotten_by(card.tag) == list(range(5))
    assert all(s.val_score is not None and 0 <= s.val_score <= 1 for s in res.steps)
    # one certificate per step, JSON and Markdown, naming that step's requests
    for s in res.steps:
        assert s.certificate is not None and s.certificate_path == tmp_path / "certs" / f"step-{s.step:04d}.json"
        assert s.certificate_path.is_file() and s.certificate_path.with_suffix(".md").is_file()
        assert sorted(s.certificate.request_ids) == sorted(s.requests)
    table = res.table()
    assert "step" in table and "unlearn" in table and "node-5" in table and "3 steps, 5 requests" in table


def test_stream_certificates_are_signed_and_verify(link_setup, tmp_path):
    split, model = link_setup
    store = gu.GraphStore(split.train_data)
    key = "k" * 32
    res = stream(model, store, _edges(store, 80, 2), split=split, certificates=tmp_path, key=key, epochs=2,
                 policy=RetrainPolicy(max_requests=1))
    for s in res.steps:
        assert s.certificate.signature is not None and s.certificate.signature_problem(key) is None
        assert s.certificate.signature_problem("w" * 32) is not None  # another key does not verify it
    report = gu.certify.verify(res.steps[-1].certificate_path, store=store, model=res.model, key=key,
                               require_signature=True)
    assert report.ok, str(report)
    earlier = gu.certify.verify(res.steps[0].certificate_path, key=key, require_signature=True)
    assert earlier.ok, str(earlier)  # each step's file stands on its own
    with pytest.raises(ValueError, match="stream: the signing key is too short"):
        stream(model, store, _edges(store, 90, 1), split=split, key="short")
    with pytest.raises(TypeError, match="stream: key must be"):
        stream(model, store, _edges(store, 90, 1), split=split, key=1234)
    assert len(store.requests) == 2  # refused before anything was registered


def test_budget_policy_retrains_at_the_right_step(link_setup):
    split, model = link_setup
    store = gu.GraphStore(split.train_data)
    total = store.num_edges
    # 2 edges per request, budget 2.5 requests' worth: steps 1, 2 unlearn (2, 4 units), step 3 would reach 6
    policy = RetrainPolicy(budget=5 / total)
    res = stream(model, store, _edges(store, 10, 7, per=2), split=split, policy=policy, epochs=2)
    assert res.total_units == total
    assert [s.action for s in res.steps] == ["unlearn", "unlearn", "retrain", "unlearn", "unlearn", "retrain",
                                             "unlearn"]
    assert res.retrains == [3, 6] and {res.steps[k].reason for k in (2, 5)} == {"budget"}
    assert [s.units for s in res.steps] == [2] * 7
    assert [s.units_since_retrain for s in res.steps] == [2, 4, 0, 2, 4, 0, 2]
    assert res.steps[2].method == "retrain" and res.steps[2].forgotten == (2,)  # 0, 1: forgotten already
    assert gu.card_of(res.model).forgotten == tuple(range(7))


def test_retrain_also_forgets_requests_registered_before_the_stream(link_setup):
    split, model = link_setup
    store = gu.GraphStore(split.train_data)
    early = store.delete_edges([0])  # registered, never unlearned by this model
    res = stream(model, store, _edges(store, 20, 2), split=split, policy=RetrainPolicy(max_requests=1), epochs=2)
    assert [s.action for s in res.steps] == ["unlearn", "retrain"] and res.steps[1].reason == "max_requests"
    assert res.steps[0].forgotten == (1,) and res.steps[1].forgotten == (early.id, 2)
    assert gu.card_of(res.model).forgotten == (0, 1, 2)


def test_from_anchor_unlearns_every_request_since_the_anchor_from_it(link_setup, monkeypatch):
    import importlib

    stream_module = importlib.import_module("graphunlearn.certify.stream")  # the package's name is the function
    split, model = link_setup
    store = gu.GraphStore(split.train_data)
    calls = []  # (model started from, model returned) of every unlearn call
    real = stream_module.unlearn

    def spy(m, *args, **kwargs):
        out = real(m, *args, **kwargs)
        calls.append((m, out.model))
        return out

    monkeypatch.setattr(stream_module, "unlearn", spy)
    # gnndelete wraps the model it unlearns: without the anchor it could not take a second step
    res = stream(model, store, _edges(store, 30, 5), split=split, policy=RetrainPolicy(max_requests=3),
                 method="gnndelete", from_anchor=True, epochs=2)
    assert [s.action for s in res.steps] == ["unlearn", "unlearn", "unlearn", "retrain", "unlearn"]
    # steps 1-3 start from the first model and forget every request since it
    assert all(start is model for start, _ in calls[:3])
    assert [s.forgotten for s in res.steps[:3]] == [(0,), (0, 1), (0, 1, 2)]
    # the retrain starts from the latest model (it forgot 0-2) and becomes the anchor of step 5
    assert calls[3][0] is calls[2][1] and res.steps[3].forgotten == (3,)
    assert calls[4][0] is calls[3][1] and res.steps[4].forgotten == (4,)
    assert gu.card_of(res.model).forgotten == tuple(range(5))
    monkeypatch.undo()
    with pytest.raises(ValueError, match="gnndelete"):  # without the anchor its own output is refused
        stream(model, gu.GraphStore(split.train_data), _edges(store, 30, 2), split=split, method="gnndelete",
               epochs=2)
    with pytest.raises(TypeError, match="from_anchor"):
        stream(model, gu.GraphStore(split.train_data), _edges(store, 30, 1), split=split, from_anchor="yes")


def test_a_stream_fed_in_pieces_behaves_as_one(link_setup):
    split, model = link_setup
    whole_store, piece_store = gu.GraphStore(split.train_data), gu.GraphStore(split.train_data)
    policy = RetrainPolicy(max_requests=2)
    whole = stream(model, whole_store, _edges(whole_store, 40, 5), split=split, policy=policy, epochs=2,
                   from_anchor=True)
    reqs = _edges(piece_store, 40, 5)
    first = stream(model, piece_store, reqs[:2], split=split, policy=policy, epochs=2, from_anchor=True)
    second = stream(first.model, piece_store, reqs[2:], split=split, policy=policy, epochs=2, from_anchor=True,
                    resume=first)
    # the policy's count and the anchor carried over: step 3 retrains in both, step 4 starts from its output;
    # step numbers (and so seeds) continue, so the pieces compute what the whole stream computes
    pieces = first.steps + second.steps
    assert [s.step for s in pieces] == [1, 2, 3, 4, 5]
    assert [s.action for s in whole.steps] == [s.action for s in pieces]
    assert [s.forgotten for s in whole.steps] == [s.forgotten for s in pieces]
    for a, b in zip(whole.model.state_dict().values(), second.model.state_dict().values()):
        assert torch.equal(a, b)
    assert second.state["anchor"] is not model and second.state["seen"] == frozenset(range(5))
    with pytest.raises(ValueError, match="resume continues"):
        stream(model, piece_store, _edges(piece_store, 60, 1), split=split, resume=second, from_anchor=True)
    with pytest.raises(ValueError, match="from_anchor"):
        stream(second.model, piece_store, _edges(piece_store, 60, 1), split=split, resume=second)
    # the requests seen carry over: a DeletionRequest of the first piece is refused as given twice
    given = piece_store.requests[0]
    with pytest.raises(StreamError, match="given twice|twice"):
        stream(second.model, piece_store, [given], split=split, resume=second, from_anchor=True)


def test_a_failed_stream_resumes_from_its_partial_result(link_setup):
    split, model = link_setup
    store = gu.GraphStore(split.train_data)
    reqs = _edges(store, 50, 3)
    bad = StreamRequest("nodes", nodes=[10**6], ref="bad")
    with pytest.raises(StreamError) as info:
        stream(model, store, reqs[:2] + [bad], split=split, epochs=2)
    partial = info.value.partial
    assert [s.step for s in partial.steps] == [1, 2] and partial.state["position"] == 3
    more = stream(partial.model, store, reqs[2:], split=split, epochs=2, resume=partial)
    assert [s.step for s in more.steps] == [3] and gu.card_of(more.model).forgotten == (0, 1, 2)
    # a failed step's requests that were registered are unlearned by the resumed stream's first step
    store = gu.GraphStore(split.train_data)
    reqs = _edges(store, 60, 4)
    with pytest.raises(StreamError) as info:
        stream(model, store, reqs[:3] + [bad], split=split, batch=2, epochs=2)
    partial = info.value.partial
    assert [s.requests for s in partial.steps] == [(0, 1)] and partial.state["carry"]
    more = stream(partial.model, store, reqs[3:], split=split, batch=2, epochs=2, resume=partial)
    assert more.steps[0].requests == (2, 3) and gu.card_of(more.model).forgotten == (0, 1, 2, 3)


def test_node_stream_counts_training_nodes_only():
    data = gu.datasets.synthetic(num_nodes=100, num_classes=3, num_features=8, avg_degree=5, seed=2)
    split = gu.datasets.node_split(data, seed=0)
    store = gu.GraphStore(data)
    torch.manual_seed(0)
    model = models.GCN(8, hidden_channels=16, out_channels=3)
    train.node_classification(model, store, split, epochs=10, progress=False)
    trained = split.train_idx.tolist()
    other = sorted(set(range(100)) - set(trained))
    reqs = [StreamRequest("nodes", nodes=trained[:2]), StreamRequest("nodes", nodes=other[:3]),
            StreamRequest("node_features", nodes=[trained[2]]), StreamRequest("nodes", nodes=trained[3:4])]
    # budget: 2 of the training nodes; the third training node deleted (step 4) goes over it
    res = stream(model, store, reqs, split=split, policy=RetrainPolicy(budget=2 / len(trained)), epochs=2)
    assert res.total_units == len(trained)
    assert [s.units for s in res.steps] == [2, 0, 0, 1]  # other nodes and feature values are no training units
    assert [s.action for s in res.steps] == ["unlearn", "unlearn", "unlearn", "retrain"]
    assert gu.card_of(res.model).forgotten == (0, 1, 2, 3)


class _Drifting(LinkPrediction):
    """Link prediction whose validation score reads 0.5 for a d2dgn model and 0.9 otherwise: drift on cue."""

    def validate(self, model, store, split):
        card = gu.card_of(model)
        return 0.5 if card is not None and card.method == "d2dgn" else 0.9


def test_val_drop_retrains_the_next_step(link_setup):
    split, model = link_setup
    store = gu.GraphStore(split.train_data)
    res = stream(model, store, _edges(store, 30, 5), split=split, task=_Drifting(),
                 policy=RetrainPolicy(max_val_drop=0.1), epochs=2)
    assert [s.action for s in res.steps] == ["unlearn", "retrain", "unlearn", "retrain", "unlearn"]
    assert res.steps[1].reason == "val_drop" and [s.val_score for s in res.steps] == [0.5, 0.9, 0.5, 0.9, 0.5]
    assert res.retrain_due == "val_drop"  # the last step drifted: the next request would retrain
    with pytest.raises(ValueError, match="max_val_drop needs a validation score, but no split was given"):
        stream(model, gu.GraphStore(split.train_data), _edges(store, 30, 1), task="link",
               policy=RetrainPolicy(max_val_drop=0.1))


def test_bad_request_mid_stream_keeps_the_steps_before(link_setup):
    split, model = link_setup
    store = gu.GraphStore(split.train_data)
    reqs = _edges(store, 40, 2) + [StreamRequest("nodes", nodes=[10 ** 6], ref="ticket-77")] + _edges(store, 45, 1)
    with pytest.raises(StreamError) as info:
        stream(model, store, reqs, split=split, epochs=2)
    err = info.value
    assert isinstance(err, ValueError) and err.position == 3 and err.ref == "ticket-77"
    assert "request 3" in str(err) and "ticket-77" in str(err) and "out of range" in str(err)
    assert len(err.partial.steps) == 2 and gu.card_of(err.partial.model).forgotten == (0, 1)
    assert len(store.requests) == 2  # the refused request changed nothing; the one after it never came


def test_stream_refuses_a_request_given_twice_and_a_bad_batch(link_setup):
    split, model = link_setup
    store = gu.GraphStore(split.train_data)
    r = store.delete_edges([50])
    with pytest.raises(StreamError, match="given twice") as info:
        stream(model, store, [r, r], split=split, epochs=2)
    assert len(info.value.partial.steps) == 1 and info.value.position == 2
    with pytest.raises(StreamError, match=r"request 1 \(edges \(1 pairs\), ref 'r0'\).*already deleted"):
        stream(model, store, _edges(store, 50, 1), split=split)  # edge 50 is deleted already
    with pytest.raises(ValueError, match="stream: batch must be >= 1"):
        stream(model, store, [], split=split, batch=0)
    with pytest.raises(ValueError, match="no request given"):
        stream(model, store, [], split=split)
    with pytest.raises(ValueError, match="d2dgn has no option|options"):
        stream(model, store, _edges(store, 60, 1), split=split, bogus=1)
    assert len(store.requests) == 1  # option errors come before anything is registered


def test_stream_reads_a_request_file(link_setup, tmp_path):
    split, model = link_setup
    store = gu.GraphStore(split.train_data)
    path = write_requests(tmp_path / "r.jsonl", _edges(store, 70, 3))
    res = stream(model, store, str(path), split=split, epochs=2)
    assert res.requests == (0, 1, 2) and [s.refs for s in res.steps] == [("r0",), ("r1",), ("r2",)]
    lazy = (r for r in _edges(store, 75, 3))  # a generator: requests taken as they come, no length known
    more = stream(res.model, store, lazy, split=split, batch=2, epochs=2)
    assert more.requests == (3, 4, 5) and gu.card_of(more.model).forgotten == tuple(range(6))


# ---------------------------------------------------------------------------------------------- CLI
@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("stream-cli") / "run"
    assert main(["split", "--dataset", "synthetic", "--run", str(run)]) == 0
    assert main(["train", "--run", str(run), "--epochs", "5", "--hidden", "8", "--out-channels", "8", "--quiet"]) == 0
    store = gu.GraphStore.open(run / "store", read_only=True)
    try:
        ei = store.edge_index.clone()
    finally:
        store.close()
    return run, ei


def _write(path: Path, lines: list[dict]) -> Path:
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return path


def test_cli_stream_end_to_end(cli_run, tmp_path, capsys):
    run, ei = cli_run
    lines = [{"kind": "edges", "edges": [ei[:, k].tolist()], "arrival": float(k), "ref": f"T{k}"} for k in range(3)]
    lines.append({"kind": "nodes", "nodes": [11], "ref": "user-11"})
    reqs = _write(tmp_path / "requests.jsonl", lines)
    key = tmp_path / "key"
    key.write_text("s" * 20 + "\n")
    assert main(["stream", "--run", str(run), "--requests", str(reqs), "--max-requests", "2", "--option", "epochs=2",
                 "--output", "final.pt", "--key-file", str(key), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "retrain (max_requests)" in out and "user-11" in out and "-> " + str(run / "final.pt") in out
    assert "4 signed certificates" in out
    model = gu.load_model(run / "final.pt")
    forgotten = gu.card_of(model).forgotten
    assert len(forgotten) == 4
    certs = run / "certificates" / "stream-final"
    assert sorted(p.name for p in certs.glob("*.json")) == [f"step-000{k}.json" for k in range(1, 5)]
    assert (certs / "step-0001.md").is_file()
    assert gu.certify.verify(certs / "step-0001.json", key="s" * 20, require_signature=True).ok  # --key-file
    store = gu.GraphStore.open(run / "store", read_only=True)  # the checkpoint holds the ledger
    try:
        assert store.forgotten_by(gu.card_of(model).tag) == list(forgotten)
    finally:
        store.close()
    # the same output again would overwrite an audit trail: refused before any work
    capsys.readouterr()
    assert main(["stream", "--run", str(run), "--requests", str(reqs), "--output", "final.pt"]) == 2
    assert "already holds certificates" in capsys.readouterr().err


def test_cli_stream_errors(cli_run, tmp_path, capsys):
    run, ei = cli_run
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"kind": "edges", "edges": [[0, 1]]}\n{"kind": "nodes", "nodes": [1.5]}\n')
    assert main(["stream", "--run", str(run), "--requests", str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:2: field 'nodes'" in err and len(err.strip().splitlines()) == 1
    assert main(["stream", "--run", str(run), "--requests", str(tmp_path / "none.jsonl")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["stream", "--run", str(run), "--requests", str(bad), "--budget", "2"]) == 2
    assert "argument --budget: must be a fraction in (0, 1]" in capsys.readouterr().err
    assert main(["stream", "--run", str(run), "--requests", str(bad), "--option", "nope=1"]) == 2
    assert "--option nope: method 'd2dgn' has no such option" in capsys.readouterr().err
    # a request the store refuses mid-stream: the steps before are saved, the message names position and ref
    mid = _write(tmp_path / "mid.jsonl", [{"kind": "edges", "edges": [ei[:, 200].tolist()], "ref": "ok"},
                                          {"kind": "nodes", "nodes": [10 ** 7], "ref": "ticket-9"}])
    assert main(["stream", "--run", str(run), "--requests", str(mid), "--option", "epochs=2", "--output",
                 "partial.pt", "--quiet"]) == 2
    captured = capsys.readouterr()
    assert "request 2" in captured.err and "ticket-9" in captured.err and "partial.pt" in captured.err
    assert len(gu.card_of(gu.load_model(run / "partial.pt")).forgotten) == 1


# ---------------------------------------------------------------------------------------------- benchmark
@pytest.mark.slow
def test_stream_benchmark_quick(tmp_path, data_root):
    env = dict(os.environ, GRAPHUNLEARN_DATA=str(data_root))
    # the Cora stream only (the MovieLens one shares every code path but its golds cost minutes), with the
    # options and the policy flags the README's run uses
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "bench_stream.py"), "--quick", "--stream",
                           "cora-link", "--option", "lr=0.001", "--max-requests", "1", "--out", str(tmp_path)],
                          capture_output=True, text=True, env=env, cwd=REPO, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for name in ("cora-link",):
        blob = json.loads((tmp_path / f"{name}.json").read_text())
        assert blob["steps"] and blob["checkpoints"], name
        for f in (f"{name}.json", f"{name}.csv"):  # paths relative to the output folder, none of this machine's
            assert str(tmp_path) not in (tmp_path / f).read_text(), f
        assert (tmp_path / blob["steps"][0]["certificate"]).is_file()
        assert (tmp_path / f"{name}.csv").is_file() and (tmp_path / f"{name}.png").is_file()
