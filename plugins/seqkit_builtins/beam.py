"""Beam search over the whole batch at once: B rows times K hypotheses per step.

Shapes: B batch, N rows still searching, K beam size, V vocabulary size,
L tokens chosen so far.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor

from seqkit import BuildContext, Generation, RecipeError, Sampler, StepModel, hookimpl
from seqkit.interfaces import State


@dataclass
class BeamOptions:
    beam_size: int = field(
        default=5, metadata={"min": 1, "help": "hypotheses kept per input"}
    )
    length_penalty: float = field(
        default=1.0,
        metadata={
            "min": 0.0,
            "help": "alpha in score / ((5 + length) / 6) ** alpha, which ranks "
            "finished hypotheses; 0 ranks by summed log-probability",
        },
    )
    n_best: int = field(
        default=1, metadata={"min": 1, "help": "hypotheses returned per input"}
    )
    min_length: int = field(
        default=0, metadata={"min": 0, "help": "tokens before <eos> is allowed"}
    )
    max_length: int | None = field(
        default=None,
        metadata={"min": 1, "help": "cap on new tokens, <eos> included"},
    )
    max_length_ratio: float | None = field(
        default=None,
        metadata={
            "min": 0.0,
            "help": "cap each input at ceil(ratio * source length) new tokens, "
            "<eos> included",
        },
    )


@dataclass
class Hypothesis:
    """A finished hypothesis: its tokens, summed log-probability and rank score."""

    tokens: list[int]
    score: float
    rank: float


class BeamSearch(Sampler):
    """Keeps the K best hypotheses of every row and returns the best finished ones.

    Every row's K hypotheses advance in one `StepModel.step` call over B * K
    rows, and the recurrent state follows its hypotheses through
    `Decoder.select_state`. Each step takes the 2K best extensions of a row:
    those ending in `<eos>` among the first K become finished, and the K best
    others continue. A row stops once it has K finished hypotheses or reaches
    its length cap, where its live hypotheses are finished as they are,
    without `<eos>`. Rows that stop leave the batch, so later steps are
    cheaper. With `beam_size = 1` the output and score equal greedy decoding.
    """

    Options = BeamOptions

    def __init__(self, options: BeamOptions, context: BuildContext | None = None):
        if options.n_best > options.beam_size:
            raise RecipeError(
                f"n_best ({options.n_best}) cannot exceed beam_size "
                f"({options.beam_size}); lower n_best or raise beam_size",
                key="sampler.n_best",
            )
        self.options = options

    def rank(self, score: float, length: int) -> float:
        """Return the length-normalised score that orders finished hypotheses."""
        alpha = self.options.length_penalty
        if alpha == 0:
            return score
        return score / ((5 + length) / 6) ** alpha

    def length_caps(
        self, model: StepModel, batch: int, max_new_tokens: int, device: torch.device
    ) -> Tensor:
        """Return the number of new tokens allowed for each row (B,)."""
        cap = max_new_tokens
        if self.options.max_length is not None:
            cap = min(cap, self.options.max_length)
        caps = torch.full((batch,), max(cap, 1), dtype=torch.long, device=device)
        ratio = self.options.max_length_ratio
        lengths = None
        if model.encoder_output is not None:
            lengths = model.encoder_output.source_lengths()
        if ratio is not None and lengths is not None:
            relative = torch.ceil(lengths.to(device).float() * ratio).long()
            caps = torch.minimum(caps, relative.clamp(min=1))
        return caps

    def generate(
        self,
        model: StepModel,
        state: State,
        last_token: Tensor,
        max_new_tokens: int,
        eos_id: int,
        generator: torch.Generator | None = None,
    ) -> Generation:
        B, K = last_token.shape[0], self.options.beam_size
        device = last_token.device
        caps = self.length_caps(model, B, max_new_tokens, device)  # (B,)

        # repeat every row K times: row b's hypotheses are rows b*K .. b*K+K-1
        expand = torch.arange(B, device=device).repeat_interleave(K)  # (B * K,)
        decoder = model.decoder
        state = decoder.select_state(state, expand)
        encoder_output = model.encoder_output
        if encoder_output is not None:
            encoder_output = encoder_output.select(expand)
        token = last_token.index_select(0, expand)  # (N * K,)
        # Only the first copy of each row is live at the start, so the first
        # step does not pick K copies of the same extension.
        scores = torch.full((B, K), -math.inf, device=device)
        scores[:, 0] = 0.0
        history = torch.empty(B, K, 0, dtype=torch.long, device=device)  # (N, K, L)
        active = torch.arange(B, device=device)  # original row of each row
        finished: list[list[Hypothesis]] = [[] for _ in range(B)]

        for step in range(1, int(caps.max()) + 1):
            step_model = StepModel(decoder, encoder_output, model.banned)
            log_probs, state = step_model.step(token, state)  # (N * K, V)
            N, V = active.shape[0], log_probs.shape[-1]
            log_probs = log_probs.view(N, K, V)
            if step <= self.options.min_length:
                log_probs[:, :, eos_id] = -math.inf
            candidates = (scores[:, :, None] + log_probs).view(N, K * V)
            top_scores, top_index = candidates.topk(min(2 * K, K * V), dim=1)
            origins = top_index // V  # (N, 2K) hypothesis each one extends
            tokens = top_index % V  # (N, 2K)

            at_cap = caps.index_select(0, active) == step  # (N,)
            self._finish(
                finished, active, history, top_scores, origins, tokens, at_cap, eos_id
            )

            # the K best extensions that do not end in <eos> go on
            live_scores = top_scores.masked_fill(tokens == eos_id, -math.inf)
            scores, picked = live_scores.topk(K, dim=1)  # (N, K)
            origins = origins.gather(1, picked)  # (N, K)
            chosen = tokens.gather(1, picked)  # (N, K)
            rows = (torch.arange(N, device=device)[:, None] * K + origins).view(-1)
            history = history.view(N * K, -1).index_select(0, rows).view(N, K, -1)
            history = torch.cat([history, chosen[:, :, None]], dim=2)  # (N, K, L)
            state = decoder.select_state(state, rows)
            token = chosen.view(-1)  # (N * K,)

            # rows with K finished hypotheses, or at their cap, leave the batch
            counts = torch.tensor(
                [len(finished[row]) for row in active.tolist()], device=device
            )
            done = at_cap | (counts >= K)  # (N,)
            if bool(done.all()):
                break
            if bool(done.any()):
                keep = (~done).nonzero().squeeze(1)  # (N',)
                rows = (keep[:, None] * K + torch.arange(K, device=device)).view(-1)
                state = decoder.select_state(state, rows)
                if encoder_output is not None:
                    encoder_output = encoder_output.select(rows)
                token = token.index_select(0, rows)
                history, scores = history[keep], scores[keep]
                active = active[keep]

        return self._result(finished, device)

    def _finish(
        self,
        finished: list[list[Hypothesis]],
        active: Tensor,
        history: Tensor,
        top_scores: Tensor,
        origins: Tensor,
        tokens: Tensor,
        at_cap: Tensor,
        eos_id: int,
    ) -> None:
        """Move the extensions that end a hypothesis into `finished`.

        Among the first K of the 2K best extensions, those ending in `<eos>`
        finish, and for a row at its cap all of them do.
        """
        K = self.options.beam_size
        first = torch.zeros_like(tokens, dtype=torch.bool)
        first[:, :K] = True
        ending = first & ((tokens == eos_id) | at_cap[:, None])
        ending &= top_scores > -math.inf
        for row, position in ending.nonzero().tolist():
            prefix = history[row, origins[row, position]].tolist()
            sequence = [*prefix, int(tokens[row, position])]
            score = float(top_scores[row, position])
            finished[int(active[row])].append(
                Hypothesis(sequence, score, self.rank(score, len(sequence)))
            )

    def _result(
        self, finished: list[list[Hypothesis]], device: torch.device
    ) -> Generation:
        nbest = []
        for hypotheses in finished:
            ranked = sorted(hypotheses, key=lambda h: h.rank, reverse=True)
            nbest.append([(h.tokens, h.score) for h in ranked[: self.options.n_best]])
        best_tokens = [row[0][0] if row else [] for row in nbest]
        best_scores = torch.tensor(
            [row[0][1] if row else -math.inf for row in nbest], device=device
        )
        return Generation(best_tokens, best_scores, nbest)


@hookimpl
def seqkit_add_samplers() -> dict[str, type]:
    return {"beam": BeamSearch}
