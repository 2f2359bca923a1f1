"""Text generation from a prompt: feed the prompt once, then let a sampler step."""

from __future__ import annotations

import logging

import torch

from seqkit.interfaces import Sampler, StepModel, Tokenizer
from seqkit.model import SequenceModel
from seqkit.text import normalize
from seqkit.vocab import Vocabulary

log = logging.getLogger(__name__)


@torch.no_grad()
def generate_text(
    model: SequenceModel,
    tokenizer: Tokenizer,
    vocab: Vocabulary,
    sampler: Sampler,
    prompt: str = "",
    max_new_tokens: int = 200,
    num_samples: int = 1,
    generator: torch.Generator | None = None,
) -> list[str]:
    """Continue `prompt` `num_samples` times, drawn as one batch.

    An empty prompt starts from `<bos>`, the start of a new document. A
    non-empty prompt starts from the zero state, the state every training
    window starts from, so it continues text from anywhere in a document.
    Generation never emits `<pad>`, `<bos>` or `<unk>`.
    Prompt tokens missing from the
    vocabulary become `<unk>` and are named in a warning. Each result is the
    prompt followed by the generated text.
    """
    model.eval()
    device = next(model.parameters()).device
    prompt_tokens = tokenizer.tokenize(normalize(prompt))
    unknown = vocab.unknown(prompt_tokens)
    if unknown:
        log.warning(
            "prompt tokens not in the vocabulary, replaced by <unk>: %s",
            " ".join(repr(t) for t in unknown),
        )
    ids = vocab.encode(prompt_tokens) or [vocab.bos_id]

    # prompt: feed every token but the last once, to build the state
    prefix = torch.tensor(ids, device=device).expand(num_samples, -1)  # (N, P)
    state = model.decoder.init_state(num_samples)
    if prefix.shape[1] > 1:
        state = model.decoder(prefix[:, :-1], state).state

    # generate: the sampler feeds the last prompt token, then its own tokens
    result = sampler.generate(
        StepModel(model.decoder, banned=(vocab.pad_id, vocab.bos_id, vocab.unk_id)),
        state,
        prefix[:, -1],
        max_new_tokens,
        vocab.eos_id,
        generator,
    )
    return [
        tokenizer.detokenize(prompt_tokens + vocab.decode(row)) for row in result.tokens
    ]
