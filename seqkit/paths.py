"""Resolving paths written in recipes."""

from __future__ import annotations

import glob
from pathlib import Path

from seqkit.errors import RecipeError


def resolve_inside(
    base_dir: Path, text: str, key: str, file: str | None = None
) -> Path:
    """Resolve a recipe path against the recipe's folder.

    A relative path must stay inside `base_dir` once `..` and symbolic links are
    resolved, so a shared recipe cannot reach files outside the folder it sits
    in. An absolute path is used as written: the recipe shows it openly.
    """
    path = Path(text).expanduser()
    if path.is_absolute():
        return path
    base = base_dir.resolve()
    resolved = (base / path).resolve()
    if not resolved.is_relative_to(base):
        raise RecipeError(
            f"path {text!r} points outside the recipe's folder {base}; move the file "
            "inside that folder or give an absolute path",
            file,
            key,
        )
    return resolved


def glob_inside(
    base_dir: Path, text: str, key: str, file: str | None = None
) -> list[Path]:
    """Expand a recipe path or glob against the recipe's folder into sorted matches.

    `**` matches any number of folders. A wildcard can match a symbolic link
    to a folder outside `base_dir`, such as `up -> ..` matched by
    `*/data.tsv` or `**/*.tsv`. So every match of a relative pattern is
    resolved and checked with the rule of `resolve_inside`, and returned
    resolved. Matches of an absolute pattern are returned as found. The list
    is empty when nothing matches.

    Raises RecipeError for a pattern or match that leaves the recipe's folder.
    """
    pattern = resolve_inside(base_dir, text, key, file)
    matches = [Path(found) for found in sorted(glob.glob(str(pattern), recursive=True))]
    if Path(text).expanduser().is_absolute():
        return matches
    base = base_dir.resolve()
    resolved = []
    for match in matches:
        target = match.resolve()
        if not target.is_relative_to(base):
            raise RecipeError(
                f"path {text!r} matches {match}, which points outside the recipe's "
                f"folder {base}; remove the symbolic link, narrow the pattern or "
                "give an absolute path",
                file,
                key,
            )
        resolved.append(target)
    return list(dict.fromkeys(resolved))
