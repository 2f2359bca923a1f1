"""Character and word tokenizers, and vocabularies built from the training split."""

from __future__ import annotations

import pytest
from helpers import MACBETH_LINES, char_recipe, write_recipe
from seqkit_builtins.tokenizers import (
    CharOptions,
    CharTokenizer,
    WhitespaceOptions,
    WhitespaceTokenizer,
    WordOptions,
    WordTokenizer,
)

from seqkit.errors import RecipeError
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


def language_tokenizer(language):
    return WordTokenizer(WordOptions(language=language))


def test_word_generic_is_default():
    text = "Don't add the users' files to l'archive: 3.5%"

    assert word_tokenizer().tokenize(text) == word_tokenizer(
        language="generic"
    ).tokenize(text)
    assert word_tokenizer().tokenize(text) == [
        "Don't",
        "add",
        "the",
        "users",
        "'",
        "files",
        "to",
        "l'archive",
        ":",
        "3",
        ".",
        "5",
        "%",
    ]


@pytest.mark.parametrize(
    ("language", "text", "tokens"),
    [
        (
            "en",
            "Always use the old config files, don't prompt",
            ["Always", "use", "the", "old", "config", "files", ",", "do", "n't"]
            + ["prompt"],
        ),
        (
            "en",
            "Note: root's PATH should usually contain /usr/local/sbin",
            ["Note", ":", "root", "'s", "PATH", "should", "usually", "contain"]
            + ["/usr/local/sbin"],
        ),
        (
            "fr",
            "le guillemet forcé pour COPY n'est disponible qu'en utilisant COPY TO",
            ["le", "guillemet", "forcé", "pour", "COPY", "n'", "est", "disponible"]
            + ["qu'", "en", "utilisant", "COPY", "TO"],
        ),
        (
            "fr",
            "« %s » est une fonction d'agrégat ordinaire.",
            ["«", "%s", "»", "est", "une", "fonction", "d'", "agrégat", "ordinaire"]
            + ["."],
        ),
        (
            "de",
            "MUSTER ist „default“ oder „zeros“.",
            ["MUSTER", "ist", "„", "default", "“", "oder", "„", "zeros", "“", "."],
        ),
        (
            "de",
            "Relations- und Objektname müssen angegeben werden",
            ["Relations-", "und", "Objektname", "müssen", "angegeben", "werden"],
        ),
        (
            "es",
            "¿Grabar cambios? (s/N)",
            ["¿", "Grabar", "cambios", "?", "(", "s/N", ")"],
        ),
        (
            "it",
            "l'artista dell'intero album, così come dovrebbe essere mostrato",
            ["l'", "artista", "dell'", "intero", "album", ",", "così", "come"]
            + ["dovrebbe", "essere", "mostrato"],
        ),
    ],
)
def test_word_language_tokens(language, text, tokens):
    tokenizer = language_tokenizer(language)

    assert tokenizer.tokenize(text) == tokens
    assert tokenizer.detokenize(tokens) == text


# Real messages from the gettext catalogs of Debian packages: English msgid
# strings, and French, German, Spanish and Italian msgstr strings.
@pytest.mark.parametrize(
    ("language", "text"),
    [
        ("en", "Can't add stop bit to mark end of instruction group"),
        ("en", "-M, --no-create-home do not create the user's home directory"),
        ("en", "Couldn't find any package by glob '%s'"),
        ("en", "If no input file(s) are specified, a.out is assumed"),
        ("en", "Authentication is required to update a user's home area."),
        ("en", "Please provide a name for this Disc, such as 'Debian 2.1r1 Disk 1'"),
        ("fr", "« /tmp » introuvable, veuillez le créer !"),
        ("fr", "vous ne pouvez spécifier qu'un type unique"),
        ("fr", "%s : un autre serveur semble en cours d'exécution ; le démarrage"),
        ("fr", "Vous n'êtes actuellement sur aucune branche."),
        ("fr", "Échec à l'ouverture de %s : %s"),
        ("de", "Die Datei mit dem gegebenen MUSTER füllen."),
        ("de", "Anzahl der Quell- und Zielfelder in der Zuweisung stimmt nicht"),
        ("de", "Verwenden Sie »git help«, um Hilfe zu erhalten."),
        ("es", ": ¿tal vez un conflicto D/F?"),
        ("es", "¿Actualizar realmente las preferencias para los ID seleccionados?"),
        ("es", "no se reconoce el tipo por defecto de C++"),
        ("it", "(Operatore di posizione definito dall'utente)"),
        ("it", "Riferimento limm non consentito nell'ultima istruzione."),
    ],
)
def test_word_language_round_trip(language, text):
    tokenizer = language_tokenizer(language)

    assert tokenizer.detokenize(tokenizer.tokenize(text)) == text


def test_word_french_spacing():
    tokens = ["Attention", ":", "l'", "option", "«", "-n", "»", "est", "inconnue", "!"]

    assert (
        language_tokenizer("fr").detokenize(tokens)
        == "Attention : l'option « -n » est inconnue !"
    )
    assert (
        language_tokenizer("en").detokenize(tokens)
        == "Attention: l' option « -n » est inconnue!"
    )


def test_word_english_contractions():
    tokenizer = language_tokenizer("en")

    assert tokenizer.tokenize("I'm sure they'll say it won't work") == [
        "I",
        "'m",
        "sure",
        "they",
        "'ll",
        "say",
        "it",
        "wo",
        "n't",
        "work",
    ]
    assert tokenizer.tokenize("o'clock") == ["o'clock"]


def test_word_english_possessive_and_quotes():
    tokenizer = language_tokenizer("en")
    text = "the users' files and 'quoted words' and \"more\""

    tokens = tokenizer.tokenize(text)

    assert tokens == [
        "the",
        "users",
        "'",
        "files",
        "and",
        "'",
        "quoted",
        "words",
        "'",
        "and",
        '"',
        "more",
        '"',
    ]
    assert tokenizer.detokenize(tokens) == text


def test_word_french_keeps_lexical_apostrophes():
    tokens = language_tokenizer("fr").tokenize("aujourd'hui, quelqu'un jusqu'à l'été")

    assert tokens == ["aujourd'hui", ",", "quelqu'un", "jusqu'", "à", "l'", "été"]


def test_word_language_lowercase():
    tokenizer = WordTokenizer(WordOptions(language="fr", lowercase=True))

    assert tokenizer.tokenize("L'Option") == ["l'", "option"]


def test_word_language_keeps_newlines():
    tokenizer = language_tokenizer("es")
    text = "¡Hola!\n¿Qué tal?"

    assert tokenizer.tokenize(text) == ["¡", "Hola", "!", "\n", "¿", "Qué", "tal"] + [
        "?"
    ]
    assert tokenizer.detokenize(tokenizer.tokenize(text)) == text


def test_word_language_rejects_unknown(tmp_path):
    table = char_recipe()
    table["tokenizer"] = {"plugin": "word", "language": "klingon"}

    with pytest.raises(RecipeError, match="klingon"):
        load_recipe(write_recipe(tmp_path, table))


def test_whitespace_tokenizer():
    tokenizer = WhitespaceTokenizer(WhitespaceOptions())

    assert tokenizer.level == "word"
    assert tokenizer.tokenize(" K  AE1\tT\n") == ["K", "AE1", "T"]
    assert tokenizer.detokenize(["K", "AE1", "T"]) == "K AE1 T"
    assert tokenizer.tokenize("") == []
    assert tokenizer.detokenize([]) == ""


def test_whitespace_tokenizer_vocabulary():
    tokenizer = WhitespaceTokenizer(WhitespaceOptions(min_count=2, lowercase=True))

    vocab = tokenizer.build_vocabulary(["K AE1 T", "k ae1 b", "D AO1 G"])

    assert vocab.tokens == [*SPECIALS, "ae1", "k"]
