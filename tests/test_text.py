"""Text normalisation: byte-order mark, line endings and Unicode NFC."""

from __future__ import annotations

import pytest
from helpers import char_recipe, write_recipe

from seqkit.context import BuildContext
from seqkit.errors import DataError
from seqkit.run import build, load_recipe
from seqkit.text import normalize, read_text

DECOMPOSED = "cafe\u0301"  # "e" followed by a combining acute accent
COMPOSED = "caf\u00e9"


def load_splits(recipe):
    context = BuildContext(base_dir=recipe.base_dir, recipe_file=recipe.file)
    return recipe.data.cls(recipe.data.options, context).load()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a\r\nb\r\n", "a\nb\n"),
        ("a\rb\r", "a\nb\n"),
        ("a\r\n\r\nb", "a\n\nb"),
        ("a\n\rb", "a\n\nb"),
        ("\ufeffHamlet", "Hamlet"),
        ("x\ufeffy", "x\ufeffy"),
        (DECOMPOSED, COMPOSED),
        ("\u212b", "\u00c5"),  # ANGSTROM SIGN becomes A WITH RING ABOVE
        ("plain text\n", "plain text\n"),
    ],
)
def test_normalize(text, expected):
    assert normalize(text) == expected


def test_normalize_keeps_compatibility_characters():
    # NFC, not NFKC: the ligature and the full-width letter stay.
    assert normalize("\ufb01 \uff21") == "\ufb01 \uff21"


def test_read_text_normalizes_file(tmp_path):
    path = tmp_path / "play.txt"
    path.write_bytes(
        b"\xef\xbb\xbf" + f"{DECOMPOSED}\r\nline two\rline three\n".encode()
    )

    assert read_text(path) == f"{COMPOSED}\nline two\nline three\n"


def test_text_source_normalizes(tmp_path):
    lines = [f"{DECOMPOSED} line {i}" for i in range(40)]
    (tmp_path / "a.txt").write_bytes(
        b"\xef\xbb\xbf" + "\r\n".join(lines).encode() + b"\r\n"
    )
    table = char_recipe()
    table["data"] = {
        "plugin": "text",
        "paths": ["a.txt"],
        "valid_fraction": 0.1,
        "test_fraction": 0.1,
    }
    recipe, registry = load_recipe(write_recipe(tmp_path, table))

    splits = load_splits(recipe)

    text = "".join(e.target for e in splits.train + splits.valid + splits.test)
    assert text == "\n".join(f"{COMPOSED} line {i}" for i in range(40)) + "\n"
    vocab = build(recipe, registry).vocabularies["target"]
    assert COMPOSED[-1] in vocab
    assert "\u0301" not in vocab
    assert "\r" not in vocab
    assert "\ufeff" not in vocab


def test_text_source_rejects_non_utf8(tmp_path):
    (tmp_path / "latin1.txt").write_bytes("caf\u00e9\n".encode("latin-1"))
    table = char_recipe()
    table["data"] = {"plugin": "text", "paths": ["latin1.txt"]}
    recipe, _ = load_recipe(write_recipe(tmp_path, table))

    with pytest.raises(DataError) as caught:
        load_splits(recipe)

    assert str(tmp_path / "latin1.txt") in str(caught.value)
    assert "is not UTF-8 text" in str(caught.value)
