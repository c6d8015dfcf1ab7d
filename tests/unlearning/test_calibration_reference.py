"""Calibration's eligibility reference (``calibrate_reference``): a given validation score replaces the
original's, and a calibrated stream anchors it at its last retrained (or first) model, so that the tolerance
bounds the stream's cumulative loss of utility (``docs/calibration.md``)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

import graphunlearn as gu
from graphunlearn.unlearning.base import Calibration, Context

from .test_calibration import context, link_case, link_model, link_setup, scripted


def run_with_reference(monkeypatch, vals, aurocs, reference):
    model, store, req, split = link_case()
    model.requires_grad_(True)
    ctx = context(model, store, req, split)
    ctx.start_state = {k: v.clone() for k, v in model.state_dict().items()}
    scripted(monkeypatch, ctx, vals, aurocs, reference=0.90)  # the original validates at 0.90
    return ctx.optimise(lambda _: sum(p.sum() for p in ctx.model.parameters()), epochs=len(vals) - 1,
                        lr=0.01, calibrate=True, tolerance=0.01, reference=reference)["calibration"]


def test_a_given_reference_replaces_the_originals(monkeypatch):
    vals, aurocs = [0.93, 0.935, 0.94, 0.945], [0.7, 0.6, 0.45, 0.4]
    # against the original (0.90) every checkpoint is eligible and the rule stops at the crossing
    plain = run_with_reference(monkeypatch, vals, aurocs, None)
    assert plain["reference"] == "original" and plain["reference_val"] == pytest.approx(0.90)
    assert plain["stopped_at"] == 2 and not plain["fallback"]
    monkeypatch.undo()
    # against a stream's anchor of 0.96 none is (0.945 < 0.96 - 0.01): the best validation one is kept
    anchored = run_with_reference(monkeypatch, vals, aurocs, 0.96)
    assert anchored["reference"] == "given" and anchored["reference_val"] == pytest.approx(0.96)
    assert anchored["fallback"] and anchored["stopped_at"] is None and anchored["selected_epoch"] == 3
    assert not any(c["eligible"] for c in anchored["checks"])


@pytest.mark.parametrize("method", ("d2dgn", "finetune", "gradient_ascent", "gnndelete", "reverse_bpr"))
def test_the_option_is_declared_and_checked(method):
    m = gu.methods()[method]
    assert m.options["calibrate_reference"] is None
    assert m.check_options({"calibrate_reference": 0.9}).calibrate_reference == 0.9
    with pytest.raises(TypeError, match="calibrate_reference"):
        m.check_options({"calibrate_reference": "high"})


def test_a_calibrated_stream_anchors_every_step_at_its_first_model():
    split = link_setup()[0]
    model = link_model()
    store = gu.GraphStore(split.train_data)
    pairs = split.train_pos[:, :6]
    requests = [gu.certify.StreamRequest("edges", edges=pairs[:, i:i + 2].t().tolist()) for i in range(0, 6, 2)]
    baseline = gu.tasks.get_task("link").validate(model, gu.GraphStore(split.train_data), split)
    seen = []
    real = Calibration.start

    def start(self, m):
        seen.append(self.given_reference)
        return real(self, m)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Calibration, "start", start)
        out = gu.stream(model, store, requests, split=split, method="gradient_ascent", calibrate=True,
                        epochs=2)
    assert len(seen) == 3 and all(r == pytest.approx(baseline) for r in seen)
    for step in out.steps:
        assert step.certificate.body["method"]["options"]["calibrate_reference"] == pytest.approx(baseline)
    # a reference the caller gives is kept
    seen.clear()
    store = gu.GraphStore(split.train_data)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Calibration, "start", start)
        gu.stream(model, store, requests[:1], split=split, method="gradient_ascent", calibrate=True, epochs=2,
                  calibrate_reference=0.5)
    assert seen == [0.5]
    # without calibration nothing is anchored
    store = gu.GraphStore(split.train_data)
    out = gu.stream(model, store, requests[:1], split=split, method="gradient_ascent", epochs=2)
    assert out.steps[0].certificate.body["method"]["options"]["calibrate_reference"] is None


def test_a_sampled_rec_stream_anchors_at_the_sampled_score():
    """On sampled computation graphs recommendation calibrates on a sampled AUC, not Recall@20: a stream of a
    model trained on sampled graphs (its steps sample as its card says) anchors at its first model's sampled AUC
    (on the store before the requests), not at its validation score."""
    data = gu.datasets.load("synthetic-rec", num_users=120, num_items=80, interactions_per_user=10, seed=0)
    split = gu.datasets.user_item_split(data, seed=0, val_ratio=0.2)
    torch.manual_seed(0)
    model = gu.models.LightGCN(split.num_users, split.num_items, embedding_dim=8, num_layers=2)
    gu.train.fit(model, gu.GraphStore(split.train_data), split, epochs=10, seed=0, progress=False,
                 num_neighbors=[4, 4])
    rec = gu.tasks.get_task("rec")
    before = gu.GraphStore(split.train_data)
    recall, auc = rec.validate(model, before, split), rec.sampled_validate(model, before, split, [4, 4])
    assert auc != pytest.approx(recall)  # the two scales differ: the test can tell them apart
    requests = [gu.certify.StreamRequest("edges", edges=split.train_pos[:, i:i + 3].t().tolist())
                for i in (0, 3)]
    seen = []
    real = Calibration.start

    def start(self, m):
        seen.append(self.given_reference)
        return real(self, m)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Calibration, "start", start)
        store = gu.GraphStore(split.train_data)
        out = gu.stream(model, store, requests, split=split, method="reverse_bpr", calibrate=True, epochs=2)
        assert seen == [pytest.approx(auc), pytest.approx(auc)]
        assert out.state["reference"] == pytest.approx(auc) and out.state["baseline"] == pytest.approx(recall)
        assert out.state["reference_on"] == [4, 4]
        more = [gu.certify.StreamRequest("edges", edges=split.train_pos[:, 6:9].t().tolist())]
        again = gu.stream(out.model, store, more, split=split, method="reverse_bpr", calibrate=True, epochs=2,
                          resume=out)
        assert seen[2:] == [pytest.approx(auc)]  # the first model's sampled AUC, kept across the resume
        # a state with no reference for these sampled graphs (written before it was kept, or by a stream that did
        # not calibrate): refused before anything is registered, since the anchoring model is gone
        last = [gu.certify.StreamRequest("edges", edges=split.train_pos[:, 9:12].t().tolist())]
        old = dataclasses.replace(again, state={k: v for k, v in again.state.items() if k != "reference_on"})
        plain = gu.stream(again.model, store, last, split=split, method="reverse_bpr", epochs=2, resume=again)
        assert plain.state["reference_on"] is None and plain.state["reference"] is None
        live = store.num_live_edges
        final = [gu.certify.StreamRequest("edges", edges=split.train_pos[:, 12:15].t().tolist())]
        for resume, problem in [(old, "no record"), (plain, "nothing")]:
            with pytest.raises(ValueError, match=r"calibrate on sampled computation graphs \(fanouts \[4, 4\]\), but "
                                                 "the resumed stream measured its calibration reference on " + problem):
                gu.stream(resume.model, store, final, split=split, method="reverse_bpr", calibrate=True, epochs=2,
                          resume=resume)
        assert store.num_live_edges == live



def test_a_sampled_stream_that_found_nothing_to_calibrate_on_resumes():
    """A split without validation interactions: a calibrating stream on sampled graphs records its reference as
    measured there and found missing (calibration skipped at every step); resumed with the same options it goes
    on as it ran, instead of being refused as if it had measured elsewhere."""
    data = gu.datasets.load("synthetic-rec", num_users=60, num_items=40, interactions_per_user=8, seed=0)
    split = gu.datasets.user_item_split(data, seed=0)
    torch.manual_seed(0)
    model = gu.models.LightGCN(split.num_users, split.num_items, embedding_dim=8, num_layers=2)
    gu.train.fit(model, gu.GraphStore(split.train_data), split, epochs=3, seed=0, progress=False,
                 num_neighbors=[4, 4])
    store = gu.GraphStore(split.train_data)
    first = [gu.certify.StreamRequest("edges", edges=split.train_pos[:, 0:3].t().tolist())]
    out = gu.stream(model, store, first, split=split, method="reverse_bpr", calibrate=True, epochs=2)
    assert out.state["reference_on"] == [4, 4] and out.state["reference"] is None
    more = [gu.certify.StreamRequest("edges", edges=split.train_pos[:, 3:6].t().tolist())]
    again = gu.stream(out.model, store, more, split=split, method="reverse_bpr", calibrate=True, epochs=2,
                      resume=out)
    assert again.state["reference_on"] == [4, 4] and again.state["reference"] is None
    assert store.num_live_edges == store.num_edges - 6 and len(again.steps) == 1

def test_rec_calibration_compares_with_the_validation_interactions_validate_counts():
    from .test_calibration import rec_case

    model, store, req, split = rec_case()
    item = int(split.val_pos[1, 0])
    gone = store.delete_nodes([item])  # an item leaves: its validation interactions are no longer units
    ctx = Context(model, model, store, (req, gone), gu.tasks.get_task("rec"),
                  split, 0, False, gu.methods()["reverse_bpr"].options_type(), method="test")
    held = Calibration(ctx, 0.01).heldout
    assert not bool((held[1] == item).any()) and int((split.val_pos[1] == item).sum()) > 0
    assert torch.equal(held, gu.tasks.get_task("rec")._live_val(split, store))
    assert held.size(1) < split.val_pos.size(1)
