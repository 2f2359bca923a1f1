"""The `typical` sampler: locally typical sampling.

Locally typical sampling comes from Meister, Pimentel, Wiher and Cotterell,
"Locally Typical Sampling", TACL 2023 (arXiv:2202.00666). At each step it keeps
the tokens whose surprisal -log q(x) is closest to the entropy of the model's
distribution q, adding them in that order until their probability mass
reaches `typical_p`, and draws the next token from them.

Shapes: B batch, V vocabulary size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor

from seqkit import BuildContext, Generation, RecipeError, Sampler, StepModel
from seqkit.decoding import apply_repetition_penalty, run_steps
from seqkit.interfaces import State


@dataclass
class TypicalOptions:
    typical_p: float = field(
        default=0.95,
        metadata={
            "help": "probability mass of the most typical tokens to keep, in (0, 1]; "
            "1 keeps every token"
        },
    )
    temperature: float = field(default=1.0, metadata={"help": "0 means greedy"})
    repetition_penalty: float = field(default=1.0, metadata={"min": 1.0})


def check_typical_options(options: TypicalOptions) -> None:
    """Raise `RecipeError` naming the option that is out of range."""
    if not 0 < options.typical_p <= 1:
        raise RecipeError(
            f"typical_p must be in (0, 1], got {options.typical_p}",
            key="sampler.typical_p",
        )
    if not 0 <= options.temperature < math.inf:
        raise RecipeError(
            "temperature must be 0 (greedy) or a positive finite number, got "
            f"{options.temperature}",
            key="sampler.temperature",
        )
    # The recipe schema checks this bound too, but a sampler built from Python
    # skips the schema.
    if not 1 <= options.repetition_penalty < math.inf:
        raise RecipeError(
            "repetition_penalty must be a finite number of at least 1, got "
            f"{options.repetition_penalty}",
            key="sampler.repetition_penalty",
        )


def apply_typical(scores: Tensor, p: float) -> Tensor:
    """Set to -inf the scores (B, V) of tokens outside each row's typical set.

    Tokens are ranked by |-log q(x) - H(q)|, where q = softmax(scores) and H
    is its entropy, and the closest are kept until their mass reaches `p`.
    A token that ties with the last kept one stays too. So the most typical
    token always stays, and `p = 1` keeps everything.
    """
    if p >= 1.0:
        return scores
    log_probs = scores.log_softmax(dim=-1)  # (B, V)
    probs = log_probs.exp()
    # A removed token has q = 0 and log q = -inf, whose product is nan; it adds
    # nothing to the entropy.
    entropy = -(probs * log_probs).nan_to_num(nan=0.0).sum(dim=-1, keepdim=True)
    distance = (-log_probs - entropy).abs()  # (B, V), inf for removed tokens
    sorted_distance, order = distance.sort(dim=-1, stable=True)
    sorted_probs = probs.gather(1, order)
    # The mass before each position, computed from a cumulative sum so that it
    # never decreases along the row, even after rounding.
    mass_before = torch.cat(
        [torch.zeros_like(sorted_probs[:, :1]), sorted_probs.cumsum(dim=-1)[:, :-1]],
        dim=-1,
    )  # (B, V)
    kept_count = (mass_before < p).sum(dim=-1, keepdim=True)  # (B, 1), at least 1
    cutoff = sorted_distance.gather(1, kept_count - 1)  # (B, 1)
    return scores.masked_fill(distance > cutoff, -math.inf)


def draw(probs: Tensor, generator: torch.Generator | None) -> Tensor:
    """Draw one token per row of `probs` (B, V) and return the ids (B,)."""
    # Draw where the generator lives: seqkit passes a seeded CPU generator,
    # which gives the same draws whatever the model's device.
    device = probs.device if generator is None else generator.device
    drawn = torch.multinomial(probs.to(device), 1, generator=generator)  # (B, 1)
    return drawn.squeeze(1).to(probs.device)


class TypicalSampler(Sampler):
    """Draws each token from the locally typical set of the model's distribution.

    The filters apply in this order: repetition penalty, temperature, typical
    set. Temperature 0 picks the most likely token, as the `greedy` sampler
    does. With the same `generator` seed the draws are the same.
    """

    Options = TypicalOptions

    def __init__(self, options: TypicalOptions, context: BuildContext | None = None):
        check_typical_options(options)
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
            scores = apply_typical(scores / options.temperature, options.typical_p)
            return draw(scores.softmax(dim=-1), generator)

        return run_steps(model, state, last_token, max_new_tokens, eos_id, choose)
