"""The captioning task: a CNN encoder over an image, a decoder writes its caption.

One-to-many: the image is encoded once into a grid of region features, and
the same attention decoder that translation uses generates the words.
Shapes: B batch, S regions of the feature grid, T caption steps, V vocabulary.
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor
from torch.nn.utils.rnn import pad_sequence
from torch.utils.data import DataLoader, Dataset

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
from seqkit_builtins.images import ImageError, image_transform, load_image

log = logging.getLogger(__name__)

SPLITS = ("train", "valid", "test")
# Image size when the encoder does not name one.
DEFAULT_IMAGE_SIZE = 224
# Skipped images named in the log per split, before only counting them.
MAX_NAMED_SKIPS = 5


def image_name(source: Any) -> str:
    """Return a short name for an image source: its file name, or "<in memory>"."""
    if isinstance(source, str | Path):
        return str(source)
    return "<in memory>"


def image_key(source: Any) -> Any:
    """Return a key that is equal for examples that share one image."""
    if isinstance(source, str | Path):
        return ("path", str(Path(source)))
    return ("object", id(source))


@dataclass
class ImageSplit:
    """The caption examples of a split and its distinct images.

    sources: the image of each caption example. captions: its target ids.
    images: the distinct images, in first-seen order, with the index of each
    example's image in `image_rows` and every reference caption in `references`.
    """

    sources: list[Any]
    captions: list[Tensor]
    image_rows: list[int]
    images: list[Any]
    references: list[list[str]]


@dataclass
class Caption:
    """The output for one image.

    nbest: the (text, score) pairs of beam search's `n_best`, best first, or
    the single output of other samplers; `score` is a summed log-probability.
    """

    text: str
    score: float
    tokens: list[str]
    nbest: list[tuple[str, float]] = field(default_factory=list)


class ImageDataset(Dataset):
    """Loads and transforms images by (row, seed) keys, in any process.

    An image that cannot be read comes back as its error message, so that
    training can skip it and count it. The seed drives the random training
    transform, which makes a batch the same whichever worker loads it.
    """

    def __init__(self, sources: list[Any], transform: Callable[[Image.Image], Tensor]):
        self.sources = sources
        self.transform = transform

    def __len__(self) -> int:
        return len(self.sources)

    def __getitem__(self, key: tuple[int, int]) -> tuple[int, Tensor | None, str]:
        row, seed = key
        try:
            image = load_image(self.sources[row])
        except ImageError as error:
            return row, None, str(error)
        # The transforms draw from the CPU generator, the one fork_rng saves;
        # torch.manual_seed would also reseed every accelerator, at a cost.
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(seed)
            pixels = self.transform(image)  # (3, H, W)
        return row, pixels, ""


def collate_images(items: list[tuple[int, Tensor | None, str]]) -> dict[str, Any]:
    """Stack the images that loaded; list the rows and errors of the others."""
    loaded = [(row, pixels) for row, pixels, _ in items if pixels is not None]
    return {
        "rows": [row for row, _ in loaded],
        "images": torch.stack([p for _, p in loaded]) if loaded else None,
        "errors": [error for _, pixels, error in items if pixels is None],
    }


class CaptioningTask(EncoderDecoderTask):
    """Trains a CNN encoder and an attention decoder on (image, caption) pairs.

    Every caption of an image is one training example. Evaluation scores the
    loss over every caption and decodes each distinct image once, with all of
    its captions as references. Images load through a torch DataLoader with
    `train.num_workers` worker processes. An image that cannot be read is
    skipped, counted and named in the log during training and evaluation,
    while `caption` raises `ImageError` for it. The image size comes from the
    encoder's `image_size`.
    """

    default_metrics = {
        "char": ["bleu_orders", "exact_match"],
        "word": ["bleu_orders", "exact_match"],
    }

    @classmethod
    def build_vocabularies(
        cls,
        splits: Splits,
        tokenizer: Tokenizer,
        source_tokenizer: Tokenizer | None = None,
    ) -> dict[str, Vocabulary]:
        captions = [normalize(example.target) for example in splits.train]
        return {"target": tokenizer.build_vocabulary(captions)}

    @property
    def image_size(self) -> int:
        """The side in pixels of the square images given to the encoder."""
        return int(getattr(self.encoder, "image_size", None) or DEFAULT_IMAGE_SIZE)

    # ------------------------------------------------------------ data

    def prepare(self, splits: Splits) -> None:
        self.encoded_images = {
            name: self._encode_split(name, splits.named(name)) for name in SPLITS
        }
        self._epoch_batches = None
        self._train_iterator: tuple[int, int, Any] | None = None
        self._skipped: dict[str, int] = {name: 0 for name in SPLITS}

    def _encode_split(self, name: str, examples: list[Example]) -> ImageSplit:
        if not examples:
            raise DataError(
                f"the {name} split is empty; give it data, such as with "
                f"data.{name}_fraction above 0"
            )
        split = ImageSplit([], [], [], [], [])
        seen: dict[Any, int] = {}
        for example in examples:
            if example.source is None:
                raise DataError(
                    f"an example of the {name} split has no image; the "
                    "captioning task needs (image, caption) pairs"
                )
            key = image_key(example.source)
            if key not in seen:
                seen[key] = len(split.images)
                split.images.append(example.source)
                references = example.references or [example.target]
                split.references.append([normalize(r) for r in references])
            split.sources.append(example.source)
            split.captions.append(self.target_ids(example.target))
            split.image_rows.append(seen[key])
        return split

    def fingerprint(self) -> str:
        digest = hashlib.sha256()
        for name in SPLITS:
            split = self.encoded_images[name]
            digest.update(name.encode())
            for source, caption in zip(split.sources, split.captions, strict=True):
                digest.update(image_name(source).encode())
                digest.update(caption.numpy().tobytes())
        return digest.hexdigest()

    # ------------------------------------------------------------ batches

    def steps_per_epoch(self) -> int:
        examples = len(self.encoded_images["train"].sources)
        return math.ceil(examples / self.recipe.train.batch_size)

    def _epoch_rows(self, epoch: int) -> list[list[int]]:
        if self._epoch_batches is not None and self._epoch_batches[0] == epoch:
            return self._epoch_batches[1]
        generator = torch.Generator().manual_seed(
            self.recipe.train.seed * 1_000_003 + epoch
        )
        count = len(self.encoded_images["train"].sources)
        order = torch.randperm(count, generator=generator).tolist()
        size = self.recipe.train.batch_size
        batches = [order[i : i + size] for i in range(0, count, size)]
        self._epoch_batches = (epoch, batches)
        return batches

    def _item_seed(self, epoch: int, row: int) -> int:
        return (self.recipe.train.seed * 1_000_003 + epoch) * 10_000_019 + row

    def _loader(
        self, sources: list[Any], keys: list[list[tuple[int, int]]], train: bool
    ) -> DataLoader:
        transform = image_transform(self.image_size, train=train)
        return DataLoader(
            ImageDataset(sources, transform),
            batch_sampler=keys,
            num_workers=self.recipe.train.num_workers,
            collate_fn=collate_images,
        )

    def train_batch(self, epoch: int, index: int) -> Batch:
        """Return batch `index` of `epoch`, loading images ahead in worker processes.

        Consecutive calls read one DataLoader iterator. A call out of order,
        as on resume, starts a new iterator at `index`.
        """
        state = self._train_iterator
        if state is None or state[:2] != (epoch, index):
            # Each rank loads only its rows of every batch: the split that
            # torch's DistributedSampler makes of an index list.
            batches = [
                self.shard.rows(rows) for rows in self._epoch_rows(epoch)[index:]
            ]
            keys = [[(row, self._item_seed(epoch, row)) for row in b] for b in batches]
            split = self.encoded_images["train"]
            state = (epoch, index, iter(self._loader(split.sources, keys, True)))
        loaded = next(state[2])
        self._train_iterator = (epoch, index + 1, state[2])
        self._count_skipped("train", loaded["errors"])
        if loaded["images"] is None:
            raise DataError(
                f"no image of training batch {index} could be read; the first "
                f"error: {loaded['errors'][0]}"
            )
        split = self.encoded_images["train"]
        return self._caption_batch(loaded["images"], split, loaded["rows"])

    def _count_skipped(self, split: str, errors: list[str]) -> None:
        for error in errors:
            self._skipped[split] += 1
            if self._skipped[split] <= MAX_NAMED_SKIPS:
                log.warning("skipped an unreadable image (%s split): %s", split, error)
            elif self._skipped[split] == MAX_NAMED_SKIPS + 1:
                log.warning(
                    "more unreadable images in the %s split; only their count "
                    "is logged from now on",
                    split,
                )

    def _caption_batch(
        self, images: Tensor, split: ImageSplit, rows: list[int]
    ) -> Batch:
        vocab = self.vocabularies["target"]
        bos = torch.tensor([vocab.bos_id])
        eos = torch.tensor([vocab.eos_id])
        captions = [split.captions[row] for row in rows]
        inputs = [torch.cat([bos, caption]) for caption in captions]
        outputs = [torch.cat([caption, eos]) for caption in captions]
        pad = vocab.pad_id
        return {
            "source": images,  # (B, 3, H, W)
            "inputs": pad_sequence(inputs, batch_first=True, padding_value=pad),
            "outputs": pad_sequence(outputs, batch_first=True, padding_value=pad),
        }  # inputs and outputs: (B, T)

    def _logits(self, model: SequenceModel, batch: Batch) -> Tensor:
        encoder_output = model.encode(batch["source"])
        return model(batch["inputs"], None, encoder_output).logits  # (B, T, V)

    # ------------------------------------------------------------ scoring

    def _eval_loader(
        self, sources: list[Any], max_batches: int | None, own_only: bool
    ) -> DataLoader:
        """Load the first `max_batches` batches; with `own_only`, this rank's."""
        size = self.recipe.evaluate.batch_size or self.recipe.train.batch_size
        rows = list(range(len(sources)))
        keys = [
            [(row, 0) for row in rows[i : i + size]] for i in range(0, len(rows), size)
        ][:max_batches]
        if own_only:
            keys = [batch for n, batch in enumerate(keys) if self.shard.owns(n)]
        return self._loader(sources, keys, train=False)

    @torch.no_grad()
    def evaluate(
        self,
        model: SequenceModel,
        split: str,
        max_batches: int | None = None,
        decode: bool = True,
        sampler: Sampler | None = None,
    ) -> EvalResult:
        """Score the loss over every caption of `split`; with `decode`, caption
        each distinct image once."""
        was_training = model.training
        model.eval()
        device = next(model.parameters()).device
        data = self.encoded_images[split]
        pad = self.vocabularies["target"].pad_id
        self._skipped[split] = 0
        total, count = 0.0, 0
        loader = self._eval_loader(data.sources, max_batches, own_only=not decode)
        for loaded in loader:
            self._count_skipped(split, loaded["errors"])
            if loaded["images"] is None:
                continue
            batch = self._caption_batch(loaded["images"], data, loaded["rows"])
            batch = {key: value.to(device) for key, value in batch.items()}
            logits = self._logits(model, batch).float()  # (B, T, V)
            outputs = batch["outputs"]
            total += F.cross_entropy(
                logits.flatten(0, 1),
                outputs.flatten(),
                ignore_index=pad,
                reduction="sum",
            ).item()
            count += int((outputs != pad).sum())

        predictions, references = [], []
        if decode:
            generator = torch.Generator().manual_seed(self.recipe.train.seed)
            chosen = self.decoding_sampler(sampler)
            for loaded in self._eval_loader(data.images, None, own_only=False):
                if loaded["images"] is None:
                    continue
                found = self._caption_images(
                    model, loaded["images"].to(device), chosen, generator
                )
                predictions.extend(caption.text for caption in found)
                references.extend(data.references[row] for row in loaded["rows"])
        model.train(was_training)
        if self._skipped[split]:
            log.warning(
                "%d unreadable images skipped in the %s split",
                self._skipped[split],
                split,
            )
        return EvalResult(
            loss=total / max(count, 1),
            tokens=count,
            level=self.tokenizer.level,
            predictions=predictions,
            references=references,
        )

    # ------------------------------------------------------------ captions

    def _caption_images(
        self,
        model: SequenceModel,
        images: Tensor,
        sampler: Sampler,
        generator: torch.Generator | None = None,
    ) -> list[Caption]:
        """Caption a batch of image tensors (B, 3, H, W)."""
        vocab = self.vocabularies["target"]
        encoder_output = model.encode(images)
        generation = self.generate_from(
            model, encoder_output, images.shape[0], sampler, generator
        )
        captions = []
        for row, best in enumerate(generation.tokens):
            captions.append(
                Caption(
                    text=self._detokenize(best),
                    score=float(generation.scores[row]),
                    tokens=vocab.decode(best),
                    nbest=[
                        (self._detokenize(ids), score)
                        for ids, score in generation.nbest[row]
                    ],
                )
            )
        return captions

    @torch.no_grad()
    def caption(
        self,
        model: SequenceModel,
        images: list[Any],
        sampler: Sampler | None = None,
        batch_size: int = 32,
        generator: torch.Generator | None = None,
    ) -> list[Caption]:
        """Caption each image (a path or a PIL image), `batch_size` at a time.

        Raises `ImageError` naming the first image that cannot be read. The
        model stays in the mode it was in.
        """
        was_training = model.training
        model.eval()
        device = next(model.parameters()).device
        transform = image_transform(self.image_size, train=False)
        pixels = [transform(load_image(image)) for image in images]
        results: list[Caption] = []
        for start in range(0, len(pixels), batch_size):
            batch = torch.stack(pixels[start : start + batch_size]).to(device)
            results.extend(
                self._caption_images(
                    model, batch, self.decoding_sampler(sampler), generator
                )
            )
        model.train(was_training)
        return results

    @torch.no_grad()
    def attention_grid(
        self, model: SequenceModel, image: Any, caption: Caption
    ) -> Tensor | None:
        """Return the attention (T, h, w) of `caption` over the feature grid.

        Rows are the caption's words and `<eos>`. None when the decoder has
        no attention or the grid is not square.
        """
        was_training = model.training
        model.eval()
        device = next(model.parameters()).device
        vocab = self.vocabularies["target"]
        pixels = image_transform(self.image_size, train=False)(load_image(image))
        inputs = torch.tensor([[vocab.bos_id, *vocab.encode(caption.tokens)]])
        encoder_output = model.encode(pixels[None].to(device))
        attention = model(inputs.to(device), None, encoder_output).attention
        model.train(was_training)
        if attention is None:
            return None
        weights = attention[0].float().cpu()  # (T, S)
        side = math.isqrt(weights.shape[1])
        if side * side != weights.shape[1]:
            return None
        return weights.view(-1, side, side)  # (T, h, w)

    # ------------------------------------------------------------ outputs

    def _sample_rows(self, count: int) -> list[int]:
        images = len(self.encoded_images["test"].images)
        count = min(count, images)
        if count == 0:
            return []
        return torch.linspace(0, images - 1, count).long().tolist()

    @torch.no_grad()
    def samples(
        self, model: SequenceModel, sampler: Sampler, generator: torch.Generator
    ) -> list[str]:
        """Caption `evaluate.samples` test images, spread evenly over the split."""
        data = self.encoded_images["test"]
        rows = self._sample_rows(self.recipe.evaluate.samples)
        texts = []
        for row in rows:
            try:
                found = self.caption(model, [data.images[row]], sampler, 1, generator)
            except ImageError as error:
                log.warning("samples: %s", error)
                continue
            references = " | ".join(data.references[row])
            texts.append(
                f"image: {image_name(data.images[row])}\n"
                f"predicted: {found[0].text}\nreferences: {references}"
            )
        return texts

    def write_reports(
        self, run_dir: Path, result: EvalResult, model: SequenceModel | None = None
    ) -> None:
        """Draw test images with their captions (samples.png) and the attention
        of a few of them (attention.png) into `run_dir`."""
        if model is None:
            return
        data = self.encoded_images["test"]
        shown = []
        for row in self._sample_rows(8):
            try:
                image = load_image(data.images[row])
                caption = self.caption(model, [image])[0]
            except ImageError:
                continue
            shown.append((image, caption, data.references[row]))
        if not shown:
            return
        plots.plot_captions(
            [(image, caption.text, refs[0]) for image, caption, refs in shown],
            Path(run_dir) / "samples.png",
        )
        maps = []
        for image, caption, _ in shown[:3]:
            grid = self.attention_grid(model, image, caption)
            if grid is not None:
                maps.append((image, [*caption.tokens, "<eos>"], grid.numpy()))
        if maps:
            plots.plot_attention_maps(maps, Path(run_dir) / "attention.png")


@hookimpl
def seqkit_add_tasks() -> dict[str, type]:
    return {"captioning": CaptioningTask}
