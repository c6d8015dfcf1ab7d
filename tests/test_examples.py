"""The demos beside the main job, run end to end on the embedded synthetic data (no data root)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _run(tmp_path, script: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "GRAPHUNLEARN_DATA": str(tmp_path / "empty-data-root")}
    run = subprocess.run([sys.executable, str(REPO / "examples" / script), *args], capture_output=True, text=True,
                         timeout=600, env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    return run


@pytest.mark.slow
def test_node_unlearning_demo(tmp_path):
    run = _run(tmp_path, "node_unlearning_demo.py", "--epochs", "40", "--no-progress", "--out", str(tmp_path / "o"))
    assert "synthetic SBM graph" in run.stdout and "mia_auroc" in run.stdout
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    assert set(report["rows"]) == {"gold (retrain)", "unlink", "finetune", "d2dgn"}
    assert report["rows"]["unlink"]["mia_auroc"] == pytest.approx(0.5)  # unchanged weights: nothing to see
    assert report["meta"]["deleted_nodes"] > 0 and (tmp_path / "o" / "report.png").stat().st_size > 1000


@pytest.mark.slow
def test_licence_revocation_demo(tmp_path):
    run = _run(tmp_path, "licence_revocation_demo.py", "--epochs", "10", "--no-progress", "--out",
               str(tmp_path / "o"))
    assert "synthetic user-item graph" in run.stdout and "licence revoked for 'group 0'" in run.stdout
    rows = json.loads((tmp_path / "o" / "report.json").read_text())["rows"]
    assert set(rows) == {"original", "gold (retrain)", "unlink", "reverse_bpr"}
    assert rows["gold (retrain)"]["gap_test_kl"] == pytest.approx(0.0, abs=1e-9)
    assert rows["reverse_bpr"]["forget_recall@20"] <= rows["original"]["forget_recall@20"]


@pytest.mark.slow
def test_pyg_training_loop(tmp_path):
    run = _run(tmp_path, "pyg_training_loop.py", "--epochs", "20")
    assert "request 0: nodes" in run.stdout and "live view vs rebuilt graph: max |diff|" in run.stdout


@pytest.mark.slow
def test_bring_your_own_model(tmp_path):
    run = _run(tmp_path, "bring_your_own_model.py", "--epochs", "20")
    assert "gold (your loop)" in run.stdout and "gnndelete" in run.stdout
    assert "reloaded GNNDelete model gives identical outputs: True" in run.stdout
