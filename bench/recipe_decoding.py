"""Output speed of a built recipe: generation, labels, tags, translations, captions.

Each task is timed through the method that its command-line operation calls:
`generate_text` for a language model, `predict_labels` for classification,
`tag` for tagging, `translate` for translation and `caption` for captioning.
Translation and captioning run twice, greedily and with the recipe's beam
search, in ABBA order over the repetitions. Each rate is the median over
repetitions, after one warm-up call per case.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from seqkit_builtins.samplers import GreedyOptions, GreedySampler

from bench.common import median, synchronize
from seqkit import generate_text
from seqkit.run import Built


@dataclass
class DecodingSettings:
    """Output sizes and timed repetitions per recipe."""

    new_tokens: int = 200  # language models: new tokens per `generate_text` call
    texts: int = 256  # classification and tagging: texts per call
    sources: int = 64  # translation and captioning: sentences or images per call
    repeats: int = 3


def _time_cases(
    cases: dict[str, Callable[[], Any]], repeats: int, device: torch.device
) -> tuple[dict[str, float], dict[str, Any]]:
    """Return the median seconds of each case and its warm-up output."""
    outputs = {name: call() for name, call in cases.items()}
    seconds: dict[str, list[float]] = {name: [] for name in cases}
    names = list(cases)
    for repeat in range(repeats):
        for name in names if repeat % 2 == 0 else names[::-1]:
            synchronize(device)
            start = time.perf_counter()
            cases[name]()
            synchronize(device)
            seconds[name].append(time.perf_counter() - start)
    return {name: median(values) for name, values in seconds.items()}, outputs


def _language_model(
    built: Built, settings: DecodingSettings, device: torch.device
) -> dict[str, Any]:
    vocab = built.vocabularies["target"]
    # Special tokens never win, so no sample ends early at `<eos>` and every
    # call produces exactly `new_tokens` tokens.
    with torch.no_grad():
        specials = [vocab.pad_id, vocab.unk_id, vocab.bos_id, vocab.eos_id]
        built.model.decoder.output.bias[specials] = -1e4
    prompt = built.recipe.evaluate.prompt

    def generate() -> list[str]:
        return generate_text(
            built.model,
            built.tokenizer,
            vocab,
            built.sampler,
            prompt=prompt,
            max_new_tokens=settings.new_tokens,
            num_samples=1,
            generator=torch.Generator().manual_seed(0),
        )

    seconds, _ = _time_cases({"generate": generate}, settings.repeats, device)
    return {
        "unit": "tokens/s",
        "rate": settings.new_tokens / seconds["generate"],
        "method": f"`generate_text`, batch 1, {settings.new_tokens} new tokens, "
        f"sampler `{built.recipe.sampler.plugin}`",
    }


def _classification(
    built: Built, settings: DecodingSettings, device: torch.device
) -> dict[str, Any]:
    texts = built.task.test_texts[: settings.texts]
    cases = {"predict": lambda: built.task.predict_labels(built.model, texts)}
    seconds, _ = _time_cases(cases, settings.repeats, device)
    return {
        "unit": "texts/s",
        "rate": len(texts) / seconds["predict"],
        "method": f"`predict_labels`, {len(texts)} test texts",
    }


def _tagging(
    built: Built, settings: DecodingSettings, device: torch.device
) -> dict[str, Any]:
    texts = [example.source for example in built.task.examples["test"]]
    texts = texts[: settings.texts]
    cases = {"tag": lambda: built.task.tag(built.model, texts)}
    seconds, _ = _time_cases(cases, settings.repeats, device)
    characters = sum(len(text) for text in texts)
    return {
        "unit": "texts/s",
        "rate": len(texts) / seconds["tag"],
        "method": f"`tag`, {len(texts)} test texts, "
        f"{characters / seconds['tag']:,.0f} characters/s",
    }


def _greedy_and_beam(
    built: Built,
    sources: list[Any],
    decode: Callable[[Any], list[Any]],
    settings: DecodingSettings,
    device: torch.device,
) -> dict[str, Any]:
    """Time `decode(sampler)` with greedy decoding and with the recipe's sampler.

    After a few training steps, a model ends most outputs at the first step or
    at none, depending on the recipe. `<eos>` is banned through its output
    bias, so every output runs to its length cap and the rates are comparable
    between runs.
    """
    eos_id = built.vocabularies["target"].eos_id
    with torch.no_grad():
        built.model.decoder.output.bias[eos_id] = -1e4
    cases = {"greedy": lambda: decode(GreedySampler(GreedyOptions()))}
    beam_size = None
    if built.recipe.sampler.plugin == "beam":
        beam_size = built.recipe.sampler.options.beam_size
        cases["beam"] = lambda: decode(built.sampler)
    seconds, outputs = _time_cases(cases, settings.repeats, device)
    tokens = sum(len(output.tokens) for output in outputs["greedy"])
    result: dict[str, Any] = {
        "unit": "tokens/s",
        "rate": tokens / seconds["greedy"],
        "method": f"greedy, {len(sources)} test sources, "
        f"{tokens / len(sources):.1f} tokens per output with `<eos>` banned",
    }
    if beam_size is not None:
        beam_tokens = sum(len(output.tokens) for output in outputs["beam"])
        result["beam"] = {
            "beam_size": beam_size,
            "sentences_per_s": len(sources) / seconds["beam"],
            "tokens_per_output": beam_tokens / len(sources),
        }
    return result


def _translation(
    built: Built, settings: DecodingSettings, device: torch.device
) -> dict[str, Any]:
    texts = built.task.encoded["test"].texts[: settings.sources]
    return _greedy_and_beam(
        built,
        texts,
        lambda sampler: built.task.translate(built.model, texts, sampler),
        settings,
        device,
    )


def _captioning(
    built: Built, settings: DecodingSettings, device: torch.device
) -> dict[str, Any]:
    images = built.task.encoded_images["test"].images[: settings.sources]
    return _greedy_and_beam(
        built,
        images,
        lambda sampler: built.task.caption(built.model, images, sampler),
        settings,
        device,
    )


MEASURES = {
    "language-model": _language_model,
    "classification": _classification,
    "tagging": _tagging,
    "translation": _translation,
    "captioning": _captioning,
}


def measure_decoding(
    built: Built, settings: DecodingSettings, device: torch.device
) -> dict[str, Any]:
    """Measure the output speed of `built`'s task on its test split.

    Returns "unit", "rate" and "method", and for a recipe that decodes with
    beam search also "beam" with "beam_size", "sentences_per_s" and
    "tokens_per_output". It changes the output biases of special tokens in a
    language model and `<eos>`'s in a translation or captioning model, so
    call it after training.
    """
    if built.task_name not in MEASURES:
        raise ValueError(f"no decoding measurement for the {built.task_name!r} task")
    return MEASURES[built.task_name](built, settings, device)
