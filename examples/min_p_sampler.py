"""A single-file seqkit plugin: the `min-p` sampler.

Min-p sampling drops every token whose probability is below `min_p` times the
probability of the most likely token, then draws from the rest. The cutoff
follows the model's confidence: a peaked distribution keeps few tokens and a
flat one keeps many.

A recipe loads this file by its path, relative to the recipe's folder:

    plugins = ["./min_p_sampler.py"]

    [sampler]
    plugin = "min-p"
    min_p = 0.1

examples/min_p.toml is such a recipe.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor

from seqkit import Generation, RecipeError, Sampler, StepModel, hookimpl
from seqkit.decoding import run_steps
from seqkit.interfaces import State


@dataclass
class MinPOptions:
    min_p: float = field(
        default=0.1,
        metadata={
            "help": "drop tokens below this fraction of the top token's "
            "probability, in [0, 1]; 0 keeps every token"
        },
    )
    temperature: float = field(
        default=1.0, metadata={"help": "divides the logits before the cutoff; > 0"}
    )


def apply_min_p(scores: Tensor, min_p: float) -> Tensor:
    """Set to -inf every score (B, V) whose probability is below `min_p` x the top.

    The test is log q(x) < log q(top) + log(min_p). Log-softmax shifts a whole
    row by one constant, so the scores are compared without it. The top token
    always stays.
    """
    if min_p <= 0.0:
        return scores
    threshold = scores.max(dim=-1, keepdim=True).values + math.log(min_p)  # (B, 1)
    return scores.masked_fill(scores < threshold, -math.inf)


class MinPSampler(Sampler):
    """Draws each token from those at least `min_p` times as likely as the top one."""

    Options = MinPOptions

    def __init__(self, options: MinPOptions, context=None):
        if not 0 <= options.min_p <= 1:
            raise RecipeError(
                f"min_p must be in [0, 1], got {options.min_p}", key="sampler.min_p"
            )
        if not 0 < options.temperature < math.inf:
            raise RecipeError(
                "temperature must be a positive finite number, got "
                f"{options.temperature}; use the `greedy` sampler for greedy decoding",
                key="sampler.temperature",
            )
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
            scores = apply_min_p(log_probs / options.temperature, options.min_p)
            probs = scores.softmax(dim=-1)  # (B, V)
            # Draw where the generator lives: seqkit passes a seeded CPU
            # generator, which gives the same draws whatever the model's device.
            device = probs.device if generator is None else generator.device
            drawn = torch.multinomial(probs.to(device), 1, generator=generator)
            return drawn.squeeze(1).to(probs.device)  # (B,)

        return run_steps(model, state, last_token, max_new_tokens, eos_id, choose)


@hookimpl
def seqkit_add_samplers() -> dict[str, type]:
    return {"min-p": MinPSampler}
