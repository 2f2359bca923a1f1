"""Plugin discovery: entry points, .py files named in recipes and duplicate names."""

from __future__ import annotations

import logging
import textwrap

import pytest
from helpers import char_recipe, write_recipe

from seqkit.errors import PluginError, RecipeError
from seqkit.registry import create_registry
from seqkit.run import load_recipe, load_run, train

# A sampler plugin that emits one fixed character until max_new_tokens.
REPEAT_PLUGIN = """
from dataclasses import dataclass

import torch

from seqkit import Generation, Sampler, hookimpl


@dataclass
class RepeatOptions:
    char: str = "x"


class RepeatSampler(Sampler):
    Options = RepeatOptions

    def __init__(self, options, context):
        self.token_id = context.vocab.index[options.char]

    def generate(
        self, model, state, last_token, max_new_tokens, eos_id, generator=None
    ):
        batch = last_token.shape[0]
        rows = [[self.token_id] * max_new_tokens for _ in range(batch)]
        return Generation(rows, torch.zeros(batch))


@hookimpl
def seqkit_add_samplers():
    return {"repeat": RepeatSampler}
"""


def write_plugin(folder, name, text):
    path = folder / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def sampler_plugin(name):
    """Return the text of a plugin module that registers sampler `name`."""
    return f"""
    from seqkit import hookimpl
    from seqkit_builtins.samplers import GreedySampler


    @hookimpl
    def seqkit_add_samplers():
        return {{"{name}": GreedySampler}}
    """


def test_builtins_registered(registry):
    assert registry.names("data") == [
        "bbc-news",
        "cmudict",
        "coco",
        "csv",
        "diacritics",
        "emoji",
        "flickr8k",
        "folders",
        "gettext",
        "glyphs",
        "names",
        "shakespeare",
        "text",
        "tsv",
    ]
    assert registry.names("tokenizer") == ["char", "whitespace", "word"]
    assert registry.names("encoder") == ["cnn", "rnn"]
    assert registry.names("decoder") == ["label", "rnn", "tagger"]
    assert registry.names("attention") == ["bahdanau", "luong"]
    assert registry.names("sampler") == ["argmax", "beam", "greedy", "sample"]
    assert registry.names("task") == [
        "captioning",
        "classification",
        "language-model",
        "tagging",
        "translation",
    ]
    assert registry.names("metric") == [
        "accuracy",
        "bleu",
        "bleu_orders",
        "bpc",
        "char_accuracy",
        "chrf",
        "confusion",
        "exact_match",
        "macro_f1",
        "per",
        "per_class",
        "perplexity",
        "word_acc",
        "word_accuracy",
    ]
    assert registry.provider("decoder", "tagger") == "builtin-tagger"
    assert registry.provider("sampler", "greedy") == "builtin-samplers"
    assert registry.provider("data", "text") == "builtin-data"


def test_get_unknown_lists_available(registry):
    with pytest.raises(PluginError) as caught:
        registry.get("metric", "perplexty")
    message = str(caught.value)

    assert "unknown metric plugin 'perplexty'" in message
    assert "Did you mean `perplexity`?" in message
    assert f"Available: {', '.join(registry.names('metric'))}." in message


def test_recipe_plugin_file_used(tmp_path):
    folder = tmp_path / "recipe"
    folder.mkdir()
    write_plugin(folder, "my_plugin.py", REPEAT_PLUGIN)
    table = char_recipe(
        train={"max_steps": 1},
        evaluate={"samples": 2, "sample_tokens": 5, "prompt": "A"},
    )
    table["plugins"] = ["./my_plugin.py"]
    table["sampler"] = {"plugin": "repeat", "char": "e"}
    recipe, registry = load_recipe(write_recipe(folder, table))

    train(recipe, registry, tmp_path / "run")

    assert registry.provider("sampler", "repeat") == "./my_plugin.py"
    assert recipe.plugins == [str(folder / "my_plugin.py")]
    assert (tmp_path / "run" / "samples.txt").read_text(
        encoding="utf-8"
    ) == "Aeeeee\n\nAeeeee\n"
    built = load_run(tmp_path / "run")
    assert type(built.sampler).__name__ == "RepeatSampler"
    assert built.recipe.sampler.options.char == "e"


def test_recipe_plugin_options_checked(tmp_path):
    write_plugin(tmp_path, "my_plugin.py", REPEAT_PLUGIN)
    table = char_recipe()
    table["plugins"] = ["my_plugin.py"]
    table["sampler"] = {"plugin": "repeat", "chars": "e"}

    with pytest.raises(RecipeError) as caught:
        load_recipe(write_recipe(tmp_path, table))

    assert "`sampler.chars`: unknown key `chars`. Did you mean `char`?" in str(
        caught.value
    )


def test_duplicate_of_builtin_names_both(tmp_path):
    plugin = write_plugin(tmp_path, "dup.py", sampler_plugin("greedy"))

    with pytest.raises(PluginError) as caught:
        create_registry([str(plugin)])
    message = str(caught.value)

    assert "sampler 'greedy' is registered by both plugin" in message
    assert "'builtin-samplers'" in message
    assert f"'{plugin}'" in message


def test_duplicate_between_recipe_plugins(tmp_path):
    write_plugin(tmp_path, "first.py", sampler_plugin("echo"))
    write_plugin(tmp_path, "second.py", sampler_plugin("echo"))
    table = char_recipe()
    table["plugins"] = ["first.py", "second.py"]

    with pytest.raises(PluginError) as caught:
        load_recipe(write_recipe(tmp_path, table))
    message = str(caught.value)

    assert "sampler 'echo' is registered by both plugin" in message
    assert "'first.py'" in message
    assert "'second.py'" in message


def test_plugin_file_not_found(tmp_path):
    with pytest.raises(PluginError, match="plugin file not found: .*missing.py"):
        create_registry(["missing.py"], tmp_path)


def test_plugin_file_without_hookimpl_is_named(tmp_path):
    write_plugin(
        tmp_path,
        "unmarked.py",
        "def seqkit_samplers():\n    return {}\n",
    )
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logger = logging.getLogger("seqkit.registry")
    logger.addHandler(handler)
    try:
        create_registry(["unmarked.py"], tmp_path)
    finally:
        logger.removeHandler(handler)

    assert [record.getMessage() for record in records] == [
        "plugin 'unmarked.py' implements no seqkit hook, so it adds no "
        "components; mark its hook functions with @seqkit.hookimpl"
    ]


def test_plugin_file_import_error(tmp_path):
    write_plugin(tmp_path, "broken.py", "import not_a_module_anywhere\n")

    with pytest.raises(PluginError) as caught:
        create_registry(["broken.py"], tmp_path)
    message = str(caught.value)

    assert "broken.py failed to import: ModuleNotFoundError" in message
    assert "not_a_module_anywhere" in message


def test_plugin_module_not_installed():
    with pytest.raises(
        PluginError, match="plugin module 'seqkit_no_such_plugin' failed to import"
    ):
        create_registry(["seqkit_no_such_plugin"])


def test_plugin_module_also_entry_point():
    registry = create_registry(["seqkit_builtins.metrics"])

    assert registry.names("metric") == create_registry().names("metric")
    assert registry.provider("metric", "bpc") == "builtin-metrics"


def test_hook_must_return_dict(tmp_path):
    text = """
    from seqkit import hookimpl


    @hookimpl
    def seqkit_add_metrics():
        return ["bleu"]
    """
    write_plugin(tmp_path, "listing.py", text)

    with pytest.raises(PluginError, match="hook seqkit_add_metrics must return a dict"):
        create_registry(["listing.py"], tmp_path)


def test_misspelled_hook_rejected(tmp_path):
    text = """
    from seqkit import hookimpl


    @hookimpl
    def seqkit_add_sampler():
        return {}
    """
    write_plugin(tmp_path, "typo.py", text)

    with pytest.raises(PluginError) as caught:
        create_registry(["typo.py"], tmp_path)
    message = str(caught.value)

    assert "plugin 'typo.py' implements unknown hook 'seqkit_add_sampler'" in message
    assert "Did you mean `seqkit_add_samplers`?" in message


def test_hook_value_must_be_class(tmp_path):
    text = """
    from seqkit import hookimpl


    @hookimpl
    def seqkit_add_metrics():
        return {"weird": 42}
    """
    write_plugin(tmp_path, "number.py", text)

    with pytest.raises(PluginError) as caught:
        create_registry(["number.py"], tmp_path)

    assert "hook seqkit_add_metrics maps 'weird' to 42" in str(caught.value)


def test_wrong_hook_signature_one_line(tmp_path):
    text = """
    from seqkit import hookimpl


    @hookimpl
    def seqkit_add_samplers(registry):
        return {}
    """
    write_plugin(tmp_path, "signature.py", text)

    with pytest.raises(PluginError) as caught:
        create_registry(["signature.py"], tmp_path)
    message = str(caught.value)

    assert message.startswith("plugin 'signature.py' has an invalid hook:")
    assert "registry" in message
    assert "\n" not in message


def test_same_plugin_file_listed_twice(tmp_path):
    write_plugin(tmp_path, "twice.py", sampler_plugin("twice"))

    registry = create_registry(["twice.py", "./twice.py"], tmp_path)

    assert registry.provider("sampler", "twice") == "twice.py"


def test_hook_raising_names_plugin(tmp_path):
    text = """
    from seqkit import hookimpl


    @hookimpl
    def seqkit_add_samplers():
        raise OSError("weights.pt not found")
    """
    write_plugin(tmp_path, "raising.py", text)

    with pytest.raises(PluginError) as caught:
        create_registry(["raising.py"], tmp_path)

    assert str(caught.value) == (
        "plugin 'raising.py': hook seqkit_add_samplers raised OSError: weights.pt "
        "not found"
    )


def test_component_must_subclass_interface(tmp_path):
    text = """
    from seqkit import hookimpl
    from seqkit_builtins.samplers import GreedySampler


    @hookimpl
    def seqkit_add_decoders():
        return {"greedy-decoder": GreedySampler}
    """
    write_plugin(tmp_path, "kinds.py", text)

    with pytest.raises(PluginError) as caught:
        create_registry(["kinds.py"], tmp_path)

    assert str(caught.value) == (
        "plugin 'kinds.py': hook seqkit_add_decoders maps 'greedy-decoder' to "
        "seqkit_builtins.samplers.GreedySampler, which is not a subclass of "
        "seqkit.Decoder"
    )


def test_options_must_be_dataclass(tmp_path):
    text = """
    from seqkit import hookimpl
    from seqkit_builtins.samplers import GreedySampler


    class Options:
        steps: int = 3


    class StepSampler(GreedySampler):
        Options = Options


    @hookimpl
    def seqkit_add_samplers():
        return {"steps": StepSampler}
    """
    write_plugin(tmp_path, "options.py", text)

    with pytest.raises(PluginError) as caught:
        create_registry(["options.py"], tmp_path)
    message = str(caught.value)

    assert message.startswith("plugin 'options.py': sampler 'steps' (")
    assert message.endswith(".Options'>, which is not a dataclass")


def test_builtins_have_no_failures(registry):
    assert registry.failures == []
