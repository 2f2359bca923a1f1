"""The `greedy` and `sample` sampler plugins on a real RNN decoder."""

from __future__ import annotations

import math

import pytest
import torch
from seqkit_builtins.decoders import RNNDecoder, RNNDecoderOptions
from seqkit_builtins.samplers import (
    GreedyOptions,
    GreedySampler,
    RandomSampler,
    SampleOptions,
)

from seqkit.errors import RecipeError
from seqkit.interfaces import StepModel

EOS = 3
STEPS = 30


@pytest.fixture
def decoder(letters_context):
    torch.manual_seed(0)
    options = RNNDecoderOptions(cell="gru", embedding_size=6, hidden_size=8)
    decoder = RNNDecoder(options, letters_context).eval()
    # Scale the output layer so the distribution is far from uniform, and keep
    # <eos> (id 3) unlikely so sequences run to the token limit.
    with torch.no_grad():
        decoder.output.weight.mul_(8.0)
        decoder.output.bias[EOS] = -30.0
    return decoder


def generate(decoder, sampler, rows=3, steps=STEPS, seed=None):
    """Run `sampler` from `<bos>` on `rows` rows and return the Generation."""
    generator = None if seed is None else torch.Generator().manual_seed(seed)
    state = decoder.init_state(rows)
    start = torch.full((rows,), 2)
    with torch.no_grad():
        return sampler.generate(StepModel(decoder), state, start, steps, EOS, generator)


def sample(decoder, seed=1, rows=3, steps=STEPS, **options):
    return generate(decoder, RandomSampler(SampleOptions(**options)), rows, steps, seed)


def test_greedy_follows_argmax(decoder):
    result = generate(decoder, GreedySampler(GreedyOptions()), rows=1, steps=5)

    expected = []
    state = decoder.init_state(1)
    token = torch.tensor([2])
    with torch.no_grad():
        for _ in range(5):
            output = decoder.step(token, state)
            token, state = output.logits.argmax(dim=-1), output.state
            expected.append(int(token))
    assert result.tokens == [expected]


def test_greedy_rows_identical(decoder):
    result = generate(decoder, GreedySampler(GreedyOptions()), rows=3)

    assert result.tokens[0] == result.tokens[1] == result.tokens[2]
    assert len(result.tokens[0]) == STEPS


def test_temperature_zero_equals_greedy(decoder):
    greedy = generate(decoder, GreedySampler(GreedyOptions()))

    result = sample(decoder, temperature=0.0)

    assert result.tokens == greedy.tokens
    assert torch.equal(result.scores, greedy.scores)


def test_top_k_one_equals_greedy(decoder):
    greedy = generate(decoder, GreedySampler(GreedyOptions()))

    assert sample(decoder, top_k=1).tokens == greedy.tokens


def test_tiny_top_p_equals_greedy(decoder):
    greedy = generate(decoder, GreedySampler(GreedyOptions()))

    assert sample(decoder, top_p=1e-6).tokens == greedy.tokens


def test_top_p_one_equals_plain_sampling(decoder):
    plain = sample(decoder, seed=5)

    result = sample(decoder, seed=5, top_p=1.0)

    assert result.tokens == plain.tokens
    # Plain sampling must differ from greedy, or this test would prove nothing.
    assert plain.tokens != generate(decoder, GreedySampler(GreedyOptions())).tokens


def test_large_top_k_equals_plain_sampling(decoder):
    plain = sample(decoder, seed=5)

    assert sample(decoder, seed=5, top_k=10).tokens == plain.tokens
    assert sample(decoder, seed=5, top_k=1000).tokens == plain.tokens


def test_top_k_limits_tokens(decoder):
    # With top_k = 2, every token is one of the two most likely at its step.
    sampler = RandomSampler(SampleOptions(temperature=3.0, top_k=2))
    result = generate(decoder, sampler, rows=4, seed=2)

    state = decoder.init_state(4)
    token = torch.full((4,), 2)
    with torch.no_grad():
        for step in range(STEPS):
            output = decoder.step(token, state)
            top_two = output.logits.topk(2, dim=-1).indices.tolist()
            token = torch.tensor([row[step] for row in result.tokens])
            for row, chosen in enumerate(token.tolist()):
                assert chosen in top_two[row]
            state = output.state


def test_seeded_sampling_repeatable(decoder):
    first = sample(decoder, seed=11, temperature=1.5)
    second = sample(decoder, seed=11, temperature=1.5)
    other = sample(decoder, seed=12, temperature=1.5)

    assert first.tokens == second.tokens
    assert torch.equal(first.scores, second.scores)
    assert first.tokens != other.tokens


def test_rows_sample_independently(decoder):
    result = sample(decoder, seed=3, temperature=2.0)

    assert result.tokens[0] != result.tokens[1]


def test_scores_are_model_log_probabilities(decoder):
    # Scores sum the unfiltered log-probabilities of the chosen tokens.
    result = sample(decoder, seed=4, rows=1, steps=4, temperature=2.0, top_k=3)

    state = decoder.init_state(1)
    token = torch.tensor([2])
    total = 0.0
    with torch.no_grad():
        for chosen in result.tokens[0]:
            output = decoder.step(token, state)
            total += float(output.logits.log_softmax(dim=-1)[0, chosen])
            token, state = torch.tensor([chosen]), output.state
    assert float(result.scores[0]) == pytest.approx(total, abs=1e-5)


def test_sampling_stops_at_eos(decoder):
    with torch.no_grad():
        decoder.output.bias[EOS] = 30.0

    greedy = generate(decoder, GreedySampler(GreedyOptions()), rows=2)
    sampled = sample(decoder, seed=0, rows=2)

    assert greedy.tokens == [[EOS], [EOS]]
    assert sampled.tokens == [[EOS], [EOS]]


def test_sampling_respects_max_new_tokens(decoder):
    result = sample(decoder, steps=7)

    assert [len(row) for row in result.tokens] == [7, 7, 7]
    assert EOS not in sum(result.tokens, [])


def test_repetition_penalty_avoids_repeats(decoder):
    plain = generate(decoder, GreedySampler(GreedyOptions()), rows=1)
    penalised = generate(
        decoder, GreedySampler(GreedyOptions(repetition_penalty=50.0)), rows=1
    )

    tokens = penalised.tokens[0]
    assert tokens != plain.tokens[0]
    # Without the penalty, greedy decoding repeats a token within 6 steps. With
    # a huge penalty, the first 6 choices are all different.
    assert len(set(plain.tokens[0][:6])) < 6
    assert len(set(tokens[:6])) == 6


@pytest.mark.parametrize(
    ("options", "key", "text"),
    [
        ({"temperature": -0.5}, "sampler.temperature", "got -0.5"),
        ({"top_k": 0}, "sampler.top_k", "top_k must be at least 1, got 0"),
        ({"top_p": 0.0}, "sampler.top_p", "top_p must be in (0, 1], got 0.0"),
        ({"top_p": 1.5}, "sampler.top_p", "top_p must be in (0, 1], got 1.5"),
        ({"temperature": math.nan}, "sampler.temperature", "got nan"),
        ({"temperature": math.inf}, "sampler.temperature", "got inf"),
    ],
)
def test_invalid_options_name_option(options, key, text):
    with pytest.raises(RecipeError) as caught:
        RandomSampler(SampleOptions(**options))

    assert caught.value.key == key
    assert f"`{key}`" in str(caught.value)
    assert text in str(caught.value)
