"""One training step as the Trainer runs it, without the Trainer.

Benchmarks that compare several models step by step in turn cannot run them
inside one `Trainer.fit`, so they run this step: the task's loss, backward,
gradient clipping at `train.clip` and the optimizer step, with no
learning-rate schedule. Benchmark 1 measures the Trainer's own cost.
"""

from __future__ import annotations

import torch

from seqkit.run import Built
from seqkit.task import Task


def train_step(
    task: Task, built: Built, optimizer: torch.optim.Optimizer, batch: dict
) -> tuple[float, int]:
    """Run one optimizer step of `built.model` on `batch` with `task`'s loss.

    Returns the loss and the number of target tokens, `<eos>` included.
    """
    loss, tokens = task.loss(built.model, batch)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    clip = built.recipe.train.clip
    if clip > 0:
        torch.nn.utils.clip_grad_norm_(built.model.parameters(), clip)
    optimizer.step()
    return loss.item(), tokens


def train_batches(built: Built, steps: int) -> list[dict]:
    """Return the task's first `steps` training batches, in the Trainer's order."""
    per_epoch = built.task.steps_per_epoch()
    return [built.task.train_batch(*divmod(step, per_epoch)) for step in range(steps)]
