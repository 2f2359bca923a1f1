"""Typed option schemas: a recipe table is checked against a dataclass.

A component declares its options as a dataclass. Each field's type hint is the
schema; `field(metadata={"min": 0, "help": "..."})` adds a lower bound and a
one-line description. Supported types: bool, int, float, str, Literal choices,
lists of those, and `X | None`.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
import types
import typing
from pathlib import Path
from typing import Any, Literal

from seqkit.errors import RecipeError, suggest


@dataclasses.dataclass(frozen=True)
class CommandLineValue:
    """A value given as text with `--set`, converted to the field's type."""

    text: str


def validate(options_type: type, table: dict, key: str, file: str | None) -> Any:
    """Build an `options_type` instance from `table`, rejecting unknown keys.

    `key` is the path of the table in the recipe ("decoder") and `file` the
    recipe it came from; both appear in every error.
    """
    if options_type is type(None):
        options_type = _Empty
    if not isinstance(table, dict):
        raise RecipeError(f"expected a table, got {table!r}", file, key)
    fields = {f.name: f for f in dataclasses.fields(options_type)}
    hints = typing.get_type_hints(options_type)
    for name, value in table.items():
        if name not in fields:
            choices = ", ".join(sorted(fields)) or "none"
            hint = suggest(name, fields)
            source = "--set" if isinstance(value, CommandLineValue) else file
            raise RecipeError(
                f"unknown key `{name}`.{hint} Valid keys: {choices}.",
                source,
                f"{key}.{name}" if key else name,
            )
    values = {}
    for name, spec in fields.items():
        path = f"{key}.{name}" if key else name
        if name in table:
            source = "--set" if isinstance(table[name], CommandLineValue) else file
            value = _check(hints[name], table[name], path, source)
            _check_bounds(spec, value, path, source)
            values[name] = value
        elif spec.default is dataclasses.MISSING and (
            spec.default_factory is dataclasses.MISSING
        ):
            raise RecipeError("missing required key", file, path)
    return options_type(**values)


def to_table(options: Any, base_dir: Path | None = None) -> dict:
    """Return the options as a TOML-ready table, leaving out None values.

    With `base_dir`, fields marked `metadata={"path": True}` (a path or a list
    of paths) are made absolute, so the table still works from another folder.
    """
    if options is None or not dataclasses.is_dataclass(options):
        return {}
    table = {}
    for f in dataclasses.fields(options):
        value = getattr(options, f.name)
        if value is None:
            continue
        if isinstance(value, tuple):
            value = list(value)
        if base_dir is not None and f.metadata.get("path"):
            value = _absolute(value, base_dir)
        table[f.name] = value
    return table


def _absolute(value: str | list[str], base_dir: Path) -> str | list[str]:
    if isinstance(value, list):
        return [str(base_dir.resolve() / item) for item in value]
    return str(base_dir.resolve() / value)


def describe(options_type: type) -> list[tuple[str, str, Any, str]]:
    """List (name, type, default, help) for each option, for `seqkit plugins`."""
    if options_type is type(None):
        return []
    hints = typing.get_type_hints(options_type)
    rows = []
    for f in dataclasses.fields(options_type):
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = "required"
        rows.append(
            (f.name, _type_name(hints[f.name]), default, f.metadata.get("help", ""))
        )
    return rows


@dataclasses.dataclass
class _Empty:
    """Options of a component that takes none."""


def _check(hint: Any, value: Any, path: str, file: str | None) -> Any:
    if isinstance(value, CommandLineValue):
        value = _from_text(hint, value.text, path, file)
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        arms = typing.get_args(hint)
        if value is None and type(None) in arms:
            return None
        inner = [arm for arm in arms if arm is not type(None)]
        return _check(inner[0], value, path, file)
    if origin is Literal:
        choices = typing.get_args(hint)
        if value not in choices:
            listed = ", ".join(repr(c) for c in choices)
            hint_text = suggest(str(value), [str(c) for c in choices])
            raise RecipeError(
                f"invalid value {value!r}.{hint_text} Choose one of: {listed}.",
                file,
                path,
            )
        return value
    if origin in (list, tuple):
        if not isinstance(value, list):
            raise RecipeError(f"expected a list, got {value!r}", file, path)
        (item_hint, *_) = typing.get_args(hint)
        return [
            _check(item_hint, item, f"{path}[{i}]", file)
            for i, item in enumerate(value)
        ]
    return _check_scalar(hint, value, path, file)


def _check_scalar(hint: Any, value: Any, path: str, file: str | None) -> Any:
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is Any:
        return value
    # bool is a subclass of int, so `1` must not pass as true or `true` as 1.
    if isinstance(value, bool) != (hint is bool) or not isinstance(value, hint):
        raise RecipeError(
            f"expected {_type_name(hint)}, got {type(value).__name__} {value!r}",
            file,
            path,
        )
    return value


def _check_bounds(
    spec: dataclasses.Field, value: Any, path: str, file: str | None
) -> None:
    if isinstance(value, float) and math.isnan(value):
        raise RecipeError("expected a number, got nan", file, path)
    if spec.metadata.get("finite") and isinstance(value, float):
        if math.isinf(value):
            raise RecipeError(f"expected a finite number, got {value!r}", file, path)
    low = spec.metadata.get("min")
    if low is not None and value is not None and not value >= low:
        raise RecipeError(f"must be at least {low}, got {value!r}", file, path)
    high = spec.metadata.get("max")
    if high is not None and value is not None and not value <= high:
        raise RecipeError(f"must be at most {high}, got {value!r}", file, path)


def _from_text(hint: Any, text: str, path: str, file: str | None) -> Any:
    """Convert `--set` text to the field's type.

    Text for a string field is taken as typed, unless it is a quoted TOML
    string, so `prompt=ROMEO:` and `prompt="ROMEO:"` give the same value.
    """
    arms = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        if text in ("none", "None", "null"):
            return None
        hint = arms[0]
    if hint is str or (
        typing.get_origin(hint) is Literal
        and all(isinstance(c, str) for c in typing.get_args(hint))
    ):
        if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
            try:
                return tomllib.loads(f"value = {text}")["value"]
            except tomllib.TOMLDecodeError:
                return text
        return text
    try:
        return tomllib.loads(f"value = {text}")["value"]
    except tomllib.TOMLDecodeError:
        if hint is Any:
            # A field of any type, such as a column given by name or number,
            # takes text that is no TOML value as a string.
            return text
        example = ' such as ["a", "b"]' if typing.get_origin(hint) is list else ""
        if hint is bool:
            example = ": true or false"
        raise RecipeError(
            f"cannot read {text!r} as {_type_name(hint)}; write a TOML value{example}",
            file or "--set",
            path,
        ) from None


def _type_name(hint: Any) -> str:
    origin = typing.get_origin(hint)
    if origin is Literal:
        return " | ".join(repr(c) for c in typing.get_args(hint))
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_type_name(arm) for arm in typing.get_args(hint))
    if origin in (list, tuple):
        return f"list[{_type_name(typing.get_args(hint)[0])}]"
    if hint is type(None):
        return "none"
    return getattr(hint, "__name__", str(hint))
