"""Recipe loading: validation errors, `--set`, `extends` and paths in recipes."""

from __future__ import annotations

import shutil

import pytest
from helpers import DATA_DIR, char_recipe, write_recipe

from seqkit.errors import RecipeError
from seqkit.recipe import read_recipe, validate_recipe
from seqkit.run import build, load_recipe
from seqkit.tomlwriter import dumps


def test_base_recipe_is_valid():
    recipe, _ = load_recipe(DATA_DIR / "base.toml")

    assert recipe.data.plugin == "shakespeare"
    assert recipe.data.options.plays == ["macbeth"]
    assert recipe.decoder.options.hidden_size == 16
    assert recipe.decoder.options.cell == "lstm"
    assert recipe.encoder is None
    assert recipe.train.max_steps == 2
    assert recipe.train.lr == 2e-3


def test_unknown_key_suggests_nearest():
    with pytest.raises(RecipeError) as caught:
        load_recipe(DATA_DIR / "unknown_key.toml")
    message = str(caught.value)

    assert "`train.lrr`" in message
    assert "Did you mean `lr`?" in message
    assert "unknown_key.toml" in message
    assert caught.value.key == "train.lrr"


def test_unknown_top_level_section_suggests_nearest(tmp_path):
    table = char_recipe()
    table["trian"] = table.pop("train")
    path = write_recipe(tmp_path, table)

    with pytest.raises(
        RecipeError, match=r"unknown section or key `trian`\. Did you mean `train`\?"
    ):
        load_recipe(path)


def test_wrong_type_names_key_and_value():
    with pytest.raises(RecipeError) as caught:
        load_recipe(DATA_DIR / "wrong_type.toml")
    message = str(caught.value)

    assert "`train.batch_size`" in message
    assert "expected int, got str 'big'" in message


@pytest.mark.parametrize(
    ("section", "values", "expected"),
    [
        ("decoder", {"tie_weights": 1}, "expected bool, got int 1"),
        ("train", {"epochs": True}, "expected int, got bool True"),
        ("train", {"batch_size": 0}, "must be at least 1, got 0"),
        ("decoder", {"dropout": 1.5}, "must be at most 0.99, got 1.5"),
        ("decoder", {"cell": "lstn"}, "invalid value 'lstn'. Did you mean `lstm`?"),
        ("data", {"plays": "macbeth"}, "expected a list, got 'macbeth'"),
    ],
)
def test_invalid_values_rejected(tmp_path, section, values, expected):
    path = write_recipe(tmp_path, char_recipe(**{section: values}))

    with pytest.raises(RecipeError) as caught:
        load_recipe(path)

    assert expected in str(caught.value)


def test_int_accepted_for_float(tmp_path):
    path = write_recipe(tmp_path, char_recipe(train={"lr": 1}))

    recipe, _ = load_recipe(path)

    assert recipe.train.lr == 1.0
    assert type(recipe.train.lr) is float


def test_unknown_plugin_lists_available(registry):
    with pytest.raises(RecipeError) as caught:
        load_recipe(DATA_DIR / "unknown_plugin.toml")
    message = str(caught.value)

    assert "unknown decoder plugin 'transformer'" in message
    assert f"Available: {', '.join(registry.names('decoder'))}." in message
    assert caught.value.key == "decoder.plugin"


def test_unknown_sampler_suggests_nearest(tmp_path, registry):
    path = write_recipe(tmp_path, char_recipe(sampler={"plugin": "greddy"}))

    with pytest.raises(RecipeError) as caught:
        load_recipe(path)
    message = str(caught.value)

    assert "Did you mean `greedy`?" in message
    assert f"Available: {', '.join(registry.names('sampler'))}." in message


def test_missing_section_named():
    with pytest.raises(RecipeError, match=r"missing section \[decoder\]"):
        load_recipe(DATA_DIR / "missing_section.toml")


def test_missing_recipe_file(tmp_path):
    path = tmp_path / "nowhere.toml"

    with pytest.raises(RecipeError) as caught:
        load_recipe(path)

    assert str(caught.value) == f"{path}: recipe file not found"


def test_invalid_toml_names_file(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text("[train\nlr = 1\n", encoding="utf-8")

    with pytest.raises(RecipeError, match=r"broken\.toml: invalid TOML"):
        load_recipe(path)


def test_set_typed_by_schema():
    overrides = [
        "train.lr=0.01",
        "train.max_steps=1",
        "data.plays=['macbeth', 'hamlet']",
        "decoder.tie_weights=true",
        "decoder.cell=gru",
        "evaluate.prompt=ROMEO: 1",
    ]

    recipe, _ = load_recipe(DATA_DIR / "base.toml", overrides)

    assert recipe.train.lr == 0.01
    assert type(recipe.train.lr) is float
    assert recipe.train.max_steps == 1
    assert recipe.data.options.plays == ["macbeth", "hamlet"]
    assert recipe.decoder.options.tie_weights is True
    assert recipe.decoder.options.cell == "gru"
    assert recipe.evaluate.prompt == "ROMEO: 1"


def test_set_int_becomes_float_and_none():
    recipe, _ = load_recipe(
        DATA_DIR / "base.toml", ["train.lr=1", "train.max_steps=none"]
    )

    assert recipe.train.lr == 1.0
    assert type(recipe.train.lr) is float
    assert recipe.train.max_steps is None


def test_set_missing_key_rejected():
    with pytest.raises(RecipeError) as caught:
        load_recipe(DATA_DIR / "base.toml", ["train.lrr=0.01"])
    message = str(caught.value)

    assert message.startswith("--set: `train.lrr`: unknown key `lrr`.")
    assert "Did you mean `lr`?" in message


def test_set_unknown_section_rejected():
    with pytest.raises(
        RecipeError, match=r"unknown section `trian`\. Did you mean `train`\?"
    ):
        load_recipe(DATA_DIR / "base.toml", ["trian.lr=0.01"])


@pytest.mark.parametrize(
    ("assignment", "expected"),
    [
        ("train.lr", "write it as section.key=value"),
        ("=1", "write it as section.key=value"),
        ("lr=0.01", "unknown section `lr`"),
        ("train.lr.x=1", "expected section.key, such as train.lr"),
        ("train=1", "expected section.key, such as train.lr"),
    ],
)
def test_set_malformed_rejected(assignment, expected):
    with pytest.raises(RecipeError) as caught:
        load_recipe(DATA_DIR / "base.toml", [assignment])

    assert expected in str(caught.value)


def test_set_wrong_type_names_set():
    with pytest.raises(RecipeError) as caught:
        load_recipe(DATA_DIR / "base.toml", ["train.batch_size=big"])
    message = str(caught.value)

    assert message.startswith("--set: `train.batch_size`:")
    assert "'big'" in message


def test_set_plugin_replaces_component():
    recipe, _ = load_recipe(DATA_DIR / "base.toml", ["sampler.plugin=sample"])

    assert recipe.sampler.plugin == "sample"
    assert recipe.sampler.options.temperature == 1.0


def test_set_plugin_drops_old_options(tmp_path):
    path = write_recipe(tmp_path, char_recipe())
    recipe, _ = load_recipe(path, ["sampler.plugin=greedy"])

    assert recipe.sampler.plugin == "greedy"
    assert recipe.sampler.options.repetition_penalty == 1.0


def test_set_plugin_keeps_later_set_values(tmp_path):
    path = write_recipe(tmp_path, char_recipe())
    overrides = ["sampler.plugin=greedy", "sampler.repetition_penalty=1.5"]
    recipe, _ = load_recipe(path, overrides)

    assert recipe.sampler.options.repetition_penalty == 1.5


def test_extends_relative_to_recipe(tmp_path, monkeypatch):
    folder = tmp_path / "recipes"
    write_recipe(folder / "shared", char_recipe(train={"lr": 0.5}), "base.toml")
    child = folder / "child.toml"
    child.write_text(
        'extends = "shared/base.toml"\n\n[decoder]\nhidden_size = 12\n',
        encoding="utf-8",
    )
    # Resolving against the working folder instead would not find the base.
    monkeypatch.chdir(tmp_path)

    recipe, _ = load_recipe("recipes/child.toml")

    assert recipe.train.lr == 0.5
    assert recipe.decoder.options.hidden_size == 12
    assert recipe.decoder.options.embedding_size == 8
    assert recipe.decoder.options.dropout == 0.2


def test_extends_plugin_change_drops_base_options(tmp_path):
    write_recipe(tmp_path, char_recipe(sampler={"top_k": 5}), "base.toml")
    child = tmp_path / "child.toml"
    child.write_text(
        'extends = "base.toml"\n\n[sampler]\nplugin = "greedy"\n', encoding="utf-8"
    )

    recipe, _ = load_recipe(child)

    assert recipe.sampler.plugin == "greedy"
    assert recipe.sampler.options.repetition_penalty == 1.0


def test_extends_cycle_rejected():
    with pytest.raises(RecipeError) as caught:
        read_recipe(DATA_DIR / "cycle_a.toml")
    message = str(caught.value)

    assert "the chain of recipes is a cycle" in message
    assert "cycle_a.toml -> " in message
    assert "cycle_b.toml -> " in message


def test_extends_missing_base(tmp_path):
    child = tmp_path / "child.toml"
    child.write_text('extends = "base.toml"\n', encoding="utf-8")

    with pytest.raises(RecipeError, match="recipe file not found"):
        read_recipe(child)


def test_extends_outside_folder_rejected():
    with pytest.raises(RecipeError) as caught:
        read_recipe(DATA_DIR / "escaping_extends.toml")
    message = str(caught.value)

    assert "path '../outside.toml' points outside the recipe's folder" in message
    assert caught.value.key == "extends"


def test_plugin_path_outside_folder_rejected():
    with pytest.raises(RecipeError, match="'../outside_plugin.py' points outside"):
        load_recipe(DATA_DIR / "escaping_plugin.toml")


def test_data_path_outside_folder_rejected():
    recipe, registry = load_recipe(DATA_DIR / "escaping_data.toml")

    with pytest.raises(RecipeError) as caught:
        build(recipe, registry)

    assert "'../../README.md' points outside the recipe's folder" in str(caught.value)
    assert caught.value.key == "data.paths"


def test_symlink_outside_folder_rejected(tmp_path):
    outside = tmp_path / "outside.txt"
    outside.write_text("secret\n" * 50, encoding="utf-8")
    folder = tmp_path / "recipe"
    folder.mkdir()
    (folder / "link.txt").symlink_to(outside)
    table = char_recipe(data={})
    table["data"] = {"plugin": "text", "paths": ["link.txt"]}
    recipe, registry = load_recipe(write_recipe(folder, table))

    with pytest.raises(RecipeError, match="'link.txt' points outside"):
        build(recipe, registry)


def test_to_table_round_trips(tmp_path, registry):
    recipe, _ = load_recipe(DATA_DIR / "base.toml", ["train.lr=0.01"])
    table = recipe.to_table()
    path = tmp_path / "resolved.toml"
    path.write_text(dumps(table), encoding="utf-8")

    again = validate_recipe(read_recipe(path), registry, str(path), tmp_path)

    assert again.to_table() == table
    assert table["train"]["lr"] == 0.01
    assert table["train"]["schedule"] == "cosine"
    assert "max_steps" in table["train"]
    assert "threads" not in table["train"]


def test_recipe_folder_copy_still_loads(tmp_path):
    # A recipe and its base move together, so `extends` must not store
    # absolute paths anywhere.
    shutil.copy(DATA_DIR / "base.toml", tmp_path / "base.toml")
    shutil.copy(DATA_DIR / "unknown_plugin.toml", tmp_path / "child.toml")

    with pytest.raises(RecipeError, match="unknown decoder plugin 'transformer'"):
        load_recipe(tmp_path / "child.toml")


def test_unknown_metric_rejected_before_training(tmp_path, registry):
    path = write_recipe(tmp_path, char_recipe(evaluate={"metrics": ["blue"]}))

    with pytest.raises(RecipeError) as caught:
        load_recipe(path)
    message = str(caught.value)

    assert "`evaluate.metrics[0]`: unknown metric plugin 'blue'" in message
    assert f"Available: {', '.join(registry.names('metric'))}." in message


def test_bpc_rejected_for_word_tokenizer(tmp_path):
    table = char_recipe(tokenizer={"plugin": "word"}, evaluate={"metrics": ["bpc"]})
    path = write_recipe(tmp_path, table)

    with pytest.raises(RecipeError) as caught:
        load_recipe(path)

    assert "metric 'bpc' needs a tokenizer of level char" in str(caught.value)
    assert "tokenizer 'word' is 'word'" in str(caught.value)


def test_resolved_recipe_has_absolute_data_paths(tmp_path):
    corpus = tmp_path / "project" / "corpus"
    corpus.mkdir(parents=True)
    (corpus / "a.txt").write_text("To be, or not to be\n" * 60, encoding="utf-8")
    table = char_recipe()
    table["data"] = {"plugin": "text", "paths": ["corpus/*.txt"], "test_fraction": 0.2}
    recipe, _ = load_recipe(write_recipe(tmp_path / "project", table))

    resolved = recipe.to_table()
    moved = write_recipe(tmp_path / "elsewhere", resolved)
    reloaded, registry = load_recipe(moved)

    assert resolved["data"]["paths"] == [str(corpus.resolve() / "*.txt")]
    assert len(build(reloaded, registry).task.streams["train"]) > 100
