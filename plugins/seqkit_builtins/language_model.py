"""The language-model task: next-token prediction over one contiguous id stream.

Shapes: B batch, T window length (`train.seq_len`), V vocabulary size.
"""

from __future__ import annotations

import hashlib
import math

import torch
import torch.nn.functional as F
from torch import Tensor

from seqkit import (
    EvalResult,
    Sampler,
    SequenceModel,
    Splits,
    Task,
    Tokenizer,
    Vocabulary,
    generate_text,
    hookimpl,
)
from seqkit.errors import DataError
from seqkit.task import Batch


def encode_stream(texts: list[str], tokenizer: Tokenizer, vocab: Vocabulary) -> Tensor:
    """Encode documents into one int32 id tensor, each as `<bos>` text `<eos>`.

    Each document becomes a tensor before the next is read, so only one
    document's Python id list is alive at a time. int32 halves the memory of
    the stream; batches are widened to int64 when they are cut.
    """
    parts = []
    for text in texts:
        ids = [vocab.bos_id, *vocab.encode(tokenizer.tokenize(text)), vocab.eos_id]
        parts.append(torch.tensor(ids, dtype=torch.int32))
    if not parts:
        return torch.zeros(0, dtype=torch.int32)
    return torch.cat(parts)


class LanguageModelTask(Task):
    """Trains on windows of `seq_len` + 1 tokens cut from the training stream.

    Each epoch starts the windows at a random offset and visits them in a
    random order, both drawn from a generator seeded with (seed, epoch), so
    any step's batch can be rebuilt on resume. Evaluation splits the stream
    into B equal rows and carries the state from window to window, so each
    token is scored once. The last (length - 1) mod B tokens, fewer than one
    per row, are left out so the rows stay equal.
    """

    default_metrics = {"char": ["bpc"], "word": ["perplexity"]}

    @classmethod
    def build_vocabularies(
        cls,
        splits: Splits,
        tokenizer: Tokenizer,
        source_tokenizer: Tokenizer | None = None,
    ) -> dict[str, Vocabulary]:
        return {"target": tokenizer.build_vocabulary([e.target for e in splits.train])}

    def prepare(self, splits: Splits) -> None:
        vocab = self.vocabularies["target"]
        self.streams = {
            name: encode_stream(
                [e.target for e in splits.named(name)], self.tokenizer, vocab
            )
            for name in ("train", "valid", "test")
        }
        seq_len = self.recipe.train.seq_len
        if len(self.streams["train"]) < seq_len + 2:
            raise DataError(
                f"the training split has {len(self.streams['train'])} tokens, "
                "fewer than "
                f"train.seq_len + 2 = {seq_len + 2}; lower train.seq_len or add data"
            )
        # An empty split would score a loss of 0 and look perfect.
        for name in ("valid", "test"):
            if len(self.streams[name]) == 0:
                raise DataError(
                    f"the {name} split is empty; give it data, such as with "
                    f"data.{name}_fraction above 0"
                )
        self._epoch_starts: tuple[int, Tensor] | None = None

    def fingerprint(self) -> str:
        digest = hashlib.sha256()
        for name in ("train", "valid", "test"):
            digest.update(name.encode())
            digest.update(self.streams[name].numpy().tobytes())
        return digest.hexdigest()

    def steps_per_epoch(self) -> int:
        windows = (len(self.streams["train"]) - 1) // self.recipe.train.seq_len
        return math.ceil(windows / self.recipe.train.batch_size)

    def _starts(self, epoch: int) -> Tensor:
        if self._epoch_starts is not None and self._epoch_starts[0] == epoch:
            return self._epoch_starts[1]
        seq_len = self.recipe.train.seq_len
        size = len(self.streams["train"])
        generator = torch.Generator().manual_seed(
            self.recipe.train.seed * 1_000_003 + epoch
        )
        windows = (size - 1) // seq_len
        spare = size - 1 - windows * seq_len
        offset = int(torch.randint(0, spare + 1, (1,), generator=generator))
        order = torch.randperm(windows, generator=generator)
        starts = offset + order * seq_len  # (windows,)
        self._epoch_starts = (epoch, starts)
        return starts

    def train_batch(self, epoch: int, index: int) -> Batch:
        batch_size, seq_len = self.recipe.train.batch_size, self.recipe.train.seq_len
        starts = self._starts(epoch)[index * batch_size : (index + 1) * batch_size]
        starts = self.shard.rows(starts)  # (B,)
        positions = starts[:, None] + torch.arange(seq_len + 1)  # (B, T + 1)
        window = self.streams["train"][positions].long()  # (B, T + 1)
        return {"inputs": window[:, :-1], "targets": window[:, 1:]}

    def loss(self, model: SequenceModel, batch: Batch) -> tuple[Tensor, int]:
        logits = model(batch["inputs"]).logits  # (B, T, V)
        targets = batch["targets"]  # (B, T)
        loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten())
        return loss, targets.numel()

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
        stream = self.streams[split]
        seq_len = self.recipe.train.seq_len
        rows = self.recipe.evaluate.batch_size or self.recipe.train.batch_size
        rows = max(1, min(rows, (len(stream) - 1) // seq_len))
        columns = (len(stream) - 1) // rows
        stream = stream.long()
        inputs = stream[: rows * columns].view(rows, columns).to(device)  # (B, C)
        targets = stream[1 : rows * columns + 1].view(rows, columns)  # (B, C)
        targets = targets.to(device)
        if not decode and rows >= self.shard.world_size:
            mine = self.shard.rows(torch.arange(rows, device=device))  # (B',)
            inputs, targets = inputs[mine], targets[mine]

        total, count = 0.0, 0
        state = model.decoder.init_state(inputs.shape[0])
        for number, start in enumerate(range(0, columns, seq_len)):
            if max_batches is not None and number >= max_batches:
                break
            output = model(inputs[:, start : start + seq_len], state)  # (B, T, V)
            state = output.state
            window_targets = targets[:, start : start + seq_len]  # (B, T)
            total += F.cross_entropy(
                output.logits.flatten(0, 1).float(),
                window_targets.flatten(),
                reduction="sum",
            ).item()
            count += window_targets.numel()
        model.train()
        return EvalResult(
            loss=total / max(count, 1), tokens=count, level=self.tokenizer.level
        )

    def samples(
        self, model: SequenceModel, sampler: Sampler, generator: torch.Generator
    ) -> list[str]:
        options = self.recipe.evaluate
        if options.samples == 0:
            return []
        return generate_text(
            model,
            self.tokenizer,
            self.vocabularies["target"],
            sampler,
            prompt=options.prompt,
            max_new_tokens=options.sample_tokens,
            num_samples=options.samples,
            generator=generator,
        )


@hookimpl
def seqkit_add_tasks() -> dict[str, type]:
    return {"language-model": LanguageModelTask}
