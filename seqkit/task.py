"""The task interface: how one RNN pattern batches, scores and samples data."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor

from seqkit.distributed import SINGLE, Shard
from seqkit.interfaces import Encoder, EvalResult, Sampler, Splits, Tokenizer
from seqkit.model import SequenceModel
from seqkit.vocab import Vocabulary

# A batch is a dict of tensors; the task that made it is the one that reads it.
Batch = dict[str, Tensor]


class Task(ABC):
    """Turns examples into batches, computes the training loss and evaluates.

    A task is built as `cls(tokenizer, vocabularies, recipe, source_tokenizer)`
    once the vocabularies exist, then `prepare(splits)` encodes the data.
    `vocabularies` maps "target" (and "source" for tasks with a token encoder)
    to a `Vocabulary`. `source_tokenizer` splits source texts; it is the
    `tokenizer` itself unless the recipe has a `[source_tokenizer]`.
    """

    # Metric plugins used when `[evaluate] metrics` is empty, by tokenizer level.
    default_metrics: ClassVar[dict[str, list[str]]] = {}
    # The recipe's sampler, set by `seqkit.run.build`; tasks that decode in
    # `evaluate`, such as translation, decode with it.
    sampler: Sampler | None = None
    # The model's encoder, set by `seqkit.run.build`; a task that shapes its
    # inputs to the encoder, such as the image size, reads it.
    encoder: Encoder | None = None
    # This process's place among the training processes, set by the trainer.
    # With several, `train_batch` returns only this rank's rows of the global
    # batch (`self.shard.rows(rows)`), and `evaluate` with `decode=False` may
    # measure only the batches that `self.shard.owns(number)`: the trainer
    # sums loss x tokens and tokens over ranks. A task that ignores it still
    # trains correctly, with every rank repeating the whole batch.
    shard: Shard = SINGLE

    def __init__(
        self,
        tokenizer: Tokenizer,
        vocabularies: dict[str, Vocabulary],
        recipe: Any,
        source_tokenizer: Tokenizer | None = None,
    ):
        self.tokenizer = tokenizer
        self.source_tokenizer = source_tokenizer or tokenizer
        self.vocabularies = vocabularies
        self.recipe = recipe

    @classmethod
    @abstractmethod
    def build_vocabularies(
        cls,
        splits: Splits,
        tokenizer: Tokenizer,
        source_tokenizer: Tokenizer | None = None,
    ) -> dict[str, Vocabulary]:
        """Build the vocabularies from the training split only.

        `source_tokenizer` (default: `tokenizer`) splits the source texts.
        """

    @abstractmethod
    def prepare(self, splits: Splits) -> None:
        """Encode the splits into tensors, once, before training."""

    @abstractmethod
    def steps_per_epoch(self) -> int:
        """Return the number of training batches in one epoch."""

    @abstractmethod
    def train_batch(self, epoch: int, index: int) -> Batch:
        """Return batch `index` of `epoch`, the same for the same seed on every run."""

    @abstractmethod
    def loss(self, model: SequenceModel, batch: Batch) -> tuple[Tensor, int]:
        """Return the batch's mean loss and the number of real tokens it read.

        The count only feeds the tokens/s figure in the training log.
        """

    @abstractmethod
    def evaluate(
        self,
        model: SequenceModel,
        split: str,
        max_batches: int | None = None,
        decode: bool = True,
    ) -> EvalResult:
        """Measure the model on `split` ("valid" or "test").

        With `decode=False` only the loss is needed, so a task whose
        predictions take a decoding pass (such as beam search) may skip it.
        """

    def fingerprint(self) -> str | None:
        """Return a digest of the prepared data, or None when the task has none.

        A run stores it, so reloading the data later can tell when it changed.
        """
        return None

    def write_reports(  # noqa: B027 - optional hook with nothing to do by default
        self, run_dir: Path, result: EvalResult, model: SequenceModel | None = None
    ) -> None:
        """Write task-specific reports on the test split's `result` into `run_dir`.

        Called once after training, with the test evaluation of the best
        weights and the `model` that contains them.
        """

    @abstractmethod
    def samples(
        self, model: SequenceModel, sampler: Sampler, generator: torch.Generator
    ) -> list[str]:
        """Produce a few outputs for samples.txt."""
