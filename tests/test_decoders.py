"""The decoder contract: `step` token by token equals the teacher-forced `forward`."""

from __future__ import annotations

import pytest
import torch
from seqkit_builtins.decoders import RNNDecoder, RNNDecoderOptions

CELLS = ["lstm", "gru", "rnn_tanh", "rnn_relu"]


def make_decoder(context, **options):
    torch.manual_seed(0)
    defaults = {"embedding_size": 6, "hidden_size": 8, "layers": 2, "dropout": 0.3}
    return RNNDecoder(RNNDecoderOptions(**{**defaults, **options}), context).eval()


def flatten_state(state):
    return list(state) if isinstance(state, tuple) else [state]


@pytest.mark.parametrize("tie", [False, True], ids=["untied", "tied"])
@pytest.mark.parametrize("cell", CELLS)
def test_step_equals_forward(letters_context, cell, tie):
    decoder = make_decoder(letters_context, cell=cell, tie_weights=tie)
    tokens = torch.tensor(
        [[2, 4, 5, 6, 7, 8, 9], [2, 9, 9, 1, 4, 3, 0], [2, 5, 4, 5, 4, 5, 4]]
    )

    with torch.no_grad():
        whole = decoder(tokens, decoder.init_state(3))
        state = decoder.init_state(3)
        steps = []
        for t in range(tokens.shape[1]):
            output = decoder.step(tokens[:, t], state)
            steps.append(output.logits)
            state = output.state

    assert whole.logits.shape == (3, 7, 10)
    torch.testing.assert_close(
        torch.stack(steps, dim=1), whole.logits, rtol=0, atol=1e-6
    )
    for stepped, forwarded in zip(
        flatten_state(state), flatten_state(whole.state), strict=True
    ):
        torch.testing.assert_close(stepped, forwarded, rtol=0, atol=1e-6)


@pytest.mark.parametrize("cell", CELLS)
def test_forward_in_windows_equals_whole(letters_context, cell):
    # Carrying the state across windows is how evaluation scores a split.
    decoder = make_decoder(letters_context, cell=cell)
    tokens = torch.tensor([[2, 4, 5, 6, 7, 8, 9, 4], [2, 9, 9, 1, 4, 3, 0, 5]])

    with torch.no_grad():
        whole = decoder(tokens, decoder.init_state(2)).logits
        first = decoder(tokens[:, :3], decoder.init_state(2))
        second = decoder(tokens[:, 3:], first.state)

    torch.testing.assert_close(
        torch.cat([first.logits, second.logits], dim=1), whole, rtol=0, atol=1e-6
    )


def test_state_shapes(letters_context):
    lstm = make_decoder(letters_context, cell="lstm", layers=3)
    gru = make_decoder(letters_context, cell="gru", layers=3)

    hidden, cell = lstm.init_state(5)

    assert hidden.shape == (3, 5, 8)
    assert cell.shape == (3, 5, 8)
    assert gru.init_state(5).shape == (3, 5, 8)
    assert not gru.init_state(5).any()


def test_tied_weights_shared(letters_context):
    same_size = make_decoder(letters_context, tie_weights=True, embedding_size=8)
    other_size = make_decoder(letters_context, tie_weights=True, embedding_size=6)

    assert same_size.output.weight is same_size.embedding.weight
    assert same_size.projection is None
    assert other_size.output.weight is other_size.embedding.weight
    assert other_size.projection.weight.shape == (6, 8)


def test_relu_and_tanh_cells_differ(letters_context):
    relu = make_decoder(letters_context, cell="rnn_relu")
    tanh = make_decoder(letters_context, cell="rnn_tanh")

    assert relu.rnn.nonlinearity == "relu"
    assert tanh.rnn.nonlinearity == "tanh"


def test_select_state_picks_rows(letters_context):
    decoder = make_decoder(letters_context, cell="lstm")
    tokens = torch.tensor([[4, 5], [6, 7], [8, 9]])
    with torch.no_grad():
        state = decoder(tokens, decoder.init_state(3)).state

    picked = decoder.select_state(state, torch.tensor([2, 0]))

    assert torch.equal(picked[0], state[0][:, [2, 0]])
    assert torch.equal(picked[1], state[1][:, [2, 0]])


def test_forward_rejects_one_dimensional_tokens(letters_context):
    decoder = make_decoder(letters_context)

    with pytest.raises(ValueError, match=r"tokens must be \(B, T\), got shape \(3,\)"):
        decoder(torch.tensor([4, 5, 6]), decoder.init_state(1))
