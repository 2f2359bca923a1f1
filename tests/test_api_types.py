"""Argument types of the `Run` methods that take a list of texts or images."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import write_recipe
from PIL import Image

from seqkit.api import Run
from seqkit.errors import SeqkitError
from seqkit.run import build, load_recipe

# An untrained grapheme-to-phoneme translator on 200 cmudict words: argument
# checks need a real run object, not a trained model.
TRANSLATION_RECIPE = {
    "data": {
        "plugin": "cmudict",
        "max_examples": 200,
        "valid_fraction": 0.1,
        "test_fraction": 0.1,
    },
    "tokenizer": {"plugin": "whitespace"},
    "source_tokenizer": {"plugin": "char"},
    "encoder": {"plugin": "rnn", "embedding_size": 8, "hidden_size": 8},
    "decoder": {"plugin": "rnn", "embedding_size": 8, "hidden_size": 8},
    "attention": {"plugin": "luong"},
    "sampler": {"plugin": "greedy"},
    "train": {"batch_size": 8, "seq_len": 8},
}


# An untrained captioner on the letters A to Z rendered at 16 pixels.
CAPTION_RECIPE = {
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
    "decoder": {"plugin": "rnn", "embedding_size": 8, "hidden_size": 8},
    "attention": {"plugin": "luong"},
    "sampler": {"plugin": "greedy"},
    "train": {"batch_size": 4, "seq_len": 8},
}


def untrained_run(folder: Path, table: dict) -> Run:
    recipe, registry = load_recipe(write_recipe(folder, table))
    built = build(recipe, registry)
    built.model.eval()
    return Run(built, folder / "run")


@pytest.fixture(scope="module")
def translation_run(tmp_path_factory) -> Run:
    return untrained_run(tmp_path_factory.mktemp("translation"), TRANSLATION_RECIPE)


@pytest.fixture(scope="module")
def caption_run(tmp_path_factory) -> Run:
    return untrained_run(tmp_path_factory.mktemp("caption"), CAPTION_RECIPE)


def test_translate_list_of_texts_runs(translation_run):
    outputs = translation_run.translate(["cat", ""])

    assert len(outputs) == 2
    assert outputs[1].text == ""


def test_translate_accepts_tuple(translation_run):
    outputs = translation_run.translate(("cat", "dog"))

    assert len(outputs) == 2


@pytest.mark.parametrize("method", ["classify", "tag", "translate"])
def test_bare_text_rejected(translation_run, method):
    with pytest.raises(TypeError) as caught:
        getattr(translation_run, method)("cat")
    message = str(caught.value)

    assert message.startswith(f"{method}() takes a list of texts, not a str")
    assert f"wrap one text in a list: {method}([text])" in message


@pytest.mark.parametrize("method", ["classify", "tag", "translate"])
def test_text_item_of_wrong_type_rejected(translation_run, method):
    with pytest.raises(TypeError) as caught:
        getattr(translation_run, method)(["cat", None])
    message = str(caught.value)

    assert message.startswith(f"{method}() takes a list of texts")
    assert "texts[1] is NoneType None" in message
    assert "pass each text as a str" in message


def test_translate_bytes_item_rejected(translation_run):
    with pytest.raises(TypeError, match=r"texts\[0\] is bytes b'cat'"):
        translation_run.translate([b"cat"])


def test_translate_number_rejected(translation_run):
    with pytest.raises(TypeError, match=r"takes a list of texts, not int"):
        translation_run.translate(5)


def test_caption_list_of_images_runs(caption_run, tmp_path):
    path = tmp_path / "letter.png"
    Image.new("RGB", (16, 16), (255, 255, 255)).save(path)

    outputs = caption_run.caption([str(path), path, Image.new("L", (16, 16))])

    assert len(outputs) == 3


@pytest.mark.parametrize(
    "image",
    ["letter.png", Path("letter.png"), Image.new("RGB", (4, 4))],
    ids=["str", "path", "pil"],
)
def test_bare_image_rejected(caption_run, image):
    with pytest.raises(TypeError) as caught:
        caption_run.caption(image)
    message = str(caught.value)

    assert message.startswith("caption() takes a list of images, not a single ")
    assert "wrap one image in a list: caption([image])" in message


def test_image_item_of_wrong_type_rejected(caption_run):
    with pytest.raises(TypeError) as caught:
        caption_run.caption([Path("a.png"), 3])
    message = str(caught.value)

    assert "caption() takes a list of images, but images[1] is int 3" in message
    assert "pass each image as a path (str or pathlib.Path) or a PIL image" in message


def test_valid_images_reach_task_check(translation_run):
    # Valid arguments pass the type checks, so the error is about the task.
    images = ["a.png", Path("b.png"), Image.new("RGB", (4, 4))]

    with pytest.raises(SeqkitError, match="which cannot caption images"):
        translation_run.caption(images)
