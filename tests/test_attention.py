"""Attention plugins and the RNN decoder's three attention modes."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from seqkit_builtins.attention import (
    BahdanauAttention,
    BahdanauOptions,
    LuongAttention,
    LuongOptions,
)
from seqkit_builtins.decoders import RNNDecoder, RNNDecoderOptions
from seqkit_builtins.encoders import RNNEncoder, RNNEncoderOptions

from seqkit import BuildContext, Vocabulary
from seqkit.recipe import Component
from seqkit.vocab import SPECIALS

SOURCE_VOCAB = Vocabulary([*SPECIALS, *"abcdefgh"])
TARGET_VOCAB = Vocabulary([*SPECIALS, *"ABCDEFG"])

ATTENTIONS = {
    "bahdanau": (BahdanauAttention, BahdanauOptions(size=7)),
    "luong-general": (LuongAttention, LuongOptions(score="general")),
    "luong-dot": (LuongAttention, LuongOptions(score="dot")),
}
# attend, input_feeding: the loop-free mode and the two looping modes
MODES = [("after", False), ("after", True), ("before", False)]


def make_model(
    attention: str = "luong-general",
    attend: str = "after",
    input_feeding: bool = False,
    cell: str = "lstm",
    layers: int = 1,
) -> tuple[RNNEncoder, RNNDecoder]:
    torch.manual_seed(0)
    context = BuildContext(
        base_dir=Path("."), vocab=TARGET_VOCAB, source_vocab=SOURCE_VOCAB
    )
    encoder = RNNEncoder(
        RNNEncoderOptions(
            cell=cell, embedding_size=6, hidden_size=5, bidirectional=True
        ),
        context,
    )
    context.encoder_size = encoder.output_size
    cls, options = ATTENTIONS[attention]
    context.attention = Component(attention, cls, options)
    decoder = RNNDecoder(
        RNNDecoderOptions(
            cell=cell,
            embedding_size=4,
            hidden_size=10,
            layers=layers,
            attend=attend,
            input_feeding=input_feeding,
        ),
        context,
    )
    encoder.eval()
    decoder.eval()
    return encoder, decoder


def padded_sources() -> tuple[torch.Tensor, torch.Tensor]:
    source = torch.tensor([[4, 5, 6, 7, 3], [8, 9, 3, 0, 0], [10, 3, 0, 0, 0]])
    return source, torch.tensor([5, 3, 2])


@pytest.mark.parametrize("attention", sorted(ATTENTIONS))
@pytest.mark.parametrize("attend,input_feeding", MODES)
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_step_equals_forward(attention, attend, input_feeding, cell):
    encoder, decoder = make_model(attention, attend, input_feeding, cell, layers=2)
    source, lengths = padded_sources()
    tokens = torch.tensor([[2, 4, 5, 6], [2, 7, 7, 3], [2, 9, 4, 5]])  # (B, T)
    with torch.no_grad():
        encoded = encoder(source, lengths)
        whole = decoder(tokens, decoder.init_state(3, encoded), encoded)
        state = decoder.init_state(3, encoded)
        for t in range(tokens.shape[1]):
            step = decoder.step(tokens[:, t], state, encoded)
            state = step.state
            torch.testing.assert_close(step.logits, whole.logits[:, t])
            torch.testing.assert_close(step.attention, whole.attention[:, t])


@pytest.mark.parametrize("attention", sorted(ATTENTIONS))
@pytest.mark.parametrize("attend,input_feeding", MODES)
def test_pad_steps_get_zero_weight(attention, attend, input_feeding):
    encoder, decoder = make_model(attention, attend, input_feeding)
    source, lengths = padded_sources()
    tokens = torch.tensor([[2, 4, 5], [2, 6, 7], [2, 8, 9]])
    with torch.no_grad():
        encoded = encoder(source, lengths)
        weights = decoder(tokens, decoder.init_state(3, encoded), encoded).attention
    assert weights.shape == (3, 3, 5)
    assert torch.equal(weights[1, :, 3:], torch.zeros(3, 2))
    assert torch.equal(weights[2, :, 2:], torch.zeros(3, 3))
    torch.testing.assert_close(weights.sum(dim=-1), torch.ones(3, 3))


@pytest.mark.parametrize("attention", sorted(ATTENTIONS))
@pytest.mark.parametrize("attend,input_feeding", MODES)
def test_padding_does_not_change_logits(attention, attend, input_feeding):
    encoder, decoder = make_model(attention, attend, input_feeding)
    source, lengths = padded_sources()
    tokens = torch.tensor([[2, 4, 5], [2, 6, 7], [2, 8, 9]])
    with torch.no_grad():
        encoded = encoder(source, lengths)
        batched = decoder(tokens, decoder.init_state(3, encoded), encoded).logits
        for row in range(3):
            alone = source[row : row + 1, : lengths[row]]
            encoded_alone = encoder(alone, lengths[row : row + 1])
            logits = decoder(
                tokens[row : row + 1],
                decoder.init_state(1, encoded_alone),
                encoded_alone,
            ).logits
            torch.testing.assert_close(logits[0], batched[row], atol=1e-5, rtol=1e-5)


def test_attention_keys_computed_once():
    encoder, decoder = make_model("bahdanau")
    source, lengths = padded_sources()
    calls = []
    prepare = decoder.attention.prepare

    def counting_prepare(memory):
        calls.append(memory.shape)
        return prepare(memory)

    decoder.attention.prepare = counting_prepare
    with torch.no_grad():
        encoded = encoder(source, lengths)
        state = decoder.init_state(3, encoded)
        for token in (2, 4, 5):
            state = decoder.step(torch.full((3,), token), state, encoded).state
    assert calls == [torch.Size([3, 5, 10])]
    assert encoded.cache["attention_keys"].shape == (3, 5, 7)


def test_dot_attention_rejects_size_mismatch():
    with pytest.raises(ValueError, match="query size \\(10\\) to equal the memory"):
        LuongAttention(LuongOptions(score="dot"), query_size=10, memory_size=8)


def test_encoder_output_select_repeats_rows():
    encoder, _ = make_model()
    source, lengths = padded_sources()
    with torch.no_grad():
        encoded = encoder(source, lengths)
    encoded.cache["keys"] = encoded.memory * 2
    picked = encoded.select(torch.tensor([2, 2, 0]))
    assert torch.equal(picked.memory[0], encoded.memory[2])
    assert torch.equal(picked.mask[1], encoded.mask[2])
    assert torch.equal(picked.summary[2], encoded.summary[0])
    assert torch.equal(picked.cache["keys"][0], encoded.memory[2] * 2)
    assert picked.source_lengths().tolist() == [2, 2, 5]


def test_loop_flag_by_mode():
    assert make_model(attend="after")[1].loops is False
    assert make_model(attend="after", input_feeding=True)[1].loops is True
    assert make_model(attend="before")[1].loops is True
