"""Plugin tooling: `seqkit check`, `--trace-hooks` and fault isolation.

Entry-point plugins are simulated by a distribution written into tmp_path: a
`<name>.dist-info` folder whose entry_points.txt names a module next to it,
with the folder prepended to sys.path.
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
import sys
import textwrap
import uuid
from pathlib import Path

import pytest
import torch
from helpers import DATA_DIR, char_recipe, write_recipe

from seqkit.cli import main
from seqkit.errors import PluginError, RecipeError
from seqkit.registry import create_registry
from seqkit.run import build, load_recipe

RECIPES = Path(__file__).parents[1] / "recipes"


def run_cli(*argv):
    """Run `seqkit ARGV` in-process and return (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(arg) for arg in argv])
    return code, out.getvalue(), err.getvalue()


def error_line(err: str) -> str:
    """Return the `error: ` line of stderr; log lines may come before it."""
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, err
    return lines[0]


# ---------------------------------------------------------------- seqkit check


def test_check_chargen_builds_model(tmp_path):
    overrides = ["--set", 'data.plays=["macbeth"]', "--set", "data.max_chars=5000"]

    code, out, err = run_cli("check", RECIPES / "chargen.toml", *overrides)

    assert code == 0, err
    recipe, registry = load_recipe(RECIPES / "chargen.toml", overrides[1::2])
    built = build(recipe, registry)
    parameters = sum(p.numel() for p in built.model.parameters())
    vocabulary = len(built.vocabularies["target"])
    lines = out.splitlines()
    assert lines[0] == f"recipe: {RECIPES / 'chargen.toml'}"
    assert re.search(r"^  data +shakespeare +builtin-data$", out, re.M)
    assert re.search(r"^  decoder +rnn +builtin-decoders$", out, re.M)
    assert re.search(r"^  task +language-model +builtin-tasks$", out, re.M)
    assert re.search(r"^  metric +bpc +builtin-metrics$", out, re.M)
    assert "data: 1 train, 1 valid, 1 test examples" in lines
    assert f"target vocabulary: {vocabulary:,} tokens" in lines
    assert f"model: {parameters:,} parameters" in lines
    assert lines[-1] == "ok"
    assert "failed plugins:" not in out


def test_check_translate_small(tmp_path):
    code, out, err = run_cli(
        "check", RECIPES / "translate.toml", "--set", "data.max_examples=300"
    )

    assert code == 0, err
    assert re.search(r"^  source_tokenizer +word +builtin-tokenizers$", out, re.M)
    assert re.search(r"^  attention +luong +builtin-attention$", out, re.M)
    assert re.search(r"^  metric +bleu +builtin-translation-metrics$", out, re.M)
    assert re.search(r"^  metric +chrf +builtin-translation-metrics$", out, re.M)
    assert re.search(r"^source vocabulary: \d+ tokens$", out, re.M)
    assert re.search(r"^target vocabulary: \d+ tokens$", out, re.M)
    sizes = re.search(
        r"^data: (\d+) train, (\d+) valid, (\d+) test examples$", out, re.M
    )
    assert sizes is not None
    assert sum(int(n) for n in sizes.groups()) == 300
    assert re.search(r"^model: [\d,]+ parameters$", out, re.M)
    assert out.endswith("ok\n")


@pytest.mark.parametrize(
    "name", ["caption.toml", "chargen.toml", "classify.toml", "g2p.toml", "names.toml"]
)
def test_check_no_data(name):
    code, out, err = run_cli("check", RECIPES / name, "--no-data")

    assert code == 0, err
    assert "data files found; not loaded (--no-data)" in out
    assert "model:" not in out
    assert "vocabulary:" not in out
    assert re.search(r"^  metric +\S+ +builtin-", out, re.M)
    assert out.endswith("ok\n")


def test_check_unknown_key():
    code, out, err = run_cli("check", DATA_DIR / "unknown_key.toml")

    assert code == 2
    assert out == ""
    assert err.startswith(f"error: {DATA_DIR / 'unknown_key.toml'}: `train.")
    assert "Did you mean `lr`?" in err


def test_check_unknown_set_key():
    code, _, err = run_cli("check", RECIPES / "chargen.toml", "--set", "train.lrr=1")

    assert code == 2
    assert err.startswith("error: --set: `train.lrr`: unknown key `lrr`.")


def test_check_rejects_infinite_learning_rate():
    code, _, err = run_cli("check", RECIPES / "chargen.toml", "--set", "train.lr=inf")

    assert code == 2
    assert err == "error: --set: `train.lr`: expected a finite number, got inf\n"


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_check_rejects_cuda_without_a_device():
    code, _, err = run_cli(
        "check", RECIPES / "chargen.toml", "--no-data", "--set", "train.device=cuda"
    )

    assert code == 2
    assert err.startswith('error: `train.device`: device "cuda" requested but')


def test_check_missing_data_file(tmp_path):
    table = char_recipe()
    table["data"] = {"plugin": "text", "paths": ["missing.txt"]}
    recipe = write_recipe(tmp_path, table)

    for flags in ([], ["--no-data"]):
        code, out, err = run_cli("check", recipe, *flags)

        assert code == 2
        assert out == ""
        assert error_line(err).startswith(
            "error: data.paths: no file matches 'missing.txt'"
        )


def test_check_bad_plugin_file(tmp_path):
    (tmp_path / "broken.py").write_text("import not_a_module_anywhere\n")
    table = char_recipe()
    table["plugins"] = ["broken.py"]
    recipe = write_recipe(tmp_path, table)

    code, out, err = run_cli("check", recipe, "--no-data")

    assert code == 2
    assert out == ""
    assert "broken.py failed to import: ModuleNotFoundError" in error_line(err)


def test_check_attention_without_encoder(tmp_path):
    table = char_recipe()
    table["attention"] = {"plugin": "luong"}
    recipe = write_recipe(tmp_path, table)

    code, _, err = run_cli("check", recipe, "--no-data")

    assert code == 2
    assert "`attention`: [attention] attends over an encoder's memory" in err


def test_check_missing_recipe(tmp_path):
    code, _, err = run_cli("check", tmp_path / "none.toml")

    assert code == 2
    assert err == f"error: {tmp_path / 'none.toml'}: recipe file not found\n"


# ---------------------------------------------------------------- --trace-hooks


def test_trace_hooks_plugins():
    code, out, err = run_cli("plugins", "--trace-hooks")

    assert code == 0
    assert "greedy" in out
    assert re.search(
        r"INFO hook seqkit_add_samplers: plugin 'builtin-samplers' returned "
        r"\{greedy: GreedySampler, sample: RandomSampler\} \(\d+\.\d\d ms\)$",
        err,
        re.M,
    )
    for hook in ("seqkit_add_data_sources", "seqkit_add_tokenizers"):
        assert f"INFO hook {hook}: plugin 'builtin-" in err


def test_trace_hooks_off_by_default():
    code, _, err = run_cli("plugins")

    assert code == 0
    assert "hook seqkit_add" not in err


def test_trace_hooks_check():
    code, _, err = run_cli(
        "check", RECIPES / "chargen.toml", "--no-data", "--trace-hooks"
    )

    assert code == 0
    assert "INFO hook seqkit_add_tasks: plugin 'builtin-tasks' returned " in err
    assert "{language-model: LanguageModelTask}" in err


def test_trace_hooks_run(tmp_path):
    recipe = write_recipe(tmp_path, char_recipe(train={"max_steps": 1}))

    code, _, err = run_cli("run", recipe, "--out", tmp_path / "run", "--trace-hooks")

    assert code == 0, err
    assert "INFO hook seqkit_add_decoders: plugin 'builtin-decoders' returned " in err
    assert "{rnn: RNNDecoder}" in err


# ---------------------------------------------------------------- fault isolation

# A healthy third-party plugin, installed next to each broken one.
GOOD_PLUGIN = """
from seqkit import hookimpl
from seqkit_builtins.samplers import GreedySampler


class EchoSampler(GreedySampler):
    pass


@hookimpl
def seqkit_add_samplers():
    return {"echo": EchoSampler}
"""

# Fault kind -> (module text of plugin 'my-plugin', expected fault). Each
# plugin would provide the sampler 'broken'.
FAULTS = {
    "import error": (
        "import seqkit_no_such_module\n",
        "cannot import {module}: ModuleNotFoundError: No module named "
        "'seqkit_no_such_module'",
    ),
    "wrong signature": (
        """
        @hookimpl
        def seqkit_add_samplers(registry):
            return {"broken": GreedySampler}
        """,
        "invalid hook: Plugin 'my-plugin' for hook 'seqkit_add_samplers' "
        "hookimpl definition: seqkit_add_samplers(registry) Argument(s) "
        "{'registry'} are declared in the hookimpl but can not be found in the "
        "hookspec",
    ),
    "unknown hook": (
        """
        @hookimpl
        def seqkit_add_sampler():
            return {"broken": GreedySampler}
        """,
        "unknown hook 'seqkit_add_sampler'. Did you mean `seqkit_add_samplers`?",
    ),
    "hook raises": (
        """
        @hookimpl
        def seqkit_add_samplers():
            raise RuntimeError("weights file missing")
        """,
        "hook seqkit_add_samplers raised RuntimeError: weights file missing",
    ),
    "list returned": (
        """
        @hookimpl
        def seqkit_add_samplers():
            return ["broken"]
        """,
        "hook seqkit_add_samplers must return a dict of name to class, got list",
    ),
    "None returned": (
        """
        @hookimpl
        def seqkit_add_samplers():
            pass
        """,
        "hook seqkit_add_samplers must return a dict of name to class, got NoneType",
    ),
    "not a class": (
        """
        @hookimpl
        def seqkit_add_samplers():
            return {"broken": "GreedySampler"}
        """,
        "hook seqkit_add_samplers maps 'broken' to 'GreedySampler'; the values "
        "must be component classes",
    ),
    "wrong base class": (
        """
        class NotASampler:
            pass


        @hookimpl
        def seqkit_add_samplers():
            return {"broken": NotASampler}
        """,
        "hook seqkit_add_samplers maps 'broken' to {module}.NotASampler, which "
        "is not a subclass of seqkit.Sampler",
    ),
    "Options not a dataclass": (
        """
        class BrokenSampler(GreedySampler):
            Options = dict


        @hookimpl
        def seqkit_add_samplers():
            return {"broken": BrokenSampler}
        """,
        "sampler 'broken' ({module}.BrokenSampler) has Options <class 'dict'>, "
        "which is not a dataclass",
    ),
    "other hook raises": (
        """
        class BrokenSampler(GreedySampler):
            pass


        @hookimpl
        def seqkit_add_samplers():
            return {"broken": BrokenSampler}


        @hookimpl
        def seqkit_add_metrics():
            raise KeyError("bleu")
        """,
        "hook seqkit_add_metrics raised KeyError: 'bleu'",
    ),
}
# Faults after which 'broken' is among the components that 'my-plugin' returned.
KNOWN_PROVIDER = {
    "not a class",
    "wrong base class",
    "Options not a dataclass",
    "other hook raises",
}

HEADER = """
from seqkit import hookimpl
from seqkit_builtins.samplers import GreedySampler
"""


def install_plugins(folder: Path, monkeypatch, plugins: dict[str, str]) -> dict:
    """Install one distribution whose entry points are `plugins` (name: text).

    Returns the module name of each plugin. The names are unique to the
    call, so no test imports a module that another test left in sys.modules.
    """
    site = folder / "site"
    dist_info = site / "seqkit_fault_test-1.0.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: seqkit-fault-test\nVersion: 1.0\n"
    )
    modules = {}
    lines = ["[seqkit]"]
    for name, text in plugins.items():
        module = f"seqkit_fault_{name.replace('-', '_')}_{uuid.uuid4().hex[:8]}"
        (site / f"{module}.py").write_text(textwrap.dedent(text), encoding="utf-8")
        lines.append(f"{name} = {module}")
        modules[name] = module
        monkeypatch.delitem(sys.modules, module, raising=False)
    (dist_info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    monkeypatch.syspath_prepend(str(site))
    return modules


@pytest.fixture(params=list(FAULTS))
def broken(request, tmp_path, monkeypatch):
    """A fault kind, with 'my-plugin' and the healthy 'good-plugin' installed.

    Yields (fault kind, expected fault, module names by plugin name).
    """
    text, fault = FAULTS[request.param]
    modules = install_plugins(
        tmp_path,
        monkeypatch,
        {
            "my-plugin": HEADER + textwrap.dedent(text),
            "good-plugin": GOOD_PLUGIN,
        },
    )
    # The installed module files outlive the test in sys.modules otherwise.
    yield request.param, fault.replace("{module}", modules["my-plugin"]), modules
    for module in modules.values():
        sys.modules.pop(module, None)


def test_broken_plugin_skipped(broken, caplog):
    kind, fault, _ = broken

    with caplog.at_level(logging.WARNING, logger="seqkit.registry"):
        registry = create_registry()

    assert len(registry.failures) == 1
    failure = registry.failures[0]
    assert failure.plugin == "my-plugin"
    assert failure.fault.startswith(fault)
    assert "\n" not in failure.fault
    assert registry.provider("sampler", "echo") == "good-plugin"
    assert registry.provider("sampler", "greedy") == "builtin-samplers"
    assert "broken" not in registry.names("sampler")
    assert registry.manager.get_plugin("my-plugin") is None
    warnings = [r.getMessage() for r in caplog.records if r.name == "seqkit.registry"]
    assert warnings == [
        f"plugin 'my-plugin' failed to load and is skipped: {failure.fault}"
    ]


def test_plugins_lists_failure(broken):
    _, fault, _ = broken

    code, out, _ = run_cli("plugins")

    assert code == 0
    assert re.search(r"^  echo +good-plugin ", out, re.M)
    failed = out.split("failed plugins:\n")
    assert len(failed) == 2
    assert failed[1].startswith(f"  my-plugin        {fault}")
    assert failed[1].count("\n") == 1


def test_recipe_using_broken_component(broken, tmp_path):
    kind, fault, _ = broken
    table = char_recipe()
    table["sampler"] = {"plugin": "broken"}
    recipe = write_recipe(tmp_path, table)

    code, out, err = run_cli("check", recipe, "--no-data")

    assert code == 2
    assert out == ""
    message = error_line(err)
    assert message.startswith(
        f"error: {recipe}: `sampler.plugin`: unknown sampler plugin 'broken'."
    )
    assert f" Plugin 'my-plugin' failed to load: {fault}" in message
    if kind in KNOWN_PROVIDER:
        assert "Available:" not in message
    else:
        assert "Available: argmax, beam, echo, greedy, sample." in message


def test_recipe_using_healthy_plugin(broken, tmp_path):
    table = char_recipe()
    table["sampler"] = {"plugin": "echo"}
    recipe = write_recipe(tmp_path, table)

    code, out, err = run_cli("check", recipe, "--no-data")

    assert code == 0, err
    assert re.search(r"^  sampler +echo +good-plugin$", out, re.M)
    assert "failed plugins:\n  my-plugin " in out


def test_requested_broken_plugin_raises(broken, tmp_path):
    kind, fault, modules = broken
    table = char_recipe()
    table["plugins"] = [modules["my-plugin"]]
    recipe = write_recipe(tmp_path, table)

    with pytest.raises(PluginError) as caught:
        load_recipe(recipe)
    message = str(caught.value)

    if kind == "import error":
        assert message.startswith(
            f"plugin module {modules['my-plugin']!r} failed to import"
        )
    elif kind == "wrong signature":
        # pluggy rejected the entry point, so the recipe registers the module
        # under the name it gives.
        assert message.startswith(
            f"plugin {modules['my-plugin']!r} has an invalid hook: "
        )
    elif kind == "unknown hook":
        assert message.startswith(
            "plugin 'my-plugin' implements unknown hook 'seqkit_add_sampler'"
        )
    else:
        assert message.startswith(f"plugin 'my-plugin': {fault}")


def test_unknown_metric_names_failure(tmp_path, monkeypatch):
    install_plugins(
        tmp_path,
        monkeypatch,
        {"metrics-plugin": "import seqkit_no_such_module\n"},
    )
    table = char_recipe(evaluate={"metrics": ["bpc", "rouge"]})
    recipe = write_recipe(tmp_path, table)

    with pytest.raises(RecipeError) as caught:
        load_recipe(recipe)
    message = str(caught.value)

    assert message.startswith(
        f"{recipe}: `evaluate.metrics[1]`: unknown metric plugin 'rouge'."
    )
    assert "Plugin 'metrics-plugin' failed to load: cannot import" in message


def test_registry_get_names_failure(tmp_path, monkeypatch):
    modules = install_plugins(
        tmp_path,
        monkeypatch,
        {
            "task-plugin": """
            from seqkit import Task, hookimpl


            class NotATask:
                pass


            @hookimpl
            def seqkit_add_tasks():
                return {"ranking": NotATask}
            """
        },
    )
    registry = create_registry()

    with pytest.raises(PluginError) as caught:
        registry.get("task", "ranking")

    assert str(caught.value) == (
        "unknown task plugin 'ranking'. Plugin 'task-plugin' failed to load: hook "
        f"seqkit_add_tasks maps 'ranking' to {modules['task-plugin']}.NotATask, "
        "which is not a subclass of seqkit.Task."
    )


def test_failure_blamed_only_where_possible(tmp_path, monkeypatch):
    # The plugin returned only the sampler 'odd' and implements no other hook,
    # so another missing sampler or decoder is not its fault.
    install_plugins(
        tmp_path,
        monkeypatch,
        {
            "sampler-plugin": HEADER
            + textwrap.dedent(
                """
                class OddSampler(GreedySampler):
                    Options = 3


                @hookimpl
                def seqkit_add_samplers():
                    return {"odd": OddSampler}
                """
            )
        },
    )
    registry = create_registry()

    odd = registry.missing_message("sampler", "odd")
    odder = registry.missing_message("sampler", "odder")
    decoder = registry.missing_message("decoder", "rnn2")

    assert registry.failures[0].components["sampler"] == ("odd",)
    assert registry.failures[0].components["decoder"] == ()
    assert odd.startswith("unknown sampler plugin 'odd'. Plugin 'sampler-plugin'")
    assert "Plugin 'sampler-plugin'" not in odder
    assert "Plugin 'sampler-plugin'" not in decoder
    assert decoder.endswith("Available: label, rnn, tagger.")


def test_duplicate_entry_points_still_error(tmp_path, monkeypatch):
    install_plugins(
        tmp_path, monkeypatch, {"first": GOOD_PLUGIN, "second": GOOD_PLUGIN}
    )

    with pytest.raises(PluginError) as caught:
        create_registry()
    message = str(caught.value)

    assert "sampler 'echo' is registered by both plugin" in message
    assert "'first'" in message
    assert "'second'" in message


def test_trace_hooks_logs_raise(tmp_path, monkeypatch, caplog):
    text, _ = FAULTS["hook raises"]
    install_plugins(
        tmp_path, monkeypatch, {"my-plugin": HEADER + textwrap.dedent(text)}
    )

    with caplog.at_level(logging.INFO, logger="seqkit.registry"):
        registry = create_registry(trace_hooks=True)

    messages = [r.getMessage() for r in caplog.records]
    failure = registry.failures[0]
    assert failure.plugin == "my-plugin"
    assert failure.fault == (
        "hook seqkit_add_samplers raised RuntimeError: weights file missing"
    )
    assert "sampler" not in failure.components
    assert any(
        re.fullmatch(
            r"hook seqkit_add_samplers: plugin 'my-plugin' raised RuntimeError: "
            r"weights file missing \(\d+\.\d\d ms\)",
            message,
        )
        for message in messages
    )
