"""Inference texts/s of a classification model at batch 1 and at batch 64.

Both sizes go through `ClassificationTask.predict_labels`, the method that
`seqkit classify` calls, with top_k = 1 as that command uses by default.
Batch 64 is one call with every text: `predict_labels` scores them in batches
of PREDICT_BATCH (64), as `seqkit classify` does with texts read from stdin.
Batch 1 is one call per text. Neither side times process start or checkpoint
loading, which `seqkit classify` adds to every invocation.

The model is `recipes/names.toml`'s, freshly initialised and untrained, so the
labels are meaningless. The texts are the first names of the test split.
The two sizes alternate in ABBA order, and each rate is a median over
repetitions. The run checks that both sizes return the same labels and
probabilities, because packing makes a text's result independent of its batch.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

from seqkit_builtins.classification import PREDICT_BATCH

from bench.common import NAMES_RECIPE, median, other_cores_busy, sample_cpu
from seqkit.run import Built, build, load_recipe, seed_everything

# Tolerance of the check that batch 1 and batch 64 return the same probabilities.
PROBABILITY_TOLERANCE = 1e-5
SIZES = (1, PREDICT_BATCH)


@dataclass
class ClassifyInferenceSettings:
    """Texts per pass and timed repetitions."""

    texts: int = 512
    repeats: int = 9


def _build() -> Built:
    recipe, registry = load_recipe(NAMES_RECIPE, ["train.device=cpu"])
    seed_everything(recipe.train.seed)
    return build(recipe, registry)


def _check_same_predictions(
    single: list[list[tuple[str, float]]], batched: list[list[tuple[str, float]]]
) -> None:
    for index, ([(label_1, p_1)], [(label_64, p_64)]) in enumerate(
        zip(single, batched, strict=True)
    ):
        if label_1 != label_64 or abs(p_1 - p_64) > PROBABILITY_TOLERANCE:
            raise RuntimeError(
                f"text {index} is labelled {label_1} ({p_1:.6f}) at batch 1 but "
                f"{label_64} ({p_64:.6f}) at batch {PREDICT_BATCH}, so the result "
                "depends on the batch"
            )


def run_classify_inference_benchmark(
    settings: ClassifyInferenceSettings,
) -> dict[str, Any]:
    """Measure `predict_labels` texts/s at batch 1 and at batch PREDICT_BATCH."""
    cpu_start = sample_cpu()
    built = _build()
    texts = built.task.test_texts[: settings.texts]
    if len(texts) < settings.texts:
        raise ValueError(
            f"the names test split has {len(texts)} texts, fewer than the "
            f"{settings.texts} requested"
        )

    def predict(batch_size: int) -> list[list[tuple[str, float]]]:
        if batch_size == 1:
            return [built.task.predict_labels(built.model, [text])[0] for text in texts]
        return built.task.predict_labels(built.model, texts)

    # warm-up, which also checks that both sizes agree
    _check_same_predictions(predict(1), predict(PREDICT_BATCH))

    rates: dict[int, list[float]] = {size: [] for size in SIZES}
    for repeat in range(settings.repeats):
        for size in SIZES if repeat % 2 == 0 else SIZES[::-1]:
            start = time.perf_counter()
            predict(size)
            rates[size].append(len(texts) / (time.perf_counter() - start))
    cpu_end = sample_cpu()

    ratios = [
        batched / single
        for single, batched in zip(rates[1], rates[PREDICT_BATCH], strict=True)
    ]
    lengths = [len(ids) for ids in built.task.encode_texts(texts)]
    return {
        "name": "classify-inference",
        "settings": vars(settings),
        "batch_size": PREDICT_BATCH,
        "forward_passes": {
            1: len(texts),
            PREDICT_BATCH: math.ceil(len(texts) / PREDICT_BATCH),
        },
        "mean_steps": sum(lengths) / len(lengths),
        "texts_per_s": {size: median(values) for size, values in rates.items()},
        "ratio": median(ratios),
        "ratios": ratios,
        # no target: the benchmark reports the ratio and what explains it
        "passed": True,
        "seconds": cpu_end.wall - cpu_start.wall,
        "other_cores_busy": other_cores_busy(cpu_start, cpu_end),
    }
