"""Training in two CPU processes with DistributedDataParallel over gloo.

Each test starts real processes through torchrun, as `seqkit run --nproc 2`
does, and compares them with one process training on the same global batches.
Dropout is off, so the two differ only in the order of floating-point sums:
losses agree within 1e-5.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from helpers import char_recipe, train_recipe, write_recipe
from test_classification import recipe_table

from seqkit.checkpoint import load_checkpoint
from seqkit.distributed import Shard, check_batch_size, shard_from_environment
from seqkit.errors import RecipeError
from seqkit.training import LAST

TOLERANCE = 1e-5

# Resumes a run in the same processes after stopping it at step 3.
RESUME_SCRIPT = """\
import sys

from seqkit.run import load_recipe, train

recipe_path, run_dir = sys.argv[1], sys.argv[2]
train(*load_recipe(recipe_path), run_dir, stop_at=3)
print("stopped", flush=True)
train(*load_recipe(recipe_path), run_dir, resume=True)
"""


def seqkit_command(*arguments: str, cwd: Path) -> subprocess.CompletedProcess:
    environment = {
        key: value
        for key, value in os.environ.items()
        if key not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")
    }
    return subprocess.run(
        [sys.executable, "-m", "seqkit", *arguments],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )


def losses(run_dir: Path) -> tuple[list[float], list[float]]:
    history = load_checkpoint(run_dir / LAST)["train_state"]["history"]
    return history["loss"], history["val_loss"]


def assert_same_training(one: Path, two: Path) -> None:
    one_loss, one_val = losses(one)
    two_loss, two_val = losses(two)
    assert len(one_loss) == len(two_loss)
    assert two_loss == pytest.approx(one_loss, abs=TOLERANCE)
    assert two_val == pytest.approx(one_val, abs=TOLERANCE)
    one_metrics = json.loads((one / "metrics.json").read_text())
    two_metrics = json.loads((two / "metrics.json").read_text())
    assert two_metrics.keys() == one_metrics.keys()
    for key, value in one_metrics.items():
        assert two_metrics[key] == pytest.approx(value, abs=TOLERANCE), key


def test_language_model_in_two_processes_matches_one(tmp_path):
    # 12 steps of 8 windows: each process trains on 4 windows of every batch.
    table = char_recipe(
        decoder={"dropout": 0.0},
        train={"max_steps": 12, "batch_size": 8, "eval_every": 4},
    )
    path = write_recipe(tmp_path, table)
    train_recipe(path, tmp_path / "one")

    done = seqkit_command(
        "run", str(path), "--out", "two", "--nproc", "2", cwd=tmp_path
    )

    assert done.returncode == 0, done.stderr
    assert_same_training(tmp_path / "one", tmp_path / "two")
    # Only rank 0 logs and writes: one log line per validation, and the
    # files of a single process's run.
    log = (tmp_path / "two" / "train.log").read_text()
    assert log.count("validation at step 4 ") == 1
    assert "in 2 processes" in log
    written = {p.name for p in (tmp_path / "two").iterdir()}
    assert written == {p.name for p in (tmp_path / "one").iterdir()} | {"train.log"}


def test_classification_resumed_in_two_processes_matches_one(tmp_path):
    # Map-style data: 6 steps of 10 lines, 5 per process; stopped after step 3
    # and resumed by the same two processes.
    table = recipe_table(
        encoder={"dropout": 0.0}, decoder={"dropout": 0.0}, train={"threads": 1}
    )
    path = write_recipe(tmp_path, table)
    train_recipe(path, tmp_path / "one")
    script = tmp_path / "resume.py"
    script.write_text(RESUME_SCRIPT, encoding="utf-8")

    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc-per-node=2",
            str(script),
            str(path),
            str(tmp_path / "two"),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert done.returncode == 0, done.stderr
    assert done.stdout.count("stopped") == 2
    assert_same_training(tmp_path / "one", tmp_path / "two")
    # The checkpoint keeps each process's random state for the resume.
    assert len(load_checkpoint(tmp_path / "two" / LAST)["rng"]["ranks"]) == 2


def test_last_batch_smaller_than_process_count_trains(tmp_path):
    # 151 windows in batches of 2: the epoch's last batch has one window,
    # which both processes train on, as DistributedSampler pads a short list.
    table = char_recipe(train={"batch_size": 2, "eval_every": 0})
    del table["train"]["max_steps"]
    path = write_recipe(tmp_path, table)

    done = seqkit_command("run", str(path), "--nproc", "2", cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    log = (tmp_path / "runs" / "recipe" / "train.log").read_text()
    assert "training for 76 steps (76 per epoch, batch 2)" in log
    assert "step 76/76" in log


def test_interrupting_the_launcher_stops_every_process(tmp_path):
    # Ctrl-C sent to `seqkit run --nproc 2` alone, not to its process group.
    table = char_recipe(
        train={"max_steps": 100_000, "epochs": 10_000, "checkpoint_every": 5}
    )
    path = write_recipe(tmp_path, table)
    last = tmp_path / "runs" / "recipe" / LAST
    launcher = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "seqkit",
            "run",
            str(path),
            "--nproc",
            "2",
            "--set",
            "train.log_every=7",
        ],
        cwd=tmp_path,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 90
    while not last.exists() and time.monotonic() < deadline:
        time.sleep(0.5)

    launcher.send_signal(signal.SIGINT)
    _, stderr = launcher.communicate(timeout=60)
    saved = last.stat().st_mtime_ns
    time.sleep(3)

    assert launcher.returncode == 130
    assert last.stat().st_mtime_ns == saved
    assert (
        f"continue with `seqkit run {path} --resume --out runs/recipe --set "
        "train.log_every=7 --nproc 2`" in stderr
    )
    assert stderr.count("error: interrupted") == 1


def test_short_batches_are_padded_like_distributed_sampler():
    rows = torch.arange(10, 13)  # (3,)

    shares = [Shard(rank, 2).rows(rows).tolist() for rank in range(2)]

    assert shares == [[10, 12], [11, 10]]


def test_uneven_batch_rejected_before_launch(tmp_path):
    path = write_recipe(tmp_path, char_recipe(train={"batch_size": 5}))

    done = seqkit_command("run", str(path), "--nproc", "2", cwd=tmp_path)

    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == (
        f"error: {path}: `train.batch_size`: batch_size 5 does not split evenly "
        "over 2 processes; use a multiple of 2"
    )
    assert not (tmp_path / "runs").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_shared_fault_reported_once_before_launch(tmp_path):
    path = write_recipe(tmp_path, char_recipe(train={"device": "cuda"}))

    done = seqkit_command("run", str(path), "--nproc", "2", cwd=tmp_path)

    assert done.returncode == 2
    assert done.stderr.count("error:") == 1
    assert 'device "cuda" requested but torch finds no CUDA device' in done.stderr
    assert not (tmp_path / "runs").exists()


def test_nproc_below_one_is_refused(tmp_path):
    path = write_recipe(tmp_path, char_recipe())

    done = seqkit_command("run", str(path), "--nproc", "0", cwd=tmp_path)

    assert done.returncode == 2
    assert done.stderr.strip() == "error: --nproc must be 1 or more, got 0"


def test_rank_comes_from_torchrun_environment(monkeypatch):
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "1")

    shard = shard_from_environment()

    assert shard == Shard(rank=1, world_size=4, local_rank=1)
    assert not shard.is_main
    # Rows 1, 5 of a global batch of 8: torch's DistributedSampler split.
    assert shard.rows(torch.arange(8)).tolist() == [1, 5]
    assert [n for n in range(8) if shard.owns(n)] == [1, 5]


def test_check_batch_size_names_the_key():
    check_batch_size(8, Shard(0, 4))
    with pytest.raises(RecipeError) as caught:
        check_batch_size(6, Shard(0, 4))
    assert caught.value.key == "train.batch_size"
