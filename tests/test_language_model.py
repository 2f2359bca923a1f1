"""The language-model task: batches, evaluation and metrics."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from helpers import char_recipe, write_recipe
from seqkit_builtins.metrics import BitsPerCharacter, Perplexity

from seqkit.errors import DataError
from seqkit.interfaces import EvalResult
from seqkit.run import build, load_recipe


def build_recipe(tmp_path, **sections):
    recipe, registry = load_recipe(write_recipe(tmp_path, char_recipe(**sections)))
    return build(recipe, registry)


@pytest.fixture
def built(tmp_path):
    return build_recipe(tmp_path)


def test_stream_wraps_documents(built):
    stream = built.task.streams["train"]
    vocab = built.vocabularies["target"]

    assert stream[0] == vocab.bos_id
    assert stream[-1] == vocab.eos_id
    assert vocab.decode(stream[1:8].tolist()) == list("Macbeth")


def test_train_batch_targets_shift_inputs(built):
    batch = built.task.train_batch(0, 0)

    assert batch["inputs"].shape == (4, 16)
    assert batch["targets"].shape == (4, 16)
    assert torch.equal(batch["inputs"][:, 1:], batch["targets"][:, :-1])


def test_epoch_windows_reshuffled(built):
    task = built.task
    steps = task.steps_per_epoch()
    stream = task.streams["train"]

    def epoch_windows(epoch):
        return [
            tuple(row)
            for i in range(steps)
            for row in task.train_batch(epoch, i)["inputs"].tolist()
        ]

    first = epoch_windows(0)
    assert len(first) == (len(stream) - 1) // 16
    assert len(set(first)) == len(first)
    assert epoch_windows(0) == first
    assert epoch_windows(1) != first


def test_batches_same_for_same_seed(tmp_path):
    first = build_recipe(tmp_path / "a")
    second = build_recipe(tmp_path / "b")
    other_seed = build_recipe(tmp_path / "c", train={"seed": 9})

    assert torch.equal(
        first.task.train_batch(0, 2)["inputs"], second.task.train_batch(0, 2)["inputs"]
    )
    assert not torch.equal(
        first.task.train_batch(0, 2)["inputs"],
        other_seed.task.train_batch(0, 2)["inputs"],
    )


def test_evaluate_matches_single_forward(tmp_path):
    built = build_recipe(tmp_path, evaluate={"batch_size": 1})
    stream = built.task.streams["test"].long()

    result = built.task.evaluate(built.model, "test")

    with torch.no_grad():
        built.model.eval()
        logits = built.model(stream[None, :-1]).logits[0]
    expected = F.cross_entropy(logits, stream[1:]).item()
    assert result.tokens == len(stream) - 1
    assert result.loss == pytest.approx(expected, rel=1e-6)
    assert result.level == "char"


def test_evaluate_batches_cap(built):
    capped = built.task.evaluate(built.model, "valid", max_batches=1)
    whole = built.task.evaluate(built.model, "valid")

    assert capped.tokens == 4 * 16
    assert whole.tokens > capped.tokens


def test_evaluate_restores_train_mode(built):
    built.model.train()

    built.task.evaluate(built.model, "valid")

    assert built.model.training


def test_seq_len_longer_than_training_split(tmp_path):
    with pytest.raises(DataError) as caught:
        build_recipe(tmp_path, train={"seq_len": 5000})

    assert "fewer than train.seq_len + 2 = 5002" in str(caught.value)


@pytest.mark.parametrize("split", ["valid", "test"])
def test_empty_split_rejected(tmp_path, split):
    with pytest.raises(DataError) as caught:
        build_recipe(tmp_path, data={f"{split}_fraction": 0.0})

    assert str(caught.value).startswith(f"the {split} split is empty")
    assert f"data.{split}_fraction" in str(caught.value)


def test_metrics_from_loss():
    result = EvalResult(loss=math.log(8), tokens=10, level="char")

    assert BitsPerCharacter().compute(result) == {"bpc": pytest.approx(3.0)}
    assert Perplexity().compute(result) == {"ppl": pytest.approx(8.0)}
    assert Perplexity().compute(EvalResult(loss=1e6, tokens=1, level="word"))[
        "ppl"
    ] == math.exp(700.0)


def test_special_only_vocabulary_rejected(tmp_path):
    path = write_recipe(tmp_path, char_recipe(tokenizer={"min_count": 100000}))
    recipe, registry = load_recipe(path)

    with pytest.raises(DataError) as caught:
        build(recipe, registry)

    assert "the target vocabulary contains only the special tokens" in str(caught.value)
    assert "tokenizer.min_count" in str(caught.value)
