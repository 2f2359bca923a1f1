"""seqkit.testing: every built-in component passes the contract checks, and
broken components fail them with a ContractError that names the rule."""

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
from seqkit_builtins.beam import BeamOptions, BeamSearch
from seqkit_builtins.classification import ArgmaxSampler
from seqkit_builtins.cnn import CNNEncoder, CNNEncoderOptions
from seqkit_builtins.decoders import RNNDecoder, RNNDecoderOptions
from seqkit_builtins.encoders import RNNEncoder, RNNEncoderOptions
from seqkit_builtins.label_head import LabelHead, LabelHeadOptions
from seqkit_builtins.samplers import (
    GreedyOptions,
    GreedySampler,
    RandomSampler,
    SampleOptions,
)
from seqkit_builtins.tag_head import TaggerDecoder, TaggerOptions

from seqkit import BuildContext, DecoderOutput, Generation, Sampler, Vocabulary
from seqkit.decoding import run_steps
from seqkit.recipe import Component
from seqkit.testing import (
    ContractError,
    check_attention,
    check_decoder,
    check_encoder,
    check_sampler,
)
from seqkit.vocab import SPECIALS

SOURCE_VOCAB = Vocabulary([*SPECIALS, *"abcdefgh"])
TARGET_VOCAB = Vocabulary([*SPECIALS, *"ABCDEFG"])
LABEL_VOCAB = Vocabulary([*SPECIALS, "north", "south", "east"])

# Token sources of lengths 5, 3 and 2, padded with <pad> (id 0).
SOURCE = torch.tensor([[4, 5, 6, 7, 3], [8, 9, 3, 0, 0], [10, 3, 0, 0, 0]])
LENGTHS = torch.tensor([5, 3, 2])
TARGET = torch.tensor([[2, 4, 5, 6], [2, 7, 7, 3], [2, 9, 4, 5]])  # (B, T)

ATTENTIONS = {
    "bahdanau": (BahdanauAttention, BahdanauOptions(size=7)),
    "luong-general": (LuongAttention, LuongOptions(score="general")),
    "luong-dot": (LuongAttention, LuongOptions(score="dot")),
}
# attend, input_feeding: the loop-free mode and the two looping modes
MODES = [("after", False), ("after", True), ("before", False)]


def make_context(vocab: Vocabulary = TARGET_VOCAB, **fields) -> BuildContext:
    return BuildContext(
        base_dir=Path("."), vocab=vocab, source_vocab=SOURCE_VOCAB, **fields
    )


def make_encoder(cls=RNNEncoder, **options) -> RNNEncoder:
    torch.manual_seed(0)
    defaults = {"embedding_size": 6, "hidden_size": 5, "bidirectional": True}
    return cls(RNNEncoderOptions(**{**defaults, **options}), make_context())


def make_decoder(
    cls=RNNDecoder,
    attention: str | None = None,
    encoder_size: int | None = 10,
    **options,
) -> RNNDecoder:
    torch.manual_seed(1)
    context = make_context(encoder_size=encoder_size)
    if attention is not None:
        attention_cls, attention_options = ATTENTIONS[attention]
        context.attention = Component(attention, attention_cls, attention_options)
    defaults = {"embedding_size": 4, "hidden_size": 10}
    return cls(RNNDecoderOptions(**{**defaults, **options}), context)


def encoded_source():
    encoder = make_encoder()
    with torch.no_grad():
        return encoder(SOURCE, LENGTHS)


# ------------------------------------------------------------- built-in encoders


@pytest.mark.parametrize("pooling", ["last", "mean", "max", "attention"])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_rnn_encoder_passes(cell, bidirectional, pooling):
    encoder = make_encoder(cell=cell, bidirectional=bidirectional, pooling=pooling)
    output = check_encoder(encoder, SOURCE, LENGTHS)
    assert output.summary.shape == (3, encoder.output_size)
    assert output.mask.sum(dim=1).tolist() == [5, 3, 2]


def test_rnn_encoder_passes_without_lengths():
    encoder = make_encoder(cell="rnn_tanh", layers=2, pooling="mean")
    output = check_encoder(encoder, SOURCE)
    assert output.mask.sum(dim=1).tolist() == [5, 3, 2]


def test_rnn_encoder_passes_unpadded_batch():
    check_encoder(make_encoder(), SOURCE[:, :2], torch.tensor([2, 2, 2]))


def test_cnn_small_encoder_passes():
    torch.manual_seed(0)
    options = CNNEncoderOptions(image_size=16, channels=4, memory_size=6)
    encoder = CNNEncoder(options, make_context())
    output = check_encoder(encoder, torch.rand(2, 3, 16, 16))
    assert output.memory.shape == (2, 4, 6)


def test_cnn_resnet18_encoder_passes():
    torch.manual_seed(0)
    options = CNNEncoderOptions(backbone="resnet18", image_size=32, freeze=True)
    encoder = CNNEncoder(options, make_context())
    output = check_encoder(encoder, torch.rand(2, 3, 32, 32))
    assert output.memory.shape == (2, 1, 512)


def test_check_encoder_restores_training_mode():
    torch.manual_seed(0)
    options = CNNEncoderOptions(image_size=16, channels=4, freeze=True)
    encoder = CNNEncoder(options, make_context())
    encoder.train()
    check_encoder(encoder, torch.rand(2, 3, 16, 16))
    assert encoder.training
    assert not encoder.backbone.training


def test_check_encoder_rejects_float_tokens():
    with pytest.raises(ValueError, match="token ids \\(B, S\\) of an integer type"):
        check_encoder(make_encoder(), SOURCE.float())


# ------------------------------------------------------------- built-in decoders


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn_tanh", "rnn_relu"])
def test_rnn_language_model_passes(cell):
    decoder = make_decoder(cell=cell, layers=2, encoder_size=None)
    report = check_decoder(decoder, TARGET)
    assert report.vocab_size == len(TARGET_VOCAB)
    assert not report.attends
    assert report.step_difference <= 1e-5


def test_check_decoder_rejects_logits_of_wrong_vocabulary_size():
    decoder = make_decoder(encoder_size=None)

    with pytest.raises(ContractError) as caught:
        check_decoder(decoder, TARGET, vocab_size=len(TARGET_VOCAB) + 1)

    assert caught.value.clause == "logits over the vocabulary"
    assert str(caught.value) == (
        f"RNNDecoder forward returned logits of shape (3, 4, {len(TARGET_VOCAB)}); "
        f"the last size must be the vocabulary size {len(TARGET_VOCAB) + 1}"
    )


def test_rnn_decoder_tied_weights_passes():
    decoder = make_decoder(tie_weights=True, encoder_size=None)
    check_decoder(decoder, TARGET)


def test_rnn_decoder_with_bridge_passes():
    decoder = make_decoder(cell="gru")
    report = check_decoder(decoder, TARGET, encoded_source())
    assert not report.attends


@pytest.mark.parametrize("attention", sorted(ATTENTIONS))
@pytest.mark.parametrize("attend,input_feeding", MODES)
def test_rnn_attention_decoder_passes(attention, attend, input_feeding):
    decoder = make_decoder(
        attention=attention, attend=attend, input_feeding=input_feeding, layers=2
    )
    report = check_decoder(decoder, TARGET, encoded_source())
    assert report.attends
    assert report.select_difference <= 1e-5


@pytest.mark.parametrize("hidden_size", [None, 8])
def test_label_head_passes(hidden_size):
    torch.manual_seed(2)
    context = make_context(LABEL_VOCAB, encoder_size=10)
    head = LabelHead(LabelHeadOptions(hidden_size=hidden_size), context)
    encoded = check_encoder(make_encoder(pooling="attention"), SOURCE, LENGTHS)
    tokens = torch.full((3, 2), LABEL_VOCAB.bos_id)
    report = check_decoder(head, tokens, encoded)
    assert report.vocab_size == len(LABEL_VOCAB)


def test_tagger_passes():
    torch.manual_seed(2)
    tagger = TaggerDecoder(TaggerOptions(dropout=0.3), make_context(encoder_size=10))
    tagger.train()
    check_decoder(tagger, SOURCE, encoded_source())
    assert tagger.training


def test_check_decoder_rejects_one_step():
    with pytest.raises(ValueError, match="at least 1 row and 2 steps"):
        check_decoder(make_decoder(encoder_size=None), TARGET[:, :1])


# ----------------------------------------------------------- built-in attentions


@pytest.mark.parametrize("attention", sorted(ATTENTIONS))
def test_attention_passes(attention):
    cls, options = ATTENTIONS[attention]
    module = check_attention(cls, options, query_size=6, memory_size=6)
    assert isinstance(module, cls)


def test_general_attention_passes_different_sizes():
    check_attention(LuongAttention, LuongOptions(), query_size=4, memory_size=7)


# ------------------------------------------------------------- built-in samplers

SAMPLERS = {
    "greedy": lambda: GreedySampler(GreedyOptions()),
    "greedy-penalty": lambda: GreedySampler(GreedyOptions(repetition_penalty=1.3)),
    "sample": lambda: RandomSampler(SampleOptions()),
    "sample-temperature": lambda: RandomSampler(SampleOptions(temperature=0.7)),
    "sample-top-k": lambda: RandomSampler(SampleOptions(top_k=3)),
    "sample-top-p": lambda: RandomSampler(SampleOptions(top_p=0.8)),
    "sample-zero": lambda: RandomSampler(SampleOptions(temperature=0.0)),
    "sample-penalty": lambda: RandomSampler(
        SampleOptions(temperature=1.5, top_k=5, top_p=0.9, repetition_penalty=1.2)
    ),
    "beam-1": lambda: BeamSearch(BeamOptions(beam_size=1)),
    "beam-3": lambda: BeamSearch(BeamOptions(beam_size=3, n_best=3)),
    "beam-3-min-length": lambda: BeamSearch(
        BeamOptions(beam_size=3, n_best=2, length_penalty=0.0, min_length=2)
    ),
    "beam-3-max-length": lambda: BeamSearch(BeamOptions(beam_size=3, max_length=3)),
    "argmax": ArgmaxSampler,
}


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_sampler_passes(name):
    check_sampler(SAMPLERS[name]())


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_sampler_passes_one_token(name):
    check_sampler(SAMPLERS[name](), max_new_tokens=1)


def test_sampler_passes_other_sizes():
    sampler = BeamSearch(BeamOptions(beam_size=2, n_best=2))
    check_sampler(sampler, vocab_size=7, eos_id=0, batch_size=7, max_new_tokens=9)


def test_check_sampler_rejects_small_vocabulary():
    with pytest.raises(ValueError, match="vocab_size must be at least 6"):
        check_sampler(GreedySampler(GreedyOptions()), vocab_size=5)


# ------------------------------------------------------------- broken encoders


class PaddedMeanEncoder(RNNEncoder):
    """Mean pooling over every step, pad steps included."""

    def _pool(self, memory, mask, final):
        return memory.mean(dim=1)


class FullMaskEncoder(RNNEncoder):
    """Marks pad steps as real."""

    def forward(self, source, lengths=None):
        output = super().forward(source, lengths)
        output.mask = torch.ones_like(output.mask)
        return output


class NoMaskEncoder(RNNEncoder):
    """Returns a memory without a mask."""

    def forward(self, source, lengths=None):
        output = super().forward(source, lengths)
        output.mask = None
        return output


def test_summary_depending_on_padding_fails():
    with pytest.raises(ContractError) as caught:
        check_encoder(make_encoder(PaddedMeanEncoder), SOURCE, LENGTHS)
    message = str(caught.value)
    assert message.startswith("PaddedMeanEncoder summary of row 1 encoded alone")
    assert "differs from the batch by" in message
    assert caught.value.clause == "padding invariance"
    assert caught.value.component == "PaddedMeanEncoder"


def test_summary_depending_on_extra_padding_fails():
    unpadded = SOURCE[:, :2]
    with pytest.raises(ContractError, match="row 0 with 3 more pad steps differs"):
        check_encoder(make_encoder(PaddedMeanEncoder), unpadded)


def test_mask_on_pad_steps_fails():
    with pytest.raises(ContractError, match="mask is not True exactly at the real"):
        check_encoder(make_encoder(FullMaskEncoder), SOURCE, LENGTHS)


def test_missing_mask_fails():
    with pytest.raises(ContractError, match="returns a memory but no mask"):
        check_encoder(make_encoder(NoMaskEncoder), SOURCE, LENGTHS)


# ------------------------------------------------------------- broken decoders


class StatelessStepDecoder(RNNDecoder):
    """`step` restarts from the initial state at every token."""

    def step(self, token, state, encoder_output=None):
        fresh = self.init_state(token.shape[0], encoder_output)
        return super().step(token, fresh, encoder_output)


class PositionNoiseDecoder(RNNDecoder):
    """`forward` adds a bias that grows with the position in its window."""

    def forward(self, tokens, state, encoder_output=None):
        output = super().forward(tokens, state, encoder_output)
        positions = torch.arange(tokens.shape[1], dtype=output.logits.dtype)
        output.logits = output.logits + 0.01 * positions[None, :, None]
        return output


class ResettingForwardDecoder(RNNDecoder):
    """`forward` over more than one token ignores the state it is given."""

    def forward(self, tokens, state, encoder_output=None):
        if tokens.shape[1] > 1:
            state = self.init_state(tokens.shape[0], encoder_output)
        return super().forward(tokens, state, encoder_output)


class IgnoredIndexDecoder(RNNDecoder):
    """`select_state` returns the state unchanged."""

    def select_state(self, state, index):
        return state


class SortedIndexDecoder(RNNDecoder):
    """`select_state` picks the right rows in the wrong order."""

    def select_state(self, state, index):
        return super().select_state(state, index.sort().values)


class InPlaceDecoder(RNNDecoder):
    """`forward` writes the new state into the state it was given."""

    def forward(self, tokens, state, encoder_output=None):
        output = super().forward(tokens, state, encoder_output)
        state.copy_(output.state)
        return DecoderOutput(output.logits, state, output.attention)


class MaskIgnoringAttention(LuongAttention):
    """Luong attention that gives weight to pad steps."""

    def forward(self, query, keys, memory, mask):
        return super().forward(query, keys, memory, None)


def test_step_ignoring_state_fails():
    decoder = make_decoder(StatelessStepDecoder, encoder_size=None)
    with pytest.raises(ContractError) as caught:
        check_decoder(decoder, TARGET)
    message = str(caught.value)
    assert message.startswith("StatelessStepDecoder.step at position 1 differs")
    assert "differs from forward by" in message
    assert caught.value.clause == "step equals forward"


def test_position_noise_in_forward_fails():
    decoder = make_decoder(PositionNoiseDecoder, encoder_size=None)
    with pytest.raises(ContractError) as caught:
        check_decoder(decoder, TARGET)
    message = str(caught.value)
    assert message.startswith("PositionNoiseDecoder.step at position 1 differs")
    assert "by 1.0e-02 (tolerance 1e-05)" in message


def test_forward_dropping_state_fails():
    decoder = make_decoder(ResettingForwardDecoder, encoder_size=None)
    with pytest.raises(ContractError) as caught:
        check_decoder(decoder, TARGET)
    message = str(caught.value)
    assert "forward does not carry the state" in message
    assert "at position 2" in message
    assert caught.value.clause == "state carried"


def test_select_state_ignoring_index_fails():
    decoder = make_decoder(IgnoredIndexDecoder, encoder_size=None)
    with pytest.raises(ContractError) as caught:
        check_decoder(decoder, TARGET)
    message = str(caught.value)
    assert message.startswith(
        "IgnoredIndexDecoder.select_state with index [2, 1, 0, 2]"
    )
    assert "keep their 3 rows, expected 4 rows" in message


def test_select_state_in_wrong_order_fails():
    decoder = make_decoder(SortedIndexDecoder, attention="bahdanau")
    with pytest.raises(ContractError) as caught:
        check_decoder(decoder, TARGET, encoded_source())
    message = str(caught.value)
    assert "step after select_state with index [2, 1, 0, 2] at position 2" in message
    assert caught.value.clause == "select_state"


def test_state_changed_in_place_fails():
    decoder = make_decoder(InPlaceDecoder, cell="gru", encoder_size=None)
    with pytest.raises(ContractError, match="changed the state it was given in place"):
        check_decoder(decoder, TARGET)


def test_attention_on_pad_steps_fails_in_decoder():
    torch.manual_seed(1)
    context = make_context(encoder_size=10)
    context.attention = Component("luong", MaskIgnoringAttention, LuongOptions())
    decoder = RNNDecoder(RNNDecoderOptions(embedding_size=4, hidden_size=10), context)
    with pytest.raises(ContractError) as caught:
        check_decoder(decoder, TARGET, encoded_source())
    message = str(caught.value)
    assert "forward attention weight at masked source step 3 (row 1" in message
    assert "expected exactly 0" in message


def test_attention_on_pad_steps_fails():
    with pytest.raises(ContractError) as caught:
        check_attention(MaskIgnoringAttention, LuongOptions(), 6, 6)
    message = str(caught.value)
    assert message.startswith("MaskIgnoringAttention.forward attention weight at")
    assert caught.value.clause == "attention weights"


# ------------------------------------------------------------- broken samplers


class EndlessSampler(Sampler):
    """Greedy, but keeps the tokens after <eos>."""

    def generate(
        self, model, state, last_token, max_new_tokens, eos_id, generator=None
    ):
        token, scores, rows = last_token, torch.zeros(last_token.shape[0]), []
        for _ in range(max_new_tokens):
            log_probs, state = model.step(token, state)
            token = log_probs.argmax(dim=-1)
            scores += log_probs.gather(1, token[:, None]).squeeze(1)
            rows.append(token)
        return Generation(torch.stack(rows, dim=1).tolist(), scores)


class OneMoreTokenSampler(Sampler):
    """Greedy with one token more than allowed."""

    def generate(
        self, model, state, last_token, max_new_tokens, eos_id, generator=None
    ):
        def choose(log_probs, seen):
            return log_probs.argmax(dim=-1)

        return run_steps(model, state, last_token, max_new_tokens + 1, eos_id, choose)


class UnbannedSampler(Sampler):
    """Greedy over the decoder's logits, bypassing `StepModel.banned`."""

    def generate(
        self, model, state, last_token, max_new_tokens, eos_id, generator=None
    ):
        output = model.decoder.step(last_token, state)
        log_probs = torch.log_softmax(output.logits, dim=-1)
        scores, tokens = log_probs.max(dim=-1)
        return Generation([[token] for token in tokens.tolist()], scores)


class UnseededSampler(Sampler):
    """Draws from the global random generator instead of `generator`."""

    def generate(
        self, model, state, last_token, max_new_tokens, eos_id, generator=None
    ):
        def choose(log_probs, seen):
            return torch.multinomial(log_probs.exp(), 1).squeeze(1)

        return run_steps(model, state, last_token, max_new_tokens, eos_id, choose)


class ZeroScoreSampler(GreedySampler):
    """Greedy with every score 0."""

    def generate(self, *args, **kwargs):
        result = super().generate(*args, **kwargs)
        return Generation(result.tokens, torch.zeros_like(result.scores))


class ReversedBestSampler(BeamSearch):
    """Beam search that lists its n best hypotheses worst first."""

    def generate(self, *args, **kwargs):
        result = super().generate(*args, **kwargs)
        result.nbest = [list(reversed(row)) for row in result.nbest]
        return result


class MissingRowSampler(GreedySampler):
    """Greedy that drops the last row."""

    def generate(self, *args, **kwargs):
        result = super().generate(*args, **kwargs)
        return Generation(result.tokens[:-1], result.scores)


def test_tokens_after_eos_fail():
    with pytest.raises(ContractError) as caught:
        check_sampler(EndlessSampler())
    message = str(caught.value)
    assert message.startswith("EndlessSampler.generate row 0 continues after <eos>")
    assert caught.value.clause == "<eos> ends the row"


def test_too_many_tokens_fail():
    with pytest.raises(ContractError) as caught:
        check_sampler(OneMoreTokenSampler())
    message = str(caught.value)
    assert "row 3 has 7 tokens, more than max_new_tokens = 6" in message
    assert caught.value.clause == "max_new_tokens"


def test_banned_tokens_fail():
    with pytest.raises(ContractError) as caught:
        check_sampler(UnbannedSampler())
    message = str(caught.value)
    assert "row 0 contains banned token" in message
    assert "StepModel.banned = (0, 1, 2)" in message


def test_global_random_generator_fails():
    torch.manual_seed(0)
    with pytest.raises(ContractError) as caught:
        check_sampler(UnseededSampler())
    assert "is not reproducible" in str(caught.value)
    assert caught.value.clause == "reproducible with a seeded generator"


def test_wrong_scores_fail():
    with pytest.raises(ContractError) as caught:
        check_sampler(ZeroScoreSampler(GreedyOptions()))
    message = str(caught.value)
    assert "has score 0, but its tokens" in message
    assert "summed log-probability" in message


def test_nbest_out_of_order_fails():
    sampler = ReversedBestSampler(BeamOptions(beam_size=3, n_best=2))
    with pytest.raises(
        ContractError, match="nbest\\[0\\]\\[0\\] is .*expected the row"
    ):
        check_sampler(sampler)


def test_missing_row_fails():
    with pytest.raises(ContractError, match="returned 3 token lists for 4 rows"):
        check_sampler(MissingRowSampler(GreedyOptions()))
