"""A trained run opened from Python, with the operations of the command line."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from seqkit import schema
from seqkit.context import BuildContext
from seqkit.errors import RecipeError, SeqkitError
from seqkit.generation import generate_text
from seqkit.interfaces import Sampler
from seqkit.run import Built, evaluate_built
from seqkit.run import load_run as load_built_run

# Options of the `sample` sampler that `Run.generate` accepts as keywords.
SAMPLING_OPTIONS = ("temperature", "top_k", "top_p", "repetition_penalty")
# Options of the `beam` sampler that `Run.translate` and `Run.caption` accept.
BEAM_OPTIONS = ("beam_size", "n_best", "length_penalty")


def _short_repr(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _checked_texts(method: str, texts: Any) -> list[str]:
    """Check that `texts` is an iterable of str and return it as a list.

    Raises TypeError naming `method` for a bare str, which would otherwise be
    read one character per text, and for an item that is not a str.
    """
    if isinstance(texts, str):
        raise TypeError(
            f"{method}() takes a list of texts, not a str; wrap one text in a "
            f"list: {method}([text])"
        )
    if not isinstance(texts, Iterable):
        raise TypeError(
            f"{method}() takes a list of texts, not {type(texts).__name__}; pass "
            f"a list of str: {method}([text, ...])"
        )
    items = list(texts)
    for index, item in enumerate(items):
        if not isinstance(item, str):
            raise TypeError(
                f"{method}() takes a list of texts, but texts[{index}] is "
                f"{type(item).__name__} {_short_repr(item)}; pass each text as a str"
            )
    return items


def _checked_images(method: str, images: Any) -> list[str | os.PathLike | Image.Image]:
    """Check that `images` is an iterable of paths or PIL images; return a list.

    Raises TypeError naming `method` for a bare path or image, which would
    otherwise be read as a list of characters or fail, and for an item that
    is neither a path (str or os.PathLike) nor a PIL image.
    """
    if isinstance(images, str | os.PathLike | Image.Image):
        raise TypeError(
            f"{method}() takes a list of images, not a single "
            f"{type(images).__name__}; wrap one image in a list: {method}([image])"
        )
    if not isinstance(images, Iterable):
        raise TypeError(
            f"{method}() takes a list of images, not {type(images).__name__}; "
            f"pass a list of paths or PIL images: {method}([image, ...])"
        )
    items = list(images)
    for index, item in enumerate(items):
        if not isinstance(item, str | os.PathLike | Image.Image):
            raise TypeError(
                f"{method}() takes a list of images, but images[{index}] is "
                f"{type(item).__name__} {_short_repr(item)}; pass each image as a "
                "path (str or pathlib.Path) or a PIL image"
            )
    return items


class Run:
    """A run folder loaded for use: `seqkit.load_run("runs/caption")`.

    `built` contains the recipe, tokenizer, vocabularies, task, model (in
    eval mode) and sampler. Each operation raises `SeqkitError` when the
    run's task cannot perform it, as the command line does. `classify`,
    `tag`, `translate` and `caption` take a list and raise TypeError for a
    single text or image, or for an item of the wrong type.
    """

    def __init__(self, built: Built, run_dir: Path):
        self.built = built
        self.run_dir = run_dir

    @property
    def task_name(self) -> str:
        """The registered name of the run's task, such as "translation"."""
        return self.built.task_name

    def _operation(self, name: str, action: str, task: str) -> Any:
        operation = getattr(self.built.task, name, None)
        if operation is None:
            raise SeqkitError(
                f"run {self.run_dir} was trained for the {self.task_name!r} task, "
                f"which cannot {action}; pass a run whose data source has the "
                f"{task} task"
            )
        return operation

    def sampler(self, plugin: str | None = None, **options: Any) -> Sampler:
        """Return the recipe's sampler, or one built from `plugin` and `options`.

        Options not given keep the recipe's values when `plugin` is the
        recipe's sampler, else the plugin's defaults. Invalid values raise
        `SeqkitError` naming the option.
        """
        component = self.built.recipe.sampler
        if plugin is None and not options:
            return self.built.sampler
        plugin = plugin or component.plugin
        table = {}
        if plugin == component.plugin:
            table = schema.to_table(component.options)
        cls = self.built.registry.get("sampler", plugin)
        try:
            checked = schema.validate(
                cls.Options, {**table, **options}, "sampler", "arguments"
            )
            return cls(checked, BuildContext(base_dir=self.built.recipe.base_dir))
        except RecipeError as error:
            raise SeqkitError(str(error)) from None

    def _sampling(self, options: dict[str, Any], names: tuple[str, ...], plugin: str):
        given = {name: value for name, value in options.items() if value is not None}
        unknown = sorted(set(given) - set(names))
        if unknown:
            raise SeqkitError(
                f"unknown option {unknown[0]!r}; expected one of {', '.join(names)}"
            )
        if not given:
            return self.built.sampler
        component = self.built.recipe.sampler
        accepted = {option for option, *_ in schema.describe(component.cls.Options)}
        if set(given) <= accepted:
            return self.sampler(component.plugin, **given)
        return self.sampler(plugin, **given)

    def generate(
        self,
        prompt: str = "",
        max_new_tokens: int = 300,
        num_samples: int = 1,
        seed: int = 0,
        **sampling: Any,
    ) -> list[str]:
        """Continue `prompt` with a language-model run; see `seqkit generate`.

        `sampling` takes `temperature`, `top_k`, `top_p` and
        `repetition_penalty`, which switch to the `sample` sampler unless the
        recipe's sampler accepts them.
        """
        if self.built.model.encoder is not None:
            raise SeqkitError(
                f"run {self.run_dir} has an encoder and was trained for the "
                f"{self.task_name!r} task; generate continues text from a "
                "language model only"
            )
        sampler = self._sampling(sampling, SAMPLING_OPTIONS, "sample")
        return generate_text(
            self.built.model,
            self.built.tokenizer,
            self.built.vocabularies["target"],
            sampler,
            prompt=prompt,
            max_new_tokens=max_new_tokens,
            num_samples=num_samples,
            generator=torch.Generator().manual_seed(seed),
        )

    def classify(
        self, texts: list[str], top_k: int = 1
    ) -> list[list[tuple[str, float]]]:
        """Return the `top_k` most likely (label, probability) pairs of each text."""
        texts = _checked_texts("classify", texts)
        predict = self._operation("predict_labels", "label texts", "classification")
        return predict(self.built.model, texts, top_k=top_k)

    def tag(self, texts: list[str]) -> list[str]:
        """Return each text with its characters tagged, as `seqkit tag` prints it."""
        texts = _checked_texts("tag", texts)
        return self._operation("tag", "tag text", "tagging")(self.built.model, texts)

    def translate(self, texts: list[str], **beam: Any) -> list[Any]:
        """Translate each text; returns `Translation` objects (text, score, nbest).

        `beam` takes `beam_size`, `n_best` and `length_penalty`, which switch
        to beam search; without them the recipe's sampler decodes.
        """
        texts = _checked_texts("translate", texts)
        translate = self._operation("translate", "translate texts", "translation")
        sampler = self._sampling(beam, BEAM_OPTIONS, "beam")
        return translate(self.built.model, texts, sampler)

    def caption(self, images: list[Any], **beam: Any) -> list[Any]:
        """Caption each image (a path or a PIL image); returns `Caption` objects.

        `beam` takes the same options as `translate`.
        """
        images = _checked_images("caption", images)
        caption = self._operation("caption", "caption images", "captioning")
        sampler = self._sampling(beam, BEAM_OPTIONS, "beam")
        return caption(self.built.model, images, sampler)

    def evaluate(self) -> dict[str, Any]:
        """Reload the data and return the validation and test metrics."""
        built = load_built_run(self.run_dir, load_data=True)
        return evaluate_built(built)

    def metrics(self) -> dict[str, Any]:
        """Return the metrics that training wrote to metrics.json."""
        path = self.run_dir / "metrics.json"
        if not path.is_file():
            raise SeqkitError(f"{path} not found; the run has not finished training")
        return json.loads(path.read_text(encoding="utf-8"))


def load_run(run_dir: str | Path) -> Run:
    """Open a run folder written by `seqkit run` or `seqkit.train`."""
    run_dir = Path(run_dir)
    return Run(load_built_run(run_dir), run_dir)
