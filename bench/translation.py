"""Decoding and training speed of the translation pattern, on cmudict words.

The model reads a word's characters and writes its ARPAbet phones (grapheme
to phoneme conversion): a bidirectional LSTM encoder (embedding 128, hidden
256 per direction), an LSTM decoder (embedding 128, hidden 256) and Luong
attention with the "general" score. The words are the `examples` (20,000)
words of the `cmudict` data source whose SHA-256 hashes are lowest, split by
hash, so they are the same on every machine.

Benchmark 6, `beam-search`: the model first trains `pretrain_steps` steps, so
that its outputs end at `<eos>` after a realistic number of phones instead
of running to the length cap. Then `TranslationTask.translate` decodes the
same test words three ways: beam search (beam 5) over one batch of all of
them, beam search one word at a time, and greedy decoding over one batch.
The run checks that beam search returns the same phones and scores at both
batch sizes.

Benchmark 7, `attention-training`: the same encoder and decoder sizes with
the three attention modes of `RNNDecoder`, and Bahdanau attention in the
loop-free mode. With `attend = "after"` and no input feeding, the decoder
runs its LSTM once over the whole target and attends over all outputs in one
batched product. Input feeding and `attend = "before"` run the target one
step at a time. Every variant trains on the same batches with
`TranslationTask.loss`, the optimizer that `train.optimizer` names and
gradient clipping, as the Trainer does. Benchmark 1 measures the Trainer's
own cost. The variants alternate step by step, and the variant that goes
first rotates at every step.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from seqkit_builtins.beam import BeamOptions, BeamSearch
from seqkit_builtins.samplers import GreedyOptions, GreedySampler
from seqkit_builtins.translation_task import Translation

from bench.common import REPO_ROOT, median, other_cores_busy, sample_cpu
from bench.steps import train_batches, train_step
from seqkit.recipe import validate_recipe
from seqkit.registry import create_registry
from seqkit.run import Built, build, seed_everything
from seqkit.training import build_optimizer

BEAM_SIZE = 5
# Batching B words turns B * T single-word decoder steps of K hypotheses into
# about T steps of B * K hypotheses, so the batch should be several times
# faster per word. This floor catches a loss of batching, such as a Python
# loop over rows or finished rows that keep stepping. It is not fitted to a
# measured figure.
MIN_BATCH_SPEEDUP = 3.0
# Tolerance of the check that both batch sizes give the same scores.
SCORE_TOLERANCE = 1e-4
RECIPE_NAME = "bench/translation.py"


@dataclass
class BeamSearchSettings:
    """Data, training and repetitions of the beam search benchmark."""

    examples: int = 20_000
    pretrain_steps: int = 150
    sources: int = 64
    repeats: int = 9


@dataclass
class AttentionTrainingSettings:
    """Data and steps per variant of the attention training benchmark."""

    examples: int = 20_000
    warmup_steps: int = 3
    timed_steps: int = 30


@dataclass
class _Variant:
    key: str
    title: str
    attention: dict[str, Any]
    decoder: dict[str, Any]


LUONG = {"plugin": "luong", "score": "general"}
BAHDANAU = {"plugin": "bahdanau", "size": 256}
VARIANTS = (
    _Variant("after", 'Luong general, attend = "after"', LUONG, {}),
    _Variant(
        "after_bahdanau", 'Bahdanau, attend = "after"', BAHDANAU, {"attend": "after"}
    ),
    _Variant(
        "input_feeding",
        'Luong general, attend = "after", input_feeding',
        LUONG,
        {"input_feeding": True},
    ),
    _Variant("before", 'Bahdanau, attend = "before"', BAHDANAU, {"attend": "before"}),
)


def recipe_table(examples: int, variant: _Variant) -> dict[str, Any]:
    """Return the recipe of the benchmark model, as the TOML file's table."""
    return {
        "data": {"plugin": "cmudict", "max_examples": examples},
        # Phones are separated by spaces, and "AE1" is one word token.
        "tokenizer": {"plugin": "word"},
        "source_tokenizer": {"plugin": "char"},
        "encoder": {
            "plugin": "rnn",
            "cell": "lstm",
            "embedding_size": 128,
            "hidden_size": 256,
            "bidirectional": True,
        },
        "attention": variant.attention,
        "decoder": {
            "plugin": "rnn",
            "cell": "lstm",
            "embedding_size": 128,
            "hidden_size": 256,
            **variant.decoder,
        },
        "sampler": {"plugin": "beam", "beam_size": BEAM_SIZE},
        # seq_len caps the source at 31 characters and decoding at 32 tokens.
        "train": {"batch_size": 64, "seq_len": 32, "device": "cpu"},
        "evaluate": {"metrics": ["perplexity"]},
    }


def build_variant(
    examples: int, variant: _Variant, data_from: Built | None = None
) -> Built:
    """Build the model of `variant`, with the vocabularies of `data_from` if given.

    Without `data_from`, the build loads the data and builds the vocabularies.
    """
    registry = create_registry([], REPO_ROOT)
    recipe = validate_recipe(
        recipe_table(examples, variant), registry, RECIPE_NAME, REPO_ROOT
    )
    seed_everything(recipe.train.seed)
    if data_from is None:
        return build(recipe, registry)
    return build(recipe, registry, vocabularies=data_from.vocabularies, load_data=False)


# ---------------------------------------------------------------- benchmark 6


def _spread_test_words(built: Built, count: int) -> tuple[list[str], list[list[str]]]:
    """Return `count` test words spread evenly over the split, and their references."""
    test = built.task.encoded["test"]
    if len(test.texts) < count:
        raise ValueError(
            f"the cmudict test split has {len(test.texts)} words, fewer than the "
            f"{count} requested. Raise BeamSearchSettings.examples"
        )
    rows = torch.linspace(0, len(test.texts) - 1, count).long().tolist()
    return [test.texts[row] for row in rows], [test.references[row] for row in rows]


def _check_same_outputs(single: list[Translation], batched: list[Translation]) -> int:
    """Raise RuntimeError unless both lists contain the same outputs.

    Returns the number of outputs compared.
    """
    for index, (alone, together) in enumerate(zip(single, batched, strict=True)):
        if alone.tokens != together.tokens:
            raise RuntimeError(
                f"word {index} decodes to {alone.text!r} alone but "
                f"{together.text!r} in a batch, so beam search depends on the batch"
            )
        if abs(alone.score - together.score) > SCORE_TOLERANCE:
            raise RuntimeError(
                f"word {index} scores {alone.score:.6f} alone but "
                f"{together.score:.6f} in a batch, so beam search depends on the batch"
            )
    return len(single)


def _describe_outputs(
    translations: list[Translation], references: list[list[str]], max_new_tokens: int
) -> dict[str, float]:
    """Return the mean phones, the share that ended at `<eos>` and the exact matches.

    `tokens` leaves out `<eos>`, so an output that ended there has fewer
    tokens than the cap `max_new_tokens`, which counts `<eos>`. An output cut
    at the cap has exactly `max_new_tokens`.
    """
    return {
        "mean_phones": statistics.fmean(len(t.tokens) for t in translations),
        "ended_at_eos": statistics.fmean(
            len(t.tokens) < max_new_tokens for t in translations
        ),
        "exact_match": statistics.fmean(
            t.text in refs for t, refs in zip(translations, references, strict=True)
        ),
    }


def run_beam_search_benchmark(settings: BeamSearchSettings) -> dict[str, Any]:
    """Measure batched beam search against one word at a time and against greedy."""
    cpu_start = sample_cpu()
    built = build_variant(settings.examples, VARIANTS[0])
    optimizer = build_optimizer(built.model, built.recipe.train)
    built.model.train()
    losses = []
    for batch in train_batches(built, settings.pretrain_steps):
        loss, _ = train_step(built.task, built, optimizer, batch)
        losses.append(loss)
    trained_at = sample_cpu()

    words, references = _spread_test_words(built, settings.sources)
    beam = BeamSearch(BeamOptions(beam_size=BEAM_SIZE))
    greedy = GreedySampler(GreedyOptions())
    cases: dict[str, Callable[[], list[Translation]]] = {
        "beam_batched": lambda: built.task.translate(
            built.model, words, beam, batch_size=len(words)
        ),
        "beam_single": lambda: built.task.translate(
            built.model, words, beam, batch_size=1
        ),
        "greedy_batched": lambda: built.task.translate(
            built.model, words, greedy, batch_size=len(words)
        ),
    }

    # warm-up, which also checks that the batch does not change the outputs
    outputs = {name: call() for name, call in cases.items()}
    compared = _check_same_outputs(outputs["beam_single"], outputs["beam_batched"])

    seconds: dict[str, list[float]] = {name: [] for name in cases}
    names = list(cases)
    for repeat in range(settings.repeats):
        for name in names if repeat % 2 == 0 else names[::-1]:
            start = time.perf_counter()
            cases[name]()
            seconds[name].append(time.perf_counter() - start)
    cpu_end = sample_cpu()

    batch_speedups = [
        single / batched
        for single, batched in zip(
            seconds["beam_single"], seconds["beam_batched"], strict=True
        )
    ]
    beam_costs = [
        beam_s / greedy_s
        for beam_s, greedy_s in zip(
            seconds["beam_batched"], seconds["greedy_batched"], strict=True
        )
    ]
    speedup = median(batch_speedups)
    tail = losses[-10:]
    cap = built.recipe.train.seq_len
    return {
        "name": "beam-search",
        "settings": vars(settings),
        "beam_size": BEAM_SIZE,
        "max_new_tokens": cap,
        "train_words": len(built.task.encoded["train"].texts),
        "final_loss": statistics.fmean(tail) if tail else math.nan,
        "pretrain_seconds": trained_at.wall - cpu_start.wall,
        "mean_source_chars": statistics.fmean(len(word) for word in words),
        "mean_reference_phones": statistics.fmean(
            len(refs[0].split()) for refs in references
        ),
        "words_per_s": {
            name: len(words) / median(values) for name, values in seconds.items()
        },
        "batch_speedup": speedup,
        "batch_speedups": batch_speedups,
        "beam_cost": median(beam_costs),
        "beam_costs": beam_costs,
        "same_outputs": compared,
        "outputs": {
            "beam": _describe_outputs(outputs["beam_batched"], references, cap),
            "greedy": _describe_outputs(outputs["greedy_batched"], references, cap),
        },
        "target_speedup": MIN_BATCH_SPEEDUP,
        "passed": speedup >= MIN_BATCH_SPEEDUP,
        "seconds": cpu_end.wall - cpu_start.wall,
        "other_cores_busy": other_cores_busy(cpu_start, cpu_end),
    }


# ---------------------------------------------------------------- benchmark 7


def run_attention_training_benchmark(
    settings: AttentionTrainingSettings,
) -> dict[str, Any]:
    """Measure training tokens/s of the loop-free decoder against the looping ones."""
    cpu_start = sample_cpu()
    first = build_variant(settings.examples, VARIANTS[0])
    models = {VARIANTS[0].key: first}
    for variant in VARIANTS[1:]:
        models[variant.key] = build_variant(settings.examples, variant, first)
    optimizers = {
        key: build_optimizer(built.model, built.recipe.train)
        for key, built in models.items()
    }
    # Every variant trains on the same batches, built before timing starts,
    # with the loss of the task that loaded the data.
    batches = train_batches(first, settings.warmup_steps + settings.timed_steps)
    keys = [variant.key for variant in VARIANTS]
    seconds: dict[str, list[float]] = {key: [] for key in keys}
    tokens: list[int] = []
    for built in models.values():
        built.model.train()
    for step, batch in enumerate(batches):
        shift = step % len(keys)
        for key in keys[shift:] + keys[:shift]:
            start = time.perf_counter()
            _, count = train_step(first.task, models[key], optimizers[key], batch)
            seconds[key].append(time.perf_counter() - start)
        tokens.append(count)
    cpu_end = sample_cpu()

    del tokens[: settings.warmup_steps]
    for key in keys:
        del seconds[key][: settings.warmup_steps]

    def speedups(slower: str, faster: str) -> list[float]:
        return [
            slow / fast
            for slow, fast in zip(seconds[slower], seconds[faster], strict=True)
        ]

    timed = batches[settings.warmup_steps :]
    variants = []
    for variant in VARIANTS:
        ratios = speedups(variant.key, "after")
        variants.append(
            {
                "key": variant.key,
                "title": variant.title,
                "loops": models[variant.key].model.decoder.loops,
                "tokens_per_s": median(
                    [n / s for n, s in zip(tokens, seconds[variant.key], strict=True)]
                ),
                "speedup": median(ratios),
                "speedup_quartiles": statistics.quantiles(ratios, n=4),
            }
        )
    return {
        "name": "attention-training",
        "settings": vars(settings),
        "batch_size": first.recipe.train.batch_size,
        "mean_source_steps": statistics.fmean(b["source"].shape[1] for b in timed),
        "mean_target_steps": statistics.fmean(b["inputs"].shape[1] for b in timed),
        "variants": variants,
        "before_vs_after_bahdanau": median(speedups("before", "after_bahdanau")),
        # no target: the benchmark reports the ratios and what explains them
        "passed": True,
        "seconds": cpu_end.wall - cpu_start.wall,
        "other_cores_busy": other_cores_busy(cpu_start, cpu_end),
    }
