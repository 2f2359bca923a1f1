"""Data loading and decoding speed of the captioning pattern, on `recipes/caption.toml`.

The model is the recipe's. It reads glyph images of 48 x 48 pixels with the
`small` convnet (32, 64 and 128 channels, an 8 x 8 grid of region features),
and an LSTM decoder (embedding 64, hidden 256) with Luong attention ("general"
score) writes the caption. The recipe is loaded with `load_recipe` and built
with `build`, so the data is the `glyphs` source with the recipe's options.

Benchmark 8, `caption-data-wait`: the share of each training step's wall time
spent inside `CaptioningTask.train_batch`, which loads and transforms the
batch's images through a torch DataLoader with `train.num_workers` worker
processes. A step is `train_batch`, the task's loss, backward, gradient
clipping and the optimizer step, as the Trainer runs them. The worker counts
run one after another, because interleaving them would give the workers of
one count the steps of the others to load ahead in. The task reads
`train.num_workers` when it starts a DataLoader iterator, which it does at the
first batch of an epoch, so each worker count trains in an epoch of its own.
That first batch waits for the worker processes to start and to load a batch
with nothing loaded ahead, and it is reported on its own.

Benchmark 9, `caption-inference`: captions/s of `CaptioningTask.caption` over
the same test images (Pillow images in memory) at batch 1 and at batch 32,
with greedy decoding and with the recipe's beam search (beam 3). The model is
untrained, so it rarely emits `<eos>`, and most captions run to the task's
cap of `train.seq_len` (16) new tokens, `<eos>` included.
"""

from __future__ import annotations

import multiprocessing
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from seqkit_builtins.captioning_task import Caption
from seqkit_builtins.samplers import GreedyOptions, GreedySampler

from bench.common import REPO_ROOT, median, other_cores_busy, sample_cpu
from seqkit.run import Built, build, load_recipe, seed_everything
from seqkit.training import build_optimizer

CAPTION_RECIPE = REPO_ROOT / "recipes" / "caption.toml"
# The design goal of loading images in worker processes: with at least one
# worker, a training step waits for its batch less than this share of its time.
MAX_DATA_WAIT = 0.10
CAPTION_SIZES = (1, 32)


@dataclass
class DataWaitSettings:
    """Worker counts and steps per count of the data wait benchmark."""

    worker_counts: tuple[int, ...] = (0, 1, 2)
    warmup_steps: int = 1
    timed_steps: int = 12


@dataclass
class CaptionInferenceSettings:
    """Test images per call and timed repetitions of the inference benchmark."""

    images: int = 64
    repeats: int = 3
    sizes: tuple[int, ...] = field(default=CAPTION_SIZES)


def build_caption_model() -> Built:
    """Load and build `recipes/caption.toml` on the CPU, with the recipe's seed."""
    recipe, registry = load_recipe(CAPTION_RECIPE, ["train.device=cpu"])
    seed_everything(recipe.train.seed)
    return build(recipe, registry)


# ---------------------------------------------------------------- benchmark 8


@dataclass
class _StepTimes:
    """Seconds inside `train_batch` and seconds of the whole step, per step."""

    wait: list[float] = field(default_factory=list)
    step: list[float] = field(default_factory=list)


def _train_step(
    built: Built, optimizer: torch.optim.Optimizer, epoch: int, index: int
) -> tuple[float, float]:
    """Run one training step as the Trainer does.

    Returns the seconds spent inside `train_batch` and the seconds of the whole step.
    """
    start = time.perf_counter()
    batch = built.task.train_batch(epoch, index)
    loaded = time.perf_counter()
    loss, _ = built.task.loss(built.model, batch)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    clip = built.recipe.train.clip
    if clip > 0:
        torch.nn.utils.clip_grad_norm_(built.model.parameters(), clip)
    optimizer.step()
    loss.item()
    end = time.perf_counter()
    return loaded - start, end - start


def _run_worker_count(
    built: Built,
    optimizer: torch.optim.Optimizer,
    workers: int,
    epoch: int,
    settings: DataWaitSettings,
) -> dict[str, Any]:
    """Train the first steps of `epoch` with `workers` DataLoader workers."""
    built.recipe.train.num_workers = workers
    first_wait, first_step = _train_step(built, optimizer, epoch, 0)
    # DataLoader workers are multiprocessing children of this process.
    running = len(multiprocessing.active_children())
    if running != workers:
        raise RuntimeError(
            f"{running} worker processes run with train.num_workers = {workers}, "
            "so the task did not start a DataLoader iterator with the new count"
        )
    times = _StepTimes()
    for index in range(1, 1 + settings.warmup_steps + settings.timed_steps):
        wait, step = _train_step(built, optimizer, epoch, index)
        if index > settings.warmup_steps:
            times.wait.append(wait)
            times.step.append(step)
    shares = [wait / step for wait, step in zip(times.wait, times.step, strict=True)]
    return {
        "workers": workers,
        "wait_share": sum(times.wait) / sum(times.step),
        "wait_share_median": median(shares),
        "wait_ms_median": 1000 * median(times.wait),
        "wait_ms_max": 1000 * max(times.wait),
        "step_ms_median": 1000 * median(times.step),
        "first_wait_ms": 1000 * first_wait,
        "first_step_ms": 1000 * first_step,
    }


def run_data_wait_benchmark(settings: DataWaitSettings) -> dict[str, Any]:
    """Measure the share of training step time spent waiting for image batches."""
    cpu_start = sample_cpu()
    built = build_caption_model()
    steps_per_epoch = built.task.steps_per_epoch()
    needed = 1 + settings.warmup_steps + settings.timed_steps
    if needed > steps_per_epoch:
        raise ValueError(
            f"{needed} steps per worker count do not fit in the "
            f"{steps_per_epoch} steps of an epoch; lower DataWaitSettings.timed_steps"
        )
    recipe_workers = built.recipe.train.num_workers
    optimizer = build_optimizer(built.model, built.recipe.train)
    built.model.train()
    # Epoch 0 warms up torchvision's import, the transforms and AdamW's state
    # without workers, so that no worker count pays for them.
    built.recipe.train.num_workers = 0
    for index in range(settings.warmup_steps):
        _train_step(built, optimizer, 0, index)

    counts = []
    for epoch, workers in enumerate(settings.worker_counts, start=1):
        counts.append(_run_worker_count(built, optimizer, workers, epoch, settings))
    # Starting one more iterator without workers shuts down the last count's
    # workers, so that their CPU time counts as this process's.
    built.recipe.train.num_workers = 0
    built.task.train_batch(len(settings.worker_counts) + 1, 0)
    cpu_end = sample_cpu()

    with_workers = [count for count in counts if count["workers"] >= 1]
    split = built.task.encoded_images["train"]
    return {
        "name": "caption-data-wait",
        "settings": vars(settings),
        "recipe_workers": recipe_workers,
        "batch_size": built.recipe.train.batch_size,
        "image_size": built.task.image_size,
        "train_images": len(split.images),
        "steps_per_epoch": steps_per_epoch,
        "counts": counts,
        "target_share": MAX_DATA_WAIT,
        "passed": all(count["wait_share"] < MAX_DATA_WAIT for count in with_workers),
        "seconds": cpu_end.wall - cpu_start.wall,
        "other_cores_busy": other_cores_busy(cpu_start, cpu_end),
    }


# ---------------------------------------------------------------- benchmark 9


def _spread_test_images(built: Built, count: int) -> list[Any]:
    """Return `count` distinct test images spread evenly over the split."""
    images = built.task.encoded_images["test"].images
    if len(images) < count:
        raise ValueError(
            f"the glyphs test split has {len(images)} images, fewer than the "
            f"{count} requested; lower CaptionInferenceSettings.images"
        )
    rows = torch.linspace(0, len(images) - 1, count).long().tolist()
    return [images[row] for row in rows]


def _count_same_outputs(single: list[Caption], batched: list[Caption]) -> int:
    """Return how many images got the same caption tokens at both batch sizes."""
    return sum(
        alone.tokens == together.tokens
        for alone, together in zip(single, batched, strict=True)
    )


def run_caption_inference_benchmark(
    settings: CaptionInferenceSettings,
) -> dict[str, Any]:
    """Measure `caption` captions/s at each batch size, greedy and with beam search."""
    cpu_start = sample_cpu()
    built = build_caption_model()
    images = _spread_test_images(built, settings.images)
    samplers = {"greedy": GreedySampler(GreedyOptions()), "beam": built.sampler}
    cases: dict[str, Callable[[], list[Caption]]] = {}
    for sampler_name, sampler in samplers.items():
        for size in settings.sizes:
            cases[f"{sampler_name}_{size}"] = lambda sampler=sampler, size=size: (
                built.task.caption(built.model, images, sampler, batch_size=size)
            )

    outputs = {name: call() for name, call in cases.items()}  # warm-up
    seconds: dict[str, list[float]] = {name: [] for name in cases}
    names = list(cases)
    for repeat in range(settings.repeats):
        for name in names if repeat % 2 == 0 else names[::-1]:
            start = time.perf_counter()
            cases[name]()
            seconds[name].append(time.perf_counter() - start)
    cpu_end = sample_cpu()

    cap = built.recipe.train.seq_len
    smallest, largest = min(settings.sizes), max(settings.sizes)
    samplers_out = {}
    for sampler_name in samplers:
        small = f"{sampler_name}_{smallest}"
        large = f"{sampler_name}_{largest}"
        speedups = [
            single / batched
            for single, batched in zip(seconds[small], seconds[large], strict=True)
        ]
        batched = outputs[large]
        samplers_out[sampler_name] = {
            "captions_per_s": {
                size: len(images) / median(seconds[f"{sampler_name}_{size}"])
                for size in settings.sizes
            },
            "speedup": median(speedups),
            "speedups": speedups,
            "mean_tokens": statistics.fmean(len(c.tokens) for c in batched),
            # `tokens` leaves out `<eos>`, so a caption cut at the cap has `cap`
            # tokens and one that ended at `<eos>` has fewer.
            "ended_at_eos": statistics.fmean(len(c.tokens) < cap for c in batched),
            "same_outputs": _count_same_outputs(outputs[small], batched),
        }
    references = built.task.encoded_images["test"].references
    return {
        "name": "caption-inference",
        "settings": vars(settings),
        "beam_size": built.sampler.options.beam_size,
        "max_new_tokens": cap,
        "image_size": built.task.image_size,
        "mean_reference_words": statistics.fmean(
            len(refs[0].split()) for refs in references
        ),
        "samplers": samplers_out,
        # no target: the benchmark reports the ratios and what explains them
        "passed": True,
        "seconds": cpu_end.wall - cpu_start.wall,
        "other_cores_busy": other_cores_busy(cpu_start, cpu_end),
    }
