"""Generation speed: seqkit.generate_text against a plain nn.LSTM stepping loop.

seqkit samples with the `sample` sampler at temperature 0.8, batch of one, from
the recipe's prompt. If the recurrent state is carried from step to step and the
prefix is never fed again, the time per new token does not grow with the
number of tokens, so per-token(2,000) / per-token(100) stays near 1.

The plain side steps nn.LSTM one token at a time with the same weights, a
softmax at the same temperature and torch.multinomial.

The model is the recipe's freshly initialised decoder. The logits of the special
tokens are set far below the others, so no sample stops early at `<eos>` and
every new token is one character: each run produces exactly the requested
number of tokens, which `_check_length` verifies.

Shapes: B batch (1 here), V vocabulary size.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from bench.common import RECIPE, median, other_cores_busy, sample_cpu
from bench.training import PlainLanguageModel, plain_model_like
from seqkit import generate_text
from seqkit.run import Built, build, load_recipe, seed_everything
from seqkit.vocab import Vocabulary

TEMPERATURE = 0.8
MAX_GROWTH = 1.2


@dataclass
class GenerationSettings:
    """Lengths and repetitions of the generation benchmark."""

    short_tokens: int = 100
    long_tokens: int = 2000
    repeats: int = 9


@torch.no_grad()
def plain_generate(
    model: PlainLanguageModel,
    vocab: Vocabulary,
    prompt: str,
    max_new_tokens: int,
    temperature: float,
    generator: torch.Generator,
) -> str:
    """Continue `prompt` by stepping nn.LSTM one token at a time.

    Returns the prompt followed by the new text.
    """
    model.eval()
    ids = vocab.encode(list(prompt)) or [vocab.bos_id]
    prefix = torch.tensor([ids])  # (1, P)
    state = None
    if prefix.shape[1] > 1:
        _, state = model.rnn(model.embedding(prefix[:, :-1]), state)
    token = prefix[:, -1:]  # (1, 1)
    new_tokens: list[Tensor] = []
    for _ in range(max_new_tokens):
        hidden, state = model.rnn(model.embedding(token), state)  # (1, 1, H)
        logits = model.output(hidden[:, -1])  # (1, V)
        probs = torch.softmax(logits / temperature, dim=-1)  # (1, V)
        token = torch.multinomial(probs, 1, generator=generator)  # (1, 1)
        new_tokens.append(token)
    new_ids = torch.cat(new_tokens, dim=1)[0].tolist()
    return prompt + "".join(vocab.tokens[i] for i in new_ids)


def _build() -> tuple[Built, PlainLanguageModel, str]:
    overrides = ["sampler.plugin=sample", f"sampler.temperature={TEMPERATURE}"]
    recipe, registry = load_recipe(RECIPE, overrides)
    if recipe.tokenizer.plugin != "char":
        raise ValueError(
            "the generation benchmark counts one character per token and needs "
            f'[tokenizer] plugin = "char" in {RECIPE}'
        )
    seed_everything(recipe.train.seed)
    built = build(recipe, registry)
    vocab = built.vocabularies["target"]
    with torch.no_grad():
        specials = [vocab.pad_id, vocab.unk_id, vocab.bos_id, vocab.eos_id]
        built.model.decoder.output.bias[specials] = -1e4
    built.model.eval()
    plain = plain_model_like(built)
    return built, plain, recipe.evaluate.prompt


def run_generation_benchmark(settings: GenerationSettings) -> dict[str, Any]:
    """Measure seqkit's time per new token at two lengths and against the plain loop."""
    cpu_start = sample_cpu()
    built, plain, prompt = _build()
    vocab = built.vocabularies["target"]

    def seqkit_side(tokens: int, seed: int) -> float:
        generator = torch.Generator().manual_seed(seed)
        start = time.perf_counter()
        [text] = generate_text(
            built.model,
            built.tokenizer,
            vocab,
            built.sampler,
            prompt=prompt,
            max_new_tokens=tokens,
            num_samples=1,
            generator=generator,
        )
        seconds = time.perf_counter() - start
        _check_length(text, prompt, tokens, "seqkit")
        return seconds / tokens

    def plain_side(tokens: int, seed: int) -> float:
        generator = torch.Generator().manual_seed(seed)
        start = time.perf_counter()
        text = plain_generate(plain, vocab, prompt, tokens, TEMPERATURE, generator)
        seconds = time.perf_counter() - start
        _check_length(text, prompt, tokens, "plain")
        return seconds / tokens

    # warm-up
    seqkit_side(settings.short_tokens, seed=0)
    plain_side(settings.short_tokens, seed=0)

    # timed repetitions, where odd ones run the four cases in reverse order
    cases = [
        ("seqkit", settings.short_tokens),
        ("plain", settings.short_tokens),
        ("seqkit", settings.long_tokens),
        ("plain", settings.long_tokens),
    ]
    sides = {"seqkit": seqkit_side, "plain": plain_side}
    per_token: dict[tuple[str, int], list[float]] = {case: [] for case in cases}
    for repeat in range(settings.repeats):
        order = cases if repeat % 2 == 0 else cases[::-1]
        for side, tokens in order:
            per_token[side, tokens].append(sides[side](tokens, seed=repeat + 1))
    cpu_end = sample_cpu()

    short, long = settings.short_tokens, settings.long_tokens

    def ratios(numerator: tuple[str, int], denominator: tuple[str, int]) -> list[float]:
        return [
            a / b
            for a, b in zip(per_token[numerator], per_token[denominator], strict=True)
        ]

    growth = ratios(("seqkit", long), ("seqkit", short))
    return {
        "name": "generation",
        "settings": vars(settings),
        "temperature": TEMPERATURE,
        "prompt": prompt,
        "per_token_us": {
            f"{side}_{tokens}": median(values) * 1e6
            for (side, tokens), values in per_token.items()
        },
        "seqkit_growth": median(growth),
        "seqkit_growths": growth,
        "plain_growth": median(ratios(("plain", long), ("plain", short))),
        "seqkit_vs_plain_short": median(ratios(("seqkit", short), ("plain", short))),
        "seqkit_vs_plain_long": median(ratios(("seqkit", long), ("plain", long))),
        "target_growth": MAX_GROWTH,
        "passed": median(growth) <= MAX_GROWTH,
        "seconds": cpu_end.wall - cpu_start.wall,
        "other_cores_busy": other_cores_busy(cpu_start, cpu_end),
    }


def _check_length(text: str, prompt: str, tokens: int, side: str) -> None:
    # one character is one token for the char tokenizer
    if len(text) != len(prompt) + tokens:
        raise RuntimeError(
            f"{side} generation produced {len(text) - len(prompt)} new characters, "
            f"expected {tokens}; a sample stopped early, so per-token times are wrong"
        )
