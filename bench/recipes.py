"""Training ratio, output speed and peak memory of every default recipe.

For each recipe in `RECIPES`, the recipe is loaded with `load_recipe`, checked
with `check_recipe` (a recipe whose data is not installed is skipped with the
reason) and built with `build`. Then:

- Training: `Trainer.fit` runs the recipe's model. Its `on_step` callback runs
  one step of a hand-written loop on the same batch, over the plain torch.nn
  copy of the same model (bench/plain_models.py). That step is the plain
  model's loss, backward, `clip_grad_norm_` and AdamW at the recipe's learning
  rate and weight decay. Both start from the same weights, and before timing the run
  checks in eval mode that both give the same loss on the first batch. The
  ratio is the median over steps of plain seconds / seqkit seconds, which is
  seqkit's tokens/s over the plain loop's. The plain loop's batches are built
  before timing, while each Trainer step builds its own with `train_batch`,
  so the result also reports that call's time. Validation and checkpoints
  are turned off during the timed steps.
- Output speed: bench/recipe_decoding.py, on the model after those steps.
- Peak memory: the peak resident set size of the process (VmHWM), and on a
  GPU the peak of `torch.cuda.max_memory_allocated`. The full suite measures
  each recipe in a fresh process, so the figure covers importing torch and
  seqkit, loading the data, both models with their AdamW state and the
  decoding, and nothing that an earlier recipe left behind.

`python -m bench.recipes --recipe NAME` runs one recipe and prints its
result as JSON; the suite starts it once per recipe.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from bench.common import REPO_ROOT, median, other_cores_busy, sample_cpu
from bench.memory import read_status_kib, reset_peak_rss
from bench.plain_models import plain_model_for
from bench.recipe_decoding import DecodingSettings, measure_decoding
from bench.training import NO_VALIDATION, alternate_with_trainer
from seqkit import SeqkitError, build, check_recipe, load_recipe
from seqkit.run import Built, seed_everything
from seqkit.task import Task
from seqkit.training import Trainer

RECIPES = (
    "chargen",
    "wordgen",
    "classify",
    "names",
    "diacritics",
    "translate",
    "g2p",
    "caption",
)
# --quick trains on small batches, and caps the data of the sources that
# have an option for it, so that the smoke run stays short.
QUICK_OVERRIDES = ["train.batch_size=8"]
QUICK_DATA = {
    "diacritics": ["data.max_examples=3000"],
    "translate": ["data.max_examples=3000"],
    "g2p": ["data.max_examples=5000"],
}
# Relative tolerance of the check that both models give the same first loss.
LOSS_TOLERANCE = 1e-4


@dataclass
class RecipeSettings:
    """Steps, output sizes and process isolation of the recipe benchmark."""

    warmup_steps: int = 3
    timed_steps: int = 12
    decoding: DecodingSettings = field(default_factory=DecodingSettings)
    quick: bool = False  # small batches and data caps (QUICK_OVERRIDES, QUICK_DATA)
    fresh_process: bool = True  # measure each recipe in its own process


def _overrides(name: str, settings: RecipeSettings, device: str) -> list[str]:
    # No validation and no checkpoint inside the timed steps.
    overrides = [
        f"train.eval_every={NO_VALIDATION}",
        "train.checkpoint_every=0",
        f"train.device={device}",
    ]
    if settings.quick:
        overrides += QUICK_OVERRIDES + QUICK_DATA.get(name, [])
    return overrides


@torch.no_grad()
def _check_same_loss(built: Built, plain: torch.nn.Module, batch: dict) -> float:
    """Raise RuntimeError unless both models give the same loss on `batch`.

    Runs in eval mode, so dropout draws no masks, and returns the loss.
    """
    built.model.eval()
    plain.eval()
    seqkit_loss = built.task.loss(built.model, batch)[0].item()
    plain_loss = plain.loss(batch)[0].item()
    built.model.train()
    plain.train()
    if abs(seqkit_loss - plain_loss) > LOSS_TOLERANCE * abs(plain_loss):
        raise RuntimeError(
            f"{built.recipe.file}: first-batch losses differ, seqkit "
            f"{seqkit_loss:.6f} and plain {plain_loss:.6f}, so the plain model is "
            "not the recipe's model"
        )
    return seqkit_loss


def _time_train_batch(task: Task) -> list[float]:
    """Record the seconds of each later `task.train_batch` call in the returned list.

    The Trainer builds each batch inside its step, while the plain loop gets
    its batches ready-made, so the report shows this share of the step.
    """
    seconds: list[float] = []
    train_batch = task.train_batch

    def timed_train_batch(epoch: int, index: int) -> dict:
        start = time.perf_counter()
        batch = train_batch(epoch, index)
        seconds.append(time.perf_counter() - start)
        return batch

    task.train_batch = timed_train_batch  # shadows the method on this instance
    return seconds


def _train_both(
    built: Built, settings: RecipeSettings, device: torch.device, run_dir: Path
) -> dict[str, Any]:
    """Run the Trainer and the plain loop step by step in turn, and time both."""
    train = built.recipe.train
    trainer = Trainer(built.model, built.task, train, run_dir, extra={})
    total = settings.warmup_steps + settings.timed_steps
    if total > trainer.total_steps:
        raise ValueError(
            f"the benchmark needs {total} steps but {built.recipe.file} trains for "
            f"{trainer.total_steps}"
        )
    plain = plain_model_for(built)
    optimizer = torch.optim.AdamW(
        plain.parameters(), lr=train.lr, weight_decay=train.weight_decay
    )
    # The plain loop gets the Trainer's batches, built before timing starts.
    per_epoch = built.task.steps_per_epoch()
    batches = []
    for step in range(total):
        batch = built.task.train_batch(*divmod(step, per_epoch))
        batches.append({key: value.to(device) for key, value in batch.items()})
    first_loss = _check_same_loss(built, plain, batches[0])

    tokens: dict[int, int] = {}

    def plain_step(step: int) -> None:
        loss, tokens[step] = plain.loss(batches[step - 1])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if train.clip > 0:
            torch.nn.utils.clip_grad_norm_(plain.parameters(), train.clip)
        optimizer.step()
        loss.item()

    batch_seconds = _time_train_batch(built.task)
    times = alternate_with_trainer(trainer, total, plain_step, device)
    del built.task.train_batch  # the class's method again
    timed = range(settings.warmup_steps + 1, total + 1)
    ratios = [times.between[step] / times.seqkit[step] for step in timed]
    return {
        "first_loss": first_loss,
        "tokens_per_step": statistics.fmean(tokens[step] for step in timed),
        "seqkit_tokens_per_s": median([tokens[s] / times.seqkit[s] for s in timed]),
        "plain_tokens_per_s": median([tokens[s] / times.between[s] for s in timed]),
        "ratio": median(ratios),
        "ratio_quartiles": statistics.quantiles(ratios, n=4, method="inclusive"),
        "step_seconds": median([times.seqkit[step] for step in timed]),
        "batch_seconds": median([batch_seconds[step - 1] for step in timed]),
    }


def _describe_batch(built: Built) -> str:
    train = built.recipe.train
    if built.task_name == "language-model":
        return f"{train.batch_size} x {train.seq_len} tokens"
    return f"{train.batch_size} examples"


def measure_recipe(name: str, settings: RecipeSettings, device: str) -> dict[str, Any]:
    """Train, decode and measure the memory of one recipe in this process."""
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    reset_peak_rss()
    cpu_start = sample_cpu()

    path = REPO_ROOT / "recipes" / f"{name}.toml"
    recipe, registry = load_recipe(path, _overrides(name, settings, device))
    try:
        check_recipe(recipe, registry, load_data=False)
    except SeqkitError as error:
        return {"recipe": name, "skipped": str(error)}

    seed_everything(recipe.train.seed)
    built = build(recipe, registry)
    torch_device = torch.device(device)
    built.model.to(torch_device)
    with tempfile.TemporaryDirectory(prefix="seqkit-bench-") as folder:
        training = _train_both(built, settings, torch_device, Path(folder))
    decoding = measure_decoding(built, settings.decoding, torch_device)
    cpu_end = sample_cpu()

    result = {
        "recipe": name,
        "task": built.task_name,
        "parameters": sum(p.numel() for p in built.model.parameters()),
        "batch": _describe_batch(built),
        "training": training,
        "decoding": decoding,
        "peak_rss_bytes": read_status_kib("VmHWM") * 1024,
        "seconds": cpu_end.wall - cpu_start.wall,
    }
    if device == "cuda":
        result["peak_cuda_bytes"] = torch.cuda.max_memory_allocated()
    return result


def _measure_in_subprocess(
    name: str, settings: RecipeSettings, device: str
) -> dict[str, Any]:
    command = [
        sys.executable,
        "-m",
        "bench.recipes",
        "--recipe",
        name,
        "--device",
        device,
        "--threads",
        str(torch.get_num_threads()),
        "--settings",
        json.dumps(asdict(settings)),
    ]
    completed = subprocess.run(
        command, cwd=REPO_ROOT, capture_output=True, text=True, check=False
    )
    if completed.returncode != 0:
        raise RuntimeError(
            f"the {name} recipe benchmark failed with exit status "
            f"{completed.returncode}:\n{completed.stderr}"
        )
    return json.loads(completed.stdout.strip().splitlines()[-1])


def run_recipes_benchmark(settings: RecipeSettings, device: str) -> dict[str, Any]:
    """Measure every recipe in `RECIPES` on `device` ("cpu" or "cuda")."""
    cpu_start = sample_cpu()
    results = []
    for name in RECIPES:
        print(f"  recipe {name} on {device} ...", file=sys.stderr, flush=True)
        if settings.fresh_process:
            result = _measure_in_subprocess(name, settings, device)
        else:
            result = measure_recipe(name, settings, device)
        if "skipped" in result:
            print(f"  skipped {name}: {result['skipped']}", file=sys.stderr)
        results.append(result)
    cpu_end = sample_cpu()
    return {
        "name": "recipes",
        "device": device,
        "settings": asdict(settings),
        "recipes": results,
        # no target: the benchmark reports the ratios
        "passed": True,
        "seconds": cpu_end.wall - cpu_start.wall,
        "other_cores_busy": other_cores_busy(cpu_start, cpu_end),
    }


def _settings_from_json(text: str) -> RecipeSettings:
    fields = json.loads(text)
    decoding = DecodingSettings(**fields.pop("decoding"))
    return RecipeSettings(decoding=decoding, **fields)


def main() -> None:
    """Measure one recipe and print the result as JSON, for the suite's subprocess."""
    parser = argparse.ArgumentParser(description="Benchmark one default recipe.")
    parser.add_argument("--recipe", choices=RECIPES, required=True)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument(
        "--settings",
        default=json.dumps(asdict(RecipeSettings())),
        help="RecipeSettings as JSON",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    settings = _settings_from_json(args.settings)
    print(json.dumps(measure_recipe(args.recipe, settings, args.device)))


if __name__ == "__main__":
    main()
