"""The shared part of tasks whose decoder generates a target from an encoded input.

Shapes: B batch, T target steps, V target vocabulary size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from seqkit import (
    EncoderOutput,
    Generation,
    Sampler,
    SequenceModel,
    StepModel,
    Task,
)
from seqkit.task import Batch
from seqkit.text import normalize


class EncoderDecoderTask(Task):
    """Teacher-forced training and decoding of targets, for translation and captioning.

    Subclasses encode their inputs and build batches with "inputs" (`<bos>`
    and the target) and "outputs" (the target and `<eos>`), both (B, T) and
    padded with `<pad>`, and implement `_logits`.
    """

    def _logits(self, model: SequenceModel, batch: Batch) -> Tensor:
        """Return the teacher-forced logits (B, T, V) of `batch`."""
        raise NotImplementedError

    @property
    def max_tokens(self) -> int:
        """Maximum number of target tokens kept, `train.seq_len - 1`.

        The one step left is for `<bos>` in the inputs and `<eos>` in the
        outputs. Longer targets are cut to their first `max_tokens` tokens.
        """
        return max(self.recipe.train.seq_len - 1, 0)

    def target_token_ids(self, text: str) -> list[int]:
        """Encode a target text as ids, without specials and without a cut."""
        tokens = self.tokenizer.tokenize(normalize(text))
        return self.vocabularies["target"].encode(tokens)

    def target_ids(self, text: str) -> Tensor:
        """Encode a target text as at most `train.seq_len - 1` ids, without specials."""
        return self.cut_target(self.target_token_ids(text))

    def cut_target(self, ids: list[int]) -> Tensor:
        """Return the first `max_tokens` of the target `ids` as a tensor."""
        return torch.tensor(ids[: self.max_tokens], dtype=torch.long)

    def loss(self, model: SequenceModel, batch: Batch) -> tuple[Tensor, int]:
        logits = self._logits(model, batch)  # (B, T, V)
        outputs = batch["outputs"]  # (B, T)
        pad = self.vocabularies["target"].pad_id
        loss = F.cross_entropy(
            logits.float().flatten(0, 1), outputs.flatten(), ignore_index=pad
        )
        return loss, int((outputs != pad).sum())

    def decoding_sampler(self, sampler: Sampler | None = None) -> Sampler:
        """Return `sampler`, else the recipe's sampler, else greedy decoding."""
        if sampler is not None:
            return sampler
        if self.sampler is not None:
            return self.sampler
        from seqkit_builtins.samplers import GreedyOptions, GreedySampler

        return GreedySampler(GreedyOptions())

    def generate_from(
        self,
        model: SequenceModel,
        encoder_output: EncoderOutput,
        batch_size: int,
        sampler: Sampler,
        generator: torch.Generator | None = None,
    ) -> Generation:
        """Run `sampler` from `<bos>` on each encoded input; `nbest` is always set.

        Samplers other than beam search give one (tokens, score) pair per row.
        """
        vocab = self.vocabularies["target"]
        step_model = StepModel(
            model.decoder,
            encoder_output,
            banned=(vocab.pad_id, vocab.unk_id, vocab.bos_id),
        )
        state = model.decoder.init_state(batch_size, encoder_output)
        device = next(model.parameters()).device
        start = torch.full((batch_size,), vocab.bos_id, device=device)  # (B,)
        generation = sampler.generate(
            step_model,
            state,
            start,
            self.recipe.train.seq_len,
            vocab.eos_id,
            generator,
        )
        if generation.nbest is None:
            generation.nbest = [
                [(tokens, float(score))]
                for tokens, score in zip(
                    generation.tokens, generation.scores.tolist(), strict=True
                )
            ]
        return generation

    def _detokenize(self, ids: list[int]) -> str:
        return self.tokenizer.detokenize(self.vocabularies["target"].decode(ids))
