"""Achieved GFLOP/s of the chargen LSTM's training step, against torch.matmul.

The FLOPs of one training step are counted from the recipe's shape. B is the
batch, T the window length, E the embedding size, H the hidden size and V the
vocabulary size. I_l is the input size of LSTM layer l: E for the first layer
and H above it.

    forward = B * T * (sum over layers of 8 * H * (I_l + H)  +  2 * H * V)
    step    = 3 * forward

Per token, each layer's four gates are one product of the (I_l + H) input and
state with a (I_l + H) x 4H weight matrix. The output layer is one product
with H x V. Each multiply-add counts as 2 FLOPs. The backward pass computes two
products of the same size for each forward product (the gradients of its
input and of its weights), hence the factor 3. The gate nonlinearities,
cross-entropy, gradient clipping and AdamW are left out, so the count is a
lower bound of the work done.

The reference is torch.matmul in the same process on the same device, between
the training steps: the LSTM's recurrent product of one time step,
(B, H) @ (H, 4H), which its forward pass runs T times one after another, and
the same product over all T steps at once, (B * T, H) @ (H, 4H), which the
recurrence prevents. Each training step runs through `Trainer.fit`, and its
`on_step` callback times the matrix products, so the two alternate.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from bench.common import RECIPE, median, other_cores_busy, sample_cpu, synchronize
from bench.training import NO_VALIDATION, alternate_with_trainer
from seqkit import build, load_recipe
from seqkit.run import Built, seed_everything
from seqkit.training import Trainer


@dataclass
class FlopsSettings:
    """Training steps and matrix products per timing."""

    warmup_steps: int = 3
    timed_steps: int = 15
    # Products per timing of the one-step shape, so that a timing lasts long
    # enough for the clock; the all-steps shape runs once.
    step_products: int = 32


@dataclass
class LSTMShape:
    """The sizes that the FLOP count needs."""

    batch: int
    steps: int
    embedding: int
    hidden: int
    vocabulary: int
    layers: int

    def forward_flops(self) -> int:
        """Return the FLOPs of the forward pass's matrix products."""
        per_token = 2 * self.hidden * self.vocabulary
        for layer in range(self.layers):
            inputs = self.embedding if layer == 0 else self.hidden
            per_token += 8 * self.hidden * (inputs + self.hidden)
        return self.batch * self.steps * per_token

    def training_step_flops(self) -> int:
        """Return the FLOPs of forward and backward, 3 times the forward's."""
        return 3 * self.forward_flops()


def lstm_shape(built: Built) -> LSTMShape:
    """Return the shape of the recipe's LSTM language model."""
    options = built.recipe.decoder.options
    if built.task_name != "language-model" or options.cell != "lstm":
        raise ValueError(
            f"the FLOP count needs an LSTM language model, but {RECIPE} trains "
            f"a {built.task_name} with cell {options.cell!r}"
        )
    if options.tie_weights:
        raise ValueError(
            f"the FLOP count needs untied weights; set tie_weights = false in {RECIPE}"
        )
    train = built.recipe.train
    return LSTMShape(
        batch=train.batch_size,
        steps=train.seq_len,
        embedding=options.embedding_size,
        hidden=options.hidden_size,
        vocabulary=len(built.vocabularies["target"]),
        layers=options.layers,
    )


def _matmul_seconds(
    left: torch.Tensor, right: torch.Tensor, products: int, device: torch.device
) -> float:
    """Return the seconds of one `left @ right`, averaged over `products` calls."""
    synchronize(device)
    start = time.perf_counter()
    for _ in range(products):
        torch.matmul(left, right)
    synchronize(device)
    return (time.perf_counter() - start) / products


def run_flops_benchmark(settings: FlopsSettings, device: str) -> dict[str, Any]:
    """Measure the training step's GFLOP/s and the matmul GFLOP/s between steps."""
    cpu_start = sample_cpu()
    overrides = [
        f"train.eval_every={NO_VALIDATION}",
        "train.checkpoint_every=0",
        f"train.device={device}",
    ]
    recipe, registry = load_recipe(RECIPE, overrides)
    seed_everything(recipe.train.seed)
    built = build(recipe, registry)
    torch_device = torch.device(device)
    built.model.to(torch_device)
    shape = lstm_shape(built)
    B, T, H = shape.batch, shape.steps, shape.hidden
    weights = torch.randn(H, 4 * H, device=torch_device)  # (H, 4H)
    operands = {
        "one_step": (torch.randn(B, H, device=torch_device), settings.step_products),
        "all_steps": (torch.randn(B * T, H, device=torch_device), 1),
    }
    seconds: dict[str, dict[int, float]] = {name: {} for name in operands}

    def time_products(step: int) -> None:
        for name, (left, products) in operands.items():
            seconds[name][step] = _matmul_seconds(left, weights, products, torch_device)

    total = settings.warmup_steps + settings.timed_steps
    with tempfile.TemporaryDirectory(prefix="seqkit-bench-") as folder:
        trainer = Trainer(built.model, built.task, recipe.train, Path(folder), {})
        times = alternate_with_trainer(trainer, total, time_products, torch_device)
    cpu_end = sample_cpu()

    timed = range(settings.warmup_steps + 1, total + 1)
    step_seconds = median([times.seqkit[step] for step in timed])
    step_gflops = shape.training_step_flops() / step_seconds / 1e9
    matmuls = {}
    for name, (left, _) in operands.items():
        flops = 2 * left.shape[0] * H * 4 * H
        gflops = flops / median([seconds[name][step] for step in timed]) / 1e9
        matmuls[name] = {
            "shape": [left.shape[0], H, 4 * H],
            "gflops": gflops,
            "step_fraction": step_gflops / gflops,
        }
    return {
        "name": "lstm-flops",
        "device": device,
        "settings": vars(settings),
        "shape": asdict(shape),
        "step_flops": shape.training_step_flops(),
        "step_seconds": step_seconds,
        "step_gflops": step_gflops,
        "tokens_per_s": B * T / step_seconds,
        "matmuls": matmuls,
        # no target: the benchmark reports the fractions
        "passed": True,
        "seconds": cpu_end.wall - cpu_start.wall,
        "other_cores_busy": other_cores_busy(cpu_start, cpu_end),
    }
