"""The unlearning benchmark runner on its smoke configuration: outputs, the gold row, and the cell cache."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_smoke_run_and_resume(tmp_path):
    env = {**os.environ, "GRAPHUNLEARN_DATA": str(tmp_path / "no-data")}
    cmd = [sys.executable, str(REPO / "benchmarks" / "run_unlearning.py"), "--config", "smoke", "--out",
           str(tmp_path / "out"), "--no-progress"]
    first = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert first.returncode == 0, first.stderr[-3000:]
    rows = list(csv.DictReader((tmp_path / "out" / "results.csv").open()))
    assert {r["method"] for r in rows} == {"retrain", "unlink", "d2dgn", "gnndelete"}
    table = (tmp_path / "out" / "results.md").read_text()
    assert "gold (retrain)" in table and "torch" in table and "+-" in table
    assert (tmp_path / "out" / "utility_vs_forgetting_and_time.png").stat().st_size > 1000
    second = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert second.returncode == 0 and "cached" in second.stdout  # a finished cell is not recomputed
    assert list(csv.DictReader((tmp_path / "out" / "results.csv").open())) == rows
