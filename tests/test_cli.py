"""The graphunlearn command, end to end on the synthetic graph, and its error messages."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from graphunlearn.cli import main


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
    with pytest.raises(SystemExit):
        main(["unlearn", "--run", run])  # --request is required: argparse exits with its usage message


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
    assert main(["delete", "--run", run, "--fraction", "0.05"]) == 0
    assert main(["delete", "--run", run, "--features", "1,2"]) == 0
    assert main(["unlearn", "--run", run, "--request", "0", "--method", "d2dgn", "--option", "epochs=3",
                 "--quiet"]) == 0
    out = tmp_path / "node.json"
    assert main(["evaluate", "--run", run, "--request", "0", "--model", "d2dgn-r0.pt", "--gold", "model.pt",
                 "--original", "model.pt", "--json", str(out)]) == 0
    row = json.loads(out.read_text())["rows"]["d2dgn-r0.pt"]
    assert 0 <= row["test_acc"] <= 1 and 0 <= row["mia_auroc"] <= 1 and "gap_hop1_kl" in row
    text = capsys.readouterr().out
    assert "(node)" in text and "request 0: nodes" in text and "request 1: node_features" in text
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
    assert "--epochs must be at least 1" in capsys.readouterr().err
    assert main(["delete", "--run", run, "--item-group", "99"]) == 2
    assert "out of range 0..5" in capsys.readouterr().err
    assert main(["delete", "--run", run, "--item-group", "Opera"]) == 2
    assert "neither a column number nor a group name; groups: group 0, group 1" in capsys.readouterr().err
    assert main(["split", "--dataset", "synthetic", "--task", "rec", "--run", str(tmp_path / "x")]) == 2
    assert "needs a user-item dataset" in capsys.readouterr().err


def test_cli_bench(tmp_path, capsys):
    assert main(["bench", "--list"]) == 0
    assert "cora-gcn-target" in capsys.readouterr().out
    assert main(["bench", "--config", "nope"]) == 2
    assert "unknown configuration" in capsys.readouterr().err
    assert main(["bench", "--config", "smoke-node", "--out", str(tmp_path / "b"), "--quiet"]) == 0
    assert (tmp_path / "b" / "results.md").exists() and "gold (retrain)" in capsys.readouterr().out
