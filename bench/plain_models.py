"""The models of the default recipes, written again in plain torch.nn.

Each plain model has the parameter names of seqkit's `SequenceModel` (or, for
a language model, of its decoder), so `load_state_dict(..., strict=True)`
copies every weight of a built recipe and fails on any difference in the
architecture. Each has a `loss(batch)` method that returns the mean loss and
the number of real tokens, as `Task.loss` does, on the batches that the
recipe's task builds.

The replicas cover the options that the default recipes use. `plain_model_for`
raises ValueError for anything else, such as input feeding or a torchvision
backbone.

Shapes: B batch, T target steps, S source steps (or image regions), E
embedding size, H hidden size (per direction in an encoder), D directions,
L layers, M encoder memory width, V target vocabulary size, C labels.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from seqkit.run import Built
from seqkit.vocab import SPECIALS

CELLS = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn_tanh": nn.RNN, "rnn_relu": nn.RNN}
Batch = dict[str, Tensor]


def make_rnn(options: Any, input_size: int, bidirectional: bool = False) -> nn.RNNBase:
    """Build the nn.LSTM, nn.GRU or nn.RNN that `options.cell` names."""
    extra = {"nonlinearity": options.cell[4:]} if options.cell[:4] == "rnn_" else {}
    return CELLS[options.cell](
        input_size,
        options.hidden_size,
        num_layers=options.layers,
        dropout=options.dropout if options.layers > 1 else 0.0,
        batch_first=True,
        bidirectional=bidirectional,
        **extra,
    )


# ---------------------------------------------------------------- language model


class PlainLanguageModel(nn.Module):
    """nn.Embedding, an RNN and nn.Linear, with the parameter names of RNNDecoder.

    With `tie_weights` the output layer shares the embedding matrix, after a
    linear projection from H to E when the two sizes differ.
    """

    def __init__(self, options: Any, vocab_size: int, padding_idx: int):
        super().__init__()
        E, H = options.embedding_size, options.hidden_size
        self.embedding = nn.Embedding(vocab_size, E, padding_idx=padding_idx)
        self.rnn = make_rnn(options, E)
        self.dropout = nn.Dropout(options.dropout)
        self.projection = None
        if options.tie_weights and H != E:
            self.projection = nn.Linear(H, E)
        self.output = nn.Linear(E if options.tie_weights else H, vocab_size)
        if options.tie_weights:
            self.output.weight = self.embedding.weight

    def forward(self, tokens: Tensor) -> Tensor:
        """Return logits (B, T, V) for `tokens` (B, T), starting from a zero state."""
        embedded = self.dropout(self.embedding(tokens))  # (B, T, E)
        hidden, _ = self.rnn(embedded)  # (B, T, H)
        hidden = self.dropout(hidden)
        if self.projection is not None:
            hidden = self.projection(hidden)  # (B, T, E)
        return self.output(hidden)  # (B, T, V)

    def loss(self, batch: Batch) -> tuple[Tensor, int]:
        """Return the mean next-token loss of `batch` and its number of targets."""
        logits = self(batch["inputs"])  # (B, T, V)
        targets = batch["targets"]  # (B, T)
        loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten())
        return loss, targets.numel()


# ---------------------------------------------------------------- encoders


class PlainRNNEncoder(nn.Module):
    """nn.Embedding and a packed RNN, pooled into a summary, as RNNEncoder does.

    A batch whose rows all fill its width runs unpacked, because RNNEncoder
    skips packing then and the result is the same.
    """

    def __init__(self, options: Any, vocab_size: int, padding_idx: int):
        super().__init__()
        self.options = options
        self.embedding = nn.Embedding(
            vocab_size, options.embedding_size, padding_idx=padding_idx
        )
        self.rnn = make_rnn(options, options.embedding_size, options.bidirectional)
        self.dropout = nn.Dropout(options.dropout)
        self.directions = 2 if options.bidirectional else 1
        self.output_size = options.hidden_size * self.directions
        self.attention = None
        if options.pooling == "attention":
            self.attention = nn.Linear(self.output_size, 1)

    def forward(self, source: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Return the memory (B, S, D * H), mask (B, S) and summary (B, D * H)."""
        B, S = source.shape
        lengths_cpu = lengths.cpu()
        embedded = self.dropout(self.embedding(source))  # (B, S, E)
        if bool((lengths_cpu == S).all()):
            memory, final = self.rnn(embedded)  # (B, S, D * H)
        else:
            packed = pack_padded_sequence(
                embedded, lengths_cpu, batch_first=True, enforce_sorted=False
            )
            output, final = self.rnn(packed)
            memory, _ = pad_packed_sequence(output, batch_first=True, total_length=S)
        steps = torch.arange(S, device=source.device)  # (S,)
        mask = steps[None, :] < lengths.to(source.device)[:, None]  # (B, S)
        return memory, mask, self._pool(memory, mask, final)

    def _pool(self, memory: Tensor, mask: Tensor, final: Any) -> Tensor:
        pooling = self.options.pooling
        if pooling == "last":
            hidden = final[0] if isinstance(final, tuple) else final  # (L * D, B, H)
            B = hidden.shape[1]
            top = hidden.view(self.options.layers, self.directions, B, -1)[-1]
            return top.transpose(0, 1).reshape(B, self.output_size)  # (B, D * H)
        if pooling == "mean":
            weights = mask.unsqueeze(-1).to(memory.dtype)  # (B, S, 1)
            return (memory * weights).sum(dim=1) / weights.sum(dim=1)
        if pooling == "max":
            hidden = memory.masked_fill(~mask.unsqueeze(-1), float("-inf"))
            return hidden.max(dim=1).values  # (B, D * H)
        scores = self.attention(memory).squeeze(-1).masked_fill(~mask, float("-inf"))
        weights = torch.softmax(scores, dim=1)  # (B, S)
        return torch.bmm(weights.unsqueeze(1), memory).squeeze(1)  # (B, D * H)


class PlainConvNet(nn.Module):
    """Three stages of two 3 x 3 conv, batch norm and ReLU layers, then max pooling.

    The layer order and indices match seqkit's `small` backbone.
    """

    def __init__(self, channels: int):
        super().__init__()
        layers: list[nn.Module] = []
        in_channels = 3
        for stage in range(3):
            width = channels * 2**stage
            for _ in range(2):
                layers += [
                    nn.Conv2d(in_channels, width, 3, padding=1, bias=False),
                    nn.BatchNorm2d(width),
                    nn.ReLU(inplace=True),
                ]
                in_channels = width
            layers.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*layers)


class PlainConvEncoder(nn.Module):
    """The `small` convnet over images in [0, 1], its feature grid as the memory."""

    def __init__(self, options: Any):
        super().__init__()
        self.backbone = PlainConvNet(options.channels or 32)
        self.dropout = nn.Dropout(options.dropout)

    def forward(self, images: Tensor) -> tuple[Tensor, None, Tensor]:
        """Return the memory (B, S, M), no mask and the summary (B, M)."""
        features = self.backbone.features((images - 0.5) / 0.5)  # (B, M, h, w)
        memory = features.flatten(2).transpose(1, 2)  # (B, S, M), row-major
        summary = memory.mean(dim=1)  # (B, M)
        return self.dropout(memory), None, self.dropout(summary)


# ---------------------------------------------------------------- decoders


class PlainLuongAttention(nn.Module):
    """The `general` score q . W m, with the parameter name of LuongAttention."""

    def __init__(self, query_size: int, memory_size: int):
        super().__init__()
        self.memory_layer = nn.Linear(memory_size, query_size, bias=False)


class PlainAttentionDecoder(nn.Module):
    """An RNN over the whole target, then Luong attention from each of its outputs.

    The initial hidden state is tanh(bridge(summary)) in every layer, and the
    prediction comes from tanh(combine([context; output])).
    """

    def __init__(self, options: Any, vocab_size: int, padding_idx: int, memory: int):
        super().__init__()
        self.options = options
        E, H = options.embedding_size, options.hidden_size
        self.embedding = nn.Embedding(vocab_size, E, padding_idx=padding_idx)
        self.attention = PlainLuongAttention(H, memory)
        self.combine = nn.Linear(memory + H, H, bias=False)
        self.rnn = make_rnn(options, E)
        self.dropout = nn.Dropout(options.dropout)
        self.output = nn.Linear(H, vocab_size)
        self.bridge = nn.Linear(memory, options.layers * H)

    def forward(
        self, tokens: Tensor, memory: Tensor, mask: Tensor | None, summary: Tensor
    ) -> Tensor:
        """Return logits (B, T, V) for `tokens` (B, T) over `memory` (B, S, M)."""
        B = tokens.shape[0]
        L, H = self.options.layers, self.options.hidden_size
        hidden = torch.tanh(self.bridge(summary)).view(B, L, H)  # (B, L, H)
        hidden = hidden.transpose(0, 1).contiguous()  # (L, B, H)
        state: Any = hidden
        if self.options.cell == "lstm":
            state = (hidden, torch.zeros_like(hidden))

        embedded = self.dropout(self.embedding(tokens))  # (B, T, E)
        outputs, _ = self.rnn(embedded, state)  # (B, T, H)
        keys = self.attention.memory_layer(memory)  # (B, S, H)
        scores = torch.bmm(outputs, keys.transpose(1, 2))  # (B, T, S)
        if mask is not None:
            scores = scores.masked_fill(~mask[:, None, :], float("-inf"))
        weights = torch.softmax(scores.float(), dim=-1).to(memory.dtype)  # (B, T, S)
        context = torch.bmm(weights, memory)  # (B, T, M)
        vectors = torch.tanh(self.combine(torch.cat([context, outputs], dim=-1)))
        return self.output(self.dropout(vectors))  # (B, T, V)


class PlainLabelHead(nn.Module):
    """Dropout, an optional tanh layer and nn.Linear over the encoder summary."""

    def __init__(self, options: Any, summary_size: int, vocab_size: int):
        super().__init__()
        self.dropout = nn.Dropout(options.dropout)
        self.hidden = None
        width = summary_size
        if options.hidden_size is not None:
            self.hidden = nn.Linear(width, options.hidden_size)
            width = options.hidden_size
        self.output = nn.Linear(width, vocab_size)

    def forward(self, summary: Tensor) -> Tensor:
        """Return logits (B, V) over the special tokens and the labels."""
        features = self.dropout(summary)
        if self.hidden is not None:
            features = self.dropout(self.hidden(features).tanh())
        return self.output(features)


class PlainTagger(nn.Module):
    """Dropout and nn.Linear from every encoder memory step to label logits."""

    def __init__(self, options: Any, memory_size: int, vocab_size: int):
        super().__init__()
        self.dropout = nn.Dropout(options.dropout)
        self.output = nn.Linear(memory_size, vocab_size)


# ---------------------------------------------------------------- whole models


class PlainClassifier(nn.Module):
    """An RNN encoder and a label head, with the classification task's loss."""

    def __init__(self, built: Built):
        super().__init__()
        recipe = built.recipe
        source = built.vocabularies["source"]
        self.encoder = PlainRNNEncoder(
            recipe.encoder.options, len(source), source.pad_id
        )
        self.decoder = PlainLabelHead(
            recipe.decoder.options,
            self.encoder.output_size,
            len(built.vocabularies["target"]),
        )
        weights = built.task.class_weights
        self.register_buffer("class_weights", weights, persistent=False)

    def loss(self, batch: Batch) -> tuple[Tensor, int]:
        """Return the weighted label loss of `batch` and its real source tokens."""
        _, _, summary = self.encoder(batch["source"], batch["lengths"])
        logits = self.decoder(summary)[:, len(SPECIALS) :]  # (B, C)
        targets = batch["targets"] - len(SPECIALS)  # (B,)
        loss = F.cross_entropy(logits.float(), targets, weight=self.class_weights)
        return loss, int(batch["lengths"].sum())


class PlainSequenceTagger(nn.Module):
    """An RNN encoder and a per-step label layer, with the tagging task's loss."""

    def __init__(self, built: Built):
        super().__init__()
        recipe = built.recipe
        source, target = built.vocabularies["source"], built.vocabularies["target"]
        self.encoder = PlainRNNEncoder(
            recipe.encoder.options, len(source), source.pad_id
        )
        self.decoder = PlainTagger(
            recipe.decoder.options, self.encoder.output_size, len(target)
        )
        self.pad_id = target.pad_id

    def loss(self, batch: Batch) -> tuple[Tensor, int]:
        """Return the mean loss over the real steps of `batch` and their number."""
        memory, _, _ = self.encoder(batch["source"], batch["lengths"])
        logits = self.decoder.output(self.decoder.dropout(memory))  # (B, S, V)
        targets = batch["targets"]  # (B, S)
        loss = F.cross_entropy(
            logits.flatten(0, 1), targets.flatten(), ignore_index=self.pad_id
        )
        return loss, int((targets != self.pad_id).sum())


class PlainEncoderDecoder(nn.Module):
    """An RNN or convnet encoder and the attention decoder, teacher-forced."""

    def __init__(self, built: Built):
        super().__init__()
        recipe = built.recipe
        target = built.vocabularies["target"]
        if recipe.encoder.plugin == "cnn":
            self.encoder: nn.Module = PlainConvEncoder(recipe.encoder.options)
        else:
            source = built.vocabularies["source"]
            self.encoder = PlainRNNEncoder(
                recipe.encoder.options, len(source), source.pad_id
            )
        memory_size = built.model.encoder.output_size
        self.decoder = PlainAttentionDecoder(
            recipe.decoder.options, len(target), target.pad_id, memory_size
        )
        self.pad_id = target.pad_id
        self.reads_images = recipe.encoder.plugin == "cnn"

    def loss(self, batch: Batch) -> tuple[Tensor, int]:
        """Return the mean loss over the real target tokens and their number."""
        if self.reads_images:
            memory, mask, summary = self.encoder(batch["source"])
        else:
            memory, mask, summary = self.encoder(batch["source"], batch["lengths"])
        logits = self.decoder(batch["inputs"], memory, mask, summary)  # (B, T, V)
        outputs = batch["outputs"]  # (B, T)
        loss = F.cross_entropy(
            logits.float().flatten(0, 1), outputs.flatten(), ignore_index=self.pad_id
        )
        return loss, int((outputs != self.pad_id).sum())


# ---------------------------------------------------------------- construction


def check_supported(built: Built) -> None:
    """Raise ValueError when the recipe uses an option that no replica covers."""
    recipe = built.recipe
    decoder = recipe.decoder.options
    problems = []
    if recipe.encoder is not None and recipe.encoder.plugin == "cnn":
        encoder = recipe.encoder.options
        if encoder.backbone != "small" or encoder.memory_size or encoder.freeze:
            problems.append("a CNN encoder other than the unfrozen small backbone")
    attention = recipe.attention
    if attention is not None:
        if attention.plugin != "luong" or attention.options.score != "general":
            problems.append("attention other than Luong's general score")
        if decoder.attend != "after" or decoder.input_feeding:
            problems.append('attend = "before" or input feeding')
    if recipe.train.optimizer != "adamw":
        problems.append(f"train.optimizer = {recipe.train.optimizer!r}")
    if problems:
        raise ValueError(
            f"{recipe.file} uses {', '.join(problems)}, which the plain "
            "models in bench/plain_models.py do not replicate. Extend them to "
            "benchmark this recipe"
        )


def plain_model_for(built: Built) -> nn.Module:
    """Build the plain model of `built`'s recipe and load its current weights.

    The result has a `loss(batch)` method and sits on the device of the
    seqkit model. Raises ValueError for a task or option it does not cover.
    """
    check_supported(built)
    task = built.task_name
    if task == "language-model":
        vocab = built.vocabularies["target"]
        model: nn.Module = PlainLanguageModel(
            built.recipe.decoder.options, len(vocab), vocab.pad_id
        )
        state = built.model.decoder.state_dict()
    elif task == "classification":
        model, state = PlainClassifier(built), built.model.state_dict()
    elif task == "tagging":
        model, state = PlainSequenceTagger(built), built.model.state_dict()
    elif task in ("translation", "captioning"):
        model, state = PlainEncoderDecoder(built), built.model.state_dict()
    else:
        raise ValueError(f"no plain model for the {task!r} task")
    model.load_state_dict(state, strict=True)
    return model.to(next(built.model.parameters()).device)
