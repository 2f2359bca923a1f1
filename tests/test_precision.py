"""`train.precision = "bf16"` and `train.compile = true` against the defaults.

Both train the character LSTM of helpers.CHAR_RECIPE, without dropout, for 6
steps. bfloat16 keeps 8 bits of mantissa, so its losses may drift from
float32's by a few thousandths. Compiled code runs the same operations in
float32, so its losses stay within 1e-4 of eager ones.
"""

from __future__ import annotations

import pytest
import torch
from helpers import char_recipe, train_recipe, write_recipe

from seqkit.checkpoint import load_checkpoint
from seqkit.training import LAST

BF16_TOLERANCE = 0.01
COMPILE_TOLERANCE = 1e-4


def train_losses(tmp_path, name: str, **train) -> list[float]:
    table = char_recipe(decoder={"dropout": 0.0}, train=train)
    path = write_recipe(tmp_path / name, table)
    metrics = train_recipe(path, tmp_path / name / "run")
    history = load_checkpoint(tmp_path / name / "run" / LAST)["train_state"]["history"]
    return [*history["loss"], *history["val_loss"], metrics["test_loss"]]


@pytest.fixture(scope="module")
def default_losses(tmp_path_factory) -> list[float]:
    return train_losses(tmp_path_factory.mktemp("fp32"), "fp32")


def test_bf16_losses_stay_near_float32(tmp_path, default_losses):
    losses = train_losses(tmp_path, "bf16", precision="bf16")

    assert losses == pytest.approx(default_losses, abs=BF16_TOLERANCE)
    # Autocast took effect: the matrix products ran in bfloat16.
    assert losses != default_losses


def test_bf16_weights_stay_float32(tmp_path):
    train_losses(tmp_path, "bf16", precision="bf16")

    weights = load_checkpoint(tmp_path / "bf16" / "run" / LAST)["model"]
    assert {tensor.dtype for tensor in weights.values()} == {torch.float32}


def test_compiled_losses_match_eager(tmp_path, default_losses):
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()

    losses = train_losses(tmp_path, "compiled", compile=True)

    assert losses == pytest.approx(default_losses, abs=COMPILE_TOLERANCE)
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] >= 1
    # Compiled in place: the checkpoint's parameter names are the eager ones.
    weights = load_checkpoint(tmp_path / "compiled" / "run" / LAST)["model"]
    assert not any("_orig_mod" in name for name in weights)
