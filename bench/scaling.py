"""Time against the window length and the corpus size, on recipes/chargen.toml.

Three measurements, each expected to grow linearly, so that the time per unit
stays flat:

- Window length: one training step (bench/steps.py) at each `train.seq_len`,
  at the recipe's batch size. The unit is a training token. The lengths run
  step by step in turn, and each time is a median over steps.
- Loading: the shakespeare source's `load`, the char tokenizer's vocabulary
  and `LanguageModelTask.prepare`, the work that `build` does with the data,
  on the first plays of the sorted list (a fraction of the 38). The unit is a
  byte of the Markdown play files. The sizes run in ABBA order, and each time
  is a median over repetitions.
- Epochs: one epoch of `Trainer.fit` on the same subsets, after one warm-up
  step, from the start of `fit` to the end of the epoch's last step. The unit
  is a training token.

Each table reports the exponent k of the least-squares fit time = c * size^k
on a log-log scale, which is 1 for linear growth.
"""

from __future__ import annotations

import functools
import json
import math
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from seqkit_builtins.data import ShakespeareSource

from bench.common import RECIPE, median, other_cores_busy, sample_cpu, synchronize
from bench.steps import train_batches, train_step
from bench.training import NO_VALIDATION, run_seqkit_steps
from seqkit import BuildContext, build, load_recipe
from seqkit.run import Built, seed_everything
from seqkit.training import Trainer, build_optimizer


@dataclass
class ScalingSettings:
    """Sizes, steps and repetitions of the scaling benchmark."""

    seq_lens: tuple[int, ...] = (32, 64, 128, 256)
    warmup_steps: int = 2
    timed_steps: int = 8
    load_fractions: tuple[float, ...] = (1 / 8, 1 / 4, 1 / 2, 1.0)
    load_repeats: int = 3
    # An epoch of all 38 plays takes minutes on 2 CPU cores, so the epochs
    # run on smaller subsets than the loading does.
    epoch_fractions: tuple[float, ...] = (1 / 32, 1 / 16, 1 / 8, 1 / 4)
    epoch_max_chars: int | None = None  # cut each play, for --quick


def fitted_exponent(sizes: list[float], seconds: list[float]) -> float:
    """Return the slope of log(seconds) against log(sizes), least squares."""
    return statistics.linear_regression(
        [math.log(size) for size in sizes], [math.log(value) for value in seconds]
    ).slope


def _common_overrides(device: str) -> list[str]:
    return [
        f"train.eval_every={NO_VALIDATION}",
        "train.checkpoint_every=0",
        f"train.device={device}",
    ]


@functools.cache
def _play_stems() -> tuple[str, ...]:
    recipe, _ = load_recipe(RECIPE)
    source = ShakespeareSource(recipe.data.options, BuildContext(base_dir=Path()))
    return tuple(path.stem for path in source.play_files())


def play_subset(fraction: float) -> list[str]:
    """Return the stems of the first `fraction` of the plays, at least one."""
    stems = _play_stems()
    return list(stems[: max(1, round(fraction * len(stems)))])


def _plays_override(plays: list[str]) -> str:
    return f"data.plays={json.dumps(plays)}"


# ---------------------------------------------------------------- window length


def _build_window_variant(seq_len: int, device: str) -> tuple[Built, Any]:
    overrides = [*_common_overrides(device), f"train.seq_len={seq_len}"]
    recipe, registry = load_recipe(RECIPE, overrides)
    seed_everything(recipe.train.seed)
    built = build(recipe, registry)
    built.model.to(torch.device(device))
    return built, build_optimizer(built.model, recipe.train)


def measure_window_lengths(settings: ScalingSettings, device: str) -> dict[str, Any]:
    """Time a training step at each window length, the lengths in turn."""
    torch_device = torch.device(device)
    steps = settings.warmup_steps + settings.timed_steps
    variants = {n: _build_window_variant(n, device) for n in settings.seq_lens}
    batches = {
        n: [
            {key: value.to(torch_device) for key, value in batch.items()}
            for batch in train_batches(built, steps)
        ]
        for n, (built, _) in variants.items()
    }

    seconds: dict[int, list[float]] = {n: [] for n in settings.seq_lens}
    order = list(settings.seq_lens)
    for step in range(steps):
        shift = step % len(order)
        for n in order[shift:] + order[:shift]:
            built, optimizer = variants[n]
            synchronize(torch_device)
            start = time.perf_counter()
            train_step(built.task, built, optimizer, batches[n][step])
            synchronize(torch_device)
            seconds[n].append(time.perf_counter() - start)

    batch_size = variants[order[0]][0].recipe.train.batch_size
    rows = []
    for n in order:
        step_seconds = median(seconds[n][settings.warmup_steps :])
        rows.append(
            {
                "size": n,
                "seconds": step_seconds,
                "per_unit": step_seconds / (batch_size * n),
            }
        )
    return {"batch_size": batch_size, "rows": rows, **_fit(rows)}


# ---------------------------------------------------------------- loading


def _loader(fraction: float) -> tuple[Callable[[], None], int]:
    """Return a call that loads, counts and encodes a play subset, and its bytes."""
    recipe, registry = load_recipe(RECIPE, [_plays_override(play_subset(fraction))])
    context = BuildContext(base_dir=recipe.base_dir, recipe_file=recipe.file)
    data = recipe.data.cls(recipe.data.options, context)
    tokenizer = recipe.tokenizer.cls(recipe.tokenizer.options, context)
    task_cls = registry.get("task", data.task)

    def load() -> None:
        splits = data.load()
        vocabularies = task_cls.build_vocabularies(splits, tokenizer)
        task_cls(tokenizer, vocabularies, recipe).prepare(splits)

    return load, sum(path.stat().st_size for path in data.play_files())


def measure_loading(settings: ScalingSettings) -> dict[str, Any]:
    """Time loading and encoding each play subset, the subsets in ABBA order."""
    loaders = {fraction: _loader(fraction) for fraction in settings.load_fractions}
    seconds: dict[float, list[float]] = {fraction: [] for fraction in loaders}
    order = list(loaders)
    for repeat in range(settings.load_repeats):
        for fraction in order if repeat % 2 == 0 else order[::-1]:
            start = time.perf_counter()
            loaders[fraction][0]()
            seconds[fraction].append(time.perf_counter() - start)
    rows = []
    for fraction in order:
        size = loaders[fraction][1]
        load_seconds = median(seconds[fraction])
        rows.append(
            {
                "fraction": fraction,
                "plays": len(play_subset(fraction)),
                "size": size,
                "seconds": load_seconds,
                "per_unit": load_seconds / size,
            }
        )
    return {"rows": rows, **_fit(rows)}


# ---------------------------------------------------------------- epochs


def _time_epoch(fraction: float, settings: ScalingSettings, device: str) -> dict:
    overrides = [
        *_common_overrides(device),
        _plays_override(play_subset(fraction)),
        "train.epochs=2",
    ]
    if settings.epoch_max_chars is not None:
        overrides.append(f"data.max_chars={settings.epoch_max_chars}")
    recipe, registry = load_recipe(RECIPE, overrides)
    seed_everything(recipe.train.seed)
    built = build(recipe, registry)
    built.model.to(torch.device(device))
    steps = built.task.steps_per_epoch()
    seq_len = recipe.train.seq_len
    tokens = (len(built.task.streams["train"]) - 1) // seq_len * seq_len
    last_step_end = 0.0

    def record_end(step: int) -> None:
        nonlocal last_step_end
        last_step_end = time.perf_counter()

    with tempfile.TemporaryDirectory(prefix="seqkit-bench-") as folder:
        trainer = Trainer(built.model, built.task, recipe.train, Path(folder), {})
        run_seqkit_steps(trainer, 1)  # warm-up
        start = time.perf_counter()
        run_seqkit_steps(trainer, steps, record_end)
    epoch_seconds = last_step_end - start
    return {
        "fraction": fraction,
        "plays": len(play_subset(fraction)),
        "steps": steps,
        "size": tokens,
        "seconds": epoch_seconds,
        "per_unit": epoch_seconds / tokens,
    }


def measure_epochs(settings: ScalingSettings, device: str) -> dict[str, Any]:
    """Time one training epoch on each play subset."""
    rows = [_time_epoch(f, settings, device) for f in settings.epoch_fractions]
    return {"rows": rows, "max_chars": settings.epoch_max_chars, **_fit(rows)}


def _fit(rows: list[dict[str, Any]]) -> dict[str, float]:
    sizes = [row["size"] for row in rows]
    seconds = [row["seconds"] for row in rows]
    return {"exponent": fitted_exponent(sizes, seconds)}


def run_scaling_benchmark(settings: ScalingSettings, device: str) -> dict[str, Any]:
    """Measure the three scalings on `device`.

    Loading does no work on the device, so only a CPU run measures it.
    """
    cpu_start = sample_cpu()
    result: dict[str, Any] = {
        "name": "scaling",
        "device": device,
        "window_lengths": measure_window_lengths(settings, device),
        "loading": measure_loading(settings) if device == "cpu" else None,
        "epochs": measure_epochs(settings, device),
    }
    cpu_end = sample_cpu()
    return {
        **result,
        # no target: the benchmark reports the exponents
        "passed": True,
        "seconds": cpu_end.wall - cpu_start.wall,
        "other_cores_busy": other_cores_busy(cpu_start, cpu_end),
    }
