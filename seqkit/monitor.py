"""Monitoring a run while it trains: TensorBoard event files."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from seqkit.errors import RecipeError, SeqkitError


class Monitor(Protocol):
    """Receives a run's figures as it trains; the trainer calls it on one process."""

    def scalars(self, step: int, values: dict[str, float]) -> None:
        """Record named numbers, such as "train/loss", at optimizer step `step`."""

    def text(self, step: int, tag: str, text: str) -> None:
        """Record a text, such as sample outputs, at `step`."""

    def close(self) -> None:
        """Flush what is recorded to disk."""


def check_tensorboard() -> None:
    """Raise `RecipeError` for `train.tensorboard` when tensorboard is missing."""
    try:
        import torch.utils.tensorboard  # noqa: F401
    except ImportError:
        raise RecipeError(
            "true needs the tensorboard package, which is not installed; "
            "install it with `pip install tensorboard`, or set it to false",
            key="train.tensorboard",
        ) from None


class TensorBoardMonitor:
    """Writes TensorBoard event files under `log_dir` with torch.utils.tensorboard.

    `resume_step` is the step a resumed run starts from: events that an
    interrupted run wrote after it are dropped, so curves do not fold back.
    """

    def __init__(self, log_dir: Path, resume_step: int | None = None):
        check_tensorboard()
        from torch.utils.tensorboard import SummaryWriter

        purge_step = None if resume_step is None else resume_step + 1
        # A short flush interval also bounds how long closing can wait for the
        # writer thread after a Ctrl-C (up to the interval, 120 s by default).
        try:
            self.writer = SummaryWriter(
                str(log_dir), purge_step=purge_step, flush_secs=5
            )
        except OSError as error:
            raise SeqkitError(
                f"cannot write TensorBoard logs to {log_dir}: "
                f"{error.strerror or error}; move that path out of the way"
            ) from None

    def scalars(self, step: int, values: dict[str, float]) -> None:
        for tag, value in values.items():
            self.writer.add_scalar(tag, value, step)

    def text(self, step: int, tag: str, text: str) -> None:
        # TensorBoard renders text as Markdown; indenting it by four spaces
        # keeps line breaks and characters such as * and # as they are.
        block = "\n".join("    " + line for line in text.splitlines())
        self.writer.add_text(tag, block, step)

    def close(self) -> None:
        self.writer.close()
