"""The classification task: one label per text, read from an encoder's summary.

Shapes: B batch, S source steps, V label vocabulary size (specials and labels),
C number of labels (V minus the four specials).
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn.utils.rnn import pad_sequence

from seqkit import (
    BuildContext,
    DataError,
    EvalResult,
    Example,
    Generation,
    Sampler,
    SequenceModel,
    Splits,
    StepModel,
    Task,
    Tokenizer,
    Vocabulary,
    hookimpl,
    plots,
)
from seqkit.interfaces import State
from seqkit.task import Batch
from seqkit.text import normalize
from seqkit.vocab import SPECIALS

log = logging.getLogger(__name__)

SPLITS = ("train", "valid", "test")
# Texts per forward pass when `predict_labels` scores many texts.
PREDICT_BATCH = 64
# Characters of each text shown in samples.txt.
SAMPLE_CHARS = 80


def label_vocabulary(labels: list[str]) -> Vocabulary:
    """Build the label vocabulary: the specials, then the label names sorted.

    Sorting by name, not by count, keeps the label ids the same on every machine
    and for every order of the data.
    """
    names = sorted(set(labels))
    clashes = [name for name in names if name in SPECIALS]
    if clashes:
        raise DataError(
            f"label {clashes[0]!r} is a reserved token name; rename that label"
        )
    return Vocabulary([*SPECIALS, *names])


@dataclass
class EncodedSplit:
    """The token ids of each source text and the label id of each example."""

    sources: list[Tensor]
    lengths: Tensor
    targets: Tensor


class ClassificationTask(Task):
    """Encodes each text as its tokens and `<eos>`, and trains on its label.

    Sources keep their first `train.seq_len - 1` tokens, and the `<eos>` means
    that an empty text or one of unknown tokens still has one step. Each epoch
    visits the training examples in an order drawn from a generator seeded
    with (seed, epoch), so any step's batch can be rebuilt on resume. The loss
    and the probabilities cover the labels only, never the special tokens.
    """

    default_metrics = {
        "char": ["accuracy", "macro_f1", "per_class", "confusion"],
        "word": ["accuracy", "macro_f1", "per_class", "confusion"],
    }

    @classmethod
    def build_vocabularies(
        cls,
        splits: Splits,
        tokenizer: Tokenizer,
        source_tokenizer: Tokenizer | None = None,
    ) -> dict[str, Vocabulary]:
        texts = [normalize(example.source or "") for example in splits.train]
        return {
            "source": (source_tokenizer or tokenizer).build_vocabulary(texts),
            "target": label_vocabulary([example.target for example in splits.train]),
        }

    # ------------------------------------------------------------ data

    @property
    def labels(self) -> list[str]:
        """The label names in id order."""
        return self.vocabularies["target"].tokens[len(SPECIALS) :]

    def encode_texts(self, texts: list[str]) -> list[Tensor]:
        """Encode each text as at most `train.seq_len` ids ending in `<eos>`."""
        vocab = self.vocabularies["source"]
        keep = max(self.recipe.train.seq_len - 1, 0)
        encoded = []
        for text in texts:
            tokens = self.source_tokenizer.tokenize(normalize(text or ""))
            ids = vocab.encode(tokens)
            encoded.append(torch.tensor([*ids[:keep], vocab.eos_id], dtype=torch.long))
        return encoded

    def prepare(self, splits: Splits) -> None:
        if len(self.labels) < 2:
            raise DataError(
                f"the training split has {len(self.labels)} label(s); "
                "classification needs at least 2"
            )
        self.encoded = {
            name: self._encode_split(name, splits.named(name)) for name in SPLITS
        }
        self.test_texts = [example.source or "" for example in splits.test]
        self.class_weights = self._class_weights(self.encoded["train"].targets)
        self._epoch_order: tuple[int, Tensor] | None = None

    def _encode_split(self, name: str, examples: list[Example]) -> EncodedSplit:
        # An empty split would score a loss of 0 and look perfect.
        if not examples:
            raise DataError(
                f"the {name} split is empty; give it data, such as with "
                f"data.{name}_fraction above 0"
            )
        vocab = self.vocabularies["target"]
        unknown = [e.target for e in examples if e.target not in vocab]
        if unknown:
            raise DataError(
                f"the {name} split has label {unknown[0]!r}, which the training "
                "split lacks; every label needs training examples"
            )
        counts = Counter(example.target for example in examples)
        log.info(
            "%s labels: %s",
            name,
            ", ".join(f"{label} {counts[label]}" for label in self.labels),
        )
        sources = self.encode_texts([example.source for example in examples])
        lengths = torch.tensor([len(ids) for ids in sources])  # (N,)
        targets = torch.tensor(vocab.encode(e.target for e in examples))  # (N,)
        return EncodedSplit(sources, lengths, targets)

    def _class_weights(self, targets: Tensor) -> Tensor | None:
        """Return n_samples / (n_labels * count) per label for `balanced`, or None."""
        if self.recipe.train.class_weights == "none":
            return None
        counts = torch.bincount(
            targets - len(SPECIALS), minlength=len(self.labels)
        ).double()  # (C,)
        weights = len(targets) / (len(self.labels) * counts)  # (C,)
        return weights.float()

    def fingerprint(self) -> str:
        digest = hashlib.sha256()
        for name in SPLITS:
            split = self.encoded[name]
            digest.update(name.encode())
            digest.update(split.targets.numpy().tobytes())
            for ids in split.sources:
                digest.update(ids.numpy().tobytes())
        return digest.hexdigest()

    # ------------------------------------------------------------ batches

    def steps_per_epoch(self) -> int:
        return math.ceil(
            len(self.encoded["train"].targets) / self.recipe.train.batch_size
        )

    def _order(self, epoch: int) -> Tensor:
        if self._epoch_order is not None and self._epoch_order[0] == epoch:
            return self._epoch_order[1]
        generator = torch.Generator().manual_seed(
            self.recipe.train.seed * 1_000_003 + epoch
        )
        order = torch.randperm(len(self.encoded["train"].targets), generator=generator)
        self._epoch_order = (epoch, order)
        return order

    def train_batch(self, epoch: int, index: int) -> Batch:
        batch_size = self.recipe.train.batch_size
        rows = self._order(epoch)[index * batch_size : (index + 1) * batch_size]
        return self._batch(self.encoded["train"], self.shard.rows(rows))

    def _batch(self, split: EncodedSplit, rows: Tensor) -> Batch:
        pad_id = self.vocabularies["source"].pad_id
        source = pad_sequence(
            [split.sources[row] for row in rows.tolist()],
            batch_first=True,
            padding_value=pad_id,
        )  # (B, S)
        return {
            "source": source,
            "lengths": split.lengths[rows],  # (B,)
            "targets": split.targets[rows],  # (B,)
        }

    # ------------------------------------------------------------ scoring

    def label_logits(self, model: SequenceModel, batch: Batch) -> Tensor:
        """Return logits (B, C) over the labels, leaving out the special tokens."""
        encoder_output = model.encode(batch["source"], batch["lengths"])
        B = batch["source"].shape[0]
        bos_id = self.vocabularies["target"].bos_id
        start = batch["source"].new_full((B, 1), bos_id)  # (B, 1)
        logits = model(start, None, encoder_output).logits  # (B, 1, V)
        return logits[:, 0, len(SPECIALS) :]  # (B, C)

    def loss(self, model: SequenceModel, batch: Batch) -> tuple[Tensor, int]:
        logits = self.label_logits(model, batch)  # (B, C)
        weights = self.class_weights
        if weights is not None:
            weights = weights.to(logits.device)
        loss = F.cross_entropy(
            logits.float(), batch["targets"] - len(SPECIALS), weight=weights
        )
        # The count feeds the trainer's tokens/s figure: real source tokens.
        return loss, int(batch["lengths"].sum())

    @torch.no_grad()
    def evaluate(
        self,
        model: SequenceModel,
        split: str,
        max_batches: int | None = None,
        decode: bool = True,
    ) -> EvalResult:
        model.eval()
        device = next(model.parameters()).device
        data = self.encoded[split]
        size = self.recipe.evaluate.batch_size or self.recipe.train.batch_size
        total, count = 0.0, 0
        predicted: list[int] = []
        references: list[int] = []
        for number, start in enumerate(range(0, len(data.targets), size)):
            if max_batches is not None and number >= max_batches:
                break
            if not decode and not self.shard.owns(number):
                continue
            rows = torch.arange(start, min(start + size, len(data.targets)))  # (B,)
            batch = {k: v.to(device) for k, v in self._batch(data, rows).items()}
            logits = self.label_logits(model, batch).float()  # (B, C)
            targets = batch["targets"] - len(SPECIALS)  # (B,)
            total += F.cross_entropy(logits, targets, reduction="sum").item()
            count += len(targets)
            predicted.extend(logits.argmax(dim=-1).tolist())
            references.extend(targets.tolist())
        model.train()
        labels = self.labels
        return EvalResult(
            loss=total / max(count, 1),
            tokens=count,
            level=self.tokenizer.level,
            predictions=[labels[i] for i in predicted],
            references=[[labels[i]] for i in references],
        )

    # ------------------------------------------------------------ outputs

    @torch.no_grad()
    def predict_labels(
        self, model: SequenceModel, texts: list[str], top_k: int = 1
    ) -> list[list[tuple[str, float]]]:
        """Return the `top_k` most likely (label, probability) pairs of each text.

        `top_k` above the number of labels returns every label.
        """
        model.eval()
        device = next(model.parameters()).device
        labels = self.labels
        k = min(top_k, len(labels))
        results: list[list[tuple[str, float]]] = []
        for start in range(0, len(texts), PREDICT_BATCH):
            batch = self._text_batch(texts[start : start + PREDICT_BATCH], device)
            probs = self.label_logits(model, batch).float().softmax(dim=-1)  # (B, C)
            top = probs.topk(k, dim=-1)
            for values, indices in zip(
                top.values.tolist(), top.indices.tolist(), strict=True
            ):
                results.append(
                    [(labels[i], p) for i, p in zip(indices, values, strict=True)]
                )
        return results

    def _text_batch(self, texts: list[str], device: torch.device) -> Batch:
        sources = self.encode_texts(texts)
        source = pad_sequence(
            sources, batch_first=True, padding_value=self.vocabularies["source"].pad_id
        )  # (B, S)
        lengths = torch.tensor([len(ids) for ids in sources])  # (B,)
        return {"source": source.to(device), "lengths": lengths.to(device)}

    @torch.no_grad()
    def samples(
        self, model: SequenceModel, sampler: Sampler, generator: torch.Generator
    ) -> list[str]:
        """Label `evaluate.samples` test texts, spread evenly over the split."""
        size = len(self.encoded["test"].targets)
        count = min(self.recipe.evaluate.samples, size)
        if count == 0:
            return []
        # Data sources often group the examples by label, so the first few
        # texts would show one label only.
        rows = torch.linspace(0, size - 1, count).long()  # (B,)
        model.eval()
        device = next(model.parameters()).device
        vocab = self.vocabularies["target"]
        data = self.encoded["test"]
        batch = {k: v.to(device) for k, v in self._batch(data, rows).items()}

        # label: one sampler step from <bos>, with the special tokens banned
        encoder_output = model.encode(batch["source"], batch["lengths"])
        step_model = StepModel(
            model.decoder,
            encoder_output,
            banned=(vocab.pad_id, vocab.unk_id, vocab.bos_id, vocab.eos_id),
        )
        start = batch["source"].new_full((count,), vocab.bos_id)  # (B,)
        state = model.decoder.init_state(count, encoder_output)
        generation = sampler.generate(
            step_model, state, start, 1, vocab.eos_id, generator
        )
        model.train()

        texts = [self._one_line(self.test_texts[row]) for row in rows.tolist()]
        return [
            f"text: {text}\npredicted: {' '.join(vocab.decode(ids))}\n"
            f"true: {vocab.tokens[target]}"
            for text, ids, target in zip(
                texts, generation.tokens, data.targets[rows].tolist(), strict=True
            )
        ]

    @staticmethod
    def _one_line(text: str) -> str:
        """Return `text` on one line, cut to at most SAMPLE_CHARS characters."""
        text = " ".join(text.split())
        if len(text) > SAMPLE_CHARS:
            text = text[: SAMPLE_CHARS - 3] + "..."
        return text

    def write_reports(
        self, run_dir: Path, result: EvalResult, model: SequenceModel | None = None
    ) -> None:
        """Draw the test confusion matrix into `run_dir/confusion.png`."""
        labels = self.labels
        index = {label: i for i, label in enumerate(labels)}
        counts = [[0] * len(labels) for _ in labels]
        for predicted, (true, *_) in zip(
            result.predictions, result.references, strict=True
        ):
            counts[index[true]][index[predicted]] += 1
        plots.plot_confusion(labels, counts, Path(run_dir) / "confusion.png")


class ArgmaxSampler(Sampler):
    """Takes one step and picks the most likely token that the model allows.

    Meant for label heads: with the special tokens in `StepModel.banned`, the
    choice is always a label.
    """

    def __init__(self, options: object = None, context: BuildContext | None = None):
        pass

    def generate(
        self,
        model: StepModel,
        state: State,
        last_token: Tensor,
        max_new_tokens: int,
        eos_id: int,
        generator: torch.Generator | None = None,
    ) -> Generation:
        log_probs, _ = model.step(last_token, state)  # (B, V)
        log_probs = log_probs.index_fill(
            1, log_probs.new_tensor([eos_id]).long(), -math.inf
        )
        scores, tokens = log_probs.max(dim=-1)  # (B,), (B,)
        return Generation([[token] for token in tokens.tolist()], scores)


@hookimpl
def seqkit_add_tasks() -> dict[str, type]:
    return {"classification": ClassificationTask}


@hookimpl
def seqkit_add_samplers() -> dict[str, type]:
    return {"argmax": ArgmaxSampler}
