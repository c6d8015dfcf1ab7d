"""Calibrated forgetting (``docs/calibration.md``): the matched AUROC, the stopping and selection rule, what it
reads (forget set and held-out validation units; never test units, never a gold model), its options and the
decision it records."""

from __future__ import annotations

import dataclasses
import functools

import pytest
import torch

import graphunlearn as gu
from graphunlearn.metrics import roc_auc
from graphunlearn.unlearning import base
from graphunlearn.unlearning.base import Calibration, Context, matched_auroc

CALIBRATED = ("d2dgn", "finetune", "gradient_ascent", "gnndelete")
F_IN = 8


# ----------------------------------------------------------------------------------------------- fixtures
@functools.cache
def link_setup():
    """A small trained link model: 120 nodes, 10% validation and test edges (about 48 each)."""
    torch.manual_seed(0)
    data = gu.datasets.synthetic(num_nodes=120, num_classes=3, num_features=F_IN, avg_degree=8, seed=3)
    split = gu.datasets.link_split(data, val_ratio=0.1, test_ratio=0.1, seed=0)
    model = gu.models.GCN(F_IN, hidden_channels=16, out_channels=8)
    gu.train.fit(model, gu.GraphStore(split.train_data), split, task="link", epochs=30, seed=0, progress=False)
    return split, {k: v.clone() for k, v in model.state_dict().items()}, gu.card_of(model)


def link_model():
    split, state, card = link_setup()
    model = gu.models.GCN(F_IN, hidden_channels=16, out_channels=8)
    model.load_state_dict(state)
    gu.models.set_card(model, card)
    return model.eval()


def link_case(confident: bool = False):
    """The model, a store, a request deleting 12 training edges (``confident``: those the model scores
    highest, which it still ranks above held-out edges after deletion) and the split."""
    split = link_setup()[0]
    model = link_model()
    pairs = split.train_pos
    if confident:
        with torch.no_grad():
            z = gu.tasks.encode(model, gu.GraphStore(split.train_data).live())
            scores = (z[pairs[0]] * z[pairs[1]]).sum(1)
        pairs = pairs[:, scores.argsort(descending=True)]
    store = gu.GraphStore(split.train_data)
    req = store.delete_edges(pairs[:, :12], layout="edge_index")
    return model, store, req, split


def poisoned(split):
    """``split`` with its test pairs replaced by node ids far out of range: reading them fails."""
    bad = torch.full_like(split.test_pos, split.train_data.num_nodes + 10**6)
    return dataclasses.replace(split, test_pos=bad, test_neg=bad.clone())


def context(model, store, req, split, num_neighbors=None) -> Context:
    original = link_model()
    for p in original.parameters():
        p.requires_grad_(False)
    options = gu.methods()["gradient_ascent"].options_type()
    return Context(model, original, store, (req,), gu.tasks.get_task("link"), split, 0, False, options,
                   method="test", num_neighbors=num_neighbors)


# ----------------------------------------------------------------------------------------------- matched AUROC
def test_matched_auroc_without_covariates_is_the_plain_auroc():
    f, h = torch.tensor([0.1, 0.9, 0.4]), torch.tensor([0.2, 0.3, 0.5, 0.8])
    assert matched_auroc(f, h) == pytest.approx(roc_auc(f, h))


def test_matched_auroc_removes_a_shift_the_covariate_explains():
    # the score is the degree alone: deleted units of low degree look "forgotten" to the plain AUROC, yet
    # score exactly as held-out units of their own degree do
    cov_h = torch.arange(40).float() % 4
    cov_f = torch.tensor([0.0, 0.0, 0.0, 1.0, 1.0])
    assert roc_auc(cov_f, cov_h) < 0.3
    assert matched_auroc(cov_f, cov_h, cov_f, cov_h, bins=4) == pytest.approx(0.5)
    # a deleted unit scored above every held-out unit of its group counts as remembered
    assert matched_auroc(cov_f + 0.5, cov_h, cov_f, cov_h, bins=4) == pytest.approx(1.0)
    # above every held-out covariate: compared with the highest group
    assert matched_auroc(torch.tensor([3.0]), cov_h, torch.tensor([9.0]), cov_h, bins=4) == pytest.approx(0.5)


# ----------------------------------------------------------------------------------------------- the rule
def scripted(monkeypatch, ctx, vals, aurocs, reference=0.90):
    """Make the start model's validation scores and matched AUROCs follow ``vals`` and ``aurocs`` (one per
    check, epoch 0 first), the original's ``reference``; returns the first weight at each check."""
    seen = []

    def validate(self, model):
        return reference if model is self.original else vals[len(seen)]

    def auroc(self, model):
        if model is ctx.original:
            return 0.99
        seen.append(next(model.parameters()).detach().clone())
        return aurocs[len(seen) - 1]

    monkeypatch.setattr(Context, "_task_validate", validate)
    monkeypatch.setattr(Calibration, "validate", lambda self, model: validate(self.ctx, model))  # what it reads
    monkeypatch.setattr(Calibration, "auroc", auroc)
    return seen


def run_scripted(monkeypatch, vals, aurocs, epochs=10):
    model, store, req, split = link_case()
    model.requires_grad_(True)
    with torch.no_grad():  # a start other than the original: epoch 0 is validated on its own
        next(model.parameters()).add_(1e-3)
    ctx = context(model, store, req, split)
    ctx.start_state = {k: v.clone() for k, v in model.state_dict().items()}
    seen = scripted(monkeypatch, ctx, vals, aurocs)
    info = ctx.optimise(lambda _: sum(p.sum() for p in ctx.model.parameters()), epochs=epochs, lr=0.01,
                        calibrate=True, tolerance=0.01)
    return ctx, info, seen


def test_the_rule_stops_at_the_first_eligible_crossing_and_keeps_the_closest_checkpoint(monkeypatch):
    # epoch 2 crosses 0.5 but lost 0.05 validation (ineligible): the run goes on; epoch 4 crosses eligibly
    vals = [0.90, 0.90, 0.85, 0.895, 0.90, 0.90]
    aurocs = [0.70, 0.62, 0.45, 0.53, 0.48, 0.40]
    ctx, info, seen = run_scripted(monkeypatch, vals, aurocs)
    cal = info["calibration"]
    assert cal["stopped_at"] == 4 and info["epochs"] == 4 and len(info["losses"]) == 4
    assert [c["epoch"] for c in cal["checks"]] == [0, 1, 2, 3, 4]
    assert [c["eligible"] for c in cal["checks"]] == [True, True, False, True, True]
    assert cal["selected_epoch"] == 4 == info["selected_epoch"] and cal["auroc"] == 0.48
    assert cal["reference_val"] == 0.90 and not cal["fallback"]
    assert torch.equal(next(ctx.model.parameters()), seen[4])


def test_an_overshoot_keeps_the_checkpoint_before_the_crossing(monkeypatch):
    ctx, info, seen = run_scripted(monkeypatch, [0.9] * 6, [0.70, 0.60, 0.51, 0.30, 0.2, 0.1])
    cal = info["calibration"]
    assert cal["stopped_at"] == 3 and info["epochs"] == 3
    assert cal["selected_epoch"] == 2 and cal["val_score"] == 0.9
    assert torch.equal(next(ctx.model.parameters()), seen[2])
    assert not torch.equal(seen[2], seen[3])


def test_a_crossing_at_the_first_check_restarts_with_smaller_steps(monkeypatch):
    # the first run crosses at its first check; the second, with lr / 5 from the same start, crosses at 3
    ctx, info, seen = run_scripted(monkeypatch, [0.9] * 6, [0.70, 0.30, 0.60, 0.52, 0.49, 0.1])
    cal = info["calibration"]
    assert [(a["lr"], a["stopped_at"]) for a in cal["attempts"]] == [(0.01, 1)]
    assert cal["lr"] == pytest.approx(0.01 / base.BACKTRACK_FACTOR)
    assert cal["stopped_at"] == 3 == cal["selected_epoch"] and info["epochs"] == 3 and len(info["losses"]) == 3
    assert [c["epoch"] for c in cal["checks"]] == [0, 1, 2, 3]
    assert torch.equal(next(ctx.model.parameters()), seen[4])
    # the restart began from the start weights: its first step moved them less than the first run's did
    start = ctx.start_state[next(iter(ctx.start_state))]
    assert (seen[2] - start).abs().max() < (seen[1] - start).abs().max()


def test_restarts_are_bounded(monkeypatch):
    ctx, info, seen = run_scripted(monkeypatch, [0.9] * 5, [0.70, 0.30, 0.30, 0.45, 0.1])
    cal = info["calibration"]
    assert len(cal["attempts"]) == base.BACKTRACKS and cal["stopped_at"] == 1 == cal["selected_epoch"]
    assert cal["lr"] == pytest.approx(0.01 / base.BACKTRACK_FACTOR ** base.BACKTRACKS)
    assert torch.equal(next(ctx.model.parameters()), seen[3])


def test_nothing_to_forget_stops_before_any_step(monkeypatch):
    ctx, info, _ = run_scripted(monkeypatch, [0.9], [0.45])
    assert info["epochs"] == 0 and info["losses"] == [] and info["calibration"]["stopped_at"] == 0
    for k, v in ctx.model.state_dict().items():
        assert torch.equal(v, ctx.start_state[k])


def test_the_budget_running_out_keeps_the_closest_eligible_checkpoint(monkeypatch):
    ctx, info, seen = run_scripted(monkeypatch, [0.9, 0.9, 0.9, 0.7], [0.8, 0.7, 0.6, 0.5], epochs=3)
    cal = info["calibration"]
    assert cal["stopped_at"] is None and info["epochs"] == 3
    assert cal["selected_epoch"] == 2 and torch.equal(next(ctx.model.parameters()), seen[2])


def test_no_eligible_checkpoint_falls_back_to_the_best_validation(monkeypatch):
    ctx, info, seen = run_scripted(monkeypatch, [0.5, 0.6, 0.7, 0.65], [0.5, 0.5, 0.5, 0.5], epochs=3)
    cal = info["calibration"]
    assert cal["fallback"] and cal["selected_epoch"] == 2 and cal["stopped_at"] is None
    assert torch.equal(next(ctx.model.parameters()), seen[2])


# ----------------------------------------------------------------------------------------------- end to end
@pytest.mark.parametrize("method", CALIBRATED)
def test_calibrated_methods_record_the_decision_and_return_the_model_it_names(method):
    model, store, req, split = link_case(confident=True)
    res = gu.unlearn(model, store, req, method, split=split, seed=0, epochs=6, calibrate=True,
                     calibrate_tolerance=0.05)
    cal = res.info["calibration"]
    assert cal["forget_units"] == 12 and cal["heldout_units"] == split.val_pos.size(1)
    assert cal["matched_on"] == "endpoint degree" and cal["computation"] == "full graph"
    assert cal["val_metric"] == "AUROC"
    first = cal.get("start_epoch", 0)  # gnndelete calibrates its last layer's loop, after the earlier layers
    assert cal["checks"][0]["epoch"] == first
    if first == 0:
        assert cal["checks"][0]["auroc"] == pytest.approx(cal["original_auroc"])
    assert cal["selected_epoch"] == res.info["selected_epoch"]
    assert len(cal["checks"]) == res.info["epochs"] - first + 1
    # the model returned is the checkpoint the decision names: its matched AUROC is the one recorded
    ctx = context(res.model, store, req, split)
    assert Calibration(ctx, 0.05).auroc(res.model) == pytest.approx(cal["auroc"], abs=1e-6)
    stopped = cal["stopped_at"]
    if stopped is not None:
        crossing = cal["checks"][-1]
        assert crossing["epoch"] == stopped and crossing["auroc"] <= 0.5 and crossing["eligible"]
    assert all(c["auroc"] > 0.5 or not c["eligible"] for c in cal["checks"][:-1])


def test_gradient_ascent_stops_where_the_deleted_edges_meet_held_out_ones():
    model, store, req, split = link_case(confident=True)
    kw = dict(split=split, seed=0, epochs=20, lr=0.01, calibrate_tolerance=0.2)
    res = gu.unlearn(model, store, req, "gradient_ascent", calibrate=True, **kw)
    cal = res.info["calibration"]
    assert cal["original_auroc"] > 0.9 and cal["stopped_at"] is not None
    assert res.info["epochs"] == cal["stopped_at"] < 20
    plain = gu.unlearn(model, store, req, "gradient_ascent", calibrate=False, **kw)
    meter = Calibration(context(model, store, req, split), 0.2)
    assert meter.auroc(plain.model) < 0.2  # twenty epochs of ascent: far below held-out edges
    assert abs(meter.auroc(res.model) - 0.5) < abs(meter.auroc(plain.model) - 0.5)


@pytest.mark.parametrize("method", CALIBRATED)
def test_calibration_reads_neither_test_units_nor_a_gold_model(method, monkeypatch):
    model, store, req, split = link_case()
    split = poisoned(split)
    with pytest.raises(IndexError):  # the poison works: a test pair cannot be scored
        gu.evaluate.evaluate(model, store, split, req, task="link")

    def forbidden(*args, **kwargs):
        raise AssertionError("calibration asked for a retrained model or for the task's test metrics")

    registry = base._REGISTRY
    monkeypatch.setitem(registry, "retrain", dataclasses.replace(registry["retrain"], run=forbidden))
    monkeypatch.setattr(type(gu.tasks.get_task("link")), "evaluate", forbidden)
    res = gu.unlearn(model, store, req, method, split=split, seed=0, epochs=4, calibrate=True)
    cal = res.info["calibration"]
    assert "skipped" not in cal and cal["checks"]


@pytest.mark.parametrize("method", ("d2dgn", "gnndelete"))
def test_node_calibration_never_reads_test_nodes(method):
    torch.manual_seed(0)
    data = gu.datasets.synthetic(num_nodes=120, num_classes=3, num_features=F_IN, avg_degree=6, seed=2)
    split = gu.datasets.node_split(data, seed=0)
    model = gu.models.GCN(F_IN, hidden_channels=16, out_channels=3)
    gu.train.fit(model, gu.GraphStore(data), split, task="node", epochs=20, seed=0, progress=False)
    split = dataclasses.replace(split, test_idx=torch.full_like(split.test_idx, 10**6))
    store = gu.GraphStore(data)
    req = store.delete_nodes(split.train_idx[:4])
    res = gu.unlearn(model, store, req, method, split=split, seed=0, epochs=4, calibrate=True)
    cal = res.info["calibration"]
    assert "skipped" not in cal and cal["matched_on"] is None and len(cal["checks"]) >= 1
    assert cal["val_metric"] == "accuracy"
    assert cal["forget_units"] is None and cal["selected_epoch"] == res.info["selected_epoch"]
    # the model returned is the checkpoint the decision names (node units: the deleted nodes asked with
    # their records against live validation nodes)
    ctx = Context(res.model, model, store, (req,), gu.tasks.get_task("node"), split, 0, False, None, method="test")
    assert Calibration(ctx, 0.01).auroc(res.model) == pytest.approx(cal["auroc"], abs=1e-6)


def test_sampled_calibration_with_every_neighbour_matches_the_full_graph():
    model, store, req, split = link_case()
    full = Calibration(context(model, store, req, split), 0.01)
    sampled = Calibration(context(model, store, req, split, num_neighbors=[-1, -1]), 0.01)
    assert sampled.reason is None and full.reason is None
    assert sampled.auroc(model) == pytest.approx(full.auroc(model), abs=1e-6)
    res = gu.unlearn(model, store, req, "gradient_ascent", split=split, seed=0, epochs=3, calibrate=True,
                     num_neighbors=[5, 5])
    assert res.info["calibration"]["computation"] == "sampled [5, 5]"


def test_calibration_off_records_nothing_and_a_task_without_validation_heldout_is_skipped():
    model, store, req, split = link_case()
    res = gu.unlearn(model, store, req, "gradient_ascent", split=split, seed=0, epochs=2, calibrate=False)
    assert "calibration" not in res.info
    ctx = context(model, store, req, split)
    ctx.split = None
    assert "no split" in Calibration(ctx, 0.01).reason
    link, node, rec = (gu.tasks.get_task(t) for t in ("link", "node", "rec"))
    assert link.heldout_is_validation_for(split) and node.heldout_is_validation_for(None)
    # recommendation: validation interactions where the split has them, else its test interactions (never read)
    plain, with_val = rec_split(0.0), rec_split()
    assert not rec.heldout_is_validation_for(plain) and torch.equal(rec.heldout_units(plain), plain.test_pos)
    assert rec.heldout_is_validation_for(with_val) and torch.equal(rec.heldout_units(with_val), with_val.val_pos)


# ----------------------------------------------------------------------------------------------- recommendation
REC_USERS, REC_ITEMS = 60, 40


def rec_split(val_ratio: float = 0.2):
    data = gu.datasets.load("synthetic-rec", num_users=REC_USERS, num_items=REC_ITEMS, num_groups=3,
                            interactions_per_user=12, seed=0)
    return gu.datasets.user_item_split(data, seed=0, val_ratio=val_ratio)


@functools.cache
def rec_setup():
    """A LightGCN trained with validation interactions (20% of each user's training ones)."""
    split = rec_split()
    torch.manual_seed(0)
    model = gu.models.LightGCN(REC_USERS, REC_ITEMS, embedding_dim=16, num_layers=2)
    fit = gu.train.fit(model, gu.GraphStore(split.train_data), split, task="rec", epochs=10, seed=0, progress=False)
    return split, {k: v.clone() for k, v in model.state_dict().items()}, gu.card_of(model), fit


def rec_case(split=None):
    """The model, a store, a request deleting the first 20 training interactions, and ``split``."""
    base_split, state, card, _ = rec_setup()
    split = base_split if split is None else split
    model = gu.models.LightGCN(REC_USERS, REC_ITEMS, embedding_dim=16, num_layers=2)
    model.load_state_dict(state)
    gu.models.set_card(model, card)
    store = gu.GraphStore(base_split.train_data)
    req = store.delete_edges(base_split.train_pos[:, :20], layout="edge_index")
    return model.eval(), store, req, split


def test_rec_training_selects_its_epoch_on_validation_interactions_only_when_it_has_them():
    _, _, _, fit = rec_setup()
    vals = [h["val"] for h in fit.history]
    assert len(vals) == 10 and fit.best_val == max(vals) and vals[fit.best_epoch - 1] == fit.best_val
    plain = rec_split(0.0)
    model = gu.models.LightGCN(REC_USERS, REC_ITEMS, embedding_dim=16, num_layers=2)
    out = gu.train.fit(model, gu.GraphStore(plain.train_data), plain, task="rec", epochs=3, seed=0, progress=False)
    assert out.best_val is None and out.best_epoch == 3 and all("val" not in h for h in out.history)


def test_rec_validation_is_recall_at_20_of_the_validation_interactions_on_the_live_graph():
    # users 0, 1; items 2, 3, 4 (scores 3, 2, 1 for both users); training (0, 2), (0, 4), (1, 3);
    # validation (0, 3), (1, 4). Cut-off 1: user 0 ranks item 3 first (2 and 4 are its own): recall 1;
    # user 1 ranks item 2 first: recall 0
    train = torch.tensor([[0, 0, 1], [2, 4, 3]])
    data = torch_geometric_data(train, 5)
    split = gu.datasets.RecSplit(data, train, torch.empty(2, 0, dtype=torch.long), 2, 3, official=False,
                                 val_pos=torch.tensor([[0, 1], [3, 4]]))
    model = gu.models.MF(2, 3, embedding_dim=1)
    with torch.no_grad():
        model.users.weight.fill_(1.0)
        model.items.weight.copy_(torch.tensor([[3.0], [2.0], [1.0]]))
    task = type(gu.tasks.get_task("rec"))()  # an unregistered copy whose cut-off can be set
    task.val_k = 1
    store = gu.GraphStore(data)
    assert task.validate(model, store, split) == pytest.approx(0.5)
    store.delete_edges(torch.tensor([[0], [4]]), layout="edge_index")  # item 4 leaves the catalogue
    assert task.validate(model, store, split) == pytest.approx(1.0)  # only user 0's validation item counts
    assert task.validate(model, store, dataclasses.replace(split, val_pos=torch.empty(2, 0, dtype=torch.long))) \
        is None


def torch_geometric_data(pairs, num_nodes):
    from torch_geometric.data import Data

    return Data(edge_index=torch.cat([pairs, pairs.flip(0)], 1), num_nodes=num_nodes)


def test_rec_calibration_reads_user_item_scores_and_live_degrees():
    model, store, req, split = rec_case()
    ctx = Context(model, model, store, (req,), gu.tasks.get_task("rec"), split, 0, False,
                  gu.methods()["reverse_bpr"].options_type(), method="test")
    cal = Calibration(ctx, 0.01)
    assert cal.reason is None and torch.equal(cal.heldout, split.val_pos)
    assert torch.equal(cal.forget, split.train_pos[:, :20])
    live = store.edge_index[:, store.edge_mask]
    degree = torch.bincount(live.reshape(-1), minlength=REC_USERS + REC_ITEMS).float()
    for pairs, cov in ((cal.forget, cal.cov[0]), (cal.heldout, cal.cov[1])):
        assert torch.allclose(cov, torch.log1p(degree[pairs[0]]) + torch.log1p(degree[pairs[1]]))
    f, h = cal.scores(model)
    with torch.no_grad():
        z = gu.tasks.get_task("rec").encode(model, store)
    assert torch.allclose(f, (z[cal.forget[0]] * z[cal.forget[1]]).sum(1), atol=1e-6)
    assert torch.allclose(h, (z[split.val_pos[0]] * z[split.val_pos[1]]).sum(1), atol=1e-6)


def test_sampled_rec_calibration_reads_the_validation_subset_sampled_validation_reads(monkeypatch):
    """On sampled computation graphs H is the fixed random subset of validation positions the sampled AUC reads
    (``val_subset``), less interactions no longer counted, not the first ``sampled_val_units`` live ones: the
    split's validation interactions are sorted by user, so the first ones are the lowest users' only."""
    model, store, req, split = rec_case()
    rec = gu.tasks.get_task("rec")
    monkeypatch.setattr(type(rec), "sampled_val_units", 6)
    ctx = Context(model, model, store, (req,), rec, split, 0, False, gu.methods()["reverse_bpr"].options_type(),
                  method="test", num_neighbors=[-1, -1])
    held = Calibration(ctx, 0.01).heldout
    subset = split.val_pos[:, gu.tasks.base.val_subset(split.val_pos.size(1), 6, "cpu")]
    assert bool((split.val_pos[0].diff() >= 0).all())  # sorted by user
    assert torch.equal(held, subset) and not torch.equal(held, split.val_pos[:, :6])
    # a deleted user drops their interactions from the subset; the rest stay where they were
    gone = int(subset[0, 2])
    store.delete_nodes([gone])
    ctx = Context(model, model, store, (req,), rec, split, 0, False, gu.methods()["reverse_bpr"].options_type(),
                  method="test", num_neighbors=[-1, -1])
    assert torch.equal(Calibration(ctx, 0.01).heldout, subset[:, subset[0] != gone])


def poisoned_rec(split):
    """``split`` with its test interactions pointing far out of range: reading them fails."""
    return dataclasses.replace(split, test_pos=torch.full_like(split.test_pos, 10**6))


def test_reverse_bpr_calibrated_never_reads_test_interactions_nor_a_gold_model(monkeypatch):
    model, store, req, split = rec_case()
    split = poisoned_rec(split)
    with pytest.raises(IndexError):  # the poison works: a test interaction cannot be read
        gu.evaluate.evaluate(model, store, split, req, task="rec")

    def forbidden(*args, **kwargs):
        raise AssertionError("calibration asked for a retrained model or for the task's test metrics")

    registry = base._REGISTRY
    monkeypatch.setitem(registry, "retrain", dataclasses.replace(registry["retrain"], run=forbidden))
    monkeypatch.setattr(type(gu.tasks.get_task("rec")), "evaluate", forbidden)
    # certified (the default): the certificate's evidence reads the held-out units too, now validation ones
    res = gu.unlearn(model, store, req, "reverse_bpr", split=split, seed=0, epochs=6, calibrate=True)
    cal = res.info["calibration"]
    assert "skipped" not in cal and cal["checks"] and cal["heldout_units"] == split.val_pos.size(1)
    assert res.certificate is not None


def test_reverse_bpr_records_the_decision_and_returns_the_model_it_names():
    model, store, req, split = rec_case()
    res = gu.unlearn(model, store, req, "reverse_bpr", split=split, seed=0, epochs=8, calibrate=True,
                     calibrate_tolerance=0.05, certify=False)
    cal = res.info["calibration"]
    assert cal["forget_units"] == 20 and cal["heldout_units"] == split.val_pos.size(1)
    assert cal["matched_on"] == "endpoint degree" and cal["computation"] == "full graph"
    assert cal["original_auroc"] > 0.5 and cal["checks"][0]["epoch"] == 0 and cal["val_metric"] == "Recall@20"
    assert cal["selected_epoch"] == res.info["selected_epoch"] and len(cal["checks"]) == res.info["epochs"] + 1
    ctx = Context(res.model, model, store, (req,), gu.tasks.get_task("rec"), split, 0, False,
                  gu.methods()["reverse_bpr"].options_type(), method="test")
    assert Calibration(ctx, 0.05).auroc(res.model) == pytest.approx(cal["auroc"], abs=1e-6)
    val = gu.tasks.get_task("rec").validate(res.model, store, split)
    assert val == pytest.approx(cal["val_score"]) and val >= cal["reference_val"] - 0.05
    if cal["stopped_at"] is not None:
        assert cal["checks"][-1]["auroc"] <= 0.5 and cal["checks"][-1]["eligible"]
    assert all(c["auroc"] > 0.5 or not c["eligible"] for c in cal["checks"][:-1])


def test_reverse_bpr_calibration_is_skipped_without_validation_interactions():
    # (On sampled graphs it calibrates on the sampled validation score: tests/sampling/test_rec_sampled.py.)
    model, store, req, split = rec_case(rec_split(0.0))
    res = gu.unlearn(model, store, req, "reverse_bpr", split=split, seed=0, epochs=2, calibrate=True,
                     certify=False)
    assert "no validation interactions" in res.info["calibration"]["skipped"]
    assert res.info["epochs"] == 2  # the fixed epochs ran, the last kept
    assert not torch.equal(res.model.embedding.weight, model.embedding.weight)


def test_rec_splits_keep_their_validation_interactions_on_the_way():
    split = rec_split()
    task = gu.tasks.get_task("rec")
    store = gu.GraphStore(split.train_data)
    again = task.split_from_dict(task.split_to_dict(split), store)
    assert torch.equal(again.val_pos, split.val_pos) and torch.equal(again.test_pos, split.test_pos)
    assert "val_pos" not in task.split_to_dict(rec_split(0.0))  # a split without them saves as before
    assert task.split_from_dict(task.split_to_dict(rec_split(0.0)), store).val_pos.shape == (2, 0)
    assert torch.equal(task.live_split(split, store).val_pos, split.val_pos)
    assert torch.equal(task.to_device(split, "cpu").val_pos, split.val_pos)
    assert f"{split.val_pos.size(1)} validation" in task.describe_split(split)
    made, _ = task.make_split(gu.datasets.load("synthetic-rec", num_users=REC_USERS, num_items=REC_ITEMS,
                                               num_groups=3, interactions_per_user=12, seed=0), 0, val_ratio=0.2)
    assert torch.equal(made.val_pos, split.val_pos)


# ----------------------------------------------------------------------------------------------- options
@pytest.mark.parametrize("method", CALIBRATED + ("reverse_bpr",))
def test_calibration_options_are_validated(method):
    m = gu.methods()[method]
    assert {"calibrate", "calibrate_tolerance", "calibrate_every"} <= set(m.options)
    assert m.options["calibrate"] is base.CALIBRATE and m.options["calibrate_tolerance"] == base.CALIBRATE_TOLERANCE
    with pytest.raises(TypeError, match="calibrate"):
        m.check_options({"calibrate": "yes"})
    for name, value in (("calibrate_tolerance", -0.1), ("calibrate_tolerance", 1.5), ("calibrate_every", 0)):
        with pytest.raises(ValueError, match=name):
            m.check_options({name: value})
    with pytest.raises(TypeError, match="calibrate_every"):
        m.check_options({"calibrate_every": 1.5})


# ----------------------------------------------------------------------------------------------- gnndelete
def scripted_operators(monkeypatch, aurocs, val=0.90):
    """Calibration of gnndelete scripted: every validation reads ``val``, the wrapped model's matched AUROCs
    follow ``aurocs`` (epoch 0 first); returns each check's operator weights."""
    seen = []

    def auroc(self, model):
        if model is self.ctx.original:
            return 0.99
        seen.append([op.weight.detach().clone() for op in model.operators])
        return aurocs[len(seen) - 1]

    monkeypatch.setattr(Context, "_task_validate", lambda self, model: val)
    monkeypatch.setattr(Calibration, "validate", lambda self, model: val)
    monkeypatch.setattr(Calibration, "auroc", auroc)
    return seen


def test_gnndelete_calibrates_its_last_layer_after_training_the_earlier_ones_as_without_it(monkeypatch):
    # 3 epochs per layer: layer 1 trains epochs 1-3 unchecked, the checks read the whole wrapped model at
    # epoch 3 (layer 2's start) and after each of layer 2's epochs; the crossing comes at 5, and 4 is closer
    # to 0.5 (the overshoot rule keeps it)
    model, store, req, split = link_case()
    plain = gu.unlearn(model, store, req, "gnndelete", split=split, seed=0, epochs=3, certify=False)
    seen = scripted_operators(monkeypatch, [0.8, 0.52, 0.3, 0.2])
    res = gu.unlearn(model, store, req, "gnndelete", split=split, seed=0, epochs=3, calibrate=True,
                     certify=False)
    cal = res.info["calibration"]
    assert cal["start_epoch"] == 3 and [c["epoch"] for c in cal["checks"]] == [3, 4, 5]
    assert cal["stopped_at"] == 5 == res.info["epochs"] and len(res.info["losses"]) == 5
    assert cal["selected_epoch"] == 4 == res.info["selected_epoch"] and res.info["epochs_per_layer"] == 3
    # layer 1 trained exactly as without calibration; layer 2 starts at the identity and trains with layer 1
    # frozen (no optimiser momentum carried over)
    assert torch.equal(seen[0][0], plain.model.operators[0].weight)
    assert torch.equal(seen[0][1], torch.eye(seen[0][1].size(0)))
    for t in (1, 2):
        assert torch.equal(seen[t][0], seen[0][0]) and not torch.equal(seen[t][1], seen[t - 1][1])
    for op, kept in zip(res.model.operators, seen[1]):  # the model returned is the checkpoint kept
        assert torch.equal(op.weight, kept)


def test_gnndelete_whose_earlier_layers_already_forgot_leaves_the_last_operator_untrained(monkeypatch):
    seen = scripted_operators(monkeypatch, [0.45])
    model, store, req, split = link_case()
    res = gu.unlearn(model, store, req, "gnndelete", split=split, seed=0, epochs=3, calibrate=True,
                     certify=False)
    cal = res.info["calibration"]
    assert cal["stopped_at"] == 3 == cal["selected_epoch"] == res.info["epochs"] and len(res.info["losses"]) == 3
    ops = res.model.operators
    assert torch.equal(ops[0].weight, seen[0][0]) and not torch.equal(ops[0].weight, torch.eye(ops[0].weight.size(0)))
    assert torch.equal(ops[1].weight, torch.eye(ops[1].weight.size(0)))


def test_gnndelete_calibration_without_a_split_is_skipped_and_trains_as_without_it():
    model, store, req, _ = link_case()
    kw = dict(task="link", seed=0, epochs=2, certify=False)
    res = gu.unlearn(model, store, req, "gnndelete", calibrate=True, **kw)
    assert "no split" in res.info["calibration"]["skipped"]
    plain = gu.unlearn(model, store, req, "gnndelete", **kw)
    assert "calibration" not in plain.info and res.info["epochs"] == plain.info["epochs"] == 4
    for a, b in zip(res.model.operators.parameters(), plain.model.operators.parameters()):
        assert torch.equal(a, b)
