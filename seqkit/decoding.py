"""Token selection for samplers: filters over log-probabilities and the step loop.

Shapes: B batch, V vocabulary size, N new tokens.
"""

from __future__ import annotations

import torch
from torch import Tensor

from seqkit.interfaces import Generation, State, StepModel

# A filter takes log-probabilities (B, V) and the tokens seen so far (B, N)
# and returns adjusted scores (B, V); -inf removes a token.


def apply_repetition_penalty(scores: Tensor, seen: Tensor, penalty: float) -> Tensor:
    """Make every token in `seen` (B, N) less likely by `penalty` (1.0: no change).

    Log-probabilities are negative, so multiplying by the penalty lowers them.
    """
    if penalty == 1.0 or seen.numel() == 0:
        return scores
    picked = scores.gather(1, seen)  # (B, N)
    return scores.scatter(1, seen, picked * penalty)


def apply_top_k(scores: Tensor, k: int) -> Tensor:
    """Keep the `k` highest scores per row; `k` above V keeps all of them."""
    if k >= scores.shape[-1]:
        return scores
    kth = scores.topk(k, dim=-1).values[:, -1:]  # (B, 1)
    return scores.masked_fill(scores < kth, float("-inf"))


def apply_top_p(scores: Tensor, p: float) -> Tensor:
    """Keep the smallest set of tokens whose probability mass reaches `p`.

    The most likely token always stays, so a tiny `p` gives greedy choices
    and `p = 1` keeps everything.
    """
    if p >= 1.0:
        return scores
    sorted_scores, order = scores.sort(dim=-1, descending=True)  # (B, V)
    probs = sorted_scores.softmax(dim=-1)
    mass_before = probs.cumsum(dim=-1) - probs  # (B, V)
    drop_sorted = mass_before >= p
    drop_sorted[:, 0] = False
    drop = drop_sorted.scatter(1, order, drop_sorted)  # back to vocabulary order
    return scores.masked_fill(drop, float("-inf"))


def run_steps(
    model: StepModel,
    state: State,
    last_token: Tensor,
    max_new_tokens: int,
    eos_id: int,
    choose,
) -> Generation:
    """Step the model `max_new_tokens` times, picking tokens with `choose`.

    `choose(log_probs (B, V), seen (B, N)) -> (B,)` returns the next token of each
    row, where `seen` is `last_token` followed by the tokens chosen so far. Rows
    that emitted `eos_id` keep stepping on `<eos>` until every row is done, but
    their later tokens are dropped and their scores stop growing.
    """
    batch = last_token.shape[0]
    device = last_token.device
    finished = torch.zeros(batch, dtype=torch.bool, device=device)
    scores = torch.zeros(batch, device=device)
    # One buffer for every step, so a step costs the same at token 10 and 2,000.
    tokens = torch.empty(batch, max_new_tokens + 1, dtype=torch.long, device=device)
    tokens[:, 0] = last_token
    token = last_token
    produced = 0
    for produced in range(1, max_new_tokens + 1):
        log_probs, state = model.step(token, state)  # (B, V)
        token = choose(log_probs, tokens[:, :produced])  # (B,)
        token = token.masked_fill(finished, eos_id)
        step_score = log_probs.gather(1, token[:, None]).squeeze(1)  # (B,)
        scores = scores + step_score.masked_fill(finished, 0.0)
        tokens[:, produced] = token
        finished = finished | (token == eos_id)
        if bool(finished.all()):
            break
    return Generation(_cut_after_eos(tokens[:, 1 : produced + 1], eos_id), scores)


def _cut_after_eos(chosen: Tensor, eos_id: int) -> list[list[int]]:
    rows = chosen.tolist()  # (B, N)
    result = []
    for row in rows:
        if eos_id in row:
            row = row[: row.index(eos_id) + 1]
        result.append(row)
    return result
