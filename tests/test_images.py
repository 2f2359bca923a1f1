"""Tests for image loading, letterboxing and the captioning image transforms."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import ExifTags, Image, ImageFile
from seqkit_builtins.images import (
    ImageError,
    fit_image,
    image_transform,
    load_for_model,
    load_image,
)

from seqkit.errors import DataError

# Turn an unclosed file, in a test or in seqkit, into a failure.
pytestmark = [
    pytest.mark.filterwarnings("error::ResourceWarning"),
    pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning"),
]

WHITE = (255, 255, 255)
GREEN = (0, 128, 0)
RED = (255, 0, 0)
BLUE = (0, 0, 255)


def pixels(image: Image.Image) -> list[tuple[int, int, int]]:
    """Return the pixels of the first row, left to right."""
    return [image.getpixel((x, 0)) for x in range(image.width)]


def save(image: Image.Image, path: Path, **options) -> Path:
    image.save(path, **options)
    return path


def stored(path: Path) -> Image.Image:
    """Return the image as Pillow reads it, without seqkit's conversion."""
    with Image.open(path) as image:
        image.load()
        return image


def close_to(actual, expected, tolerance: int) -> bool:
    return all(abs(a - e) <= tolerance for a, e in zip(actual, expected, strict=True))


# Modes and transparency


def test_rgb_png_is_unchanged(tmp_path):
    path = save(Image.new("RGB", (3, 2), (10, 20, 30)), tmp_path / "rgb.png")
    image = load_image(path)
    assert image.mode == "RGB"
    assert image.size == (3, 2)
    assert pixels(image) == [(10, 20, 30)] * 3


def test_bilevel_png(tmp_path):
    source = Image.new("1", (2, 1), 0)
    source.putpixel((1, 0), 1)
    image = load_image(save(source, tmp_path / "bilevel.png"))
    assert image.mode == "RGB"
    assert pixels(image) == [(0, 0, 0), WHITE]


def test_grayscale_png(tmp_path):
    image = load_image(save(Image.new("L", (1, 1), 100), tmp_path / "gray.png"))
    assert pixels(image) == [(100, 100, 100)]


def test_grayscale_alpha_png(tmp_path):
    path = save(Image.new("LA", (1, 1), (100, 128)), tmp_path / "la.png")
    # 100 * 128/255 + 255 * 127/255 = 177.2
    assert pixels(load_image(path)) == [(177, 177, 177)]


def test_rgba_half_alpha_over_white(tmp_path):
    path = save(Image.new("RGBA", (1, 1), (255, 0, 0, 128)), tmp_path / "rgba.png")
    # Green and blue: 0 * 128/255 + 255 * 127/255 = 127.
    assert pixels(load_image(path)) == [(255, 127, 127)]


def test_rgba_transparent_takes_background(tmp_path):
    path = save(Image.new("RGBA", (1, 1), (255, 0, 0, 0)), tmp_path / "clear.png")
    assert pixels(load_image(path, background=(10, 20, 30))) == [(10, 20, 30)]


def test_rgba_opaque_keeps_colour(tmp_path):
    path = save(Image.new("RGBA", (1, 1), (1, 2, 3, 255)), tmp_path / "opaque.png")
    assert pixels(load_image(path, background=(200, 200, 200))) == [(1, 2, 3)]


def test_palette_without_transparency(tmp_path):
    source = Image.new("P", (2, 1))
    source.putpalette([*RED, *BLUE])
    source.putpixel((1, 0), 1)
    image = load_image(save(source, tmp_path / "palette.png"))
    assert pixels(image) == [RED, BLUE]


def test_palette_transparent_index(tmp_path):
    source = Image.new("P", (2, 1))
    source.putpalette([*RED, *BLUE])
    source.putpixel((1, 0), 1)
    path = save(source, tmp_path / "palette.png", transparency=1)
    assert stored(path).info["transparency"] == 1
    assert pixels(load_image(path, background=GREEN)) == [RED, GREEN]


def test_palette_alpha_per_entry(tmp_path):
    source = Image.new("P", (2, 1))
    source.putpalette([*RED, *BLUE])
    source.putpixel((1, 0), 1)
    # The tRNS chunk gives entry 0 alpha 255 and entry 1 alpha 128.
    path = save(source, tmp_path / "palette.png", transparency=bytes([255, 128]))
    assert stored(path).info["transparency"] == bytes([255, 128])
    # Red and green over white: 255 * 127/255 = 127.
    assert pixels(load_image(path)) == [RED, (127, 127, 255)]


def test_palette_gif_transparency(tmp_path):
    source = Image.new("P", (2, 1))
    source.putpalette([*RED, *BLUE])
    source.putpixel((1, 0), 1)
    path = save(source, tmp_path / "palette.gif", transparency=0)
    assert pixels(load_image(path, background=GREEN)) == [GREEN, BLUE]


def test_grayscale_trns_value(tmp_path):
    source = Image.new("L", (2, 1), 50)
    source.putpixel((1, 0), 7)
    path = save(source, tmp_path / "gray.png", transparency=7)
    assert pixels(load_image(path, background=GREEN)) == [(50, 50, 50), GREEN]


def test_rgb_trns_colour(tmp_path):
    source = Image.new("RGB", (2, 1), (1, 2, 3))
    source.putpixel((1, 0), (9, 9, 9))
    path = save(source, tmp_path / "rgb.png", transparency=(1, 2, 3))
    assert pixels(load_image(path, background=GREEN)) == [GREEN, (9, 9, 9)]


def test_cmyk_tiff(tmp_path):
    path = save(Image.new("CMYK", (1, 1), (0, 0, 0, 128)), tmp_path / "cmyk.tif")
    assert stored(path).mode == "CMYK"
    # Pillow: each channel is (255 - C) * (255 - K) / 255 = 127.
    assert pixels(load_image(path)) == [(127, 127, 127)]


def test_cmyk_jpeg(tmp_path):
    source = Image.new("CMYK", (16, 16), (0, 255, 255, 0))
    path = save(source, tmp_path / "cmyk.jpg", quality=95)
    assert stored(path).mode == "CMYK"
    image = load_image(path)
    assert image.mode == "RGB"
    # JPEG is lossy, so allow 2 levels of rounding in the decoder.
    assert close_to(image.getpixel((8, 8)), RED, tolerance=2)


def test_i16_png_scales_by_257(tmp_path):
    samples = np.array([[0, 100 * 257, 65535, 1000]], dtype=np.uint16)
    path = save(Image.fromarray(samples), tmp_path / "deep.png")
    assert stored(path).mode == "I;16"
    # 1000 / 257 = 3.9, rounded to 4.
    expected = [(0, 0, 0), (100, 100, 100), WHITE, (4, 4, 4)]
    assert pixels(load_image(path)) == expected


def test_i16_png_trns_value(tmp_path):
    samples = np.array([[65535, 1000]], dtype=np.uint16)
    path = save(Image.fromarray(samples), tmp_path / "deep.png", transparency=1000)
    assert pixels(load_image(path, background=GREEN)) == [WHITE, GREEN]


def test_i16_big_endian_in_memory():
    source = Image.new("I;16B", (2, 1))
    source.putpixel((0, 0), 65535)
    source.putpixel((1, 0), 50 * 257)
    assert pixels(load_image(source)) == [WHITE, (50, 50, 50)]


def test_int32_tiff_in_16_bit_range(tmp_path):
    samples = np.array([[0, 25700, 65535]], dtype=np.int32)
    path = save(Image.fromarray(samples, "I"), tmp_path / "int.tif")
    assert stored(path).mode == "I"
    assert pixels(load_image(path)) == [(0, 0, 0), (100, 100, 100), WHITE]


def test_int32_from_grayscale_keeps_8_bit():
    gray = Image.new("L", (3, 1))
    for x, value in enumerate([0, 7, 200]):
        gray.putpixel((x, 0), value)
    source = gray.convert("I")
    assert source.mode == "I"
    assert pixels(load_image(source)) == [(0, 0, 0), (7, 7, 7), (200, 200, 200)]


def test_int32_tiff_in_8_bit_range(tmp_path):
    samples = np.array([[0, 100, 255]], dtype=np.int32)
    path = save(Image.fromarray(samples), tmp_path / "int.tif")
    assert stored(path).mode == "I"
    assert pixels(load_image(path)) == [(0, 0, 0), (100, 100, 100), WHITE]


def test_int32_tiff_above_255_is_16_bit(tmp_path):
    samples = np.array([[255, 256, 25700]], dtype=np.int32)
    path = save(Image.fromarray(samples), tmp_path / "int.tif")
    # 255 / 257 = 0.99 and 256 / 257 = 1.0, both rounded to 1.
    assert pixels(load_image(path)) == [(1, 1, 1), (1, 1, 1), (100, 100, 100)]


def test_int32_tiff_outside_16_bit_range(tmp_path):
    samples = np.array([[-100, 0, 300]], dtype=np.int32)
    path = save(Image.fromarray(samples, "I"), tmp_path / "int.tif")
    # min..max stretch: 0 is at 100/400 of the range, 63.75, rounded to 64.
    assert pixels(load_image(path)) == [(0, 0, 0), (64, 64, 64), WHITE]


def test_float_tiff_in_unit_range(tmp_path):
    samples = np.array([[0.0, 0.2, 1.0, np.nan]], dtype=np.float32)
    path = save(Image.fromarray(samples, "F"), tmp_path / "float.tif")
    assert stored(path).mode == "F"
    # 0.2 * 255 = 51, and NaN becomes 0.
    expected = [(0, 0, 0), (51, 51, 51), WHITE, (0, 0, 0)]
    assert pixels(load_image(path)) == expected


def test_float_tiff_outside_unit_range(tmp_path):
    samples = np.array([[-1.0, 0.0, 3.0]], dtype=np.float32)
    path = save(Image.fromarray(samples, "F"), tmp_path / "float.tif")
    assert pixels(load_image(path)) == [(0, 0, 0), (64, 64, 64), WHITE]


@pytest.mark.parametrize(
    ("mode", "color", "expected"),
    [
        ("PA", (0, 0), WHITE),
        ("La", (0, 0), WHITE),
        ("RGBa", (0, 0, 0, 0), WHITE),
        ("RGBX", (1, 2, 3, 0), (1, 2, 3)),
        ("HSV", (0, 255, 255), RED),
        ("YCbCr", (255, 128, 128), WHITE),
    ],
)
def test_other_modes_in_memory(mode, color, expected):
    image = load_image(Image.new(mode, (1, 1), color))
    assert image.mode == "RGB"
    assert pixels(image) == [expected]


def test_lab_tiff(tmp_path):
    source = Image.new("LAB", (2, 1), (0, 128, 128))
    source.putpixel((1, 0), (255, 128, 128))
    path = save(source, tmp_path / "lab.tif")
    assert stored(path).mode == "LAB"
    black, white = pixels(load_image(path))
    # Pillow 13's LAB conversion rounds black to (1, 0, 1) and white to
    # (254, 255, 254).
    assert close_to(black, (0, 0, 0), tolerance=1)
    assert close_to(white, WHITE, tolerance=1)


@pytest.mark.parametrize("background", [(0, 0), (0, 0, 256), (0, 0, 1.0), "red"])
def test_invalid_background_raises(background):
    with pytest.raises(ValueError, match="background"):
        load_image(Image.new("RGB", (1, 1)), background=background)


def test_background_list_accepted():
    source = Image.new("RGBA", (1, 1), (0, 0, 0, 0))
    assert pixels(load_image(source, background=[0, 128, 0])) == [GREEN]
    letterbox = fit_image(Image.new("RGB", (4, 2), RED), 4, background=[0, 128, 0])
    assert letterbox.getpixel((0, 0)) == GREEN


# EXIF orientation


def marked_image() -> Image.Image:
    """Return a 64 x 32 white image with a red 16 x 16 block at the top left."""
    image = Image.new("RGB", (64, 32), WHITE)
    image.paste(RED, (0, 0, 16, 16))
    return image


def exif_orientation(value: int) -> Image.Exif:
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = value
    return exif


def test_exif_orientation_6_rotates_clockwise(tmp_path):
    path = tmp_path / "rotated.jpg"
    marked_image().save(path, exif=exif_orientation(6), quality=95)
    image = load_image(path)
    assert image.size == (32, 64)
    # A clockwise quarter turn moves the top-left corner to the top right.
    assert close_to(image.getpixel((24, 8)), RED, tolerance=8)
    assert close_to(image.getpixel((8, 8)), WHITE, tolerance=8)


def test_exif_orientation_8_rotates_anticlockwise(tmp_path):
    path = tmp_path / "rotated.png"
    marked_image().save(path, exif=exif_orientation(8))
    image = load_image(path)
    assert image.size == (32, 64)
    # An anticlockwise quarter turn moves the top-left corner to the bottom left.
    assert image.getpixel((0, 63)) == RED
    assert image.getpixel((15, 48)) == RED
    assert image.getpixel((16, 48)) == WHITE
    assert image.getpixel((0, 0)) == WHITE


def test_open_image_keeps_orientation():
    source = marked_image()
    source.getexif()[ExifTags.Base.Orientation] = 6
    assert load_image(source).size == (64, 32)


# Unreadable files


def truncated_copy(path: Path, fraction: float = 0.5) -> Path:
    data = path.read_bytes()
    cut = path.with_name(f"cut-{path.name}")
    cut.write_bytes(data[: int(len(data) * fraction)])
    return cut


def noise(width: int, height: int) -> Image.Image:
    """Return an RGB image of random pixels, which compresses poorly."""
    generator = np.random.default_rng(0)
    return Image.fromarray(generator.integers(0, 256, (height, width, 3), np.uint8))


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_truncated_file_raises(tmp_path, suffix):
    whole = save(noise(64, 64), tmp_path / f"noise{suffix}")
    assert load_image(whole).size == (64, 64)
    cut = truncated_copy(whole)
    with pytest.raises(ImageError, match="truncated") as caught:
        load_image(cut)
    assert str(cut) in str(caught.value)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_non_image_file_raises(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("not an image\n")
    with pytest.raises(ImageError, match="not an image file") as caught:
        load_image(path)
    assert str(path) in str(caught.value)


def test_empty_file_raises(tmp_path):
    path = tmp_path / "empty.jpg"
    path.write_bytes(b"")
    with pytest.raises(ImageError, match=str(path)):
        load_image(path)


def test_missing_file_raises(tmp_path):
    path = tmp_path / "missing.png"
    with pytest.raises(ImageError, match="not found") as caught:
        load_image(str(path))
    assert str(path) in str(caught.value)


def test_folder_raises(tmp_path):
    with pytest.raises(ImageError, match="is a folder"):
        load_image(tmp_path)


def test_image_error_is_data_error():
    assert issubclass(ImageError, DataError)


def test_decompression_bomb_warning_raises(tmp_path, monkeypatch):
    path = save(Image.new("L", (40, 40)), tmp_path / "bomb.png")
    # Pillow warns above MAX_IMAGE_PIXELS (1,600 > 1,000) and raises above twice it.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(ImageError, match="decompression bomb") as caught:
        load_image(path)
    assert str(path) in str(caught.value)


def test_decompression_bomb_error_raises(tmp_path, monkeypatch):
    path = save(Image.new("L", (50, 50)), tmp_path / "bomb.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(ImageError, match="decompression bomb"):
        load_image(path)


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
def test_no_file_handle_leaks(tmp_path):
    good = save(noise(32, 32), tmp_path / "good.jpg")
    cut = truncated_copy(save(noise(64, 64), tmp_path / "noise.png"))
    text = tmp_path / "text.png"
    text.write_text("text")
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(5):
        load_image(good)
        for bad in (cut, text):
            with pytest.raises(ImageError):
                load_image(bad)
    assert len(os.listdir("/proc/self/fd")) == before


# Letterboxing


@pytest.mark.parametrize(("width", "height"), [(1, 1), (8, 8)])
def test_fit_upsamples_tiny_images(width, height):
    image = fit_image(Image.new("RGB", (width, height), (10, 200, 30)), 224)
    assert image.size == (224, 224)
    # A uniform image stays uniform under bicubic interpolation.
    assert image.getcolors() == [(224 * 224, (10, 200, 30))]


def test_fit_downsamples_landscape():
    image = fit_image(Image.new("RGB", (3000, 2000), BLUE), 224)
    assert image.size == (224, 224)
    # 2000 * 224 / 3000 = 149.3 rows, so 149 rows start at (224 - 149) // 2 = 37.
    assert image.getpixel((112, 36)) == WHITE
    assert image.getpixel((112, 37)) == BLUE
    assert image.getpixel((112, 185)) == BLUE
    assert image.getpixel((112, 186)) == WHITE
    assert image.getpixel((0, 112)) == BLUE
    assert image.getpixel((223, 112)) == BLUE


def test_fit_downsamples_portrait():
    image = fit_image(Image.new("RGB", (2000, 3000), BLUE), 224, background=GREEN)
    assert image.getpixel((36, 112)) == GREEN
    assert image.getpixel((37, 112)) == BLUE
    assert image.getpixel((185, 112)) == BLUE
    assert image.getpixel((186, 112)) == GREEN


@pytest.mark.parametrize("height", [1, 3])
def test_fit_very_wide_keeps_one_row(height):
    image = fit_image(Image.new("RGB", (2000, height), RED), 224)
    assert image.size == (224, 224)
    # 3 * 224 / 2000 = 0.3 rows, so both heights give 1 row at (224 - 1) // 2.
    assert image.getpixel((112, 111)) == RED
    assert image.getpixel((0, 111)) == RED
    assert image.getpixel((112, 110)) == WHITE
    assert image.getpixel((112, 112)) == WHITE


@pytest.mark.parametrize("width", [1, 3])
def test_fit_very_tall_keeps_one_column(width):
    image = fit_image(Image.new("RGB", (width, 2000), RED), 224)
    assert image.size == (224, 224)
    assert image.getpixel((111, 112)) == RED
    assert image.getpixel((111, 223)) == RED
    assert image.getpixel((110, 112)) == WHITE
    assert image.getpixel((112, 112)) == WHITE


def test_fit_exact_size_is_unchanged():
    source = noise(32, 32)
    assert fit_image(source, 32).tobytes() == source.tobytes()


def test_fit_composites_alpha_on_background():
    image = fit_image(Image.new("RGBA", (10, 5), (255, 0, 0, 0)), 20, background=GREEN)
    assert image.mode == "RGB"
    assert image.getcolors() == [(400, GREEN)]


@pytest.mark.parametrize("size", [0, -1, 2.5, True])
def test_fit_rejects_invalid_size(size):
    with pytest.raises(ValueError, match="size"):
        fit_image(Image.new("RGB", (4, 4)), size)


# Tensor transforms

SIZE_CLASSES = [(1, 1), (8, 8), (3000, 2000), (2000, 3), (3, 2000)]


@pytest.mark.parametrize(("width", "height"), SIZE_CLASSES)
@pytest.mark.parametrize("train", [False, True])
def test_transform_shape_and_range(width, height, train):
    tensor = image_transform(32, train=train)(Image.new("RGB", (width, height), RED))
    assert tensor.shape == (3, 32, 32)
    assert tensor.dtype == torch.float32
    assert tensor.min() >= 0.0
    assert tensor.max() <= 1.0


def test_eval_transform_matches_fit_image():
    source = noise(50, 20)
    tensor = image_transform(40, train=False)(source)
    expected = np.asarray(fit_image(source, 40), dtype=np.float32) / 255.0
    assert torch.allclose(tensor, torch.from_numpy(expected).permute(2, 0, 1))


def test_eval_transform_letterbox_is_background():
    tensor = image_transform(32, train=False)(Image.new("RGB", (2000, 3), RED))
    assert torch.equal(tensor[:, 0, 0], torch.ones(3))
    assert torch.equal(tensor[:, 15, 16], torch.tensor([1.0, 0.0, 0.0]))


def test_eval_transform_ignores_seed():
    transform = image_transform(32, train=False)
    source = noise(40, 30)
    torch.manual_seed(1)
    first = transform(source)
    torch.manual_seed(2)
    assert torch.equal(transform(source), first)


def test_train_without_jitter_equals_eval():
    source = noise(40, 30)
    plain = image_transform(32, train=True, jitter=False)(source)
    assert torch.equal(plain, image_transform(32, train=False)(source))


def test_train_transform_same_seed_same_tensor():
    transform = image_transform(32, train=True)
    source = noise(40, 30)
    torch.manual_seed(7)
    first = transform(source)
    torch.manual_seed(7)
    assert torch.equal(transform(source), first)


def test_train_transform_different_seeds_differ():
    transform = image_transform(32, train=True)
    source = noise(40, 30)
    torch.manual_seed(7)
    first = transform(source)
    torch.manual_seed(8)
    assert not torch.equal(transform(source), first)


def test_train_transform_under_fork_rng():
    transform = image_transform(32, train=True)
    source = noise(40, 30)
    outputs = []
    for _ in range(2):
        with torch.random.fork_rng():
            torch.manual_seed(11)
            outputs.append(transform(source))
    assert torch.equal(outputs[0], outputs[1])
    assert not torch.equal(outputs[0], image_transform(32, train=False)(source))


def test_train_transform_never_flips():
    # The left half is black and the right half white, so a horizontal flip
    # would make the left columns the brighter ones.
    source = Image.new("RGB", (32, 32), WHITE)
    source.paste((0, 0, 0), (0, 0, 16, 32))
    transform = image_transform(32, train=True)
    for seed in range(30):
        torch.manual_seed(seed)
        tensor = transform(source)
        assert tensor[:, :, :8].mean() < tensor[:, :, 24:].mean(), seed


def test_train_transform_pickles():
    transform = pickle.loads(pickle.dumps(image_transform(32, train=True)))
    torch.manual_seed(3)
    first = transform(noise(40, 30))
    torch.manual_seed(3)
    assert torch.equal(image_transform(32, train=True)(noise(40, 30)), first)


def test_transform_rejects_invalid_size():
    with pytest.raises(ValueError, match="size"):
        image_transform(0, train=False)


def test_load_for_model_from_file(tmp_path):
    path = save(Image.new("RGBA", (60, 30), (0, 0, 255, 255)), tmp_path / "blue.png")
    tensor = load_for_model(path, 16)
    assert tensor.shape == (3, 16, 16)
    # 30 * 16 / 60 = 8 rows, starting at row (16 - 8) // 2 = 4.
    assert torch.equal(tensor[:, 8, 8], torch.tensor([0.0, 0.0, 1.0]))
    assert torch.equal(tensor[:, 0, 8], torch.ones(3))


def test_load_for_model_missing_file(tmp_path):
    with pytest.raises(ImageError, match="not found"):
        load_for_model(tmp_path / "missing.jpg", 16)
