"""The example plugins: the seqkit-typical distribution and examples/min_p_sampler.py.

The distribution is installed for real with `pip install --target` into a
temporary folder, which then goes on sys.path, so seqkit finds it through the
`seqkit` entry-point group exactly as it finds an installed third-party plugin.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.metadata
import importlib.util
import io
import math
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import char_recipe, write_recipe
from seqkit_builtins.decoders import RNNDecoder, RNNDecoderOptions
from seqkit_builtins.samplers import (
    GreedyOptions,
    GreedySampler,
    RandomSampler,
    SampleOptions,
)

from seqkit.cli import main
from seqkit.context import BuildContext
from seqkit.errors import DataError, RecipeError
from seqkit.generation import generate_text
from seqkit.interfaces import StepModel
from seqkit.registry import create_registry
from seqkit.run import load_recipe, load_run, train
from seqkit.testing import check_sampler

ROOT = Path(__file__).parent.parent
PACKAGE_DIR = ROOT / "plugins" / "seqkit-typical"
EXAMPLES_DIR = ROOT / "examples"
EOS = 3

# Probabilities 1/2, 1/4, 1/8, 1/16, 1/16 have surprisals of 1, 2, 3, 4 and 4
# bits and an entropy of 1.875 bits. Their distances to the entropy are 0.875,
# 0.125, 1.125, 2.125 and 2.125 bits, so the typical order is token 1 (mass
# 0.25), token 0 (0.5), token 2 (0.125), then tokens 3 and 4 (0.0625 each).
HALVING = [0.5, 0.25, 0.125, 0.0625, 0.0625]

# A tiny language model on three modules' docstrings, sampled by `typical`.
TYPICAL_RECIPE = {
    "data": {
        "plugin": "docstrings",
        "modules": ["json", "textwrap", "string"],
        "valid_fraction": 0.2,
        "test_fraction": 0.2,
    },
    "tokenizer": {"plugin": "char"},
    "decoder": {
        "plugin": "rnn",
        "cell": "gru",
        "embedding_size": 8,
        "hidden_size": 16,
    },
    "sampler": {"plugin": "typical", "typical_p": 0.9},
    "train": {"max_steps": 4, "batch_size": 4, "seq_len": 16, "seed": 2},
    "evaluate": {"samples": 2, "sample_tokens": 20, "prompt": "Return "},
}


def forget_plugin_modules() -> None:
    """Drop the plugin's modules from sys.modules, so the next import reloads them."""
    for name in list(sys.modules):
        if name == "seqkit_typical" or name.startswith("seqkit_typical."):
            del sys.modules[name]


@pytest.fixture(scope="module")
def site_dir(tmp_path_factory) -> Path:
    """A folder that seqkit-typical was pip-installed into (about a second)."""
    # Asked through importlib.metadata: importlib.util.find_spec("pip") would
    # make setuptools' distutils shim step aside for the rest of the process,
    # and torch.compile then fails to import setuptools.
    for package in ("pip", "setuptools"):
        try:
            importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            pytest.skip(
                f"installing seqkit-typical needs {package} in this environment"
            )
    folder = tmp_path_factory.mktemp("plugin_package")
    # pip writes build/ and *.egg-info/ next to the sources, so build a copy.
    source = shutil.copytree(
        PACKAGE_DIR,
        folder / "source",
        ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"),
    )
    site = folder / "site"
    command = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--no-deps",
        "--no-build-isolation",
        "--no-index",
        "--target",
        str(site),
        str(source),
    ]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr
    return site


@pytest.fixture
def installed(site_dir, monkeypatch) -> Path:
    """Put the installed seqkit-typical on sys.path for one test."""
    forget_plugin_modules()
    monkeypatch.syspath_prepend(str(site_dir))
    yield site_dir
    forget_plugin_modules()


@pytest.fixture
def typical(monkeypatch):
    """The seqkit_typical package imported from its source folder."""
    forget_plugin_modules()
    monkeypatch.syspath_prepend(str(PACKAGE_DIR))
    yield importlib.import_module("seqkit_typical")
    forget_plugin_modules()


@pytest.fixture(scope="module")
def min_p_module():
    """examples/min_p_sampler.py, imported as seqkit imports a recipe's plugin file."""
    spec = importlib.util.spec_from_file_location(
        "example_min_p_sampler", EXAMPLES_DIR / "min_p_sampler.py"
    )
    module = importlib.util.module_from_spec(spec)
    # dataclasses looks the module up in sys.modules to resolve annotations.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


@pytest.fixture
def decoder(letters_context):
    """A GRU decoder over 10 tokens whose distribution is far from uniform."""
    torch.manual_seed(0)
    options = RNNDecoderOptions(cell="gru", embedding_size=6, hidden_size=8)
    decoder = RNNDecoder(options, letters_context).eval()
    with torch.no_grad():
        decoder.output.weight.mul_(4.0)
        decoder.output.bias[EOS] = -30.0
    return decoder


def generate(decoder, sampler, seed=1, rows=3, steps=25):
    """Run `sampler` from `<bos>` on `rows` rows and return the Generation."""
    generator = torch.Generator().manual_seed(seed)
    state = decoder.init_state(rows)
    start = torch.full((rows,), 2)
    with torch.no_grad():
        return sampler.generate(StepModel(decoder), state, start, steps, EOS, generator)


def kept(scores: torch.Tensor) -> list[list[int]]:
    """Return the ids of the finite scores in each row."""
    return [row.isfinite().nonzero().flatten().tolist() for row in scores]


def context(tmp_path) -> BuildContext:
    return BuildContext(base_dir=tmp_path)


# ---------------------------------------------------------------- installed package


def test_package_registers_through_entry_point(installed):
    registry = create_registry()

    assert "typical" in registry.names("sampler")
    assert "docstrings" in registry.names("data")
    assert registry.provider("sampler", "typical") == "seqkit-typical"
    assert registry.provider("data", "docstrings") == "seqkit-typical"
    module = sys.modules[registry.get("sampler", "typical").__module__]
    assert Path(module.__file__).is_relative_to(installed)


def test_package_absent_without_install():
    try:
        importlib.metadata.distribution("seqkit-typical")
    except importlib.metadata.PackageNotFoundError:
        pass
    else:
        pytest.skip("seqkit-typical is installed in this environment")
    forget_plugin_modules()
    registry = create_registry()

    assert "typical" not in registry.names("sampler")
    assert "docstrings" not in registry.names("data")


def run_cli(*argv) -> tuple[int, str, str]:
    """Run `seqkit ARGV` in-process and return (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(arg) for arg in argv])
    return code, out.getvalue(), err.getvalue()


def test_cli_plugins_lists_package(installed):
    code, out, _ = run_cli("plugins")

    assert code == 0
    lines = out.splitlines()
    assert any(line.split()[:2] == ["typical", "seqkit-typical"] for line in lines)
    assert any(line.split()[:2] == ["docstrings", "seqkit-typical"] for line in lines)


def test_cli_checks_shipped_recipe(installed):
    code, out, _ = run_cli(
        "check",
        ROOT / "recipes" / "typical.toml",
        "--set",
        'data.modules=["json", "textwrap", "string"]',
        "--set",
        "data.valid_fraction=0.2",
        "--set",
        "data.test_fraction=0.2",
    )

    assert code == 0
    assert re.search(r"^  data +docstrings +seqkit-typical$", out, re.M)
    assert re.search(r"^  sampler +typical +seqkit-typical$", out, re.M)
    assert out.splitlines()[-1] == "ok"


def test_package_recipe_trains_and_samples(installed, tmp_path):
    recipe, registry = load_recipe(write_recipe(tmp_path, TYPICAL_RECIPE))
    metrics = train(recipe, registry, tmp_path / "run")

    assert math.isfinite(metrics["test_bpc"])
    assert (tmp_path / "run" / "samples.txt").read_text(encoding="utf-8").strip()

    built = load_run(tmp_path / "run")
    vocab = built.vocabularies["target"]

    def sample(seed):
        generator = torch.Generator().manual_seed(seed)
        return generate_text(
            built.model,
            built.tokenizer,
            vocab,
            built.sampler,
            prompt="Return ",
            max_new_tokens=40,
            num_samples=2,
            generator=generator,
        )

    assert type(built.sampler).__name__ == "TypicalSampler"
    assert sample(5) == sample(5)
    assert sample(5) != sample(6)


# ---------------------------------------------------------------- typical filter


@pytest.mark.parametrize(
    ("p", "expected"),
    [
        # The most likely token is more predictable than the distribution as
        # a whole, so the single most typical token is the 1/4 one.
        (0.2, [1]),
        (0.5, [0, 1]),
        (0.7, [0, 1]),
        (0.8, [0, 1, 2]),
        (0.9, [0, 1, 2, 3, 4]),
        (1.0, [0, 1, 2, 3, 4]),
    ],
)
def test_typical_keeps_hand_computed_set(typical, p, expected):
    scores = torch.tensor([HALVING]).log()

    result = typical.apply_typical(scores, p)

    assert kept(result) == [expected]
    assert torch.equal(result[0, expected], scores[0, expected])


def test_typical_keeps_ties_together(typical):
    uniform = torch.zeros(1, 6)

    result = typical.apply_typical(uniform, 0.1)

    assert kept(result) == [[0, 1, 2, 3, 4, 5]]


def test_typical_filters_rows_independently(typical):
    # Row 2: one token at 0.97 and three at 0.01. The entropy is 0.17 nats and
    # the top token's surprisal 0.03 nats, far closer than the others' 4.6.
    scores = torch.tensor([HALVING, [0.97, 0.01, 0.01, 0.01, 0.0]])

    result = typical.apply_typical(scores.log(), 0.5)

    assert kept(result) == [[0, 1], [0]]


def test_typical_ignores_removed_tokens(typical):
    scores = torch.tensor([[0.5, 0.25, 0.125, 0.125]]).log()
    scores[0, 3] = -math.inf

    result = typical.apply_typical(scores, 0.99)

    assert kept(result) == [[0, 1, 2]]
    assert not result.isnan().any()


# ---------------------------------------------------------------- typical sampler


def test_typical_p_one_equals_sample(typical, decoder):
    options = typical.TypicalOptions(typical_p=1.0, temperature=0.7)

    result = generate(decoder, typical.TypicalSampler(options))
    expected = generate(decoder, RandomSampler(SampleOptions(temperature=0.7)))

    assert result.tokens == expected.tokens


def test_typical_temperature_zero_equals_greedy(typical, decoder):
    options = typical.TypicalOptions(temperature=0.0)

    result = generate(decoder, typical.TypicalSampler(options))
    expected = generate(decoder, GreedySampler(GreedyOptions()))

    assert result.tokens == expected.tokens


def test_typical_sampler_seeded_draws_repeat(typical, decoder):
    sampler = typical.TypicalSampler(typical.TypicalOptions(typical_p=0.5))

    first = generate(decoder, sampler, seed=4)
    again = generate(decoder, sampler, seed=4)
    other = generate(decoder, sampler, seed=5)

    assert first.tokens == again.tokens
    assert torch.equal(first.scores, again.scores)
    assert first.tokens != other.tokens


def test_tiny_typical_p_picks_most_typical(typical, decoder):
    sampler = typical.TypicalSampler(typical.TypicalOptions(typical_p=1e-6))
    banned = (0, 1, 2)  # <pad>, <unk> and <bos>, as seqkit bans them
    model = StepModel(decoder, banned=banned)
    with torch.no_grad():
        result = sampler.generate(
            model, decoder.init_state(1), torch.tensor([2]), 8, EOS, None
        )

    # The same choice by hand: the token whose surprisal is nearest the entropy.
    expected = []
    most_likely = []
    state = decoder.init_state(1)
    token = torch.tensor([2])
    with torch.no_grad():
        for _ in range(8):
            output = decoder.step(token, state)
            logits = output.logits.index_fill(1, torch.tensor(banned), -math.inf)
            log_probs = logits.log_softmax(dim=-1)  # (1, V)
            entropy = -(log_probs.exp() * log_probs).nan_to_num(nan=0.0).sum()
            token = (-log_probs - entropy).abs().argmin(dim=-1)
            state = output.state
            expected.append(int(token))
            most_likely.append(int(log_probs.argmax()))
    assert result.tokens == [expected]
    assert expected != most_likely


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"typical_p": 0.3, "temperature": 0.7},
        {"typical_p": 1.0, "repetition_penalty": 1.3},
        {"temperature": 0.0},
    ],
    ids=["default", "low-p", "p-one-penalty", "greedy"],
)
def test_typical_sampler_meets_contract(typical, options):
    sampler = typical.TypicalSampler(typical.TypicalOptions(**options))

    check_sampler(sampler)
    check_sampler(sampler, max_new_tokens=1)


@pytest.mark.parametrize(
    ("options", "key", "text"),
    [
        (
            {"typical_p": 0.0},
            "sampler.typical_p",
            "typical_p must be in (0, 1], got 0.0",
        ),
        (
            {"typical_p": 1.5},
            "sampler.typical_p",
            "typical_p must be in (0, 1], got 1.5",
        ),
        ({"typical_p": math.nan}, "sampler.typical_p", "got nan"),
        ({"temperature": -0.5}, "sampler.temperature", "got -0.5"),
        ({"temperature": math.inf}, "sampler.temperature", "got inf"),
        ({"repetition_penalty": 0.5}, "sampler.repetition_penalty", "got 0.5"),
    ],
)
def test_typical_invalid_options_name_option(typical, options, key, text):
    with pytest.raises(RecipeError) as caught:
        typical.TypicalSampler(typical.TypicalOptions(**options))

    assert caught.value.key == key
    assert f"`{key}`" in str(caught.value)
    assert text in str(caught.value)


def test_typical_invalid_option_in_recipe(installed, tmp_path):
    path = write_recipe(tmp_path, TYPICAL_RECIPE)

    code, _, err = run_cli("check", path, "--set", "sampler.typical_p=2.0")

    assert code == 2
    assert "error: `sampler.typical_p`: typical_p must be in (0, 1], got 2.0" in err


# ---------------------------------------------------------------- docstrings source


def test_docstrings_splits_are_disjoint(typical, tmp_path):
    options = typical.DocstringsOptions(
        modules=["json", "textwrap"], valid_fraction=0.2, test_fraction=0.2
    )

    splits = typical.DocstringsSource(options, context(tmp_path)).load()

    train_texts = [e.target for e in splits.train]
    valid_texts = [e.target for e in splits.valid]
    test_texts = [e.target for e in splits.test]
    assert train_texts
    assert valid_texts
    assert test_texts
    assert not set(train_texts) & set(valid_texts)
    assert not set(train_texts) & set(test_texts)
    assert not set(valid_texts) & set(test_texts)
    everything = train_texts + valid_texts + test_texts
    assert len(everything) == len(set(everything))
    assert any(
        text.startswith("JSON (JavaScript Object Notation)") for text in everything
    )


def test_docstrings_split_ignores_other_modules(typical, tmp_path):
    def split_of_each(modules):
        options = typical.DocstringsOptions(
            modules=modules, valid_fraction=0.2, test_fraction=0.2
        )
        splits = typical.DocstringsSource(options, context(tmp_path)).load()
        return {
            example.target: name
            for name in ("train", "valid", "test")
            for example in splits.named(name)
        }

    alone = split_of_each(["json"])
    together = split_of_each(["json", "textwrap"])

    assert alone
    for text, name in alone.items():
        assert together[text] == name


def test_docstrings_min_chars_and_max_examples(typical, tmp_path):
    def load(**options):
        options = typical.DocstringsOptions(
            modules=["json", "textwrap", "string"],
            valid_fraction=0.2,
            test_fraction=0.2,
            **options,
        )
        splits = typical.DocstringsSource(options, context(tmp_path)).load()
        return [
            e.target for name in ("train", "valid", "test") for e in splits.named(name)
        ]

    every = load(min_chars=1)
    long_only = load(min_chars=200)
    subset = load(min_chars=1, max_examples=20)

    assert min(len(text) for text in long_only) >= 200
    assert set(long_only) < set(every)
    assert len(subset) == 20
    assert set(subset) < set(every)
    assert load(min_chars=1, max_examples=20) == subset


def test_docstrings_default_modules(typical, tmp_path):
    source = typical.DocstringsSource(typical.DocstringsOptions(), context(tmp_path))

    names = source.selected_modules()

    assert "json" in names
    assert "os" in names
    assert "test" not in names
    assert not [name for name in names if name.startswith("_")]


def test_docstrings_skips_test_folders(typical):
    package = typical.docstrings.stdlib_folder() / "unittest"

    files = typical.docstrings.module_files(package)

    assert package / "case.py" in files
    assert not [f for f in files if "test" in f.relative_to(package).parts[:-1]]


def test_docstrings_unknown_module(typical, tmp_path):
    options = typical.DocstringsOptions(modules=["json", "jsno"])
    source = typical.DocstringsSource(options, context(tmp_path))

    with pytest.raises(DataError) as caught:
        source.check()

    message = str(caught.value)
    assert "`data.modules[1]`: 'jsno' is not a top-level module" in message
    assert "Did you mean `json`?" in message


def test_docstrings_empty_split(typical, tmp_path):
    options = typical.DocstringsOptions(modules=["json"], max_examples=1)
    source = typical.DocstringsSource(options, context(tmp_path))

    with pytest.raises(
        DataError, match="no docstring fell into the (train|valid|test) split"
    ):
        source.load()


# ---------------------------------------------------------------- min-p example


@pytest.mark.parametrize(
    ("min_p", "expected"),
    [
        (0.0, [0, 1, 2, 3, 4]),
        (0.1, [0, 1, 2, 3, 4]),
        (0.2, [0, 1, 2]),
        (0.3, [0, 1]),
        (0.6, [0]),
        (1.0, [0]),
    ],
)
def test_min_p_keeps_hand_computed_set(min_p_module, min_p, expected):
    # The cutoffs are min_p x 1/2: 0, 0.05, 0.1, 0.15, 0.3 and 0.5.
    scores = torch.tensor([HALVING]).log()

    result = min_p_module.apply_min_p(scores, min_p)

    assert kept(result) == [expected]
    assert torch.equal(result[0, expected], scores[0, expected])


def test_min_p_zero_equals_sample(min_p_module, decoder):
    options = min_p_module.MinPOptions(min_p=0.0, temperature=0.7)

    result = generate(decoder, min_p_module.MinPSampler(options))
    expected = generate(decoder, RandomSampler(SampleOptions(temperature=0.7)))

    assert result.tokens == expected.tokens


@pytest.mark.parametrize("min_p", [0.0, 0.1, 1.0])
def test_min_p_sampler_meets_contract(min_p_module, min_p):
    sampler = min_p_module.MinPSampler(min_p_module.MinPOptions(min_p=min_p))

    check_sampler(sampler)
    check_sampler(sampler, max_new_tokens=1)


@pytest.mark.parametrize(
    ("options", "key", "text"),
    [
        ({"min_p": -0.1}, "sampler.min_p", "min_p must be in [0, 1], got -0.1"),
        ({"min_p": 1.5}, "sampler.min_p", "min_p must be in [0, 1], got 1.5"),
        ({"min_p": math.nan}, "sampler.min_p", "got nan"),
        ({"temperature": 0.0}, "sampler.temperature", "got 0.0"),
        ({"temperature": math.inf}, "sampler.temperature", "got inf"),
    ],
)
def test_min_p_invalid_options_name_option(min_p_module, options, key, text):
    with pytest.raises(RecipeError) as caught:
        min_p_module.MinPSampler(min_p_module.MinPOptions(**options))

    assert caught.value.key == key
    assert f"`{key}`" in str(caught.value)
    assert text in str(caught.value)


def test_min_p_example_recipe_runs(tmp_path):
    out = tmp_path / "run"

    code, _, _ = run_cli(
        "run",
        EXAMPLES_DIR / "min_p.toml",
        "--set",
        "train.max_steps=3",
        "--set",
        'data.plays=["macbeth"]',
        "--set",
        "evaluate.sample_tokens=20",
        "--out",
        out,
    )

    assert code == 0
    built = load_run(out)
    assert built.recipe.sampler.plugin == "min-p"
    assert type(built.sampler).__name__ == "MinPSampler"
    assert (out / "samples.txt").read_text(encoding="utf-8").startswith("MACBETH:")


def test_min_p_plugin_in_own_recipe(tmp_path):
    shutil.copy(EXAMPLES_DIR / "min_p_sampler.py", tmp_path / "min_p_sampler.py")
    table = char_recipe()
    table["sampler"] = {"plugin": "min-p", "min_p": 0.2}
    table["plugins"] = ["./min_p_sampler.py"]

    recipe, registry = load_recipe(write_recipe(tmp_path, table))

    assert registry.provider("sampler", "min-p") == "./min_p_sampler.py"
    assert recipe.sampler.options.min_p == 0.2
