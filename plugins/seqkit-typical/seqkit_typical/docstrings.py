"""The `docstrings` data source: the docstrings of the Python standard library.

Every Python installation ships the standard library's source files, so this
corpus is on every machine that runs seqkit and needs no download. The files
are parsed with `ast`, never imported, so modules with import-time side
effects (`antigravity` opens a browser) are read safely.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import logging
import sysconfig
from dataclasses import dataclass, field
from pathlib import Path

from seqkit import BuildContext, DataError, DataSource, Example, Splits
from seqkit.errors import suggest
from seqkit.text import normalize

log = logging.getLogger(__name__)

# Folders inside standard-library packages that contain test code and data,
# including Python 2 files that do not parse.
TEST_FOLDERS = frozenset({"test", "tests", "idle_test"})
# Top-level entries that are never read: the regression test suite and the
# folders where installed packages live.
EXCLUDED_TOP_LEVEL = frozenset({"test", "site-packages", "dist-packages"})


@dataclass
class DocstringsOptions:
    modules: list[str] = field(
        default_factory=list,
        metadata={
            "help": "top-level standard-library modules or packages such as "
            "'json'; empty: every module whose name does not start with _"
        },
    )
    min_chars: int = field(
        default=20,
        metadata={"min": 1, "help": "skip docstrings shorter than this"},
    )
    max_examples: int | None = field(
        default=None,
        metadata={"min": 1, "help": "keep this many docstrings, chosen by hash"},
    )
    valid_fraction: float = field(
        default=0.05,
        metadata={"min": 0.0, "max": 0.5, "help": "share of docstrings to validate"},
    )
    test_fraction: float = field(
        default=0.05,
        metadata={"min": 0.0, "max": 0.5, "help": "share of docstrings to test"},
    )


def stdlib_folder() -> Path:
    """Return the folder of the running Python's standard library."""
    folder = Path(sysconfig.get_paths()["stdlib"])
    if not (folder / "os.py").is_file():
        raise DataError(
            f"the standard library's source files are not installed at {folder} "
            "(os.py is missing); the docstrings data source needs them"
        )
    return folder


def top_level_modules(folder: Path) -> dict[str, Path]:
    """Return every top-level module of `folder` by name: a .py file or a package."""
    modules = {}
    for path in sorted(folder.iterdir()):
        if path.name in EXCLUDED_TOP_LEVEL:
            continue
        if path.suffix == ".py" and path.is_file():
            modules[path.stem] = path
        elif (path / "__init__.py").is_file():
            modules[path.name] = path
    return modules


def module_files(path: Path) -> list[Path]:
    """Return the .py files of a module or package, leaving out test folders."""
    if path.is_file():
        return [path]
    return [
        file
        for file in sorted(path.rglob("*.py"))
        if not TEST_FOLDERS.intersection(file.relative_to(path).parts[:-1])
    ]


@functools.cache
def read_docstrings(path: Path) -> tuple[str, ...] | None:
    """Return the docstrings of a module, its classes and functions, in file order.

    Returns None when the file does not parse. Files are cached for the
    life of the process, because the whole library takes seconds to parse.
    """
    try:
        tree = ast.parse(path.read_bytes(), filename=str(path))
    except (SyntaxError, ValueError) as error:
        log.warning("skipped %s, which does not parse: %s", path, error)
        return None
    nodes = [tree] + [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
    ]
    nodes.sort(key=lambda node: getattr(node, "lineno", 0))
    texts = []
    for node in nodes:
        # clean=True removes the indentation that follows the first line.
        text = ast.get_docstring(node, clean=True)
        if text:
            texts.append(normalize(text))
    return tuple(texts)


def hash_position(text: str, salt: bytes) -> float:
    """Map `text` to a number in [0, 1) that is the same in every process."""
    digest = hashlib.sha256(salt + text.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def split_by_hash(
    texts: list[str], valid_fraction: float, test_fraction: float
) -> Splits:
    """Assign each text to a split by a SHA-256 hash of the text itself.

    A text's split depends only on its content, so it is the same whatever
    other texts are loaded with it. Each split keeps the input order. Raises
    `DataError` when a split whose fraction is above 0 is left empty.
    """
    splits = Splits([], [], [])
    for text in texts:
        position = hash_position(text, b"split")
        if position < test_fraction:
            splits.test.append(Example(target=text))
        elif position < test_fraction + valid_fraction:
            splits.valid.append(Example(target=text))
        else:
            splits.train.append(Example(target=text))
    for name, fraction in (
        ("train", 1.0),
        ("valid", valid_fraction),
        ("test", test_fraction),
    ):
        if fraction > 0 and not splits.named(name):
            raise DataError(
                f"no docstring fell into the {name} split: {len(texts)} docstrings, "
                f"valid_fraction {valid_fraction}, test_fraction {test_fraction}; "
                "list more data.modules, raise data.max_examples or change the "
                "fractions (0 leaves valid or test empty)"
            )
    return splits


class DocstringsSource(DataSource):
    """Docstrings of the standard library's modules, one example each.

    Each docstring of a module, class, function or method becomes one
    document for the language model, cleaned as `inspect.cleandoc` does.
    Identical docstrings are kept once. `max_examples` keeps those whose text
    hashes lowest, and a SHA-256 hash of the text picks its split, so the
    splits are the same on every machine with the same Python version.
    """

    Options = DocstringsOptions
    task = "language-model"

    def __init__(self, options: DocstringsOptions, context: BuildContext):
        self.options = options

    def selected_modules(self) -> dict[str, Path]:
        """Return the modules to read by name; raise `DataError` for unknown ones."""
        folder = stdlib_folder()
        available = top_level_modules(folder)
        if not self.options.modules:
            return {
                name: path
                for name, path in available.items()
                if not name.startswith("_")
            }
        for index, name in enumerate(self.options.modules):
            if name not in available:
                raise DataError(
                    f"`data.modules[{index}]`: {name!r} is not a top-level module "
                    f"of the standard library.{suggest(name, available)} The "
                    f"modules are the .py files and packages in {folder}."
                )
        return {name: available[name] for name in self.options.modules}

    def check(self) -> None:
        self.selected_modules()

    def load(self) -> Splits:
        options = self.options
        texts: dict[str, None] = {}
        files = skipped = 0
        for path in self.selected_modules().values():
            for file in module_files(path):
                files += 1
                docstrings = read_docstrings(file)
                if docstrings is None:
                    skipped += 1
                    continue
                for text in docstrings:
                    if len(text) >= options.min_chars:
                        texts.setdefault(text)
        selected = list(texts)
        if options.max_examples is not None:
            lowest = sorted(selected, key=lambda text: hash_position(text, b"subset"))
            keep = set(lowest[: options.max_examples])
            selected = [text for text in selected if text in keep]
        log.info(
            "docstrings: %d distinct docstrings from %d files (%d skipped), %d kept",
            len(texts),
            files,
            skipped,
            len(selected),
        )
        return split_by_hash(selected, options.valid_fraction, options.test_fraction)
