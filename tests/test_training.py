"""The training loop: resume, determinism, the schedule, NaN losses, early stopping."""

from __future__ import annotations

import json
import logging
import math
import re

import pytest
import torch
from helpers import CHAR_RECIPE, char_recipe, train_recipe, write_recipe
from seqkit_builtins.language_model import LanguageModelTask

from seqkit import training
from seqkit.errors import RecipeError, SeqkitError, TrainingError
from seqkit.interfaces import EvalResult
from seqkit.recipe import TrainOptions
from seqkit.run import load_recipe, load_run, train
from seqkit.training import lr_factor


def read(run_dir, name="last.pt"):
    return torch.load(run_dir / name, weights_only=True)


def assert_same_tensors(first: dict, second: dict):
    assert first.keys() == second.keys()
    for key in first:
        assert torch.equal(first[key], second[key]), key


@pytest.mark.parametrize(
    "stop_at", [3, 4], ids=["at-validation", "between-validations"]
)
def test_resume_equals_uninterrupted(tmp_path, char_run, stop_at):
    # char_run trained CHAR_RECIPE (6 steps, dropout 0.2) without a break.
    path = write_recipe(tmp_path / "recipe", CHAR_RECIPE)
    run_dir = tmp_path / "run"
    recipe, registry = load_recipe(path)

    interrupted = train(recipe, registry, run_dir, stop_at=stop_at)

    assert interrupted == {}
    assert not (run_dir / "metrics.json").exists()
    assert read(run_dir)["train_state"]["step"] == stop_at

    metrics = train(recipe, registry, run_dir, resume=True)

    resumed, reference = read(run_dir), read(char_run)
    assert resumed["train_state"]["step"] == 6
    assert resumed["train_state"]["history"] == reference["train_state"]["history"]
    assert_same_tensors(resumed["model"], reference["model"])
    assert_same_tensors(
        read(run_dir, "checkpoint.pt")["model"],
        read(char_run, "checkpoint.pt")["model"],
    )
    assert (
        resumed["optimizer"]["param_groups"] == reference["optimizer"]["param_groups"]
    )
    for state, expected in zip(
        resumed["optimizer"]["state"].values(),
        reference["optimizer"]["state"].values(),
        strict=True,
    ):
        assert_same_tensors(state, expected)
    assert metrics == json.loads(
        (char_run / "metrics.json").read_text(encoding="utf-8")
    )
    assert (run_dir / "samples.txt").read_text() == (
        char_run / "samples.txt"
    ).read_text()


def test_history_records_each_step(char_run):
    history = read(char_run)["train_state"]["history"]

    assert history["step"] == [1, 2, 3, 4, 5, 6]
    assert len(history["loss"]) == 6
    assert all(math.isfinite(loss) for loss in history["loss"])
    assert history["val_step"] == [3, 6]
    # Cosine decay over 6 steps from train.lr = 0.002, without warm-up.
    expected = [0.002 * 0.5 * (1 + math.cos(math.pi * step / 6)) for step in range(6)]
    assert history["lr"] == pytest.approx(expected, rel=1e-12)


def test_seeded_runs_deterministic(tmp_path, char_run):
    path = write_recipe(tmp_path, CHAR_RECIPE)

    train_recipe(path, tmp_path / "same")
    train_recipe(path, tmp_path / "other", ["train.seed=4"])

    assert_same_tensors(read(tmp_path / "same")["model"], read(char_run)["model"])
    other = read(tmp_path / "other")["model"]
    assert not torch.equal(
        other["decoder.output.weight"], read(char_run)["model"]["decoder.output.weight"]
    )


def test_resume_rejects_changed_model(tmp_path):
    path = write_recipe(tmp_path, CHAR_RECIPE)
    train_recipe(path, tmp_path / "run", stop_at=1)
    recipe, registry = load_recipe(path, ["decoder.hidden_size=12"])

    with pytest.raises(RecipeError) as caught:
        train(recipe, registry, tmp_path / "run", resume=True)

    assert "section [decoder] differs from the one stored in" in str(caught.value)
    assert "last.pt" in str(caught.value)


def test_resume_rejects_changed_lr(tmp_path):
    path = write_recipe(tmp_path, CHAR_RECIPE)
    train_recipe(path, tmp_path / "run", stop_at=1)
    recipe, registry = load_recipe(path, ["train.lr=0.1"])

    with pytest.raises(RecipeError) as caught:
        train(recipe, registry, tmp_path / "run", resume=True)

    assert "resuming cannot change lr 0.002 -> 0.1" in str(caught.value)


def test_resume_accepts_longer_max_steps(tmp_path):
    path = write_recipe(tmp_path, CHAR_RECIPE)
    train_recipe(path, tmp_path / "run", stop_at=2)
    recipe, registry = load_recipe(path, ["train.max_steps=8"])

    train(recipe, registry, tmp_path / "run", resume=True)

    history = load_run(tmp_path / "run")
    assert (tmp_path / "run" / "metrics.json").is_file()
    assert history.recipe.train.max_steps == 8


def test_resume_past_new_end_warns(tmp_path):
    path = write_recipe(tmp_path, CHAR_RECIPE)
    train_recipe(path, tmp_path / "run", stop_at=4)
    recipe, registry = load_recipe(path, ["train.max_steps=3"])
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logger = logging.getLogger("seqkit.training")
    logger.addHandler(handler)
    try:
        train(recipe, registry, tmp_path / "run", resume=True)
    finally:
        logger.removeHandler(handler)

    warnings = [r.getMessage() for r in records if r.levelno == logging.WARNING]
    assert warnings == [
        "the run is already at step 4, and train.epochs and train.max_steps now "
        "end training at step 3; nothing is trained. Raise them to train further"
    ]


def test_new_run_refuses_used_folder(tmp_path, char_run):
    path = write_recipe(tmp_path, CHAR_RECIPE)
    recipe, registry = load_recipe(path)

    with pytest.raises(SeqkitError, match="already contains a run"):
        train(recipe, registry, char_run)


def test_nan_loss_stops_and_keeps_best(tmp_path, monkeypatch):
    path = write_recipe(tmp_path, char_recipe(train={"eval_every": 2}))
    best_path = tmp_path / "run" / "checkpoint.pt"
    real_loss = LanguageModelTask.loss
    calls = []
    best_before_nan = []

    def loss_turning_nan(self, model, batch):
        calls.append(1)
        loss, tokens = real_loss(self, model, batch)
        if len(calls) < 5:
            return loss, tokens
        best_before_nan.append(best_path.read_bytes())
        return loss * math.nan, tokens

    monkeypatch.setattr(LanguageModelTask, "loss", loss_turning_nan)

    with pytest.raises(TrainingError) as caught:
        train_recipe(path, tmp_path / "run")

    message = str(caught.value)
    assert message.startswith("training loss became nan at step 5;")
    assert str(best_path) in message
    assert len(calls) == 5
    assert best_path.read_bytes() == best_before_nan[0]
    best = read(tmp_path / "run", "checkpoint.pt")
    assert best["train_state"]["step"] in (2, 4)
    assert all(torch.isfinite(tensor).all() for tensor in best["model"].values())
    assert not (tmp_path / "run" / "metrics.json").exists()


def test_nan_loss_without_checkpoint_message(tmp_path):
    table = char_recipe(
        train={"lr": 1e30, "clip": 0.0, "optimizer": "sgd", "max_steps": 20}
    )
    path = write_recipe(tmp_path, table)

    with pytest.raises(TrainingError) as caught:
        train_recipe(path, tmp_path / "run")

    assert re.fullmatch(
        r"training loss became (nan|inf) at step \d+; training stopped and no "
        r"checkpoint was saved\. Lower train\.lr or set train\.clip, and check "
        r"that the input data and any loaded weights are finite numbers",
        str(caught.value),
    )
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


def test_huge_lr_stops_with_training_error(tmp_path):
    table = char_recipe(
        train={
            "lr": 1e30,
            "clip": 0.0,
            "optimizer": "sgd",
            "max_steps": 20,
            "eval_every": 1,
        }
    )
    path = write_recipe(tmp_path, table)

    with pytest.raises(TrainingError, match="training loss became (nan|inf) at step"):
        train_recipe(path, tmp_path / "run")

    best = read(tmp_path / "run", "checkpoint.pt")
    assert best["train_state"]["step"] == 1
    assert all(torch.isfinite(tensor).all() for tensor in best["model"].values())


def test_early_stopping_keeps_best(tmp_path, monkeypatch):
    path = write_recipe(
        tmp_path, char_recipe(train={"eval_every": 1, "patience": 2, "max_steps": 10})
    )
    losses = iter([3.0, 2.0, 2.5, 2.6, 1.0])
    real_evaluate = LanguageModelTask.evaluate

    def scripted_evaluate(self, model, split, max_batches=None, decode=True):
        if split == "valid":
            return EvalResult(loss=next(losses), tokens=1, level="char")
        return real_evaluate(self, model, split, max_batches, decode)

    monkeypatch.setattr(LanguageModelTask, "evaluate", scripted_evaluate)

    metrics = train_recipe(path, tmp_path / "run")

    last = read(tmp_path / "run")["train_state"]
    best = read(tmp_path / "run", "checkpoint.pt")["train_state"]
    assert last["step"] == 4
    assert last["history"]["val_loss"] == [3.0, 2.0, 2.5, 2.6]
    assert last["best_step"] == 2
    assert last["stale_evaluations"] == 2
    assert best["step"] == 2
    assert metrics["val_loss"] == 2.0


@pytest.mark.parametrize(
    ("schedule", "warmup", "step", "expected"),
    [
        ("constant", 0, 0, 1.0),
        ("constant", 0, 9, 1.0),
        ("constant", 4, 0, 0.25),
        ("constant", 4, 3, 1.0),
        ("cosine", 0, 0, 1.0),
        ("cosine", 0, 5, 0.5),
        ("cosine", 0, 10, 0.0),
        ("cosine", 2, 1, 1.0),
        ("cosine", 2, 6, 0.5),
        ("linear", 0, 5, 0.5),
        ("linear", 0, 10, 0.0),
        ("linear", 2, 6, 0.5),
    ],
)
def test_lr_factor(schedule, warmup, step, expected):
    options = TrainOptions(schedule=schedule, warmup_steps=warmup)

    assert lr_factor(step, 10, options) == pytest.approx(expected, abs=1e-12)


def test_max_steps_caps_total(tmp_path):
    path = write_recipe(tmp_path, char_recipe(train={"max_steps": 2, "eval_every": 0}))

    train_recipe(path, tmp_path / "run")

    state = read(tmp_path / "run")["train_state"]
    assert state["step"] == 2
    # eval_every = 0 validates once per epoch, and always after the last step.
    assert state["history"]["val_step"] == [2]


def test_epochs_without_max_steps(tmp_path):
    # 3,000 characters give about 2,400 training characters, so with seq_len
    # 400 and batch 4 one epoch is 2 steps.
    table = char_recipe(train={"epochs": 2, "seq_len": 400, "eval_every": 0})
    del table["train"]["max_steps"]
    path = write_recipe(tmp_path, table)

    train_recipe(path, tmp_path / "run")

    state = read(tmp_path / "run")["train_state"]
    assert state["step"] == 4
    assert state["history"]["val_step"] == [2, 4]


def test_metrics_val_loss_covers_whole_split(tmp_path):
    # Validation during training may stop after eval_batches windows, but
    # metrics.json reports the loss on the whole validation split.
    path = write_recipe(tmp_path, char_recipe(train={"eval_batches": 1}))

    metrics = train_recipe(path, tmp_path / "run")

    built = load_run(tmp_path / "run", load_data=True)
    capped = read(tmp_path / "run", "checkpoint.pt")["train_state"]["best_loss"]
    assert metrics["val_loss"] == built.task.evaluate(built.model, "valid").loss
    assert metrics["val_loss"] != capped


def test_checkpoint_every_writes_last(tmp_path, monkeypatch):
    saved = []
    real_save = training.save_checkpoint

    def record(payload, path):
        saved.append((payload["train_state"]["step"], path.name))
        real_save(payload, path)

    monkeypatch.setattr(training, "save_checkpoint", record)
    table = char_recipe(train={"eval_every": 5, "checkpoint_every": 2})
    train_recipe(write_recipe(tmp_path, table), tmp_path / "run")

    last_steps = [step for step, name in saved if name == "last.pt"]
    assert last_steps[:4] == [2, 4, 5, 6]
