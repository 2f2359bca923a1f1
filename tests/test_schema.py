"""Option schemas: type checks, bounds, `--set` text conversion and descriptions."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

import pytest

from seqkit import schema
from seqkit.errors import RecipeError
from seqkit.schema import CommandLineValue


@dataclass
class AnyOptions:
    column: Any = 0


@dataclass
class ExampleOptions:
    size: int = field(
        default=4, metadata={"min": 1, "max": 10, "help": "rows per block"}
    )
    rate: float = 0.5
    ratio: float = field(default=0.5, metadata={"min": 0.0, "max": 1.0})
    name: str = "x"
    flag: bool = False
    mode: Literal["fast", "slow"] = "fast"
    limit: int | None = None
    words: list[str] = field(default_factory=list)


@dataclass
class RequiredOptions:
    path: str


def test_defaults_when_table_empty():
    options = schema.validate(ExampleOptions, {}, "section", "r.toml")

    assert options == ExampleOptions()


def test_values_kept():
    table = {
        "size": 7,
        "rate": 2,
        "flag": True,
        "mode": "slow",
        "limit": 3,
        "words": ["a"],
    }

    options = schema.validate(ExampleOptions, table, "section", "r.toml")

    assert options.size == 7
    assert options.rate == 2.0
    assert type(options.rate) is float
    assert options.flag is True
    assert options.mode == "slow"
    assert options.limit == 3
    assert options.words == ["a"]


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        ({"size": 0}, "r.toml: `section.size`: must be at least 1, got 0"),
        ({"size": 11}, "r.toml: `section.size`: must be at most 10, got 11"),
        ({"size": 2.5}, "r.toml: `section.size`: expected int, got float 2.5"),
        ({"ratio": math.nan}, "r.toml: `section.ratio`: expected a number, got nan"),
        ({"ratio": 1.5}, "r.toml: `section.ratio`: must be at most 1.0, got 1.5"),
        ({"flag": "yes"}, "r.toml: `section.flag`: expected bool, got str 'yes'"),
        ({"words": ["a", 1]}, "r.toml: `section.words[1]`: expected str, got int 1"),
        ({"limit": "3"}, "r.toml: `section.limit`: expected int, got str '3'"),
        (
            {"mode": "slo"},
            "r.toml: `section.mode`: invalid value 'slo'. Did you mean `slow`? "
            "Choose one of: 'fast', 'slow'.",
        ),
        (
            {"sise": 1},
            "r.toml: `section.sise`: unknown key `sise`. Did you mean `size`? "
            "Valid keys: flag, limit, mode, name, rate, ratio, size, words.",
        ),
    ],
)
def test_invalid_value_message(table, expected):
    with pytest.raises(RecipeError) as caught:
        schema.validate(ExampleOptions, table, "section", "r.toml")

    assert str(caught.value) == expected


def test_missing_required_key():
    with pytest.raises(RecipeError) as caught:
        schema.validate(RequiredOptions, {}, "data", "r.toml")

    assert str(caught.value) == "r.toml: `data.path`: missing required key"


def test_non_table_rejected():
    with pytest.raises(RecipeError, match=r"`decoder`: expected a table, got 3"):
        schema.validate(ExampleOptions, 3, "decoder", "r.toml")


def test_no_options_component_rejects_keys():
    assert schema.validate(type(None), {}, "tokenizer", "r.toml") is not None

    with pytest.raises(RecipeError, match=r"unknown key `size`\. Valid keys: none\."):
        schema.validate(type(None), {"size": 1}, "tokenizer", "r.toml")


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("size", "3", 3),
        ("rate", "3", 3.0),
        ("rate", "1e-3", 0.001),
        ("name", "hello world", "hello world"),
        ("name", "3", "3"),
        ("flag", "true", True),
        ("mode", "slow", "slow"),
        ("limit", "none", None),
        ("limit", "5", 5),
        ("words", '["a", "b"]', ["a", "b"]),
    ],
)
def test_command_line_text_converted(name, text, expected):
    options = schema.validate(
        ExampleOptions, {name: CommandLineValue(text)}, "s", "r.toml"
    )

    value = getattr(options, name)
    assert value == expected
    assert type(value) is type(expected)


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        (
            "size",
            "many",
            "--set: `s.size`: cannot read 'many' as int; write a TOML value",
        ),
        ("size", "0", "--set: `s.size`: must be at least 1, got 0"),
        ("flag", "1", "--set: `s.flag`: expected bool, got int 1"),
        (
            "flag",
            "yes",
            "--set: `s.flag`: cannot read 'yes' as bool; write a TOML value: true "
            "or false",
        ),
        (
            "words",
            "a",
            "--set: `s.words`: cannot read 'a' as list[str]; write a TOML value "
            'such as ["a", "b"]',
        ),
    ],
)
def test_command_line_errors_name_set(name, text, expected):
    with pytest.raises(RecipeError) as caught:
        schema.validate(ExampleOptions, {name: CommandLineValue(text)}, "s", "r.toml")

    assert str(caught.value) == expected


@pytest.mark.parametrize(("text", "expected"), [("tgt", "tgt"), ("2", 2)])
def test_command_line_text_for_any_field(text, expected):
    options = schema.validate(
        AnyOptions, {"column": CommandLineValue(text)}, "data", "r.toml"
    )

    assert options.column == expected


def test_describe_lists_options():
    rows = {
        name: (type_name, default, help_text)
        for name, type_name, default, help_text in schema.describe(ExampleOptions)
    }

    assert rows["size"] == ("int", 4, "rows per block")
    assert rows["mode"] == ("'fast' | 'slow'", "fast", "")
    assert rows["limit"] == ("int | none", None, "")
    assert rows["words"] == ("list[str]", [], "")
    assert schema.describe(RequiredOptions) == [("path", "str", "required", "")]
    assert schema.describe(type(None)) == []


def test_to_table_drops_none():
    table = schema.to_table(ExampleOptions(limit=None, words=["a"]))

    assert "limit" not in table
    assert table["words"] == ["a"]
    assert table["size"] == 4
    assert schema.to_table(None) == {}


@pytest.mark.parametrize("text", ['"ROMEO:"', "'ROMEO:'", "ROMEO:"])
def test_command_line_string_quotes_optional(text):
    options = schema.validate(
        ExampleOptions, {"name": CommandLineValue(text)}, "s", None
    )

    assert options.name == "ROMEO:"
