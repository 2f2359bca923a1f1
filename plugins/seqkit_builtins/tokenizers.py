"""Character-level, word-level and whitespace tokenizers."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from seqkit import BuildContext, Tokenizer, Vocabulary, hookimpl

Language = Literal["generic", "en", "fr", "de", "es", "it"]


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
    language: Language = field(
        default="generic",
        metadata={
            "help": "splitting and joining rules; generic keeps contractions whole, "
            "en, fr, de, es and it split contractions or elisions and space "
            "punctuation and quotes as that language does"
        },
    )


@dataclass
class WhitespaceOptions:
    lowercase: bool = False
    min_count: int = field(
        default=1, metadata={"min": 1, "help": "rarer tokens become <unk>"}
    )
    max_size: int | None = field(
        default=None, metadata={"min": 5, "help": "keep the most frequent tokens only"}
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
    """Words and punctuation marks as tokens; newlines are kept as tokens.

    With `language` other than "generic", the rules of `_LANGUAGE_RULES` apply.
    """

    Options = WordOptions
    level = "word"

    def __init__(
        self, options: WordOptions | None = None, context: BuildContext | None = None
    ):
        self.options = options if options is not None else WordOptions()
        self.rules = _LANGUAGE_RULES.get(self.options.language)

    def tokenize(self, text: str) -> list[str]:
        if self.options.lowercase:
            text = text.lower()
        if self.rules is None:
            return _WORD.findall(text)
        return self.rules.tokenize(text)

    def detokenize(self, tokens: Sequence[str]) -> str:
        if self.rules is not None:
            return self.rules.detokenize(tokens)
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


class WhitespaceTokenizer(Tokenizer):
    """The runs of non-space characters as tokens, joined again by single spaces.

    For text that is already tokenised and for phone sequences such as "K AE1 T".
    """

    Options = WhitespaceOptions
    level = "word"

    def __init__(self, options: WhitespaceOptions, context: BuildContext | None = None):
        self.options = options

    def tokenize(self, text: str) -> list[str]:
        if self.options.lowercase:
            text = text.lower()
        return text.split()

    def detokenize(self, tokens: Sequence[str]) -> str:
        return " ".join(tokens)

    def build_vocabulary(self, texts: Iterable[str]) -> Vocabulary:
        return Vocabulary.from_texts(
            (self.tokenize(t) for t in texts),
            min_count=self.options.min_count,
            max_size=self.options.max_size,
        )


# Tokens of the language rules, tried in this order:
# - a newline;
# - a printf directive ("%s", "%2$u", "%-10.3lf"), kept whole because message
#   catalogs are full of them;
# - a word or number. Inner apostrophes, hyphens, periods, colons, slashes and
#   at signs join its parts ("l'homme", "peut-être", "file.txt", "3.5", "E/S",
#   "10:30", "a@b.org"), and commas join digits ("1,000"). Unless it follows a
#   word character, it may start with one or two hyphens, a period or a slash
#   ("-8", "--help", ".gitignore", "/tmp"). It may end with a hyphen before a
#   space or comma (German "Ein- und Ausgabe"), plus signs ("C++") or one or
#   two letters or digits in brackets ("file(s)", "grep(1)");
# - a run of one punctuation character ("...", "--", "**");
# - any other character.
# Text must be in NFC, as `seqkit.text.normalize` leaves it, because \w does not
# match combining marks.
_LANGUAGE_TOKEN = re.compile(
    r"""\n
    | %(?:\d+\$)?[-+\#0]*(?:\d+|\*)?(?:\.(?:\d+|\*))?(?:hh|h|ll|l|L|q|j|z|t)?
      [diouxXeEfFgGaAcspm%]
    | (?:(?<![\w./-])(?:-{1,2}|[./]))?
      \w+(?:(?:['’./:@-]|(?<=\d),(?=\d))\w+)*
      (?:-(?=[\s,]|$)|\++(?!\w)|\(\w{1,2}\)(?!\w))?
    | ([^\w\s])\1+
    | \S""",
    re.VERBOSE,
)


@dataclass(frozen=True)
class LanguageRules:
    """The rules of one language for splitting words and spacing punctuation.

    elision: the elided words split off the front of a word with their
    apostrophe ("l'" of "l'homme"). They join the next token.
    contraction: the clitics split off the end of a word ("n't" of "don't").
    They join the previous token.
    joins_previous: punctuation written without a space before it.
    joins_next: punctuation written without a space after it.
    quotes: quote marks that open and close with the same character, such as
    '"', or pairs that a language uses both ways round (German » and «). The
    odd occurrences in a text open a quotation and join the next token, the
    even ones close it and join the previous token.
    possessive_apostrophe: an apostrophe after a word ending in s joins that
    word when it cannot be part of a quotation (English "the users' files").
    """

    elision: re.Pattern[str] | None = None
    contraction: re.Pattern[str] | None = None
    joins_previous: frozenset[str] = frozenset()
    joins_next: frozenset[str] = frozenset()
    quotes: tuple[frozenset[str], ...] = ()
    possessive_apostrophe: bool = False

    def tokenize(self, text: str) -> list[str]:
        tokens: list[str] = []
        for match in _LANGUAGE_TOKEN.finditer(text):
            tokens.extend(self._split_word(match.group()))
        return tokens

    def _split_word(self, token: str) -> list[str]:
        pieces = []
        if self.elision is not None:
            while (match := self.elision.match(token)) and match.end() < len(token):
                pieces.append(match.group())
                token = token[match.end() :]
        match = self.contraction.search(token) if self.contraction else None
        if match and match.start() > 0:
            pieces.extend([token[: match.start()], match.group()])
        else:
            pieces.append(token)
        return pieces

    def detokenize(self, tokens: Sequence[str]) -> str:
        pieces: list[str] = []
        open_quotes = [False] * len(self.quotes)
        joins_next = True  # no space before the first token
        for index, token in enumerate(tokens):
            joins_previous, next_joins = self._attachment(tokens, index, open_quotes)
            if not (joins_next or joins_previous):
                pieces.append(" ")
            pieces.append(token)
            joins_next = next_joins
        return "".join(pieces)

    def _attachment(
        self, tokens: Sequence[str], index: int, open_quotes: list[bool]
    ) -> tuple[bool, bool]:
        """Return whether `tokens[index]` joins the previous token and the next one.

        Updates `open_quotes` when the token is a quote mark.
        """
        token = tokens[index]
        if token == "\n":
            return True, True
        for group_index, group in enumerate(self.quotes):
            if token not in group:
                continue
            if self._is_possessive(tokens, index, open_quotes[group_index]):
                return True, False
            open_quotes[group_index] = not open_quotes[group_index]
            return not open_quotes[group_index], open_quotes[group_index]
        if token in self.joins_previous:
            return True, False
        if token in self.joins_next:
            return False, True
        if self.elision is not None and self.elision.fullmatch(token):
            return False, True
        if self.contraction is not None and self.contraction.fullmatch(token):
            return True, False
        return False, False

    def _is_possessive(self, tokens: Sequence[str], index: int, quoting: bool) -> bool:
        """Return True for the apostrophe of a plural possessive ("the users' files").

        That is an apostrophe after a word ending in s that does not close a
        quotation and is followed by an even number of apostrophes, so none is
        left to close a quotation it would open.
        """
        token = tokens[index]
        return (
            self.possessive_apostrophe
            and token in ("'", "’")
            and not quoting
            and index > 0
            and tokens[index - 1][-1:] in ("s", "S")
            and tokens[index + 1 :].count(token) % 2 == 0
        )


_CLOSING = frozenset({".", ",", ")", "]", "}", "...", "…", "\n"})
_OPENING = frozenset({"(", "[", "{", "\n"})
_STRAIGHT_QUOTES = (frozenset({'"'}), frozenset({"'"}))
# Closing marks that English, German, Spanish and Italian write without a space
# before. French typography puts a space before them.
_HIGH_PUNCTUATION = frozenset({":", ";", "!", "?", "%"})

_LANGUAGE_RULES: dict[str, LanguageRules] = {
    "en": LanguageRules(
        # Split as the Moses tokenizer does: "don't" -> "do n't", "it's" -> "it 's".
        contraction=re.compile(r"(?i)(?:n['’]t|['’](?:s|re|ll|ve|m|d))$"),
        joins_previous=_CLOSING | _HIGH_PUNCTUATION | {"”", "’"},
        joins_next=_OPENING | {"“", "‘"},
        quotes=_STRAIGHT_QUOTES,
        possessive_apostrophe=True,
    ),
    "fr": LanguageRules(
        # "l'", "qu'", "jusqu'", ... but not "aujourd'" or "quelqu'".
        elision=re.compile(r"(?i)(?:[cdjlmnst]|qu|jusqu|lorsqu|puisqu|quoiqu)['’]"),
        joins_previous=_CLOSING | {"”"},
        joins_next=_OPENING | {"“"},
        quotes=_STRAIGHT_QUOTES,
    ),
    "de": LanguageRules(
        joins_previous=_CLOSING | _HIGH_PUNCTUATION | {"“", "‘"},
        joins_next=_OPENING | {"„", "‚"},
        quotes=(*_STRAIGHT_QUOTES, frozenset({"»", "«"})),
    ),
    "es": LanguageRules(
        joins_previous=_CLOSING | _HIGH_PUNCTUATION | {"»", "”", "’"},
        joins_next=_OPENING | {"¿", "¡", "«", "“", "‘"},
        quotes=_STRAIGHT_QUOTES,
    ),
    "it": LanguageRules(
        # "l'", "dell'", "un'", "c'", ... at the front of the next word.
        elision=re.compile(
            r"(?i)(?:[cdlmnstv]|gl|un|dell|dall|nell|sull|all|coll|quest|quell"
            r"|anch|nessun|ciascun|qualcun|tutt|sant|buon)['’]"
        ),
        joins_previous=_CLOSING | _HIGH_PUNCTUATION | {"»", "”", "’"},
        joins_next=_OPENING | {"«", "“", "‘"},
        quotes=_STRAIGHT_QUOTES,
    ),
}


@hookimpl
def seqkit_add_tokenizers() -> dict[str, type]:
    return {
        "char": CharTokenizer,
        "word": WordTokenizer,
        "whitespace": WhitespaceTokenizer,
    }
