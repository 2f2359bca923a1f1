"""Plots written into the run folder."""

from __future__ import annotations

import math
import textwrap
from pathlib import Path
from typing import Any

import matplotlib
import numpy

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 - the backend must be chosen first


def plot_loss(history: dict[str, list[float]], path: Path) -> None:
    """Draw training loss per step and validation loss per check into `path`."""
    figure, axis = plt.subplots(figsize=(7, 4))
    axis.plot(history["step"], history["loss"], label="train", linewidth=0.8)
    if history["val_step"]:
        axis.plot(history["val_step"], history["val_loss"], "o-", label="validation")
    axis.set_xlabel("step")
    axis.set_ylabel("cross-entropy (nats per token)")
    axis.legend()
    axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def plot_confusion(labels: list[str], counts: list[list[int]], path: Path) -> None:
    """Draw the confusion matrix `counts[true][predicted]` with its counts into `path`.

    Rows are true labels and columns predicted labels, both in `labels` order.
    """
    size = max(4.0, 0.5 * len(labels) + 2.0)
    figure, axis = plt.subplots(figsize=(size + 1.0, size))
    image = axis.imshow(counts, cmap="Blues")
    figure.colorbar(image, ax=axis)
    axis.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    axis.set_yticks(range(len(labels)), labels)
    axis.set_xlabel("predicted label")
    axis.set_ylabel("true label")
    peak = max((max(row) for row in counts), default=0)
    for true, row in enumerate(counts):
        for predicted, count in enumerate(row):
            color = "white" if count > peak / 2 else "black"
            axis.text(
                predicted, true, str(count), ha="center", va="center", color=color
            )
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def plot_attention(
    source_tokens: list[str],
    target_tokens: list[str],
    weights: list[list[float]],
    path: Path,
) -> None:
    """Draw attention `weights[target][source]` as a matrix into `path`.

    Rows are output tokens and columns source tokens; each row sums to 1.
    """
    width = max(4.0, 0.35 * len(source_tokens) + 2.0)
    height = max(3.0, 0.35 * len(target_tokens) + 1.5)
    figure, axis = plt.subplots(figsize=(width, height))
    image = axis.imshow(weights, cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
    figure.colorbar(image, ax=axis)
    axis.set_xticks(range(len(source_tokens)), source_tokens, rotation=90)
    axis.set_yticks(range(len(target_tokens)), target_tokens)
    axis.set_xlabel("source")
    axis.set_ylabel("output")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def plot_captions(items: list[tuple[Any, str, str]], path: Path) -> None:
    """Draw images with their predicted and reference captions into `path`.

    `items` holds (PIL image, predicted caption, reference caption) triples,
    drawn four to a row.
    """
    columns = min(4, len(items))
    rows = math.ceil(len(items) / columns)
    figure, axes = plt.subplots(
        rows, columns, figsize=(3.2 * columns, 3.6 * rows), squeeze=False
    )
    for axis in axes.flat:
        axis.axis("off")
    for axis, (image, predicted, reference) in zip(axes.flat, items, strict=False):
        axis.imshow(numpy.asarray(image))
        axis.set_title(
            f"{textwrap.fill(predicted, 30)}\n(true: {textwrap.fill(reference, 30)})",
            fontsize=8,
        )
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def plot_attention_maps(
    items: list[tuple[Any, list[str], Any]], path: Path, max_words: int = 6
) -> None:
    """Draw where the decoder looked for each word, over the image, into `path`.

    `items` holds (PIL image, words, weights (T, h, w)) triples; each row
    shows the image, then the first `max_words` words with their weights
    stretched over it.
    """
    columns = 1 + min(max_words, max(len(words) for _, words, _ in items))
    figure, axes = plt.subplots(
        len(items), columns, figsize=(2.2 * columns, 2.4 * len(items)), squeeze=False
    )
    for axis in axes.flat:
        axis.axis("off")
    for row, (image, words, weights) in enumerate(items):
        width, height = image.size
        pixels = numpy.asarray(image)
        axes[row][0].imshow(pixels)
        for column, word in enumerate(words[: columns - 1], start=1):
            axis = axes[row][column]
            axis.imshow(pixels)
            axis.imshow(
                weights[column - 1],
                cmap="inferno",
                alpha=0.6,
                extent=(0, width, height, 0),
                interpolation="bilinear",
            )
            axis.set_title(word, fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
