"""The training loop: optimizer, schedule, validation, early stopping, checkpoints."""

from __future__ import annotations

import logging
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from seqkit.checkpoint import load_checkpoint, save_checkpoint
from seqkit.distributed import SINGLE, Shard, gather, sum_across
from seqkit.errors import RecipeError, TrainingError
from seqkit.model import SequenceModel
from seqkit.monitor import Monitor
from seqkit.recipe import TrainOptions
from seqkit.task import Batch, Task

log = logging.getLogger(__name__)

BEST = "checkpoint.pt"
LAST = "last.pt"


@dataclass
class TrainState:
    """Counters that a checkpoint stores next to the weights."""

    step: int = 0
    best_loss: float = math.inf
    best_step: int = 0
    stale_evaluations: int = 0
    history: dict[str, list[float]] = field(
        default_factory=lambda: {
            "step": [],
            "loss": [],
            "lr": [],
            "val_step": [],
            "val_loss": [],
        }
    )


def build_optimizer(
    model: torch.nn.Module, options: TrainOptions
) -> torch.optim.Optimizer:
    """Create the optimizer named by `train.optimizer`."""
    params = [p for p in model.parameters() if p.requires_grad]
    if options.optimizer == "adamw":
        return torch.optim.AdamW(
            params, lr=options.lr, weight_decay=options.weight_decay
        )
    if options.optimizer == "adam":
        return torch.optim.Adam(params, lr=options.lr)
    return torch.optim.SGD(
        params, lr=options.lr, momentum=0.9, weight_decay=options.weight_decay
    )


def lr_factor(step: int, total: int, options: TrainOptions) -> float:
    """Return the learning-rate factor for `step` of `total`: warm-up, then decay."""
    if step < options.warmup_steps:
        return (step + 1) / options.warmup_steps
    if options.schedule == "constant":
        return 1.0
    span = max(1, total - options.warmup_steps)
    progress = min(1.0, (step - options.warmup_steps) / span)
    if options.schedule == "linear":
        return 1.0 - progress
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def resolve_device(name: str) -> torch.device:
    """Turn `train.device` into a torch device, checking that CUDA is present."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RecipeError(
            'device "cuda" requested but torch finds no CUDA device; '
            'use "cpu" or "auto"',
            key="train.device",
        )
    return torch.device(name)


class TaskLoss(nn.Module):
    """The task's training loss as a module, the form DistributedDataParallel wraps."""

    def __init__(self, model: SequenceModel, task: Task):
        super().__init__()
        self.model = model
        self.task = task

    def forward(self, batch: Batch) -> tuple[Tensor, int]:
        return self.task.loss(self.model, batch)


class Trainer:
    """Trains `model` on `task` and keeps the best and last checkpoints in `run_dir`.

    `extra` is stored in every checkpoint (vocabularies, the resolved recipe).
    With a `shard` of several processes, each trains on its rows of every
    batch under DistributedDataParallel and only the main one writes files.
    `monitor` receives the losses, learning rate and validation losses.
    """

    def __init__(
        self,
        model: SequenceModel,
        task: Task,
        options: TrainOptions,
        run_dir: Path,
        extra: dict[str, Any],
        shard: Shard = SINGLE,
        monitor: Monitor | None = None,
    ):
        self.model = model
        self.task = task
        self.options = options
        self.run_dir = Path(run_dir)
        self.extra = extra
        self.shard = shard
        self.monitor = monitor
        self.device = next(model.parameters()).device
        task.shard = shard
        if options.compile:
            compile_model(model)
        self.loss_module: nn.Module = TaskLoss(model, task)
        if shard.distributed:
            self.loss_module = DistributedDataParallel(
                self.loss_module,
                device_ids=[self.device.index] if self.device.type == "cuda" else None,
            )
        self.optimizer = build_optimizer(model, options)
        self.total_steps = options.epochs * task.steps_per_epoch()
        if options.max_steps is not None:
            self.total_steps = min(self.total_steps, options.max_steps)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda step: lr_factor(step, self.total_steps, options)
        )
        self.state = TrainState()

    # ------------------------------------------------------------ checkpoints

    def payload(self) -> dict[str, Any]:
        """Return everything needed to continue training exactly.

        With several processes every rank must call it at the same step: it
        gathers each rank's random state, since their dropout masks differ.
        """
        rng = {"torch": torch.get_rng_state()}
        if torch.cuda.is_available():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        if self.shard.distributed:
            rng["ranks"] = gather(torch.get_rng_state(), self.shard)
        return {
            **self.extra,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "rng": rng,
            "train_state": {
                "step": self.state.step,
                "best_loss": self.state.best_loss,
                "best_step": self.state.best_step,
                "stale_evaluations": self.state.stale_evaluations,
                "history": self.state.history,
            },
        }

    def save(self, name: str) -> None:
        """Write the training state to `run_dir/name` from the main process."""
        payload = self.payload()
        if self.shard.is_main:
            save_checkpoint(payload, self.run_dir / name)

    def restore(self, path: Path) -> None:
        """Load model, optimizer, scheduler, RNG and counters from `path`."""
        payload = load_checkpoint(path, map_location=self.device)
        self.model.load_state_dict(payload["model"])
        self.optimizer.load_state_dict(payload["optimizer"])
        self.scheduler.load_state_dict(payload["scheduler"])
        rng = payload["rng"]
        ranks = rng.get("ranks", [])
        if self.shard.distributed and len(ranks) == self.shard.world_size:
            torch.set_rng_state(ranks[self.shard.rank].cpu())
        else:
            torch.set_rng_state(rng["torch"].cpu())
        if "cuda" in rng and torch.cuda.is_available():
            torch.cuda.set_rng_state_all([s.cpu() for s in rng["cuda"]])
        counters = payload["train_state"]
        self.state = TrainState(
            step=counters["step"],
            best_loss=counters["best_loss"],
            best_step=counters["best_step"],
            stale_evaluations=counters["stale_evaluations"],
            history={k: list(v) for k, v in counters["history"].items()},
        )
        log.info("resumed from %s at step %d", path, self.state.step)

    # ------------------------------------------------------------ loop

    def fit(
        self, stop_at: int | None = None, on_step: Callable[[int], None] | None = None
    ) -> TrainState:
        """Train until `total_steps`, early stopping or `stop_at`, whichever is first.

        Returns the counters; the best weights are in `run_dir/checkpoint.pt`
        and the latest in `run_dir/last.pt`.
        """
        options = self.options
        steps_per_epoch = self.task.steps_per_epoch()
        end = self.total_steps if stop_at is None else min(stop_at, self.total_steps)
        eval_every = options.eval_every or steps_per_epoch
        if self.state.step >= self.total_steps:
            log.warning(
                "the run is already at step %d, and train.epochs and "
                "train.max_steps now end training at step %d; nothing is trained. "
                "Raise them to train further",
                self.state.step,
                self.total_steps,
            )
        show_progress = sys.stderr.isatty() and self.shard.is_main
        progress = _Progress(end) if show_progress else None
        log.info(
            "training for %d steps (%d per epoch, batch %d) on %s%s",
            self.total_steps,
            steps_per_epoch,
            options.batch_size,
            self.device,
            f" in {self.shard.world_size} processes" if self.shard.distributed else "",
        )
        window_tokens, window_start = 0, time.perf_counter()
        while self.state.step < end:
            step = self.state.step
            epoch, index = divmod(step, steps_per_epoch)
            self.model.train()

            # forward
            batch = {
                k: v.to(self.device)
                for k, v in self.task.train_batch(epoch, index).items()
            }
            with self._autocast():
                loss, tokens = self.loss_module(batch)
            loss_value, tokens = self._reduce(loss, tokens)
            if not math.isfinite(loss_value):
                raise TrainingError(self._diverged_message(loss_value, step + 1))

            # backward, clip, step
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if options.clip > 0:
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), options.clip)
            lr = self.optimizer.param_groups[0]["lr"]
            self.optimizer.step()
            self.scheduler.step()
            self.state.step = step + 1

            # log
            self.state.history["step"].append(self.state.step)
            self.state.history["loss"].append(loss_value)
            self.state.history["lr"].append(lr)
            window_tokens += tokens
            if self.monitor is not None:
                self.monitor.scalars(
                    self.state.step, {"train/loss": loss_value, "train/lr": lr}
                )
            if progress is not None:
                progress.update(self.state.step, loss_value)
            if self.state.step % options.log_every == 0 or self.state.step == end:
                elapsed = time.perf_counter() - window_start
                log.info(
                    "step %d/%d | epoch %d | loss %.4f | %.0f tokens/s | lr %.3e",
                    self.state.step,
                    self.total_steps,
                    epoch + 1,
                    loss_value,
                    window_tokens / max(elapsed, 1e-9),
                    lr,
                )
                window_tokens, window_start = 0, time.perf_counter()
            if on_step is not None:
                on_step(self.state.step)

            # validate and checkpoint
            finished = self.state.step == self.total_steps
            if self.state.step % eval_every == 0 or finished:
                if self._validate():
                    break
                # keep validation time out of the next tokens/s figure
                window_start = time.perf_counter()
            elif every := options.checkpoint_every:
                if self.state.step % every == 0:
                    self.save(LAST)
        if progress is not None:
            progress.close()
        self.save(LAST)
        if self.state.best_step == 0:
            # No validation improved on the start (none ran, or the loss was
            # not finite): keep the latest weights as the best.
            self.save(BEST)
        return self.state

    def _diverged_message(self, loss: float, step: int) -> str:
        best = self.run_dir / BEST
        if self.state.best_step:
            kept = f"{best} keeps the best weights, from step {self.state.best_step}"
        else:
            kept = "no checkpoint was saved"
        return (
            f"training loss became {loss} at step {step}; training stopped and "
            f"{kept}. Lower train.lr or set train.clip, and check that the input "
            "data and any loaded weights are finite numbers"
        )

    def _autocast(self) -> torch.autocast:
        """Autocast to bfloat16 under `train.precision = "bf16"`, else a no-op."""
        return torch.autocast(
            self.device.type,
            dtype=torch.bfloat16,
            enabled=self.options.precision == "bf16",
        )

    def _reduce(self, loss: Tensor, tokens: int) -> tuple[float, int]:
        """Return the loss averaged over ranks and the tokens read by all ranks."""
        loss_sum, token_sum = sum_across([loss.item(), tokens], self.shard)
        return loss_sum / self.shard.world_size, int(token_sum)

    def _validate(self) -> bool:
        """Validate, save checkpoints, and return True when early stopping fires.

        With several processes each evaluates its share of the batches and
        the loss is summed over all of them, so every rank takes the same
        early-stopping decision.
        """
        with self._autocast():
            result = self.task.evaluate(
                self.model, "valid", self.options.eval_batches, decode=False
            )
        weighted, tokens = sum_across(
            [result.loss * result.tokens, result.tokens], self.shard
        )
        val_loss = weighted / max(tokens, 1)
        self.state.history["val_step"].append(self.state.step)
        self.state.history["val_loss"].append(val_loss)
        improved = val_loss < self.state.best_loss
        if improved:
            self.state.best_loss = val_loss
            self.state.best_step = self.state.step
            self.state.stale_evaluations = 0
        else:
            self.state.stale_evaluations += 1
        log.info(
            "validation at step %d | val_loss %.4f | best %.4f at step %d",
            self.state.step,
            val_loss,
            self.state.best_loss,
            self.state.best_step,
        )
        if self.monitor is not None:
            self.monitor.scalars(self.state.step, {"valid/loss": val_loss})
        payload = self.payload()
        if self.shard.is_main:
            if improved:
                save_checkpoint(payload, self.run_dir / BEST)
            save_checkpoint(payload, self.run_dir / LAST)
        patience = self.options.patience
        if patience is not None and self.state.stale_evaluations >= patience:
            log.info("early stopping: no improvement in %d validations", patience)
            return True
        return False


def compile_model(model: SequenceModel) -> None:
    """Compile the encoder and decoder in place with torch.compile.

    In place, so the parameter names, and the checkpoints, stay those of the
    uncompiled model.
    """
    for module in (model.encoder, model.decoder):
        if module is not None:
            module.compile()


class _Progress:
    """A one-line progress bar on stderr, shown only on a terminal."""

    def __init__(self, total: int):
        self.total = max(total, 1)
        self.start = time.perf_counter()

    def update(self, step: int, loss: float) -> None:
        width = 30
        done = int(width * step / self.total)
        elapsed = time.perf_counter() - self.start
        bar = "#" * done + "-" * (width - done)
        sys.stderr.write(
            f"\r[{bar}] {step}/{self.total} loss {loss:.4f} {elapsed:.0f}s"
        )
        sys.stderr.flush()

    def close(self) -> None:
        sys.stderr.write("\n")
        sys.stderr.flush()
