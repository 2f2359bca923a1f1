"""Run the benchmarks, print the results and record them in BENCHMARKS.md.

Usage, from the repository root: `.venv/bin/python -m bench`. A run of all
benchmarks with the default step and repetition counts rewrites the results
section of BENCHMARKS.md. Runs with --only, --quick, --steps or --repeats only
print the results. When torch finds a CUDA device, the benchmarks in
`DEVICE_NAMES` run a second time on it, and the page gets a GPU section.
"""

from __future__ import annotations

import argparse
import datetime
import os
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from bench.captioning import (
    CaptionInferenceSettings,
    DataWaitSettings,
    run_caption_inference_benchmark,
    run_data_wait_benchmark,
)
from bench.classify_inference import (
    ClassifyInferenceSettings,
    run_classify_inference_benchmark,
)
from bench.common import (
    BENCHMARKS_PAGE,
    REPO_ROOT,
    describe_machine,
    other_cores_busy,
    sample_cpu,
)
from bench.flops import FlopsSettings, run_flops_benchmark
from bench.generation import GenerationSettings, run_generation_benchmark
from bench.memory import run_memory_benchmark
from bench.packing import PackingSettings, run_packing_benchmark
from bench.recipe_decoding import DecodingSettings
from bench.recipes import RecipeSettings, run_recipes_benchmark
from bench.report import render_results, write_results
from bench.scaling import ScalingSettings, run_scaling_benchmark
from bench.training import TrainingSettings, profile_training, run_training_benchmark
from bench.translation import (
    AttentionTrainingSettings,
    BeamSearchSettings,
    run_attention_training_benchmark,
    run_beam_search_benchmark,
)

NAMES = (
    "training",
    "generation",
    "memory",
    "packing",
    "classify-inference",
    "beam-search",
    "attention-training",
    "caption-data-wait",
    "caption-inference",
    "recipes",
    "lstm-flops",
    "scaling",
)
# Benchmarks that also run on a GPU when one is present. The others measure
# CPU behaviour: thread counts, resident memory and DataLoader workers.
DEVICE_NAMES = ("recipes", "lstm-flops", "scaling")
# One thread keeps the ratios stable when other processes share the cores,
# because OpenMP threads that compete with another process's threads wait at
# barriers and step times then swing several-fold. BENCHMARKS.md has figures.
DEFAULT_THREADS = 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmark seqkit against plain PyTorch code and itself.",
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=NAMES,
        help="run only this benchmark (repeatable); results are printed, not recorded",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=DEFAULT_THREADS,
        help=f"torch CPU threads for every side (default {DEFAULT_THREADS})",
    )
    parser.add_argument(
        "--steps",
        type=int,
        help="timed steps per side of the training benchmark "
        f"(default {TrainingSettings.timed_steps})",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        help="timed repetitions of the generation benchmark "
        f"(default {GenerationSettings.repeats})",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="few steps and repetitions, to check that the scripts run",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="also print a cProfile report of 10 training steps of each side",
    )
    parser.add_argument(
        "--no-write",
        action="store_true",
        help="print the results without rewriting BENCHMARKS.md",
    )
    return parser


def _interpreter() -> str:
    """Return the interpreter's path relative to the repository, or "python"."""
    executable = Path(sys.executable)
    if executable.is_relative_to(REPO_ROOT):
        return str(executable.relative_to(REPO_ROOT))
    return "python"


@dataclass
class _Settings:
    training: TrainingSettings
    generation: GenerationSettings
    packing: PackingSettings
    classify_inference: ClassifyInferenceSettings
    beam_search: BeamSearchSettings
    attention_training: AttentionTrainingSettings
    data_wait: DataWaitSettings
    caption_inference: CaptionInferenceSettings
    recipes: RecipeSettings
    flops: FlopsSettings
    scaling: ScalingSettings


def _quick_settings() -> _Settings:
    return _Settings(
        TrainingSettings(warmup_steps=2, timed_steps=6),
        GenerationSettings(repeats=2),
        PackingSettings(warmup_steps=1, names_steps=6, bbc_news_steps=3),
        ClassifyInferenceSettings(texts=64, repeats=2),
        # 64 words, as in the full run, because the speedup target is set
        # for a batch of 64 (quick runs at batch 16 measured 2.7 and 3.6).
        BeamSearchSettings(examples=4_000, pretrain_steps=10, repeats=2),
        AttentionTrainingSettings(examples=4_000, warmup_steps=1, timed_steps=3),
        DataWaitSettings(timed_steps=2),
        CaptionInferenceSettings(images=32, repeats=1),
        # In this process, because a fresh process per recipe takes seconds
        # to import torch and seqkit.
        RecipeSettings(
            warmup_steps=1,
            timed_steps=2,
            decoding=DecodingSettings(new_tokens=20, texts=16, sources=8, repeats=1),
            quick=True,
            fresh_process=False,
        ),
        FlopsSettings(warmup_steps=1, timed_steps=2),
        ScalingSettings(
            seq_lens=(32, 64),
            warmup_steps=1,
            timed_steps=2,
            load_fractions=(1 / 8, 1 / 4),
            load_repeats=1,
            epoch_fractions=(1 / 32, 1 / 16),
            epoch_max_chars=20_000,
        ),
    )


def _settings(args: argparse.Namespace) -> _Settings:
    settings = _Settings(
        TrainingSettings(),
        GenerationSettings(),
        PackingSettings(),
        ClassifyInferenceSettings(),
        BeamSearchSettings(),
        AttentionTrainingSettings(),
        DataWaitSettings(),
        CaptionInferenceSettings(),
        RecipeSettings(),
        FlopsSettings(),
        ScalingSettings(),
    )
    if args.quick:
        settings = _quick_settings()
    if args.steps is not None:
        settings.training.timed_steps = args.steps
    if args.repeats is not None:
        settings.generation.repeats = args.repeats
    return settings


def _run_benchmark(
    name: str, device: str, settings: _Settings, args: argparse.Namespace
) -> dict[str, Any]:
    """Run benchmark `name` on `device` and return its result."""
    print(f"running the {name} benchmark on {device} ...", file=sys.stderr, flush=True)
    if name == "recipes":
        return run_recipes_benchmark(settings.recipes, device)
    if name == "lstm-flops":
        return run_flops_benchmark(settings.flops, device)
    if name == "scaling":
        return run_scaling_benchmark(settings.scaling, device)
    if name == "training":
        result = run_training_benchmark(settings.training)
        if args.profile:
            print(profile_training(settings.training), file=sys.stderr)
        return result
    if name == "generation":
        return run_generation_benchmark(settings.generation)
    if name == "memory":
        return run_memory_benchmark(args.threads)
    if name == "packing":
        return run_packing_benchmark(settings.packing)
    if name == "classify-inference":
        return run_classify_inference_benchmark(settings.classify_inference)
    if name == "beam-search":
        return run_beam_search_benchmark(settings.beam_search)
    if name == "attention-training":
        return run_attention_training_benchmark(settings.attention_training)
    if name == "caption-data-wait":
        return run_data_wait_benchmark(settings.data_wait)
    return run_caption_inference_benchmark(settings.caption_inference)


def main(argv: list[str] | None = None) -> int:
    """Run the selected benchmarks and return 1 if a target is missed, else 0."""
    args = _parser().parse_args(argv)
    if args.threads < 1:
        raise SystemExit(f"--threads must be at least 1, got {args.threads}")
    for option in ("steps", "repeats"):
        value = getattr(args, option)
        if value is not None and value < 1:
            raise SystemExit(f"--{option} must be at least 1, got {value}")
    torch.set_num_threads(args.threads)
    names = args.only or list(NAMES)
    settings = _settings(args)
    arguments = sys.argv[1:] if argv is None else argv
    command = shlex.join([_interpreter(), "-m", "bench", *arguments])
    date = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    load_average = ", ".join(f"{value:.2f}" for value in os.getloadavg())

    # NOTE: the "cuda" path has not been run, because no machine with a GPU
    # was available when it was written.
    devices = ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]
    cpu_start = sample_cpu()
    results: list[dict[str, Any]] = []
    for device in devices:
        for name in names:
            if device == "cpu" or name in DEVICE_NAMES:
                result = _run_benchmark(name, device, settings, args)
                results.append({"device": "cpu", **result})
    busy = other_cores_busy(cpu_start, sample_cpu())

    machine = {
        **describe_machine(),
        "gpu": torch.cuda.get_device_name(0) if "cuda" in devices else "none",
        "load_average": load_average,
        "other_cores_busy": "not measured" if busy is None else f"{busy:.2f} cores",
    }
    block = render_results(machine, results, command, date, devices)
    print(block)

    full_run = (
        names == list(NAMES)
        and not args.quick
        and args.steps is None
        and args.repeats is None
    )
    if full_run and not args.no_write:
        write_results(BENCHMARKS_PAGE, block)
        print(f"results written to {BENCHMARKS_PAGE}", file=sys.stderr)

    return 0 if all(result["passed"] for result in results) else 1


if __name__ == "__main__":
    sys.exit(main())
