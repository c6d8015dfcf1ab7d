"""Data-parallel training and unlearning with two CPU processes (gloo), launched by torchrun.

The scenarios live in ``worker.py`` (each rank writes its findings as JSON); the single-process reference
runs the same scenario in this process. On this project's 2-core machine a launch costs about 15 s.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import graphunlearn as gu
from graphunlearn import distributed as dist

from . import worker

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
#: how far the 2-process job may land from one process, in AUROC points: each of its steps sees twice the
#: units (batch_size is per rank) with other negatives, so the runs differ by about what two seeds do
TOLERANCE = 0.03


def _torchrun(args: list[str], timeout: float = 240, extra_env: dict | None = None,
              module: bool = False, launcher: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO), **(extra_env or {})}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", *launcher,
           *(["-m"] if module else []), *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, cwd=REPO)


def _read(out: Path, scenario: str) -> list[dict]:
    return [json.loads((out / f"{scenario}-rank{r}.json").read_text()) for r in range(2)]


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    """One torchrun launch of the train, unlearn, store and mismatch scenarios; their per-rank JSON."""
    out = tmp_path_factory.mktemp("ddp")
    split = worker._link_setup()
    gu.GraphStore(split.train_data).save(out / "saved-store")
    proc = _torchrun([str(HERE / "worker.py"), "train,unlearn,tasks,buffers,store,mismatch", str(out)])
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out


def test_training_is_data_parallel_and_matches_one_process(two_ranks, tmp_path):
    r0, r1 = _read(two_ranks, "train")
    assert r0["weights"] == r1["weights"]  # DDP kept the replicas identical
    assert r0["history"] == r1["history"] and r0["best_epoch"] == r1["best_epoch"]  # same selection everywhere
    assert (r0["saves"], r1["saves"]) == (1, 0) and r0["checkpoint_exists"]  # rank 0 alone writes
    torch.set_num_threads(1)
    single = worker.scenario_train(tmp_path, True)
    assert abs(r0["test_auroc"] - single["test_auroc"]) <= TOLERANCE, (r0["test_auroc"], single["test_auroc"])
    assert r0["test_auroc"] > 0.75


def test_unlearning_is_data_parallel_and_the_result_is_the_same_on_every_rank(two_ranks, tmp_path):
    r0, r1 = _read(two_ranks, "unlearn")
    assert r0["state_hash"] == r1["state_hash"] and r0["request"] == r1["request"] == 0
    for key in ("weights", "seconds", "tag", "info_epochs", "computation", "dt_auroc", "df_auroc",
                "certificate_id", "forgotten"):
        assert r0[key] == r1[key], key
    assert r0["computation"] == "sampled [10, 10]" and r0["forgotten"] == [0]
    single = worker.scenario_unlearn(tmp_path, True)
    assert abs(r0["dt_auroc"] - single["dt_auroc"]) <= TOLERANCE, (r0["dt_auroc"], single["dt_auroc"])
    assert abs(r0["df_auroc"] - single["df_auroc"]) <= 2 * TOLERANCE, (r0["df_auroc"], single["df_auroc"])


def test_every_task_and_method_keeps_the_replicas_identical(two_ranks):
    r0, r1 = _read(two_ranks, "tasks")
    assert set(r0) == {"node", "node/d2dgn", "node/finetune", "node/gnndelete", "node/heldout_distill", "rec",
                       "rec/reverse_bpr", "rec/sampled/reverse_bpr", "link", "link/d2dgn", "link/finetune",
                       "link/gradient_ascent", "link/gnndelete", "link/gnndelete+cal", "link/sampled/gnndelete",
                       "link/sampled/d2dgn", "link/sampled/gnndelete+cal"}
    assert r0["link/sampled/d2dgn"][1] == r0["link/sampled/gnndelete"][1] == "sampled [5, 5]"
    assert r0 == r1  # calibrated d2dgn and gnndelete included: rank 0's stop decision is every rank's


def test_buffers_and_errors_of_the_computation_stay_what_they_are(two_ranks):
    r0, r1 = _read(two_ranks, "buffers")
    assert r0["weights"] == r1["weights"]  # BatchNorm's running statistics included (weight_hash: state dict)
    assert r0["moved"]  # the running statistics did move: the check compares trained buffers
    for r in (r0, r1):  # an error of the computation keeps its type: it is not reported as a dead rank
        assert r["error"] == "RuntimeError" and "does not require grad" in r["message"]


def test_requests_are_journaled_once_and_broadcast(two_ranks):
    r0, r1 = _read(two_ranks, "store")
    assert (r0["read_only"], r0["journaled"]) == (False, True)  # rank 0 writes the journal
    assert (r1["read_only"], r1["journaled"]) == (True, False)  # the others apply what rank 0 sends
    assert r0["state_hash"] == r1["state_hash"] and r0["live_edges"] == r1["live_edges"]
    assert r0["request"] == r1["request"] == 0 and r0["on_disk_requests"] == 1


def test_a_store_mismatch_stops_every_rank_with_a_clear_error(two_ranks):
    for r in _read(two_ranks, "mismatch"):
        assert r["error"] == "StoreMismatchError"
        assert "rank(s) [1]" in r["message"] and "broadcast_request" in r["message"]


def test_a_rank_that_dies_makes_the_others_fail_instead_of_hanging(tmp_path):
    # the agent looks at its workers every 10 s (default 0.1 s), so on a loaded machine it does not stop rank 0
    # between rank 1's death and rank 0's report; the report's own clock is what the test reads
    proc = _torchrun([str(HERE / "worker.py"), "die", str(tmp_path)], timeout=120,
                     extra_env={"GU_TEST_TIMEOUT": "30"}, launcher=("--monitor-interval=10",))
    assert proc.returncode != 0  # the job fails
    # rank 0 reports within seconds of rank 1's death (gloo sees the connection close), well before the
    # 30-second timeout its collectives run under
    r0 = json.loads((tmp_path / "die-rank0.json").read_text())
    assert r0["error"] == "DistributedError", r0
    assert "rank 0 of 2" in r0["message"] and "died" in r0["message"]
    assert r0["seconds"] < 30
    assert not (tmp_path / "die-rank1.json").exists()


@pytest.mark.slow
def test_cli_train_and_unlearn_under_torchrun(tmp_path):
    run = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "-m", "graphunlearn.cli", "split", "--dataset", "synthetic", "--run", str(run)],
                   check=True, env=env, capture_output=True)
    proc = _torchrun(["graphunlearn.cli", "train", "--run-dir", str(run), "--epochs", "4", "--batch-size", "256",
                      "--num-neighbors", "10,10", "--steps-per-epoch", "4", "--quiet"], module=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("trained gcn on 2 processes") == 1  # rank 0 speaks for the job
    subprocess.run([sys.executable, "-m", "graphunlearn.cli", "delete", "--run", str(run), "--fraction", "0.02"],
                   check=True, env=env, capture_output=True)
    proc = _torchrun(["graphunlearn.cli", "unlearn", "--run-dir", str(run), "--request", "0", "--quiet"], module=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (run / "d2dgn-r0.pt").is_file() and (run / "d2dgn-r0.cert.json").is_file()
    verify = subprocess.run([sys.executable, "-m", "graphunlearn.cli", "verify", str(run / "d2dgn-r0.cert.json"),
                             "--run", str(run)], env=env, capture_output=True, text=True)
    assert verify.returncode == 0, verify.stdout + verify.stderr


def test_commands_that_write_alone_refuse_torchrun(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("WORLD_SIZE", "2")
    from graphunlearn.cli import main

    assert main(["delete", "--run", str(tmp_path), "--fraction", "0.1"]) == 2
    assert "runs in one process" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------- one process
def test_without_a_process_group_everything_is_a_no_op():
    assert not dist.is_active() and dist.rank() == 0 and dist.world_size() == 1 and dist.is_main()
    assert dist.rank_seed(7) == 7 and dist.all_reduce_mean(0.25, "x") == 0.25 and dist.broadcast_object(3, "x") == 3
    store = gu.GraphStore(gu.datasets.load("synthetic", num_nodes=50, avg_degree=4, seed=0))
    assert dist.replicate(store) is store and dist.check_store(store) == store.state_hash(uid=False)


def test_shard_splits_a_batch_disjointly_and_completely():
    batch = torch.arange(11)
    parts = [dist.shard(batch, r, 3) for r in range(3)]
    assert sorted(torch.cat(parts).tolist()) == list(range(11))
    assert max(p.numel() for p in parts) - min(p.numel() for p in parts) <= 1
    pairs = torch.arange(14).view(2, 7)
    assert torch.equal(dist.shard(pairs, 1, 2), pairs[:, 1::2]) and dist.shard(None, 0, 2) is None


def test_init_outside_torchrun_says_how_to_launch(monkeypatch):
    for key in dist.LAUNCH_ENV:
        monkeypatch.delenv(key, raising=False)
    with pytest.raises(RuntimeError, match="torchrun"):
        dist.init()


def test_the_content_hash_ignores_the_uid_but_not_the_masks():
    data = gu.datasets.load("synthetic", num_nodes=50, avg_degree=4, seed=0)
    a, b = gu.GraphStore(data), gu.GraphStore(data)
    assert a.state_hash() != b.state_hash() and a.state_hash(uid=False) == b.state_hash(uid=False)
    b.delete_edges(torch.tensor([0]))
    assert a.state_hash(uid=False) != b.state_hash(uid=False)
