"""Training throughput: seqkit's Trainer against a hand-written PyTorch loop.

Both sides train the chargen recipe's model (embedding, LSTM, linear output)
from the same initial weights on the same language-model batches of the
Shakespeare data, with AdamW and gradient clipping, at the same torch thread
count. The seqkit side is `Trainer.fit` on the recipe's `RNNDecoder`, which also
runs the learning-rate schedule and records the loss history. The plain side is
the shortest loop that does the same forward, backward, clip and optimizer step.

The two sides alternate step by step inside one `Trainer.fit` call: its
`on_step` callback runs the plain step on the same batch, so every seqkit step
is timed between two plain steps and every plain step between two seqkit steps.
Changes in machine load then hit both sides alike. The reported ratio is the
median over steps of plain seconds / seqkit seconds, which equals seqkit's
tokens/s divided by the plain loop's.

Shapes: B batch, T window length, E embedding size, H hidden size, V vocabulary size.
"""

from __future__ import annotations

import contextlib
import cProfile
import io
import pstats
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bench.common import RECIPE, median, other_cores_busy, sample_cpu, synchronize
from bench.plain_models import PlainLanguageModel
from seqkit.run import Built, build, load_recipe, seed_everything
from seqkit.training import Trainer

TARGET_RATIO = 0.95

# Longer than any benchmark run, so no validation lands inside the timed steps.
NO_VALIDATION = 1_000_000


@dataclass
class TrainingSettings:
    """How many optimizer steps each side runs."""

    warmup_steps: int = 5
    timed_steps: int = 60

    def total_steps(self) -> int:
        """Return the steps that each side runs, warm-up included."""
        return self.warmup_steps + self.timed_steps


def plain_model_like(built: Built) -> PlainLanguageModel:
    """Build a plain model with the architecture and current weights of the decoder."""
    decoder = built.model.decoder
    options = built.recipe.decoder.options
    if (
        built.recipe.decoder.plugin != "rnn"
        or options.cell != "lstm"
        or options.tie_weights
    ):
        raise ValueError(
            "the training benchmark compares against nn.LSTM and needs an untied "
            f'[decoder] plugin = "rnn" with cell = "lstm" in {RECIPE}'
        )
    vocab = built.vocabularies["target"]
    model = PlainLanguageModel(options, len(vocab), vocab.pad_id)
    # strict loading fails if the decoder contains a parameter the plain model lacks
    model.load_state_dict(decoder.state_dict(), strict=True)
    return model


def plain_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    inputs: Tensor,
    targets: Tensor,
    clip: float,
) -> float:
    """Run one training step on `inputs` and `targets` (B, T) and return the loss."""
    logits = model(inputs)  # (B, T, V)
    loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten())
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    optimizer.step()
    return loss.item()


def run_seqkit_steps(
    trainer: Trainer, steps: int, on_step: Callable[[int], None] | None = None
) -> None:
    """Run `steps` more Trainer steps, calling `on_step(step)` after each.

    stderr is captured while the Trainer runs and written out afterwards, so
    its progress bar stays off (as in a logged job) and no message is lost.
    """
    captured = io.StringIO()
    with contextlib.redirect_stderr(captured):
        trainer.fit(stop_at=trainer.state.step + steps, on_step=on_step)
    sys.stderr.write(captured.getvalue())


@dataclass
class AlternatingTimes:
    """Seconds of each Trainer step and of each call made between steps.

    Both map the step number, counted from 1, to seconds. `seqkit` has no
    entry for step 1, because no call ended before it.
    """

    seqkit: dict[int, float]
    between: dict[int, float]


def alternate_with_trainer(
    trainer: Trainer,
    steps: int,
    between: Callable[[int], None],
    device: torch.device | None = None,
) -> AlternatingTimes:
    """Run `steps` Trainer steps, calling `between(step)` after each, and time both.

    A Trainer step is timed from the end of one `between` call to the start
    of the next. On a GPU the device is synchronized around each call, so
    kernels that a step queued count in that step's time.
    """
    times = AlternatingTimes({}, {})
    previous_end: float | None = None

    def after_step(step: int) -> None:
        nonlocal previous_end
        synchronize(device)
        start = time.perf_counter()
        if previous_end is not None:
            times.seqkit[step] = start - previous_end
        between(step)
        synchronize(device)
        previous_end = time.perf_counter()
        times.between[step] = previous_end - start

    run_seqkit_steps(trainer, steps, after_step)
    return times


@dataclass
class _Setup:
    built: Built
    trainer: Trainer
    plain: PlainLanguageModel
    plain_optimizer: torch.optim.Optimizer
    batches: list[tuple[Tensor, Tensor]]


def _set_up(run_dir: Path, total_steps: int) -> _Setup:
    overrides = [f"train.eval_every={NO_VALIDATION}", "train.device=cpu"]
    recipe, registry = load_recipe(RECIPE, overrides)
    seed_everything(recipe.train.seed)
    built = build(recipe, registry)
    trainer = Trainer(built.model, built.task, recipe.train, run_dir, extra={})
    if total_steps > trainer.total_steps:
        raise ValueError(
            f"the benchmark needs {total_steps} steps but the recipe trains for "
            f"{trainer.total_steps}. Lower --steps"
        )
    plain = plain_model_like(built)
    plain_optimizer = torch.optim.AdamW(
        plain.parameters(), lr=recipe.train.lr, weight_decay=recipe.train.weight_decay
    )

    # the plain loop gets the Trainer's batches, built before timing starts
    steps_per_epoch = built.task.steps_per_epoch()
    batches = []
    for step in range(total_steps):
        batch = built.task.train_batch(*divmod(step, steps_per_epoch))
        batches.append((batch["inputs"], batch["targets"]))
    return _Setup(built, trainer, plain, plain_optimizer, batches)


def run_training_benchmark(settings: TrainingSettings) -> dict[str, Any]:
    """Measure seqkit's training tokens/s as a fraction of the plain loop's."""
    cpu_start = sample_cpu()
    with tempfile.TemporaryDirectory(prefix="seqkit-bench-") as folder:
        setup = _set_up(Path(folder), settings.total_steps())
        clip = setup.built.recipe.train.clip
        plain_losses: list[float] = []

        def run_plain_step(step: int) -> None:
            inputs, targets = setup.batches[step - 1]
            plain_losses.append(
                plain_step(setup.plain, setup.plain_optimizer, inputs, targets, clip)
            )

        times = alternate_with_trainer(
            setup.trainer, settings.total_steps(), run_plain_step
        )
        seqkit_seconds, plain_seconds = times.seqkit, times.between
        seqkit_first_loss = setup.trainer.state.history["loss"][0]
    cpu_end = sample_cpu()

    # Same weights and batch give the same first loss, so a mismatch means
    # that the two sides do different work and the ratio means nothing.
    if abs(seqkit_first_loss - plain_losses[0]) > 1e-4 * abs(plain_losses[0]):
        raise RuntimeError(
            f"first-step losses differ: seqkit {seqkit_first_loss:.6f}, plain "
            f"{plain_losses[0]:.6f}. The plain model does not match the recipe's model"
        )

    timed = range(settings.warmup_steps + 1, settings.total_steps() + 1)
    tokens = [setup.batches[step - 1][1].numel() for step in timed]
    seqkit_rates = [
        n / seqkit_seconds[step] for n, step in zip(tokens, timed, strict=True)
    ]
    plain_rates = [
        n / plain_seconds[step] for n, step in zip(tokens, timed, strict=True)
    ]
    ratios = [plain_seconds[step] / seqkit_seconds[step] for step in timed]
    ratio = median(ratios)
    return {
        "name": "training",
        "settings": vars(settings),
        "batch_shape": list(setup.batches[0][1].shape),
        "seqkit_tokens_per_s": median(seqkit_rates),
        "plain_tokens_per_s": median(plain_rates),
        "ratio": ratio,
        "ratio_of_totals": sum(plain_seconds[step] for step in timed)
        / sum(seqkit_seconds[step] for step in timed),
        "ratio_quartiles": statistics.quantiles(ratios, n=4),
        "target": TARGET_RATIO,
        "passed": ratio >= TARGET_RATIO,
        "first_loss": {"seqkit": seqkit_first_loss, "plain": plain_losses[0]},
        "seconds": cpu_end.wall - cpu_start.wall,
        "other_cores_busy": other_cores_busy(cpu_start, cpu_end),
    }


def profile_training(settings: TrainingSettings, steps: int = 10, top: int = 20) -> str:
    """Profile `steps` steps of each side with cProfile and return both reports.

    The seqkit report also contains the checkpoint saving that ends each
    `fit` call, which the benchmark does not time.
    """
    with tempfile.TemporaryDirectory(prefix="seqkit-bench-") as folder:
        setup = _set_up(Path(folder), settings.warmup_steps + steps)
        clip = setup.built.recipe.train.clip
        run_seqkit_steps(setup.trainer, settings.warmup_steps)
        for inputs, targets in setup.batches[: settings.warmup_steps]:
            plain_step(setup.plain, setup.plain_optimizer, inputs, targets, clip)

        def seqkit_chunk() -> None:
            run_seqkit_steps(setup.trainer, steps)

        def plain_chunk() -> None:
            for inputs, targets in setup.batches[settings.warmup_steps :]:
                plain_step(setup.plain, setup.plain_optimizer, inputs, targets, clip)

        reports = []
        for name, call in (
            ("seqkit Trainer.fit", seqkit_chunk),
            ("plain loop", plain_chunk),
        ):
            profiler = cProfile.Profile()
            profiler.runcall(call)
            text = io.StringIO()
            pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(top)
            reports.append(f"== {name}, {steps} steps ==\n{text.getvalue()}")
    return "\n".join(reports)
