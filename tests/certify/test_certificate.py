"""Deletion certificates: what unlearn certifies, and that every kind of tampering is caught by verify."""

from __future__ import annotations

import json
import sqlite3

import pytest
import torch

import graphunlearn as gu
from graphunlearn import models, train
from graphunlearn.certificate import Certificate, CertificateError, canonical_json, key_id, load_key
from graphunlearn.certify import redact_certificates, verify
from graphunlearn.cli import main
from graphunlearn.store import journal_path

KEY = b"k" * 32
OTHER_KEY = b"o" * 32


def _setup(tmp_path, *, kind="edges", save=True):
    data = gu.datasets.synthetic(num_nodes=200, num_classes=4, num_features=8, avg_degree=6, seed=3)
    split = gu.datasets.link_split(data, seed=42)
    store = gu.GraphStore(split.train_data)
    if save:
        store.save(tmp_path / "store")
    torch.manual_seed(0)
    model = models.GCN(8, hidden_channels=16, out_channels=8)
    train.link_prediction(model, store, split, epochs=10, eval_every=5, progress=False)
    if kind == "edges":
        req = store.delete_edges(store.live_edge_ids()[:6], layout="ids")
    elif kind == "nodes":
        req = store.delete_nodes([5, 9])
    else:
        req = store.delete_node_features([3, 4], columns=[0, 2])
    result = gu.unlearn(model, store, req, "d2dgn", split=split, epochs=2)
    return store, split, model, req, result


def _failed(report) -> dict[str, str]:
    return {c.name: c.detail for c in report.failures}


@pytest.fixture
def signed(tmp_path):
    store, split, model, req, result = _setup(tmp_path)
    cert = result.certificate.sign(KEY)
    yield store, split, model, req, result, cert
    store.close()


def test_the_certificate_records_what_the_issue_asks(signed):
    store, split, model, req, result, cert = signed
    b = cert.body
    assert cert.request_ids == [req.id] and b["requests"][0]["kind"] == "edges"
    assert b["forget_set"]["edges"] == 6 and len(b["forget_set"]["sha256"]) == 64
    assert b["store"]["uid"] == store.uid and b["store"]["state_hash"] == store.state_hash()
    assert b["store"]["journal_before"]["request"] == -1 and b["store"]["journal_after"]["request"] == req.id
    assert b["store"]["journal_after"]["chain"] == store.journal_chain(req.id)
    assert b["model"]["unlearned_weights"] == gu.models.card.weight_hash(result.model)
    assert b["model"]["original_weights"] == gu.models.card.weight_hash(model)
    assert b["method"]["name"] == "d2dgn" and b["method"]["options"]["epochs"] == 2 and b["method"]["seed"] == 0
    assert b["environment"]["torch"] == torch.__version__ and b["cost"]["seconds"] == result.seconds
    assert 0.0 <= b["evidence"]["forget_vs_heldout_auroc"] <= 1.0
    assert "original_forget_vs_heldout_auroc" in b["evidence"]
    assert b["evidence"]["weight_change"] > 0 and b["evidence"]["heldout_score_shift"] > 0
    assert KEY.decode() not in cert.to_json()  # never the key
    report = verify(cert, store=store, model=result.model, original=model, split=split, key=KEY)
    assert report.ok, str(report)
    assert {c.name for c in report.checks if c.status == "ok"} >= {
        "certificate digest", "forget ids", "signature", "store", "journal", "requests", "forget set absent",
        "store state", "model weights", "original weights", "evidence"}


def test_json_round_trip_and_renderings(signed, tmp_path):
    *_, cert = signed
    path = cert.save(tmp_path / "c.json")
    again = Certificate.load(path)
    assert canonical_json(again.to_dict()) == canonical_json(cert.to_dict())
    assert not again.problems(KEY)
    md = path.with_suffix(".md").read_text()
    assert "Deletion certificate" in md and cert.body["forget_set"]["sha256"] in md
    assert "<h1>" in cert.to_html() and "<script" not in cert.to_html()


def test_a_changed_weight_is_caught(signed):
    store, split, model, req, result, cert = signed
    with torch.no_grad():
        next(result.model.parameters()).view(-1)[0] += 1e-4
    failed = _failed(verify(cert, store=store, model=result.model, key=KEY))
    assert set(failed) == {"model weights"} and "changed weight" in failed["model weights"]
    failed = _failed(verify(cert, store=store, original=result.model, key=KEY))
    assert set(failed) == {"original weights"}


def test_an_edge_brought_back_is_caught(signed):
    store, split, model, req, result, cert = signed
    store.edge_mask[req.edge_ids[1]] = True
    failed = _failed(verify(cert, store=store, model=result.model, key=KEY))
    assert set(failed) == {"forget set absent", "store state"}
    assert f"edges [{req.edge_ids[1].item()}]" in failed["forget set absent"]


def test_a_node_brought_back_and_feature_values_brought_back_are_caught(tmp_path):
    store, split, model, req, result = _setup(tmp_path, kind="nodes")
    store.node_mask[5] = True
    assert "nodes [5] are live again" in _failed(verify(result.certificate, store=store))["forget set absent"]
    store.close()
    store, split, model, req, result = _setup(tmp_path / "f", kind="node_features")
    assert verify(result.certificate, store=store, model=result.model, split=split).ok
    store.feature_mask[3, 2] = True
    assert "feature values of request" in _failed(verify(result.certificate, store=store))["forget set absent"]
    store.close()


def test_an_edited_journal_row_is_caught(signed):
    store, split, model, req, result, cert = signed
    with sqlite3.connect(journal_path(store._dir)) as conn:
        conn.execute("UPDATE requests SET summary = 'nothing to see' WHERE id = ?", (req.id,))
    failed = _failed(verify(cert, store=store, key=KEY))
    assert set(failed) == {"journal"} and f"request {req.id}" in failed["journal"]


def test_a_rewritten_journal_chain_is_caught(signed):
    # a journal rewritten consistently (another chain from the same store uid) still differs from the
    # chain positions the certificate recorded
    store, split, model, req, result, cert = signed
    forged = json.loads(cert.to_json())
    forged["body"]["store"]["journal_after"]["chain"] = "00" * 32
    forged_cert = Certificate.from_dict(forged).sign(KEY)  # even re-signed with the right key
    failed = _failed(verify(forged_cert, store=store, key=KEY))
    assert set(failed) == {"journal"} and "hash chain differs" in failed["journal"]


@pytest.mark.parametrize("edit", ["method", "evidence", "forget_hash"])
def test_an_edited_certificate_is_caught(signed, edit):
    store, split, model, req, result, cert = signed
    blob = json.loads(cert.to_json())
    if edit == "method":
        blob["body"]["method"]["options"]["epochs"] = 50
    elif edit == "evidence":
        blob["body"]["evidence"]["forget_vs_heldout_auroc"] = 0.5
    else:
        blob["body"]["forget_set"]["sha256"] = "0" * 64
    edited = Certificate.from_dict(blob)
    failed = _failed(verify(edited, store=store, key=KEY))
    assert "certificate digest" in failed and "signature" in failed
    # whoever edits can recompute the digest, not the HMAC
    blob["digest"] = edited.body_digest()
    failed = _failed(verify(Certificate.from_dict(blob), store=store, key=KEY))
    assert "certificate digest" not in failed and "does not match the body" in failed["signature"]
    # nor escape the key by dropping the signature: a key given makes an unsigned certificate fail
    blob["signature"] = None
    failed = _failed(verify(Certificate.from_dict(blob), store=store, key=KEY))
    assert "not signed" in failed["signature"]


def test_edited_forget_ids_are_caught(signed):
    store, split, model, req, result, cert = signed
    blob = json.loads(cert.to_json())
    blob["forget_ids"]["requests"][0]["edge_ids"][0] += 1
    failed = _failed(verify(Certificate.from_dict(blob), store=store, key=KEY))
    assert set(failed) == {"forget ids"} and "ids edited" in failed["forget ids"]


def test_a_wrong_key_is_caught_and_named(signed):
    store, split, model, req, result, cert = signed
    failed = _failed(verify(cert, store=store, key=OTHER_KEY))
    assert set(failed) == {"signature"}
    assert key_id(KEY) in failed["signature"] and key_id(OTHER_KEY) in failed["signature"]
    assert not verify(cert, key=KEY).failures


def test_a_signature_can_be_required(tmp_path, monkeypatch):
    monkeypatch.delenv("GRAPHUNLEARN_CERT_KEY", raising=False)
    store, split, model, req, result = _setup(tmp_path, save=False)
    unsigned = result.certificate
    assert verify(unsigned, store=store).ok  # unsigned and no key: the signature is skipped, said so
    assert "no key" in _failed(verify(unsigned, store=store, require_signature=True))["signature"]
    monkeypatch.setenv("GRAPHUNLEARN_CERT_KEY", KEY.decode())
    assert "not signed" in _failed(verify(unsigned, store=store))["signature"]
    assert verify(unsigned.sign(load_key()), store=store, require_signature=True).ok


def test_another_store_and_another_stores_requests_are_caught(signed, tmp_path):
    store, split, model, req, result, cert = signed
    other, *_ = _setup(tmp_path / "other", save=False)
    assert "this store is" in _failed(verify(cert, store=other))["store"]


def test_an_unsaved_store_certifies_without_a_journal(tmp_path):
    store, split, model, req, result = _setup(tmp_path, save=False)
    report = verify(result.certificate, store=store, model=result.model, split=split)
    assert report.ok
    assert next(c for c in report.checks if c.name == "journal").status == "skipped"


def test_a_store_that_moved_on_still_verifies(signed):
    store, split, model, req, result, cert = signed
    store.delete_edges(store.live_edge_ids()[:2], layout="ids")
    report = verify(cert, store=store, model=result.model, split=split, key=KEY)
    assert report.ok, str(report)
    statuses = {c.name: c.status for c in report.checks}
    assert statuses["store state"] == "skipped" and statuses["journal"] == "ok"


def test_compaction_keeps_certificates_honest(signed, tmp_path):
    store, split, model, req, result, cert = signed
    path = cert.save(tmp_path / "certs" / "c.json")
    (tmp_path / "certs" / "other.json").write_text('{"not": "a certificate"}')
    store.compact()
    assert redact_certificates(tmp_path / "certs", store) == [path]
    redacted = Certificate.load(path)
    assert redacted.redacted and redacted.forget_ids is None
    assert json.loads(path.read_text())["forget_ids"] is None  # the erased ids are gone from the files
    assert "edge_ids" not in path.read_text() + path.with_suffix(".md").read_text()
    assert redacted.body == cert.body and redacted.signature == cert.signature  # hashes kept
    report = verify(redacted, store=store, model=result.model, key=KEY)
    assert report.ok, str(report)
    statuses = {c.name: c.status for c in report.checks}
    assert statuses["erasure"] == "ok" and statuses["journal"] == "ok" and statuses["forget ids"] == "skipped"
    reopened = gu.GraphStore.open(store._dir, read_only=True)
    assert verify(redacted, store=reopened, key=KEY).ok  # from the files alone
    assert redact_certificates(tmp_path / "certs", store) == []  # idempotent


def test_compacted_records_that_kept_their_ids_in_the_journal_are_caught(signed):
    store, split, model, req, result, cert = signed
    store.compact()
    with sqlite3.connect(journal_path(store._dir)) as conn:  # an old payload put back (chain unchanged)
        conn.execute("UPDATE requests SET salt = x'00', payload = x'00' WHERE id = ?", (req.id,))
    failed = _failed(verify(cert.redact(), store=store, key=KEY))
    assert "journal" in failed  # the digest no longer matches the restored payload


def test_damaged_certificate_files_are_refused_by_name(tmp_path):
    bad = tmp_path / "c.json"
    bad.write_text("{")
    with pytest.raises(CertificateError, match="c.json.*not JSON"):
        Certificate.load(bad)
    bad.write_text('{"format": "graphunlearn-certificate", "version": 99}')
    with pytest.raises(CertificateError, match="version 99"):
        Certificate.load(bad)
    with pytest.raises(ValueError, match="at least 16"):
        Certificate({"a": 1}).sign(b"short")


def test_cli_unlearn_writes_a_certificate_and_verify_catches_tampering(tmp_path, monkeypatch):
    run = str(tmp_path / "run")
    key = tmp_path / "key"
    key.write_text("0123456789abcdef0123456789abcdef\n")
    monkeypatch.delenv("GRAPHUNLEARN_CERT_KEY", raising=False)
    assert main(["split", "--dataset", "synthetic", "--run", run]) == 0
    assert main(["train", "--run", run, "--epochs", "10", "--quiet"]) == 0
    assert main(["delete", "--run", run, "--fraction", "0.02"]) == 0
    assert main(["unlearn", "--run", run, "--request", "0", "--option", "epochs=2", "--quiet",
                 "--key-file", str(key)]) == 0
    cert = tmp_path / "run" / "d2dgn-r0.cert.json"
    assert cert.is_file() and cert.with_suffix(".md").is_file()
    assert "metrics" in Certificate.load(cert).body["evidence"]  # the protocol's metrics attached
    assert main(["verify", str(cert), "--run", run, "--key-file", str(key), "--require-signature"]) == 0
    assert main(["verify", str(cert), "--run", run, "--require-signature"]) == 1  # no key
    with sqlite3.connect(journal_path(tmp_path / "run" / "store")) as conn:
        conn.execute("UPDATE requests SET kind = 'nodes' WHERE id = 0")
    assert main(["verify", str(cert), "--run", run, "--key-file", str(key)]) == 1
    with sqlite3.connect(journal_path(tmp_path / "run" / "store")) as conn:
        conn.execute("UPDATE requests SET kind = 'edges' WHERE id = 0")
    assert main(["verify", str(cert), "--run", run]) == 0
    assert main(["compact", "--run", run]) == 0
    assert Certificate.load(cert).redacted
    assert main(["verify", str(cert), "--run", run, "--key-file", str(key)]) == 0


def test_an_edge_brought_back_in_the_snapshot_file_is_caught(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("GRAPHUNLEARN_CERT_KEY", raising=False)
    run = str(tmp_path / "run")
    assert main(["split", "--dataset", "synthetic", "--run", run]) == 0
    assert main(["train", "--run", run, "--epochs", "5", "--quiet"]) == 0
    assert main(["delete", "--run", run, "--fraction", "0.02"]) == 0
    assert main(["unlearn", "--run", run, "--request", "0", "--option", "epochs=1", "--quiet", "--no-evidence"]) == 0
    cert = tmp_path / "run" / "d2dgn-r0.cert.json"
    snapshot = tmp_path / "run" / "store" / "store.pt"
    state = torch.load(snapshot, weights_only=True)
    deleted = (~state["edge_mask"]).nonzero()[0, 0]
    state["edge_mask"][deleted] = True
    state["edge_deleted_by"][deleted] = -1
    torch.save(state, snapshot)
    capsys.readouterr()
    assert main(["verify", str(cert), "--run", run]) == 1
    out = capsys.readouterr().out
    assert "FAILED  store" in out and f"edge {deleted.item()} is live" in out


def test_a_method_that_changes_nothing_is_seen_to_change_nothing(tmp_path):
    store, split, model, req, result = _setup(tmp_path, save=False)
    ev = gu.unlearn(model, store, req, "unlink", split=split).certificate.body["evidence"]
    assert ev["weight_change"] == 0.0 and ev["heldout_score_shift"] == 0.0
    assert ev["forget_vs_heldout_auroc"] == ev["original_forget_vs_heldout_auroc"]


def test_edge_cases_found_in_review(tmp_path):
    import pickle

    from torch_geometric.nn.models import GraphSAGE

    store, split, model, req, result = _setup(tmp_path, save=False)
    # a model with 0-d buffers (BatchNorm's num_batches_tracked) is hashed and certified
    sage = GraphSAGE(8, 16, num_layers=2, out_channels=8, norm="batch_norm")
    train.link_prediction(sage, store, split, epochs=2, eval_every=1, progress=False)
    other = store.delete_edges(store.live_edge_ids()[:2], layout="ids")
    assert verify(gu.unlearn(sage, store, other, "finetune", split=split, epochs=1).certificate, store=store).ok
    # the forget-set hash is salted: the same ids certified twice hash differently
    twice = [gu.unlearn(model, store, req, "unlink", split=split).certificate for _ in range(2)]
    assert twice[0].body["forget_set"]["sha256"] != twice[1].body["forget_set"]["sha256"]
    # a request pickles (its neighbourhood computed first, the link to the store left out)
    again = pickle.loads(pickle.dumps(req))
    assert [h.tolist() for h in again.hops] == [h.tolist() for h in req.hops]
    # an in-place edit of the graph's arrays changes the state hash
    before = store.state_hash()
    store.edge_index[0, 0] = store.edge_index[1, 0]
    assert store.state_hash() != before
    # edited bodies that would once crash verify are reported instead
    blob = json.loads(twice[0].sign(KEY).to_json())
    blob["body"]["requests"] = []
    blob["signature"]["value"] = "é" * 64
    report = verify(Certificate.from_dict(blob), store=store, key=KEY)
    assert {"certificate digest", "signature"} <= set(_failed(report))
