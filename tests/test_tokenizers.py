"""Character and word tokenizers, and vocabularies built from the training split."""

from __future__ import annotations

import pytest
from helpers import MACBETH_LINES, char_recipe, write_recipe
from seqkit_builtins.tokenizers import (
    CharOptions,
    CharTokenizer,
    WordOptions,
    WordTokenizer,
)

from seqkit.run import build, load_recipe
from seqkit.vocab import Vocabulary

SPECIALS = ["<pad>", "<unk>", "<bos>", "<eos>"]


def word_tokenizer(**options):
    return WordTokenizer(WordOptions(**options))


def test_char_round_trip():
    tokenizer = CharTokenizer(CharOptions())
    text = "Fair is foul,\nand foul is fair:  \u00e9"

    tokens = tokenizer.tokenize(text)

    assert tokens[:5] == ["F", "a", "i", "r", " "]
    assert "\n" in tokens
    assert tokenizer.detokenize(tokens) == text


def test_char_min_count():
    tokenizer = CharTokenizer(CharOptions(min_count=2))

    vocab = tokenizer.build_vocabulary(["aab", "ac"])

    assert vocab.tokens == [*SPECIALS, "a"]


def test_word_keeps_punctuation():
    tokens = word_tokenizer().tokenize("Hail, brave friend! Say to the king.")

    assert tokens == [
        "Hail",
        ",",
        "brave",
        "friend",
        "!",
        "Say",
        "to",
        "the",
        "king",
        ".",
    ]


def test_word_keeps_inner_apostrophes():
    tokens = word_tokenizer().tokenize("The be-all and the end-all; ne'er shook hands")

    assert tokens == [
        "The",
        "be-all",
        "and",
        "the",
        "end-all",
        ";",
        "ne'er",
        "shook",
        "hands",
    ]


def test_word_keeps_newlines():
    assert word_tokenizer().tokenize("Anon.\n\nALL:\nFair") == [
        "Anon",
        ".",
        "\n",
        "\n",
        "ALL",
        ":",
        "\n",
        "Fair",
    ]


def test_word_lowercase_only_when_asked():
    text = "MACBETH: So foul and fair"

    assert word_tokenizer().tokenize(text) == [
        "MACBETH",
        ":",
        "So",
        "foul",
        "and",
        "fair",
    ]
    assert word_tokenizer(lowercase=True).tokenize(text) == [
        "macbeth",
        ":",
        "so",
        "foul",
        "and",
        "fair",
    ]


@pytest.mark.parametrize(
    "text",
    [
        "Hail, brave friend! Say to the king the knowledge of the broil.",
        "MACBETH:\nSo foul and fair a day I have not seen.\n",
        "What bloody man is that? He can report (as seemeth by his plight)",
        "'Gainst my captivity. As whence the sun 'gins his reflection",
        "Was the hope drunk wherein you dress'd yourself? and th' other",
        MACBETH_LINES,
    ],
)
def test_word_detokenize_round_trip(text):
    tokenizer = word_tokenizer()

    assert tokenizer.detokenize(tokenizer.tokenize(text)) == text


def test_word_detokenize_spacing():
    tokens = ["I", "come", ",", "Graymalkin", "!", "\n", "(", "aside", ")", "Anon", "."]

    assert word_tokenizer().detokenize(tokens) == "I come, Graymalkin!\n(aside) Anon."


def test_word_vocabulary_limits():
    tokenizer = word_tokenizer(min_count=2, max_size=6)

    vocab = tokenizer.build_vocabulary(["a b b c c c d d d d", "e e e e e"])

    assert vocab.tokens == [*SPECIALS, "e", "d"]


def test_vocabulary_from_training_split_only(tmp_path):
    # "Z" and "!" occur only near the end of the text, in the test split.
    text = MACBETH_LINES * 4 + "Zounds!\n"
    (tmp_path / "macbeth.txt").write_text(text, encoding="utf-8")
    table = char_recipe(train={"seq_len": 8})
    table["data"] = {
        "plugin": "text",
        "paths": ["*.txt"],
        "valid_fraction": 0.1,
        "test_fraction": 0.1,
    }
    table["tokenizer"] = {"plugin": "word"}
    recipe, registry = load_recipe(write_recipe(tmp_path, table))

    built = build(recipe, registry)

    vocab = built.vocabularies["target"]
    assert "Zounds" not in vocab
    assert "!" not in vocab
    assert "chalice" in vocab
    assert vocab.tokens[:4] == SPECIALS
    test_ids = built.task.streams["test"].tolist()
    assert vocab.unk_id in test_ids


def test_vocabulary_order_by_count_then_token():
    vocab = Vocabulary.from_texts([["b", "a", "c", "a"], ["c", "d"]])

    assert vocab.tokens == [*SPECIALS, "a", "c", "b", "d"]


def test_vocabulary_drops_special_tokens_from_text():
    vocab = Vocabulary.from_texts([["<eos>", "x", "<pad>"]])

    assert vocab.tokens == [*SPECIALS, "x"]


def test_vocabulary_encode_decode():
    vocab = Vocabulary([*SPECIALS, "a", "b"])

    assert vocab.encode(["a", "z", "b"]) == [4, 1, 5]
    assert vocab.decode([2, 4, 1, 5, 3, 0]) == ["a", "<unk>", "b"]
    assert vocab.decode([2, 4, 3], strip_specials=False) == ["<bos>", "a", "<eos>"]
    assert vocab.unknown(["z", "a", "y", "z"]) == ["z", "y"]


@pytest.mark.parametrize(
    ("tokens", "message"),
    [
        (["a", "<pad>", "<unk>", "<bos>", "<eos>"], "must start with"),
        ([*SPECIALS, "a", "a"], "twice"),
    ],
)
def test_vocabulary_rejects_bad_token_lists(tokens, message):
    with pytest.raises(ValueError, match=message):
        Vocabulary(tokens)
