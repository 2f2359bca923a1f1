"""The tagging task: one output character for every input character.

The source is a text read by a character tokenizer. The target is a text of the
same length, such as the same sentence with its accents restored. The model is
an encoder with per-step memory and the `tagger` decoder.

Shapes: B batch, S source steps (equal to the target steps), V label vocabulary.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn.utils.rnn import pad_sequence

from seqkit import (
    EvalResult,
    Example,
    Sampler,
    SequenceModel,
    Splits,
    Task,
    Tokenizer,
    Vocabulary,
    hookimpl,
)
from seqkit.errors import DataError, RecipeError
from seqkit.task import Batch
from seqkit.vocab import SPECIALS


def check_tokenizer(tokenizer: Tokenizer) -> None:
    """Reject tokenizers that do not split text into single characters."""
    if tokenizer.level != "char":
        raise RecipeError(
            f"the tagging task needs one token per character, but the tokenizer is "
            f'{tokenizer.level!r}-level; set [tokenizer] plugin = "char"',
            key="tokenizer.plugin",
        )


class TaggingTask(Task):
    """Trains a per-step classifier with cross-entropy over the real steps.

    Each epoch visits the training examples in a random order drawn from a
    generator seeded with (seed, epoch), so any step's batch can be rebuilt on
    resume. Batches are padded with `<pad>` in the source and the targets, and
    the loss ignores the padded steps.

    The output always has the input's length: where the model predicts a
    special token, or where the input character is outside the source
    vocabulary (`<unk>`), the input character is copied to the output.
    """

    default_metrics = {"char": ["char_accuracy", "word_accuracy"]}

    def __init__(
        self,
        tokenizer: Tokenizer,
        vocabularies: dict[str, Vocabulary],
        recipe: Any,
        source_tokenizer: Tokenizer | None = None,
    ):
        check_tokenizer(tokenizer)
        super().__init__(tokenizer, vocabularies, recipe, source_tokenizer)
        check_tokenizer(self.source_tokenizer)
        self.source_vocab = vocabularies["source"]
        self.target_vocab = vocabularies["target"]
        self._epoch_order: tuple[int, Tensor] | None = None

    @classmethod
    def build_vocabularies(
        cls,
        splits: Splits,
        tokenizer: Tokenizer,
        source_tokenizer: Tokenizer | None = None,
    ) -> dict[str, Vocabulary]:
        """Build the source vocabulary with the tokenizer, the labels per character."""
        source_tokenizer = source_tokenizer or tokenizer
        check_tokenizer(source_tokenizer)
        train = splits.train
        return {
            "source": source_tokenizer.build_vocabulary([e.source for e in train]),
            "target": Vocabulary.from_texts(list(e.target) for e in train),
        }

    # ------------------------------------------------------------ encoding

    def encode_source(self, text: str) -> list[int]:
        """Return one source id per character of `text`."""
        tokens = self.source_tokenizer.tokenize(text)
        if len(tokens) != len(text):
            raise DataError(
                f"the tokenizer split {text[:40]!r} into {len(tokens)} tokens for "
                f"{len(text)} characters; the tagging task needs one per character"
            )
        return self.source_vocab.encode(tokens)

    def _encode_example(self, example: Example) -> tuple[Tensor, Tensor]:
        if len(example.source) != len(example.target):
            raise DataError(
                f"source {example.source[:40]!r} has {len(example.source)} "
                f"characters but its target has {len(example.target)}; tagging "
                "needs one target character per source character"
            )
        source = torch.tensor(self.encode_source(example.source))  # (S,)
        target = torch.tensor(self.target_vocab.encode(example.target))  # (S,)
        return source, target

    def prepare(self, splits: Splits) -> None:
        self.examples: dict[str, list[Example]] = {}
        self.sources: dict[str, list[Tensor]] = {}
        self.targets: dict[str, list[Tensor]] = {}
        for name in ("train", "valid", "test"):
            # An empty text has no step to tag, so it adds nothing to train on.
            examples = [e for e in splits.named(name) if e.source]
            if not examples:
                raise DataError(
                    f"the {name} split has no non-empty example; add data, or raise "
                    f"data.{name}_fraction above 0 for the validation and test splits"
                )
            encoded = [self._encode_example(e) for e in examples]
            self.examples[name] = examples
            self.sources[name] = [source for source, _ in encoded]
            self.targets[name] = [target for _, target in encoded]
        self._epoch_order = None

    def fingerprint(self) -> str:
        digest = hashlib.sha256()
        for name in ("train", "valid", "test"):
            digest.update(name.encode())
            for source, target in zip(
                self.sources[name], self.targets[name], strict=True
            ):
                digest.update(source.numpy().tobytes())
                digest.update(target.numpy().tobytes())
        return digest.hexdigest()

    # ------------------------------------------------------------ batches

    def _collate(self, sources: list[Tensor], targets: list[Tensor]) -> Batch:
        lengths = torch.tensor([len(source) for source in sources])  # (B,)
        source = pad_sequence(
            sources, batch_first=True, padding_value=self.source_vocab.pad_id
        )  # (B, S)
        target = pad_sequence(
            targets, batch_first=True, padding_value=self.target_vocab.pad_id
        )  # (B, S)
        return {"source": source, "targets": target, "lengths": lengths}

    def steps_per_epoch(self) -> int:
        return math.ceil(len(self.sources["train"]) / self.recipe.train.batch_size)

    def _order(self, epoch: int) -> Tensor:
        if self._epoch_order is not None and self._epoch_order[0] == epoch:
            return self._epoch_order[1]
        generator = torch.Generator().manual_seed(
            self.recipe.train.seed * 1_000_003 + epoch
        )
        order = torch.randperm(len(self.sources["train"]), generator=generator)
        self._epoch_order = (epoch, order)
        return order

    def train_batch(self, epoch: int, index: int) -> Batch:
        batch_size = self.recipe.train.batch_size
        rows = self._order(epoch)[index * batch_size : (index + 1) * batch_size]
        rows = self.shard.rows(rows)
        return self._collate(
            [self.sources["train"][i] for i in rows.tolist()],
            [self.targets["train"][i] for i in rows.tolist()],
        )

    # ------------------------------------------------------------ model

    def _logits(self, model: SequenceModel, batch: Batch) -> Tensor:
        source = batch["source"]  # (B, S)
        encoder_output = model.encode(source, batch["lengths"].cpu())
        return model(source, None, encoder_output).logits  # (B, S, V)

    def loss(self, model: SequenceModel, batch: Batch) -> tuple[Tensor, int]:
        logits = self._logits(model, batch)  # (B, S, V)
        targets = batch["targets"]  # (B, S)
        pad_id = self.target_vocab.pad_id
        loss = F.cross_entropy(
            logits.flatten(0, 1), targets.flatten(), ignore_index=pad_id
        )
        return loss, int((targets != pad_id).sum())

    def decode_labels(
        self, text: str, source_ids: list[int], label_ids: list[int]
    ) -> str:
        """Turn predicted label ids into text of exactly the length of `text`.

        A position keeps its input character when its source id is `<unk>` or
        its predicted label is a special token.
        """
        unk_id = self.source_vocab.unk_id
        labels = self.target_vocab.tokens
        characters = []
        for character, source_id, label_id in zip(
            text, source_ids, label_ids, strict=True
        ):
            if source_id == unk_id or label_id < len(SPECIALS):
                characters.append(character)
            else:
                characters.append(labels[label_id])
        return "".join(characters)

    def _batch_size(self) -> int:
        return self.recipe.evaluate.batch_size or self.recipe.train.batch_size

    @torch.no_grad()
    def evaluate(
        self,
        model: SequenceModel,
        split: str,
        max_batches: int | None = None,
        decode: bool = True,
    ) -> EvalResult:
        was_training = model.training
        model.eval()
        device = next(model.parameters()).device
        examples, sources = self.examples[split], self.sources[split]
        targets = self.targets[split]
        batch_size = self._batch_size()
        total, count = 0.0, 0
        predictions, references = [], []
        for number, start in enumerate(range(0, len(sources), batch_size)):
            if max_batches is not None and number >= max_batches:
                break
            if not decode and not self.shard.owns(number):
                continue
            end = start + batch_size
            batch = self._collate(sources[start:end], targets[start:end])
            batch = {name: tensor.to(device) for name, tensor in batch.items()}
            logits = self._logits(model, batch).float()  # (B, S, V)
            total += F.cross_entropy(
                logits.flatten(0, 1),
                batch["targets"].flatten(),
                ignore_index=self.target_vocab.pad_id,
                reduction="sum",
            ).item()
            count += int(batch["lengths"].sum())
            labels = logits.argmax(dim=-1).cpu().tolist()  # (B, S)
            for offset, example in enumerate(examples[start:end]):
                size = len(example.source)
                source_ids = sources[start + offset].tolist()
                predictions.append(
                    self.decode_labels(
                        example.source, source_ids, labels[offset][:size]
                    )
                )
                references.append([example.target])
        model.train(was_training)
        return EvalResult(
            loss=total / max(count, 1),
            tokens=count,
            level=self.tokenizer.level,
            predictions=predictions,
            references=references,
        )

    @torch.no_grad()
    def tag(self, model: SequenceModel, texts: list[str]) -> list[str]:
        """Return the model's output for each text, each as long as its input.

        Texts are read as given, one step per character, without normalisation,
        so characters outside the source vocabulary (including combining marks
        of decomposed input) are copied unchanged. An empty text gives "".
        """
        was_training = model.training
        model.eval()
        device = next(model.parameters()).device
        outputs = list(texts)
        filled = [index for index, text in enumerate(texts) if text]
        batch_size = self._batch_size()
        for start in range(0, len(filled), batch_size):
            indices = filled[start : start + batch_size]
            ids = [self.encode_source(texts[i]) for i in indices]
            sources = [torch.tensor(row) for row in ids]
            batch = self._collate(sources, sources)
            batch = {name: tensor.to(device) for name, tensor in batch.items()}
            labels = self._logits(model, batch).argmax(dim=-1).cpu().tolist()  # (B, S)
            for row, index in enumerate(indices):
                size = len(ids[row])
                outputs[index] = self.decode_labels(
                    texts[index], ids[row], labels[row][:size]
                )
        model.train(was_training)
        return outputs

    def samples(
        self, model: SequenceModel, sampler: Sampler, generator: torch.Generator
    ) -> list[str]:
        """Tag the first test texts whose target differs, as three lines each.

        The sampler and generator are unused: the tagger takes the most likely
        label at each step.
        """
        count = self.recipe.evaluate.samples
        changed = [e for e in self.examples["test"] if e.source != e.target]
        chosen = (changed or self.examples["test"])[:count]
        outputs = self.tag(model, [e.source for e in chosen])
        return [
            f"source:    {example.source}\n"
            f"predicted: {output}\n"
            f"reference: {example.target}"
            for example, output in zip(chosen, outputs, strict=True)
        ]


@hookimpl
def seqkit_add_tasks() -> dict[str, type]:
    return {"tagging": TaggingTask}
