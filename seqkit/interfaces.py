"""The component interfaces that every seqkit plugin implements.

Shape legend used in every model module:
    B batch, T target steps, S source steps, H hidden size, V vocabulary size.

A model is an optional encoder followed by a decoder. The four RNN patterns map
onto these pieces as follows:

- text generation: no encoder; the decoder is a language model over the text.
- classification: an RNN encoder; the decoder is a one-step label head.
- translation: an RNN encoder with per-step memory; a decoder with an
  `Attention` over that memory.
- captioning: a CNN encoder with a memory grid; the same attention decoder.

Samplers drive only `Decoder.step`, so every sampler works with every decoder.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from seqkit.vocab import Vocabulary

# A recurrent state is a tensor or a tuple of tensors, as nn.RNN, nn.GRU and
# nn.LSTM return it. By default the batch dimension is dim 1 of every tensor.
State = Any


@dataclass
class EncoderOutput:
    """The encoder result passed to a decoder.

    memory: (B, S, H) per-step features for attention, or None.
    mask: (B, S) bool, True at real (non-pad) source steps, or None.
    summary: (B, H) one vector per sequence, used to initialise the decoder.
    """

    summary: Tensor
    memory: Tensor | None = None
    mask: Tensor | None = None
    # Batch-first tensors that a decoder derives from `memory` once per batch,
    # such as projected attention keys, stored under a name the decoder picks.
    cache: dict[str, Tensor] = field(default_factory=dict)

    def select(self, index: Tensor) -> EncoderOutput:
        """Pick batch rows `index` (N,), as beam search does to repeat each row."""

        def pick(tensor: Tensor | None) -> Tensor | None:
            return None if tensor is None else tensor.index_select(0, index)

        return EncoderOutput(
            summary=pick(self.summary),
            memory=pick(self.memory),
            mask=pick(self.mask),
            cache={name: pick(value) for name, value in self.cache.items()},
        )

    def source_lengths(self) -> Tensor | None:
        """Return the number of real source steps (B,), or None without a mask."""
        return None if self.mask is None else self.mask.sum(dim=1)


@dataclass
class DecoderOutput:
    """Logits and the state after the last step.

    logits: (B, T, V) from `forward`, (B, V) from `step`.
    attention: (B, T, S) or (B, S) weights when the decoder attends, else None.
    """

    logits: Tensor
    state: State
    attention: Tensor | None = None


class Encoder(nn.Module, ABC):
    """Turns a batch of source inputs into an `EncoderOutput`.

    Options arrive as the validated dataclass named by `Options`.
    """

    Options: ClassVar[type] = type(None)
    # The width H of `summary` and `memory`; decoders size their bridge and
    # attention from it. Every encoder sets it in its constructor.
    output_size: int

    @abstractmethod
    def forward(self, source: Tensor, lengths: Tensor | None = None) -> EncoderOutput:
        """Encode `source`: (B, S) token ids or (B, C, H, W) images.

        `lengths` (B,) contains the real length of each token sequence, on the CPU.
        """


class Attention(nn.Module, ABC):
    """Scores each memory step against a query and returns the weighted memory.

    Built by a decoder as `cls(options, query_size, memory_size)`. Pad steps of
    the memory (False in the mask) must get weight exactly 0.
    """

    Options: ClassVar[type] = type(None)

    def prepare(self, memory: Tensor) -> Tensor:
        """Return keys (B, S, K) derived from `memory` (B, S, H) once per batch.

        Decoders cache the result in `EncoderOutput.cache`, so an attention
        with a memory projection computes it once, not at every step. The
        default uses the memory itself.
        """
        return memory

    @abstractmethod
    def forward(
        self, query: Tensor, keys: Tensor, memory: Tensor, mask: Tensor | None
    ) -> tuple[Tensor, Tensor]:
        """Attend from `query` (B, T, Q) over `memory` (B, S, H).

        `keys` (B, S, K) is what `prepare` returned, and `mask` (B, S) is True
        at real steps. Returns the context (B, T, H) and the weights (B, T, S).
        """


class Decoder(nn.Module, ABC):
    """A recurrent decoder with a teacher-forced `forward` and an incremental `step`.

    Contract: feeding a sequence token by token through `step`, starting from
    `init_state`, gives the same logits as one `forward` call over the whole
    sequence (up to floating-point rounding).
    """

    Options: ClassVar[type] = type(None)

    @abstractmethod
    def init_state(
        self, batch_size: int, encoder_output: EncoderOutput | None = None
    ) -> State:
        """Return the state before the first token, for a batch of `batch_size`."""

    @abstractmethod
    def forward(
        self,
        tokens: Tensor,
        state: State,
        encoder_output: EncoderOutput | None = None,
    ) -> DecoderOutput:
        """Run the whole window `tokens` (B, T) at once; logits are (B, T, V)."""

    def step(
        self,
        token: Tensor,
        state: State,
        encoder_output: EncoderOutput | None = None,
    ) -> DecoderOutput:
        """Advance one step from `token` (B,); logits are (B, V).

        The default runs `forward` on a window of one step. Decoders with a
        cheaper single-step path override it.
        """
        output = self.forward(token.unsqueeze(1), state, encoder_output)  # (B, 1, V)
        attention = output.attention
        if attention is not None:
            attention = attention[:, -1]  # (B, S)
        return DecoderOutput(output.logits[:, -1], output.state, attention)

    def select_state(self, state: State, index: Tensor) -> State:
        """Pick batch rows `index` (N,) of `state`, for beam search and sampling.

        The default handles tensors and tuples of tensors with the batch on dim 1,
        the layout of nn.RNN, nn.GRU and nn.LSTM states.
        """
        if isinstance(state, Tensor):
            return state.index_select(1, index)
        return tuple(self.select_state(part, index) for part in state)


@dataclass
class Generation:
    """Token ids produced by a sampler for each row of the batch.

    tokens: one list of ids per sequence, without the start token and cut after
    the first `<eos>` (which is kept).
    scores: (B,) summed log-probability of each sequence under the model.
    """

    tokens: list[list[int]]
    scores: Tensor
    # Beam search only: the n best (tokens, score) pairs of each row, best
    # first; the first pair equals `tokens` and `scores` of that row.
    nbest: list[list[tuple[list[int], float]]] | None = None


@dataclass
class StepModel:
    """The decoder and its conditioning, the view of the model a sampler uses.

    banned: token ids that get probability 0 at every step, such as `<pad>`.
    """

    decoder: Decoder
    encoder_output: EncoderOutput | None = None
    banned: tuple[int, ...] = ()

    def step(self, token: Tensor, state: State) -> tuple[Tensor, State]:
        """Return log-probabilities (B, V) for the next token and the new state."""
        output = self.decoder.step(token, state, self.encoder_output)
        logits = output.logits.float()  # (B, V)
        if self.banned:
            logits = logits.index_fill(
                1, logits.new_tensor(self.banned).long(), -math.inf
            )
        return torch.log_softmax(logits, dim=-1), output.state


class Sampler(ABC):
    """Chooses tokens by calling `StepModel.step` repeatedly."""

    Options: ClassVar[type] = type(None)

    @abstractmethod
    def generate(
        self,
        model: StepModel,
        state: State,
        last_token: Tensor,
        max_new_tokens: int,
        eos_id: int,
        generator: torch.Generator | None = None,
    ) -> Generation:
        """Extend each row from `state` and `last_token` (B,) by up to `max_new_tokens`.

        `state` already includes every token before `last_token`; the sampler
        feeds `last_token` first. A row stops growing after it emits `eos_id`.
        """


class Tokenizer(ABC):
    """Splits normalised text into tokens and joins tokens back into text."""

    Options: ClassVar[type] = type(None)
    # "char" or "word": how the metrics name their per-token loss.
    level: ClassVar[str] = "char"

    @abstractmethod
    def tokenize(self, text: str) -> list[str]:
        """Split `text` into tokens."""

    @abstractmethod
    def detokenize(self, tokens: Sequence[str]) -> str:
        """Join `tokens` back into text."""

    def build_vocabulary(self, texts: Iterator[str] | Sequence[str]) -> Vocabulary:
        """Count the tokens of `texts` (the training split) into a vocabulary."""
        return Vocabulary.from_texts(self.tokenize(text) for text in texts)


@dataclass
class Example:
    """One data item. Which fields are set depends on the task.

    text generation: `target` is a document.
    classification: `source` is the text, `target` the label name.
    translation: `source` and `target` are sentences.
    captioning: `source` is an image path, `target` the caption and
    `references` every caption of that image.
    """

    target: str
    source: Any = None
    references: list[str] = field(default_factory=list)


@dataclass
class Splits:
    """The train, validation and test examples of a data source."""

    train: list[Example]
    valid: list[Example]
    test: list[Example]

    def named(self, split: str) -> list[Example]:
        """Return the examples of `split`: "train", "valid" or "test"."""
        return {"train": self.train, "valid": self.valid, "test": self.test}[split]


class DataSource(ABC):
    """Loads a data set and splits it deterministically."""

    Options: ClassVar[type] = type(None)
    # Name of the task plugin that batches and scores these examples.
    task: ClassVar[str] = "language-model"

    @abstractmethod
    def load(self) -> Splits:
        """Read the data and return its splits. Raise `DataError` on bad input."""

    def check(self) -> None:  # noqa: B027 - optional hook with nothing to do by default
        """Check that the input files exist, without reading them all."""


@dataclass
class EvalResult:
    """The measurements of a task on one split, passed to each metric.

    loss: mean cross-entropy per target token, in nats.
    predictions and references: decoded texts or labels, when the task decodes.
    """

    loss: float
    tokens: int
    level: str
    predictions: list[str] = field(default_factory=list)
    references: list[list[str]] = field(default_factory=list)


class Metric(ABC):
    """Computes named scores from an `EvalResult`."""

    Options: ClassVar[type] = type(None)
    # Tokenizer levels the metric is defined for ("char", "word"); None: any.
    levels: ClassVar[tuple[str, ...] | None] = None

    @abstractmethod
    def compute(self, result: EvalResult) -> dict[str, float | str]:
        """Return scores by name, without the split prefix ("bpc", not "test_bpc").

        A string value describes how the scores were computed, such as a
        sacrebleu signature. It is written to metrics.json under its own name,
        without the split prefix.
        """
