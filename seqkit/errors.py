"""Errors caused by user input. The CLI prints them as one `error:` line."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class SeqkitError(Exception):
    """A problem with user input: a recipe, a plugin, a data file or a checkpoint."""


class RecipeError(SeqkitError):
    """An invalid recipe value, naming the file and the key path."""

    def __init__(self, message: str, file: str | None = None, key: str | None = None):
        where = ": ".join(part for part in (file, f"`{key}`" if key else None) if part)
        super().__init__(f"{where}: {message}" if where else message)
        self.file = file
        self.key = key


class PluginError(SeqkitError):
    """A plugin that failed to load, registered a duplicate, or was not found."""


class DataError(SeqkitError):
    """A data file that is missing or cannot be read."""


class CheckpointError(SeqkitError):
    """A checkpoint file that is missing, truncated or not written by seqkit."""


class TrainingError(SeqkitError):
    """Training that cannot go on, such as a loss that became NaN or infinite."""


def suggest(name: str, choices: Iterable[str]) -> str:
    """Return " Did you mean `x`?" for the nearest choice, or an empty string."""
    matches = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f" Did you mean `{matches[0]}`?" if matches else ""
