"""The `tagger` decoder: one label per source step, read off the encoder memory.

Shapes: B batch, T steps read in one call, S source steps, H encoder size,
V label vocabulary size.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from seqkit import BuildContext, Decoder, DecoderOutput, EncoderOutput, hookimpl
from seqkit.errors import RecipeError
from seqkit.interfaces import State


@dataclass
class TaggerOptions:
    dropout: float = field(
        default=0.0,
        metadata={"min": 0.0, "max": 0.99, "help": "dropout on the encoder memory"},
    )


class TaggerDecoder(Decoder):
    """Dropout and a linear layer from each encoder memory step to label logits.

    The labels depend on the encoder memory only: `tokens` set how many steps
    to read, never their values. The state is the index of the next source
    step, a (1, B) long tensor, so `select_state` handles it like an RNN state
    and `step` reads one memory step as `forward` reads many.
    """

    Options = TaggerOptions

    def __init__(self, options: TaggerOptions, context: BuildContext):
        super().__init__()
        if context.vocab is None:
            raise ValueError("TaggerDecoder needs the target vocabulary in its context")
        if context.encoder_size is None:
            raise RecipeError(
                "the tagger decoder reads the encoder memory, but the recipe has no "
                '[encoder] section; add one, such as plugin = "rnn"',
                context.recipe_file,
                "decoder.plugin",
            )
        self.dropout = nn.Dropout(options.dropout)
        self.output = nn.Linear(context.encoder_size, len(context.vocab))

    def init_state(
        self, batch_size: int, encoder_output: EncoderOutput | None = None
    ) -> State:
        device = self.output.weight.device
        return torch.zeros(1, batch_size, dtype=torch.long, device=device)  # (1, B)

    def forward(
        self, tokens: Tensor, state: State, encoder_output: EncoderOutput | None = None
    ) -> DecoderOutput:
        """Return logits (B, T, V) for memory steps state .. state + T - 1."""
        if tokens.dim() != 2:
            raise ValueError(f"tokens must be (B, T), got shape {tuple(tokens.shape)}")
        if encoder_output is None or encoder_output.memory is None:
            raise ValueError("the tagger decoder needs an encoder output with memory")
        memory = encoder_output.memory  # (B, S, H)
        steps = tokens.shape[1]
        start = state[0]  # (B,)
        if steps == memory.shape[1] and not bool(start.any()):
            selected = memory  # (B, S, H), the usual whole-sequence call
        else:
            selected = self._gather(memory, start, steps)  # (B, T, H)
        logits = self.output(self.dropout(selected))  # (B, T, V)
        return DecoderOutput(logits, state + steps)

    @staticmethod
    def _gather(memory: Tensor, start: Tensor, steps: int) -> Tensor:
        """Return memory rows start[b] .. start[b] + steps - 1 of each sequence b."""
        positions = start[:, None] + torch.arange(steps, device=memory.device)  # (B, T)
        if steps and int(positions.max()) >= memory.shape[1]:
            raise ValueError(
                f"step {int(positions.max())} is past the encoder memory of "
                f"{memory.shape[1]} steps"
            )
        index = positions[:, :, None].expand(-1, -1, memory.shape[2])  # (B, T, H)
        return memory.gather(1, index)  # (B, T, H)


@hookimpl
def seqkit_add_decoders() -> dict[str, type]:
    return {"tagger": TaggerDecoder}
