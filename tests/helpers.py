"""Tiny recipes on real data and helpers to write and train them."""

from __future__ import annotations

import copy
from pathlib import Path

from seqkit.run import load_recipe, train
from seqkit.tomlwriter import dumps

DATA_DIR = Path(__file__).parent / "data"

# A character LSTM on the first 3,000 characters of Macbeth: 6 steps, 2
# validations, 2 samples of 20 characters. Dropout makes the torch RNG matter.
CHAR_RECIPE = {
    "data": {
        "plugin": "shakespeare",
        "plays": ["macbeth"],
        "max_chars": 3000,
        "valid_fraction": 0.1,
        "test_fraction": 0.1,
    },
    "tokenizer": {"plugin": "char"},
    "decoder": {
        "plugin": "rnn",
        "cell": "lstm",
        "embedding_size": 8,
        "hidden_size": 16,
        "dropout": 0.2,
    },
    "sampler": {"plugin": "sample", "temperature": 0.8},
    "train": {
        "max_steps": 6,
        "batch_size": 4,
        "seq_len": 16,
        "eval_every": 3,
        "log_every": 2,
        "seed": 3,
    },
    "evaluate": {"samples": 2, "sample_tokens": 20, "prompt": "MACBETH:"},
}

# Lines from Macbeth, Act I, Scene VII, for the `text` data source.
MACBETH_LINES = (
    "If it were done when 'tis done, then 'twere well\n"
    "It were done quickly: if the assassination\n"
    "Could trammel up the consequence, and catch\n"
    "With his surcease success; that but this blow\n"
    "Might be the be-all and the end-all here,\n"
    "But here, upon this bank and shoal of time,\n"
    "We'ld jump the life to come. But in these cases\n"
    "We still have judgment here; that we but teach\n"
    "Bloody instructions, which, being taught, return\n"
    "To plague the inventor: this even-handed justice\n"
    "Commends the ingredients of our poison'd chalice\n"
    "To our own lips. He's here in double trust;\n"
)


def char_recipe(**sections: dict) -> dict:
    """Return a copy of CHAR_RECIPE with the keys of `sections` merged in."""
    table = copy.deepcopy(CHAR_RECIPE)
    for name, values in sections.items():
        table.setdefault(name, {}).update(values)
    return table


def write_recipe(folder: Path, table: dict, name: str = "recipe.toml") -> Path:
    """Write `table` as a TOML recipe into `folder` and return its path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(dumps(table), encoding="utf-8")
    return path


def train_recipe(path: Path, run_dir: Path, overrides=(), **options):
    """Load the recipe at `path`, train it into `run_dir` and return the metrics."""
    recipe, registry = load_recipe(path, list(overrides))
    return train(recipe, registry, run_dir, **options)
