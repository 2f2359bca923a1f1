"""The classification task, its sampler, metrics and the `seqkit classify` command."""

from __future__ import annotations

import copy
import io
import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from helpers import write_recipe
from seqkit_builtins.classification import ArgmaxSampler, label_vocabulary
from seqkit_builtins.classify_metrics import Accuracy, Confusion, MacroF1, PerClass
from test_cli import run_cli

from seqkit.errors import DataError, SeqkitError
from seqkit.interfaces import EvalResult, Example, Splits, StepModel
from seqkit.run import build, load_recipe, load_run, train

PLUGIN = Path(__file__).parent / "genre_lines.py"
GENRES = ["comedies", "tragedies"]

# A word-level bidirectional LSTM over 48 training lines of four plays: 6 steps
# of 10 lines, 2 validations. Dropout makes the torch RNG matter.
RECIPE = {
    "plugins": [str(PLUGIN)],
    "data": {"plugin": "genre-lines", "genres": GENRES, "lines_per_play": 20},
    "tokenizer": {"plugin": "word", "lowercase": True},
    "encoder": {
        "plugin": "rnn",
        "embedding_size": 8,
        "hidden_size": 8,
        "bidirectional": True,
        "dropout": 0.2,
    },
    "decoder": {"plugin": "label", "dropout": 0.2},
    "sampler": {"plugin": "argmax"},
    "train": {
        "max_steps": 6,
        "batch_size": 10,
        "eval_every": 3,
        "log_every": 2,
        "lr": 0.01,
        "seed": 3,
    },
    "evaluate": {"samples": 2},
}


def recipe_table(**sections: dict) -> dict:
    """Return a copy of RECIPE with the keys of `sections` merged in."""
    table = copy.deepcopy(RECIPE)
    for name, values in sections.items():
        table.setdefault(name, {}).update(values)
    return table


def build_recipe(folder: Path, **sections):
    recipe, registry = load_recipe(write_recipe(folder, recipe_table(**sections)))
    return build(recipe, registry)


@pytest.fixture
def built(tmp_path):
    return build_recipe(tmp_path)


@pytest.fixture(scope="module")
def classify_run(tmp_path_factory) -> Path:
    """A RECIPE run folder made by `seqkit run`."""
    folder = tmp_path_factory.mktemp("classify")
    code, _, err = run_cli("run", write_recipe(folder, RECIPE), "--out", folder / "run")
    assert code == 0, err
    return folder / "run"


def read(run_dir: Path, name: str = "last.pt") -> dict:
    return torch.load(run_dir / name, weights_only=True)


# ---------------------------------------------------------------- vocabularies


def test_label_vocabulary_sorted_by_name():
    vocab = label_vocabulary(["tech", "sport", "tech", "business"])

    assert vocab.tokens == [
        "<pad>",
        "<unk>",
        "<bos>",
        "<eos>",
        "business",
        "sport",
        "tech",
    ]


def test_label_vocabulary_rejects_special_name():
    with pytest.raises(DataError, match="'<unk>' is a reserved token name"):
        label_vocabulary(["<unk>", "tech"])


def test_vocabularies_from_training_split(built):
    source = built.vocabularies["source"]

    assert built.vocabularies["target"].tokens[4:] == GENRES
    assert built.task.labels == GENRES
    assert "hippolyta" in source
    assert "Hippolyta" not in source


# ---------------------------------------------------------------- data


def test_sources_end_with_eos(built):
    train = built.task.encoded["train"]
    eos_id = built.vocabularies["source"].eos_id

    assert all(ids[-1] == eos_id for ids in train.sources)
    assert train.lengths.tolist() == [len(ids) for ids in train.sources]
    assert len(train.targets) == 48


def test_empty_and_unknown_texts_keep_one_step(built):
    vocab = built.vocabularies["source"]

    empty, unknown = built.task.encode_texts(["", "qqq zzxq"])

    assert empty.tolist() == [vocab.eos_id]
    assert unknown.tolist() == [vocab.unk_id, vocab.unk_id, vocab.eos_id]


def test_sources_cut_to_seq_len(tmp_path):
    built = build_recipe(tmp_path, train={"seq_len": 3})

    lengths = built.task.encoded["train"].lengths

    assert lengths.max().item() == 3


def test_unseen_label_rejected(built):
    splits = Splits(
        train=[Example("comedies", "a b c d"), Example("tragedies", "e f g h")],
        valid=[Example("histories", "a b")],
        test=[Example("comedies", "a b")],
    )

    with pytest.raises(DataError, match="'histories', which the training split"):
        built.task.prepare(splits)


def test_train_batch_contents(built):
    batch = built.task.train_batch(0, 0)

    assert batch["source"].shape[0] == 10
    assert batch["source"].shape[1] == batch["lengths"].max().item()
    assert batch["lengths"].shape == (10,)
    assert batch["targets"].shape == (10,)
    assert set(batch["targets"].tolist()) <= {4, 5}


def test_epoch_visits_each_example_once(built):
    task = built.task
    steps = task.steps_per_epoch()

    def epoch_rows(epoch):
        return [
            (tuple(row[:length]), target)
            for index in range(steps)
            for row, length, target in zip(
                *(
                    task.train_batch(epoch, index)[key].tolist()
                    for key in ("source", "lengths", "targets")
                ),
                strict=True,
            )
        ]

    first = epoch_rows(0)
    expected = sorted(
        (tuple(ids.tolist()), target)
        for ids, target in zip(
            task.encoded["train"].sources,
            task.encoded["train"].targets.tolist(),
            strict=True,
        )
    )
    assert steps == 5
    assert sorted(first) == expected
    assert epoch_rows(0) == first
    assert epoch_rows(1) != first


def test_last_batch_of_one_trains(tmp_path):
    built = build_recipe(tmp_path, train={"batch_size": 47})
    task, model = built.task, built.model

    batch = task.train_batch(0, task.steps_per_epoch() - 1)
    loss, count = task.loss(model, batch)
    loss.backward()

    assert task.steps_per_epoch() == 2
    assert batch["source"].shape[0] == 1
    assert count == int(batch["lengths"].sum())
    assert math.isfinite(loss.item())


# ---------------------------------------------------------------- loss


def imbalanced_splits() -> Splits:
    """Three comedy lines and one tragedy line to train on."""
    return Splits(
        train=[
            Example("comedies", "now fair hippolyta our nuptial hour"),
            Example("comedies", "draws on apace four happy days"),
            Example("comedies", "another moon but o methinks"),
            Example("tragedies", "who is there nay answer me"),
        ],
        valid=[Example("tragedies", "long live the king")],
        test=[Example("comedies", "four days will quickly steep")],
    )


def test_balanced_class_weights_loss(tmp_path):
    built = build_recipe(tmp_path, train={"class_weights": "balanced"})
    task, model = built.task, built.model
    task.prepare(imbalanced_splits())
    model.eval()
    batch = task.train_batch(0, 0)

    with torch.no_grad():
        weighted, _ = task.loss(model, batch)
        logits = task.label_logits(model, batch)  # (B, C)
    labels = batch["targets"] - 4
    losses = -logits.log_softmax(dim=-1).gather(1, labels[:, None]).squeeze(1)
    weights = torch.tensor([4 / (2 * 3), 4 / (2 * 1)])[labels]
    by_hand = (weights * losses).sum() / weights.sum()

    assert task.class_weights.tolist() == pytest.approx([2 / 3, 2.0])
    assert weighted.item() == pytest.approx(by_hand.item(), rel=1e-6)
    assert weighted.item() != pytest.approx(losses.mean().item(), rel=1e-3)


def test_unweighted_loss_is_mean_cross_entropy(built):
    task, model = built.task, built.model
    model.eval()
    batch = task.train_batch(0, 0)

    with torch.no_grad():
        loss, count = task.loss(model, batch)
        logits = task.label_logits(model, batch)

    assert task.class_weights is None
    assert count == int(batch["lengths"].sum())
    assert loss.item() == pytest.approx(
        F.cross_entropy(logits, batch["targets"] - 4).item(), rel=1e-6
    )


# ---------------------------------------------------------------- evaluation


def test_evaluate_scores_every_example(built):
    result = built.task.evaluate(built.model, "test")

    assert result.tokens == 16
    assert len(result.predictions) == 16
    assert set(result.predictions) <= set(GENRES)
    assert result.references[0] == ["comedies"]
    assert result.level == "word"
    assert math.isfinite(result.loss)


def test_predict_labels_edge_inputs(built):
    ranked = built.task.predict_labels(built.model, ["", "qqq zzxq", "O Romeo"], 5)
    single = built.task.predict_labels(built.model, ["O Romeo"])

    assert len(ranked) == 3
    for pairs in ranked:
        assert sorted(label for label, _ in pairs) == GENRES
        assert sum(p for _, p in pairs) == pytest.approx(1.0)
        assert pairs[0][1] >= pairs[1][1]
    assert len(single) == 1
    assert single[0][0][0] == ranked[2][0][0]
    assert single[0][0][1] == pytest.approx(ranked[2][0][1], abs=1e-6)


def test_argmax_sampler_skips_banned_tokens(built):
    model = built.model.eval()
    head = model.decoder
    with torch.no_grad():
        head.output.bias[:4] = 1e4
        batch = built.task.train_batch(0, 0)
        encoded = model.encode(batch["source"], batch["lengths"])
        state = head.init_state(10, encoded)
        step_model = StepModel(head, encoded, banned=(0, 1, 2, 3))
        generation = ArgmaxSampler().generate(
            step_model, state, torch.full((10,), 2), 1, 3
        )

    assert all(len(ids) == 1 for ids in generation.tokens)
    assert {ids[0] for ids in generation.tokens} <= {4, 5}
    assert generation.scores.shape == (10,)


# ---------------------------------------------------------------- metrics

# Six examples over three labels: a is found 2 of 3 times, b 1 of 2, c 1 of 1.
TRUE = ["a", "a", "a", "b", "b", "c"]
PREDICTED = ["a", "a", "b", "b", "c", "c"]


@pytest.fixture
def labelled() -> EvalResult:
    return EvalResult(
        loss=0.5,
        tokens=6,
        level="word",
        predictions=PREDICTED,
        references=[[label] for label in TRUE],
    )


def test_accuracy_by_hand(labelled):
    assert Accuracy().compute(labelled) == {"accuracy": pytest.approx(4 / 6)}


def test_macro_f1_by_hand(labelled):
    f1 = [0.8, 0.5, 2 / 3]

    assert MacroF1().compute(labelled) == {"macro_f1": pytest.approx(sum(f1) / 3)}


def test_per_class_by_hand(labelled):
    scores = PerClass().compute(labelled)

    assert scores == pytest.approx(
        {
            "precision_a": 1.0,
            "recall_a": 2 / 3,
            "f1_a": 0.8,
            "precision_b": 0.5,
            "recall_b": 0.5,
            "f1_b": 0.5,
            "precision_c": 0.5,
            "recall_c": 1.0,
            "f1_c": 2 / 3,
        }
    )


def test_confusion_counts_by_hand(labelled):
    counts = Confusion().compute(labelled)

    assert counts == {
        "confusion/a/a": 2,
        "confusion/a/b": 1,
        "confusion/a/c": 0,
        "confusion/b/a": 0,
        "confusion/b/b": 1,
        "confusion/b/c": 1,
        "confusion/c/a": 0,
        "confusion/c/b": 0,
        "confusion/c/c": 1,
    }


def test_label_metric_needs_predictions():
    result = EvalResult(loss=1.0, tokens=10, level="char")

    with pytest.raises(SeqkitError, match="metric 'accuracy' needs one predicted"):
        Accuracy().compute(result)


# ---------------------------------------------------------------- runs


def test_run_writes_classification_outputs(classify_run):
    metrics = json.loads((classify_run / "metrics.json").read_text(encoding="utf-8"))
    samples = (classify_run / "samples.txt").read_text(encoding="utf-8")

    assert 0.0 <= metrics["test_accuracy"] <= 1.0
    assert "test_macro_f1" in metrics
    assert "test_recall_tragedies" in metrics
    assert sum(v for k, v in metrics.items() if k.startswith("test_confusion/")) == 16
    assert all(isinstance(value, int | float) for value in metrics.values())
    assert (classify_run / "confusion.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert samples.count("\npredicted: ") == 2
    assert samples.startswith("text: ")
    assert "\ntrue: comedies\n" in samples
    assert samples.endswith("\ntrue: tragedies\n")


def test_resume_equals_uninterrupted(tmp_path, classify_run):
    recipe, registry = load_recipe(write_recipe(tmp_path / "recipe", RECIPE))
    run_dir = tmp_path / "run"

    assert train(recipe, registry, run_dir, stop_at=4) == {}
    metrics = train(recipe, registry, run_dir, resume=True)

    resumed, reference = read(run_dir), read(classify_run)
    assert resumed["train_state"]["history"] == reference["train_state"]["history"]
    for key, tensor in reference["model"].items():
        assert torch.equal(resumed["model"][key], tensor), key
    assert metrics == json.loads(
        (classify_run / "metrics.json").read_text(encoding="utf-8")
    )


def test_loaded_run_predicts_like_trained(classify_run):
    built = load_run(classify_run)

    ranked = built.task.predict_labels(built.model, ["O Romeo, Romeo"], 2)

    assert [label for label, _ in ranked[0]] in (GENRES, GENRES[::-1])


# ---------------------------------------------------------------- command line


def parse_top_line(line: str) -> tuple[str, float]:
    label, probability = line.split("\t")
    return label, float(probability)


def test_classify_prints_label_and_probability(classify_run):
    code, out, err = run_cli("classify", classify_run, "O Romeo", "", "qqq zzxq")

    lines = out.splitlines()
    assert code == 0, err
    assert len(lines) == 3
    for line in lines:
        label, probability = parse_top_line(line)
        assert label in GENRES
        assert 0.5 <= probability <= 1.0


def test_classify_top_k_pairs(classify_run):
    code, out, err = run_cli("classify", classify_run, "O Romeo", "--top-k", "5")

    pairs = [pair.rsplit(":", 1) for pair in out.rstrip("\n").split("\t")]
    assert code == 0, err
    assert sorted(label for label, _ in pairs) == GENRES
    assert float(pairs[0][1]) >= float(pairs[1][1])
    assert sum(float(p) for _, p in pairs) == pytest.approx(1.0, abs=1e-3)


def test_classify_reads_stdin(classify_run, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("O Romeo\n\nA horse, a horse\n"))

    code, out, err = run_cli("classify", classify_run)

    assert code == 0, err
    assert len(out.splitlines()) == 3


def test_classify_rejects_zero_top_k(classify_run):
    code, out, err = run_cli("classify", classify_run, "x", "--top-k", "0")

    assert code == 2
    assert out == ""
    assert err.startswith("error: --top-k must be at least 1, got 0")


def test_classify_rejects_language_model_run(char_run):
    code, _, err = run_cli("classify", char_run, "x")

    assert code == 2
    assert "trained for the 'language-model' task, which cannot label texts" in err


def test_generate_rejects_classification_run(classify_run):
    code, _, err = run_cli("generate", classify_run)

    assert code == 2
    assert "was trained for the 'classification' task" in err
