"""Recurrent decoders: Elman RNN (tanh or relu), LSTM and GRU.

Shapes: B batch, T target steps, E embedding size, H hidden size, L layers,
V vocabulary size.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import Tensor, nn

from seqkit import BuildContext, Decoder, DecoderOutput, EncoderOutput, hookimpl
from seqkit.interfaces import State

CELLS = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn_tanh": nn.RNN, "rnn_relu": nn.RNN}


@dataclass
class RNNDecoderOptions:
    cell: Literal["lstm", "gru", "rnn_tanh", "rnn_relu"] = "lstm"
    embedding_size: int = field(default=128, metadata={"min": 1})
    hidden_size: int = field(default=256, metadata={"min": 1})
    layers: int = field(default=1, metadata={"min": 1})
    dropout: float = field(default=0.0, metadata={"min": 0.0, "max": 0.99})
    tie_weights: bool = field(
        default=False, metadata={"help": "share the embedding and output matrices"}
    )


class RNNDecoder(Decoder):
    """Embedding, a stacked nn.LSTM / nn.GRU / nn.RNN, and a linear output layer.

    The teacher-forced `forward` sends the whole window through one cuDNN-style
    RNN call; `step` is the same call on a window of one token. With an encoder,
    a bridge layer maps the encoder summary (B, H_enc) to the initial hidden
    state of every layer.
    """

    Options = RNNDecoderOptions

    def __init__(self, options: RNNDecoderOptions, context: BuildContext):
        super().__init__()
        if context.vocab is None:
            raise ValueError("RNNDecoder needs the target vocabulary in its context")
        self.options = options
        vocab_size = len(context.vocab)
        self.embedding = nn.Embedding(
            vocab_size, options.embedding_size, padding_idx=context.vocab.pad_id
        )
        rnn_class = CELLS[options.cell]
        extra = (
            {"nonlinearity": options.cell[4:]}
            if options.cell.startswith("rnn_")
            else {}
        )
        self.rnn = rnn_class(
            options.embedding_size,
            options.hidden_size,
            num_layers=options.layers,
            dropout=options.dropout if options.layers > 1 else 0.0,
            batch_first=True,
            **extra,
        )
        self.dropout = nn.Dropout(options.dropout)
        self.projection = None
        if options.tie_weights and options.hidden_size != options.embedding_size:
            self.projection = nn.Linear(options.hidden_size, options.embedding_size)
        out_features = (
            options.embedding_size if options.tie_weights else options.hidden_size
        )
        self.output = nn.Linear(out_features, vocab_size)
        if options.tie_weights:
            self.output.weight = self.embedding.weight
        self.bridge = None
        if context.encoder_size is not None:
            self.bridge = nn.Linear(
                context.encoder_size, options.layers * options.hidden_size
            )

    def init_state(
        self, batch_size: int, encoder_output: EncoderOutput | None = None
    ) -> State:
        options = self.options
        weight = self.output.weight
        if self.bridge is not None and encoder_output is not None:
            hidden = torch.tanh(self.bridge(encoder_output.summary))  # (B, L * H)
            hidden = hidden.view(batch_size, options.layers, options.hidden_size)
            hidden = hidden.transpose(0, 1).contiguous()  # (L, B, H)
        else:
            hidden = weight.new_zeros(
                options.layers, batch_size, options.hidden_size
            )  # (L, B, H)
        if options.cell == "lstm":
            return (hidden, torch.zeros_like(hidden))
        return hidden

    def forward(
        self, tokens: Tensor, state: State, encoder_output: EncoderOutput | None = None
    ) -> DecoderOutput:
        """Run `tokens` (B, T) from `state`; logits are (B, T, V)."""
        if tokens.dim() != 2:
            raise ValueError(f"tokens must be (B, T), got shape {tuple(tokens.shape)}")
        embedded = self.dropout(self.embedding(tokens))  # (B, T, E)
        hidden, state = self.rnn(embedded, state)  # (B, T, H)
        hidden = self.dropout(hidden)
        if self.projection is not None:
            hidden = self.projection(hidden)  # (B, T, E)
        return DecoderOutput(self.output(hidden), state)  # (B, T, V)


@hookimpl
def seqkit_add_decoders() -> dict[str, type]:
    return {"rnn": RNNDecoder}
