"""Checkpoints: atomic writes, safe loading, bad files and the stored vocabulary."""

from __future__ import annotations

import os
import shutil
import stat

import pytest
import torch
from helpers import char_recipe, train_recipe, write_recipe

from seqkit.checkpoint import FORMAT, load_checkpoint, save_checkpoint
from seqkit.errors import CheckpointError, SeqkitError
from seqkit.run import load_run
from seqkit.vocab import Vocabulary


def copy_run(char_run, tmp_path):
    target = tmp_path / "run"
    shutil.copytree(char_run, target)
    return target


def test_round_trip(tmp_path):
    payload = {
        "model": {"w": torch.arange(6.0).view(2, 3)},
        "history": [1.5, 2.5],
        "name": "x",
    }
    path = tmp_path / "sub" / "c.pt"

    save_checkpoint(payload, path)
    loaded = load_checkpoint(path)

    assert loaded["format"] == FORMAT
    assert torch.equal(loaded["model"]["w"], payload["model"]["w"])
    assert loaded["history"] == [1.5, 2.5]
    assert loaded["name"] == "x"
    assert [p.name for p in path.parent.iterdir()] == ["c.pt"]


def test_run_checkpoint_loads_weights_only(char_run):
    for name in ("checkpoint.pt", "last.pt"):
        payload = torch.load(char_run / name, weights_only=True)

        assert payload["format"] == FORMAT
        assert payload["vocabularies"]["target"][:4] == [
            "<pad>",
            "<unk>",
            "<bos>",
            "<eos>",
        ]
        assert payload["recipe"]["decoder"]["hidden_size"] == 16


def test_missing_checkpoint(tmp_path):
    path = tmp_path / "checkpoint.pt"

    with pytest.raises(CheckpointError) as caught:
        load_checkpoint(path)

    assert str(caught.value) == f"checkpoint not found: {path}"


def test_truncated_checkpoint(tmp_path, char_run):
    path = tmp_path / "checkpoint.pt"
    data = (char_run / "checkpoint.pt").read_bytes()
    path.write_bytes(data[: len(data) // 2])

    with pytest.raises(CheckpointError) as caught:
        load_checkpoint(path)

    assert str(caught.value).startswith(
        f"cannot read checkpoint {path}: the file is truncated"
    )


@pytest.mark.parametrize(
    "content", [b"", bytes(range(256)) * 8], ids=["empty", "random-bytes"]
)
def test_corrupt_checkpoint(tmp_path, content):
    path = tmp_path / "checkpoint.pt"
    path.write_bytes(content)

    with pytest.raises(CheckpointError) as caught:
        load_checkpoint(path)

    assert str(path) in str(caught.value)


@pytest.mark.parametrize(
    "payload",
    [[1, 2, 3], {"model": {}}, {"format": "other-1"}],
    ids=["list", "dict", "format"],
)
def test_foreign_checkpoint(tmp_path, payload):
    path = tmp_path / "checkpoint.pt"
    torch.save(payload, path)

    with pytest.raises(CheckpointError) as caught:
        load_checkpoint(path)

    assert str(caught.value).startswith(f"{path} is not a seqkit checkpoint")


def test_pickled_object_rejected(tmp_path):
    # weights_only=True refuses arbitrary classes, so loading runs no code.
    path = tmp_path / "checkpoint.pt"
    torch.save(
        {"format": FORMAT, "payload": Vocabulary(["<pad>", "<unk>", "<bos>", "<eos>"])},
        path,
    )

    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        load_checkpoint(path)


def test_failed_save_keeps_previous(tmp_path):
    path = tmp_path / "checkpoint.pt"
    save_checkpoint({"step": 1}, path)

    # A local function cannot be pickled, so torch.save fails halfway.
    with pytest.raises(AttributeError, match="Can't pickle local object"):
        save_checkpoint({"step": 2, "bad": lambda: None}, path)

    assert load_checkpoint(path)["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]


def test_load_run_keeps_stored_vocabulary(tmp_path, char_run, monkeypatch):
    stored = torch.load(char_run / "checkpoint.pt", weights_only=True)["vocabularies"][
        "target"
    ]

    def fail(*args):
        raise AssertionError("load_run rebuilt the vocabulary from data")

    monkeypatch.setattr(
        "seqkit_builtins.tokenizers.CharTokenizer.build_vocabulary", fail
    )
    built = load_run(copy_run(char_run, tmp_path))
    with_data = load_run(char_run, load_data=True)

    assert built.vocabularies["target"].tokens == stored
    assert with_data.vocabularies["target"].tokens == stored
    assert len(stored) == built.model.decoder.output.out_features


def test_load_run_restores_weights(char_run):
    built = load_run(char_run)

    stored = torch.load(char_run / "checkpoint.pt", weights_only=True)["model"]
    for name, tensor in built.model.state_dict().items():
        assert torch.equal(tensor, stored[name]), name
    assert not built.model.training


def test_tied_weights_survive_load(tmp_path):
    table = char_recipe(
        decoder={"tie_weights": True, "embedding_size": 16}, train={"max_steps": 1}
    )
    train_recipe(write_recipe(tmp_path, table), tmp_path / "run")

    decoder = load_run(tmp_path / "run").model.decoder

    assert decoder.output.weight is decoder.embedding.weight
    assert decoder.projection is None


def test_load_run_missing_folder(tmp_path):
    with pytest.raises(SeqkitError, match="run folder not found"):
        load_run(tmp_path / "nowhere")


def test_load_run_without_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="checkpoint not found: .*checkpoint.pt"):
        load_run(tmp_path)


def test_load_run_truncated_checkpoint(tmp_path, char_run):
    run_dir = copy_run(char_run, tmp_path)
    data = (run_dir / "checkpoint.pt").read_bytes()
    (run_dir / "checkpoint.pt").write_bytes(data[:1000])

    with pytest.raises(CheckpointError) as caught:
        load_run(run_dir)

    assert str(run_dir / "checkpoint.pt") in str(caught.value)


def test_saved_file_follows_umask(tmp_path):
    path = tmp_path / "mode.pt"
    old = os.umask(0o022)
    try:
        save_checkpoint({"x": torch.zeros(1)}, path)
    finally:
        os.umask(old)

    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_corrupt_message_hides_unsafe_advice(tmp_path):
    path = tmp_path / "checkpoint.pt"
    torch.save({"obj": Vocabulary(["<pad>", "<unk>", "<bos>", "<eos>"])}, path)

    with pytest.raises(CheckpointError) as caught:
        load_checkpoint(path)

    assert "weights_only" not in str(caught.value)
    assert str(path) in str(caught.value)
