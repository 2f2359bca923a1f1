"""The build context: the values a component may need when it is built."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seqkit.vocab import Vocabulary


@dataclass
class BuildContext:
    """Passed to every component class as `cls(options, context)`.

    base_dir: the recipe's folder; relative paths in options resolve against it.
    vocab: the target vocabulary, once it exists (None while data loads).
    source_vocab: the source vocabulary for models with a token encoder.
    encoder_size: the width H of the encoder's summary and memory, if any.
    attention: the recipe's `[attention]` component (plugin, cls, options),
    which a decoder builds with `attention.cls(attention.options, query_size,
    memory_size)`; None when the recipe has no `[attention]`.
    """

    base_dir: Path
    recipe_file: str | None = None
    vocab: Vocabulary | None = None
    source_vocab: Vocabulary | None = None
    encoder_size: int | None = None
    attention: Any = None
    # True when a checkpoint's weights will replace the initial ones, so a
    # component skips loading pretrained weights from their file.
    restoring: bool = False
