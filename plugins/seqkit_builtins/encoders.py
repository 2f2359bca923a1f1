"""RNN encoders over token ids: LSTM, GRU or Elman RNN, optionally bidirectional.

Shapes: B batch, S source steps, E embedding size, H hidden size (per direction),
D directions (1 or 2), L layers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from seqkit import BuildContext, Encoder, EncoderOutput, hookimpl

CELLS = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn_tanh": nn.RNN, "rnn_relu": nn.RNN}


@dataclass
class RNNEncoderOptions:
    cell: Literal["lstm", "gru", "rnn_tanh", "rnn_relu"] = "lstm"
    embedding_size: int = field(default=128, metadata={"min": 1})
    hidden_size: int = field(
        default=256, metadata={"min": 1, "help": "units per direction"}
    )
    layers: int = field(default=1, metadata={"min": 1})
    dropout: float = field(
        default=0.0,
        metadata={"min": 0.0, "max": 0.99, "help": "on embeddings and between layers"},
    )
    bidirectional: bool = False
    pooling: Literal["last", "mean", "max", "attention"] = field(
        default="last",
        metadata={
            "help": "summary of each sequence: final state of the top layer, or "
            "mean, max or learned attention over its real steps"
        },
    )


class RNNEncoder(Encoder):
    """Embedding and a stacked RNN over packed sequences, pooled into one summary.

    Sequences run packed, so pad steps never enter the RNN and the result for a
    text does not depend on how far it is padded or on the other rows of its
    batch. `output_size` is the width of the summary and memory: hidden_size
    times the number of directions.
    """

    Options = RNNEncoderOptions

    def __init__(self, options: RNNEncoderOptions, context: BuildContext):
        super().__init__()
        if context.source_vocab is None:
            raise ValueError("RNNEncoder needs the source vocabulary in its context")
        self.options = options
        self.pad_id = context.source_vocab.pad_id
        self.embedding = nn.Embedding(
            len(context.source_vocab), options.embedding_size, padding_idx=self.pad_id
        )
        extra = (
            {"nonlinearity": options.cell[4:]}
            if options.cell.startswith("rnn_")
            else {}
        )
        self.rnn = CELLS[options.cell](
            options.embedding_size,
            options.hidden_size,
            num_layers=options.layers,
            dropout=options.dropout if options.layers > 1 else 0.0,
            batch_first=True,
            bidirectional=options.bidirectional,
            **extra,
        )
        self.dropout = nn.Dropout(options.dropout)
        self.directions = 2 if options.bidirectional else 1
        self.output_size = options.hidden_size * self.directions
        self.attention = None
        if options.pooling == "attention":
            self.attention = nn.Linear(self.output_size, 1)

    def forward(self, source: Tensor, lengths: Tensor | None = None) -> EncoderOutput:
        """Encode token ids `source` (B, S) whose real lengths are `lengths` (B,).

        Without `lengths`, every non-pad token counts. Each length must be at
        least 1. The memory is zero at pad steps, and the mask is True at real steps.
        """
        if source.dim() != 2:
            raise ValueError(f"source must be (B, S), got shape {tuple(source.shape)}")
        B, S = source.shape
        if lengths is None:
            lengths = (source != self.pad_id).sum(dim=1)  # (B,)
        lengths_cpu = lengths.cpu()
        if bool((lengths_cpu < 1).any()) or bool((lengths_cpu > S).any()):
            raise ValueError(
                f"every length must be in [1, {S}], got {lengths_cpu.tolist()}"
            )

        # run the RNN over real steps only
        embedded = self.dropout(self.embedding(source))  # (B, S, E)
        if bool((lengths_cpu == S).all()):
            # Nothing to skip. Packing would only cost time: the CPU backward
            # pass of torch 2.14 over packed batches is several times slower
            # (bench/packing.py).
            memory, final = self.rnn(embedded)  # (B, S, D * H)
        else:
            packed = pack_padded_sequence(
                embedded, lengths_cpu, batch_first=True, enforce_sorted=False
            )
            packed_output, final = self.rnn(packed)
            memory, _ = pad_packed_sequence(
                packed_output, batch_first=True, total_length=S
            )  # (B, S, D * H)
        steps = torch.arange(S, device=source.device)  # (S,)
        mask = steps[None, :] < lengths.to(source.device)[:, None]  # (B, S)

        summary = self._pool(memory, mask, final)  # (B, D * H)
        return EncoderOutput(summary=summary, memory=memory, mask=mask)

    def _pool(self, memory: Tensor, mask: Tensor, final) -> Tensor:
        """Reduce `memory` (B, S, D * H) over the real steps in `mask` (B, S)."""
        pooling = self.options.pooling
        if pooling == "last":
            return self._last_states(final)
        if pooling == "mean":
            weights = mask.unsqueeze(-1).to(memory.dtype)  # (B, S, 1)
            return (memory * weights).sum(dim=1) / weights.sum(dim=1)  # (B, D * H)
        if pooling == "max":
            hidden = memory.masked_fill(~mask.unsqueeze(-1), float("-inf"))
            return hidden.max(dim=1).values  # (B, D * H)
        scores = self.attention(memory).squeeze(-1)  # (B, S)
        scores = scores.masked_fill(~mask, float("-inf"))
        weights = torch.softmax(scores, dim=1)  # (B, S)
        return torch.bmm(weights.unsqueeze(1), memory).squeeze(1)  # (B, D * H)

    def _last_states(self, final) -> Tensor:
        """Concatenate the top layer's final hidden state of each direction.

        For a packed input, nn.RNN, nn.GRU and nn.LSTM return the state after
        each sequence's last real step (the first step for the backward
        direction), in the batch's original row order.
        """
        hidden = final[0] if isinstance(final, tuple) else final  # (L * D, B, H)
        B = hidden.shape[1]
        top = hidden.view(self.options.layers, self.directions, B, -1)[-1]  # (D, B, H)
        return top.transpose(0, 1).reshape(B, self.output_size)  # (B, D * H)


@hookimpl
def seqkit_add_encoders() -> dict[str, type]:
    return {"rnn": RNNEncoder}
