"""Metrics over decoded sentences: BLEU, chrF, phone error rate, word accuracy.

Each reads the detokenised hypotheses in `EvalResult.predictions` and, for each
item, its acceptable targets in `EvalResult.references` (at least one each).
BLEU and chrF come from sacrebleu and are on its 0-100 scale. `per` and
`word_acc` are fractions, `per` in [0, inf) and `word_acc` in [0, 1].

Items may have different numbers of references. sacrebleu takes references as
streams as long as the hypotheses, so an item with fewer references than the
longest list gets None in the streams it lacks. sacrebleu skips None
references (sacrebleu 2.6.0 `Metric._cache_references`), so each item is
scored against its own references only, and the signature reads `nrefs:var`.

An empty hypothesis is scored like any other (it matches nothing). Scoring no
items at all raises `MetricInputError`, as does an item without references.
"""

from __future__ import annotations

from collections.abc import Sequence

from sacrebleu.metrics import BLEU, CHRF

from seqkit import BuildContext, EvalResult, Metric, SeqkitError, hookimpl

MAX_BLEU_ORDER = 4


class MetricInputError(SeqkitError, ValueError):
    """Predictions and references that cannot be scored together."""


def check_items(
    predictions: Sequence[str], references: Sequence[Sequence[str]], metric: str
) -> None:
    """Raise `MetricInputError` unless there are predictions, each with references.

    Each item's references must be a non-empty list of strings.
    """
    if not predictions and not references:
        raise MetricInputError(
            f"metric {metric!r} got no predictions to score. Use it with a task "
            "that decodes sentences, such as translation, on a non-empty split"
        )
    if len(predictions) != len(references):
        raise MetricInputError(
            f"metric {metric!r} needs one list of references per prediction, got "
            f"{len(predictions)} predictions and {len(references)} reference lists"
        )
    for index, item_references in enumerate(references):
        if isinstance(item_references, str) or not item_references:
            raise MetricInputError(
                f"metric {metric!r} needs a non-empty list of reference strings "
                f"for each prediction, got {item_references!r} for item {index}"
            )


def reference_streams(references: Sequence[Sequence[str]]) -> list[list[str | None]]:
    """Transpose per-item references into sacrebleu's reference streams.

    Stream k contains the k-th reference of every item, or None where an item
    has fewer than k + 1 references.
    """
    count = max(len(item) for item in references)
    return [
        [item[k] if k < len(item) else None for item in references]
        for k in range(count)
    ]


def corpus_bleu(
    predictions: Sequence[str], references: Sequence[Sequence[str]]
) -> tuple[float, str]:
    """Return corpus BLEU (0-100) and its sacrebleu signature.

    sacrebleu's defaults apply: 13a tokenisation, case-sensitive, exponential
    smoothing of n-gram orders without matches, n-grams up to 4.
    """
    check_items(predictions, references, "bleu")
    bleu = BLEU()
    score = bleu.corpus_score(list(predictions), reference_streams(references))
    return score.score, str(bleu.get_signature())


def bleu_n_scores(
    predictions: Sequence[str],
    references: Sequence[Sequence[str]],
    max_order: int = MAX_BLEU_ORDER,
) -> dict[str, float]:
    """Return cumulative corpus BLEU-1 to BLEU-`max_order` as {"bleu1": ..., ...}.

    BLEU-n is the brevity penalty times the geometric mean of the modified
    n-gram precisions of orders 1 to n, on the 0-100 scale, as
    `BLEU(max_ngram_order=n)` computes it. The n-gram counts are gathered once
    and reused for every n. Use it for several references per item, as in
    image captioning.
    """
    check_items(predictions, references, "bleu")
    if not 1 <= max_order <= MAX_BLEU_ORDER:
        raise ValueError(f"max_order must be 1 to {MAX_BLEU_ORDER}, got {max_order}")
    bleu = BLEU(max_ngram_order=max_order)
    stats = bleu.corpus_score(list(predictions), reference_streams(references))
    scores = {}
    for order in range(1, max_order + 1):
        score = BLEU.compute_bleu(
            stats.counts[:order],
            stats.totals[:order],
            stats.sys_len,
            stats.ref_len,
            smooth_method=bleu.smooth_method,
            max_ngram_order=order,
        )
        scores[f"bleu{order}"] = score.score
    return scores


def corpus_chrf(
    predictions: Sequence[str], references: Sequence[Sequence[str]]
) -> tuple[float, str]:
    """Return corpus chrF (0-100) and its sacrebleu signature.

    sacrebleu's defaults apply: character n-grams up to 6, no word n-grams
    (chrF, not chrF++), beta 2, case-sensitive.
    """
    check_items(predictions, references, "chrf")
    chrf = CHRF()
    score = chrf.corpus_score(list(predictions), reference_streams(references))
    return score.score, str(chrf.get_signature())


def edit_distance(source: Sequence[str], target: Sequence[str]) -> int:
    """Return the Levenshtein distance between two token sequences.

    Insertions, deletions and substitutions each cost 1.
    """
    previous = list(range(len(target) + 1))
    for i, source_token in enumerate(source, start=1):
        current = [i]
        for j, target_token in enumerate(target, start=1):
            current.append(
                min(
                    previous[j] + 1,  # delete source_token
                    current[j - 1] + 1,  # insert target_token
                    previous[j - 1] + (source_token != target_token),
                )
            )
        previous = current
    return previous[-1]


def token_error_rate(
    predictions: Sequence[str], references: Sequence[Sequence[str]]
) -> float:
    """Return total edits over total reference tokens, on whitespace-split tokens.

    Each item uses the reference with the fewest edits from its prediction. When
    several tie, the first of them in the item's list counts. The result is a
    fraction that exceeds 1 when predictions are much longer than their
    references. Raises `MetricInputError` when the chosen references contain no
    tokens at all.
    """
    check_items(predictions, references, "per")
    edits = 0
    reference_tokens = 0
    for prediction, item_references in zip(predictions, references, strict=True):
        predicted = prediction.split()
        candidates = [
            (edit_distance(predicted, reference.split()), len(reference.split()))
            for reference in item_references
        ]
        distance, tokens = min(candidates, key=lambda candidate: candidate[0])
        edits += distance
        reference_tokens += tokens
    if reference_tokens == 0:
        raise MetricInputError(
            "metric 'per' needs references with at least one token, but every "
            "reference chosen is empty"
        )
    return edits / reference_tokens


def exact_match_rate(
    predictions: Sequence[str], references: Sequence[Sequence[str]]
) -> float:
    """Return the fraction of predictions equal to one of their references.

    Predictions and references are compared as whitespace-split tokens, so
    "K AE1 T" matches "K  AE1 T", and an item matches exactly when its
    `token_error_rate` edits are 0.
    """
    check_items(predictions, references, "word_acc")
    hits = sum(
        any(prediction.split() == reference.split() for reference in item_references)
        for prediction, item_references in zip(predictions, references, strict=True)
    )
    return hits / len(predictions)


class _SentenceMetric(Metric):
    def __init__(self, options: None = None, context: BuildContext | None = None):
        pass


class Bleu(_SentenceMetric):
    """Corpus BLEU from sacrebleu (0-100) and the sacrebleu signature."""

    def compute(self, result: EvalResult) -> dict[str, float | str]:
        score, signature = corpus_bleu(result.predictions, result.references)
        return {"bleu": score, "bleu_signature": signature}


class Chrf(_SentenceMetric):
    """Corpus chrF from sacrebleu (0-100) and the sacrebleu signature."""

    def compute(self, result: EvalResult) -> dict[str, float | str]:
        score, signature = corpus_chrf(result.predictions, result.references)
        return {"chrf": score, "chrf_signature": signature}


class PhoneErrorRate(_SentenceMetric):
    """The phone (token) error rate as a fraction, from `token_error_rate`."""

    def compute(self, result: EvalResult) -> dict[str, float | str]:
        return {"per": token_error_rate(result.predictions, result.references)}


class ExactMatch(_SentenceMetric):
    """The fraction of items predicted exactly, from `exact_match_rate`."""

    def compute(self, result: EvalResult) -> dict[str, float | str]:
        return {"word_acc": exact_match_rate(result.predictions, result.references)}


class BleuOrders(_SentenceMetric):
    """Corpus BLEU-1 to BLEU-4 over every reference of each item, as captioning
    reports them, with the sacrebleu signature of BLEU-4."""

    def compute(self, result: EvalResult) -> dict[str, float | str]:
        scores: dict[str, float | str] = dict(
            bleu_n_scores(result.predictions, result.references)
        )
        _, signature = corpus_bleu(result.predictions, result.references)
        scores["bleu_signature"] = signature
        return scores


class ExactMatchRate(_SentenceMetric):
    """The fraction of outputs equal to one of their references, token by token."""

    def compute(self, result: EvalResult) -> dict[str, float | str]:
        rate = exact_match_rate(result.predictions, result.references)
        return {"exact_match": rate}


@hookimpl
def seqkit_add_metrics() -> dict[str, type]:
    return {
        "bleu": Bleu,
        "bleu_orders": BleuOrders,
        "chrf": Chrf,
        "exact_match": ExactMatchRate,
        "per": PhoneErrorRate,
        "word_acc": ExactMatch,
    }
