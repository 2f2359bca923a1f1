"""The translation task end to end: grapheme to phoneme on real cmudict words."""

from __future__ import annotations

import copy
import io
import json
import logging
import math

import pytest
import torch
from helpers import write_recipe
from seqkit_builtins.beam import BeamOptions, BeamSearch
from seqkit_builtins.samplers import (
    GreedyOptions,
    GreedySampler,
    RandomSampler,
    SampleOptions,
)

from seqkit.cli import main
from seqkit.errors import DataError
from seqkit.interfaces import Example, Splits
from seqkit.run import build, load_recipe, load_run, train

# Characters to phones on 400 cmudict words: a bidirectional LSTM encoder,
# Luong attention and beam search, 5 epochs of 20 steps.
G2P_RECIPE = {
    "data": {
        "plugin": "cmudict",
        "max_examples": 400,
        "valid_fraction": 0.1,
        "test_fraction": 0.1,
    },
    "tokenizer": {"plugin": "whitespace"},
    "source_tokenizer": {"plugin": "char"},
    "encoder": {
        "plugin": "rnn",
        "bidirectional": True,
        "embedding_size": 16,
        "hidden_size": 24,
    },
    "decoder": {"plugin": "rnn", "embedding_size": 16, "hidden_size": 32},
    "attention": {"plugin": "luong", "score": "general"},
    "sampler": {"plugin": "beam", "beam_size": 3},
    "train": {
        "epochs": 5,
        "batch_size": 16,
        "seq_len": 24,
        "lr": 0.01,
        "eval_every": 50,
        "log_every": 10,
        "seed": 1,
    },
    "evaluate": {"metrics": ["bleu", "chrf", "per", "word_acc"], "samples": 2},
}


def g2p_recipe(**sections) -> dict:
    table = copy.deepcopy(G2P_RECIPE)
    for name, values in sections.items():
        table[name] = {**table.get(name, {}), **values}
    return table


@pytest.fixture(scope="module")
def g2p_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("g2p")
    recipe, registry = load_recipe(write_recipe(folder, G2P_RECIPE))
    metrics = train(recipe, registry, folder / "run")
    return folder / "run", metrics


def test_run_writes_translation_metrics(g2p_run):
    run_dir, metrics = g2p_run
    stored = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))

    assert stored == metrics
    assert 0 <= metrics["test_bleu"] <= 100
    assert 0 <= metrics["test_chrf"] <= 100
    assert 0 < metrics["test_per"] < 1.0
    assert 0 <= metrics["test_word_acc"] <= 1
    assert metrics["bleu_signature"].startswith("nrefs:var|case:mixed|eff:no|tok:13a")
    assert "test_bleu_signature" not in metrics
    assert math.isfinite(metrics["test_loss"])


def test_run_writes_attention_and_samples(g2p_run):
    run_dir, _ = g2p_run
    samples = (run_dir / "samples.txt").read_text(encoding="utf-8").split("\n\n")

    assert (run_dir / "attention.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(samples) == 2
    assert samples[0].startswith("source: ")
    assert "\npredicted: " in samples[0]
    assert "\nreference: " in samples[0]


def test_evaluate_reproduces_metrics(g2p_run, capsys):
    run_dir, metrics = g2p_run

    assert main(["evaluate", str(run_dir)]) == 0
    again = json.loads(capsys.readouterr().out)

    assert again["test_per"] == pytest.approx(metrics["test_per"])
    assert again["test_bleu"] == pytest.approx(metrics["test_bleu"])


def test_beam_one_matches_greedy_on_trained_model(g2p_run):
    built = load_run(g2p_run[0])
    words = ["cat", "machine", "xylophone", "a", "thoughtfulness"]

    greedy = built.task.translate(built.model, words, GreedySampler(GreedyOptions()))
    beam = built.task.translate(
        built.model, words, BeamSearch(BeamOptions(beam_size=1))
    )

    assert [t.text for t in beam] == [t.text for t in greedy]
    assert [t.score for t in beam] == [t.score for t in greedy]


def test_translate_alone_equals_batched(g2p_run):
    built = load_run(g2p_run[0])
    words = ["thoughtfulness", "a", "cat", "zebra", "unbelievable"]
    sampler = BeamSearch(BeamOptions(beam_size=4, n_best=2))

    batched = built.task.translate(built.model, words, sampler)
    for word, together in zip(words, batched, strict=True):
        alone = built.task.translate(built.model, [word], sampler)[0]
        assert alone.text == together.text
        assert alone.score == pytest.approx(together.score, abs=1e-5)
        assert [text for text, _ in alone.nbest] == [t for t, _ in together.nbest]


def test_sampling_decoder_is_seeded(g2p_run):
    built = load_run(g2p_run[0])
    sampler = RandomSampler(SampleOptions(temperature=1.5))
    words = ["cat", "dog", "house"]

    first = built.task.translate(
        built.model, words, sampler, generator=torch.Generator().manual_seed(5)
    )
    second = built.task.translate(
        built.model, words, sampler, generator=torch.Generator().manual_seed(5)
    )

    assert [t.text for t in first] == [t.text for t in second]
    assert all(t.text for t in first)


def test_translate_cli_one_line_per_input(g2p_run, capsys, monkeypatch):
    run_dir, _ = g2p_run
    monkeypatch.setattr("sys.stdin", io.StringIO("cat\n\ndog\n"))

    assert main(["translate", str(run_dir)]) == 0
    lines = capsys.readouterr().out.split("\n")

    assert len(lines) == 4
    assert lines[1] == ""
    assert lines[3] == ""
    assert lines[0] and lines[2]


def test_translate_cli_n_best_and_plot(g2p_run, capsys, tmp_path):
    run_dir, _ = g2p_run
    plot = tmp_path / "attention.png"

    status = main(
        [
            "translate",
            str(run_dir),
            "thoughtful",
            "--beam-size",
            "4",
            "--n-best",
            "3",
            "--attention-plot",
            str(plot),
        ]
    )
    out = capsys.readouterr().out

    assert status == 0
    assert len(out.rstrip("\n").split("\t")) == 3
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_translate_cli_rejects_bad_flags(g2p_run, capsys):
    run_dir = str(g2p_run[0])

    assert main(["translate", run_dir, "cat", "--n-best", "9"]) == 2
    assert "n_best (9) cannot exceed beam_size (3)" in capsys.readouterr().err
    assert main(["translate", run_dir, "cat", "--beam-size", "0"]) == 2
    assert "--beam-size must be at least 1, got 0" in capsys.readouterr().err


def test_translate_cli_rejects_other_tasks(tmp_path, capsys):
    from helpers import CHAR_RECIPE

    recipe, registry = load_recipe(write_recipe(tmp_path, CHAR_RECIPE))
    train(recipe, registry, tmp_path / "lm")

    assert main(["translate", str(tmp_path / "lm"), "hello"]) == 2
    assert "'language-model' task, which cannot translate" in capsys.readouterr().err


def test_loss_ignores_padding(tmp_path):
    recipe, registry = load_recipe(write_recipe(tmp_path, G2P_RECIPE))
    built = build(recipe, registry)
    built.model.eval()
    task = built.task
    batch = task.train_batch(0, 0)
    lengths = batch["lengths"]
    assert lengths.min() < lengths.max()

    with torch.no_grad():
        loss, count = task.loss(built.model, batch)
        total = 0.0
        for row in range(len(lengths)):
            rows = task._batches_of_epoch(0)[0][row : row + 1]
            one = task._batch(task.encoded["train"], rows)
            row_loss, row_count = task.loss(built.model, one)
            total += row_loss.item() * row_count

    assert loss.item() == pytest.approx(total / count, rel=1e-5)


def test_train_batches_are_deterministic(tmp_path):
    recipe, registry = load_recipe(write_recipe(tmp_path, G2P_RECIPE))
    first = build(recipe, registry).task
    second = build(recipe, registry).task

    for index in (0, 5, 19):
        a, b = first.train_batch(1, index), second.train_batch(1, index)
        assert torch.equal(a["source"], b["source"])
        assert torch.equal(a["outputs"], b["outputs"])
    assert not torch.equal(
        first.train_batch(0, 0)["source"], first.train_batch(1, 0)["source"]
    )


def test_attention_needs_encoder(tmp_path):
    from seqkit import RecipeError

    table = g2p_recipe()
    del table["encoder"]
    recipe, registry = load_recipe(write_recipe(tmp_path, table))

    with pytest.raises(RecipeError, match="has no \\[encoder\\]"):
        build(recipe, registry)


def test_resume_matches_uninterrupted_run(g2p_run, tmp_path):
    _, metrics = g2p_run
    recipe, registry = load_recipe(write_recipe(tmp_path, G2P_RECIPE))
    train(recipe, registry, tmp_path / "run", stop_at=50)
    resumed = train(recipe, registry, tmp_path / "run", resume=True)

    assert resumed["test_loss"] == pytest.approx(metrics["test_loss"], abs=1e-6)
    assert resumed["test_per"] == metrics["test_per"]


TASK_LOGGER = "seqkit_builtins.translation_task"


@pytest.fixture
def short_g2p(tmp_path):
    """An untrained G2P run with train.seq_len = 6, so 5 tokens per side."""
    overrides = ["train.seq_len=6", "data.max_examples=100"]
    recipe, registry = load_recipe(write_recipe(tmp_path, G2P_RECIPE), overrides)
    return build(recipe, registry)


def test_prepare_warns_about_pairs_cut(short_g2p, caplog):
    # "machine" has 7 characters and "mixes" 6 phones: both longer than 5.
    splits = Splits(
        train=[
            Example("K AE1 T", "cat"),
            Example("M AH0 SH IY1 N", "machine"),
            Example("M IH1 K S IH0 Z", "mixes"),
        ],
        valid=[Example("AH0", "a")],
        test=[Example("Z IY1 B R AH0", "zebra")],
    )

    with caplog.at_level(logging.WARNING, logger=TASK_LOGGER):
        short_g2p.task.prepare(splits)
    train = short_g2p.task.encoded["train"]

    assert [record.getMessage() for record in caplog.records] == [
        "cut 2 of 3 train, 0 of 1 valid, 0 of 1 test pairs whose source or target "
        "is longer than 5 tokens, the limit that train.seq_len = 6 sets; raise "
        "train.seq_len to keep them whole"
    ]
    assert [len(ids) for ids in train.sources] == [4, 6, 6]
    assert [len(ids) for ids in train.targets] == [3, 5, 5]


def test_prepare_silent_without_cuts(short_g2p, caplog):
    splits = Splits(
        train=[Example("K AE1 T", "cat")],
        valid=[Example("AH0", "a")],
        test=[Example("D AO1 G", "dog")],
    )

    with caplog.at_level(logging.WARNING, logger=TASK_LOGGER):
        short_g2p.task.prepare(splits)

    assert caplog.records == []


def test_seq_len_one_rejects_empty_targets(tmp_path):
    overrides = ["train.seq_len=1", "data.max_examples=100"]
    recipe, registry = load_recipe(write_recipe(tmp_path, G2P_RECIPE), overrides)

    with pytest.raises(DataError) as caught:
        build(recipe, registry)
    message = str(caught.value)

    assert message.startswith("train.seq_len = 1 leaves no room for target tokens")
    assert "set train.seq_len to 2 or more" in message


def test_translate_warns_once_about_inputs_cut(short_g2p, caplog):
    task, model = short_g2p.task, short_g2p.model
    words = ["cat", "machine", "", "thoughtfulness"]

    with caplog.at_level(logging.WARNING, logger=TASK_LOGGER):
        found = task.translate(model, words)

    assert [record.getMessage() for record in caplog.records] == [
        "cut 2 of 4 inputs to their first 5 tokens, the limit that "
        "train.seq_len = 6 sets; the rest of each is not translated"
    ]
    assert found[0].source_tokens == list("cat")
    assert found[1].source_tokens == list("machi")
    assert found[3].source_tokens == list("thoug")


def test_translate_silent_for_short_inputs(short_g2p, caplog):
    with caplog.at_level(logging.WARNING, logger=TASK_LOGGER):
        short_g2p.task.translate(short_g2p.model, ["cat", "zebra"])

    assert caplog.records == []
