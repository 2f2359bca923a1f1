"""Attention over an encoder's memory: additive (Bahdanau) and Luong's dot and general.

Shapes: B batch, T query steps, S memory steps, Q query size, H memory size,
A additive attention size.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import Tensor, nn

from seqkit import Attention, hookimpl


def attend(
    scores: Tensor, memory: Tensor, mask: Tensor | None
) -> tuple[Tensor, Tensor]:
    """Softmax `scores` (B, T, S) over the real steps and weight `memory` (B, S, H).

    Pad steps get weight exactly 0 because their score is -inf before the
    softmax. Returns the context (B, T, H) and the weights (B, T, S).
    """
    if mask is not None:
        scores = scores.masked_fill(~mask[:, None, :], float("-inf"))
    weights = torch.softmax(scores.float(), dim=-1).to(memory.dtype)  # (B, T, S)
    return torch.bmm(weights, memory), weights


@dataclass
class BahdanauOptions:
    size: int = field(
        default=256, metadata={"min": 1, "help": "width A of the scoring layer"}
    )


class BahdanauAttention(Attention):
    """Additive attention: score(q, m) = v . tanh(W_q q + W_m m).

    `prepare` projects the memory once per batch, so each decoding step
    costs one query projection and the tanh over (S, A).
    """

    Options = BahdanauOptions

    def __init__(self, options: BahdanauOptions, query_size: int, memory_size: int):
        super().__init__()
        self.query_layer = nn.Linear(query_size, options.size, bias=False)
        self.memory_layer = nn.Linear(memory_size, options.size, bias=False)
        self.score_layer = nn.Linear(options.size, 1, bias=False)

    def prepare(self, memory: Tensor) -> Tensor:
        return self.memory_layer(memory)  # (B, S, A)

    def forward(
        self, query: Tensor, keys: Tensor, memory: Tensor, mask: Tensor | None
    ) -> tuple[Tensor, Tensor]:
        projected = self.query_layer(query)  # (B, T, A)
        hidden = torch.tanh(projected[:, :, None, :] + keys[:, None, :, :])
        scores = self.score_layer(hidden).squeeze(-1)  # (B, T, S)
        return attend(scores, memory, mask)


@dataclass
class LuongOptions:
    score: Literal["dot", "general"] = field(
        default="general",
        metadata={
            "help": "dot: q . m (query and memory of one size); general: q . W m"
        },
    )


class LuongAttention(Attention):
    """Multiplicative attention: score(q, m) = q . m (dot) or q . W m (general).

    Both scores of a whole target come from one batched matrix product, so
    a decoder that attends after its RNN needs no loop over steps.
    """

    Options = LuongOptions

    def __init__(self, options: LuongOptions, query_size: int, memory_size: int):
        super().__init__()
        self.options = options
        self.memory_layer = None
        if options.score == "general":
            self.memory_layer = nn.Linear(memory_size, query_size, bias=False)
        elif query_size != memory_size:
            raise ValueError(
                f"dot attention needs the query size ({query_size}) to equal the "
                f'memory size ({memory_size}); use score = "general" or match '
                "the decoder's hidden_size to the encoder's output size"
            )

    def prepare(self, memory: Tensor) -> Tensor:
        if self.memory_layer is None:
            return memory  # (B, S, H)
        return self.memory_layer(memory)  # (B, S, Q)

    def forward(
        self, query: Tensor, keys: Tensor, memory: Tensor, mask: Tensor | None
    ) -> tuple[Tensor, Tensor]:
        scores = torch.bmm(query, keys.transpose(1, 2))  # (B, T, S)
        return attend(scores, memory, mask)


@hookimpl
def seqkit_add_attentions() -> dict[str, type]:
    return {"bahdanau": BahdanauAttention, "luong": LuongAttention}
