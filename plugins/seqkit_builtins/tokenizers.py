"""Character-level and word-level tokenizers."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from seqkit import BuildContext, Tokenizer, Vocabulary, hookimpl


@dataclass
class CharOptions:
    min_count: int = field(
        default=1, metadata={"min": 1, "help": "rarer characters become <unk>"}
    )


@dataclass
class WordOptions:
    lowercase: bool = False
    min_count: int = field(
        default=1, metadata={"min": 1, "help": "rarer words become <unk>"}
    )
    max_size: int | None = field(
        default=None, metadata={"min": 5, "help": "keep the most frequent words only"}
    )


class CharTokenizer(Tokenizer):
    """One token per Unicode character (after NFC), newlines included."""

    Options = CharOptions
    level = "char"

    def __init__(self, options: CharOptions, context: BuildContext | None = None):
        self.options = options

    def tokenize(self, text: str) -> list[str]:
        return list(text)

    def detokenize(self, tokens: Sequence[str]) -> str:
        return "".join(tokens)

    def build_vocabulary(self, texts: Iterable[str]) -> Vocabulary:
        return Vocabulary.from_texts(
            (self.tokenize(t) for t in texts), min_count=self.options.min_count
        )


# A newline, a word with inner apostrophes or hyphens ("o'er", "self-same") and
# an optional leading apostrophe ("'tis"), a dash ("--"), or one punctuation
# character.
_WORD = re.compile(r"\n|['’]?\w+(?:['’-]\w+)*|-{2,}|[^\w\s]")
_NO_SPACE_BEFORE = set(".,;:!?)]}'’\n")
_NO_SPACE_AFTER = set("([{\n")


def _joins(previous: str, token: str) -> bool:
    """Return True when `token` follows the token `previous` without a space."""
    if token in _NO_SPACE_BEFORE or previous[-1] in _NO_SPACE_AFTER:
        return True
    # Dashes join the words on both sides, as in "him--from".
    return token[0] == "-" or previous[-1] == "-"


class WordTokenizer(Tokenizer):
    """Words and punctuation marks as tokens; newlines are kept as tokens."""

    Options = WordOptions
    level = "word"

    def __init__(self, options: WordOptions, context: BuildContext | None = None):
        self.options = options

    def tokenize(self, text: str) -> list[str]:
        if self.options.lowercase:
            text = text.lower()
        return _WORD.findall(text)

    def detokenize(self, tokens: Sequence[str]) -> str:
        pieces: list[str] = []
        for token in tokens:
            if pieces and not _joins(pieces[-1], token):
                pieces.append(" ")
            pieces.append(token)
        return "".join(pieces)

    def build_vocabulary(self, texts: Iterable[str]) -> Vocabulary:
        return Vocabulary.from_texts(
            (self.tokenize(t) for t in texts),
            min_count=self.options.min_count,
            max_size=self.options.max_size,
        )


@hookimpl
def seqkit_add_tokenizers() -> dict[str, type]:
    return {"char": CharTokenizer, "word": WordTokenizer}
