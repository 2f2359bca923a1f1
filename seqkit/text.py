"""Text normalisation applied to every input before tokenizing."""

from __future__ import annotations

import unicodedata


def normalize(text: str) -> str:
    """Drop a leading byte-order mark, turn CRLF and CR into LF, and apply NFC."""
    if text.startswith("\ufeff"):
        text = text[1:]
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return unicodedata.normalize("NFC", text)


def read_text(path) -> str:
    """Read a UTF-8 file and normalise it. Raises UnicodeDecodeError on bad bytes."""
    with open(path, encoding="utf-8", newline="") as handle:
        return normalize(handle.read())
