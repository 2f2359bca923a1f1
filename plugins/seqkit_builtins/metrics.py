"""Metrics derived from the mean cross-entropy per token."""

from __future__ import annotations

import math

from seqkit import BuildContext, EvalResult, Metric, hookimpl


class BitsPerCharacter(Metric):
    """Cross-entropy in bits per character, for character-level tokenizers."""

    levels = ("char",)

    def __init__(self, options: None = None, context: BuildContext | None = None):
        pass

    def compute(self, result: EvalResult) -> dict[str, float | str]:
        return {"bpc": result.loss / math.log(2)}


class Perplexity(Metric):
    """exp(mean cross-entropy per token), the usual word-level score."""

    def __init__(self, options: None = None, context: BuildContext | None = None):
        pass

    def compute(self, result: EvalResult) -> dict[str, float | str]:
        return {"ppl": math.exp(min(result.loss, 700.0))}


@hookimpl
def seqkit_add_metrics() -> dict[str, type]:
    return {"bpc": BitsPerCharacter, "perplexity": Perplexity}
