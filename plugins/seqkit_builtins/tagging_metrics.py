"""Accuracy of restored diacritics, per character and per word.

Both metrics compare each prediction with the first reference of its example,
position by position, so they need the tagging task's equal-length outputs.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

from seqkit import BuildContext, EvalResult, Metric, SeqkitError, hookimpl

_WORD = re.compile(r"\S+")


def diacritic_bases(characters: Iterable[str]) -> set[str]:
    """Return the base letters of the characters that carry a combining mark.

    "é", "è" and "É" give {"e", "E"}: the letters that need a decision.
    """
    bases = set()
    for character in characters:
        decomposed = unicodedata.normalize("NFD", character)
        if len(decomposed) > 1 and unicodedata.combining(decomposed[1]):
            bases.add(decomposed[0])
    return bases


def _pairs(result: EvalResult, metric: str) -> list[tuple[str, str]]:
    if not result.references:
        raise SeqkitError(
            f"metric {metric!r} needs the predictions of the tagging task, but this "
            "task returned none; use it with a data source whose task is tagging"
        )
    return [
        (prediction, references[0])
        for prediction, references in zip(
            result.predictions, result.references, strict=True
        )
    ]


class CharAccuracy(Metric):
    """Accuracy over the characters that can carry a diacritic.

    Those are the positions whose reference character, without its marks, is a
    base letter seen with a diacritic in the target vocabulary (the training
    targets), such as a, c, e, i, o, u, y and their capitals for French. Other
    characters are left out because they are almost always copied unchanged.
    Without a vocabulary, the base letters come from the references. With no
    such character in the references, the accuracy is 1.0.
    """

    def __init__(self, options: None = None, context: BuildContext | None = None):
        self.bases = None
        if context is not None and context.vocab is not None:
            self.bases = diacritic_bases(context.vocab.tokens)

    def compute(self, result: EvalResult) -> dict[str, float | str]:
        pairs = _pairs(result, "char_accuracy")
        bases = self.bases
        if bases is None:
            bases = diacritic_bases("".join(reference for _, reference in pairs))
        correct = total = 0
        for prediction, reference in pairs:
            for index, expected in enumerate(reference):
                if unicodedata.normalize("NFD", expected)[0] not in bases:
                    continue
                total += 1
                if index < len(prediction) and prediction[index] == expected:
                    correct += 1
        return {"char_accuracy": correct / total if total else 1.0}


class WordAccuracy(Metric):
    """The share of whitespace-separated reference words restored exactly.

    A word counts as correct when the prediction holds the same characters at
    the same positions as the reference word. With no words, the accuracy is 1.0.
    """

    def __init__(self, options: None = None, context: BuildContext | None = None):
        pass

    def compute(self, result: EvalResult) -> dict[str, float | str]:
        correct = total = 0
        for prediction, reference in _pairs(result, "word_accuracy"):
            for word in _WORD.finditer(reference):
                total += 1
                if prediction[word.start() : word.end()] == word.group():
                    correct += 1
        return {"word_accuracy": correct / total if total else 1.0}


@hookimpl
def seqkit_add_metrics() -> dict[str, type]:
    return {"char_accuracy": CharAccuracy, "word_accuracy": WordAccuracy}
