"""Plots written into the run folder."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 - the backend must be chosen first


def plot_loss(history: dict[str, list[float]], path: Path) -> None:
    """Draw training loss per step and validation loss per check into `path`."""
    figure, axis = plt.subplots(figsize=(7, 4))
    axis.plot(history["step"], history["loss"], label="train", linewidth=0.8)
    if history["val_step"]:
        axis.plot(history["val_step"], history["val_loss"], "o-", label="validation")
    axis.set_xlabel("step")
    axis.set_ylabel("cross-entropy (nats per token)")
    axis.legend()
    axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
