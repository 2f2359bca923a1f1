"""Shared fixtures: the built-in registry, a trained run and a quiet torch."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
from helpers import CHAR_RECIPE, train_recipe, write_recipe

from seqkit.context import BuildContext
from seqkit.registry import Registry, create_registry
from seqkit.vocab import Vocabulary

# Tiny models train fastest on one thread. On a shared 2-core machine the
# default thread pool waits on busy cores, which makes each step ~500x slower.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def restore_global_state():
    """Undo what `seqkit.cli.main` and `train.threads` change process-wide."""
    logger = logging.getLogger("seqkit")
    handlers, level, propagate = list(logger.handlers), logger.level, logger.propagate
    threads = torch.get_num_threads()
    yield
    logger.handlers[:] = handlers
    logger.setLevel(level)
    logger.propagate = propagate
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def registry() -> Registry:
    """The registry of built-in plugins."""
    return create_registry()


@pytest.fixture(scope="session")
def char_run(tmp_path_factory) -> Path:
    """A trained CHAR_RECIPE run folder, shared by tests that only read it."""
    folder = tmp_path_factory.mktemp("char_run")
    recipe_path = write_recipe(folder / "recipe", CHAR_RECIPE)
    train_recipe(recipe_path, folder / "run")
    return folder / "run"


@pytest.fixture
def letters_vocab() -> Vocabulary:
    """A vocabulary of the four specials and the letters a to f (ids 4 to 9)."""
    return Vocabulary(["<pad>", "<unk>", "<bos>", "<eos>", *"abcdef"])


@pytest.fixture
def letters_context(letters_vocab, tmp_path) -> BuildContext:
    """A build context whose target vocabulary is `letters_vocab`."""
    return BuildContext(base_dir=tmp_path, vocab=letters_vocab)
