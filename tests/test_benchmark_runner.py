"""The unlearning benchmark engine: smoke configurations of all three tasks, outputs, the cache, targets."""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from graphunlearn import bench
from graphunlearn.tasks import get_task

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_smoke_run_and_resume(tmp_path):
    env = {**os.environ, "GRAPHUNLEARN_DATA": str(tmp_path / "no-data")}
    cmd = [sys.executable, str(REPO / "benchmarks" / "run_unlearning.py"), "--config", "smoke", "--out",
           str(tmp_path / "out"), "--no-progress"]
    first = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert first.returncode == 0, first.stderr[-3000:]
    rows = list(csv.DictReader((tmp_path / "out" / "results.csv").open()))
    # gold2: gold retrained with seed + 1, the noise floor
    assert {r["method"] for r in rows} == {"retrain", "gold2", "unlink", "d2dgn", "gnndelete"}
    assert all(float(r["peak_mb"]) >= 0 and float(r["seconds"]) > 0 for r in rows)
    table = (tmp_path / "out" / "results.md").read_text()
    assert "gold (retrain)" in table and "torch" in table and "+-" in table and "speedup" in table
    assert "Noise floor" in table and "gold, seed + 1 (noise floor)" in table
    assert (tmp_path / "out" / "plots.png").stat().st_size > 1000
    assert json.loads((tmp_path / "out" / "results.json").read_text())["config"] == "smoke"
    second = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert second.returncode == 0 and "cached" in second.stdout  # a finished cell is not recomputed
    assert list(csv.DictReader((tmp_path / "out" / "results.csv").open())) == rows


@pytest.mark.parametrize("name, metrics", [
    ("smoke-node", ["test_acc", "test_macro_f1", "mia_auroc", "gap_hop1_kl", "weight_l2", "flip_rate"]),
    ("smoke-rec", ["recall@20", "ndcg@20", "forget_recall@20", "gap_deleted_kl", "weight_l2", "flip_rate"]),
])
def test_node_and_rec_smoke_configs(tmp_path, name, metrics):
    config = bench.load_config(name)
    rows = bench.run(config, tmp_path, progress=False, log=lambda _: None)
    assert {r["method"] for r in rows} == set(config["methods"]) | {"gold2"}
    for r in rows:
        assert all(m in r for m in metrics), sorted(r)
    gold = next(r for r in rows if r["method"] == "retrain")
    assert gold["gap_test_kl"] == pytest.approx(0.0, abs=1e-9)  # gold against itself
    unlink = next(r for r in rows if r["method"] == "unlink")
    assert unlink["weight_l2"] == 0.0 and unlink["flip_rate"] == 0.0  # it changes nothing
    assert all(0.0 <= r["flip_rate"] <= 1.0 and r["flip_units"] > 0 for r in rows)
    md = bench.write_outputs(rows, tmp_path, config, name=name).read_text()
    assert "gold (retrain)" in md and metrics[0] in md and "| flip_rate |" in md
    assert "`floor.png`" in md and (tmp_path / "floor.png").stat().st_size > 1000  # the noise floor, drawn
    axes = list(bench.engine.get_task(name.split("-")[1]).plot_axes)
    targeted = [{"metric": "acc_deleted"}, {"metric": "seconds"}, {"metric": axes[1]}]
    assert bench.engine.floor_metrics(rows, targeted) == ["acc_deleted", axes[1], axes[0]]  # targets first
    assert not bench.engine.plot_floor(bench.engine.noise_floor(rows), ["no-such-metric"], tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()
    plain = [r for r in rows if r["method"] != "gold2"]  # no second gold: no floor, no picture
    (tmp_path / "floor.png").unlink()
    assert "floor.png" not in bench.write_outputs(plain, tmp_path, config, name=name).read_text()
    assert not (tmp_path / "floor.png").exists()


def test_cache_key_follows_the_whole_configuration(monkeypatch):
    config = bench.load_config("smoke")
    key = bench.cell_key(bench.plan(config)[0])
    assert bench.cell_key(bench.plan(dict(config))[0]) == key
    for change in ({"epochs": 31}, {"methods": ["retrain"]}, {"options": {"d2dgn": {"alpha": 0.5}}}, {"seeds": [1]},
                   {"train": {"lr": 0.1}}):
        assert bench.cell_key(bench.plan({**config, **change})[0]) != key, change
    # a changed method default or evaluation revision changes the key too, with the config untouched
    from graphunlearn.unlearning import base, option

    spec = base._REGISTRY["d2dgn"]

    @dataclasses.dataclass
    class Bumped(spec.options_type):  # d2dgn's options with one more epoch by default
        epochs: int = option(spec.options["epochs"] + 1, int, low=1)

    monkeypatch.setitem(base._REGISTRY, "d2dgn", dataclasses.replace(spec, options_type=Bumped))
    assert bench.cell_key(bench.plan(config)[0]) != key
    monkeypatch.undo()
    monkeypatch.setattr(bench.engine, "EVAL_REVISION", "test")  # the engine reads its own
    assert bench.cell_key(bench.plan(config)[0]) != key
    with pytest.raises(ValueError, match="unknown methods"):
        bench.plan({**config, "methods": ["retrain", "nope"]})



def test_epochs_per_dataset(tmp_path):
    """``epochs`` may give each dataset its own budget ("*" for the rest); a cell's key holds the integer, so a
    dataset whose budget equals the old integer keeps its cells, and ``attack_epochs`` follows the dataset's
    budget where it gives none. Bad budgets are refused with the dataset named, by load_config and by plan."""
    config = {**bench.load_config("smoke"), "datasets": ["cora", "synthetic"], "epochs": 7}
    plain = {c["dataset"]: c for c in bench.plan(config)}
    mixed = {**config, "epochs": {"*": 7, "synthetic": 11}}
    cells = {c["dataset"]: c for c in bench.plan(mixed)}
    assert bench.cell_key(cells["cora"]) == bench.cell_key(plain["cora"])
    assert cells["synthetic"]["epochs"] == 11 and cells["synthetic"]["attack_epochs"] == 11
    assert cells["cora"]["attack_epochs"] == 7
    cells = {c["dataset"]: c for c in bench.plan({**mixed, "attack_epochs": {"cora": 3, "synthetic": 4}})}
    assert (cells["cora"]["attack_epochs"], cells["synthetic"]["attack_epochs"]) == (3, 4)
    assert bench.epochs_for(mixed, "cora") == 7 and bench.epochs_for(mixed, "synthetic") == 11
    bad = tmp_path / "bad.json"
    for epochs, problem in [({"cora": 7}, r"no budget for datasets \['synthetic'\]"),
                            ({"*": 7, "pubmed": 3}, r"names datasets the configuration does not run: \['pubmed'\]"),
                            ({"*": 0}, "every budget must be an integer >= 1"),
                            ({"*": True}, "every budget must be an integer >= 1"), ([7], "integer >= 1 or an object")]:
        bad.write_text(json.dumps({**config, "epochs": epochs}))
        with pytest.raises(ValueError, match=problem):
            bench.load_config(str(bad))
    partial = {**mixed, "attack_epochs": {"cora": 2}}  # a dataset it leaves out takes its own epochs
    bad.write_text(json.dumps(partial))
    cells = {c["dataset"]: c for c in bench.plan(bench.load_config(str(bad)))}
    assert (cells["cora"]["attack_epochs"], cells["synthetic"]["attack_epochs"]) == (2, 11)
    with pytest.raises(ValueError, match=r"benchmark config: epochs gives no budget for datasets \['synthetic'\]"):
        bench.plan({**config, "epochs": {"cora": 7}})  # a configuration built in code is checked by plan too
    with pytest.raises(ValueError, match="'epochs' or 'attack_epochs'"):
        bench.epochs_for(config, "cora", "atack_epochs")


def test_a_backbones_own_defaults_key_its_cells_alone(monkeypatch):
    """GIN's constructor defaults and the task's recipe entry for it are in its cells' keys (a changed GIN
    default recomputes GIN cells), and a backbone without any keeps the key it had."""
    config = {**bench.load_config("smoke"), "backbones": ["gcn", "gin"]}
    def first(cells):
        return [next(c for c in cells if c["backbone"] == b) for b in ("gcn", "gin")]

    gcn, gin = first(bench.plan(config))
    assert "model_options" not in gcn and "backbone_recipe" not in gcn
    assert gin["model_options"] == {"norm": "layer_norm"} and gin["backbone_recipe"] == {"lr": 0.001, "patience": 100}
    keys = (bench.cell_key(gcn), bench.cell_key(gin))
    monkeypatch.setattr(type(get_task("link")), "backbone_recipes", {"gin": {"lr": 0.002}})
    gcn2, gin2 = first(bench.plan(config))
    assert bench.cell_key(gcn2) == keys[0] and bench.cell_key(gin2) != keys[1]


def test_a_changed_base_recipe_keys_its_tasks_cells(monkeypatch):
    """A task's base recipe is in its cells' keys wherever it differs from the recipe recorded at the
    evaluation revision: the built-in recipes as they stand add nothing (committed cells keep their keys), a
    changed one changes the keys of its task's cells alone."""
    from graphunlearn.bench import engine
    # the record is today's recipes; after a deliberate recipe change, update it only together with an
    # EVAL_REVISION bump (updated alone, cells trained with the old recipe would be reused)
    for name in ("link", "node", "rec"):
        assert engine.RECIPES_AT_REVISION[name] == type(get_task(name)).recipe, name
    link, node = bench.load_config("smoke"), bench.load_config("smoke-node")
    for config in (link, node, bench.load_config("smoke-rec")):
        assert all("recipe" not in c for c in bench.plan(config))
    keys = {name: [bench.cell_key(c) for c in bench.plan(config)] for name, config in (("link", link), ("node", node))}
    task = type(get_task("link"))
    monkeypatch.setattr(task, "recipe", {**task.recipe, "patience": 100})
    cells = bench.plan(link)
    assert all(c["recipe"]["patience"] == 100 for c in cells)
    assert not set(map(bench.cell_key, cells)) & set(keys["link"])
    assert [bench.cell_key(c) for c in bench.plan(node)] == keys["node"]
    monkeypatch.delitem(engine.RECIPES_AT_REVISION, "node")  # a task with no record: its recipe is always keyed
    assert all(c["recipe"] == type(get_task("node")).recipe for c in bench.plan(node))


def test_a_task_revision_keys_its_tasks_cells_alone(monkeypatch):
    """A task's own revision (engine.TASK_REVISIONS) is in its cells' keys: bumping rec's recomputes rec cells
    and leaves the link and node cells' keys as they were (they hold no entry)."""
    from graphunlearn.bench import engine

    configs = {name: bench.load_config(name) for name in ("smoke", "smoke-node", "smoke-rec")}
    keys = {name: [bench.cell_key(c) for c in bench.plan(config)] for name, config in configs.items()}
    assert all(c["task_revision"] == engine.TASK_REVISIONS["rec"] for c in bench.plan(configs["smoke-rec"]))
    assert not any("task_revision" in c for name in ("smoke", "smoke-node") for c in bench.plan(configs[name]))
    monkeypatch.setitem(engine.TASK_REVISIONS, "rec", "test")
    assert not set(bench.cell_key(c) for c in bench.plan(configs["smoke-rec"])) & set(keys["smoke-rec"])
    for name in ("smoke", "smoke-node"):
        assert [bench.cell_key(c) for c in bench.plan(configs[name])] == keys[name]


def test_targets_are_checked_against_gold():
    rows = []
    for seed, (gold_t, m_t) in zip((1, 2, 3), ((10.0, 1.0), (12.0, 1.0), (11.0, 2.0))):
        base = dict(dataset="d", backbone="gcn", fraction=0.025, setting="in", seed=seed, task="link")
        rows.append({**base, "method": "retrain", "dt_auroc": 0.90, "df_auroc": 0.60, "seconds": gold_t})
        rows.append({**base, "method": "fast", "dt_auroc": 0.885, "df_auroc": 0.70, "seconds": m_t})
    targets = [dict(method="fast", metric="dt_auroc", rule="abs_gap", value=0.02),
               dict(method="fast", metric="df_auroc", rule="abs_gap", value=0.03),
               dict(method="fast", metric="df_auroc", rule="at_most_gold_plus", value=0.2),
               dict(method="fast", metric="dt_auroc", rule="rel_gap", value=0.01),
               dict(method="fast", metric="seconds", rule="speedup", value=10.0),
               dict(method="fast", metric="seconds", rule="speedup", value=12.0)]
    met = [c["met"] for c in bench.check_targets(rows, targets)]
    # dt gap -0.015: within 0.02; df gap +0.10: not within 0.03, within +0.2; relative dt gap 1.7% > 1%;
    # speed-up = median 11 s / median 1 s = 11x
    assert met == [True, False, True, False, True, False]
    with pytest.raises(ValueError, match="unknown target rule"):
        bench.check_targets(rows, [dict(method="fast", metric="seconds", rule="faster", value=1)])


def test_floor_plus_reads_the_distance_to_gold_against_the_noise_floor():
    rows = []
    for seed, (gold, gold2, fast) in zip((1, 2), ((0.60, 0.62, 0.64), (0.70, 0.66, 0.65))):
        base = dict(dataset="d", backbone="gcn", fraction=0.025, setting="in", seed=seed, task="link")
        rows += [{**base, "method": "retrain", "df_auroc": gold}, {**base, "method": "gold2", "df_auroc": gold2},
                 {**base, "method": "fast", "df_auroc": fast}]
    # distance 0.045 against a floor of 0.03: over it by 0.015
    checks = bench.check_targets(rows, [dict(method="fast", metric="df_auroc", rule="floor_plus", value=0.01),
                                        dict(method="fast", metric="df_auroc", rule="floor_plus", value=0.02)])
    assert [c["met"] for c in checks] == [False, True]
    assert abs(checks[0]["measured"] - 0.015) < 1e-9
    no_floor = [r for r in rows if r["method"] != "gold2"]
    assert bench.check_targets(no_floor, [dict(method="fast", metric="df_auroc", rule="floor_plus", value=0.01)]) == []


def test_unknown_task_is_refused():
    with pytest.raises(ValueError, match="task must be one of"):
        bench.plan({**bench.load_config("smoke"), "task": "graph"})


def test_a_fourth_task_runs_through_the_engine_unchanged(tmp_path, monkeypatch):
    """A task registered at run time is planned, run, summarised and plotted by the engine as it is: the
    engine asks the task object (split, model, forget set, metrics, headline, plot axes), never its name."""
    import graphunlearn as gu
    from graphunlearn.tasks import base as task_base
    from graphunlearn.unlearning import base as method_base

    class ToyLinks(gu.tasks.LinkPrediction):  # a gu.tasks.Task: link prediction's behaviour, another name
        name = "toy-links"

    toy = gu.tasks.register_task(ToyLinks())
    try:
        assert isinstance(toy, gu.tasks.Task) and gu.tasks.get_task("toy-links") is toy
        assert all(gu.methods()[m].supports(toy) for m in ("retrain", "unlink"))  # any task, by the contract alone
        for m in ("d2dgn",):  # d2dgn declares link and node: let it take the toy task too
            spec = method_base._REGISTRY[m]
            monkeypatch.setitem(method_base._REGISTRY, m, dataclasses.replace(spec, tasks=(*spec.tasks, toy.name)))
        config = {"task": toy.name, "datasets": ["synthetic"], "backbones": ["gcn"],
                  "methods": ["retrain", "unlink", "d2dgn"], "fractions": [0.025], "settings": ["in"],
                  "seeds": [42], "epochs": 5, "options": {"retrain": {"epochs": 5}, "d2dgn": {"epochs": 2}}}
        cells = bench.plan(config)
        assert len(cells) == 1 and cells[0]["task"] == toy.name
        assert "attack_epochs" not in cells[0]  # no attack registered for the toy task in bench.ATTACKS
        rows = bench.run(config, tmp_path, progress=False, log=lambda _: None)
        assert {r["method"] for r in rows} == {"retrain", "gold2", "unlink", "d2dgn"}  # gold2: the noise floor
        for r in rows:
            assert r["task"] == toy.name and 0 <= r["dt_auroc"] <= 1 and 0 <= r["df_auroc"] <= 1
            assert "mi_ratio" not in r and r["seconds"] >= 0
        gold = next(r for r in rows if r["method"] == "retrain")
        assert gold["gap_test_kl"] == pytest.approx(0.0, abs=1e-9)  # gold against itself
        md = bench.write_outputs(rows, tmp_path, config, name="toy").read_text()
        assert "gold (retrain)" in md and "dt_auroc" in md  # the task's headline metrics
        assert (tmp_path / "plots.png").stat().st_size > 1000  # the task's plot axes
        assert bench.run(config, tmp_path, progress=False, log=lambda _: None) == rows  # cached
    finally:
        task_base._TASKS.pop(toy.name, None)
    assert "toy-links" not in gu.tasks.tasks()


def test_configs_are_found_by_name_or_path(tmp_path, monkeypatch):
    names = bench.config_names()
    assert {"smoke", "smoke-node", "smoke-rec", "cora-gcn-target", "movielens-target"} <= set(names)
    shipped = REPO / "benchmarks" / "configs" / "smoke.json"
    assert bench.load_config(str(shipped)) == bench.load_config("smoke") == bench.load_config(shipped)
    assert bench.config_label(str(shipped)) == "smoke" and bench.config_label("smoke") == "smoke"
    # $GRAPHUNLEARN_BENCH_CONFIGS is searched first: a file there shadows a shipped configuration
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "smoke.json").write_text(json.dumps({**bench.load_config("smoke"), "epochs": 3}))
    (mine / "extra.json").write_text(shipped.read_text())
    monkeypatch.setenv("GRAPHUNLEARN_BENCH_CONFIGS", str(mine))
    assert bench.config_dirs()[0] == mine
    assert bench.load_config("smoke")["epochs"] == 3 and "extra" in bench.config_names()
    assert any(line.startswith("extra ") for line in bench.describe())


def test_split_options_reach_the_tasks_split_and_key_only_the_cells_that_set_them(tmp_path):
    config = bench.load_config("smoke-rec")
    plain = bench.plan(config)[0]
    assert "split" not in plain  # a configuration without split options keeps its cells' keys
    carved = {**config, "split": {"val_ratio": 0.2}, "methods": ["retrain", "reverse_bpr"], "seeds": [0],
              "options": {"reverse_bpr": {"calibrate": True}}}
    cell = bench.plan(carved)[0]
    assert cell["split"] == {"val_ratio": 0.2} and bench.cell_key(cell) != bench.cell_key(plain)
    rows = bench.run(carved, tmp_path, progress=False, log=lambda _: None)
    assert {r["method"] for r in rows} >= {"retrain", "reverse_bpr"}
    assert all(r["split"] == {"val_ratio": 0.2} for r in rows)
    with pytest.raises(ValueError, match="split must be an object"):
        bad = tmp_path / "bad-split.json"
        bad.write_text(json.dumps({**config, "split": 0.1}))
        bench.load_config(str(bad))


def test_load_config_refuses_unknown_names_and_bad_files(tmp_path):
    with pytest.raises(ValueError, match=r"unknown configuration 'nope'; known: .*smoke.*searched"):
        bench.load_config("nope")
    with pytest.raises(ValueError, match="does not exist"):
        bench.load_config(str(tmp_path / "none.json"))
    good = bench.load_config("smoke")
    bad = tmp_path / "bad.json"
    for text, problem in [("{not json", "not valid JSON"), ("[1, 2]", "must be a JSON object"),
                          (json.dumps({k: v for k, v in good.items() if k != "epochs"}), "lacks epochs"),
                          (json.dumps({**good, "seed": [1]}), "unknown keys seed"),
                          (json.dumps({**good, "methods": "retrain"}), "methods must be a non-empty list"),
                          (json.dumps({**good, "fractions": [0]}), "fractions must be"),
                          (json.dumps({**good, "epochs": 0}), "epochs must be an integer >= 1"),
                          (json.dumps({**good, "targets": [{"method": "d2dgn"}]}), "each target must be")]:
        bad.write_text(text)
        with pytest.raises(ValueError, match=problem) as info:
            bench.load_config(str(bad))
        assert str(bad) in str(info.value)


@pytest.mark.slow
def test_the_gpu_pipeline_benchmark_runs_on_a_tiny_graph(tmp_path):
    """benchmarks/bench_gpu_pipeline.py (what gpu_check.sh runs at products-like size on a lent GPU) works
    end to end on the CPU at a tiny size, so the GPU script does not rot between GPU sessions."""
    out = tmp_path / "pipeline.csv"
    run = subprocess.run([sys.executable, "benchmarks/bench_gpu_pipeline.py", "--device", "cpu", "--nodes", "300",
                          "--avg-degree", "6", "--features", "8", "--epochs", "2", "--csv", str(out)],
                         capture_output=True, text=True, timeout=300, cwd=Path(__file__).resolve().parents[1])
    assert run.returncode == 0, run.stderr[-2000:]
    rows = list(csv.DictReader(out.open()))
    assert [r["phase"] for r in rows] == ["data", "store", "train", "delete", "d2dgn", "gnndelete", "retrain"]
    assert {r["backend"] for r in rows if r["phase"] in ("d2dgn", "gnndelete", "retrain")} == {"torch"}


def test_noise_floor_compares_each_method_with_two_golds():
    base = dict(dataset="d", backbone="gcn", fraction=0.1, setting="in", task="link")
    rows = []
    for seed, (g, g2, m) in enumerate([(0.90, 0.91, 0.905), (0.92, 0.90, 0.95)]):
        rows += [{**base, "seed": seed, "method": "retrain", "dt_auroc": g, "gap_test_kl": 0.0},
                 {**base, "seed": seed, "method": "gold2", "dt_auroc": g2, "gap_test_kl": 0.02},
                 {**base, "seed": seed, "method": "d2dgn", "dt_auroc": m, "gap_test_kl": 0.01}]
    got = {(f["method"], f["metric"]): f for f in bench.engine.noise_floor(rows)}
    dt = got[("d2dgn", "dt_auroc")]
    assert dt["distance"] == pytest.approx((0.005 + 0.03) / 2) and dt["floor"] == pytest.approx((0.01 + 0.02) / 2)
    assert not dt["within"]
    kl = got[("d2dgn", "gap_test_kl")]
    assert kl["distance"] == pytest.approx(0.01) and kl["floor"] == pytest.approx(0.02) and kl["within"]
    assert got[("gold, seed + 1 (noise floor)", "dt_auroc")]["within"]  # the floor is within itself
    assert bench.engine.noise_floor([r for r in rows if r["method"] != "gold2"]) == []


@pytest.mark.slow
def test_the_scale_benchmark_runs_on_a_small_graph(tmp_path):
    """benchmarks/bench_scale.py end to end on the synthetic graph: sampled training, registration, gold, a
    local method, sampled evaluation, the result files and the plot; a second run with --append keeps rows."""
    cmd = [sys.executable, "benchmarks/bench_scale.py", "--sizes", "synthetic", "--deletions", "20", "40",
           "--gold-at", "20", "--methods", "gradient_ascent", "--steps", "4", "--epochs", "2", "--eval-every", "1",
           "--batch-size", "64", "--fanout", "3", "2", "--val", "100", "--out", str(tmp_path)]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=Path(__file__).resolve().parents[1])
    assert run.returncode == 0, run.stderr[-2000:]
    rows = json.loads((tmp_path / "results.json").read_text())["rows"]
    assert [(r["deleted"], r["method"]) for r in rows] == [(20, "retrain"), (20, "original"), (20, "gradient_ascent"),
                                                          (40, "original"), (40, "gradient_ascent")]
    ga = rows[2]
    assert ga["speedup"] > 0 and 0 <= ga["dt_auroc"] <= 1 and ga["gap_test_kl"] >= 0 and ga["register_ms"] > 0
    assert rows[0]["recipe"]["num_neighbors"] == [3, 2]
    assert (tmp_path / "time_vs_size.png").stat().st_size > 0
    assert "gradient_ascent" in (tmp_path / "results.md").read_text()


def test_a_forget_set_the_graph_cannot_supply_refuses_the_cell_before_training(tmp_path, monkeypatch):
    from graphunlearn.bench import engine

    def never(*args, **kwargs):
        raise AssertionError("the original was trained for a cell without a forget set")

    monkeypatch.setattr(engine, "_original", never)
    config = {**bench.load_config("smoke"), "settings": ["out"], "fractions": [0.9], "methods": ["retrain", "unlink"]}
    lines = []
    rows = bench.run(config, tmp_path, progress=False, log=lines.append)
    assert {r["method"] for r in rows} == {"retrain", "unlink"}
    assert all(r["refused"].startswith("no forget set: forget_edges:") for r in rows)
    assert any("REFUSED" in line for line in lines) and not list((tmp_path / "cells").glob("*.json"))
    md = bench.write_outputs(rows, tmp_path, config, name="smoke").read_text()
    assert "no forget set" in md


def test_a_method_that_refuses_the_requests_is_recorded_and_the_cell_runs_on(tmp_path):
    """heldout_distill does not take a request that only erases feature values: its row says so (refused_by
    "method"), the other methods of the cell are measured, the cell is cached, results.md lists the refusal,
    and a target on the refusing method is a miss, not silently skipped."""
    config = {**bench.load_config("smoke-node"), "settings": ["features"], "epochs": 5,
              "methods": ["retrain", "unlink", "heldout_distill"],
              "targets": [{"method": "heldout_distill", "metric": "test_acc", "rule": "abs_gap", "value": 0.05}]}
    lines = []
    rows = bench.run(config, tmp_path, progress=False, log=lines.append)
    by = {r["method"]: r for r in rows}
    assert set(by) == {"retrain", "gold2", "unlink", "heldout_distill"}
    refused = by["heldout_distill"]
    assert refused["refused_by"] == "method" and "test_acc" not in refused
    assert refused["refused"].startswith("method refused the request: heldout_distill: the requests delete no "
                                         "labelled node")
    assert all("refused" not in by[m] and "test_acc" in by[m] for m in ("retrain", "gold2", "unlink"))
    assert not any("REFUSED" in line for line in lines) and len(list((tmp_path / "cells").glob("*.json"))) == 1
    md = bench.write_outputs(rows, tmp_path, config, name="smoke-node").read_text()
    assert "Refused methods" in md and "Refused cells" not in md
    check = bench.check_targets(rows, config["targets"])
    assert len(check) == 1 and not check[0]["met"] and check[0]["target"] == "the method refused the requests"
    again = bench.run(config, tmp_path, progress=False, log=lines.append)  # from the cache
    assert again == rows and any("cached" in line for line in lines)


def _tiny_link(**change) -> dict:
    """The smoke configuration at a few epochs: seconds on the synthetic graph."""
    return {**bench.load_config("smoke"), "epochs": 5, "attack_epochs": 5, **change}


def test_link_rows_carry_the_evidence_columns(tmp_path):
    """recon_auroc (every model, gold2 included) and did-anything-change (weight_l2, flip_rate against the
    original): in range, 0 and 0 for unlink, which changes nothing; shown in results.md with their notes,
    recon_auroc and flip_rate in the noise floor, weight_l2 not."""
    import graphunlearn as gu

    config = _tiny_link(methods=["retrain", "unlink", "gradient_ascent"])
    rows = bench.run(config, tmp_path, progress=False, log=lambda _: None)
    by = {r["method"]: r for r in rows}
    assert set(by) == {"retrain", "gold2", "unlink", "gradient_ascent"}
    split, _ = gu.tasks.LINK.make_split(gu.datasets.load("synthetic"), 42)
    pairs = split.val_pos.size(1) + split.val_neg.size(1)  # validation positives and negatives
    for r in rows:
        assert 0.0 <= r["recon_auroc"] <= 1.0 and 0.0 <= r["flip_rate"] <= 1.0, r
        assert r["weight_l2"] >= 0.0 and r["flip_units"] == pairs, r
    assert by["unlink"]["weight_l2"] == 0.0 and by["unlink"]["flip_rate"] == 0.0
    assert by["gradient_ascent"]["weight_l2"] > 0.0 and by["gold2"]["weight_l2"] > 0.0
    md = bench.write_outputs(rows, tmp_path, config, name="smoke").read_text()
    header = next(line for line in md.splitlines() if line.startswith("| dataset"))
    assert all(f"| {c} |" in header for c in ("recon_auroc", "weight_l2", "flip_rate"))
    assert "recon_auroc: edge-reconstruction attack" in md and "weight_l2: ||theta'" in md
    floor = {f["metric"] for f in bench.engine.noise_floor(rows)}
    assert {"recon_auroc", "flip_rate"} <= floor and "weight_l2" not in floor


def test_hard_settings_draw_what_hard_forget_edges_draws(tmp_path, monkeypatch):
    """hard-degree and hard-confident delete the edges hard_forget_edges draws at the cell's fraction and
    seed, the confident kind ranked by the trained original (the model every method then starts from)."""
    import graphunlearn as gu
    from graphunlearn.bench import engine

    seen = {}
    real = engine._unlearn_all

    def spy(cell, model, store, req, split, progress, task=None):
        seen[cell["setting"]] = (store.edge_index[:, req.edge_ids], model)
        return real(cell, model, store, req, split, progress, task)

    monkeypatch.setattr(engine, "_unlearn_all", spy)
    config = _tiny_link(methods=["unlink"], settings=["in", "hard-degree", "hard-confident"])
    rows = bench.run(config, tmp_path, progress=False, log=lambda _: None)
    assert [r["setting"] for r in rows] == ["in", "hard-degree", "hard-confident"] and not any("refused" in r
                                                                                              for r in rows)
    split, graph = gu.tasks.LINK.make_split(gu.datasets.load("synthetic"), 42)
    original = seen["hard-confident"][1]
    assert seen["in"][1] is original  # the cached original, trained once for the run
    scores = gu.evaluate.link_confidence(original, engine._store(graph))

    def pairs(edges):
        return sorted(map(tuple, torch.sort(edges, 0).values.t().tolist()))

    drawn = {}
    for setting, kind in (("hard-degree", "high_degree"), ("hard-confident", "confident")):
        want = gu.datasets.hard_forget_edges(split, 0.025, kind, scores=scores if kind == "confident" else None,
                                             seed=42)
        assert pairs(seen[setting][0]) == pairs(want), setting
        drawn[setting] = set(pairs(want))
    assert len(drawn["hard-degree"]) == round(0.025 * split.train_pos.size(1))
    assert drawn["hard-degree"] != drawn["hard-confident"] != set(pairs(seen["in"][0]))


def test_unknown_settings_are_refused(tmp_path, capsys):
    from graphunlearn.cli import main

    config = bench.load_config("smoke")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**config, "settings": ["hard"]}))
    assert main(["bench", "--config", str(bad), "--out", str(tmp_path / "out")]) == 2  # before any work
    assert "unknown settings ['hard'] for task 'link'" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    with pytest.raises(ValueError, match=r"unknown settings \['hard_degree'\] for task 'link'; known: .*hard-degree"):
        bench.plan({**config, "settings": ["in", "hard_degree"]})
    known = r"known: \['nodes', 'features', 'class'\]"
    with pytest.raises(ValueError, match=r"unknown settings \['in'\] for task 'node'; " + known):
        bench.plan({**bench.load_config("smoke-node"), "settings": ["in"]})
    assert len(bench.plan({**config, "settings": ["in", "out", "hard-degree", "hard-confident"]})) == 4
    node = bench.load_config("smoke-node")  # a setting no fraction sizes runs with one fraction, not several
    with pytest.raises(ValueError, match=r"settings \['class'\] of task 'node' are not sized by a fraction"):
        bench.plan({**node, "settings": ["nodes", "class"], "fractions": [0.05, 0.1]})
    assert len(bench.plan({**node, "settings": ["class"], "fractions": [0.1]})) == len(node["seeds"])
    # split options are checked against the task's make_split, ratios in [0, 1)
    with pytest.raises(ValueError, match=r"unknown split options \['val_ratio'\] for task 'link'"):
        bench.plan({**config, "split": {"val_ratio": 0.1}})
    rec = bench.load_config("smoke-rec")
    with pytest.raises(ValueError, match="split option 'val_ratio' must be a number in \\[0, 1\\), got 1.5"):
        bench.plan({**rec, "split": {"val_ratio": 1.5}})
    with pytest.raises(TypeError, match="'split' must be a dict"):
        bench.plan({**rec, "split": 0.1})
    assert bench.plan({**rec, "split": {"val_ratio": 0.1}})[0]["split"] == {"val_ratio": 0.1}


def test_settings_are_what_each_task_declares():
    """settings_of reads the task's forget_settings (plus the engine's hard link workloads for link splits),
    None where a task declares none; rec's sample_forget takes setting as kind's other name."""
    import graphunlearn as gu
    from graphunlearn.bench.engine import settings_of

    assert settings_of(gu.tasks.get_task("link")) == ("in", "out", "hard-degree", "hard-confident")
    assert settings_of(gu.tasks.get_task("node")) == ("nodes", "features", "class")
    assert settings_of(gu.tasks.get_task("rec")) == ("interaction", "user", "item_group")

    class Undeclared(gu.tasks.LinkPrediction):
        forget_settings = None

    class InOnly(gu.tasks.LinkPrediction):
        forget_settings = ("in",)

    assert settings_of(Undeclared()) is None
    assert settings_of(InOnly()) == ("in", "hard-degree", "hard-confident")
    rec = gu.tasks.get_task("rec")
    split, graph = rec.make_split(gu.datasets.load("synthetic-rec"), 0)
    store = gu.GraphStore(graph)
    with pytest.raises(ValueError, match="kind='user' and setting='interaction' name two forget sets"):
        rec.sample_forget(store, split, 0.05, kind="user", setting="interaction")
    assert store.requests == []  # refused before anything was registered
    assert rec.sample_forget(store, split, 0.05, setting="user").kind == "nodes"
    fresh = gu.GraphStore(graph)
    assert rec.sample_forget(fresh, split, 0.05, kind="interaction", setting="interaction").kind == "edges"


def test_gold_table_pairs_each_method_with_gold_per_seed():
    """The calibration benchmarks' tables (benchmarks/common.py): each method's rows beside gold's of the same
    seeds."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_common_under_test", REPO / "benchmarks" / "common.py")
    common = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(common)

    rows = [{"seed": s, "setting": "in", "method": m, "df": v, "seconds": 1.0, "selected_epoch": None}
            for s, m, v in [(0, "gold (retrain)", 0.5), (0, "a", 0.7), (1, "gold (retrain)", 0.6), (1, "a", 0.5)]]
    md = common.gold_table(rows, "setting", [("Df", common.column("df")), ("|Df - gold|", common.distance("df")),
                                             ("time (s)", common.median_seconds), ("kept", common.epochs_kept)])
    assert md.splitlines() == ["| setting | method | Df | |Df - gold| | time (s) | kept |", "|---|---|---|---|---|---|",
                               "| in | gold (retrain) | 0.5500 ± 0.0707 | 0.0000 | 1.00 | - |",
                               "| in | a | 0.6000 ± 0.1414 | 0.1500 | 1.00 | - |"]
    with pytest.raises(KeyError):  # a seed without its gold row
        common.gold_table(rows[1:], "setting", [("Df", common.column("df"))])


def test_plot_floor_edge_cases(tmp_path):
    """No method but the second gold, or no metric, draws nothing; a method missing from a group or a panel
    still draws the rest."""
    row = {"group": "g1", "metric": "dt_auroc", "distance": 0.01, "floor": 0.02, "within": True, "seeds": 5}
    floor2 = {**row, "method": "gold, seed + 1 (noise floor)"}
    assert not bench.engine.plot_floor([floor2], ["dt_auroc"], tmp_path / "a.png")
    assert not (tmp_path / "a.png").exists()
    rows = [floor2, {**row, "method": "d2dgn"}, {**row, "group": "g2", "method": "unlink"},
            {**row, "metric": "gap_test_kl", "method": "unlink", "floor": 0.05}]
    assert bench.engine.plot_floor(rows, ["dt_auroc", "gap_test_kl"], tmp_path / "b.png")
    assert (tmp_path / "b.png").stat().st_size > 1000


def test_prediction_change_reads_live_validation_nodes_only():
    """The "did anything change" units of node classification are the live validation nodes: a deleted class
    takes its validation nodes with it, and a deleted node (isolated, featureless) is no held-out decision."""
    import graphunlearn as gu
    from graphunlearn.bench.engine import _change_units

    task = get_task("node")
    data = gu.datasets.synthetic(num_nodes=120, num_classes=3, num_features=8, avg_degree=4, seed=0)
    split = gu.datasets.node_split(data, seed=0)
    store = gu.GraphStore(data)
    assert torch.equal(_change_units(task, split, store), split.val_idx)
    req = task.sample_forget(store, split, 0.1, seed=0, setting="class")
    units = _change_units(task, split, store)
    gone = split.val_idx[torch.isin(split.val_idx, req.node_ids)]
    assert gone.numel() > 0 and torch.equal(units, split.val_idx[store.node_mask[split.val_idx]])
