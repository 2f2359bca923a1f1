"""The RNN encoder and the label head: packing, padding invariance, pooling."""

from __future__ import annotations

import pytest
import torch
from seqkit_builtins.encoders import RNNEncoder, RNNEncoderOptions
from seqkit_builtins.label_head import LabelHead, LabelHeadOptions

from seqkit.context import BuildContext
from seqkit.errors import RecipeError
from seqkit.model import SequenceModel
from seqkit.vocab import Vocabulary

POOLINGS = ["last", "mean", "max", "attention"]
VARIANTS = [
    ("lstm", False),
    ("lstm", True),
    ("gru", False),
    ("gru", True),
]
VARIANT_IDS = ["lstm", "bilstm", "gru", "bigru"]

# Token ids of a text in the letters vocabulary (ids 4 to 9 are a to f).
TEXT = [4, 7, 5, 9]
OTHERS = [[9, 8, 7, 6, 5, 4, 9], [5, 6]]


@pytest.fixture
def context(letters_vocab, tmp_path) -> BuildContext:
    """Letters as the source vocabulary and three labels as the target."""
    labels = Vocabulary(["<pad>", "<unk>", "<bos>", "<eos>", "x", "y", "z"])
    return BuildContext(base_dir=tmp_path, vocab=labels, source_vocab=letters_vocab)


def make_encoder(context, **options) -> RNNEncoder:
    torch.manual_seed(0)
    defaults = {"embedding_size": 6, "hidden_size": 5, "layers": 2, "dropout": 0.3}
    return RNNEncoder(RNNEncoderOptions(**{**defaults, **options}), context).eval()


def make_model(context, **options) -> SequenceModel:
    encoder = make_encoder(context, **options)
    context.encoder_size = encoder.output_size
    head = LabelHead(LabelHeadOptions(hidden_size=4, dropout=0.3), context)
    return SequenceModel(encoder, head).eval()


def padded(rows: list[list[int]], width: int) -> torch.Tensor:
    source = torch.zeros(len(rows), width, dtype=torch.long)  # (B, S)
    for index, row in enumerate(rows):
        source[index, : len(row)] = torch.tensor(row)
    return source


def label_logits(model: SequenceModel, rows: list[list[int]], width: int):
    source = padded(rows, width)  # (B, S)
    lengths = torch.tensor([len(row) for row in rows])  # (B,)
    with torch.no_grad():
        encoded = model.encode(source, lengths)
        start = torch.full((len(rows), 1), 2)  # (B, 1)
        return model(start, None, encoded).logits[:, 0]  # (B, V)


@pytest.mark.parametrize("pooling", POOLINGS)
@pytest.mark.parametrize(("cell", "bidirectional"), VARIANTS, ids=VARIANT_IDS)
def test_logits_ignore_padding(context, cell, bidirectional, pooling):
    model = make_model(context, cell=cell, bidirectional=bidirectional, pooling=pooling)

    short = label_logits(model, [TEXT], 5)
    long = label_logits(model, [TEXT], 50)
    in_batch = label_logits(model, [OTHERS[0], TEXT, OTHERS[1]], 50)

    torch.testing.assert_close(long, short, rtol=0, atol=1e-5)
    torch.testing.assert_close(in_batch[1:2], short, rtol=0, atol=1e-5)


@pytest.mark.parametrize(("cell", "bidirectional"), VARIANTS, ids=VARIANT_IDS)
def test_last_pooling_reads_last_real_step(context, cell, bidirectional):
    encoder = make_encoder(context, cell=cell, bidirectional=bidirectional)
    rows = [OTHERS[1], TEXT, OTHERS[0]]
    lengths = torch.tensor([len(row) for row in rows])

    with torch.no_grad():
        output = encoder(padded(rows, 9), lengths)

    hidden = 5
    for row, length in enumerate(lengths.tolist()):
        forward_last = output.memory[row, length - 1, :hidden]
        torch.testing.assert_close(output.summary[row, :hidden], forward_last)
        if bidirectional:
            backward_last = output.memory[row, 0, hidden:]
            torch.testing.assert_close(output.summary[row, hidden:], backward_last)


def test_unsorted_lengths_packed(context):
    encoder = make_encoder(context, bidirectional=True)
    rows = [OTHERS[1], TEXT, OTHERS[0]]
    lengths = torch.tensor([2, 4, 7])

    with torch.no_grad():
        ascending = encoder(padded(rows, 7), lengths)
        descending = encoder(padded(rows[::-1], 7), lengths.flip(0))

    torch.testing.assert_close(ascending.summary, descending.summary.flip(0))
    torch.testing.assert_close(ascending.memory, descending.memory.flip(0))


def test_output_shapes_and_mask(context):
    encoder = make_encoder(context, bidirectional=True)
    lengths = torch.tensor([2, 4])

    with torch.no_grad():
        output = encoder(padded([OTHERS[1], TEXT], 6), lengths)

    assert encoder.output_size == 10
    assert output.summary.shape == (2, 10)
    assert output.memory.shape == (2, 6, 10)
    assert output.mask.tolist() == [
        [True, True, False, False, False, False],
        [True, True, True, True, False, False],
    ]
    assert torch.all(output.memory[0, 2:] == 0)


def test_lengths_default_to_non_pad_tokens(context):
    encoder = make_encoder(context)
    source = padded([OTHERS[1], TEXT], 6)

    with torch.no_grad():
        explicit = encoder(source, torch.tensor([2, 4]))
        derived = encoder(source)

    torch.testing.assert_close(derived.summary, explicit.summary)


def test_zero_length_rejected(context):
    encoder = make_encoder(context)

    with pytest.raises(ValueError, match=r"every length must be in \[1, 3\]"):
        encoder(padded([[4, 5]], 3), torch.tensor([0]))


@pytest.mark.parametrize("cell", ["rnn_tanh", "rnn_relu"])
def test_elman_cells_encode(context, cell):
    encoder = make_encoder(context, cell=cell, bidirectional=True)

    with torch.no_grad():
        output = encoder(padded([TEXT], 5), torch.tensor([4]))

    assert output.summary.shape == (1, 10)


def test_label_head_step_equals_forward(context):
    model = make_model(context, bidirectional=True)
    source = padded([TEXT, OTHERS[0]], 7)

    with torch.no_grad():
        encoded = model.encode(source, torch.tensor([4, 7]))
        state = model.decoder.init_state(2, encoded)
        whole = model.decoder(torch.tensor([[2], [2]]), state, encoded)
        stepped = model.decoder.step(torch.tensor([2, 2]), state, encoded)

    assert state.shape == (1, 2, 10)
    assert whole.logits.shape == (2, 1, 7)
    assert stepped.logits.shape == (2, 7)
    torch.testing.assert_close(stepped.logits, whole.logits[:, 0], rtol=0, atol=1e-6)
    torch.testing.assert_close(stepped.state, whole.state)


def test_label_head_select_state(context):
    model = make_model(context)
    source = padded([TEXT, OTHERS[0]], 7)

    with torch.no_grad():
        encoded = model.encode(source, torch.tensor([4, 7]))
        state = model.decoder.init_state(2, encoded)
        picked = model.decoder.select_state(state, torch.tensor([1, 1, 0]))
        logits = model.decoder.step(torch.tensor([2, 2, 2]), picked).logits

    torch.testing.assert_close(picked[0, 0], encoded.summary[1])
    torch.testing.assert_close(logits[0], logits[1])
    assert logits.shape == (3, 7)


def test_label_head_needs_encoder(context):
    with pytest.raises(RecipeError, match=r"add an \[encoder\] section"):
        LabelHead(LabelHeadOptions(), context)
