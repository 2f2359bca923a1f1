"""Metrics over predicted labels: accuracy, macro-F1, per-label scores, confusion.

Each reads `EvalResult.predictions` (one label per example) and the first entry
of each `EvalResult.references` list (the true label). The labels scored are
those that occur as a true or a predicted label in the split.
"""

from __future__ import annotations

from collections import Counter

from seqkit import BuildContext, EvalResult, Metric, SeqkitError, hookimpl


def label_pairs(result: EvalResult, metric: str) -> list[tuple[str, str]]:
    """Return (true, predicted) label pairs, or raise when the task gave none."""
    if not result.predictions or len(result.predictions) != len(result.references):
        raise SeqkitError(
            f"metric {metric!r} needs one predicted label per reference, got "
            f"{len(result.predictions)} predictions for {len(result.references)} "
            "references; use it with a classification task"
        )
    return [
        (references[0], predicted)
        for predicted, references in zip(
            result.predictions, result.references, strict=True
        )
    ]


def scored_labels(pairs: list[tuple[str, str]]) -> list[str]:
    """Return every label seen as true or predicted, sorted by name."""
    return sorted({label for pair in pairs for label in pair})


def per_label_scores(pairs: list[tuple[str, str]]) -> dict[str, tuple[float, ...]]:
    """Return (precision, recall, F1) per label. A score whose ratio is 0/0 is 0."""
    true_counts = Counter(true for true, _ in pairs)
    predicted_counts = Counter(predicted for _, predicted in pairs)
    hits = Counter(true for true, predicted in pairs if true == predicted)
    scores = {}
    for label in scored_labels(pairs):
        precision = _ratio(hits[label], predicted_counts[label])
        recall = _ratio(hits[label], true_counts[label])
        f1 = _ratio(2 * precision * recall, precision + recall)
        scores[label] = (precision, recall, f1)
    return scores


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else 0.0


class _LabelMetric(Metric):
    def __init__(self, options: None = None, context: BuildContext | None = None):
        pass


class Accuracy(_LabelMetric):
    """The fraction of examples whose predicted label is the true label."""

    def compute(self, result: EvalResult) -> dict[str, float | str]:
        pairs = label_pairs(result, "accuracy")
        return {"accuracy": sum(true == pred for true, pred in pairs) / len(pairs)}


class MacroF1(_LabelMetric):
    """The unweighted mean of the per-label F1 scores."""

    def compute(self, result: EvalResult) -> dict[str, float | str]:
        scores = per_label_scores(label_pairs(result, "macro_f1"))
        return {"macro_f1": sum(f1 for *_, f1 in scores.values()) / len(scores)}


class PerClass(_LabelMetric):
    """Precision, recall and F1 of each label, as `precision_<label>` and so on."""

    def compute(self, result: EvalResult) -> dict[str, float | str]:
        scores = per_label_scores(label_pairs(result, "per_class"))
        table: dict[str, float | str] = {}
        for label, (precision, recall, f1) in scores.items():
            table[f"precision_{label}"] = precision
            table[f"recall_{label}"] = recall
            table[f"f1_{label}"] = f1
        return table


class Confusion(_LabelMetric):
    """The confusion counts as `confusion/<true>/<predicted>`, zeros included.

    Slashes separate the labels because a label may contain underscores and a
    label read from a folder name cannot contain a slash.
    """

    def compute(self, result: EvalResult) -> dict[str, float | str]:
        pairs = label_pairs(result, "confusion")
        counts = Counter(pairs)
        labels = scored_labels(pairs)
        return {
            f"confusion/{true}/{predicted}": counts[(true, predicted)]
            for true in labels
            for predicted in labels
        }


@hookimpl
def seqkit_add_metrics() -> dict[str, type]:
    return {
        "accuracy": Accuracy,
        "macro_f1": MacroF1,
        "per_class": PerClass,
        "confusion": Confusion,
    }
