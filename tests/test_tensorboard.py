"""TensorBoard logging with `train.tensorboard = true`."""

from __future__ import annotations

import builtins

import pytest
from helpers import char_recipe, train_recipe, write_recipe

from seqkit.errors import RecipeError, SeqkitError
from seqkit.monitor import TensorBoardMonitor
from seqkit.run import check_recipe, load_recipe

pytest.importorskip("tensorboard")
from tensorboard.backend.event_processing.event_accumulator import (  # noqa: E402
    EventAccumulator,
)


def block_tensorboard_import(monkeypatch) -> None:
    """Make importing torch.utils.tensorboard fail, as without the package."""
    real_import = builtins.__import__

    def fail_tensorboard_import(name, *args, **kwargs):
        if name.startswith("torch.utils.tensorboard"):
            raise ImportError("No module named 'tensorboard'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fail_tensorboard_import)


def read_events(folder) -> EventAccumulator:
    events = EventAccumulator(str(folder))
    events.Reload()
    return events


def scalar_steps(events: EventAccumulator, tag: str) -> list[int]:
    return [event.step for event in events.Scalars(tag)]


def test_run_writes_losses_rate_metrics_and_samples(tmp_path):
    path = write_recipe(tmp_path, char_recipe(train={"tensorboard": True}))
    metrics = train_recipe(path, tmp_path / "run")

    events = read_events(tmp_path / "run" / "tensorboard")

    assert scalar_steps(events, "train/loss") == [1, 2, 3, 4, 5, 6]
    assert scalar_steps(events, "train/lr") == [1, 2, 3, 4, 5, 6]
    assert scalar_steps(events, "valid/loss") == [3, 6]
    test_bpc = events.Scalars("test/bpc")
    assert [event.step for event in test_bpc] == [6]
    assert test_bpc[0].value == pytest.approx(metrics["test_bpc"], rel=1e-6)
    samples = events.Tensors("samples/text_summary")[0].tensor_proto.string_val[0]
    assert samples.decode().lstrip().startswith("MACBETH:")


def test_resumed_run_drops_the_events_after_its_checkpoint(tmp_path):
    # A run saved at step 3 goes on to step 5 and crashes, leaving last.pt of
    # step 3: resuming from it rewrites steps 4 and 5 instead of repeating them.
    path = write_recipe(tmp_path, char_recipe(train={"tensorboard": True}))
    run_dir = tmp_path / "run"
    train_recipe(path, run_dir, stop_at=3)
    saved = (run_dir / "last.pt").read_bytes()
    train_recipe(path, run_dir, resume=True, stop_at=5)
    (run_dir / "last.pt").write_bytes(saved)
    train_recipe(path, run_dir, resume=True)

    events = read_events(run_dir / "tensorboard")

    assert scalar_steps(events, "train/loss") == [1, 2, 3, 4, 5, 6]


def test_file_in_place_of_log_folder_is_named(tmp_path):
    (tmp_path / "tensorboard").write_text("not a folder")

    with pytest.raises(SeqkitError) as caught:
        TensorBoardMonitor(tmp_path / "tensorboard")

    assert str(caught.value) == (
        f"cannot write TensorBoard logs to {tmp_path / 'tensorboard'}: File exists; "
        "move that path out of the way"
    )


def test_check_names_a_missing_package(tmp_path, monkeypatch):
    path = write_recipe(tmp_path, char_recipe(train={"tensorboard": True}))
    block_tensorboard_import(monkeypatch)
    recipe, registry = load_recipe(path)

    with pytest.raises(RecipeError, match="needs the tensorboard package"):
        check_recipe(recipe, registry, load_data=False)


def test_missing_package_is_a_recipe_error(tmp_path, monkeypatch):
    block_tensorboard_import(monkeypatch)

    with pytest.raises(RecipeError) as caught:
        TensorBoardMonitor(tmp_path)
    assert str(caught.value) == (
        "`train.tensorboard`: true needs the tensorboard package, which is not "
        "installed; install it with `pip install tensorboard`, or set it to false"
    )
