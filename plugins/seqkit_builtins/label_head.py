"""A one-step decoder that maps the encoder summary to label logits.

Shapes: B batch, T target steps, H encoder summary size, F hidden layer size,
V label vocabulary size (the four special tokens and the labels).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import Tensor, nn

from seqkit import BuildContext, Decoder, DecoderOutput, EncoderOutput, hookimpl
from seqkit.errors import RecipeError
from seqkit.interfaces import State


@dataclass
class LabelHeadOptions:
    hidden_size: int | None = field(
        default=None,
        metadata={"min": 1, "help": "units of a tanh layer before the output; none"},
    )
    dropout: float = field(
        default=0.0, metadata={"min": 0.0, "max": 0.99, "help": "on the summary"}
    )


class LabelHead(Decoder):
    """Dropout, an optional tanh layer and a linear layer over the encoder summary.

    The state is the summary shaped (1, B, H), so `select_state` picks rows like
    any RNN state. The input tokens only set the number of steps: every step
    returns the same label logits, which makes `step` equal `forward`.
    """

    Options = LabelHeadOptions

    def __init__(self, options: LabelHeadOptions, context: BuildContext):
        super().__init__()
        if context.vocab is None:
            raise ValueError("LabelHead needs the label vocabulary in its context")
        if context.encoder_size is None:
            raise RecipeError(
                "the label decoder reads an encoder's summary; add an [encoder] "
                'section, such as plugin = "rnn"',
                context.recipe_file,
                "encoder",
            )
        self.dropout = nn.Dropout(options.dropout)
        self.hidden = None
        width = context.encoder_size
        if options.hidden_size is not None:
            self.hidden = nn.Linear(width, options.hidden_size)
            width = options.hidden_size
        self.output = nn.Linear(width, len(context.vocab))

    def init_state(
        self, batch_size: int, encoder_output: EncoderOutput | None = None
    ) -> State:
        if encoder_output is None:
            raise ValueError("LabelHead needs an encoder output to start from")
        summary = encoder_output.summary  # (B, H)
        if summary.shape[0] != batch_size:
            raise ValueError(
                f"the encoder summary has {summary.shape[0]} rows, expected "
                f"{batch_size}"
            )
        return summary.unsqueeze(0)  # (1, B, H)

    def forward(
        self, tokens: Tensor, state: State, encoder_output: EncoderOutput | None = None
    ) -> DecoderOutput:
        """Return label logits (B, T, V) for `tokens` (B, T), the same at every step."""
        if tokens.dim() != 2:
            raise ValueError(f"tokens must be (B, T), got shape {tuple(tokens.shape)}")
        B, T = tokens.shape
        features = self.dropout(state[0])  # (B, H)
        if self.hidden is not None:
            features = self.dropout(self.hidden(features).tanh())  # (B, F)
        logits = self.output(features)  # (B, V)
        return DecoderOutput(logits.unsqueeze(1).expand(B, T, -1), state)  # (B, T, V)


@hookimpl
def seqkit_add_decoders() -> dict[str, type]:
    return {"label": LabelHead}
