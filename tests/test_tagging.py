"""Sequence tagging: diacritics data, tagger decoder, tagging task, `seqkit tag`."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import shutil
import struct
import unicodedata
from pathlib import Path

import pytest
import torch
from helpers import train_recipe, write_recipe
from seqkit_builtins.diacritics_data import (
    DiacriticsOptions,
    DiacriticsSource,
    clean_text,
    make_example,
    strip_diacritics,
)
from seqkit_builtins.tag_head import TaggerDecoder, TaggerOptions
from seqkit_builtins.tagging_metrics import CharAccuracy, WordAccuracy

from seqkit import BuildContext, EncoderOutput, EvalResult, SeqkitError, Vocabulary
from seqkit.cli import main
from seqkit.errors import DataError
from seqkit.run import load_run

CATALOG_FOLDER = Path("/usr/share/locale/fr/LC_MESSAGES")
# Small real catalogs (about 150 messages each), in order of preference.
SMALL_CATALOGS = ("sed.mo", "grep.mo", "xz.mo")


def real_catalog() -> Path:
    """Return a small installed French catalog, or skip the test."""
    for name in SMALL_CATALOGS:
        if (CATALOG_FOLDER / name).is_file():
            return CATALOG_FOLDER / name
    pytest.skip(f"none of {SMALL_CATALOGS} is installed in {CATALOG_FOLDER}")


def locale_root(folder: Path, *catalogs: Path) -> Path:
    """Copy `catalogs` into folder/fr/LC_MESSAGES and return `folder`."""
    messages = folder / "fr" / "LC_MESSAGES"
    messages.mkdir(parents=True, exist_ok=True)
    for catalog in catalogs:
        shutil.copy(catalog, messages / catalog.name)
    return folder


def write_mo(path: Path, entries: dict[str, str]) -> Path:
    """Write a GNU .mo catalog of msgid -> msgstr, as msgfmt lays it out.

    A plural entry's msgid is "singular\\0plural" and its msgstr the forms
    joined by "\\0".
    """
    header = (
        "Content-Type: text/plain; charset=UTF-8\n"
        "Plural-Forms: nplurals=2; plural=(n > 1);\n"
    )
    items = sorted({"": header, **entries}.items())
    keys = b"".join(key.encode() + b"\0" for key, _ in items)
    values = b"".join(value.encode() + b"\0" for _, value in items)
    count = len(items)
    keys_start = 7 * 4 + 16 * count
    values_start = keys_start + len(keys)
    key_table, value_table = [], []
    offset = 0
    for key, _ in items:
        key_table += [len(key.encode()), keys_start + offset]
        offset += len(key.encode()) + 1
    offset = 0
    for _, value in items:
        value_table += [len(value.encode()), values_start + offset]
        offset += len(value.encode()) + 1
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(
        struct.pack("<7I", 0x950412DE, 0, count, 28, 28 + 8 * count, 0, 0)
        + struct.pack(f"<{4 * count}I", *key_table, *value_table)
        + keys
        + values
    )
    return path


def diacritics_source(root: Path, **options) -> DiacriticsSource:
    """Return a diacritics data source that reads catalogs under `root`."""
    return DiacriticsSource(
        DiacriticsOptions(roots=[str(root)], exclude=[], **options),
        BuildContext(base_dir=root),
    )


def all_examples(splits):
    return [*splits.train, *splits.valid, *splits.test]


# ---------------------------------------------------------------- data


def test_strip_keeps_one_character_per_character():
    assert strip_diacritics("Élève à Noël, ça") == "Eleve a Noel, ca"
    assert strip_diacritics("œuvre") == "œuvre"


def test_example_dropped_when_length_changes():
    # "z̧" has no precomposed form, so stripping removes a character.
    assert make_example("Z̧ufār") is None
    example = make_example("Fenêtre")
    assert example.source == "Fenetre"
    assert example.target == "Fenêtre"


def test_clean_text_spaces():
    assert clean_text("Usage :\n\tfichier\u00a0:  x\n") == "Usage : fichier\u00a0: x"
    assert clean_text("e\u0301te\u0301") == "été"


def test_real_catalog_examples(tmp_path):
    root = locale_root(tmp_path, real_catalog())

    splits = diacritics_source(root, max_chars=200).load()

    examples = all_examples(splits)
    assert len(examples) > 50
    assert len(splits.train) > len(splits.test)
    for example in examples:
        assert len(example.source) == len(example.target)
        assert example.source == strip_diacritics(example.target)
        assert 8 <= len(example.target) <= 200
        assert "\n" not in example.target
        assert unicodedata.is_normalized("NFC", example.target)
    assert any(example.source != example.target for example in examples)
    targets = [example.target for example in examples]
    assert len(targets) == len(set(targets))


def test_split_stable_across_catalogs(tmp_path):
    catalog = real_catalog()
    alone = diacritics_source(locale_root(tmp_path / "one", catalog)).load()
    extra = write_mo(
        tmp_path / "two" / "fr" / "LC_MESSAGES" / "extra.mo",
        {"Save file": "Enregistrer le fichier modifié"},
    )
    both = diacritics_source(locale_root(tmp_path / "two", catalog)).load()

    assert extra.is_file()
    for name in ("train", "valid", "test"):
        kept = {e.target for e in alone.named(name)}
        assert kept <= {e.target for e in both.named(name)}
    assert diacritics_source(locale_root(tmp_path / "one")).load() == alone


def test_max_examples_cap(tmp_path):
    root = locale_root(tmp_path, real_catalog())

    first = diacritics_source(root, max_examples=20).load()
    second = diacritics_source(root, max_examples=20).load()

    assert len(all_examples(first)) == 20
    assert first == second


def test_catalog_entries_read(tmp_path):
    write_mo(
        tmp_path / "fr" / "LC_MESSAGES" / "app.mo",
        {
            "%d file\0%d files": "%d fichier créé\0%d fichiers créés",
            "Error": "Erreur générale",
            "Error again": "Erreur générale",
            "Number": "12345 : 678,9",
            "Line": "Première ligne\nDeuxième\tligne",
        },
    )

    examples = all_examples(diacritics_source(tmp_path).load())

    assert sorted(e.target for e in examples) == [
        "%d fichier créé",
        "%d fichiers créés",
        "Erreur générale",
        "Première ligne Deuxième ligne",
    ]


def test_broken_catalog_skipped(tmp_path, caplog):
    write_mo(tmp_path / "fr" / "LC_MESSAGES" / "good.mo", {"a": "Réussite totale"})
    (tmp_path / "fr" / "LC_MESSAGES" / "broken.mo").write_bytes(b"not a catalog")

    with caplog.at_level(logging.WARNING):
        splits = diacritics_source(tmp_path).load()

    assert [e.target for e in all_examples(splits)] == ["Réussite totale"]
    assert "skipped 1 catalog files" in caplog.text
    assert "broken.mo" in caplog.text


def test_missing_catalogs_error(tmp_path):
    with pytest.raises(DataError) as raised:
        diacritics_source(tmp_path).load()

    message = str(raised.value)
    assert "no .mo files found" in message
    assert str(tmp_path / "fr" / "LC_MESSAGES") in message
    assert "data.roots" in message


def test_exclude_patterns(tmp_path):
    write_mo(tmp_path / "fr" / "LC_MESSAGES" / "iso_639.mo", {"a": "Allemand ancien"})
    write_mo(tmp_path / "fr" / "LC_MESSAGES" / "app.mo", {"a": "Réussite totale"})
    source = DiacriticsSource(
        DiacriticsOptions(roots=[str(tmp_path)]), BuildContext(base_dir=tmp_path)
    )

    assert [e.target for e in all_examples(source.load())] == ["Réussite totale"]


# ---------------------------------------------------------------- tagger


@pytest.fixture
def tagger(letters_vocab, tmp_path) -> TaggerDecoder:
    context = BuildContext(base_dir=tmp_path, vocab=letters_vocab, encoder_size=6)
    torch.manual_seed(0)
    return TaggerDecoder(TaggerOptions(dropout=0.5), context).eval()


def test_tagger_step_matches_forward(tagger):
    memory = torch.randn(3, 5, 6)  # (B, S, H)
    encoder_output = EncoderOutput(summary=memory[:, 0], memory=memory)
    tokens = torch.zeros(3, 5, dtype=torch.long)  # (B, S)

    whole = tagger(tokens, tagger.init_state(3), encoder_output)
    state = tagger.init_state(3)
    stepped = []
    for position in range(5):
        output = tagger.step(tokens[:, position], state, encoder_output)
        stepped.append(output.logits)
        state = output.state

    assert whole.logits.shape == (3, 5, 10)
    torch.testing.assert_close(torch.stack(stepped, dim=1), whole.logits)
    assert state.tolist() == [[5, 5, 5]]
    assert whole.state.tolist() == [[5, 5, 5]]


def test_tagger_select_state(tagger):
    memory = torch.randn(3, 4, 6)  # (B, S, H)
    encoder_output = EncoderOutput(summary=memory[:, 0], memory=memory)
    state = tagger.step(
        torch.zeros(3, dtype=torch.long), tagger.init_state(3), encoder_output
    ).state

    picked = tagger.select_state(state, torch.tensor([2, 0]))

    assert picked.shape == (1, 2)
    assert picked.tolist() == [[1, 1]]


def test_tagger_needs_encoder(letters_context):
    with pytest.raises(SeqkitError, match=r"\[encoder\]"):
        TaggerDecoder(TaggerOptions(), letters_context)


# ---------------------------------------------------------------- metrics


def metric_result(pairs):
    return EvalResult(
        loss=0.0,
        tokens=0,
        level="char",
        predictions=[prediction for prediction, _ in pairs],
        references=[[reference] for _, reference in pairs],
    )


def test_char_accuracy_counts_accent_bases(tmp_path):
    vocab = Vocabulary(["<pad>", "<unk>", "<bos>", "<eos>", *"étabeà É"])
    metric = CharAccuracy(None, BuildContext(base_dir=tmp_path, vocab=vocab))
    # Counted: é, é and à of the first reference (1 right), E of the second.
    result = metric_result([("éte a b", "été à b"), ("Et", "Et")])

    assert metric.bases == {"e", "a", "E"}
    assert metric.compute(result) == {"char_accuracy": 0.5}


def test_char_accuracy_without_vocabulary():
    # The base letters come from the references: both e positions of each count.
    result = metric_result([("ecole", "école"), ("école", "école")])

    assert CharAccuracy().compute(result) == {"char_accuracy": 0.75}


def test_word_accuracy_by_reference_spans():
    # Right: "bon", and "le", which the stray "x" at the space does not shift.
    result = metric_result([("éte a bon", "été à bon"), ("lexa", "le à")])

    assert WordAccuracy().compute(result) == {"word_accuracy": pytest.approx(2 / 5)}


def test_metrics_need_predictions():
    result = EvalResult(loss=1.0, tokens=3, level="char")

    with pytest.raises(SeqkitError, match="tagging"):
        WordAccuracy().compute(result)


# ---------------------------------------------------------------- task

TAG_RECIPE = {
    "data": {"plugin": "diacritics", "max_chars": 200, "exclude": []},
    "tokenizer": {"plugin": "char", "min_count": 2},
    "encoder": {
        "plugin": "rnn",
        "cell": "lstm",
        "embedding_size": 8,
        "hidden_size": 8,
        "bidirectional": True,
        "dropout": 0.1,
    },
    "decoder": {"plugin": "tagger", "dropout": 0.1},
    "sampler": {"plugin": "greedy"},
    "train": {"max_steps": 4, "batch_size": 8, "eval_every": 2, "seed": 2},
    "evaluate": {"samples": 2, "batch_size": 16},
}


@pytest.fixture(scope="module")
def tag_recipe(tmp_path_factory) -> Path:
    """TAG_RECIPE written to a file, reading one real catalog."""
    folder = tmp_path_factory.mktemp("tag_recipe")
    root = locale_root(folder / "locale", real_catalog())
    table = {**TAG_RECIPE, "data": {**TAG_RECIPE["data"], "roots": [str(root)]}}
    return write_recipe(folder, table)


@pytest.fixture(scope="module")
def tag_run(tag_recipe, tmp_path_factory) -> tuple[Path, dict]:
    """A tiny tagging run on one real catalog, with its metrics."""
    run_dir = tmp_path_factory.mktemp("tag_run") / "run"
    metrics = train_recipe(tag_recipe, run_dir)
    return run_dir, metrics


def test_run_metrics_and_samples(tag_run):
    run_dir, metrics = tag_run

    assert sorted(metrics) == [
        "test_char_accuracy",
        "test_loss",
        "test_word_accuracy",
        "val_loss",
    ]
    assert 0 <= metrics["test_char_accuracy"] <= 1
    assert 0 <= metrics["test_word_accuracy"] <= 1
    stored = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    assert stored == metrics
    samples = (run_dir / "samples.txt").read_text(encoding="utf-8").split("\n\n")
    assert len(samples) == 2
    for sample in samples:
        lines = sample.strip("\n").split("\n")
        assert [line[:11] for line in lines] == [
            "source:    ",
            "predicted: ",
            "reference: ",
        ]
        assert len({len(line) for line in lines}) == 1


def test_tag_keeps_input_length(tag_run):
    run_dir, _ = tag_run
    built = load_run(run_dir)
    texts = ["", "le fichier a ete cree", "Ω𝄞 ça\u00a0?", "x", "e\u0301te\u0301"]

    outputs = built.task.tag(built.model, texts)

    assert [len(output) for output in outputs] == [len(text) for text in texts]
    assert outputs[0] == ""
    # Unknown characters, accented ones included, come back unchanged.
    assert outputs[2][:2] == "Ω𝄞"
    assert outputs[2][3] == "ç"
    assert outputs[4][1] == "\u0301"


def test_pad_steps_not_in_loss(tag_run):
    run_dir, _ = tag_run
    built = load_run(run_dir, load_data=True)
    task, model = built.task, built.model
    batch = task.train_batch(0, 0)
    lengths = batch["lengths"]
    assert int(lengths.min()) < batch["source"].shape[1]
    real = torch.arange(batch["source"].shape[1])[None, :] < lengths[:, None]
    encode = model.encode

    def encode_with_fill(fill):
        def noisy(source, lengths=None):
            output = encode(source, lengths)
            memory = output.memory.masked_fill(~real[:, :, None], fill)
            return EncoderOutput(output.summary, memory, output.mask)

        return noisy

    losses = []
    for fill in (0.0, 50.0):
        model.encode = encode_with_fill(fill)
        loss, count = task.loss(model, batch)
        losses.append(loss.item())
    model.encode = encode

    assert losses[0] == pytest.approx(losses[1])
    assert count == int(lengths.sum())
    assert task.loss(model, batch)[0].item() == pytest.approx(losses[0])


def test_train_batches_reproducible(tag_run):
    run_dir, _ = tag_run
    first = load_run(run_dir, load_data=True).task
    second = load_run(run_dir, load_data=True).task

    for epoch, index in ((0, 0), (1, 0), (0, 1)):
        one, two = first.train_batch(epoch, index), second.train_batch(epoch, index)
        assert torch.equal(one["source"], two["source"])
        assert torch.equal(one["targets"], two["targets"])
    assert not torch.equal(
        first.train_batch(0, 0)["targets"], first.train_batch(1, 0)["targets"]
    )


def test_resume_matches_uninterrupted(tag_run, tag_recipe, tmp_path):
    run_dir, metrics = tag_run

    assert train_recipe(tag_recipe, tmp_path / "run", stop_at=2) == {}
    resumed = train_recipe(tag_recipe, tmp_path / "run", resume=True)

    assert resumed == metrics
    whole = torch.load(run_dir / "last.pt", weights_only=True)["model"]
    parts = torch.load(tmp_path / "run" / "last.pt", weights_only=True)["model"]
    for name, tensor in whole.items():
        torch.testing.assert_close(parts[name], tensor, rtol=0, atol=0)


def test_word_tokenizer_rejected(tag_run):
    run_dir, _ = tag_run
    built = load_run(run_dir)
    word_tokenizer = built.registry.get("tokenizer", "word")

    with pytest.raises(SeqkitError, match="one token per character"):
        type(built.task)(word_tokenizer(None, None), built.vocabularies, built.recipe)


# ---------------------------------------------------------------- seqkit tag


def run_cli(*argv):
    """Run `seqkit ARGV` in-process and return (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(arg) for arg in argv])
    return code, out.getvalue(), err.getvalue()


def test_tag_command_arguments(tag_run):
    run_dir, _ = tag_run

    code, out, err = run_cli("tag", run_dir, "le fichier a ete cree", "", "Ω")

    assert code == 0, err
    lines = out.split("\n")
    assert lines[-1] == ""
    assert [len(line) for line in lines[:-1]] == [21, 0, 1]
    assert lines[2] == "Ω"


def test_tag_command_stdin(tag_run, monkeypatch):
    run_dir, _ = tag_run
    monkeypatch.setattr("sys.stdin", io.StringIO("premiere ligne\n\nfin\r\n"))

    code, out, err = run_cli("tag", run_dir)

    assert code == 0, err
    assert [len(line) for line in out.split("\n")] == [14, 0, 3, 0]


def test_tag_command_errors(tag_run, char_run, tmp_path):
    code, out, err = run_cli("tag", tmp_path / "missing", "texte")
    assert code == 2
    assert err.startswith("error: run folder not found")
    assert out == ""

    code, _, err = run_cli("tag", char_run, "texte")
    assert code == 2
    assert err.startswith("error: ")
    assert "'language-model' task" in err
