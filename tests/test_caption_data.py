"""Captioning data sources: rendered glyphs, Flickr8k, COCO and tanuki_emoji."""

from __future__ import annotations

import hashlib
import json
import logging
import unicodedata
from pathlib import Path

import pytest
from PIL import Image
from seqkit_builtins import caption_data
from seqkit_builtins.caption_data import (
    CocoOptions,
    CocoSource,
    EmojiOptions,
    EmojiSource,
    Flickr8kOptions,
    Flickr8kSource,
    GlyphRenderer,
    GlyphsOptions,
    GlyphsSource,
    emoji_file_key,
    find_emoji_root,
    font_character_map,
    held_out_pairs,
    matplotlib_font_folder,
    seqkit_add_data_sources,
    unquote_csv_field,
)
from seqkit_builtins.gettext_catalogs import hash_position

from seqkit import BuildContext, Example, Splits
from seqkit.errors import DataError, RecipeError

FONTS = ["DejaVuSans", "DejaVuSerif", "DejaVuSansMono", "STIXGeneral"]


def all_examples(splits: Splits) -> list[Example]:
    return splits.train + splits.valid + splits.test


def glyphs_source(**options) -> GlyphsSource:
    return GlyphsSource(GlyphsOptions(**options), BuildContext(base_dir=Path(".")))


def pixel_hash(image: Image.Image) -> str:
    return hashlib.sha256(image.tobytes()).hexdigest()


def split_fingerprint(splits: Splits) -> dict[str, list[tuple[str, str]]]:
    return {
        name: [(e.target, pixel_hash(e.source)) for e in splits.named(name)]
        for name in ("train", "valid", "test")
    }


def render_and_split(source: GlyphsSource):
    """Return the rendered images, the splits, and each example's GlyphImage."""
    characters = caption_data.select_characters(
        source.ranges, source.options.categories
    )
    fonts = source.fonts()
    renderer = GlyphRenderer(source.options.image_size)
    images, references = source.render_all(characters, fonts, renderer)
    splits = source.split(images, references, [font.name for font in fonts])
    by_identity = {id(image.image): image for image in images}
    return images, splits, by_identity


def test_data_sources_registered():
    assert set(seqkit_add_data_sources()) == {"glyphs", "flickr8k", "coco", "emoji"}
    for source in seqkit_add_data_sources().values():
        assert source.task == "captioning"


# ---------------------------------------------------------------- glyphs


def test_glyphs_identical_on_reload():
    options = {"characters": ["Basic Latin", "U+00E0..U+00FF"], "fonts": FONTS}
    first = glyphs_source(**options).load()
    second = glyphs_source(**options).load()
    assert split_fingerprint(first) == split_fingerprint(second)
    assert len(all_examples(first)) > 300


def test_glyphs_seed_changes_images():
    options = {"characters": ["U+0041..U+005A"], "fonts": FONTS}
    first = split_fingerprint(glyphs_source(seed=0, **options).load())
    second = split_fingerprint(glyphs_source(seed=1, **options).load())
    assert first != second


def test_glyphs_default_counts():
    splits = glyphs_source().load()
    examples = all_examples(splits)
    assert len(examples) == 3985
    assert len({e.target for e in examples}) == 530
    assert len(splits.test) > 0
    assert len(splits.valid) > 0
    assert len({id(e.source) for e in examples}) == len(examples)


def test_glyphs_test_pairs_unseen_in_train():
    source = glyphs_source(characters=["Basic Latin", "Greek and Coptic"], fonts=FONTS)
    _, splits, glyph_of = render_and_split(source)
    train_pairs = {
        (glyph_of[id(e.source)].character, glyph_of[id(e.source)].font)
        for e in splits.train
    }
    train_characters = {character for character, _ in train_pairs}
    train_fonts = {font for _, font in train_pairs}
    for split in (splits.test, splits.valid):
        assert split
        for example in split:
            glyph = glyph_of[id(example.source)]
            assert (glyph.character, glyph.font) not in train_pairs
            assert glyph.character in train_characters
            assert glyph.font in train_fonts


def test_glyphs_sizes_stay_together():
    source = glyphs_source(characters=["U+0041..U+005A"], fonts=FONTS, sizes=[24, 32])
    images, splits, glyph_of = render_and_split(source)
    split_of_pair: dict[tuple[str, str], set[str]] = {}
    for name in ("train", "valid", "test"):
        for example in splits.named(name):
            glyph = glyph_of[id(example.source)]
            split_of_pair.setdefault((glyph.character, glyph.font), set()).add(name)
    assert all(len(names) == 1 for names in split_of_pair.values())
    assert {image.size for image in images} == {24, 32}


def test_held_out_pairs_keep_one_training_font():
    pairs = {(chr(c), font) for c in range(0x41, 0x5B) for font in ("a", "b")}
    held_out = held_out_pairs(pairs, valid_fraction=0.5, test_fraction=0.5, seed=3)
    for character in {character for character, _ in pairs}:
        trained = [font for font in ("a", "b") if (character, font) not in held_out]
        assert len(trained) == 1
    assert set(held_out.values()) == {"valid", "test"}


def test_held_out_single_font_trains():
    held_out = held_out_pairs({("A", "a")}, 0.5, 0.5, seed=0)
    assert held_out == {}


def test_glyph_captions_are_unicode_names():
    source = glyphs_source(
        characters=["U+0041", "U+00E9", "U+03A9", "U+2192", "U+0391"],
        fonts=["DejaVuSans", "DejaVuSerif"],
        valid_fraction=0.0,
        test_fraction=0.0,
    )
    examples = all_examples(source.load())
    captions = {e.target for e in examples}
    assert captions == {
        "latin capital letter a",
        "latin small letter e with acute",
        "greek capital letter omega",
        "rightwards arrow",
        "greek capital letter alpha",
    }
    for example in examples:
        assert example.target == example.references[0]
        name = unicodedata.name(unicodedata.lookup(example.target))
        assert example.target == name.lower()


def test_glyph_lookalikes_share_references():
    source = glyphs_source(
        characters=["U+0041", "U+0391", "U+0042"],
        fonts=["DejaVuSans", "DejaVuSerif"],
        valid_fraction=0.0,
        test_fraction=0.0,
    )
    references = {e.target: e.references for e in source.load().train}
    assert references["latin capital letter a"] == [
        "latin capital letter a",
        "greek capital letter alpha",
    ]
    assert references["greek capital letter alpha"] == [
        "greek capital letter alpha",
        "latin capital letter a",
    ]
    assert references["latin capital letter b"] == ["latin capital letter b"]


def test_glyphs_only_from_font_cmap():
    folder = matplotlib_font_folder()
    source = glyphs_source(
        characters=["Greek and Coptic"], fonts=["DejaVuSans", "STIXGeneralItalic"]
    )
    images, _, _ = render_and_split(source)
    italic = font_character_map(folder / "STIXGeneralItalic.ttf")
    sans = font_character_map(folder / "DejaVuSans.ttf")
    for image in images:
        cmap = italic if image.font == "STIXGeneralItalic" else sans
        assert ord(image.character) in cmap
    italic_characters = {i.character for i in images if i.font == "STIXGeneralItalic"}
    sans_characters = {i.character for i in images if i.font == "DejaVuSans"}
    # The filter must have dropped characters that only DejaVu Sans has.
    assert italic_characters < sans_characters
    assert "\u03e2" in sans_characters  # coptic capital letter shei
    assert "\u03e2" not in italic_characters


def test_glyph_categories_filter():
    source = glyphs_source(
        characters=["Basic Latin"],
        categories=["Nd"],
        fonts=["DejaVuSans", "DejaVuSerif"],
        valid_fraction=0.0,
        test_fraction=0.0,
    )
    captions = {e.target for e in source.load().train}
    assert captions == {unicodedata.name(str(d)).lower() for d in range(10)}


def test_glyph_without_jitter_is_centred():
    renderer = GlyphRenderer(48)
    image = renderer.render("O", matplotlib_font_folder() / "DejaVuSans.ttf", 32)
    assert image.mode == "L"
    assert image.size == (48, 48)
    left, top, right, bottom = Image.eval(image, lambda v: 255 - v).getbbox()
    assert abs(left - (48 - right)) <= 1
    assert abs(top - (48 - bottom)) <= 1
    assert image.getpixel((0, 0)) == 255
    assert image.getextrema()[0] == 0


def test_oversized_glyph_fits_image():
    renderer = GlyphRenderer(16)
    image = renderer.render("W", matplotlib_font_folder() / "DejaVuSans.ttf", 64)
    left, top, right, bottom = Image.eval(image, lambda v: 255 - v).getbbox()
    assert left >= 1
    assert top >= 1
    assert right <= 15
    assert bottom <= 15


def test_glyph_without_ink_is_none():
    renderer = GlyphRenderer(32)
    path = matplotlib_font_folder() / "DejaVuSans.ttf"
    assert renderer.render(" ", path, 24) is None


def test_unknown_block_suggests_name():
    with pytest.raises(RecipeError, match="Did you mean `Greek and Coptic`") as caught:
        glyphs_source(characters=["Greek and Coptc"])
    assert "data.characters[0]" in str(caught.value)


def test_block_names_match_loosely():
    source = glyphs_source(characters=["latin_extended_a", "GREEK AND COPTIC"])
    assert source.ranges == [(0x0100, 0x017F), (0x0370, 0x03FF)]


def test_invalid_range_rejected():
    with pytest.raises(RecipeError, match="invalid code point range"):
        glyphs_source(characters=["U+0200..U+0100"])
    with pytest.raises(RecipeError, match="invalid code point range"):
        glyphs_source(characters=["U+110000"])


def test_unknown_category_rejected():
    with pytest.raises(RecipeError, match="unknown general category 'Q'"):
        glyphs_source(categories=["Q"])
    with pytest.raises(RecipeError, match="unknown general category 'LN'"):
        glyphs_source(categories=["LN"])


def test_unknown_font_lists_fonts():
    source = glyphs_source(fonts=["DejaVuSanz"])
    with pytest.raises(DataError, match="Did you mean `DejaVuSans`") as caught:
        source.check()
    assert "STIXGeneral" in str(caught.value)


def test_font_path_accepted(tmp_path):
    font = matplotlib_font_folder() / "DejaVuSans.ttf"
    (tmp_path / "my.ttf").write_bytes(font.read_bytes())
    options = GlyphsOptions(
        characters=["U+0041..U+0043"],
        fonts=["my.ttf", "DejaVuSerif"],
        valid_fraction=0.0,
        test_fraction=0.0,
    )
    splits = GlyphsSource(options, BuildContext(base_dir=tmp_path)).load()
    assert len(splits.train) == 6


def test_broken_font_file_named(tmp_path):
    (tmp_path / "broken.ttf").write_bytes(b"not a font")
    options = GlyphsOptions(fonts=["broken.ttf"])
    source = GlyphsSource(options, BuildContext(base_dir=tmp_path))
    with pytest.raises(DataError, match="broken.ttf: cannot read the font"):
        source.load()


def test_too_few_glyphs_for_test_split():
    source = glyphs_source(characters=["U+0041"], fonts=["DejaVuSans"])
    with pytest.raises(DataError, match="no \\(character, font\\) pair fell into"):
        source.load()


# ---------------------------------------------------------------- flickr8k


def write_image(path: Path, color: tuple[int, int, int] = (200, 30, 30)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (6, 4), color).save(path)
    return path


def flickr_source(folder: Path, **options) -> Flickr8kSource:
    options = {"captions": "captions.txt", "images": "Images", **options}
    return Flickr8kSource(Flickr8kOptions(**options), BuildContext(base_dir=folder))


FLICKR_CAPTIONS = (
    "image,caption\n"
    "1000_a.jpg,A dog runs .\n"
    "1000_a.jpg,A brown dog , running on grass .\n"
    '1000_a.jpg,"A dog, ""Rex"", jumps ."\n'
    "1000_a.jpg,A dog runs .\n"
    "\n"
    "2000_b.jpg,Two  children   play .\n"
)


def test_flickr_captions_grouped(tmp_path):
    (tmp_path / "captions.txt").write_text(FLICKR_CAPTIONS, encoding="utf-8")
    write_image(tmp_path / "Images" / "1000_a.jpg")
    write_image(tmp_path / "Images" / "2000_b.jpg")
    splits = flickr_source(tmp_path, valid_fraction=0.0, test_fraction=0.0).load()
    examples = splits.train
    assert [e.target for e in examples] == [
        "A dog runs .",
        "A brown dog , running on grass .",
        'A dog, "Rex", jumps .',
        "Two children play .",
    ]
    dog = examples[:3]
    assert dog[1].references == [
        "A brown dog , running on grass .",
        "A dog runs .",
        'A dog, "Rex", jumps .',
    ]
    assert dog[0].source is dog[1].source
    assert dog[1].source is dog[2].source
    assert dog[0].source == tmp_path / "Images" / "1000_a.jpg"
    assert examples[3].references == ["Two children play ."]


def test_flickr_split_by_image_name(tmp_path):
    rows = ["image,caption"]
    for index in range(60):
        rows.append(f"{index}.jpg,caption one of {index}")
        rows.append(f"{index}.jpg,caption two of {index}")
        write_image(tmp_path / "Images" / f"{index}.jpg")
    (tmp_path / "captions.txt").write_text("\n".join(rows), encoding="utf-8")
    splits = flickr_source(tmp_path, valid_fraction=0.2, test_fraction=0.2).load()
    for name in ("train", "valid", "test"):
        examples = splits.named(name)
        assert examples
        for example in examples:
            position = hash_position(example.source.name, b"split")
            expected = "train"
            if position < 0.2:
                expected = "test"
            elif position < 0.4:
                expected = "valid"
            assert name == expected
    assert len(all_examples(splits)) == 120


def test_flickr_missing_images_listed(tmp_path):
    (tmp_path / "captions.txt").write_text(FLICKR_CAPTIONS, encoding="utf-8")
    write_image(tmp_path / "Images" / "1000_a.jpg")
    with pytest.raises(DataError, match="1 of the 2 images") as caught:
        flickr_source(tmp_path).load()
    assert "2000_b.jpg" in str(caught.value)
    assert "data.skip_missing" in str(caught.value)


def test_flickr_skip_missing_warns(tmp_path, caplog):
    (tmp_path / "captions.txt").write_text(FLICKR_CAPTIONS, encoding="utf-8")
    write_image(tmp_path / "Images" / "1000_a.jpg")
    source = flickr_source(
        tmp_path, skip_missing=True, valid_fraction=0.0, test_fraction=0.0
    )
    with caplog.at_level(logging.WARNING, logger=caption_data.__name__):
        splits = source.load()
    assert {e.source.name for e in splits.train} == {"1000_a.jpg"}
    assert "left out 1 of the 2 images" in caplog.text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name,text\na.jpg,x\n", "line 1: expected the header row `image,caption`"),
        ("image,caption\na.jpg A dog\n", "line 2: expected `name.jpg,caption`"),
        ("image,caption\na.jpg,  \n", "line 2: the caption is empty"),
        ("image,caption\n../a.jpg,A dog\n", "'../a.jpg' is not an image file name"),
        ("", "is empty"),
        ("image,caption\n\n", "contains no caption rows"),
    ],
)
def test_flickr_malformed_rows(tmp_path, text, message):
    (tmp_path / "captions.txt").write_text(text, encoding="utf-8")
    (tmp_path / "Images").mkdir()
    with pytest.raises(DataError, match=message):
        flickr_source(tmp_path).load()


def test_flickr_missing_files(tmp_path):
    with pytest.raises(DataError, match="data.captions: .* not found"):
        flickr_source(tmp_path).check()
    (tmp_path / "captions.txt").write_text(FLICKR_CAPTIONS, encoding="utf-8")
    with pytest.raises(DataError, match="data.images: .* is not a folder"):
        flickr_source(tmp_path).check()


def test_unquote_csv_field():
    assert unquote_csv_field('"a, ""b"""') == 'a, "b"'
    assert unquote_csv_field('"a" and "b"') == '"a" and "b"'
    assert unquote_csv_field("plain") == "plain"
    assert unquote_csv_field('"') == '"'


# ---------------------------------------------------------------- coco


def coco_file(path: Path, images: list[tuple[int, str]], captions: list[tuple]) -> Path:
    data = {
        "info": {},
        "images": [{"id": i, "file_name": name, "width": 6} for i, name in images],
        "annotations": [
            {"id": n, "image_id": i, "caption": text}
            for n, (i, text) in enumerate(captions)
        ],
    }
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def coco_source(folder: Path, **options) -> CocoSource:
    options = {"annotations": "captions.json", "images": "images", **options}
    return CocoSource(CocoOptions(**options), BuildContext(base_dir=folder))


def test_coco_captions_grouped(tmp_path):
    coco_file(
        tmp_path / "captions.json",
        [(7, "b.jpg"), (3, "a.jpg"), (9, "uncaptioned.jpg")],
        [(3, "A cat, asleep.\n"), (7, "A bus."), (3, "  A  sleeping cat ")],
    )
    write_image(tmp_path / "images" / "a.jpg")
    write_image(tmp_path / "images" / "b.jpg")
    splits = coco_source(tmp_path, valid_fraction=0.0, test_fraction=0.0).load()
    examples = splits.train
    assert [e.target for e in examples] == [
        "A cat, asleep.",
        "A sleeping cat",
        "A bus.",
    ]
    assert examples[0].source is examples[1].source
    assert examples[1].references == ["A sleeping cat", "A cat, asleep."]
    assert examples[2].source == tmp_path / "images" / "b.jpg"


def test_coco_separate_test_files(tmp_path):
    names = [(i, f"{i}.jpg") for i in range(40)]
    coco_file(tmp_path / "captions.json", names, [(i, f"train {i}") for i, _ in names])
    coco_file(tmp_path / "test.json", [(1, "t.jpg")], [(1, "a test caption")])
    for _, name in names:
        write_image(tmp_path / "images" / name)
    write_image(tmp_path / "test_images" / "t.jpg")
    source = coco_source(
        tmp_path,
        test_annotations="test.json",
        test_images="test_images",
        valid_fraction=0.25,
        test_fraction=0.25,
    )
    splits = source.load()
    assert [e.target for e in splits.test] == ["a test caption"]
    assert splits.valid
    assert len(splits.train) + len(splits.valid) == 40


def test_coco_split_files_go_together(tmp_path):
    with pytest.raises(RecipeError, match="set test_images too"):
        coco_source(tmp_path, test_annotations="test.json")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"images": [', "line 1, column 13: invalid JSON"),
        ("[1, 2]", "found a JSON list"),
        ('{"images": []}', '"annotations" is missing'),
        ('{"images": {}, "annotations": []}', '"images" is dict'),
        (
            '{"images": [{"id": 1}], "annotations": []}',
            r"images\[0\]: file_name is None",
        ),
        (
            '{"images": [{"id": 1, "file_name": "a.jpg"}, '
            '{"id": 1, "file_name": "b.jpg"}], "annotations": []}',
            r"images\[1\]: id 1 appears twice",
        ),
        (
            '{"images": [{"id": 1, "file_name": "a.jpg"}], '
            '"annotations": [{"image_id": 2, "caption": "x"}]}',
            r"annotations\[0\]: image_id 2 is not the id",
        ),
        (
            '{"images": [{"id": 1, "file_name": "a.jpg"}], '
            '"annotations": [{"image_id": 1, "caption": " "}]}',
            r"annotations\[0\]: caption is ' '",
        ),
        (
            '{"images": [{"id": 1, "file_name": "a.jpg"}], "annotations": []}',
            "contains no captions",
        ),
    ],
)
def test_coco_malformed_json(tmp_path, text, message):
    (tmp_path / "captions.json").write_text(text, encoding="utf-8")
    (tmp_path / "images").mkdir()
    with pytest.raises(DataError, match=message) as caught:
        coco_source(tmp_path).load()
    assert "captions.json" in str(caught.value)


def test_coco_missing_image_named(tmp_path):
    coco_file(tmp_path / "captions.json", [(1, "gone.jpg")], [(1, "A dog.")])
    (tmp_path / "images").mkdir()
    with pytest.raises(DataError, match="1 of the 1 images .*: gone.jpg"):
        coco_source(tmp_path).load()


# ---------------------------------------------------------------- emoji

EMOJI_TEST_LINES = """\
# emoji-test.txt
# Version: 13.1

# group: Smileys & Emotion

# subgroup: face-smiling
1F600                                                  ; fully-qualified     # 😀 E1.0 grinning face
263A FE0F                                              ; fully-qualified     # ☺️ E0.6 smiling face
263A                                                   ; unqualified         # ☺ E0.6 smiling face
1F441 FE0F 200D 1F5E8 FE0F                             ; fully-qualified     # 👁️‍🗨️ E2.0 eye in speech bubble
1F3FB                                                  ; component           # 🏻 E1.0 light skin tone
1F1FA 1F1F8                                            ; fully-qualified     # 🇺🇸 E0.6 flag: United States
"""  # noqa: E501

EMOJI_FILES = [
    "emoji_u1f600.png",
    "emoji_u263a.png",
    "emoji_u1f441_200d_1f5e8.png",
    "emoji_u1f3fb.png",
    "US.png",
    "emoji_u1f91d_1f3fb.png",
]


def fake_emoji_gem(root: Path, names: str = EMOJI_TEST_LINES) -> Path:
    """Write a gem folder with the layout of tanuki_emoji 0.6.0."""
    images = root / "app" / "assets" / "images" / "tanuki_emoji"
    for index, name in enumerate(EMOJI_FILES):
        image = Image.new("RGBA", (8, 8), (index * 40, 0, 0, 255))
        images.mkdir(parents=True, exist_ok=True)
        image.save(images / name)
    vendor = root / "vendor" / "unicode"
    vendor.mkdir(parents=True)
    (vendor / "emoji-test.txt").write_text(names, encoding="utf-8")
    return root


def emoji_source(folder: Path, root: str, **options) -> EmojiSource:
    return EmojiSource(
        EmojiOptions(root=root, **options), BuildContext(base_dir=folder)
    )


def test_emoji_names_from_file_names(tmp_path):
    fake_emoji_gem(tmp_path / "tanuki_emoji-0.6.0")
    source = emoji_source(
        tmp_path, "tanuki_emoji-*", valid_fraction=0.0, test_fraction=0.0
    )
    captions = {e.source.name: e.target for e in source.load().train}
    assert captions == {
        "emoji_u1f600.png": "grinning face",
        "emoji_u263a.png": "smiling face",
        "emoji_u1f441_200d_1f5e8.png": "eye in speech bubble",
        "emoji_u1f3fb.png": "light skin tone",
        "US.png": "flag: united states",
    }


def test_emoji_file_keys():
    assert emoji_file_key(Path("emoji_u1f600.png")) == (0x1F600,)
    assert emoji_file_key(Path("emoji_u0023_20e3.png")) == (0x23, 0x20E3)
    assert emoji_file_key(Path("GB.png")) == (0x1F1EC, 0x1F1E7)
    assert emoji_file_key(Path("README.png")) is None


def test_emoji_root_glob_picks_highest_version(tmp_path):
    for version in ("0.9.0", "0.10.0"):
        fake_emoji_gem(tmp_path / f"tanuki_emoji-{version}")
    root = find_emoji_root(tmp_path, "tanuki_emoji-*", None)
    assert root.name == "tanuki_emoji-0.10.0"


def test_emoji_missing_package_message(tmp_path):
    source = emoji_source(tmp_path, str(tmp_path / "gems" / "tanuki_emoji-*"))
    with pytest.raises(DataError, match="sudo apt-get install ruby-tanuki-emoji"):
        source.check()


def test_emoji_wrong_layout_named(tmp_path):
    (tmp_path / "tanuki_emoji-0.6.0").mkdir()
    source = emoji_source(tmp_path, "tanuki_emoji-0.6.0")
    with pytest.raises(DataError, match="does not have the layout"):
        source.load()


def test_emoji_malformed_line_named(tmp_path):
    fake_emoji_gem(tmp_path / "tanuki_emoji-0.6.0", EMOJI_TEST_LINES + "1F600 oops\n")
    source = emoji_source(tmp_path, "tanuki_emoji-0.6.0")
    with pytest.raises(DataError, match="emoji-test.txt, line 13: expected"):
        source.load()


def test_emoji_real_package():
    try:
        root = find_emoji_root(Path("."), caption_data.EMOJI_ROOT, None)
    except DataError:
        pytest.skip("Debian package ruby-tanuki-emoji is not installed")
    if root.name != "tanuki_emoji-0.6.0":
        pytest.skip(f"the counts are those of tanuki_emoji 0.6.0, found {root.name}")
    splits = emoji_source(Path("."), caption_data.EMOJI_ROOT).load()
    examples = all_examples(splits)
    assert len(examples) == 1784
    assert len({e.target for e in examples}) == 1784
    captions = {e.source.name: e.target for e in examples}
    assert captions["emoji_u1f600.png"] == "grinning face"
    assert captions["US.png"] == "flag: united states"
    assert captions["emoji_u0023_20e3.png"] == "keycap: #"
    assert splits.valid
    assert splits.test
