"""The README's plugin example works as written."""

from __future__ import annotations

import re
from pathlib import Path

from helpers import char_recipe, write_recipe

from seqkit.generation import generate_text
from seqkit.run import load_recipe, load_run, train

README = Path(__file__).parent.parent / "README.md"


def readme_plugin_code() -> str:
    text = README.read_text(encoding="utf-8")
    section = text.split("## Writing a plugin", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.DOTALL).group(1)


def test_readme_plugin_example_runs(tmp_path):
    (tmp_path / "rank_sampler.py").write_text(readme_plugin_code(), encoding="utf-8")
    table = char_recipe()
    # The rank sampler takes none of the recipe's sampling options.
    table["sampler"] = {"plugin": "rank", "rank": 0}
    table["plugins"] = ["./rank_sampler.py"]
    recipe, registry = load_recipe(write_recipe(tmp_path, table))
    train(recipe, registry, tmp_path / "run")

    built = load_run(tmp_path / "run")
    greedy = registry.get("sampler", "greedy")(
        registry.get("sampler", "greedy").Options(), None
    )
    ranked = generate_text(
        built.model,
        built.tokenizer,
        built.vocabularies["target"],
        built.sampler,
        prompt="MACBETH:",
        max_new_tokens=15,
    )
    expected = generate_text(
        built.model,
        built.tokenizer,
        built.vocabularies["target"],
        greedy,
        prompt="MACBETH:",
        max_new_tokens=15,
    )

    assert built.recipe.sampler.plugin == "rank"
    assert ranked == expected
