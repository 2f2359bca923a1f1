"""The captioning task end to end on rendered glyphs and on a Flickr8k-style folder."""

from __future__ import annotations

import copy
import json
import logging

import pytest
import torch
from helpers import write_recipe
from PIL import Image

from seqkit.cli import main
from seqkit.run import build, load_recipe, load_run, train

PNG = b"\x89PNG\r\n\x1a\n"

# The 26 capital Latin letters in two fonts, 16 x 16 pixels: a small convnet
# and an LSTM decoder with Luong attention, 4 epochs of 9 steps.
GLYPH_RECIPE = {
    "data": {
        "plugin": "glyphs",
        "characters": ["U+0041..U+005A"],
        "fonts": ["DejaVuSans", "DejaVuSerif"],
        "sizes": [12],
        "image_size": 16,
        "valid_fraction": 0.2,
        "test_fraction": 0.2,
    },
    "tokenizer": {"plugin": "word"},
    "encoder": {"plugin": "cnn", "backbone": "small", "image_size": 16, "channels": 8},
    "decoder": {"plugin": "rnn", "embedding_size": 16, "hidden_size": 32},
    "attention": {"plugin": "luong"},
    "sampler": {"plugin": "beam", "beam_size": 2},
    "train": {
        "epochs": 4,
        "batch_size": 4,
        "seq_len": 8,
        "lr": 0.01,
        "log_every": 10,
        "seed": 2,
    },
    "evaluate": {"samples": 2},
}


@pytest.fixture(scope="module")
def glyph_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("glyphs")
    recipe, registry = load_recipe(write_recipe(folder, GLYPH_RECIPE))
    metrics = train(recipe, registry, folder / "run")
    return folder / "run", metrics


def test_run_writes_caption_metrics(glyph_run):
    run_dir, metrics = glyph_run
    stored = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))

    assert stored == metrics
    for order in (1, 2, 3, 4):
        assert 0 <= metrics[f"test_bleu{order}"] <= 100
    assert metrics["test_bleu1"] >= metrics["test_bleu4"]
    assert metrics["test_bleu1"] > 30
    assert 0 <= metrics["test_exact_match"] <= 1
    assert metrics["bleu_signature"].startswith("nrefs:")


def test_run_draws_samples_and_attention(glyph_run):
    run_dir, _ = glyph_run
    samples = (run_dir / "samples.txt").read_text(encoding="utf-8").split("\n\n")

    assert (run_dir / "samples.png").read_bytes()[:8] == PNG
    assert (run_dir / "attention.png").read_bytes()[:8] == PNG
    assert len(samples) == 2
    assert samples[0].startswith("image: <in memory>\npredicted: ")
    assert "\nreferences: latin capital letter " in samples[0]


def test_caption_cli_one_line_per_image(glyph_run, tmp_path, capsys):
    run_dir, _ = glyph_run
    paths = []
    for name, mode in (("gray.png", "L"), ("rgba.png", "RGBA"), ("one.png", "1")):
        Image.new(mode, (20, 30), 255).save(tmp_path / name)
        paths.append(str(tmp_path / name))

    assert main(["caption", str(run_dir), *paths, "--beam-size", "3"]) == 0
    lines = capsys.readouterr().out.rstrip("\n").split("\n")

    assert len(lines) == 3


def test_caption_cli_names_unreadable_image(glyph_run, tmp_path, capsys):
    run_dir, _ = glyph_run
    broken = tmp_path / "broken.png"
    broken.write_bytes(PNG + b"not an image")

    assert main(["caption", str(run_dir), str(broken)]) == 2
    assert str(broken) in capsys.readouterr().err


def test_caption_beam_one_equals_greedy(glyph_run):
    from seqkit_builtins.beam import BeamOptions, BeamSearch
    from seqkit_builtins.samplers import GreedyOptions, GreedySampler

    built = load_run(glyph_run[0])
    images = [Image.new("L", (16, 16), value) for value in (0, 128, 255)]

    greedy = built.task.caption(built.model, images, GreedySampler(GreedyOptions()))
    beam = built.task.caption(built.model, images, BeamSearch(BeamOptions(beam_size=1)))

    assert [c.text for c in beam] == [c.text for c in greedy]
    assert [c.score for c in beam] == [c.score for c in greedy]


def test_worker_batches_equal_in_process_batches(tmp_path):
    recipe, registry = load_recipe(write_recipe(tmp_path, GLYPH_RECIPE))
    in_process = build(recipe, registry).task
    table = copy.deepcopy(GLYPH_RECIPE)
    table["train"]["num_workers"] = 1
    recipe, registry = load_recipe(write_recipe(tmp_path / "workers", table))
    with_worker = build(recipe, registry).task

    for index in (0, 1, 5):
        a, b = in_process.train_batch(1, index), with_worker.train_batch(1, index)
        assert torch.equal(a["source"], b["source"])
        assert torch.equal(a["outputs"], b["outputs"])
    # out of order, as a resumed run asks
    assert torch.equal(
        in_process.train_batch(0, 3)["source"], with_worker.train_batch(0, 3)["source"]
    )


def write_flickr_folder(folder, broken: str) -> None:
    """Write 12 images with 2 captions each; `broken` is cut short."""
    images = folder / "images"
    images.mkdir(parents=True)
    rows = ["image,caption"]
    colours = {"red": (200, 0, 0), "green": (0, 180, 0), "blue": (0, 0, 220)}
    for number in range(12):
        colour = list(colours)[number % 3]
        name = f"{colour}{number}.png"
        Image.new("RGB", (24 + number, 20), colours[colour]).save(images / name)
        rows.append(f"{name},a {colour} square")
        rows.append(f'{name},"plain {colour}, nothing else"')
    (folder / "captions.txt").write_text("\n".join(rows) + "\n", encoding="utf-8")
    data = (images / broken).read_bytes()
    (images / broken).write_bytes(data[: len(data) // 2])


def test_training_skips_unreadable_images(tmp_path, caplog):
    write_flickr_folder(tmp_path, broken="red0.png")
    table = copy.deepcopy(GLYPH_RECIPE)
    table["data"] = {
        "plugin": "flickr8k",
        "captions": "captions.txt",
        "images": "images",
        "valid_fraction": 0.2,
        "test_fraction": 0.2,
    }
    table["train"].update(epochs=2, batch_size=4)
    recipe, registry = load_recipe(write_recipe(tmp_path, table))

    with caplog.at_level(logging.WARNING, logger="seqkit_builtins"):
        metrics = train(recipe, registry, tmp_path / "run")

    skipped = [r.getMessage() for r in caplog.records if "unreadable" in r.getMessage()]
    assert any("red0.png" in message for message in skipped)
    assert "test_bleu4" in metrics
