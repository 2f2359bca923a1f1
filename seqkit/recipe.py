"""Recipes: TOML files that name the components of a run and their options.

Loading happens in two stages so that plugins named in the recipe can add
components before the component options are checked:

1. `read_recipe` parses the file, follows `extends` and applies `--set` values.
2. `validate_recipe` checks every section against its schema and returns a
   `Recipe` whose options are typed dataclasses.
"""

from __future__ import annotations

import copy
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from seqkit import schema
from seqkit.errors import RecipeError, suggest
from seqkit.paths import resolve_inside
from seqkit.registry import Registry

COMPONENT_SECTIONS = (
    "data",
    "tokenizer",
    "source_tokenizer",
    "encoder",
    "decoder",
    "attention",
    "sampler",
)
OPTIONAL_SECTIONS = ("source_tokenizer", "encoder", "attention")
# The registry kind of each component section that differs from its name.
SECTION_KINDS = {"source_tokenizer": "tokenizer"}
TOP_LEVEL_KEYS = ("extends", "plugins", *COMPONENT_SECTIONS, "train", "evaluate")


@dataclass
class TrainOptions:
    """The `[train]` section."""

    epochs: int = field(
        default=1, metadata={"min": 1, "help": "passes over the training split"}
    )
    max_steps: int | None = field(
        default=None,
        metadata={"min": 1, "help": "stop after this many optimizer steps"},
    )
    batch_size: int = field(
        default=32, metadata={"min": 1, "help": "examples per step"}
    )
    seq_len: int = field(
        default=128,
        metadata={
            "min": 1,
            "help": "tokens per language-model window; classification cuts each "
            "text to this many tokens, <eos> included",
        },
    )
    lr: float = field(
        default=2e-3,
        metadata={"min": 0.0, "finite": True, "help": "peak learning rate"},
    )
    optimizer: Literal["adamw", "adam", "sgd"] = "adamw"
    weight_decay: float = field(default=0.01, metadata={"min": 0.0, "finite": True})
    clip: float = field(
        default=1.0,
        metadata={
            "min": 0.0,
            "finite": True,
            "help": "max gradient norm; 0 turns clipping off",
        },
    )
    schedule: Literal["constant", "cosine", "linear"] = "cosine"
    warmup_steps: int = field(default=0, metadata={"min": 0})
    seed: int = 0
    device: Literal["cpu", "cuda", "auto"] = field(
        default="cpu", metadata={"help": "auto picks cuda when one is present"}
    )
    threads: int | None = field(
        default=None,
        metadata={"min": 1, "help": "torch CPU threads; default: torch's own"},
    )
    precision: Literal["fp32", "bf16"] = field(
        default="fp32",
        metadata={
            "help": "bf16: run the forward pass under torch.autocast in bfloat16; "
            "the weights stay float32"
        },
    )
    compile: bool = field(
        default=False,
        metadata={"help": "compile the encoder and decoder with torch.compile"},
    )
    tensorboard: bool = field(
        default=False,
        metadata={
            "help": "write TensorBoard logs to <run folder>/tensorboard; needs the "
            "tensorboard package"
        },
    )
    eval_every: int = field(
        default=0,
        metadata={"min": 0, "help": "validate every N steps; 0: once per epoch"},
    )
    eval_batches: int | None = field(
        default=None, metadata={"min": 1, "help": "cap on validation batches per check"}
    )
    checkpoint_every: int = field(
        default=100,
        metadata={
            "min": 0,
            "help": "write last.pt every N steps; 0: at validations only",
        },
    )
    patience: int | None = field(
        default=None,
        metadata={"min": 1, "help": "stop after N validations without improvement"},
    )
    log_every: int = field(
        default=50, metadata={"min": 1, "help": "steps between log lines"}
    )
    num_workers: int = field(
        default=0,
        metadata={
            "min": 0,
            "help": "worker processes that load and transform images; 0 loads "
            "them in the training process",
        },
    )
    class_weights: Literal["none", "balanced"] = field(
        default="none",
        metadata={
            "help": "classification loss weights; balanced: n_samples / "
            "(n_labels * label count)"
        },
    )


@dataclass
class EvaluateOptions:
    """The `[evaluate]` section."""

    metrics: list[str] = field(
        default_factory=list,
        metadata={"help": "metric plugins; empty: the task's defaults"},
    )
    batch_size: int | None = field(default=None, metadata={"min": 1})
    samples: int = field(
        default=3, metadata={"min": 0, "help": "samples in samples.txt"}
    )
    sample_tokens: int = field(default=400, metadata={"min": 1})
    prompt: str = ""


@dataclass
class Component:
    """One component section: the plugin name, its class and its checked options."""

    plugin: str
    cls: type
    options: Any


@dataclass
class Recipe:
    """A validated recipe."""

    file: str
    base_dir: Path
    plugins: list[str]
    data: Component
    tokenizer: Component
    encoder: Component | None
    decoder: Component
    sampler: Component
    train: TrainOptions
    evaluate: EvaluateOptions
    # The source side's tokenizer; None: the `tokenizer` serves both sides.
    source_tokenizer: Component | None = None
    # The attention a decoder builds over the encoder memory, if any.
    attention: Component | None = None

    def to_table(self) -> dict:
        """Return the resolved recipe as a table, with every default written out."""
        table: dict[str, Any] = {}
        if self.plugins:
            table["plugins"] = list(self.plugins)
        for section in COMPONENT_SECTIONS:
            component = getattr(self, section)
            if component is not None:
                table[section] = {
                    "plugin": component.plugin,
                    **schema.to_table(component.options, self.base_dir),
                }
        table["train"] = schema.to_table(self.train)
        table["evaluate"] = schema.to_table(self.evaluate)
        return table


def read_recipe(path: str | Path, overrides: list[str] = ()) -> dict:
    """Parse a recipe file, merge the files it extends, and apply `--set` values."""
    table = _read_with_extends(Path(path), seen=())
    for assignment in overrides:
        _apply_override(table, assignment)
    return table


def validate_recipe(
    table: dict, registry: Registry, file: str, base_dir: Path
) -> Recipe:
    """Check every section of `table` and return a typed `Recipe`."""
    for key in table:
        if key not in TOP_LEVEL_KEYS:
            raise RecipeError(
                f"unknown section or key `{key}`.{suggest(key, TOP_LEVEL_KEYS)} "
                f"Valid: {', '.join(TOP_LEVEL_KEYS)}.",
                file,
            )
    components = {
        section: _validate_component(table, section, registry, file)
        for section in COMPONENT_SECTIONS
    }
    evaluate = schema.validate(
        EvaluateOptions, table.get("evaluate", {}), "evaluate", file
    )
    _check_metrics(evaluate.metrics, registry, components["tokenizer"], file)
    return Recipe(
        file=file,
        base_dir=base_dir,
        plugins=_plugin_list(table.get("plugins", []), file, base_dir),
        train=schema.validate(TrainOptions, table.get("train", {}), "train", file),
        evaluate=evaluate,
        **components,
    )


def _check_metrics(
    names: list[str], registry: Registry, tokenizer: Component, file: str
) -> None:
    """Reject unknown metrics and metrics that do not fit the tokenizer's level."""
    available = registry.names("metric")
    for index, name in enumerate(names):
        key = f"evaluate.metrics[{index}]"
        if name not in available:
            raise RecipeError(
                f"unknown metric plugin {name!r}.{suggest(name, available)} "
                f"Available: {', '.join(available)}.",
                file,
                key,
            )
        levels = getattr(registry.get("metric", name), "levels", None)
        level = getattr(tokenizer.cls, "level", None)
        if levels is not None and level not in levels:
            raise RecipeError(
                f"metric {name!r} needs a tokenizer of level {' or '.join(levels)}, "
                f"but tokenizer {tokenizer.plugin!r} is {level!r}",
                file,
                key,
            )


def _validate_component(
    table: dict, section: str, registry: Registry, file: str
) -> Component | None:
    if section not in table:
        if section in OPTIONAL_SECTIONS:
            return None
        raise RecipeError(f"missing section [{section}]", file, section)
    raw = table[section]
    if not isinstance(raw, dict):
        raise RecipeError(f"expected a table, got {raw!r}", file, section)
    options = dict(raw)
    name = options.pop("plugin", None)
    if isinstance(name, schema.CommandLineValue):
        name, file = name.text, "--set"
    if not isinstance(name, str):
        names = ", ".join(registry.names(section)) or "none installed"
        raise RecipeError(
            f"missing or invalid `plugin` name. Available: {names}.",
            file,
            f"{section}.plugin",
        )
    kind = SECTION_KINDS.get(section, section)
    if name not in registry.components[kind]:
        names = ", ".join(registry.names(kind)) or "none"
        raise RecipeError(
            f"unknown {kind} plugin {name!r}.{suggest(name, registry.names(kind))} "
            f"Available: {names}.",
            file,
            f"{section}.plugin",
        )
    cls = registry.get(kind, name)
    return Component(name, cls, schema.validate(cls.Options, options, section, file))


def _plugin_list(value: Any, file: str, base_dir: Path) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise RecipeError(
            "expected a list of module names or .py paths", file, "plugins"
        )
    # .py paths are stored absolute, so the resolved recipe in a run folder
    # still finds them.
    return [
        str(resolve_inside(base_dir, v, "plugins", file)) if v.endswith(".py") else v
        for v in value
    ]


def _read_with_extends(path: Path, seen: tuple[Path, ...]) -> dict:
    resolved = path.resolve()
    if resolved in seen:
        chain = " -> ".join(str(p) for p in (*seen, resolved))
        raise RecipeError(
            f"the chain of recipes is a cycle: {chain}", str(path), "extends"
        )
    try:
        with open(path, "rb") as handle:
            table = tomllib.load(handle)
    except FileNotFoundError:
        raise RecipeError("recipe file not found", str(path)) from None
    except IsADirectoryError:
        raise RecipeError("expected a .toml file, got a folder", str(path)) from None
    except tomllib.TOMLDecodeError as error:
        raise RecipeError(f"invalid TOML: {error}", str(path)) from None
    except UnicodeDecodeError as error:
        raise RecipeError(f"not UTF-8 text: {error}", str(path)) from None
    parent = table.pop("extends", None)
    if parent is None:
        return table
    if not isinstance(parent, str):
        raise RecipeError(f"expected a file path, got {parent!r}", str(path), "extends")
    base_path = resolve_inside(path.parent, parent, "extends", str(path))
    base = _read_with_extends(base_path, (*seen, resolved))
    # Relative .py plugin paths of the base stay relative to the base's folder.
    if "plugins" in base and isinstance(base["plugins"], list):
        base["plugins"] = [
            str(resolve_inside(base_path.parent, p, "plugins", str(base_path)))
            if isinstance(p, str) and p.endswith(".py")
            else p
            for p in base["plugins"]
        ]
    return _merge(base, table)


def _merge(base: dict, child: dict) -> dict:
    """Merge `child` over `base`: tables merge key by key, other values replace.

    A component section whose `plugin` changes replaces the base section whole,
    because the base's options belong to the other plugin.
    """
    merged = copy.deepcopy(base)
    for key, value in child.items():
        old = merged.get(key)
        if isinstance(value, dict) and isinstance(old, dict):
            if "plugin" in value and value["plugin"] != old.get("plugin"):
                merged[key] = copy.deepcopy(value)
            else:
                merged[key] = _merge(old, value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _apply_override(table: dict, assignment: str) -> None:
    key, sep, text = assignment.partition("=")
    key = key.strip()
    if not sep or not key:
        raise RecipeError(
            f"invalid value {assignment!r}; write it as section.key=value", "--set"
        )
    section, dot, name = key.partition(".")
    if section in ("extends", "plugins"):
        raise RecipeError(
            f"`{section}` cannot be changed with --set; edit the recipe file",
            "--set",
            key,
        )
    sections = TOP_LEVEL_KEYS[2:]
    if section not in sections:
        raise RecipeError(
            f"unknown section `{section}`.{suggest(section, sections)} "
            f"Valid: {', '.join(sections)}.",
            "--set",
            key,
        )
    if not dot or "." in name:
        raise RecipeError("expected section.key, such as train.lr", "--set", key)
    target = table.setdefault(section, {})
    value = text.strip()
    if name == "plugin" and target.get("plugin") != value:
        # The recipe's options belong to the old plugin, so only other --set
        # values for this section carry over to the new one.
        kept = {
            k: v for k, v in target.items() if isinstance(v, schema.CommandLineValue)
        }
        target.clear()
        target.update(kept)
    target[name] = schema.CommandLineValue(value)
