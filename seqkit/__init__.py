"""seqkit: recurrent sequence models on PyTorch, assembled by TOML recipes."""

from seqkit.api import Run, load_run
from seqkit.context import BuildContext
from seqkit.errors import (
    CheckpointError,
    DataError,
    PluginError,
    RecipeError,
    SeqkitError,
    TrainingError,
)
from seqkit.export import export_run
from seqkit.generation import generate_text
from seqkit.hookspecs import hookimpl
from seqkit.interfaces import (
    Attention,
    DataSource,
    Decoder,
    DecoderOutput,
    Encoder,
    EncoderOutput,
    EvalResult,
    Example,
    Generation,
    Metric,
    Sampler,
    Splits,
    StepModel,
    Tokenizer,
)
from seqkit.model import SequenceModel
from seqkit.recipe import read_recipe, validate_recipe
from seqkit.registry import create_registry
from seqkit.run import build, check_recipe, load_recipe, train
from seqkit.task import Task
from seqkit.vocab import Vocabulary

__version__ = "0.1.0"

__all__ = [
    "Attention",
    "BuildContext",
    "CheckpointError",
    "DataError",
    "DataSource",
    "Decoder",
    "DecoderOutput",
    "Encoder",
    "EncoderOutput",
    "EvalResult",
    "Example",
    "Generation",
    "Metric",
    "PluginError",
    "RecipeError",
    "Sampler",
    "SeqkitError",
    "SequenceModel",
    "Splits",
    "StepModel",
    "Task",
    "Tokenizer",
    "TrainingError",
    "Vocabulary",
    "Run",
    "build",
    "check_recipe",
    "create_registry",
    "export_run",
    "generate_text",
    "hookimpl",
    "load_recipe",
    "load_run",
    "read_recipe",
    "train",
    "validate_recipe",
]
