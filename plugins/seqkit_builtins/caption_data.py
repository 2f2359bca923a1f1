"""Data sources for the captioning task: each example pairs an image and a caption.

`glyphs` renders characters in the TrueType fonts shipped with matplotlib and
captions them with their Unicode names. `emoji` reads the PNG emoji of Debian
package ruby-tanuki-emoji. `flickr8k` and `coco` read the user's own
downloads of those data sets.

Every source returns `Example(source=image, target=caption,
references=captions)`, where the image is a `pathlib.Path` or a Pillow image
and `references` lists every caption of that image, the target first. An
image with several captions gives one example per distinct caption, and
those examples share one source object, because the captioning task finds
the distinct images of a split by the identity of `source`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from seqkit import BuildContext, DataError, DataSource, Example, Splits, hookimpl
from seqkit.errors import RecipeError, suggest
from seqkit.paths import glob_inside, resolve_inside
from seqkit_builtins.classify_data import decode_text
from seqkit_builtins.gettext_catalogs import hash_position

log = logging.getLogger(__name__)

# How many names an error or warning lists before it gives only the count.
LISTED_NAMES = 5


def _valid_fraction(help_text: str = "share of images to validate") -> Any:
    return field(default=0.1, metadata={"min": 0.0, "max": 0.5, "help": help_text})


def _test_fraction(help_text: str = "share of images to test") -> Any:
    return field(default=0.1, metadata={"min": 0.0, "max": 0.5, "help": help_text})


def _pluralize(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def _listed(names: list[str]) -> str:
    shown = ", ".join(names[:LISTED_NAMES])
    return shown if len(names) <= LISTED_NAMES else f"{shown}, ..."


def clean_caption(text: str) -> str:
    """Apply NFC and turn every run of whitespace into one space, then strip."""
    return " ".join(unicodedata.normalize("NFC", text).split())


# ---------------------------------------------------------------- splits


def caption_examples(source: Any, captions: Iterable[str]) -> list[Example]:
    """Make one example per distinct caption of one image, all sharing `source`.

    Each example's `references` lists every distinct caption: the example's
    own caption first, then the others in input order.
    """
    distinct = list(dict.fromkeys(captions))
    return [
        Example(
            source=source,
            target=caption,
            references=[caption, *(other for other in distinct if other != caption)],
        )
        for caption in distinct
    ]


def split_by_key(
    groups: dict[str, list[Example]], valid_fraction: float, test_fraction: float
) -> Splits:
    """Assign each group of examples to a split by a SHA-256 hash of its key.

    A key is an image's file name or caption, so the split of an image is the
    same on every machine and whatever other images are loaded with it. Each
    split lists its groups in sorted key order.

    Raises DataError when the training split is empty, or another split is
    empty although its fraction is above 0, which happens with few images.
    """
    splits = Splits([], [], [])
    valid_end = test_fraction + valid_fraction
    for key in sorted(groups):
        position = hash_position(key, b"split")
        if position < test_fraction:
            splits.test.extend(groups[key])
        elif position < valid_end:
            splits.valid.extend(groups[key])
        else:
            splits.train.extend(groups[key])
    _check_split_sizes(splits, len(groups), valid_fraction, test_fraction)
    return splits


def _check_split_sizes(
    splits: Splits, images: int, valid_fraction: float, test_fraction: float
) -> None:
    for name, fraction in (
        ("train", 1.0),
        ("valid", valid_fraction),
        ("test", test_fraction),
    ):
        if fraction > 0 and not splits.named(name):
            raise DataError(
                f"no image fell into the {name} split: {_pluralize(images, 'image')}, "
                f"valid_fraction {valid_fraction}, test_fraction {test_fraction}; "
                "add images or change the fractions (0 leaves valid or test empty)"
            )


def log_split_sizes(name: str, splits: Splits) -> None:
    """Log the number of images and captions of each split."""
    for split in ("train", "valid", "test"):
        examples = splits.named(split)
        images = len({id(example.source) for example in examples})
        log.info(
            "%s %s split: %d images, %d captions", name, split, images, len(examples)
        )


# ---------------------------------------------------------------- image folders


def plain_file_name(name: str, where: str) -> str:
    """Return `name` when it is a file name without folders, else raise DataError.

    Data files name images inside the images folder, so a name such as
    "../x.jpg" or "/tmp/x.jpg" is rejected rather than read from elsewhere.
    """
    if not name or name in (".", "..") or "/" in name or "\\" in name:
        raise DataError(
            f"{where}: {name!r} is not an image file name; give the bare file "
            "name of an image in the images folder"
        )
    return name


def find_image_files(
    folder: Path,
    names: list[str],
    listed_in: Path,
    skip_missing: bool,
) -> dict[str, Path]:
    """Return the path of each of `names` inside `folder`.

    A name without a file is an error that lists the first few missing names
    and their count, unless `skip_missing` is set: then those names are left
    out with a warning.
    """
    if not folder.is_dir():
        raise DataError(f"data.images: {folder} is not a folder; give the image folder")
    present = set(os.listdir(folder))
    missing = [name for name in names if name not in present]
    if missing and not skip_missing:
        verb = "is" if len(missing) == 1 else "are"
        raise DataError(
            f"{len(missing)} of the {len(names)} images listed in {listed_in} "
            f"{verb} not in {folder}: {_listed(missing)}; add the files, fix "
            "data.images, or set data.skip_missing = true to leave those images out"
        )
    if missing:
        log.warning(
            "left out %d of the %d images listed in %s, which are not in %s: %s",
            len(missing),
            len(names),
            listed_in,
            folder,
            _listed(missing),
        )
    return {name: folder / name for name in names if name in present}


def image_groups(
    captions: dict[str, list[str]], paths: dict[str, Path]
) -> dict[str, list[Example]]:
    """Make the examples of each image found in `paths`, keyed by file name."""
    return {
        name: caption_examples(paths[name], found)
        for name, found in captions.items()
        if name in paths
    }


def _skip_missing() -> Any:
    return field(
        default=False,
        metadata={
            "help": "leave out images that the captions name but the folder lacks, "
            "with a warning; false makes them an error"
        },
    )


# ---------------------------------------------------------------- glyphs

# Unicode blocks that the fonts shipped with matplotlib cover at least in part,
# from Blocks.txt of the Unicode Character Database.
UNICODE_BLOCKS: dict[str, tuple[int, int]] = {
    "Basic Latin": (0x0000, 0x007F),
    "Latin-1 Supplement": (0x0080, 0x00FF),
    "Latin Extended-A": (0x0100, 0x017F),
    "Latin Extended-B": (0x0180, 0x024F),
    "IPA Extensions": (0x0250, 0x02AF),
    "Spacing Modifier Letters": (0x02B0, 0x02FF),
    "Greek and Coptic": (0x0370, 0x03FF),
    "Cyrillic": (0x0400, 0x04FF),
    "Cyrillic Supplement": (0x0500, 0x052F),
    "Armenian": (0x0530, 0x058F),
    "Hebrew": (0x0590, 0x05FF),
    "Arabic": (0x0600, 0x06FF),
    "Georgian": (0x10A0, 0x10FF),
    "Latin Extended Additional": (0x1E00, 0x1EFF),
    "Greek Extended": (0x1F00, 0x1FFF),
    "General Punctuation": (0x2000, 0x206F),
    "Superscripts and Subscripts": (0x2070, 0x209F),
    "Currency Symbols": (0x20A0, 0x20CF),
    "Letterlike Symbols": (0x2100, 0x214F),
    "Number Forms": (0x2150, 0x218F),
    "Arrows": (0x2190, 0x21FF),
    "Mathematical Operators": (0x2200, 0x22FF),
    "Miscellaneous Technical": (0x2300, 0x23FF),
    "Enclosed Alphanumerics": (0x2460, 0x24FF),
    "Box Drawing": (0x2500, 0x257F),
    "Block Elements": (0x2580, 0x259F),
    "Geometric Shapes": (0x25A0, 0x25FF),
    "Miscellaneous Symbols": (0x2600, 0x26FF),
    "Dingbats": (0x2700, 0x27BF),
    "Miscellaneous Mathematical Symbols-A": (0x27C0, 0x27EF),
    "Supplemental Arrows-A": (0x27F0, 0x27FF),
    "Braille Patterns": (0x2800, 0x28FF),
    "Supplemental Arrows-B": (0x2900, 0x297F),
    "Miscellaneous Mathematical Symbols-B": (0x2980, 0x29FF),
    "Supplemental Mathematical Operators": (0x2A00, 0x2AFF),
    "Miscellaneous Symbols and Arrows": (0x2B00, 0x2BFF),
    "Mathematical Alphanumeric Symbols": (0x1D400, 0x1D7FF),
}

# A code point range such as "U+0391..U+03A9" or "U+0391-03A9", or one code point.
_CODE_POINT_RANGE = re.compile(
    r"U\+([0-9A-F]{1,6})(?:\s*(?:\.\.|-)\s*(?:U\+)?([0-9A-F]{1,6}))?", re.IGNORECASE
)
_GENERAL_CATEGORIES = frozenset(
    "Lu Ll Lt Lm Lo Mn Mc Me Nd Nl No Pc Pd Ps Pe Pi Pf Po Sm Sc Sk So "
    "Zs Zl Zp Cc Cf Cs Co Cn".split()
)
_CATEGORY_LETTERS = frozenset("LMNPSZC")
_FONT_SUFFIXES = (".ttf", ".otf")

# Jitter at strength 1: the largest change of the font size (a fraction), of
# the rotation (degrees) and of the offset from the centre (a fraction of the
# image size, rounded to whole pixels).
MAX_SCALE_CHANGE = 0.1
MAX_ROTATION = 8.0
MAX_SHIFT = 1 / 16
# Pixels kept free around a glyph that is scaled down to fit the image.
MARGIN = 1


def _loose_block_name(name: str) -> str:
    # Unicode's loose matching of property values (UAX #44, LM3): ignore case,
    # spaces, hyphens and underscores.
    return re.sub(r"[\s_-]", "", name).lower()


_BLOCKS_BY_LOOSE_NAME = {_loose_block_name(name): name for name in UNICODE_BLOCKS}


def parse_character_ranges(
    specs: list[str], recipe_file: str | None
) -> list[tuple[int, int]]:
    """Turn block names and "U+XXXX..U+YYYY" ranges into inclusive code point ranges.

    Raises RecipeError, naming the list item, for an unknown block name or an
    invalid range.
    """
    ranges = []
    for index, spec in enumerate(specs):
        key = f"data.characters[{index}]"
        match = _CODE_POINT_RANGE.fullmatch(spec.strip())
        if match:
            first = int(match[1], 16)
            last = int(match[2], 16) if match[2] else first
            if first > last or last > 0x10FFFF:
                raise RecipeError(
                    f"invalid code point range {spec!r}; write U+XXXX..U+YYYY with "
                    "the first not above the last and both at most U+10FFFF",
                    recipe_file,
                    key,
                )
            ranges.append((first, last))
            continue
        block = _BLOCKS_BY_LOOSE_NAME.get(_loose_block_name(spec))
        if block is None:
            raise RecipeError(
                f"unknown Unicode block {spec!r}.{suggest(spec, UNICODE_BLOCKS)} "
                "Give a code point range such as U+0391..U+03A9, or one of: "
                f"{', '.join(UNICODE_BLOCKS)}.",
                recipe_file,
                key,
            )
        ranges.append(UNICODE_BLOCKS[block])
    return ranges


def select_characters(
    ranges: list[tuple[int, int]], categories: list[str]
) -> list[str]:
    """Return the named characters of `ranges` whose category is in `categories`.

    A category is a full value such as "Lu" or its first letter such as "L".
    Characters are listed in code point order, each once.
    """
    wanted = tuple(categories)
    code_points = sorted({c for first, last in ranges for c in range(first, last + 1)})
    characters = []
    for code_point in code_points:
        character = chr(code_point)
        if not unicodedata.category(character).startswith(wanted):
            continue
        if unicodedata.name(character, None) is None:
            continue
        characters.append(character)
    return characters


def character_caption(character: str) -> str:
    """Return the lowercased Unicode name, such as "latin small letter e with acute"."""
    return unicodedata.name(character).lower()


def matplotlib_font_folder() -> Path:
    """Return matplotlib's folder of TrueType fonts, mpl-data/fonts/ttf."""
    import matplotlib

    return Path(matplotlib.get_data_path()) / "fonts" / "ttf"


def font_character_map(path: Path) -> set[int]:
    """Return the code points that the font's best Unicode cmap maps to a glyph."""
    from fontTools.ttLib import TTFont, TTLibError

    try:
        with TTFont(path, lazy=True) as font:
            cmap = font.getBestCmap()
    except (OSError, TTLibError, AssertionError) as error:
        raise DataError(f"{path}: cannot read the font ({error})") from None
    if cmap is None:
        raise DataError(
            f"{path}: the font has no Unicode character map; choose another font"
        )
    return set(cmap)


@dataclass
class GlyphsOptions:
    characters: list[str] = field(
        default_factory=lambda: [
            "Basic Latin",
            "Latin-1 Supplement",
            "Latin Extended-A",
            "Greek and Coptic",
            "Arrows",
        ],
        metadata={
            "help": 'Unicode block names such as "Greek and Coptic", or code point '
            'ranges such as "U+0391..U+03A9" or "U+00E9"'
        },
    )
    categories: list[str] = field(
        default_factory=lambda: ["L", "N", "S"],
        metadata={
            "help": 'Unicode general categories to keep, such as "Lu", or their '
            "first letter: L letters, N numbers, S symbols, P punctuation"
        },
    )
    fonts: list[str] = field(
        default_factory=lambda: [
            "DejaVuSans",
            "DejaVuSans-Bold",
            "DejaVuSans-Oblique",
            "DejaVuSerif",
            "DejaVuSerif-Italic",
            "DejaVuSansMono",
            "STIXGeneral",
            "STIXGeneralItalic",
        ],
        # NOTE: not marked as a path, because most entries are file stems, so
        # a relative font path is not made absolute in the run's recipe.toml.
        metadata={
            "help": "file stems of the fonts in matplotlib's mpl-data/fonts/ttf, "
            "or paths of .ttf or .otf files",
        },
    )
    sizes: list[int] = field(
        default_factory=lambda: [32],
        metadata={"help": "font sizes in pixels (the em size); one image per size"},
    )
    image_size: int = field(
        default=48,
        metadata={"min": 8, "help": "width and height of each image in pixels"},
    )
    jitter: float = field(
        default=1.0,
        metadata={
            "min": 0.0,
            "max": 2.0,
            "help": "strength of the random change per image: 1 scales the font "
            "by up to 10%, rotates by up to 8 degrees and shifts by up to "
            "1/16 of image_size; 0 renders every glyph upright and centred",
        },
    )
    seed: int = field(
        default=0,
        metadata={
            "help": "seed of the jitter and of the held-out (character, font) pairs"
        },
    )
    valid_fraction: float = _valid_fraction(
        "share of (character, font) pairs to validate, about"
    )
    test_fraction: float = _test_fraction(
        "share of (character, font) pairs to test, about"
    )


@dataclass
class GlyphFont:
    """A font of the `fonts` option: its name in the recipe, file and code points."""

    name: str
    path: Path
    code_points: set[int]


class GlyphRenderer:
    """Renders one character as a black glyph on a white square, in mode "L".

    The glyph is centred by the bounding box of its ink, so an image does not
    show where the glyph sits on the baseline, but it keeps its size: "o" is
    smaller than "O" at the same font size. A glyph larger than the image is
    scaled down to fit.
    """

    def __init__(self, image_size: int):
        self.image_size = image_size
        self._fonts: dict[tuple[Path, int], ImageFont.FreeTypeFont] = {}

    def font(self, path: Path, size: int) -> ImageFont.FreeTypeFont:
        key = (path, size)
        if key not in self._fonts:
            try:
                self._fonts[key] = ImageFont.truetype(str(path), size)
            except OSError as error:
                raise DataError(
                    f"{path}: Pillow cannot open the font ({error})"
                ) from None
        return self._fonts[key]

    def render(
        self,
        character: str,
        path: Path,
        size: int,
        rotation: float = 0.0,
        shift: tuple[int, int] = (0, 0),
    ) -> Image.Image | None:
        """Return the image of `character`, or None when the glyph has no ink.

        `rotation` is in degrees counter-clockwise and `shift` moves the glyph
        right and down from the centre, in pixels.
        """
        font = self.font(path, size)
        left, top, right, bottom = font.getbbox(character)
        # The ink is drawn white on black, so that it can be rotated with a
        # black fill and then used as the mask that paints black on white.
        pad = 2
        ink = Image.new("L", (right - left + 2 * pad, bottom - top + 2 * pad), 0)
        ImageDraw.Draw(ink).text(
            (pad - left, pad - top), character, fill=255, font=font
        )
        if rotation:
            ink = ink.rotate(
                rotation, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=0
            )
        box = ink.getbbox()
        if box is None:
            return None
        ink = ink.crop(box)
        room = self.image_size - 2 * MARGIN
        if ink.width > room or ink.height > room:
            scale = room / max(ink.width, ink.height)
            ink = ink.resize(
                (max(1, round(ink.width * scale)), max(1, round(ink.height * scale))),
                Image.Resampling.LANCZOS,
            )
        image = Image.new("L", (self.image_size, self.image_size), 255)
        x = (self.image_size - ink.width) // 2 + shift[0]
        y = (self.image_size - ink.height) // 2 + shift[1]
        image.paste(0, (x, y, x + ink.width, y + ink.height), ink)
        return image


@dataclass
class GlyphImage:
    """One rendered image before splitting: the character, font and image."""

    character: str
    font: str
    size: int
    image: Image.Image


class GlyphsSource(DataSource):
    """Characters rendered in matplotlib's fonts, captioned with their Unicode names.

    The characters are those of the `characters` blocks and ranges whose
    general category is in `categories` and that have a Unicode name in
    Python's unicodedata. Each is rendered in every font whose cmap
    maps it, once per font size, as a black glyph on a white square (see
    `GlyphRenderer`), and captioned with its lowercased name, such as "latin
    small letter e with acute". A glyph without ink is left out.

    Some characters look the same in a font, such as "A" and the Greek
    capital alpha. The unjittered renderings at the first size are compared
    pixel by pixel, and the `references` of each image list the names of all
    characters that look identical in its font, its own name first.

    `jitter` draws a size change, a rotation and a shift for each image from
    a generator seeded with (seed, font, size, character), so an image does
    not depend on which other characters or fonts are loaded.

    The test and validation splits hold out (character, font) pairs, each
    pair with all its sizes: a test image shows a character in a font that
    the training split never shows it in, although training shows the
    character in other fonts and the font with other characters. A SHA-256
    hash of (seed, character, font) picks the pairs. A character in one font
    only always trains, and when every pair of a character is picked for
    valid or test, the pair that hashes highest trains, so the held-out
    shares are a little below the fractions.

    NOTE: the pixels depend on the FreeType version that Pillow is built
    with, so they are identical across runs and machines only with the same
    Pillow build.
    """

    Options = GlyphsOptions
    task = "captioning"

    def __init__(self, options: GlyphsOptions, context: BuildContext):
        self.options = options
        self.base_dir = context.base_dir
        self.recipe_file = context.recipe_file
        self.ranges = parse_character_ranges(options.characters, self.recipe_file)
        self._check_options()

    def _check_options(self) -> None:
        options = self.options
        for index, category in enumerate(options.categories):
            if category not in _GENERAL_CATEGORIES | _CATEGORY_LETTERS:
                raise RecipeError(
                    f"unknown general category {category!r}; give a value such "
                    "as Lu, Nd or Sm, or a first letter: L, M, N, P, S, Z or C",
                    self.recipe_file,
                    f"data.categories[{index}]",
                )
        if not options.categories:
            raise RecipeError(
                "no category given; list at least one, such as L",
                self.recipe_file,
                "data.categories",
            )
        if not options.fonts:
            raise RecipeError(
                "no font given; list font file stems such as DejaVuSans",
                self.recipe_file,
                "data.fonts",
            )
        if not options.sizes:
            raise RecipeError(
                "no font size given; list sizes in pixels such as 32",
                self.recipe_file,
                "data.sizes",
            )
        for index, size in enumerate(options.sizes):
            if size < 1:
                raise RecipeError(
                    f"a font size must be at least 1 pixel, got {size}",
                    self.recipe_file,
                    f"data.sizes[{index}]",
                )

    def font_paths(self) -> dict[str, Path]:
        """Find the file of each font of the `fonts` option, keyed by that name."""
        folder = matplotlib_font_folder()
        paths = {}
        for index, name in enumerate(dict.fromkeys(self.options.fonts)):
            if name.lower().endswith(_FONT_SUFFIXES) or "/" in name:
                path = resolve_inside(
                    self.base_dir, name, f"data.fonts[{index}]", self.recipe_file
                )
            else:
                path = folder / f"{name}.ttf"
            if not path.is_file():
                stems = sorted(found.stem for found in folder.glob("*.ttf"))
                raise DataError(
                    f"data.fonts: font {name!r} not found (looked for {path})."
                    f"{suggest(name, stems)} The fonts shipped with matplotlib "
                    f"are: {', '.join(stems)}; or give the path of a .ttf file"
                )
            paths[name] = path
        return paths

    def check(self) -> None:
        self.font_paths()

    def fonts(self) -> list[GlyphFont]:
        return [
            GlyphFont(name, path, font_character_map(path))
            for name, path in self.font_paths().items()
        ]

    def load(self) -> Splits:
        characters = select_characters(self.ranges, self.options.categories)
        fonts = self.fonts()
        renderer = GlyphRenderer(self.options.image_size)
        images, references = self.render_all(characters, fonts, renderer)
        if not images:
            raise DataError(
                "no character of data.characters with a name and one of the "
                "categories in data.categories is in the cmap of any font of "
                "data.fonts; choose other characters or fonts"
            )
        splits = self.split(images, references, [font.name for font in fonts])
        log.info(
            "glyphs: %d images of %d characters in %d fonts",
            len(images),
            len({image.character for image in images}),
            len(fonts),
        )
        log_split_sizes("glyphs", splits)
        return splits

    def render_all(
        self,
        characters: list[str],
        fonts: list[GlyphFont],
        renderer: GlyphRenderer,
    ) -> tuple[list[GlyphImage], dict[tuple[str, str], list[str]]]:
        """Render every (font, character, size) and find each pair's references.

        Returns the images in font, character and size order, and the
        captions of each (character, font) pair.
        """
        images = []
        references: dict[tuple[str, str], list[str]] = {}
        sizes = list(dict.fromkeys(self.options.sizes))
        for font in fonts:
            plain: dict[str, bytes] = {}
            for character in characters:
                if ord(character) not in font.code_points:
                    continue
                upright = renderer.render(character, font.path, sizes[0])
                if upright is None:
                    continue
                plain[character] = upright.tobytes()
                for size in sizes:
                    image = self.render_jittered(renderer, font, character, size)
                    if image is not None:
                        images.append(GlyphImage(character, font.name, size, image))
            references.update(_lookalike_references(font.name, plain))
        return images, references

    def render_jittered(
        self, renderer: GlyphRenderer, font: GlyphFont, character: str, size: int
    ) -> Image.Image | None:
        """Render one image with the jitter drawn for (seed, font, size, character)."""
        # random.Random hashes a str seed with SHA-512, so the draws are the
        # same in every process, unlike with Python's salted hash().
        seed = f"{self.options.seed}:{font.name}:{size}:{ord(character)}"
        rng = random.Random(seed)
        strength = self.options.jitter
        scale = 1.0 + rng.uniform(-1.0, 1.0) * MAX_SCALE_CHANGE * strength
        rotation = rng.uniform(-1.0, 1.0) * MAX_ROTATION * strength
        max_shift = MAX_SHIFT * self.options.image_size * strength
        shift = (
            round(rng.uniform(-max_shift, max_shift)),
            round(rng.uniform(-max_shift, max_shift)),
        )
        return renderer.render(
            character, font.path, max(1, round(size * scale)), rotation, shift
        )

    def split(
        self,
        images: list[GlyphImage],
        references: dict[tuple[str, str], list[str]],
        font_names: list[str],
    ) -> Splits:
        """Split the images by held-out (character, font) pairs, see the class."""
        held_out = held_out_pairs(
            {(image.character, image.font) for image in images},
            self.options.valid_fraction,
            self.options.test_fraction,
            self.options.seed,
        )
        splits = Splits([], [], [])
        for image in images:
            pair = (image.character, image.font)
            captions = references[pair]
            example = Example(
                source=image.image, target=captions[0], references=captions
            )
            splits.named(held_out.get(pair, "train")).append(example)
        trained_fonts = {
            image.font
            for image in images
            if (image.character, image.font) not in held_out
        }
        untrained = [name for name in font_names if name not in trained_fonts]
        if untrained:
            raise DataError(
                f"the training split shows no character in font {untrained[0]!r}, "
                "so its test images would show an unknown font; add characters "
                "to data.characters or lower the fractions"
            )
        pairs = len({(image.character, image.font) for image in images})
        for name, fraction in (
            ("valid", self.options.valid_fraction),
            ("test", self.options.test_fraction),
        ):
            if fraction > 0 and not splits.named(name):
                raise DataError(
                    f"no (character, font) pair fell into the {name} split: "
                    f"{_pluralize(pairs, 'pair')}, of which only characters in "
                    "two or more fonts can be held out; add characters or fonts, "
                    "or change the fractions (0 leaves valid or test empty)"
                )
        return splits


def _lookalike_references(
    font: str, renderings: dict[str, bytes]
) -> dict[tuple[str, str], list[str]]:
    """Map each (character, font) to the captions of the characters that look identical.

    `renderings` contains the pixels of each character's unjittered image in
    `font`. The character's own caption comes first, the others follow in
    code point order.
    """
    groups: dict[bytes, list[str]] = {}
    for character, pixels in renderings.items():
        groups.setdefault(hashlib.sha256(pixels).digest(), []).append(character)
    references = {}
    for members in groups.values():
        for character in members:
            others = [
                character_caption(other) for other in members if other != character
            ]
            references[(character, font)] = [character_caption(character), *others]
    return references


def held_out_pairs(
    pairs: set[tuple[str, str]], valid_fraction: float, test_fraction: float, seed: int
) -> dict[tuple[str, str], str]:
    """Return the (character, font) pairs that validate or test, with their split.

    Each pair's split comes from a SHA-256 hash of (seed, character, font).
    Every character keeps at least one training pair: when all its pairs hash
    into valid or test, the one that hashes highest trains.
    """
    fonts_of: dict[str, list[str]] = {}
    for character, font in sorted(pairs):
        fonts_of.setdefault(character, []).append(font)
    held_out = {}
    valid_end = test_fraction + valid_fraction
    for character, fonts in fonts_of.items():
        if len(fonts) < 2:
            continue
        positions = {
            font: hash_position(f"{seed}:{ord(character)}:{font}", b"glyph-split")
            for font in fonts
        }
        kept = max(fonts, key=positions.__getitem__)
        all_held_out = all(position < valid_end for position in positions.values())
        for font, position in positions.items():
            if position >= valid_end or (all_held_out and font == kept):
                continue
            held_out[(character, font)] = (
                "test" if position < test_fraction else "valid"
            )
    return held_out


# ---------------------------------------------------------------- flickr8k


@dataclass
class Flickr8kOptions:
    captions: str = field(
        metadata={
            "path": True,
            "help": "captions.txt with a header row `image,caption` and one "
            "`name.jpg,caption` row per caption",
        }
    )
    images: str = field(
        metadata={"path": True, "help": "folder that contains the image files"}
    )
    skip_missing: bool = _skip_missing()
    valid_fraction: float = _valid_fraction()
    test_fraction: float = _test_fraction()


FLICKR_HEADER = "image,caption"


def unquote_csv_field(text: str) -> str:
    """Remove CSV quoting from `text`, or return it unchanged when it is not quoted.

    A field counts as quoted when it starts and ends with a double quote and
    every quote inside is doubled. Unquoting turns each doubled quote into one.
    """
    if len(text) < 2 or text[0] != '"' or text[-1] != '"':
        return text
    inner = text[1:-1]
    if '"' in inner.replace('""', ""):
        return text
    return inner.replace('""', '"')


def read_flickr_captions(path: Path) -> dict[str, list[str]]:
    """Read the captions of each image from a Flickr8k captions.txt, in file order.

    The layout is the one of the Kaggle download: a header row `image,caption`,
    then one row per caption. Only the first comma of a row separates the
    image name from the caption, so a caption may contain commas unquoted.
    An image name or caption in CSV quotes is unquoted. A quoted field
    cannot span lines.
    """
    text = decode_text(path, path.read_bytes())
    lines = text.split("\n")
    header_line = next((i for i, line in enumerate(lines) if line.strip()), None)
    if header_line is None:
        raise DataError(f"{path} is empty; expected a header row `{FLICKR_HEADER}`")
    header = lines[header_line].strip().replace(" ", "").lower()
    if header != FLICKR_HEADER:
        raise DataError(
            f"{path}, line {header_line + 1}: expected the header row "
            f"`{FLICKR_HEADER}`, found {lines[header_line].strip()[:60]!r}; "
            "give the captions.txt of the Kaggle Flickr8k download"
        )
    captions: dict[str, list[str]] = {}
    for number, line in enumerate(lines[header_line + 1 :], start=header_line + 2):
        if not line.strip():
            continue
        name, comma, caption = line.partition(",")
        if not comma:
            raise DataError(
                f"{path}, line {number}: expected `name.jpg,caption`, found no "
                f"comma in {line.strip()[:60]!r}"
            )
        where = f"{path}, line {number}"
        name = plain_file_name(unquote_csv_field(name.strip()), where)
        caption = clean_caption(unquote_csv_field(caption.strip()))
        if not caption:
            raise DataError(f"{where}: the caption is empty; fill it or remove the row")
        captions.setdefault(name, []).append(caption)
    if not captions:
        raise DataError(f"{path} contains no caption rows after the header")
    return captions


class Flickr8kSource(DataSource):
    """Flickr8k images and their captions, in the layout of the Kaggle download.

    `captions` is captions.txt (see `read_flickr_captions`) and `images` the
    folder of the .jpg files. Each image keeps every distinct caption as
    `references` and gives one example per caption. The split is decided by a
    SHA-256 hash of the image's file name. An image that captions.txt names
    but the folder lacks is an error, unless `skip_missing` is set.
    """

    Options = Flickr8kOptions
    task = "captioning"

    def __init__(self, options: Flickr8kOptions, context: BuildContext):
        self.options = options
        self.base_dir = context.base_dir
        self.recipe_file = context.recipe_file

    def paths(self) -> tuple[Path, Path]:
        """Return the captions file and the image folder, checked to exist."""
        captions = resolve_inside(
            self.base_dir, self.options.captions, "data.captions", self.recipe_file
        )
        images = resolve_inside(
            self.base_dir, self.options.images, "data.images", self.recipe_file
        )
        if not captions.is_file():
            raise DataError(f"data.captions: {captions} not found; give captions.txt")
        if not images.is_dir():
            raise DataError(
                f"data.images: {images} is not a folder; give the image folder"
            )
        return captions, images

    def check(self) -> None:
        self.paths()

    def load(self) -> Splits:
        captions_path, folder = self.paths()
        captions = read_flickr_captions(captions_path)
        paths = find_image_files(
            folder, list(captions), captions_path, self.options.skip_missing
        )
        splits = split_by_key(
            image_groups(captions, paths),
            self.options.valid_fraction,
            self.options.test_fraction,
        )
        log_split_sizes("flickr8k", splits)
        return splits


# ---------------------------------------------------------------- coco


def _optional_path(help_text: str) -> Any:
    return field(default=None, metadata={"path": True, "help": help_text})


@dataclass
class CocoOptions:
    annotations: str = field(
        metadata={
            "path": True,
            "help": "COCO captions JSON, such as captions_train2017.json",
        }
    )
    images: str = field(
        metadata={"path": True, "help": "folder of the images that `annotations` lists"}
    )
    valid_annotations: str | None = _optional_path(
        "COCO captions JSON of the validation split; unset: hash valid_fraction "
        "of the images of `annotations`"
    )
    valid_images: str | None = _optional_path(
        "folder of the images of valid_annotations"
    )
    test_annotations: str | None = _optional_path(
        "COCO captions JSON of the test split; unset: hash test_fraction of "
        "the images of `annotations`"
    )
    test_images: str | None = _optional_path("folder of the images of test_annotations")
    skip_missing: bool = _skip_missing()
    valid_fraction: float = _valid_fraction(
        "share of the images of `annotations` to validate, unless "
        "valid_annotations is set"
    )
    test_fraction: float = _test_fraction(
        "share of the images of `annotations` to test, unless test_annotations is set"
    )


def _coco_list(data: dict, key: str, path: Path) -> list:
    value = data.get(key)
    if not isinstance(value, list):
        raise DataError(
            f"{path}: expected a COCO captions file, a JSON object with the lists "
            f'"images" and "annotations"; "{key}" is '
            f"{'missing' if value is None else type(value).__name__}"
        )
    return value


def read_coco_captions(path: Path) -> dict[str, list[str]]:
    """Read the captions of each image file from a COCO captions JSON file.

    Images are listed in the file's order and captions in annotation order.
    An image without captions is left out. Raises DataError naming the file
    and the entry for invalid JSON, a missing or mistyped field, a repeated
    image id, or a caption of an unknown image.
    """
    try:
        data = json.loads(path.read_bytes())
    except json.JSONDecodeError as error:
        raise DataError(
            f"{path}, line {error.lineno}, column {error.colno}: invalid JSON "
            f"({error.msg})"
        ) from None
    except UnicodeDecodeError as error:
        raise DataError(f"{path}: not UTF-8 JSON ({error.reason})") from None
    if not isinstance(data, dict):
        raise DataError(
            f"{path}: expected a COCO captions file, a JSON object with the lists "
            f'"images" and "annotations", found a JSON {type(data).__name__}'
        )
    names: dict[Any, str] = {}
    for index, image in enumerate(_coco_list(data, "images", path)):
        where = f"{path}: images[{index}]"
        if not isinstance(image, dict):
            raise DataError(f"{where}: expected an object with id and file_name")
        image_id, name = image.get("id"), image.get("file_name")
        if isinstance(image_id, bool) or not isinstance(image_id, int | str):
            raise DataError(f"{where}: id is {image_id!r}; expected a number")
        if not isinstance(name, str):
            raise DataError(f"{where}: file_name is {name!r}; expected a string")
        if image_id in names:
            raise DataError(f"{where}: id {image_id!r} appears twice in images")
        names[image_id] = plain_file_name(name, where)
    captions: dict[str, list[str]] = {}
    for index, annotation in enumerate(_coco_list(data, "annotations", path)):
        where = f"{path}: annotations[{index}]"
        if not isinstance(annotation, dict):
            raise DataError(f"{where}: expected an object with image_id and caption")
        image_id, caption = annotation.get("image_id"), annotation.get("caption")
        if isinstance(image_id, bool) or image_id not in names:
            raise DataError(
                f"{where}: image_id {image_id!r} is not the id of an entry in images"
            )
        if not isinstance(caption, str) or not clean_caption(caption):
            raise DataError(
                f"{where}: caption is {caption!r}; expected a non-empty string"
            )
        captions.setdefault(names[image_id], []).append(clean_caption(caption))
    uncaptioned = len(set(names.values()) - set(captions))
    if uncaptioned:
        log.info("%s: left out %d images without captions", path, uncaptioned)
    if not captions:
        raise DataError(f"{path} contains no captions")
    ordered = dict.fromkeys(names.values())
    return {name: captions[name] for name in ordered if name in captions}


class CocoSource(DataSource):
    """Images and captions of a COCO captions JSON file and its image folder.

    The file is a JSON object with "images" (each with "id" and "file_name")
    and "annotations" (each with "image_id" and "caption"), as in
    captions_train2017.json. Each image keeps every distinct caption as
    `references` and gives one example per caption. The split is decided by
    a SHA-256 hash of the file name, unless valid_annotations or
    test_annotations give that split its own file and folder, such as
    captions_val2017.json and val2017/. An image that a file names but its
    folder lacks is an error, unless `skip_missing` is set.
    """

    Options = CocoOptions
    task = "captioning"

    def __init__(self, options: CocoOptions, context: BuildContext):
        self.options = options
        self.base_dir = context.base_dir
        self.recipe_file = context.recipe_file
        for split in ("valid", "test"):
            annotations = getattr(options, f"{split}_annotations")
            images = getattr(options, f"{split}_images")
            if (annotations is None) != (images is None):
                missing = (
                    f"{split}_images" if images is None else f"{split}_annotations"
                )
                raise RecipeError(
                    f"{split}_annotations and {split}_images go together; set "
                    f"{missing} too, or neither",
                    self.recipe_file,
                    f"data.{missing}",
                )

    def file_pairs(self) -> dict[str, tuple[Path, Path]]:
        """Return the annotation file and image folder of each split that has them."""
        pairs = {}
        for split in ("train", "valid", "test"):
            prefix = "" if split == "train" else f"{split}_"
            annotations = getattr(self.options, f"{prefix}annotations")
            images = getattr(self.options, f"{prefix}images")
            if annotations is None:
                continue
            annotations_path = resolve_inside(
                self.base_dir,
                annotations,
                f"data.{prefix}annotations",
                self.recipe_file,
            )
            images_path = resolve_inside(
                self.base_dir, images, f"data.{prefix}images", self.recipe_file
            )
            if not annotations_path.is_file():
                raise DataError(
                    f"data.{prefix}annotations: {annotations_path} not found; give "
                    "a COCO captions JSON file"
                )
            if not images_path.is_dir():
                raise DataError(
                    f"data.{prefix}images: {images_path} is not a folder; give "
                    "the image folder"
                )
            pairs[split] = (annotations_path, images_path)
        return pairs

    def check(self) -> None:
        self.file_pairs()

    def read_groups(self, annotations: Path, folder: Path) -> dict[str, list[Example]]:
        captions = read_coco_captions(annotations)
        paths = find_image_files(
            folder, list(captions), annotations, self.options.skip_missing
        )
        return image_groups(captions, paths)

    def load(self) -> Splits:
        pairs = self.file_pairs()
        valid_fraction = 0.0 if "valid" in pairs else self.options.valid_fraction
        test_fraction = 0.0 if "test" in pairs else self.options.test_fraction
        splits = split_by_key(
            self.read_groups(*pairs["train"]), valid_fraction, test_fraction
        )
        for split in ("valid", "test"):
            if split in pairs:
                groups = self.read_groups(*pairs[split])
                examples = splits.named(split)
                for name in sorted(groups):
                    examples.extend(groups[name])
        log_split_sizes("coco", splits)
        return splits


# ---------------------------------------------------------------- emoji

EMOJI_ROOT = "/usr/share/rubygems-integration/all/gems/tanuki_emoji-*"
EMOJI_IMAGES = Path("app/assets/images/tanuki_emoji")
EMOJI_NAMES = Path("vendor/unicode/emoji-test.txt")
EMOJI_MISSING = (
    "the emoji data source needs Debian package ruby-tanuki-emoji: "
    "sudo apt-get install ruby-tanuki-emoji"
)
# The statuses of emoji-test.txt whose names caption an image. Minimally
# qualified and unqualified lines repeat a fully-qualified emoji without
# some U+FE0F.
EMOJI_STATUSES = ("fully-qualified", "component")
VARIATION_SELECTOR_16 = 0xFE0F
REGIONAL_INDICATOR_A = 0x1F1E6

# "1F600 ; fully-qualified # 😀 E1.0 grinning face"
_EMOJI_LINE = re.compile(
    r"(?P<code_points>[0-9A-Fa-f]+(?: +[0-9A-Fa-f]+)*)\s*;\s*(?P<status>[a-z-]+)"
    r"\s*#\s*\S+\s+E\d+\.\d+\s+(?P<name>.+)"
)
# "emoji_u1f468_200d_1f469.png" (Noto Emoji), or "US.png" for a country flag.
_EMOJI_FILE = re.compile(r"emoji_u(?P<hex>[0-9a-f]+(?:_[0-9a-f]+)*)|(?P<flag>[A-Z]{2})")


def _version_key(text: str) -> list[Any]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


def find_emoji_root(base_dir: Path, text: str, recipe_file: str | None) -> Path:
    """Return the tanuki_emoji gem folder of `text`, the highest version if a glob."""
    found = glob_inside(base_dir, text, "data.root", recipe_file)
    matches = [path for path in found if path.is_dir()]
    if not matches:
        resolved = resolve_inside(base_dir, text, "data.root", recipe_file)
        raise DataError(
            f"{EMOJI_MISSING} (no folder matches {resolved}), or set data.root "
            "to the tanuki_emoji gem folder"
        )
    root = max(matches, key=lambda path: _version_key(path.name))
    for part in (EMOJI_IMAGES, EMOJI_NAMES):
        if not (root / part).exists():
            raise DataError(
                f"{root} has no {part}, so it does not have the layout of the "
                f"tanuki_emoji gem 0.6.0; {EMOJI_MISSING}"
            )
    return root


def emoji_key(code_points: Iterable[int]) -> tuple[int, ...]:
    """Return the code points without U+FE0F, which image file names leave out."""
    return tuple(c for c in code_points if c != VARIATION_SELECTOR_16)


def read_emoji_names(path: Path) -> dict[tuple[int, ...], str]:
    """Read the lowercased name of each emoji in emoji-test.txt, keyed by `emoji_key`.

    Only lines with a status in `EMOJI_STATUSES` count. Raises DataError,
    naming the line, for a line that is neither a comment nor an emoji.
    """
    text = decode_text(path, path.read_bytes())
    names: dict[tuple[int, ...], str] = {}
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = _EMOJI_LINE.fullmatch(line.strip())
        if match is None:
            raise DataError(
                f"{path}, line {number}: expected `code points ; status # emoji "
                f"E<version> name`, found {line.strip()[:60]!r}"
            )
        if match["status"] not in EMOJI_STATUSES:
            continue
        code_points = [int(part, 16) for part in match["code_points"].split()]
        names[emoji_key(code_points)] = match["name"].strip().lower()
    return names


def emoji_file_key(path: Path) -> tuple[int, ...] | None:
    """Return the `emoji_key` of an image file name, or None for another name.

    "emoji_u1f468_200d_1f469.png" gives (0x1F468, 0x200D, 0x1F469), and a
    two-letter country code such as "US.png" gives its regional indicators.
    """
    match = _EMOJI_FILE.fullmatch(path.stem)
    if match is None:
        return None
    if match["flag"]:
        return tuple(REGIONAL_INDICATOR_A + ord(c) - ord("A") for c in match["flag"])
    return emoji_key(int(part, 16) for part in match["hex"].split("_"))


@dataclass
class EmojiOptions:
    root: str = field(
        default=EMOJI_ROOT,
        metadata={
            "path": True,
            "help": "folder of the tanuki_emoji gem of Debian package "
            "ruby-tanuki-emoji; a glob picks the highest version",
        },
    )
    valid_fraction: float = _valid_fraction()
    test_fraction: float = _test_fraction()


class EmojiSource(DataSource):
    """The PNG emoji of Debian package ruby-tanuki-emoji, captioned with their names.

    The images are app/assets/images/tanuki_emoji/*.png of the gem folder:
    Noto Emoji files named after their code points without U+FE0F
    ("emoji_u1f600.png"), and flags named by country code ("US.png"). The
    caption is the lowercased name in vendor/unicode/emoji-test.txt of the
    fully-qualified or component emoji with those code points, such as
    "grinning face" or "flag: united states". An image without such a line is
    left out and counted in the log. Each image has one caption, and the
    split is decided by a SHA-256 hash of the caption.

    With tanuki_emoji 0.6.0 (emoji-test.txt of Unicode 13.1) that is 1,784 of
    the 1,794 images. The 10 left out show handshakes and wrestlers with skin
    tones, which Unicode 13.1 does not list.
    """

    Options = EmojiOptions
    task = "captioning"

    def __init__(self, options: EmojiOptions, context: BuildContext):
        self.options = options
        self.base_dir = context.base_dir
        self.recipe_file = context.recipe_file

    def check(self) -> None:
        find_emoji_root(self.base_dir, self.options.root, self.recipe_file)

    def load(self) -> Splits:
        root = find_emoji_root(self.base_dir, self.options.root, self.recipe_file)
        names = read_emoji_names(root / EMOJI_NAMES)
        groups: dict[str, list[Example]] = {}
        unnamed = []
        for path in sorted((root / EMOJI_IMAGES).glob("*.png")):
            name = names.get(emoji_file_key(path))
            if name is None:
                unnamed.append(path.name)
                continue
            groups[name] = caption_examples(path, [name])
        if unnamed:
            log.info(
                "emoji: left out %d images without a name in %s: %s",
                len(unnamed),
                EMOJI_NAMES.name,
                _listed(unnamed),
            )
        if not groups:
            raise DataError(
                f"{root / EMOJI_IMAGES} contains no PNG image named in "
                f"{root / EMOJI_NAMES}; {EMOJI_MISSING}"
            )
        splits = split_by_key(
            groups, self.options.valid_fraction, self.options.test_fraction
        )
        log_split_sizes("emoji", splits)
        return splits


@hookimpl
def seqkit_add_data_sources() -> dict[str, type]:
    return {
        "glyphs": GlyphsSource,
        "flickr8k": Flickr8kSource,
        "coco": CocoSource,
        "emoji": EmojiSource,
    }
