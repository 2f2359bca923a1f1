"""Training throughput of packed against padded batches for text classification.

Two recipes, two shapes of data: `recipes/names.toml` (a character-level
bidirectional GRU over first names of a few characters) and the encoder of
`recipes/classify.toml` (a word-level bidirectional LSTM over BBC News articles
cut at `train.seq_len` tokens).

The packed side is seqkit's model and loss: `ClassificationTask.loss`, whose
`RNNEncoder` runs the RNN over a PackedSequence, so pad steps never enter it.
The padded side is the same model written with plain torch.nn and run over the
padded (B, S) tensor: nn.GRU or nn.LSTM runs over every pad step, and the summary is
read at each text's last real step with `gather`. It loads the seqkit model's
weights and gets the same batches, class weights and optimizer settings.

Both sides run the same training step (forward, loss, backward, gradient
clipping, optimizer step), with no learning-rate schedule and no Trainer, so
the comparison isolates packing. Benchmark 1 measures the Trainer's own cost.
The sides alternate step by step, and the first side swaps at every step.
Throughput counts real tokens only: the sum of the batch's lengths, `<eos>`
included, which is also what the Trainer logs.

Shapes: B batch, S source steps (the batch's longest text), E embedding size,
H hidden size per direction, D directions, C number of labels.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bench.common import (
    BBC_NEWS_RECIPE,
    NAMES_RECIPE,
    median,
    other_cores_busy,
    sample_cpu,
)
from seqkit.run import Built, build, load_recipe, seed_everything
from seqkit.training import build_optimizer
from seqkit.vocab import SPECIALS

# The padded side reads the summary at the last real step, which is the
# encoder's `last` pooling, so both sides use it whatever the recipe sets.
OVERRIDES = ["train.device=cpu", "encoder.pooling=last"]
SIDES = ("packed", "padded")

# Tolerance of the check that both sides compute the same summary and logits.
MATCH_TOLERANCE = 1e-5


@dataclass
class PackingSettings:
    """Steps per side for each data set."""

    warmup_steps: int = 3
    names_steps: int = 150
    bbc_news_steps: int = 40


@dataclass
class _DataSet:
    key: str
    title: str
    recipe: Path
    steps_field: str


DATA_SETS = (
    _DataSet("names", "names (names.toml)", NAMES_RECIPE, "names_steps"),
    _DataSet("bbc_news", "bbc-news (classify.toml)", BBC_NEWS_RECIPE, "bbc_news_steps"),
)


class PaddedClassifier(nn.Module):
    """The recipe's encoder and label head in plain torch.nn, run without packing.

    The parameter names match seqkit's SequenceModel, so `load_state_dict`
    with strict=True copies every weight and fails on any difference.
    """

    def __init__(self, built: Built):
        super().__init__()
        recipe = built.recipe
        encoder_plugin = recipe.encoder.plugin if recipe.encoder else None
        if encoder_plugin != "rnn" or recipe.decoder.plugin != "label":
            raise ValueError(
                'the packing benchmark needs [encoder] plugin = "rnn" and '
                f'[decoder] plugin = "label" in {recipe.file}'
            )
        options = recipe.encoder.options
        head = recipe.decoder.options

        source_vocab = built.vocabularies["source"]
        self.hidden_size = options.hidden_size
        self.directions = 2 if options.bidirectional else 1
        cells = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn_tanh": nn.RNN, "rnn_relu": nn.RNN}
        extra = {"nonlinearity": options.cell[4:]} if options.cell[:4] == "rnn_" else {}
        self.encoder = nn.ModuleDict(
            {
                "embedding": nn.Embedding(
                    len(source_vocab),
                    options.embedding_size,
                    padding_idx=source_vocab.pad_id,
                ),
                "rnn": cells[options.cell](
                    options.embedding_size,
                    options.hidden_size,
                    num_layers=options.layers,
                    dropout=options.dropout if options.layers > 1 else 0.0,
                    batch_first=True,
                    bidirectional=options.bidirectional,
                    **extra,
                ),
            }
        )
        self.encoder_dropout = nn.Dropout(options.dropout)

        width = options.hidden_size * self.directions
        layers: dict[str, nn.Module] = {}
        if head.hidden_size is not None:
            layers["hidden"] = nn.Linear(width, head.hidden_size)
            width = head.hidden_size
        layers["output"] = nn.Linear(width, len(built.vocabularies["target"]))
        self.decoder = nn.ModuleDict(layers)
        self.head_dropout = nn.Dropout(head.dropout)

        self.load_state_dict(built.model.state_dict(), strict=True)

    def summary(self, source: Tensor, lengths: Tensor) -> Tensor:
        """Run the RNN over the padded `source` (B, S) and return (B, D * H)."""
        embedded = self.encoder_dropout(self.encoder["embedding"](source))  # (B, S, E)
        output, _ = self.encoder["rnn"](embedded)  # (B, S, D * H)
        H = self.hidden_size
        last = (lengths - 1).view(-1, 1, 1).expand(-1, 1, H)  # (B, 1, H)
        forward = output[:, :, :H].gather(1, last).squeeze(1)  # (B, H)
        if self.directions == 1:
            return forward
        # The backward direction ends at step 0. Unlike the packed run, it has
        # read the pad steps of shorter texts before their real steps.
        backward = output[:, 0, H:]  # (B, H)
        return torch.cat([forward, backward], dim=1)  # (B, 2 * H)

    def forward(self, source: Tensor, lengths: Tensor) -> Tensor:
        """Return label logits (B, C), leaving out the special tokens."""
        features = self.head_dropout(self.summary(source, lengths))
        if "hidden" in self.decoder:
            features = self.head_dropout(self.decoder["hidden"](features).tanh())
        return self.decoder["output"](features)[:, len(SPECIALS) :]  # (B, C)


def _train_step(
    loss_fn: Callable[[dict[str, Tensor]], Tensor],
    batch: dict[str, Tensor],
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    clip: float,
) -> float:
    loss = loss_fn(batch)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if clip > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    optimizer.step()
    return loss.item()


@torch.no_grad()
def check_same_model(built: Built, padded: PaddedClassifier, batch: dict) -> None:
    """Raise RuntimeError unless both sides compute the same thing on `batch`.

    In eval mode (no dropout), the forward direction's summary must match for
    every row. The backward direction and the logits must match for the rows
    that fill the batch, which have no pad steps. Shorter rows differ in the
    backward direction because the padded side reads their pad steps.
    """
    built.model.eval()
    padded.eval()
    source, lengths = batch["source"], batch["lengths"]
    H = padded.hidden_size
    packed_summary = built.model.encode(source, lengths).summary  # (B, D * H)
    padded_summary = padded.summary(source, lengths)  # (B, D * H)
    full = lengths == source.shape[1]  # (B,)
    packed_logits = built.task.label_logits(built.model, batch)[full]
    padded_logits = padded(source, lengths)[full]
    built.model.train()
    padded.train()
    checks = {
        "forward-direction summaries": (packed_summary[:, :H], padded_summary[:, :H]),
        "summaries of full-length rows": (packed_summary[full], padded_summary[full]),
        "logits of full-length rows": (packed_logits, padded_logits),
    }
    for name, (packed_value, padded_value) in checks.items():
        difference = (packed_value - padded_value).abs().max().item()
        if difference > MATCH_TOLERANCE:
            raise RuntimeError(
                f"the packed and padded models differ in their {name} by "
                f"{difference:.2e}, so the padded model is not the recipe's model"
            )


def _build(recipe_path: Path) -> Built:
    recipe, registry = load_recipe(recipe_path, OVERRIDES)
    if recipe.data.cls.task != "classification":
        raise ValueError(
            f"the packing benchmark needs a classification data source in {recipe_path}"
        )
    seed_everything(recipe.train.seed)
    return build(recipe, registry)


def _describe_model(built: Built) -> str:
    options = built.recipe.encoder.options
    direction = "bidirectional " if options.bidirectional else ""
    return (
        f"{direction}{options.cell.upper()}, {options.layers} layer, embedding "
        f"{options.embedding_size}, hidden {options.hidden_size} per direction"
    )


def measure_data_set(data_set: _DataSet, settings: PackingSettings) -> dict[str, Any]:
    """Train both sides on the same batches of one recipe, step by step in turn."""
    cpu_start = sample_cpu()
    built = _build(data_set.recipe)
    task, train_options = built.task, built.recipe.train
    padded = PaddedClassifier(built)
    timed_steps = getattr(settings, data_set.steps_field)
    steps_per_epoch = task.steps_per_epoch()
    batches = [
        task.train_batch(*divmod(step, steps_per_epoch))
        for step in range(settings.warmup_steps + timed_steps)
    ]
    check_same_model(built, padded, batches[0])

    optimizers = {
        "packed": build_optimizer(built.model, train_options),
        "padded": build_optimizer(padded, train_options),
    }
    models: dict[str, nn.Module] = {"packed": built.model, "padded": padded}
    weights = task.class_weights

    def packed_loss(batch: dict) -> Tensor:
        return task.loss(built.model, batch)[0]

    def padded_loss(batch: dict) -> Tensor:
        logits = padded(batch["source"], batch["lengths"])  # (B, C)
        targets = batch["targets"] - len(SPECIALS)  # (B,)
        return F.cross_entropy(logits, targets, weight=weights)

    losses = {"packed": packed_loss, "padded": padded_loss}
    seconds: dict[str, list[float]] = {side: [] for side in SIDES}
    built.model.train()
    padded.train()
    for step, batch in enumerate(batches):
        order = SIDES if step % 2 == 0 else SIDES[::-1]
        for side in order:
            start = time.perf_counter()
            _train_step(
                losses[side],
                batch,
                models[side],
                optimizers[side],
                train_options.clip,
            )
            seconds[side].append(time.perf_counter() - start)
    cpu_end = sample_cpu()

    timed = batches[settings.warmup_steps :]
    for side in SIDES:
        del seconds[side][: settings.warmup_steps]
    tokens = [int(batch["lengths"].sum()) for batch in timed]
    cells = [batch["source"].numel() for batch in timed]
    ratios = [
        padded_s / packed_s
        for packed_s, padded_s in zip(seconds["packed"], seconds["padded"], strict=True)
    ]
    # Packing costs most where a batch mixes lengths, so split the ratios there.
    uniform = [bool((b["lengths"] == b["source"].shape[1]).all()) for b in timed]
    mixed_ratios = [r for r, same in zip(ratios, uniform, strict=True) if not same]
    uniform_ratios = [r for r, same in zip(ratios, uniform, strict=True) if same]
    lengths = task.encoded["train"].lengths.float()  # (N,)
    return {
        "key": data_set.key,
        "title": data_set.title,
        "model": _describe_model(built),
        "batch_size": train_options.batch_size,
        "seq_len": train_options.seq_len,
        "warmup_steps": settings.warmup_steps,
        "timed_steps": timed_steps,
        "train_texts": len(lengths),
        "median_length": lengths.median().item(),
        "mean_length": lengths.mean().item(),
        "share_at_seq_len": (lengths >= train_options.seq_len).float().mean().item(),
        "real_share": sum(tokens) / sum(cells),
        "mean_batch_steps": statistics.fmean(
            batch["source"].shape[1] for batch in timed
        ),
        "tokens_per_s": {
            side: median([n / s for n, s in zip(tokens, seconds[side], strict=True)])
            for side in SIDES
        },
        "ratio": median(ratios),
        "ratio_quartiles": statistics.quantiles(ratios, n=4),
        "ratio_of_totals": sum(seconds["padded"]) / sum(seconds["packed"]),
        "uniform_steps": len(uniform_ratios),
        "ratio_uniform": median(uniform_ratios) if uniform_ratios else None,
        "ratio_mixed": median(mixed_ratios) if mixed_ratios else None,
        "seconds": cpu_end.wall - cpu_start.wall,
        "other_cores_busy": other_cores_busy(cpu_start, cpu_end),
    }


def run_packing_benchmark(settings: PackingSettings) -> dict[str, Any]:
    """Measure packed / padded training tokens/s on the names and bbc-news recipes."""
    cpu_start = sample_cpu()
    data_sets = [measure_data_set(data_set, settings) for data_set in DATA_SETS]
    cpu_end = sample_cpu()
    return {
        "name": "packing",
        "data_sets": data_sets,
        # no target: the benchmark reports the ratio and what explains it
        "passed": True,
        "seconds": cpu_end.wall - cpu_start.wall,
        "other_cores_busy": other_cores_busy(cpu_start, cpu_end),
    }
