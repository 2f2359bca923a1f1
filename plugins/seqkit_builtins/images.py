"""Image loading and transforms for captioning: any Pillow image to a (3, S, S) tensor.

`load_image` reads a file into an RGB image, `fit_image` letterboxes it onto a
square canvas, and `image_transform` turns it into a float tensor in [0, 1],
with mild random augmentation for training. This module registers no plugin.
"""

from __future__ import annotations

import functools
import os
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from seqkit.errors import DataError

Color = tuple[int, int, int]
WHITE: Color = (255, 255, 255)

# Pillow modes with 16-bit integer samples. Pillow's own convert("L") clips
# these at 255 instead of scaling them.
_MODES_16_BIT = frozenset({"I;16", "I;16L", "I;16B", "I;16N"})

# Augmentation strengths for training images. There is no horizontal flip
# because captions of text and emoji name left and right, and no hue shift
# because captions name colours.
_ROTATION_DEGREES = 3.0
_TRANSLATE_FRACTION = 0.03
_SCALE_RANGE = (0.95, 1.05)
_BRIGHTNESS = 0.2
_CONTRAST = 0.2
_SATURATION = 0.2


class ImageError(DataError):
    """An image file that is missing, unreadable, truncated or too large."""


def load_image(
    source: str | os.PathLike[str] | Image.Image, background: Color = WHITE
) -> Image.Image:
    """Read an image file, or take an open image, and return it as RGB.

    For a file, the whole image is decoded at once, so a truncated file raises
    here, and the EXIF orientation is applied. An `Image.Image` is used as
    given, without EXIF rotation. See `to_rgb` for how each mode becomes RGB.

    Raises ImageError, naming the file, for a missing, unreadable, truncated or
    unrecognised file, and for an image whose pixel count is above Pillow's
    decompression-bomb limit `PIL.Image.MAX_IMAGE_PIXELS`. Truncated files are
    detected only while `PIL.ImageFile.LOAD_TRUNCATED_IMAGES` is False, which
    is Pillow's default and which this module never changes.
    """
    background = _rgb_color(background)
    if isinstance(source, Image.Image):
        name = getattr(source, "filename", "") or "the image"
        try:
            return to_rgb(source, background)
        except (OSError, SyntaxError) as error:
            raise _corrupt_image_error(name, error) from error

    path = Path(source)
    try:
        # Pillow warns above MAX_IMAGE_PIXELS and raises above twice that, so
        # turning the warning into an exception rejects both.
        # NOTE: catch_warnings changes the process-wide warning filters, so a
        # thread that warns at the same moment may see this filter.
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                image.load()
                upright = ImageOps.exif_transpose(image)
    except FileNotFoundError as error:
        raise ImageError(f"{path}: image file not found; check the path") from error
    except IsADirectoryError as error:
        raise ImageError(
            f"{path}: is a folder, not an image file; give the path of an image file"
        ) from error
    except UnidentifiedImageError as error:
        raise ImageError(
            f"{path}: not an image file that Pillow can read; convert it to PNG "
            "or JPEG, or remove it from the data"
        ) from error
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise ImageError(
            f"{path}: rejected as a possible decompression bomb ({error}); shrink "
            "the image, or raise PIL.Image.MAX_IMAGE_PIXELS if you trust the file"
        ) from error
    except PermissionError as error:
        raise ImageError(
            f"{path}: cannot be read ({error.strerror}); check the file permissions"
        ) from error
    except (OSError, SyntaxError, ValueError) as error:
        # Pillow raises OSError for truncated data, and SyntaxError or
        # ValueError for corrupt headers in some formats.
        raise _corrupt_image_error(str(path), error) from error
    return to_rgb(upright, background)


def to_rgb(image: Image.Image, background: Color = WHITE) -> Image.Image:
    """Convert an image of any Pillow mode to RGB, compositing alpha on `background`.

    Modes with alpha (LA, La, PA, RGBA, RGBa) and images with a
    "transparency" entry in `image.info` (a PNG tRNS chunk or a GIF
    transparent index) are composited over an opaque `background`. Other
    modes (1, L, P, CMYK, YCbCr, LAB, HSV) use Pillow's conversion. Samples
    wider than 8 bits are scaled to 0..255:

    - I;16 and its byte orders: value / 257, rounded, so 65535 becomes 255 and
      an 8-bit value v stored as v * 257 comes back as v.
    - I (32-bit): taken as 8-bit, unchanged, when every value is within
      0..255, as after `convert("I")` of an L image. Otherwise the same as
      I;16 when every value is within 0..65535, and else the range min..max
      is stretched to 0..255. A 16-bit image stored as I whose values all
      sit within 0..255 is therefore read as 8-bit, up to 257 times brighter.
    - F (32-bit float): value * 255 when every finite value is within 0..1,
      otherwise the finite min..max is stretched to 0..255. NaN and -inf
      become 0, and +inf becomes 255.

    Raises ImageError for a mode that Pillow cannot convert to RGB.
    """
    background = _rgb_color(background)
    if image.mode in _MODES_16_BIT or image.mode in ("I", "F"):
        image = _wide_to_8_bit(image)
    if image.mode == "La":
        # Pillow converts premultiplied La only to LA.
        image = image.convert("LA")
    if image.mode in ("LA", "PA", "RGBA", "RGBa") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (*background, 255))
        return Image.alpha_composite(canvas, rgba).convert("RGB")
    try:
        return image.convert("RGB")
    except ValueError as error:
        name = getattr(image, "filename", "") or "image"
        raise ImageError(
            f"{name}: Pillow cannot convert mode {image.mode!r} to RGB ({error}); "
            "save the image as 8-bit RGB"
        ) from error


def fit_image(image: Image.Image, size: int, background: Color = WHITE) -> Image.Image:
    """Letterbox an image: scale its longer side to `size` and centre it on a square.

    The aspect ratio is kept, and the shorter side is at least 1 pixel, so a
    2000 x 1 image still shows as a 1-pixel line. The rest of the `size` x
    `size` canvas is `background`. Upsampling uses bicubic interpolation;
    downsampling uses Lanczos, which Pillow applies with antialiasing. The
    image is first converted with `to_rgb`, so transparent pixels get the same
    `background` as the margins.
    """
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"size must be a positive integer, not {size!r}")
    background = _rgb_color(background)
    image = to_rgb(image, background)
    width, height = image.size
    scale = size / max(width, height)
    new_width = min(size, max(1, round(width * scale)))
    new_height = min(size, max(1, round(height * scale)))
    if scale > 1:
        resized = image.resize((new_width, new_height), Image.Resampling.BICUBIC)
    else:
        # Pillow first shrinks by an integer factor with reduce(), which is
        # faster. Its docs call a reducing_gap of 3.0 or more
        # "indistinguishable from fair resampling in most cases".
        resized = image.resize(
            (new_width, new_height), Image.Resampling.LANCZOS, reducing_gap=3.0
        )
    canvas = Image.new("RGB", (size, size), background)
    canvas.paste(resized, ((size - new_width) // 2, (size - new_height) // 2))
    return canvas


def image_transform(
    size: int, train: bool, jitter: bool = True, background: Color = WHITE
) -> Callable[[Image.Image], torch.Tensor]:
    """Build the transform from a PIL image to a float tensor (3, size, size) in [0, 1].

    Every transform letterboxes with `fit_image`. With `train` and `jitter`,
    it then applies a small random affine transform: up to 3 degrees of
    rotation, 3% translation and 5% scaling, with `background` filling the
    uncovered pixels. A mild colour jitter follows, changing brightness,
    contrast and saturation by up to 20%. There is no horizontal flip and no
    hue shift, because captions can name left, right and colours.

    The random parameters come from torch's global RNG, as in every
    torchvision.transforms.v2 transform, so `torch.manual_seed` or a
    `torch.random.fork_rng` block makes the output repeatable. Without
    augmentation the transform is deterministic. The returned transform can be
    pickled, so DataLoader workers can use it.
    """
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"size must be a positive integer, not {size!r}")
    background = _rgb_color(background)
    fit = functools.partial(fit_image, size=size, background=background)
    # Imported here: torchvision takes seconds to import, and every seqkit
    # command imports this module through the plugin registry.
    from torchvision.transforms import v2

    steps: list[Callable] = [v2.Lambda(fit, Image.Image), v2.ToImage()]
    if train and jitter:
        steps += [
            v2.RandomAffine(
                degrees=_ROTATION_DEGREES,
                translate=(_TRANSLATE_FRACTION, _TRANSLATE_FRACTION),
                scale=_SCALE_RANGE,
                interpolation=v2.InterpolationMode.BILINEAR,
                fill=list(background),
            ),
            v2.ColorJitter(
                brightness=_BRIGHTNESS, contrast=_CONTRAST, saturation=_SATURATION
            ),
        ]
    steps.append(v2.ToDtype(torch.float32, scale=True))
    return v2.Compose(steps)


def load_for_model(
    source: str | os.PathLike[str] | Image.Image, size: int
) -> torch.Tensor:
    """Load an image and apply the evaluation transform: a (3, size, size) tensor."""
    return image_transform(size, train=False)(load_image(source))


def _wide_to_8_bit(image: Image.Image) -> Image.Image:
    """Scale a 16-bit, 32-bit integer or float image to 8-bit L (see `to_rgb`)."""
    samples = np.asarray(image)
    values = samples.astype(np.float64)
    finite = np.isfinite(values)
    low = values[finite].min() if finite.any() else 0.0
    high = values[finite].max() if finite.any() else 0.0
    if image.mode == "F":
        if low >= 0 and high <= 1:
            scaled = values * 255.0
        else:
            scaled = _stretch(values, low, high)
        scaled[np.isnan(values)] = 0.0
        scaled[values == np.inf] = 255.0
        scaled[values == -np.inf] = 0.0
    elif image.mode == "I" and (low < 0 or high > 65535):
        scaled = _stretch(values, low, high)
    elif image.mode == "I" and high <= 255:
        scaled = values
    else:
        scaled = values / 257.0
    gray = Image.fromarray(np.clip(np.rint(scaled), 0, 255).astype(np.uint8), "L")

    transparency = image.info.get("transparency")
    if isinstance(transparency, int) and image.mode != "F":
        # A PNG tRNS chunk gives one sample value, in the original range, that
        # marks fully transparent pixels.
        alpha = np.where(samples == transparency, 0, 255).astype(np.uint8)
        gray = Image.merge("LA", (gray, Image.fromarray(alpha, "L")))
    return gray


def _stretch(values: np.ndarray, low: float, high: float) -> np.ndarray:
    if high <= low:
        return np.zeros_like(values)
    return (values - low) * (255.0 / (high - low))


def _rgb_color(background: Color | list[int]) -> Color:
    """Return `background` as a tuple, accepting the list that a TOML array gives."""
    valid = (
        isinstance(background, tuple | list)
        and len(background) == 3
        and all(
            isinstance(c, int) and not isinstance(c, bool) and 0 <= c <= 255
            for c in background
        )
    )
    if not valid:
        raise ValueError(
            "background must be 3 integers in 0..255 (red, green, blue), "
            f"not {background!r}"
        )
    return tuple(background)


def _corrupt_image_error(name: str, error: BaseException) -> ImageError:
    return ImageError(
        f"{name}: invalid or truncated image ({error}); replace the file with a "
        "complete copy, or remove it from the data"
    )
