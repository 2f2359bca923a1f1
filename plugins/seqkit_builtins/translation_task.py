"""The translation task: a token encoder and a decoder that generates the target.

It serves every many-to-many pair of texts: translation, and grapheme to
phoneme conversion. Shapes: B batch, S source steps, T target steps,
V target vocabulary size.
"""

from __future__ import annotations

import hashlib
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn.utils.rnn import pad_sequence

from seqkit import (
    DataError,
    EvalResult,
    Example,
    Sampler,
    SequenceModel,
    Splits,
    Tokenizer,
    Vocabulary,
    hookimpl,
    plots,
)
from seqkit.task import Batch
from seqkit.text import normalize
from seqkit_builtins.encoder_decoder import EncoderDecoderTask

log = logging.getLogger(__name__)

SPLITS = ("train", "valid", "test")
# The number of batches whose examples are sorted by source length together,
# so that each batch contains sources of similar length and little padding.
POOL_BATCHES = 32


@dataclass
class EncodedPairs:
    """The source and target ids of a split, and each example's references."""

    sources: list[Tensor]
    targets: list[Tensor]
    references: list[list[str]]
    texts: list[str]


@dataclass
class Translation:
    """The output for one source text.

    nbest: the (text, score) pairs of beam search's `n_best`, best first, or
    the single output for other samplers. `score` is the summed
    log-probability of the output tokens, `<eos>` included.
    """

    text: str
    score: float
    tokens: list[str]
    source_tokens: list[str]
    nbest: list[tuple[str, float]] = field(default_factory=list)


class TranslationTask(EncoderDecoderTask):
    """Trains an encoder-decoder on (source, target) pairs with teacher forcing.

    A source is encoded as its tokens and `<eos>`, cut to `train.seq_len`
    tokens. The decoder reads `<bos>` and the target and predicts the target
    and `<eos>`; targets are cut to `train.seq_len - 1` tokens, so decoding
    allows at most `train.seq_len` new tokens. `prepare` logs how many pairs
    were cut, and `translate` warns when it cuts an input. Each epoch shuffles
    the pairs with a generator seeded from (seed, epoch), sorts each pool of
    POOL_BATCHES batches by source length and shuffles the batches, so any
    step's batch can be rebuilt on resume. Predictions are detokenised before
    the metrics see them.
    """

    default_metrics = {"char": ["bleu", "chrf"], "word": ["bleu", "chrf"]}

    @classmethod
    def build_vocabularies(
        cls,
        splits: Splits,
        tokenizer: Tokenizer,
        source_tokenizer: Tokenizer | None = None,
    ) -> dict[str, Vocabulary]:
        source_tokenizer = source_tokenizer or tokenizer
        train = splits.train
        return {
            "source": source_tokenizer.build_vocabulary(
                [normalize(e.source or "") for e in train]
            ),
            "target": tokenizer.build_vocabulary([normalize(e.target) for e in train]),
        }

    # ------------------------------------------------------------ data

    def source_token_ids(self, text: str) -> list[int]:
        """Encode a source text as ids, without `<eos>` and without a cut."""
        tokens = self.source_tokenizer.tokenize(normalize(text))
        return self.vocabularies["source"].encode(tokens)

    def source_ids(self, text: str) -> Tensor:
        """Encode a source text as at most `train.seq_len` ids ending in `<eos>`."""
        return self.cut_source(self.source_token_ids(text))

    def cut_source(self, ids: list[int]) -> Tensor:
        """Return the first `max_tokens` of the source `ids` and `<eos>`."""
        return torch.tensor(
            [*ids[: self.max_tokens], self.vocabularies["source"].eos_id]
        )

    def prepare(self, splits: Splits) -> None:
        """Encode every split and log a warning that counts the pairs cut.

        Raises DataError when every target of the train split is empty.
        """
        self.encoded = {}
        cut_pairs = {}
        for name in SPLITS:
            encoded, cut_pairs[name] = self._encode_split(name, splits.named(name))
            self.encoded[name] = encoded
        self._check_targets(self.encoded["train"])
        self._log_cut_pairs(cut_pairs)
        self._epoch_batches: tuple[int, list[Tensor]] | None = None

    def _check_targets(self, split: EncodedPairs) -> None:
        if any(len(target) for target in split.targets):
            return
        if self.max_tokens == 0:
            raise DataError(
                f"train.seq_len = {self.recipe.train.seq_len} leaves no room for "
                "target tokens, because targets are cut to train.seq_len - 1 "
                "tokens; set train.seq_len to 2 or more"
            )
        raise DataError(
            "every target of the train split is empty, so there is nothing to "
            "learn; check the target texts of the data"
        )

    def _log_cut_pairs(self, cut_pairs: dict[str, int]) -> None:
        if not any(cut_pairs.values()):
            return
        counts = ", ".join(
            f"{cut_pairs[name]} of {len(self.encoded[name].sources)} {name}"
            for name in SPLITS
        )
        log.warning(
            "cut %s pairs whose source or target is longer than %d tokens, the "
            "limit that train.seq_len = %d sets; raise train.seq_len to keep "
            "them whole",
            counts,
            self.max_tokens,
            self.recipe.train.seq_len,
        )

    def _encode_split(
        self, name: str, examples: list[Example]
    ) -> tuple[EncodedPairs, int]:
        """Encode the pairs of a split; returns them and the number of pairs cut."""
        # An empty split would score a loss of 0 and look perfect.
        if not examples:
            raise DataError(
                f"the {name} split is empty; give it data, such as with "
                f"data.{name}_fraction above 0"
            )
        sources, targets, references, texts = [], [], [], []
        cut = 0
        for example in examples:
            if example.source is None:
                raise DataError(
                    f"an example of the {name} split has no source text; the "
                    "translation task needs (source, target) pairs"
                )
            source = self.source_token_ids(example.source)
            target = self.target_token_ids(example.target)
            if max(len(source), len(target)) > self.max_tokens:
                cut += 1
            sources.append(self.cut_source(source))
            targets.append(self.cut_target(target))
            references.append(
                [normalize(r) for r in example.references]
                or [normalize(example.target)]
            )
            texts.append(example.source)
        return EncodedPairs(sources, targets, references, texts), cut

    def fingerprint(self) -> str:
        digest = hashlib.sha256()
        for name in SPLITS:
            digest.update(name.encode())
            split = self.encoded[name]
            for source, target in zip(split.sources, split.targets, strict=True):
                digest.update(source.numpy().tobytes())
                digest.update(b"|")
                digest.update(target.numpy().tobytes())
        return digest.hexdigest()

    # ------------------------------------------------------------ batches

    def steps_per_epoch(self) -> int:
        pairs = len(self.encoded["train"].sources)
        return math.ceil(pairs / self.recipe.train.batch_size)

    def _batches_of_epoch(self, epoch: int) -> list[Tensor]:
        if self._epoch_batches is not None and self._epoch_batches[0] == epoch:
            return self._epoch_batches[1]
        split = self.encoded["train"]
        size = self.recipe.train.batch_size
        generator = torch.Generator().manual_seed(
            self.recipe.train.seed * 1_000_003 + epoch
        )
        order = torch.randperm(len(split.sources), generator=generator).tolist()
        batches = []
        pool_size = size * POOL_BATCHES
        for start in range(0, len(order), pool_size):
            pool = sorted(
                order[start : start + pool_size], key=lambda i: len(split.sources[i])
            )
            batches.extend(
                torch.tensor(pool[i : i + size]) for i in range(0, len(pool), size)
            )
        shuffled = torch.randperm(len(batches), generator=generator).tolist()
        batches = [batches[i] for i in shuffled]
        self._epoch_batches = (epoch, batches)
        return batches

    def train_batch(self, epoch: int, index: int) -> Batch:
        rows = self.shard.rows(self._batches_of_epoch(epoch)[index])
        return self._batch(self.encoded["train"], rows)

    def _batch(self, split: EncodedPairs, rows: Tensor) -> Batch:
        vocab = self.vocabularies["target"]
        pad = vocab.pad_id
        sources = [split.sources[row] for row in rows.tolist()]
        targets = [split.targets[row] for row in rows.tolist()]
        bos = torch.tensor([vocab.bos_id])
        eos = torch.tensor([vocab.eos_id])
        inputs = [torch.cat([bos, target]) for target in targets]
        outputs = [torch.cat([target, eos]) for target in targets]
        source_pad = self.vocabularies["source"].pad_id
        return {
            "source": pad_sequence(
                sources, batch_first=True, padding_value=source_pad
            ),  # (B, S)
            "lengths": torch.tensor([len(ids) for ids in sources]),  # (B,)
            "inputs": pad_sequence(inputs, batch_first=True, padding_value=pad),
            "outputs": pad_sequence(outputs, batch_first=True, padding_value=pad),
        }  # inputs and outputs: (B, T)

    # ------------------------------------------------------------ scoring

    def _logits(self, model: SequenceModel, batch: Batch) -> Tensor:
        encoder_output = model.encode(batch["source"], batch["lengths"])
        return model(batch["inputs"], None, encoder_output).logits  # (B, T, V)

    def _ordered_batches(self, split: EncodedPairs) -> list[Tensor]:
        """Return batches of a split's rows, sorted by source length."""
        size = self.recipe.evaluate.batch_size or self.recipe.train.batch_size
        order = sorted(range(len(split.sources)), key=lambda i: len(split.sources[i]))
        return [
            torch.tensor(order[start : start + size])
            for start in range(0, len(order), size)
        ]

    @torch.no_grad()
    def evaluate(
        self,
        model: SequenceModel,
        split: str,
        max_batches: int | None = None,
        decode: bool = True,
        sampler: Sampler | None = None,
    ) -> EvalResult:
        """Measure the loss on `split` and, with `decode`, translate it.

        Decoding uses `sampler`, by default the recipe's sampler.
        """
        was_training = model.training
        model.eval()
        device = next(model.parameters()).device
        data = self.encoded[split]
        pad = self.vocabularies["target"].pad_id
        total, count = 0.0, 0
        rows_done: list[int] = []
        predictions: dict[int, str] = {}
        # Seeded, so a sampling decoder gives the same metrics on every run.
        generator = torch.Generator().manual_seed(self.recipe.train.seed)
        for number, rows in enumerate(self._ordered_batches(data)):
            if max_batches is not None and number >= max_batches:
                break
            if not decode and not self.shard.owns(number):
                continue
            batch = {k: v.to(device) for k, v in self._batch(data, rows).items()}
            logits = self._logits(model, batch).float()  # (B, T, V)
            outputs = batch["outputs"]
            total += F.cross_entropy(
                logits.flatten(0, 1),
                outputs.flatten(),
                ignore_index=pad,
                reduction="sum",
            ).item()
            count += int((outputs != pad).sum())
            rows_done.extend(rows.tolist())
            if decode:
                found = self._decode(
                    model, batch, self.decoding_sampler(sampler), generator
                )
                for row, translation in zip(rows.tolist(), found, strict=True):
                    predictions[row] = translation.text
        model.train(was_training)
        rows_done.sort()
        return EvalResult(
            loss=total / max(count, 1),
            tokens=count,
            level=self.tokenizer.level,
            predictions=[predictions[row] for row in rows_done] if decode else [],
            references=[data.references[row] for row in rows_done] if decode else [],
        )

    # ------------------------------------------------------------ decoding

    def _decode(
        self,
        model: SequenceModel,
        batch: Batch,
        sampler: Sampler,
        generator: torch.Generator | None = None,
    ) -> list[Translation]:
        """Translate the sources of `batch` with `sampler`."""
        vocab = self.vocabularies["target"]
        source_vocab = self.vocabularies["source"]
        encoder_output = model.encode(batch["source"], batch["lengths"])
        B = batch["source"].shape[0]
        generation = self.generate_from(model, encoder_output, B, sampler, generator)
        translations = []
        for row in range(B):
            length = int(batch["lengths"][row])
            source_tokens = source_vocab.decode(batch["source"][row, :length].tolist())
            texts = [
                (self._detokenize(ids), score) for ids, score in generation.nbest[row]
            ]
            best = generation.tokens[row]
            translations.append(
                Translation(
                    text=self._detokenize(best),
                    score=float(generation.scores[row]),
                    tokens=vocab.decode(best),
                    source_tokens=source_tokens,
                    nbest=texts,
                )
            )
        return translations

    @torch.no_grad()
    def translate(
        self,
        model: SequenceModel,
        texts: list[str],
        sampler: Sampler | None = None,
        batch_size: int = 64,
        generator: torch.Generator | None = None,
    ) -> list[Translation]:
        """Translate each text; an empty or blank text gives an empty output.

        A text longer than `train.seq_len - 1` tokens is cut to its first
        `train.seq_len - 1` tokens, as in training, and one warning per call
        counts the texts cut. The model stays in the mode it was in.
        """
        translations, cut = self._translate(
            model, texts, sampler, batch_size, generator
        )
        if cut:
            log.warning(
                "cut %d of %d inputs to their first %d tokens, the limit that "
                "train.seq_len = %d sets; the rest of each is not translated",
                cut,
                len(texts),
                self.max_tokens,
                self.recipe.train.seq_len,
            )
        return translations

    @torch.no_grad()
    def _translate(
        self,
        model: SequenceModel,
        texts: list[str],
        sampler: Sampler | None,
        batch_size: int = 64,
        generator: torch.Generator | None = None,
    ) -> tuple[list[Translation], int]:
        """Translate each text; returns the translations and the count of texts cut."""
        was_training = model.training
        model.eval()
        device = next(model.parameters()).device
        results: dict[int, Translation] = {}
        filled = [i for i, text in enumerate(texts) if text.strip()]
        for i, text in enumerate(texts):
            if not text.strip():
                results[i] = Translation("", 0.0, [], [], [("", 0.0)])
        ids = {i: self.source_token_ids(texts[i]) for i in filled}
        cut = sum(len(ids[i]) > self.max_tokens for i in filled)
        # similar lengths together, so batches carry little padding
        filled.sort(key=lambda i: len(texts[i]))
        for start in range(0, len(filled), batch_size):
            rows = filled[start : start + batch_size]
            batch = self._source_batch([ids[i] for i in rows], device)
            found = self._decode(
                model, batch, self.decoding_sampler(sampler), generator
            )
            results.update(zip(rows, found, strict=True))
        model.train(was_training)
        return [results[i] for i in range(len(texts))], cut

    def _source_batch(self, ids: list[list[int]], device: torch.device) -> Batch:
        """Cut and pad the uncut source `ids` of each text into a batch."""
        sources = [self.cut_source(row) for row in ids]
        source = pad_sequence(
            sources, batch_first=True, padding_value=self.vocabularies["source"].pad_id
        )  # (B, S)
        lengths = torch.tensor([len(ids) for ids in sources])  # (B,)
        return {"source": source.to(device), "lengths": lengths.to(device)}

    @torch.no_grad()
    def attention_matrix(
        self, model: SequenceModel, source: str, translation: Translation
    ) -> Tensor | None:
        """Return the attention (T, S) of `translation`, or None without attention.

        Rows are the output tokens and `<eos>`, columns the source tokens and
        `<eos>`. The weights come from one teacher-forced pass over the output.
        """
        was_training = model.training
        model.eval()
        device = next(model.parameters()).device
        vocab = self.vocabularies["target"]
        batch = self._source_batch([self.source_token_ids(source)], device)
        ids = vocab.encode(translation.tokens)
        inputs = torch.tensor([[vocab.bos_id, *ids]], device=device)  # (1, T)
        encoder_output = model.encode(batch["source"], batch["lengths"])
        attention = model(inputs, None, encoder_output).attention
        model.train(was_training)
        if attention is None:
            return None
        return attention[0].float().cpu()  # (T, S)

    def plot_attention(
        self, model: SequenceModel, source: str, translation: Translation, path: Path
    ) -> bool:
        """Draw the attention of `translation` into `path`; False without attention."""
        weights = self.attention_matrix(model, source, translation)
        if weights is None:
            return False
        plots.plot_attention(
            [*translation.source_tokens, "<eos>"][: weights.shape[1]],
            [*translation.tokens, "<eos>"],
            weights.tolist(),
            path,
        )
        return True

    # ------------------------------------------------------------ outputs

    @torch.no_grad()
    def samples(
        self, model: SequenceModel, sampler: Sampler, generator: torch.Generator
    ) -> list[str]:
        """Translate `evaluate.samples` test sources, spread evenly over the split."""
        data = self.encoded["test"]
        count = min(self.recipe.evaluate.samples, len(data.texts))
        if count == 0:
            return []
        rows = torch.linspace(0, len(data.texts) - 1, count).long().tolist()
        texts = [data.texts[row] for row in rows]
        # `prepare` has already logged the test sources that are cut.
        found, _ = self._translate(model, texts, sampler, generator=generator)
        return [
            f"source: {text}\npredicted: {translation.text}\n"
            f"reference: {data.references[row][0]}"
            for text, translation, row in zip(texts, found, rows, strict=True)
        ]

    def write_reports(
        self, run_dir: Path, result: EvalResult, model: SequenceModel | None = None
    ) -> None:
        """Draw the attention of the first test source into `run_dir/attention.png`."""
        if model is None:
            return
        source = self.encoded["test"].texts[0]
        translations, _ = self._translate(model, [source], None)
        translation = translations[0]
        self.plot_attention(model, source, translation, Path(run_dir) / "attention.png")


@hookimpl
def seqkit_add_tasks() -> dict[str, type]:
    return {"translation": TranslationTask}
