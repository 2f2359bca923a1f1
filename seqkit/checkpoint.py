"""Writing checkpoints atomically and reading them without executing code."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from seqkit.errors import CheckpointError

FORMAT = "seqkit-checkpoint-1"


def save_checkpoint(payload: dict[str, Any], path: Path) -> None:
    """Write `payload` to `path` through a temporary file and a rename.

    A crash or Ctrl-C while writing leaves the previous file at `path` intact.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"
    )
    try:
        # mkstemp creates the file as 0600; give it the mode of any other file.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)
        with os.fdopen(handle, "wb") as file:
            torch.save({"format": FORMAT, **payload}, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def load_checkpoint(
    path: Path, map_location: str | torch.device = "cpu"
) -> dict[str, Any]:
    """Read a checkpoint with `weights_only=True`, so no code in it runs.

    Raises `CheckpointError` naming the path for a missing, truncated or
    foreign file.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # noqa: BLE001 - torch raises many types for bad files
        # torch's own message may advise weights_only=False, which is unsafe for
        # a file of unknown origin, so only the error type is shown.
        raise CheckpointError(
            f"cannot read checkpoint {path}: the file is truncated, corrupt or not a "
            f"seqkit checkpoint ({type(error).__name__}); train again or restore "
            "the file from a copy"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(
            f"{path} is not a seqkit checkpoint (expected format {FORMAT!r}); "
            "point to a run folder written by `seqkit run`"
        )
    return payload
