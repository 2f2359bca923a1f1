"""A run: build a recipe's components, train, evaluate and write the run folder."""

from __future__ import annotations

import json
import logging
import math
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from seqkit import distributed, plots, schema
from seqkit.checkpoint import load_checkpoint
from seqkit.context import BuildContext
from seqkit.errors import DataError, RecipeError, SeqkitError
from seqkit.interfaces import EvalResult, Sampler, Tokenizer
from seqkit.model import SequenceModel
from seqkit.monitor import TensorBoardMonitor, check_tensorboard
from seqkit.recipe import (
    COMPONENT_SECTIONS,
    SECTION_KINDS,
    Recipe,
    read_recipe,
    validate_recipe,
)
from seqkit.registry import Registry, create_registry
from seqkit.task import Task
from seqkit.tomlwriter import dumps
from seqkit.training import BEST, LAST, Trainer, resolve_device
from seqkit.vocab import SPECIALS, Vocabulary

log = logging.getLogger(__name__)


def load_recipe(
    path: str | Path, overrides: list[str] = (), trace_hooks: bool = False
) -> tuple[Recipe, Registry]:
    """Read, extend, override and validate a recipe; load the plugins it names.

    `trace_hooks` logs every plugin hook call at INFO.
    """
    path = Path(path)
    table = read_recipe(path, overrides)
    plugins = table.get("plugins", [])
    if not isinstance(plugins, list) or not all(isinstance(p, str) for p in plugins):
        raise RecipeError(
            "expected a list of module names or .py paths", str(path), "plugins"
        )
    registry = create_registry(plugins, path.parent, trace_hooks=trace_hooks)
    reject_failed_components(table, registry, str(path))
    recipe = validate_recipe(table, registry, str(path), path.parent)
    return recipe, registry


def reject_failed_components(table: dict, registry: Registry, file: str) -> None:
    """Raise `RecipeError` for a component that is missing because a plugin failed.

    The error names the failed plugin and its fault. Components missing for
    another reason are left to `validate_recipe`.
    """
    if not registry.failures:
        return
    named: list[tuple[str, object, str]] = []
    for section in COMPONENT_SECTIONS:
        raw = table.get(section)
        if isinstance(raw, dict):
            kind = SECTION_KINDS.get(section, section)
            named.append((kind, raw.get("plugin"), f"{section}.plugin"))
    evaluate = table.get("evaluate")
    metrics = evaluate.get("metrics") if isinstance(evaluate, dict) else None
    if isinstance(metrics, list):
        for index, name in enumerate(metrics):
            named.append(("metric", name, f"evaluate.metrics[{index}]"))
    for kind, name, key in named:
        source = file
        if isinstance(name, schema.CommandLineValue):
            name, source = name.text, "--set"
        if not isinstance(name, str) or name in registry.components[kind]:
            continue
        if any(failure.may_provide(kind, name) for failure in registry.failures):
            raise RecipeError(registry.missing_message(kind, name), source, key)


@dataclass
class Built:
    """The components of a recipe, ready to train or to generate."""

    recipe: Recipe
    registry: Registry
    tokenizer: Tokenizer
    vocabularies: dict[str, Vocabulary]
    task: Task
    model: SequenceModel
    sampler: Sampler
    # The registered name of the task, which the data source chose.
    task_name: str = ""
    # Examples per split ("train", "valid", "test"); empty without data.
    split_sizes: dict[str, int] = field(default_factory=dict)


def build(
    recipe: Recipe,
    registry: Registry,
    vocabularies: dict[str, Vocabulary] | None = None,
    load_data: bool = True,
    restoring: bool = False,
) -> Built:
    """Build tokenizer, task, model and sampler; load the data when `load_data`.

    Without `vocabularies` they are built from the training split. A run
    loaded from a checkpoint passes the stored ones and never rebuilds them, and
    `restoring` tells components that the checkpoint's weights replace theirs.
    """
    context = BuildContext(
        base_dir=recipe.base_dir, recipe_file=recipe.file, restoring=restoring
    )
    tokenizer, source_tokenizer = _build_tokenizers(recipe, context)
    _check_attention(recipe)
    data = recipe.data.cls(recipe.data.options, context)
    task_cls = registry.get("task", data.task)

    # data
    splits = None
    if load_data:
        splits = data.load()
        log.info(
            "data %s: %d train, %d valid, %d test examples",
            recipe.data.plugin,
            len(splits.train),
            len(splits.valid),
            len(splits.test),
        )
    if vocabularies is None:
        if splits is None:
            raise SeqkitError("building vocabularies needs the training data")
        vocabularies = task_cls.build_vocabularies(splits, tokenizer, source_tokenizer)
        for name, vocab in vocabularies.items():
            log.info("%s vocabulary: %d tokens", name, len(vocab))
    for name, vocab in vocabularies.items():
        log.debug("%s vocabulary: %d tokens", name, len(vocab))
        if len(vocab) <= len(SPECIALS):
            raise DataError(
                f"the {name} vocabulary contains only the special tokens "
                f"{', '.join(SPECIALS)}; lower tokenizer.min_count or check the data"
            )

    # model
    context.vocab = vocabularies["target"]
    context.source_vocab = vocabularies.get("source")
    context.attention = recipe.attention
    encoder = None
    if recipe.encoder is not None:
        encoder = recipe.encoder.cls(recipe.encoder.options, context)
        context.encoder_size = encoder.output_size
    decoder = recipe.decoder.cls(recipe.decoder.options, context)
    model = SequenceModel(encoder, decoder)
    sampler = recipe.sampler.cls(recipe.sampler.options, context)

    task = task_cls(tokenizer, vocabularies, recipe, source_tokenizer)
    task.sampler = sampler
    task.encoder = encoder
    if splits is not None:
        task.prepare(splits)
    split_sizes = {}
    if splits is not None:
        split_sizes = {name: len(splits.named(name)) for name in SPLITS}
    return Built(
        recipe,
        registry,
        tokenizer,
        vocabularies,
        task,
        model,
        sampler,
        data.task,
        split_sizes,
    )


SPLITS = ("train", "valid", "test")


def _build_tokenizers(
    recipe: Recipe, context: BuildContext
) -> tuple[Tokenizer, Tokenizer]:
    """Return the target tokenizer and the source tokenizer (the same by default)."""
    tokenizer = recipe.tokenizer.cls(recipe.tokenizer.options, context)
    source_tokenizer = tokenizer
    if recipe.source_tokenizer is not None:
        component = recipe.source_tokenizer
        source_tokenizer = component.cls(component.options, context)
    return tokenizer, source_tokenizer


def _check_attention(recipe: Recipe) -> None:
    if recipe.attention is not None and recipe.encoder is None:
        raise RecipeError(
            "[attention] attends over an encoder's memory, but the recipe has no "
            "[encoder]; add one or remove [attention]",
            recipe.file,
            "attention",
        )


@dataclass
class CheckReport:
    """The components a run uses and their sizes, as `check_recipe` found them.

    components: (section, component name, providing plugin) in recipe order,
    then the task and the metrics.
    split_sizes, vocabulary_sizes and parameters are empty or None when the
    data were not loaded.
    """

    components: list[tuple[str, str, str]]
    split_sizes: dict[str, int] = field(default_factory=dict)
    vocabulary_sizes: dict[str, int] = field(default_factory=dict)
    parameters: int | None = None


def check_recipe(
    recipe: Recipe, registry: Registry, load_data: bool = True
) -> CheckReport:
    """Check that a run of `recipe` can start, without training.

    Checks the device and the TensorBoard package that `[train]`
    requests, and the data source's input files, then builds the tokenizers and
    looks up the task and the metrics. With `load_data` it also loads the
    data and builds the vocabularies, the model and the sampler, as `train`
    does before its first step. Raises `SeqkitError` on the first problem.
    """
    resolve_device(recipe.train.device)
    if recipe.train.tensorboard:
        check_tensorboard()
    context = BuildContext(base_dir=recipe.base_dir, recipe_file=recipe.file)
    data = recipe.data.cls(recipe.data.options, context)
    data.check()
    tokenizer, _ = _build_tokenizers(recipe, context)
    _check_attention(recipe)
    task_cls = registry.get("task", data.task)
    report = CheckReport(components=[])
    for section in COMPONENT_SECTIONS:
        component = getattr(recipe, section)
        if component is not None:
            kind = SECTION_KINDS.get(section, section)
            provider = registry.provider(kind, component.plugin)
            report.components.append((section, component.plugin, provider))
    report.components.append(("task", data.task, registry.provider("task", data.task)))
    if load_data:
        built = build(recipe, registry)
        metrics = [name for name, _ in metric_classes(built)]
        report.split_sizes = built.split_sizes
        report.vocabulary_sizes = {
            name: len(vocab) for name, vocab in built.vocabularies.items()
        }
        report.parameters = sum(p.numel() for p in built.model.parameters())
    else:
        metrics = recipe.evaluate.metrics or task_cls.default_metrics.get(
            tokenizer.level, []
        )
        for name in metrics:
            registry.get("metric", name)
    for name in metrics:
        report.components.append(("metric", name, registry.provider("metric", name)))
    return report


def seed_everything(seed: int) -> None:
    """Seed Python's and torch's random generators."""
    random.seed(seed)
    torch.manual_seed(seed)


def train(
    recipe: Recipe,
    registry: Registry,
    run_dir: str | Path,
    resume: bool = False,
    stop_at: int | None = None,
) -> dict[str, Any]:
    """Train a recipe into `run_dir`, evaluate on the test split, write outputs.

    Returns the metrics written to metrics.json. `stop_at` ends training
    after that many steps without the final evaluation, as an interruption
    would; a later call with `resume=True` continues from there.

    Started by torchrun in several processes, each trains on its share of
    every batch under DistributedDataParallel. Only rank 0 writes files and
    evaluates on the test split; the other ranks return an empty dict.
    """
    run_dir = Path(run_dir)
    options = recipe.train
    shard = distributed.shard_from_environment()
    distributed.check_batch_size(options.batch_size, shard, recipe.file)
    prepare_run_folder(run_dir, resume)
    if options.threads is not None:
        torch.set_num_threads(options.threads)
    seed_everything(options.seed)
    resolve_device(options.device)  # fail before loading data when CUDA is missing

    checkpoint = None
    if resume:
        checkpoint = load_checkpoint(run_dir / LAST)
        _check_same_model(checkpoint["recipe"], recipe.to_table(), run_dir / LAST)
    monitor = None
    if options.tensorboard and shard.is_main:
        resume_step = checkpoint["train_state"]["step"] if checkpoint else None
        monitor = TensorBoardMonitor(run_dir / "tensorboard", resume_step)
    try:
        return _train(recipe, registry, run_dir, checkpoint, stop_at, monitor, shard)
    finally:
        if monitor is not None:
            monitor.close()


def _train(
    recipe: Recipe,
    registry: Registry,
    run_dir: Path,
    checkpoint: dict[str, Any] | None,
    stop_at: int | None,
    monitor: TensorBoardMonitor | None,
    shard: distributed.Shard,
) -> dict[str, Any]:
    options = recipe.train
    device = distributed.device_for(shard, resolve_device(options.device))
    resume = checkpoint is not None
    vocabularies = _vocabularies(checkpoint) if checkpoint else None
    built = build(recipe, registry, vocabularies, restoring=resume)
    # Fail now, not after hours of training, when a default metric is missing.
    metric_classes(built)
    built.model.to(device)
    if shard.is_main:
        recipe_text = dumps(recipe.to_table())
        (run_dir / "recipe.toml").write_text(recipe_text, encoding="utf-8")
    parameters = sum(p.numel() for p in built.model.parameters())
    log.info("model: %s parameters", f"{parameters:,}")
    if shard.distributed:
        # The same weights on every rank, but each its own dropout masks.
        torch.manual_seed(options.seed + shard.rank)

    extra = {
        "vocabularies": {name: v.to_list() for name, v in built.vocabularies.items()},
        "recipe": recipe.to_table(),
        "base_dir": str(recipe.base_dir.resolve()),
        "data_fingerprint": built.task.fingerprint() or "",
    }
    distributed.start(shard, device)
    trainer = Trainer(built.model, built.task, options, run_dir, extra, shard, monitor)
    if resume:
        trainer.restore(run_dir / LAST)
    state = trainer.fit(stop_at=stop_at)
    distributed.wait_for_all(shard)
    if not shard.is_main:
        return {}
    built.task.shard = distributed.SINGLE
    plots.plot_loss(state.history, run_dir / "loss.png")
    if stop_at is not None and state.step < trainer.total_steps:
        return {}
    metrics = _evaluate_best(built, run_dir, device)
    samples = write_samples(built, run_dir / "samples.txt")
    if monitor is not None:
        numbers = {
            f"test/{key.removeprefix('test_')}": value
            for key, value in metrics.items()
            if key.startswith("test_") and isinstance(value, int | float)
        }
        monitor.scalars(state.step, numbers)
        monitor.text(state.step, "samples", samples)
    return metrics


def _evaluate_best(built: Built, run_dir: Path, device: torch.device) -> dict:
    """Evaluate the best weights on the test split; write metrics.json and reports."""
    best = load_checkpoint(run_dir / BEST, map_location=device)
    built.model.load_state_dict(best["model"])
    # With train.eval_batches the best loss covers only part of the split.
    val_loss = None
    if built.recipe.train.eval_batches is None:
        val_loss = best["train_state"]["best_loss"]
    metrics, test = measure_splits(built, val_loss)
    (run_dir / "metrics.json").write_text(
        json.dumps(metrics, indent=2) + "\n", encoding="utf-8"
    )
    log.info("test metrics: %s", json.dumps(metrics))
    built.task.write_reports(run_dir, test, built.model)
    return metrics


def evaluate_built(built: Built, val_loss: float | None = None) -> dict[str, Any]:
    """Evaluate on the validation and test splits with the recipe's metrics."""
    return measure_splits(built, val_loss)[0]


def measure_splits(
    built: Built, val_loss: float | None = None
) -> tuple[dict[str, Any], EvalResult]:
    """Return the metrics of `evaluate_built` and the test split's `EvalResult`."""
    recipe, task = built.recipe, built.task
    metrics_by_name = metric_classes(built)
    context = BuildContext(base_dir=recipe.base_dir, vocab=built.vocabularies["target"])
    result: dict[str, Any] = {}
    if val_loss is None or not math.isfinite(val_loss):
        val_loss = task.evaluate(built.model, "valid", decode=False).loss
    result["val_loss"] = val_loss
    test = task.evaluate(built.model, "test", decode=True)
    result["test_loss"] = test.loss
    for _, cls in metrics_by_name:
        for key, value in cls(None, context).compute(test).items():
            # Strings, such as sacrebleu signatures, describe the scores.
            name = key if isinstance(value, str) else f"test_{key}"
            result[name] = value
    return result, test


def metric_classes(built: Built) -> list[tuple[str, type]]:
    """Return (name, class) of the recipe's metrics, or of the task's defaults.

    Raises `PluginError` for a metric that no installed plugin registers.
    """
    names = built.recipe.evaluate.metrics or built.task.default_metrics.get(
        built.tokenizer.level, []
    )
    return [(name, built.registry.get("metric", name)) for name in names]


def write_samples(built: Built, path: Path) -> str:
    """Write the task's samples, separated by blank lines, to `path`; return them."""
    generator = torch.Generator().manual_seed(built.recipe.train.seed)
    texts = built.task.samples(built.model, built.sampler, generator)
    text = "\n\n".join(texts)
    path.write_text(text + "\n", encoding="utf-8")
    return text


def load_run(run_dir: str | Path, load_data: bool = False) -> Built:
    """Rebuild a trained run from its folder, with its stored vocabularies."""
    run_dir = Path(run_dir)
    if run_dir.is_file():
        raise SeqkitError(
            f"expected a run folder, got the file {run_dir}; pass the folder that "
            "contains checkpoint.pt"
        )
    if not run_dir.is_dir():
        raise SeqkitError(
            f"run folder not found: {run_dir}; pass the --out folder of `seqkit run`"
        )
    checkpoint = load_checkpoint(run_dir / BEST)
    table = checkpoint["recipe"]
    base_dir = Path(checkpoint.get("base_dir", run_dir))
    plugins = table.get("plugins", [])
    if plugins:
        log.info("importing the plugins that %s names: %s", run_dir, plugins)
    registry = create_registry(plugins, run_dir)
    reject_failed_components(table, registry, str(run_dir / "recipe.toml"))
    recipe = validate_recipe(table, registry, str(run_dir / "recipe.toml"), base_dir)
    if recipe.train.threads is not None:
        torch.set_num_threads(recipe.train.threads)
    built = build(
        recipe, registry, _vocabularies(checkpoint), load_data=load_data, restoring=True
    )
    stored = checkpoint.get("data_fingerprint")
    if load_data and stored and built.task.fingerprint() != stored:
        log.warning(
            "the data read now differ from the data %s was trained on; its "
            "metrics will not match the run's metrics.json",
            run_dir,
        )
    built.model.load_state_dict(checkpoint["model"])
    built.model.eval()
    return built


def _vocabularies(checkpoint: dict) -> dict[str, Vocabulary]:
    return {
        name: Vocabulary(tokens) for name, tokens in checkpoint["vocabularies"].items()
    }


# [train] keys that a resumed run cannot change: the restored optimizer,
# schedule and data order were built from them.
FIXED_ON_RESUME = (
    "batch_size",
    "seq_len",
    "lr",
    "optimizer",
    "weight_decay",
    "schedule",
    "warmup_steps",
    "seed",
)


def prepare_run_folder(run_dir: Path, resume: bool) -> None:
    """Create `run_dir`, refusing to mix a new run into an existing one."""
    if resume:
        if not (run_dir / LAST).is_file():
            raise SeqkitError(
                f"nothing to resume: {run_dir / LAST} does not exist; start the run "
                "without --resume"
            )
        return
    existing = [name for name in (BEST, LAST) if (run_dir / name).exists()]
    if existing:
        raise SeqkitError(
            f"run folder {run_dir} already contains a run ({', '.join(existing)}); "
            "continue it with --resume, or choose another folder with --out"
        )
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise SeqkitError(
            f"cannot create run folder {run_dir}: {error.strerror}; choose another "
            "folder with --out"
        ) from None


def _check_same_model(stored: dict, current: dict, path: Path) -> None:
    for section in (
        "data",
        "tokenizer",
        "source_tokenizer",
        "encoder",
        "decoder",
        "attention",
    ):
        if stored.get(section) != current.get(section):
            raise RecipeError(
                f"section [{section}] differs from the one stored in {path}; resuming "
                "needs the same data, tokenizer and model. Start a new run with --out",
                key=section,
            )
    stored_train, current_train = stored.get("train", {}), current.get("train", {})
    changed = [
        key
        for key in FIXED_ON_RESUME
        if stored_train.get(key) != current_train.get(key)
    ]
    if changed:
        listed = ", ".join(
            f"{key} {stored_train.get(key)!r} -> {current_train.get(key)!r}"
            for key in changed
        )
        raise RecipeError(
            f"resuming cannot change {listed}; the checkpoint in {path} was trained "
            "with the stored values. Resume with the same values or start a new run",
            key="train",
        )
