"""The model: an optional encoder followed by a decoder."""

from __future__ import annotations

from torch import Tensor, nn

from seqkit.interfaces import Decoder, DecoderOutput, Encoder, EncoderOutput, State


class SequenceModel(nn.Module):
    """An optional encoder and a decoder, trained together."""

    def __init__(self, encoder: Encoder | None, decoder: Decoder):
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder

    def encode(
        self, source: Tensor | None, lengths: Tensor | None = None
    ) -> EncoderOutput | None:
        """Encode `source`, or return None for a model without an encoder."""
        if self.encoder is None or source is None:
            return None
        return self.encoder(source, lengths)

    def forward(
        self,
        tokens: Tensor,
        state: State | None = None,
        encoder_output: EncoderOutput | None = None,
    ) -> DecoderOutput:
        """Teacher-forced decoding of `tokens` (B, T); logits are (B, T, V)."""
        if state is None:
            state = self.decoder.init_state(tokens.shape[0], encoder_output)
        return self.decoder(tokens, state, encoder_output)
