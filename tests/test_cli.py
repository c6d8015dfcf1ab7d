"""The graphunlearn command, end to end on the synthetic graph, and its error messages."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from graphunlearn.cli import main
from graphunlearn.io import safe_load


def test_cli_end_to_end(tmp_path, capsys):
    run = str(tmp_path / "run")
    assert main(["split", "--dataset", "synthetic", "--run", run]) == 0
    assert main(["train", "--run", run, "--epochs", "20", "--quiet"]) == 0
    assert main(["delete", "--run", run, "--fraction", "0.02"]) == 0
    assert main(["delete", "--run", run, "--nodes", "3,4"]) == 0
    assert main(["unlearn", "--run", run, "--request", "0", "--method", "d2dgn", "--option", "epochs=4",
                 "--quiet"]) == 0
    assert main(["unlearn", "--run", run, "--request", "0", "--method", "retrain", "--option", "epochs=10",
                 "--quiet"]) == 0
    out = tmp_path / "report.json"
    assert main(["evaluate", "--run", run, "--request", "0", "--model", "d2dgn-r0.pt", "--gold", "retrain-r0.pt",
                 "--resamples", "20", "--json", str(out)]) == 0
    row = json.loads(out.read_text())["rows"]["d2dgn-r0.pt"]
    assert 0 <= row["dt_auroc"] <= 1 and 0 <= row["df_auroc"] <= 1 and "gap_test_kl" in row
    text = capsys.readouterr().out
    assert "request 0: edges" in text and "request 1: nodes" in text and "dt_auroc" in text


def test_cli_errors(tmp_path, capsys):
    assert main(["train", "--run", str(tmp_path / "nothing")]) == 2
    assert "is not a run folder" in capsys.readouterr().err
    run = str(tmp_path / "run")
    main(["split", "--dataset", "synthetic", "--run", run])
    assert main(["split", "--dataset", "synthetic", "--run", run]) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert main(["delete", "--run", run, "--edges", "0-999999"]) == 2
    assert "out of range" in capsys.readouterr().err
    assert main(["delete", "--run", run]) == 2
    assert "say what to delete" in capsys.readouterr().err
    assert main(["unlearn", "--run", run, "--request", "5"]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["unlearn", "--run", run]) == 2  # --request is required: argparse's message, one line
    assert "the following arguments are required: --request" in capsys.readouterr().err


def test_console_script_help():
    beside = Path(sys.executable).parent / "graphunlearn"  # the venv's bin folder
    exe = str(beside) if beside.exists() else shutil.which("graphunlearn")
    if exe is None:
        pytest.skip("the graphunlearn console script is not on PATH (package not installed with its scripts)")
    run = subprocess.run([exe, "--help"], capture_output=True, text=True)
    assert run.returncode == 0 and "split" in run.stdout and "unlearn" in run.stdout


def test_cli_node_task(tmp_path, capsys):
    run = str(tmp_path / "node")
    assert main(["split", "--dataset", "synthetic", "--task", "node", "--run", run]) == 0
    assert main(["train", "--run", run, "--epochs", "20", "--quiet"]) == 0
    text = capsys.readouterr().out
    for argv, why in ((["--fraction", "0.05", "--setting", "out"],
                       "--setting out is not a forget setting of this run's task (node); its settings: nodes, "
                       "features, class"),
                      (["--fraction", "0.05", "--kind", "user"],
                       "--kind user is not a forget setting of this run's task (node)"),
                      (["--nodes", "5", "--setting", "features"],
                       "--setting says what --fraction samples; with --nodes"),
                      (["--fraction", "0.05", "--setting", "nodes", "--kind", "user"], "name two forget sets"),
                      (["--fraction", "0.05", "--setting", "class"],
                       "--setting class deletes a whole class, drawn by --seed: --fraction means nothing with it"),
                      (["--setting", "nodes"], "--setting nodes samples a fraction of the forget units: give "
                       "--fraction too")):
        assert main(["delete", "--run", run, *argv]) == 2, argv
        assert why in capsys.readouterr().err, argv
    # none of the refused calls registered anything: the next request is number 0
    assert main(["delete", "--run", run, "--fraction", "0.05"]) == 0
    assert main(["delete", "--run", run, "--features", "1,2"]) == 0
    assert main(["unlearn", "--run", run, "--request", "0", "--method", "d2dgn", "--option", "epochs=3",
                 "--quiet"]) == 0
    out = tmp_path / "node.json"
    assert main(["evaluate", "--run", run, "--request", "0", "--model", "d2dgn-r0.pt", "--gold", "model.pt",
                 "--original", "model.pt", "--json", str(out)]) == 0
    row = json.loads(out.read_text())["rows"]["d2dgn-r0.pt"]
    assert 0 <= row["test_acc"] <= 1 and 0 <= row["mia_auroc"] <= 1 and "gap_hop1_kl" in row
    text += capsys.readouterr().out
    assert "(node)" in text and "request 0: nodes" in text and "request 1: node_features" in text
    assert main(["delete", "--run", run, "--setting", "class", "--seed", "1"]) == 0  # one whole class, no fraction
    assert "request 2: node_class" in capsys.readouterr().out
    assert main(["train", "--run", run, "--model", "lightgcn"]) == 2
    assert "does not fit task 'node'" in capsys.readouterr().err


def test_cli_rec_task_and_item_group(tmp_path, capsys):
    run = str(tmp_path / "rec")
    assert main(["split", "--dataset", "synthetic-rec", "--run", run]) == 0  # user-item data: task rec
    assert main(["train", "--run", run, "--epochs", "3", "--quiet"]) == 0
    assert main(["delete", "--run", run, "--fraction", "0.05", "--kind", "user"]) == 0  # users leave first
    assert main(["delete", "--run", run, "--item-group", "group 2"]) == 0  # their interactions are gone already
    assert main(["unlearn", "--run", run, "--request", "1", "--method", "reverse_bpr", "--option", "epochs=3",
                 "--quiet"]) == 0
    out = tmp_path / "rec.json"
    assert main(["evaluate", "--run", run, "--request", "1", "--model", "reverse_bpr-r1.pt", "--gold", "model.pt",
                 "--json", str(out)]) == 0
    row = json.loads(out.read_text())["rows"]["reverse_bpr-r1.pt"]
    assert 0 <= row["recall@20"] <= 1 and 0 <= row["forget_recall@20"] <= 1
    text = capsys.readouterr().out
    assert "(rec)" in text and "request 0: nodes" in text and "request 1: edges" in text
    assert main(["delete", "--run", run, "--item-group", "2"]) == 2  # already deleted: refused, nothing changes
    assert "is already deleted" in capsys.readouterr().err
    assert main(["train", "--run", run, "--epochs", "0"]) == 2
    assert "argument --epochs: must be an integer >= 1, got '0'" in capsys.readouterr().err
    assert main(["delete", "--run", run, "--item-group", "99"]) == 2
    assert "out of range 0..5" in capsys.readouterr().err
    assert main(["delete", "--run", run, "--item-group", "Opera"]) == 2
    assert "neither a column number nor a group name; groups: group 0, group 1" in capsys.readouterr().err
    assert main(["split", "--dataset", "synthetic", "--task", "rec", "--run", str(tmp_path / "x")]) == 2
    assert "needs a user-item dataset" in capsys.readouterr().err


def test_cli_rec_split_with_validation_interactions_calibrates(tmp_path, capsys):
    run = str(tmp_path / "rec")
    assert main(["split", "--dataset", "synthetic-rec", "--val-ratio", "0.2", "--run", run]) == 0
    assert " validation and " in capsys.readouterr().out
    blob = safe_load(tmp_path / "rec" / "split.pt")
    assert blob["val_pos"].size(1) > 0
    assert main(["train", "--run", run, "--epochs", "3", "--quiet"]) == 0
    assert main(["delete", "--run", run, "--fraction", "0.05", "--setting", "interaction"]) == 0
    assert main(["unlearn", "--run", run, "--request", "0", "--method", "reverse_bpr", "--option", "epochs=3",
                 "--option", "calibrate=True", "--quiet"]) == 0
    capsys.readouterr()
    assert main(["split", "--dataset", "synthetic", "--val-ratio", "0.1", "--run", str(tmp_path / "x")]) == 2
    assert "--val-ratio" in capsys.readouterr().err
    assert main(["split", "--dataset", "synthetic-rec", "--val-ratio", "1", "--run", str(tmp_path / "y")]) == 2
    assert "must be a fraction in [0, 1)" in capsys.readouterr().err


def test_cli_bench(tmp_path, capsys):
    assert main(["bench", "--list"]) == 0
    assert "cora-gcn-target" in capsys.readouterr().out
    assert main(["bench", "--config", "nope"]) == 2
    assert "unknown configuration" in capsys.readouterr().err
    assert main(["bench", "--config", "smoke-node", "--out", str(tmp_path / "b"), "--quiet"]) == 0
    assert (tmp_path / "b" / "results.md").exists() and "gold (retrain)" in capsys.readouterr().out


# ---------------------------------------------------------------------------------------------------------
# every user error: exit status 2, one line on stderr naming the problem, never a traceback


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    """A synthetic link run with a one-epoch model and one request, shared by the refusal tests (each test
    that damages something works on a copy)."""
    run = tmp_path_factory.mktemp("cli-errors") / "run"
    assert main(["split", "--dataset", "synthetic", "--run", str(run)]) == 0
    assert main(["train", "--run", str(run), "--epochs", "1", "--hidden", "8", "--out-channels", "8", "--quiet"]) == 0
    assert main(["delete", "--run", str(run), "--nodes", "3,4"]) == 0
    return run


def refused(capsys, argv: list[str], *needles: str) -> str:
    """Run ``argv``; assert exit status 2 and one stderr line holding every needle, without a traceback."""
    capsys.readouterr()
    assert main(argv) == 2, argv
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert "Traceback" not in err and len(lines) == 1, f"{argv}: expected one line on stderr, got:\n{err}"
    assert lines[0].startswith("graphunlearn"), lines[0]
    for needle in needles:
        assert needle in lines[0], f"{argv}: {needle!r} not in {lines[0]!r}"
    return lines[0]


@pytest.mark.parametrize("argv, needles", [
    (["train", "--lr", "-1"], ["--lr", "> 0", "'-1'"]),
    (["train", "--lr", "nan"], ["--lr", "finite"]),
    (["train", "--lr", "fast"], ["--lr", "number"]),
    (["train", "--hidden", "0"], ["--hidden", ">= 1"]),
    (["train", "--out-channels", "-3"], ["--out-channels", ">= 1"]),
    (["train", "--epochs", "abc"], ["--epochs", "integer"]),
    (["train", "--epochs", "2.5"], ["--epochs", "integer"]),
    (["train", "--seed", "-1"], ["--seed", "[0, 2**63)"]),
    (["train", "--seed", str(2 ** 70)], ["--seed", "[0, 2**63)"]),
    (["train", "--model", "mlp"], ["--model", "invalid choice"]),
    (["train", "--output", "."], ["--output", "is a folder"]),
    (["delete", "--fraction", "0"], ["--fraction", "(0, 1]"]),
    (["delete", "--fraction", "1.5"], ["--fraction", "(0, 1]"]),
    (["delete", "--fraction", "nan"], ["--fraction", "(0, 1]"]),
    (["delete", "--nodes", "3,x"], ["--nodes", "'x'"]),
    (["delete", "--nodes", "3,True"], ["--nodes", "'True'"]),
    (["delete", "--features", "1.5"], ["--features", "'1.5'"]),
    (["delete", "--edges", "1-2-3"], ["--edges", "'1-2-3'"]),
    (["delete", "--edge-class", "-1"], ["--edge-class", ">= 0"]),
    (["delete", "--nodes", "3", "--edges", "1-2"], ["one deletion per request", "--nodes", "--edges"]),
    (["delete", "--nodes", "999999"], ["999999"]),
    (["unlearn", "--request", "-1"], ["--request", ">= 0"]),
    (["unlearn", "--request", "7"], ["request 7 does not exist"]),
    (["unlearn", "--request", "0", "--method", "nope"], ["unknown method 'nope'", "d2dgn"]),
    (["unlearn", "--request", "0", "--option", "epochs"], ["NAME=VALUE", "'epochs'"]),
    (["unlearn", "--request", "0", "--option", "bogus=1"], ["--option bogus", "no such option", "epochs"]),
    (["unlearn", "--request", "0", "--option", "epochs=1", "--option", "epochs=2"], ["epochs", "twice"]),
    (["unlearn", "--request", "0", "--option", "epochs=abc", "--quiet"], ["epochs", "abc"]),
    (["unlearn", "--request", "0", "--option", "epochs=-1", "--quiet"], ["epochs", "-1"]),
    (["unlearn", "--request", "0", "--option", "alpha=5", "--quiet"], ["alpha", "5"]),
    (["unlearn", "--request", "0", "--model", "missing.pt"], ["missing.pt", "does not exist"]),
    (["unlearn", "--request", "0", "--model", "split.pt"], ["split.pt"]),  # a torch file, not a checkpoint
    (["evaluate", "--request", "0", "--model", "model.pt", "--resamples", "0"], ["--resamples", ">= 1"]),
    (["evaluate", "--request", "0", "--model", "model.pt", "--json", "."], ["--json", "is a folder"]),
])
def test_cli_refuses_bad_arguments(small_run, capsys, argv, needles):
    argv = [argv[0], "--run", str(small_run), *argv[1:]]
    refused(capsys, argv, *needles)


def test_cli_refuses_bad_split_arguments(tmp_path, capsys, monkeypatch):
    run = str(tmp_path / "run")
    refused(capsys, ["split", "--dataset", "no-such-graph", "--run", run], "unknown dataset", "cora")
    refused(capsys, ["split", "--dataset", "synthetic", "--seed", "1.5", "--run", run], "--seed", "integer")
    refused(capsys, ["split", "--dataset", "synthetic", "--task", "graph", "--run", run], "--task")
    refused(capsys, ["split", "--run", run, "--frobnicate"], "unrecognized arguments: --frobnicate")
    refused(capsys, ["frobnicate"], "invalid choice")
    note = tmp_path / "notes.txt"
    note.write_text("a file")
    monkeypatch.setenv("GRAPHUNLEARN_DATA", str(note))
    refused(capsys, ["split", "--dataset", "cora", "--run", run], str(note), "not a folder")
    assert not (tmp_path / "run").exists()


def test_cli_refuses_a_run_under_a_file(tmp_path, capsys):
    note = tmp_path / "notes.txt"
    note.write_text("a file")
    for argv in (["split", "--dataset", "synthetic"], ["train"], ["delete", "--nodes", "1"],
                 ["unlearn", "--request", "0"], ["evaluate", "--request", "0", "--model", "model.pt"]):
        refused(capsys, [*argv, "--run", str(note / "run")], str(note), "is a file, not a folder")
    assert note.read_text() == "a file"


@pytest.fixture
def run_copy(small_run, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(small_run, copy, ignore=shutil.ignore_patterns("*.lock"))
    return copy


@pytest.mark.parametrize("damage", ["truncated", "junk", "empty", "pickle"])
@pytest.mark.parametrize("target", ["store/store.pt", "split.pt", "model.pt"])
def test_cli_refuses_damaged_files(run_copy, capsys, target, damage):
    import pickle

    path = run_copy / target
    if damage == "truncated":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif damage == "junk":
        path.write_bytes(b"\x00not a torch file" * 100)
    elif damage == "empty":
        path.write_bytes(b"")
    else:  # a plain pickle that would run code if unpickled freely
        marker = run_copy / "pwned"
        path.write_bytes(pickle.dumps(_Exploit(str(marker)), protocol=2))
    argv = ["evaluate", "--run", str(run_copy), "--request", "0", "--model", "model.pt"]
    refused(capsys, argv, path.name)
    assert not (run_copy / "pwned").exists()


class _Exploit:
    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def test_cli_refuses_a_locked_store(small_run, capsys):
    from graphunlearn.store import GraphStore

    with GraphStore.open(small_run / "store"):  # another writer holds the store
        refused(capsys, ["delete", "--run", str(small_run), "--nodes", "5"], "open for writing")
    with GraphStore.open(small_run / "store") as store:
        assert len(store.requests) == 1  # the refused request left nothing behind


def test_cli_help_returns_zero(capsys):
    assert main(["--help"]) == 0
    assert "unlearn" in capsys.readouterr().out


def test_debug_shows_the_traceback_behind_the_one_line(tmp_path, capsys, monkeypatch):
    assert main(["train", "--run", str(tmp_path / "none")]) == 2
    assert "Traceback" not in capsys.readouterr().err
    monkeypatch.setenv("GRAPHUNLEARN_DEBUG", "1")
    assert main(["train", "--run", str(tmp_path / "none")]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and err.strip().splitlines()[-1].startswith("graphunlearn train: error:")
