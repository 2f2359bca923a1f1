"""Token filters over log-probabilities and the shared step loop of the samplers."""

from __future__ import annotations

import math

import pytest
import torch

from seqkit.decoding import (
    apply_repetition_penalty,
    apply_top_k,
    apply_top_p,
    run_steps,
)
from seqkit.interfaces import DecoderOutput, StepModel

NEG_INF = float("-inf")


def log_probs(*rows):
    """Return a (B, V) tensor of log-probabilities from rows of probabilities."""
    return torch.tensor(rows, dtype=torch.float32).log()


class ScriptedModel:
    """A stand-in for `StepModel` whose row r puts probability 0.9 on scripts[r][t].

    The rest of the mass is spread evenly over the other tokens. It records the
    token batch it is fed at each step.
    """

    def __init__(self, scripts, vocab_size=10):
        self.scripts = scripts
        self.vocab_size = vocab_size
        self.fed = []

    def step(self, token, state):
        self.fed.append(token.tolist())
        step = state
        probs = torch.full(
            (len(self.scripts), self.vocab_size), 0.1 / (self.vocab_size - 1)
        )
        for row, script in enumerate(self.scripts):
            probs[row, script[min(step, len(script) - 1)]] = 0.9
        return probs.log(), step + 1


def choose_argmax(scores, seen):
    return scores.argmax(dim=-1)


def test_top_k_keeps_k_highest():
    scores = log_probs([0.1, 0.5, 0.15, 0.25])

    filtered = apply_top_k(scores, 2)

    assert torch.isinf(filtered[0, 0])
    assert torch.isinf(filtered[0, 2])
    assert filtered[0, 1] == scores[0, 1]
    assert filtered[0, 3] == scores[0, 3]


def test_top_k_one_keeps_max_per_row():
    scores = log_probs([0.1, 0.5, 0.4], [0.6, 0.3, 0.1])

    filtered = apply_top_k(scores, 1)

    assert torch.isfinite(filtered).tolist() == [
        [False, True, False],
        [True, False, False],
    ]


@pytest.mark.parametrize("k", [4, 5, 100])
def test_top_k_above_vocabulary_keeps_all(k):
    scores = log_probs([0.1, 0.5, 0.15, 0.25])

    assert torch.equal(apply_top_k(scores, k), scores)


@pytest.mark.parametrize(
    ("p", "kept_mask"),
    [
        (1e-9, [False, True, False, False]),
        (0.5, [False, True, False, False]),
        (0.7, [False, True, False, True]),
        (0.85, [True, True, False, True]),
        (0.99, [True, True, True, True]),
    ],
)
def test_top_p_keeps_smallest_set(p, kept_mask):
    # Sorted: 0.5 (id 1), 0.3 (id 3), 0.15 (id 0), 0.05 (id 2).
    scores = log_probs([0.15, 0.5, 0.05, 0.3])

    filtered = apply_top_p(scores, p)

    assert torch.isfinite(filtered)[0].tolist() == kept_mask
    assert torch.equal(
        filtered[torch.isfinite(filtered)], scores[torch.isfinite(filtered)]
    )


def test_top_p_one_keeps_everything():
    scores = log_probs([0.97, 0.01, 0.01, 0.01])

    assert torch.equal(apply_top_p(scores, 1.0), scores)


def test_top_p_rows_independent():
    scores = log_probs([0.9, 0.05, 0.05], [0.4, 0.35, 0.25])

    filtered = apply_top_p(scores, 0.6)

    assert torch.isfinite(filtered).tolist() == [
        [True, False, False],
        [True, True, False],
    ]


def test_repetition_penalty_scales_seen_tokens():
    scores = torch.tensor([[-1.0, -2.0, -3.0], [-1.0, -2.0, -3.0]])
    seen = torch.tensor([[0, 0], [1, 2]])

    penalised = apply_repetition_penalty(scores, seen, 2.0)

    assert penalised.tolist() == [[-2.0, -2.0, -3.0], [-1.0, -4.0, -6.0]]
    assert apply_repetition_penalty(scores, seen, 1.0) is scores


def test_run_steps_stops_rows_at_eos():
    model = ScriptedModel([[5, 6, 3, 7], [5, 5, 5, 5]])
    start = torch.tensor([4, 4])

    result = run_steps(model, 0, start, 4, eos_id=3, choose=choose_argmax)

    assert result.tokens == [[5, 6, 3], [5, 5, 5, 5]]
    # After its <eos>, row 0 is fed <eos>, and its score stops growing.
    assert model.fed == [[4, 4], [5, 5], [6, 5], [3, 5]]
    assert result.scores.tolist() == pytest.approx(
        [3 * math.log(0.9), 4 * math.log(0.9)]
    )


def test_run_steps_ends_when_all_rows_done():
    model = ScriptedModel([[3], [6, 3]])

    result = run_steps(
        model, 0, torch.tensor([4, 4]), 50, eos_id=3, choose=choose_argmax
    )

    assert result.tokens == [[3], [6, 3]]
    assert len(model.fed) == 2


def test_run_steps_respects_max_new_tokens():
    model = ScriptedModel([[5, 6, 7, 8, 9]])

    result = run_steps(model, 0, torch.tensor([4]), 3, eos_id=3, choose=choose_argmax)

    assert result.tokens == [[5, 6, 7]]
    assert len(model.fed) == 3


def test_run_steps_zero_tokens():
    model = ScriptedModel([[5], [5]])

    result = run_steps(
        model, 0, torch.tensor([4, 4]), 0, eos_id=3, choose=choose_argmax
    )

    assert result.tokens == [[], []]
    assert result.scores.tolist() == [0.0, 0.0]
    assert model.fed == []


def test_run_steps_passes_seen_tokens():
    seen_by_step = []

    def choose(scores, seen):
        seen_by_step.append(seen.tolist())
        return scores.argmax(dim=-1)

    run_steps(
        ScriptedModel([[5, 6, 7]]), 0, torch.tensor([4]), 3, eos_id=3, choose=choose
    )

    # `seen` is the last prompt token followed by the tokens chosen so far.
    assert seen_by_step == [[[4]], [[4, 5]], [[4, 5, 6]]]


def test_step_model_bans_tokens():
    class FlatDecoder(torch.nn.Module):
        def step(self, token, state, encoder_output=None):
            logits = torch.zeros(token.shape[0], 5)
            logits[:, 1] = 50.0
            return DecoderOutput(logits, state)

    log_probs, _ = StepModel(FlatDecoder(), banned=(1, 2)).step(torch.tensor([0]), None)

    assert log_probs[0, 1] == float("-inf")
    assert log_probs[0, 2] == float("-inf")
    assert log_probs[0].exp().sum().item() == pytest.approx(1.0)
    assert log_probs[0, 0].item() == pytest.approx(math.log(1 / 3))
