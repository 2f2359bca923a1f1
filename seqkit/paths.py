"""Resolving paths written in recipes."""

from __future__ import annotations

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
