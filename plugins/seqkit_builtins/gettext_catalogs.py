"""Finding and reading the compiled gettext catalogs (.mo) that data sources use.

The `diacritics` and `gettext` data sources read the catalogs installed under
folders such as /usr/share/locale/<language>/LC_MESSAGES/*.mo.
"""

from __future__ import annotations

import fnmatch
import gettext
import hashlib
import logging
import struct
from pathlib import Path

from seqkit import DataError
from seqkit.paths import resolve_inside

log = logging.getLogger(__name__)

# A catalog key is a msgid, "context\x04msgid" for a message with a context,
# or (msgid, form index) for each plural form.
CatalogKey = str | tuple[str, int]

CONTEXT_SEPARATOR = "\x04"


def hash_position(text: str, salt: bytes) -> float:
    """Map `text` to a stable number in [0, 1), the same in every process."""
    digest = hashlib.sha256(salt + text.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def locale_folders(
    base_dir: Path, roots: list[str], language: str, recipe_file: str | None
) -> list[Path]:
    """Return root/<language>/LC_MESSAGES for each root, resolved like recipe paths."""
    return [
        resolve_inside(base_dir, root, "data.roots", recipe_file)
        / language
        / "LC_MESSAGES"
        for root in roots
    ]


def find_catalogs(folders: list[Path], exclude: list[str], language: str) -> list[Path]:
    """Return the .mo files of `folders` whose stems match no `exclude` pattern.

    The files of each folder are sorted by name. Raises DataError when no file
    is left.
    """
    files = []
    for folder in folders:
        for path in sorted(folder.glob("*.mo")):
            excluded = any(
                fnmatch.fnmatchcase(path.stem, pattern) for pattern in exclude
            )
            if not excluded:
                files.append(path)
    if not files:
        searched = ", ".join(str(folder) for folder in folders)
        raise DataError(
            f"no .mo files found under {searched} (after excluding {exclude}); "
            f"set data.roots to folders that contain {language}/LC_MESSAGES/*.mo"
        )
    return files


def read_catalog(path: Path) -> dict[CatalogKey, str]:
    """Return the messages of a compiled catalog, keyed as `CatalogKey` describes.

    The header entry has the empty msgid as its key. Raises OSError,
    ValueError, LookupError or struct.error when the file is not a valid .mo
    catalog or its declared charset cannot decode it.
    """
    with open(path, "rb") as handle:
        # GNUTranslations parses the file, and its private `_catalog` is the only
        # way to list the messages (checked on CPython 3.11).
        return gettext.GNUTranslations(handle)._catalog


def read_catalogs(paths: list[Path]) -> list[tuple[Path, dict[CatalogKey, str]]]:
    """Read every catalog of `paths`, skipping with one warning those that fail."""
    catalogs = []
    failed = []
    for path in paths:
        try:
            catalogs.append((path, read_catalog(path)))
        except (OSError, ValueError, LookupError, struct.error) as error:
            failed.append(f"{path.name} ({error})")
    if failed:
        log.warning(
            "skipped %d catalog files that failed to parse: %s",
            len(failed),
            ", ".join(failed),
        )
    return catalogs


def split_key(key: CatalogKey) -> tuple[str, int]:
    """Return the msgid of `key` without its context, and its plural form index.

    A message without plural forms has index 0.
    """
    msgid, form = key if isinstance(key, tuple) else (key, 0)
    return msgid.rpartition(CONTEXT_SEPARATOR)[2], form
