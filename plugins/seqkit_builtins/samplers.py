"""Greedy decoding, and sampling with temperature, top-k, top-p and a repetition
penalty."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor

from seqkit import BuildContext, Generation, RecipeError, Sampler, StepModel, hookimpl
from seqkit.decoding import (
    apply_repetition_penalty,
    apply_top_k,
    apply_top_p,
    run_steps,
)
from seqkit.interfaces import State


@dataclass
class GreedyOptions:
    repetition_penalty: float = field(default=1.0, metadata={"min": 1.0})


@dataclass
class SampleOptions:
    temperature: float = field(default=1.0, metadata={"help": "0 means greedy"})
    top_k: int | None = field(
        default=None, metadata={"help": "keep the k most likely tokens"}
    )
    top_p: float | None = field(
        default=None,
        metadata={"help": "keep the smallest set with this probability mass"},
    )
    repetition_penalty: float = field(default=1.0, metadata={"min": 1.0})


def check_sample_options(options: SampleOptions) -> None:
    """Raise `RecipeError` naming the option that is out of range."""
    if not 0 <= options.temperature < math.inf:
        raise RecipeError(
            "temperature must be 0 (greedy) or a positive finite number, got "
            f"{options.temperature}",
            key="sampler.temperature",
        )
    if options.top_k is not None and options.top_k < 1:
        raise RecipeError(
            f"top_k must be at least 1, got {options.top_k}", key="sampler.top_k"
        )
    if options.top_p is not None and not 0 < options.top_p <= 1:
        raise RecipeError(
            f"top_p must be in (0, 1], got {options.top_p}", key="sampler.top_p"
        )


class GreedySampler(Sampler):
    """Always picks the most likely token."""

    Options = GreedyOptions

    def __init__(self, options: GreedyOptions, context: BuildContext | None = None):
        self.options = options

    def generate(
        self,
        model: StepModel,
        state: State,
        last_token: Tensor,
        max_new_tokens: int,
        eos_id: int,
        generator: torch.Generator | None = None,
    ) -> Generation:
        penalty = self.options.repetition_penalty

        def choose(log_probs: Tensor, seen: Tensor) -> Tensor:
            return apply_repetition_penalty(log_probs, seen, penalty).argmax(dim=-1)

        return run_steps(model, state, last_token, max_new_tokens, eos_id, choose)


class RandomSampler(Sampler):
    """Draws each token from the model's distribution after the filters.

    The filters apply in this order: repetition penalty, temperature, top-k,
    top-p. Temperature 0 picks the most likely token, as greedy does.
    """

    Options = SampleOptions

    def __init__(self, options: SampleOptions, context: BuildContext | None = None):
        check_sample_options(options)
        self.options = options

    def generate(
        self,
        model: StepModel,
        state: State,
        last_token: Tensor,
        max_new_tokens: int,
        eos_id: int,
        generator: torch.Generator | None = None,
    ) -> Generation:
        options = self.options

        def choose(log_probs: Tensor, seen: Tensor) -> Tensor:
            scores = apply_repetition_penalty(
                log_probs, seen, options.repetition_penalty
            )
            if options.temperature == 0:
                return scores.argmax(dim=-1)
            scores = scores / options.temperature
            if options.top_k is not None:
                scores = apply_top_k(scores, options.top_k)
            if options.top_p is not None:
                scores = apply_top_p(scores, options.top_p)
            probs = scores.softmax(dim=-1)  # (B, V)
            if generator is not None and generator.device != probs.device:
                # A CPU generator keeps seeded draws the same on every device.
                drawn = torch.multinomial(probs.cpu(), 1, generator=generator)
                return drawn.squeeze(1).to(probs.device)  # (B,)
            return torch.multinomial(probs, 1, generator=generator).squeeze(1)  # (B,)

        return run_steps(model, state, last_token, max_new_tokens, eos_id, choose)


@hookimpl
def seqkit_add_samplers() -> dict[str, type]:
    return {"greedy": GreedySampler, "sample": RandomSampler}
