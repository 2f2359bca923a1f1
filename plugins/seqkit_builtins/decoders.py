"""Recurrent decoders: Elman RNN (tanh or relu), LSTM and GRU, with optional attention.

Shapes: B batch, T target steps, S source steps, E embedding size, H hidden
size, M encoder memory size, L layers, V vocabulary size.
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
    attend: Literal["after", "before"] = field(
        default="after",
        metadata={
            "help": "with [attention]: after: attend from each RNN output (one RNN "
            "call over the target); before: attend from the previous state and "
            "feed the context into the RNN input (a loop over steps)"
        },
    )
    input_feeding: bool = field(
        default=False,
        metadata={
            "help": "with attend = after: feed each step's attentional vector "
            "into the next step's input (a loop over steps)"
        },
    )


class RNNDecoder(Decoder):
    """Embedding, a stacked nn.LSTM / nn.GRU / nn.RNN, and a linear output layer.

    With an encoder, a bridge layer maps the encoder summary (B, M) to the
    initial hidden state of every layer. With an `[attention]` in the recipe,
    the decoder attends over the encoder memory and predicts from the
    attentional vector tanh(W [context; h]) instead of h, in one of three ways:

    - `attend = "after"` (Luong): one RNN call over the whole target, then one
      batched attention over all its outputs. No Python loop over steps.
    - `attend = "after"` with `input_feeding` (Luong): each step's input also
      holds the previous attentional vector, so the target runs step by step.
    - `attend = "before"` (Bahdanau): each step attends from the previous top
      hidden state and the RNN reads [embedding; context], so the target runs
      step by step.

    `step` is `forward` on a window of one token, so the two always agree.
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
        self.attention = None
        self.combine = None
        input_size = options.embedding_size
        if context.attention is not None:
            if context.encoder_size is None:
                raise ValueError("attention needs an encoder with a memory")
            self.attention = context.attention.cls(
                context.attention.options, options.hidden_size, context.encoder_size
            )
            self.combine = nn.Linear(
                context.encoder_size + options.hidden_size,
                options.hidden_size,
                bias=False,
            )
            if options.attend == "before":
                input_size += context.encoder_size
            elif options.input_feeding:
                input_size += options.hidden_size
        rnn_class = CELLS[options.cell]
        extra = (
            {"nonlinearity": options.cell[4:]}
            if options.cell.startswith("rnn_")
            else {}
        )
        self.rnn = rnn_class(
            input_size,
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

    @property
    def loops(self) -> bool:
        """True when the teacher-forced pass runs the target step by step."""
        if self.attention is None:
            return False
        return self.options.attend == "before" or self.options.input_feeding

    @property
    def feeds_input(self) -> bool:
        """True when the state carries the previous attentional vector."""
        return (
            self.attention is not None
            and self.options.attend == "after"
            and self.options.input_feeding
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
        state = (hidden, torch.zeros_like(hidden)) if options.cell == "lstm" else hidden
        if self.feeds_input:
            # The attentional vector before the first step, batch on dim 1
            # like the RNN state: (1, B, H).
            return (state, hidden.new_zeros(1, batch_size, options.hidden_size))
        return state

    def forward(
        self, tokens: Tensor, state: State, encoder_output: EncoderOutput | None = None
    ) -> DecoderOutput:
        """Run `tokens` (B, T) from `state`; logits are (B, T, V)."""
        if tokens.dim() != 2:
            raise ValueError(f"tokens must be (B, T), got shape {tuple(tokens.shape)}")
        embedded = self.dropout(self.embedding(tokens))  # (B, T, E)
        attention = None
        if self.attention is None:
            hidden, state = self.rnn(embedded, state)  # (B, T, H)
        elif self.loops:
            hidden, state, attention = self._run_loop(embedded, state, encoder_output)
        else:
            outputs, state = self.rnn(embedded, state)  # (B, T, H)
            hidden, attention = self._attend(outputs, encoder_output)
        hidden = self.dropout(hidden)
        if self.projection is not None:
            hidden = self.projection(hidden)  # (B, T, E)
        return DecoderOutput(self.output(hidden), state, attention)  # (B, T, V)

    def _context(
        self, query: Tensor, encoder_output: EncoderOutput | None
    ) -> tuple[Tensor, Tensor]:
        """Return the context (B, T, M) and weights (B, T, S) for `query` (B, T, H).

        The attention keys are computed once per encoder output and cached in
        it, so decoding steps reuse them.
        """
        if encoder_output is None or encoder_output.memory is None:
            raise ValueError(
                "this decoder attends over the encoder memory, but got no memory"
            )
        memory = encoder_output.memory  # (B, S, M)
        keys = encoder_output.cache.get("attention_keys")
        if keys is None:
            keys = self.attention.prepare(memory)  # (B, S, K)
            encoder_output.cache["attention_keys"] = keys
        return self.attention(query, keys, memory, encoder_output.mask)

    def _combine(self, context: Tensor, hidden: Tensor) -> Tensor:
        """Return the attentional vector tanh(W [context; hidden]) (B, T, H)."""
        return torch.tanh(self.combine(torch.cat([context, hidden], dim=-1)))

    def _attend(
        self, hidden: Tensor, encoder_output: EncoderOutput | None
    ) -> tuple[Tensor, Tensor]:
        """Attend from RNN outputs `hidden` (B, T, H); return vectors and weights."""
        context, weights = self._context(hidden, encoder_output)
        return self._combine(context, hidden), weights

    def _run_loop(
        self, embedded: Tensor, state: State, encoder_output: EncoderOutput | None
    ) -> tuple[Tensor, State, Tensor]:
        """Run the target one step at a time, for the modes that need it."""
        feed = None
        if self.feeds_input:
            state, feed = state  # feed: (1, B, H)
        vectors, weights = [], []
        for t in range(embedded.shape[1]):
            step_input = embedded[:, t : t + 1]  # (B, 1, E)
            if self.options.attend == "before":
                top = state[0] if isinstance(state, tuple) else state  # (L, B, H)
                query = top[-1].unsqueeze(1)  # (B, 1, H)
                context, weight = self._context(query, encoder_output)  # (B, 1, M)
                step_input = torch.cat([step_input, context], dim=-1)
                output, state = self.rnn(step_input, state)  # (B, 1, H)
                vector = self._combine(context, output)  # (B, 1, H)
            else:
                step_input = torch.cat([step_input, feed.transpose(0, 1)], dim=-1)
                output, state = self.rnn(step_input, state)  # (B, 1, H)
                vector, weight = self._attend(output, encoder_output)  # (B, 1, H)
                feed = vector.transpose(0, 1)  # (1, B, H)
            vectors.append(vector)
            weights.append(weight)
        if feed is not None:
            state = (state, feed)
        return torch.cat(vectors, dim=1), state, torch.cat(weights, dim=1)


@hookimpl
def seqkit_add_decoders() -> dict[str, type]:
    return {"rnn": RNNDecoder}
