"""The `diacritics` data source: French texts without accents, to restore them.

The texts are the translated strings (msgstr) of the compiled gettext catalogs
installed on the machine, such as /usr/share/locale/fr/LC_MESSAGES/*.mo.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from seqkit import BuildContext, DataSource, Example, Splits, hookimpl
from seqkit_builtins.gettext_catalogs import (
    CatalogKey,
    find_catalogs,
    hash_position,
    locale_folders,
    read_catalogs,
)

_LINE_BREAKS = re.compile(r"[\n\r\t]")
_SPACE_RUNS = re.compile(r" {2,}")


@dataclass
class DiacriticsOptions:
    roots: list[str] = field(
        default_factory=lambda: ["/usr/share/locale"],
        metadata={
            "path": True,
            "help": "folders that contain <language>/LC_MESSAGES/*.mo",
        },
    )
    language: str = field(
        default="fr", metadata={"help": "locale folder name under each root"}
    )
    exclude: list[str] = field(
        default_factory=lambda: ["iso_*"],
        metadata={"help": "glob patterns of catalog names (file stems) to skip"},
    )
    min_chars: int = field(
        default=8, metadata={"min": 1, "help": "drop shorter texts, in characters"}
    )
    max_chars: int = field(
        default=160, metadata={"min": 1, "help": "drop longer texts, in characters"}
    )
    max_examples: int | None = field(
        default=None,
        metadata={"min": 1, "help": "keep this many texts, chosen by hash"},
    )
    valid_fraction: float = field(default=0.05, metadata={"min": 0.0, "max": 0.5})
    test_fraction: float = field(default=0.05, metadata={"min": 0.0, "max": 0.5})


def strip_diacritics(text: str) -> str:
    """Remove the combining marks of `text`: NFD, drop the marks, then NFC."""
    decomposed = unicodedata.normalize("NFD", text)
    bases = "".join(c for c in decomposed if not unicodedata.combining(c))
    return unicodedata.normalize("NFC", bases)


def clean_text(text: str) -> str:
    """Apply NFC, turn newlines and tabs into spaces, and collapse runs of spaces.

    Non-breaking spaces, which French typography puts before `:` and inside
    quotes, stay as they are.
    """
    text = unicodedata.normalize("NFC", text)
    text = _SPACE_RUNS.sub(" ", _LINE_BREAKS.sub(" ", text))
    return text.strip(" ")


def make_example(text: str) -> Example | None:
    """Pair `text` (the target) with its stripped form (the source).

    Returns None when stripping changes the length, because the tagging task
    needs one source character per target character. That happens when a
    combining mark has no precomposed form with its letter, as in "z̧".
    """
    source = strip_diacritics(text)
    if len(source) != len(text):
        return None
    return Example(target=text, source=source)


def catalog_texts(catalog: dict[CatalogKey, str]) -> list[str]:
    """Return every msgstr of a catalog, plural forms included.

    The header entry (empty msgid) is left out.
    """
    texts = []
    for key, value in catalog.items():
        # Plural entries are stored under (msgid, index) keys.
        msgid = key[0] if isinstance(key, tuple) else key
        if msgid:
            texts.append(value)
    return texts


class DiacriticsSource(DataSource):
    """French texts from gettext catalogs, with accents stripped from the source.

    Each example's target is a cleaned msgstr and its source the same text
    without combining marks, character for character. Texts are deduplicated,
    filtered by length and split by a SHA-256 hash of the text, so a text lands
    in the same split whatever catalogs are installed next to it.
    """

    Options = DiacriticsOptions
    task = "tagging"

    def __init__(self, options: DiacriticsOptions, context: BuildContext):
        self.options = options
        self.base_dir = context.base_dir
        self.recipe_file = context.recipe_file

    def folders(self) -> list[Path]:
        """Return the LC_MESSAGES folder under each root."""
        return locale_folders(
            self.base_dir, self.options.roots, self.options.language, self.recipe_file
        )

    def catalog_files(self) -> list[Path]:
        """Return the .mo files of every folder, minus the excluded names."""
        return find_catalogs(
            self.folders(), self.options.exclude, self.options.language
        )

    def check(self) -> None:
        self.catalog_files()

    def read_texts(self) -> list[str]:
        """Read, clean and deduplicate the texts of every catalog, in file order."""
        texts: dict[str, None] = {}
        for _, catalog in read_catalogs(self.catalog_files()):
            for raw in catalog_texts(catalog):
                texts[clean_text(raw)] = None
        return list(texts)

    def keep(self, text: str) -> bool:
        """Return True for texts within the length range that contain a letter."""
        options = self.options
        if not options.min_chars <= len(text) <= options.max_chars:
            return False
        return any(c.isalpha() for c in text)

    def load(self) -> Splits:
        examples = []
        for text in self.read_texts():
            if self.keep(text) and (example := make_example(text)) is not None:
                examples.append(example)
        if self.options.max_examples is not None:
            examples.sort(key=lambda e: hash_position(e.target, b"subset"))
            examples = examples[: self.options.max_examples]
        return self.split(examples)

    def split(self, examples: list[Example]) -> Splits:
        """Assign each example to a split by the hash of its target text."""
        splits = Splits([], [], [])
        test_end = self.options.test_fraction
        valid_end = test_end + self.options.valid_fraction
        for example in sorted(examples, key=lambda e: e.target):
            position = hash_position(example.target, b"split")
            if position < test_end:
                splits.test.append(example)
            elif position < valid_end:
                splits.valid.append(example)
            else:
                splits.train.append(example)
        return splits


@hookimpl
def seqkit_add_data_sources() -> dict[str, type]:
    return {"diacritics": DiacriticsSource}
