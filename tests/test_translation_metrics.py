"""BLEU, chrF, phone error rate and word accuracy over decoded sentences."""

from __future__ import annotations

import math

import pytest
import sacrebleu
from sacrebleu.metrics import BLEU
from seqkit_builtins.translation_metrics import (
    Bleu,
    Chrf,
    ExactMatch,
    MetricInputError,
    PhoneErrorRate,
    bleu_n_scores,
    corpus_bleu,
    corpus_chrf,
    edit_distance,
    exact_match_rate,
    reference_streams,
    token_error_rate,
)

from seqkit import EvalResult, SeqkitError
from seqkit.registry import create_registry

HYPOTHESES = ["the cat sat on the mat", "a dog ran in the park"]
REFERENCES = [["the cat is on the mat"], ["a dog ran in a big park"]]


def sentence_result(predictions, references):
    return EvalResult(
        loss=0.0,
        tokens=0,
        level="word",
        predictions=predictions,
        references=references,
    )


def test_bleu_hand_computed():
    # Matched / total n-grams, summed over both sentences:
    #   1-grams: "the cat sat on the mat" matches the, cat, on, the, mat (5 of 6),
    #            "a dog ran in the park" matches a, dog, ran, in, park (5 of 6).
    #   2-grams: "the cat", "on the", "the mat" (3 of 5) and
    #            "a dog", "dog ran", "ran in" (3 of 5).
    #   3-grams: "on the mat" (1 of 4) and "a dog ran", "dog ran in" (2 of 4).
    #   4-grams: none (0 of 3) and "a dog ran in" (1 of 3).
    # Precisions 10/12, 6/10, 3/8, 1/6 multiply to 1/32, so their geometric
    # mean is 32 ** -0.25. The hypotheses have 12 words and the references 13,
    # so the brevity penalty is exp(1 - 13 / 12).
    expected = 100 * math.exp(1 - 13 / 12) * 32**-0.25

    score, signature = corpus_bleu(HYPOTHESES, REFERENCES)

    assert score == pytest.approx(expected, abs=1e-6)
    assert signature == (
        f"nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:{sacrebleu.__version__}"
    )


def test_bleu_n_hand_computed():
    brevity_penalty = math.exp(1 - 13 / 12)

    scores = bleu_n_scores(HYPOTHESES, REFERENCES)

    assert list(scores) == ["bleu1", "bleu2", "bleu3", "bleu4"]
    assert scores["bleu1"] == pytest.approx(100 * brevity_penalty * 10 / 12, abs=1e-6)
    assert scores["bleu2"] == pytest.approx(
        100 * brevity_penalty * (10 / 12 * 6 / 10) ** 0.5, abs=1e-6
    )
    assert scores["bleu3"] == pytest.approx(
        100 * brevity_penalty * (10 / 12 * 6 / 10 * 3 / 8) ** (1 / 3), abs=1e-6
    )
    assert scores["bleu4"] == pytest.approx(corpus_bleu(HYPOTHESES, REFERENCES)[0])


def test_bleu_n_matches_sacrebleu_per_order():
    hypotheses = ["a man rides a horse on the beach", "two dogs play", ""]
    references = [
        ["a man is riding a horse on a beach", "a person on a horse at the sea"],
        ["two dogs are playing in the snow", "dogs play", "two puppies play"],
        ["an empty street"],
    ]

    scores = bleu_n_scores(hypotheses, references)

    for order in range(1, 5):
        direct = BLEU(max_ngram_order=order).corpus_score(
            hypotheses, reference_streams(references)
        )
        assert scores[f"bleu{order}"] == pytest.approx(direct.score, abs=1e-9)


def test_bleu_n_max_order():
    assert list(bleu_n_scores(HYPOTHESES, REFERENCES, max_order=2)) == [
        "bleu1",
        "bleu2",
    ]
    with pytest.raises(ValueError, match="max_order"):
        bleu_n_scores(HYPOTHESES, REFERENCES, max_order=5)


def test_reference_streams_pad_with_none():
    streams = reference_streams([["a", "b"], ["c"], ["d", "e", "f"]])

    assert streams == [["a", "c", "d"], ["b", None, "e"], [None, None, "f"]]


def test_variable_references_change_no_score():
    # Repeating a reference changes neither clipped n-gram counts nor the
    # closest reference length, so it scores like the None padding.
    hypotheses = ["the cat sat on the mat", "a dog ran in the park"]
    padded = [["the cat is on the mat", "a cat sat on a mat"], ["a dog ran"]]
    repeated = [["the cat is on the mat", "a cat sat on a mat"], ["a dog ran"] * 2]

    bleu, bleu_signature = corpus_bleu(hypotheses, padded)
    chrf, chrf_signature = corpus_chrf(hypotheses, padded)

    assert bleu == pytest.approx(corpus_bleu(hypotheses, repeated)[0], abs=1e-9)
    assert chrf == pytest.approx(corpus_chrf(hypotheses, repeated)[0], abs=1e-9)
    assert bleu_signature.startswith("nrefs:var|")
    assert chrf_signature.startswith("nrefs:var|")


def test_bleu_scores_empty_hypothesis():
    score, _ = corpus_bleu(["", "the cat sat on the mat"], [["a b c"], ["x"]])
    all_empty, _ = corpus_bleu([""], [["the cat"]])

    assert score == 0.0
    assert all_empty == 0.0


def test_chrf_sanity():
    identical, signature = corpus_chrf(["Bonjour le monde !"], [["Bonjour le monde !"]])
    disjoint, _ = corpus_chrf(["xyz"], [["abc"]])
    partial, _ = corpus_chrf(["Bonjour monde"], [["Bonjour le monde !"]])
    empty, _ = corpus_chrf([""], [["Bonjour"]])

    assert identical == pytest.approx(100.0)
    assert disjoint == 0.0
    assert 0.0 < partial < 100.0
    assert empty == 0.0
    assert signature == (
        f"nrefs:1|case:mixed|eff:yes|nc:6|nw:0|space:no|version:{sacrebleu.__version__}"
    )


def test_edit_distance():
    assert edit_distance([], []) == 0
    assert edit_distance(["a", "b"], []) == 2
    assert edit_distance([], ["a"]) == 1
    assert edit_distance("kitten", "sitting") == 3
    assert edit_distance(["K", "AE1", "T"], ["K", "AE1", "T"]) == 0
    assert edit_distance(["K", "AE1", "T"], ["AE1", "T", "S"]) == 2


def test_per_hand_cases():
    predictions = ["K AE1 T", "D AO1 G", "", "T AH0 M EY1 T OW2 Z"]
    references = [
        ["K AE1 T"],
        ["D AA1 G", "D AO1 G Z"],
        ["B AH1 T"],
        ["T AH0 M AA1 T OW2", "T AH0 M EY1 T OW2"],
    ]
    # Edits over reference tokens, item by item:
    #   "K AE1 T": 0 of 3.
    #   "D AO1 G": 1 edit from either reference, so the first counts (3 tokens).
    #   "": 3 deletions of "B AH1 T", 3 tokens.
    #   "T AH0 M EY1 T OW2 Z": 1 insertion from the second reference (6 tokens);
    #   the first needs 2 edits.
    # Total: (0 + 1 + 3 + 1) / (3 + 3 + 3 + 6) = 5 / 15.

    assert token_error_rate(predictions, references) == pytest.approx(5 / 15)


def test_per_first_reference_wins_tie():
    assert token_error_rate(["D AO1 G"], [["D AO1 G Z", "D AA1 G"]]) == 1 / 4
    assert token_error_rate(["D AO1 G"], [["D AA1 G", "D AO1 G Z"]]) == 1 / 3


def test_per_can_exceed_one():
    assert token_error_rate(["A B C D"], [["E"]]) == 4.0


def test_per_rejects_empty_references():
    with pytest.raises(MetricInputError, match="at least one token"):
        token_error_rate(["A"], [[""]])


def test_word_acc_hand_cases():
    predictions = ["K AE1 T", "D AO1 G", "", "T AH0 M EY1 T OW2"]
    references = [
        ["K AE1 T"],
        ["D AA1 G", "D AO1 G Z"],
        ["B AH1 T"],
        ["T AH0 M AA1 T OW2", "T AH0 M EY1 T OW2"],
    ]

    assert exact_match_rate(predictions, references) == 0.5


def test_word_acc_ignores_whitespace_runs():
    assert exact_match_rate([" K  AE1 T"], [["K AE1 T"]]) == 1.0
    assert exact_match_rate([""], [[""]]) == 1.0
    assert exact_match_rate(["KAE1T"], [["K AE1 T"]]) == 0.0


@pytest.mark.parametrize(
    "score",
    [corpus_bleu, corpus_chrf, bleu_n_scores, token_error_rate, exact_match_rate],
)
@pytest.mark.parametrize(
    ("predictions", "references", "message"),
    [
        ([], [], "no predictions"),
        (["a", "b"], [["a"]], "2 predictions and 1 reference lists"),
        (["a"], [["a"], ["b"]], "1 predictions and 2 reference lists"),
        (["a", "b"], [["a"], []], "for item 1"),
        (["a"], ["a"], "for item 0"),
    ],
)
def test_metrics_reject_bad_references(score, predictions, references, message):
    with pytest.raises(MetricInputError, match=message):
        score(predictions, references)


def test_metric_input_error_types():
    assert issubclass(MetricInputError, ValueError)
    assert issubclass(MetricInputError, SeqkitError)


def test_metric_plugins_return_named_scores():
    result = sentence_result(HYPOTHESES, REFERENCES)

    bleu = Bleu(None, None).compute(result)
    chrf = Chrf(None, None).compute(result)
    per = PhoneErrorRate(None, None).compute(result)
    word_acc = ExactMatch(None, None).compute(result)

    assert bleu["bleu"] == pytest.approx(100 * math.exp(1 - 13 / 12) * 32**-0.25)
    assert bleu["bleu_signature"].startswith("nrefs:1|")
    assert set(chrf) == {"chrf", "chrf_signature"}
    assert isinstance(chrf["chrf"], float)
    assert chrf["chrf_signature"].startswith("nrefs:1|")
    # The first hypothesis is 1 edit ("sat" for "is") from a reference of 6
    # words. The second is 2 edits ("the" for "a", "big" missing) from 7 words.
    assert per == {"per": pytest.approx((1 + 2) / (6 + 7))}
    assert word_acc == {"word_acc": 0.0}


def test_metric_plugins_registered():
    registry = create_registry()

    for name in ("bleu", "chrf", "per", "word_acc"):
        assert registry.get("metric", name).levels is None
