"""Beam search: hand-computed searches on a fixed bigram table, and real decoders."""

from __future__ import annotations

import math

import pytest
import torch
from seqkit_builtins.beam import BeamOptions, BeamSearch
from seqkit_builtins.samplers import GreedyOptions, GreedySampler
from test_attention import make_model, padded_sources

from seqkit import Decoder, DecoderOutput, EncoderOutput, RecipeError, StepModel

PAD, UNK, BOS, EOS, A, B, C = range(7)

# Next-token probabilities given the previous token. Greedy decoding picks A
# then <eos> (0.6 * 0.4 = 0.24); the best sequence is B <eos> (0.4 * 0.9 = 0.36).
BIGRAMS = {
    BOS: {A: 0.6, B: 0.4},
    A: {EOS: 0.4, C: 0.35, B: 0.25},
    B: {EOS: 0.9, A: 0.1},
    C: {EOS: 1.0},
    EOS: {EOS: 1.0},
}


class BigramDecoder(Decoder):
    """Log-probabilities from BIGRAMS; the state counts the steps taken."""

    def __init__(self):
        super().__init__()
        table = torch.full((7, 7), -math.inf)
        for previous, following in BIGRAMS.items():
            for token, probability in following.items():
                table[previous, token] = math.log(probability)
        self.register_buffer("table", table)

    def init_state(self, batch_size, encoder_output=None):
        return torch.zeros(1, batch_size, 1)

    def forward(self, tokens, state, encoder_output=None):
        logits = self.table[tokens]  # (B, T, V)
        return DecoderOutput(logits, state + tokens.shape[1])


def search(
    rows: int = 1, encoder_output: EncoderOutput | None = None, **options
) -> tuple:
    decoder = BigramDecoder()
    model = StepModel(decoder, encoder_output, banned=(PAD, UNK, BOS))
    sampler = BeamSearch(BeamOptions(**options))
    start = torch.full((rows,), BOS)
    return sampler.generate(model, decoder.init_state(rows), start, 10, EOS)


def test_beam_finds_better_sequence_than_greedy():
    result = search(beam_size=2, length_penalty=0.0, n_best=2)
    assert result.tokens == [[B, EOS]]
    assert result.scores.tolist() == pytest.approx([math.log(0.36)])
    assert result.nbest[0][0][0] == [B, EOS]
    assert result.nbest[0][1][0] == [A, EOS]
    assert result.nbest[0][1][1] == pytest.approx(math.log(0.24))


def test_beam_size_one_is_greedy_on_table():
    result = search(beam_size=1)
    assert result.tokens == [[A, EOS]]
    assert result.scores.tolist() == pytest.approx([math.log(0.24)])


def test_min_length_delays_eos():
    # <eos> is banned for two steps: A C <eos> (0.21) beats A B <eos> (0.135).
    result = search(beam_size=2, length_penalty=0.0, n_best=2, min_length=2)
    assert result.tokens == [[A, C, EOS]]
    assert result.scores.tolist() == pytest.approx([math.log(0.6 * 0.35)])
    assert result.nbest[0][1][0] == [A, B, EOS]
    assert result.nbest[0][1][1] == pytest.approx(math.log(0.6 * 0.25 * 0.9))


def test_max_length_finishes_without_eos():
    result = search(beam_size=2, n_best=2, max_length=1)
    assert result.tokens == [[A]]
    assert [tokens for tokens, _ in result.nbest[0]] == [[A], [B]]


def test_max_length_ratio_caps_each_row():
    mask = torch.tensor([[True, False, False], [True, True, True]])
    encoded = EncoderOutput(summary=torch.zeros(2, 1), mask=mask)
    result = search(
        rows=2,
        encoder_output=encoded,
        beam_size=2,
        length_penalty=0.0,
        max_length_ratio=1.0,
    )
    assert result.tokens == [[A], [B, EOS]]


def test_finished_rows_stop_growing():
    result = search(rows=3, beam_size=3, length_penalty=0.0)
    assert result.tokens == [[B, EOS]] * 3
    assert all(tokens[-1] == EOS for tokens in result.tokens)


def test_length_penalty_rank():
    sampler = BeamSearch(BeamOptions(length_penalty=1.0))
    assert sampler.rank(-2.0, 1) == pytest.approx(-2.0)
    assert sampler.rank(-2.0, 7) == pytest.approx(-1.0)
    assert BeamSearch(BeamOptions(length_penalty=0.0)).rank(-2.0, 7) == -2.0


def test_n_best_above_beam_size_rejected():
    with pytest.raises(RecipeError, match="n_best \\(3\\) cannot exceed beam_size"):
        BeamSearch(BeamOptions(beam_size=2, n_best=3))


# ---------------------------------------------------------------- real decoders


def decode(sampler, encoder, decoder, source, lengths):
    with torch.no_grad():
        encoded = encoder(source, lengths)
        model = StepModel(decoder, encoded, banned=(PAD, UNK, BOS))
        start = torch.full((source.shape[0],), BOS)
        state = decoder.init_state(source.shape[0], encoded)
        return sampler.generate(model, state, start, 12, EOS)


@pytest.mark.parametrize("attend,input_feeding", [("after", False), ("before", False)])
def test_beam_one_equals_greedy(attend, input_feeding):
    encoder, decoder = make_model("bahdanau", attend, input_feeding)
    source, lengths = padded_sources()
    greedy = decode(GreedySampler(GreedyOptions()), encoder, decoder, source, lengths)
    beam = decode(
        BeamSearch(BeamOptions(beam_size=1)), encoder, decoder, source, lengths
    )
    assert beam.tokens == greedy.tokens
    assert torch.equal(beam.scores, greedy.scores)


@pytest.mark.parametrize("beam_size", [1, 4])
def test_beam_batch_invariance(beam_size):
    encoder, decoder = make_model("luong-general", "after", True)
    source, lengths = padded_sources()
    sampler = BeamSearch(BeamOptions(beam_size=beam_size, n_best=beam_size))
    batched = decode(sampler, encoder, decoder, source, lengths)
    for row in range(3):
        alone = decode(
            sampler,
            encoder,
            decoder,
            source[row : row + 1, : lengths[row]],
            lengths[row : row + 1],
        )
        assert alone.tokens[0] == batched.tokens[row]
        assert alone.scores[0].item() == pytest.approx(
            batched.scores[row].item(), abs=1e-5
        )
        assert [t for t, _ in alone.nbest[0]] == [t for t, _ in batched.nbest[row]]
