"""Export a trained run's encoder and decoder step as TorchScript or ONNX graphs.

`export_run` writes up to two graphs, so that a program without seqkit can
decode with the run's model:

- `encoder` (runs with an encoder): the encoder, the decoder's initial state
  and, for the built-in `rnn` decoder with attention, the attention keys that
  the decoder would otherwise compute once per batch.
- `step`: one decoder step. The token and the state go in, the logits and the
  new state come out, and the encoder tensors that the step reads are more
  inputs.

A recurrent state (a tensor or nested tuples of tensors) becomes flat tensors.
`manifest.json` names every input and output with its shape and dtype, and
`vocabulary.json` contains the vocabularies; docs/export.md describes both.

Both formats come from `torch.jit.trace`, which records the operations run on
an example batch. Python branches on tensor values and sizes are recorded as
constants, so every graph is loaded back and compared with the eager model on
a batch of other sizes before `export_run` returns.

Shapes: B batch, S source steps, L layers, D directions, H hidden size,
M memory size, K attention key size, V target vocabulary size.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import logging
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from seqkit import schema
from seqkit.errors import SeqkitError
from seqkit.interfaces import Decoder, EncoderOutput, State
from seqkit.run import Built, load_run
from seqkit.training import BEST

log = logging.getLogger(__name__)

# The file suffix of each format's graphs.
FORMATS = {"torchscript": ".pt", "onnx": ".onnx"}
GRAPH_NAMES = ("encoder", "step")
MANIFEST = "manifest.json"
VOCABULARY = "vocabulary.json"
# Every file that an export of either format writes. A new export removes
# those of an earlier one, so the folder never mixes two exports.
EXPORT_FILES = (
    *(f"{graph}{suffix}" for suffix in FORMATS.values() for graph in GRAPH_NAMES),
    VOCABULARY,
    MANIFEST,
)
# The staging folder's subfolder that keeps an earlier export's files until
# the new files are in place.
PREVIOUS = "previous"
MANIFEST_VERSION = 1

# Sampler options that limit how many tokens seqkit decodes, as the built-in
# beam sampler defines them; the manifest copies those the recipe's sampler has.
LENGTH_LIMITS = ("min_length", "max_length", "max_length_ratio")

# The built-in rnn decoder caches its attention keys under this name in
# `EncoderOutput.cache` (seqkit_builtins.decoders.RNNDecoder._context).
KEYS_CACHE = "attention_keys"

# Batch sizes and source lengths of the example batches. Graphs are traced on
# one and compared with the eager model on another, so a size that tracing
# recorded as a constant fails the comparison.
TRACE_SOURCE_LENGTHS = (7, 5, 2)
CHECK_SOURCE_LENGTHS = (4, 1)
CHECK_STEPS = 4
# The comparison's tolerance, as in torch.allclose. TorchScript and ONNX
# Runtime may use other kernels than eager PyTorch, so results differ by
# rounding.
CHECK_RTOL, CHECK_ATOL = 1e-4, 1e-4

# Names of the dynamic dims in the manifest and in the ONNX graphs.
BATCH, SOURCE_LENGTH = "batch", "source_length"

Runner = Callable[[Sequence[Tensor]], list[Tensor]]


def export_run(
    run_dir: str | Path, format: str, out_dir: str | Path | None = None
) -> list[Path]:
    """Export the run in `run_dir` as `format` graphs into `out_dir`.

    `format` is "torchscript" or "onnx". `out_dir` defaults to
    `run_dir/export/<format>` and is created when missing. The new files
    replace every file in `EXPORT_FILES` that an earlier export of either
    format left there, and a failed export changes none of them. Returns the
    paths written: the graphs, the vocabulary file and the manifest.

    Raises `SeqkitError` for an unknown format, a missing run folder, a
    missing onnx package, a component that cannot be exported and a file
    that cannot be written. The error for a component names it and the reason.
    """
    if format not in FORMATS:
        raise SeqkitError(
            f"unknown export format {format!r}; use one of {', '.join(FORMATS)}"
        )
    run_dir = Path(run_dir)
    _check_run_folder(run_dir)
    if format == "onnx":
        _require_onnx()
    out_dir = Path(out_dir) if out_dir is not None else run_dir / "export" / format
    _check_export_names(out_dir)

    # load_run reads the checkpoint with weights_only=True, so no code in it runs.
    built = load_run(run_dir)
    plan = plan_graphs(built)
    _create_folder(out_dir)
    # The files are written into a temporary folder and moved into `out_dir`
    # once the graphs match the eager model, so a failed export leaves the
    # files of an earlier one intact.
    staging = _create_staging(out_dir)
    replaced = False
    try:
        try:
            names = _write_files(built, plan, format, staging, run_dir)
        except OSError as error:
            raise _file_error("cannot write", error, staging) from None
        _replace_export(staging, out_dir, names)
        replaced = True
    finally:
        # A failed rollback leaves the earlier export's files in PREVIOUS,
        # and the error names that folder, so it is kept.
        previous = staging / PREVIOUS
        if replaced or not previous.is_dir() or not any(previous.iterdir()):
            shutil.rmtree(staging, ignore_errors=True)
    return [out_dir / name for name in names]


def _check_run_folder(run_dir: Path) -> None:
    if run_dir.is_file():
        hint = "the run folder that `seqkit run` wrote"
        if (run_dir.parent / BEST).is_file():
            hint = f"its run folder {run_dir.parent}"
        raise SeqkitError(f"{run_dir} is a file, not a run folder; pass {hint} instead")
    if not run_dir.is_dir():
        raise SeqkitError(
            f"run folder not found: {run_dir}; pass the --out folder of `seqkit run`"
        )
    if not (run_dir / BEST).is_file():
        raise SeqkitError(
            f"{run_dir} contains no {BEST}; pass a run folder written by `seqkit run`"
        )


def _check_export_names(out_dir: Path) -> None:
    """Raise `SeqkitError` when `out_dir` has a folder under an export file's name.

    Such a folder is not the output of an export, so it is neither moved nor
    removed.
    """
    for name in EXPORT_FILES:
        path = out_dir / name
        if path.is_dir():
            raise SeqkitError(
                f"{path} is a folder, but an export writes a file of that name; "
                "move or remove the folder, or choose another folder with --out"
            )


def _create_staging(out_dir: Path) -> Path:
    try:
        return Path(tempfile.mkdtemp(prefix=".export-", dir=out_dir))
    except OSError as error:
        raise _file_error("cannot write into", error, out_dir) from None


def _replace_export(staging: Path, out_dir: Path, names: list[str]) -> None:
    """Move the files `names` from `staging` into `out_dir` as one set.

    Every file in `EXPORT_FILES` that an earlier export left in `out_dir`
    first moves into `staging/PREVIOUS`, so no file of another format or of a
    graph that this run lacks stays behind. When a move fails, the moved
    files go back before `SeqkitError` is raised.
    """
    previous = staging / PREVIOUS
    previous.mkdir()
    kept: list[str] = []
    placed: list[str] = []
    try:
        for name in EXPORT_FILES:
            if os.path.lexists(out_dir / name):
                os.replace(out_dir / name, previous / name)
                kept.append(name)
        for name in names:
            os.replace(staging / name, out_dir / name)
            placed.append(name)
    except OSError as error:
        failure = _file_error("cannot replace the export files in", error, out_dir)
        try:
            for name in placed:
                os.remove(out_dir / name)
            for name in kept:
                os.replace(previous / name, out_dir / name)
        except OSError as restore_error:
            raise SeqkitError(
                f"{failure}. Restoring the earlier export also failed "
                f"({restore_error.strerror}); its files are in {previous}"
            ) from None
        raise failure from None


def _file_error(action: str, error: OSError, folder: Path) -> SeqkitError:
    """Return a `SeqkitError` naming the path of `error` and what to do."""
    path = error.filename or folder
    return SeqkitError(
        f"{action} {path}: {error.strerror or error}; check that {folder} is "
        "writable and has free space, or choose another folder with --out"
    )


def _write_files(
    built: Built, plan: GraphPlan, format: str, folder: Path, run_dir: Path
) -> list[str]:
    """Write and check the graphs, then write the vocabulary file and manifest.

    Returns the names of the files written into `folder`.
    """
    names = []
    runners: dict[str, Runner | None] = {}
    for graph in plan.graphs:
        name = f"{graph.name}{FORMATS[format]}"
        if format == "torchscript":
            runners[graph.name] = _save_torchscript(graph, folder / name)
        else:
            runners[graph.name] = _save_onnx(graph, folder / name)
        names.append(name)
    if all(runner is not None for runner in runners.values()):
        compare_with_eager(built, plan, runners)
    else:
        log.warning(
            "onnxruntime is not installed, so the exported ONNX graphs were not "
            "compared with the eager model; install it with `pip install "
            "onnxruntime` to have them checked"
        )

    vocabularies = {name: vocab.to_list() for name, vocab in built.vocabularies.items()}
    _write_json(folder / VOCABULARY, vocabularies)
    manifest = build_manifest(built, plan, format, folder, run_dir)
    _write_json(folder / MANIFEST, manifest)
    return [*names, VOCABULARY, MANIFEST]


def _require_onnx() -> None:
    # The TorchScript-based ONNX exporter (dynamo=False) needs the onnx package
    # but not onnxscript, which only the torch.export-based exporter uses.
    try:
        import onnx  # noqa: F401
    except ImportError:
        raise SeqkitError(
            "--format onnx needs the onnx package, which is not installed; "
            "install it with `pip install onnx`"
        ) from None


def _onnxruntime_installed() -> bool:
    return importlib.util.find_spec("onnxruntime") is not None


def _create_folder(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise SeqkitError(
            f"cannot create export folder {folder}: {error.strerror}; choose "
            "another folder with --out"
        ) from None


def _write_json(path: Path, value: Any) -> None:
    text = json.dumps(value, indent=2, ensure_ascii=False)
    path.write_text(text + "\n", encoding="utf-8")


# ---------------------------------------------------------------- state


class StateLayout:
    """The mapping between a decoder state and its flat tensors.

    `structure` mirrors the state: None for a tensor, a tuple of structures
    for a tuple. `names` and `batch_dims` describe the flat tensors in order.
    """

    def __init__(self, structure: Any, names: list[str], batch_dims: list[int]):
        self.structure = structure
        self.names = names
        self.batch_dims = batch_dims

    def flatten(self, state: State) -> list[Tensor]:
        tensors: list[Tensor] = []
        _flatten_into(state, self.structure, tensors)
        return tensors

    def unflatten(self, tensors: Sequence[Tensor]) -> State:
        return _unflatten(self.structure, iter(tensors))


def _flatten_into(state: State, structure: Any, tensors: list[Tensor]) -> None:
    if structure is None:
        tensors.append(state)
        return
    for part, part_structure in zip(state, structure, strict=True):
        _flatten_into(part, part_structure, tensors)


def _unflatten(structure: Any, tensors: Iterator[Tensor]) -> State:
    if structure is None:
        return next(tensors)
    return tuple(_unflatten(part, tensors) for part in structure)


def _state_structure(state: State, component: str) -> Any:
    """Return the structure of `state`, or raise unless it is tensors and tuples."""
    if isinstance(state, Tensor):
        return None
    if isinstance(state, tuple):
        return tuple(_state_structure(part, component) for part in state)
    raise SeqkitError(
        f"cannot export {component}: its state contains a {type(state).__name__}, "
        "but an exported step takes only tensors; make init_state return a "
        "tensor or a tuple of tensors"
    )


def _state_names(decoder: Decoder, count: int) -> list[str]:
    """Name the flat state tensors: h, c and feed for the built-in rnn decoder."""
    from seqkit_builtins.decoders import RNNDecoder

    if isinstance(decoder, RNNDecoder):
        names = ["h", "c"] if decoder.options.cell == "lstm" else ["h"]
        if decoder.feeds_input:
            names.append("feed")
        if len(names) == count:
            return names
    if count == 1:
        return ["state"]
    return [f"state{index}" for index in range(count)]


def _batch_dims(
    two_rows: list[Tensor], three_rows: list[Tensor], names: list[str], component: str
) -> list[int]:
    """Find the batch dim of each state tensor from states of 2 and 3 rows."""
    dims = []
    for name, small, large in zip(names, two_rows, three_rows, strict=True):
        differing = []
        if small.dim() == large.dim():
            differing = [
                dim
                for dim in range(small.dim())
                if small.shape[dim] != large.shape[dim]
            ]
        sizes = [(small.shape[dim], large.shape[dim]) for dim in differing]
        if sizes != [(2, 3)]:
            raise SeqkitError(
                f"cannot export {component}: its state tensor {name!r} has shape "
                f"{tuple(small.shape)} for 2 rows and {tuple(large.shape)} for 3 "
                "rows, so it has no single batch dim; give every state tensor "
                "one dim of the batch size"
            )
        dims.append(differing[0])
    return dims


# ---------------------------------------------------------------- modules


class EncoderGraph(nn.Module):
    """The encoder, the decoder's initial state and the tensors the step reads.

    Inputs: `source` (B, S) int64 and `lengths` (B,) int64, or `images`
    (B, 3, H, W) float32 in [0, 1]. Outputs: the flat initial state tensors,
    then the encoder tensors named in `encoder_names`: memory (B, S, M), mask
    (B, S) bool, summary (B, M) and keys (B, S, K).
    """

    def __init__(
        self,
        encode: nn.Module,
        decoder: Decoder,
        layout: StateLayout,
        encoder_names: list[str],
    ):
        super().__init__()
        self.encode = encode
        self.decoder = decoder
        self.layout = layout
        self.encoder_names = encoder_names

    def forward(self, *inputs: Tensor) -> tuple[Tensor, ...]:
        encoder_output = self.encode(*inputs)
        # Tracing records this size as a size of the input, not as a constant.
        batch_size = inputs[0].shape[0]
        state = self.decoder.init_state(batch_size, encoder_output)
        tensors = self.layout.flatten(state)
        for name in self.encoder_names:
            if name == "keys":
                tensors.append(self.decoder.attention.prepare(encoder_output.memory))
            else:
                tensors.append(getattr(encoder_output, name))
        return tuple(tensors)


class StepGraph(nn.Module):
    """One decoder step over flat tensors.

    Inputs: `token` (B,) int64, the flat state tensors, then the encoder
    tensors named in `encoder_names`. Outputs: logits (B, V), the new state
    tensors in input order, then the attention weights (B, S) when
    `returns_attention`.
    """

    def __init__(
        self,
        decoder: Decoder,
        layout: StateLayout,
        encoder_names: list[str],
        returns_attention: bool,
    ):
        super().__init__()
        self.decoder = decoder
        self.layout = layout
        self.encoder_names = encoder_names
        self.returns_attention = returns_attention

    def forward(self, *inputs: Tensor) -> tuple[Tensor, ...]:
        token, tensors = inputs[0], inputs[1:]
        count = len(self.layout.names)
        state = self.layout.unflatten(tensors[:count])
        encoder_output = None
        if self.encoder_names:
            named = dict(zip(self.encoder_names, tensors[count:], strict=True))
            cache = {KEYS_CACHE: named["keys"]} if "keys" in named else {}
            encoder_output = EncoderOutput(
                summary=named.get("summary"),
                memory=named.get("memory"),
                mask=named.get("mask"),
                cache=cache,
            )
        output = self.decoder.step(token, state, encoder_output)
        outputs = (output.logits, *self.layout.flatten(output.state))
        if self.returns_attention:
            outputs += (output.attention,)
        return outputs


class PaddedRNNEncoder(nn.Module):
    """The built-in rnn encoder, computed over padded batches without packing.

    The encoder packs each batch by its lengths and skips packing when no row
    is padded, and tracing would record both the lengths and that choice as
    constants. Here each layer and direction is a one-layer RNN with the same
    weights, run over the whole padded batch. The forward direction reads the
    real steps before any pad, so its outputs at real steps are exact. The
    backward direction reads each row reversed within its length, so it also
    starts at the last real step. Outputs at pad steps are then zeroed, as
    `pad_packed_sequence` leaves them. Each length must be in [1, S], as the
    encoder requires.
    """

    def __init__(self, encoder: nn.Module):
        super().__init__()
        self.encoder = encoder
        rnn = encoder.rnn
        extra = {"nonlinearity": rnn.nonlinearity} if isinstance(rnn, nn.RNN) else {}
        directions = 2 if rnn.bidirectional else 1
        self.layers = nn.ModuleList()
        for layer in range(rnn.num_layers):
            input_size = rnn.input_size if layer == 0 else rnn.hidden_size * directions
            per_direction = nn.ModuleList()
            for direction in range(directions):
                single = type(rnn)(
                    input_size,
                    rnn.hidden_size,
                    bias=rnn.bias,
                    batch_first=True,
                    **extra,
                )
                suffix = f"_l{layer}" + ("_reverse" if direction else "")
                weights = {
                    f"{name}_l0": getattr(rnn, name + suffix).detach().clone()
                    for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
                    if hasattr(rnn, name + suffix)
                }
                single.load_state_dict(weights)
                per_direction.append(single)
            self.layers.append(per_direction)

    def forward(self, source: Tensor, lengths: Tensor) -> EncoderOutput:
        encoder = self.encoder
        embedded = encoder.dropout(encoder.embedding(source))  # (B, S, E)
        steps = torch.arange(source.shape[1], device=source.device)  # (S,)
        mask = steps[None, :] < lengths[:, None]  # (B, S)
        last = lengths - 1  # (B,)
        # Row b takes step lengths[b] - 1 - t at position t, and pads stay put.
        reverse = torch.where(mask, last[:, None] - steps[None, :], steps[None, :])
        inputs = embedded
        finals = []  # the hidden state after the last real step, (B, H) each
        for per_direction in self.layers:
            outputs = []
            for direction, rnn in enumerate(per_direction):
                if direction == 0:
                    output, _ = rnn(inputs)  # (B, S, H)
                    final = _select_steps(output, last)
                else:
                    output, _ = rnn(_select_steps(inputs, reverse))
                    output = _select_steps(output, reverse)  # back in source order
                    final = output[:, 0]
                outputs.append(output)
                finals.append(final)
            inputs = torch.cat(outputs, dim=-1)  # (B, S, D * H)
        memory = inputs * mask[..., None].to(inputs.dtype)  # (B, S, D * H)
        final_states = torch.stack(finals)  # (L * D, B, H), as nn.RNN orders them
        summary = encoder._pool(memory, mask, final_states)  # (B, D * H)
        return EncoderOutput(summary=summary, memory=memory, mask=mask)


def _select_steps(values: Tensor, index: Tensor) -> Tensor:
    """Pick steps `index` (B,) or (B, S') of `values` (B, S, H) in each row."""
    if index.dim() == 1:
        picked = index[:, None, None].expand(-1, 1, values.shape[2])  # (B, 1, H)
        return values.gather(1, picked).squeeze(1)  # (B, H)
    picked = index[:, :, None].expand(-1, -1, values.shape[2])  # (B, S', H)
    return values.gather(1, picked)  # (B, S', H)


# ---------------------------------------------------------------- plan


@dataclass
class TensorSpec:
    """One input or output of a graph, as the manifest lists it.

    `shape` contains an int for a fixed size and a dim name ("batch",
    "source_length") for a size that may change from call to call.
    """

    name: str
    shape: list[int | str]
    dtype: str
    description: str


@dataclass
class Graph:
    """A module to export, its example inputs and its manifest entries."""

    name: str
    module: nn.Module
    example: tuple[Tensor, ...]
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    # The components that the graph runs, for error messages.
    components: str
    # The component that computes each output, by output name.
    producers: dict[str, str] = field(default_factory=dict)


@dataclass
class GraphPlan:
    """The graphs of a run and the facts that the manifest records about them."""

    graphs: list[Graph]
    layout: StateLayout
    # The encoder tensors the step reads, in the order memory, mask, summary, keys.
    encoder_names: list[str]
    # "tokens", "images", or None for a run without an encoder.
    source_kind: str | None
    image_size: int | None
    # The initial state of a run without an encoder: None when it is all
    # zeros, else one batch row of each tensor as nested lists.
    initial_values: list[Any] | None


@dataclass
class Example:
    """An example batch: encoder inputs, encoder output and initial state."""

    inputs: tuple[Tensor, ...]
    encoder_output: EncoderOutput | None
    state: State


def plan_graphs(built: Built) -> GraphPlan:
    """Build the graph modules of a run with their example inputs and specs.

    Raises `SeqkitError` naming the component when the decoder state is not
    tensors or has no batch dim, or the encoder input is neither token ids nor
    images.
    """
    decoder = built.model.decoder
    decoder_name = _describe(built, "decoder")
    source_kind = _source_kind(built)
    two_rows = _example(built, source_kind, (7, 5), seed=2)
    example = _example(built, source_kind, TRACE_SOURCE_LENGTHS, seed=3)

    structure = _state_structure(example.state, decoder_name)
    probe = StateLayout(structure, [], [])
    state_tensors = probe.flatten(example.state)
    names = _state_names(decoder, len(state_tensors))
    dims = _batch_dims(
        probe.flatten(two_rows.state), state_tensors, names, decoder_name
    )
    layout = StateLayout(structure, names, dims)

    candidates = _step_candidates(decoder, example.encoder_output)
    token = torch.full(
        (len(TRACE_SOURCE_LENGTHS),), built.vocabularies["target"].bos_id
    )
    encoder_names = _used_encoder_tensors(
        decoder, layout, token, state_tensors, candidates, decoder_name
    )
    specs = _Specs(built, layout, state_tensors, source_kind, candidates)

    graphs = []
    if built.model.encoder is not None:
        graphs.append(_encoder_graph(built, layout, encoder_names, example, specs))
    with torch.no_grad():
        step_output = decoder.step(
            token, example.state, _without_cache(example.encoder_output)
        )
    returns_attention = step_output.attention is not None
    step_outputs = [specs.logits(), *specs.state("new_")]
    if returns_attention:
        step_outputs.append(specs.attention(step_output.attention))
    graphs.append(
        Graph(
            "step",
            StepGraph(decoder, layout, encoder_names, returns_attention).eval(),
            (token, *state_tensors, *(candidates[name] for name in encoder_names)),
            [specs.token(), *specs.state(""), *specs.encoder_tensors(encoder_names)],
            step_outputs,
            decoder_name,
            {spec.name: decoder_name for spec in step_outputs},
        )
    )

    initial_values = None
    if source_kind is None and any(bool(tensor.any()) for tensor in state_tensors):
        initial_values = [
            tensor.select(dim, 0).tolist()
            for tensor, dim in zip(state_tensors, layout.batch_dims, strict=True)
        ]
    image_size = _image_size(built) if source_kind == "images" else None
    return GraphPlan(
        graphs, layout, encoder_names, source_kind, image_size, initial_values
    )


def _describe(built: Built, section: str) -> str:
    """Name a component for messages: "decoder 'rnn' (plugin builtin-decoders)"."""
    component = getattr(built.recipe, section)
    provider = built.registry.provider(section, component.plugin)
    return f"{section} {component.plugin!r} (plugin {provider})"


def _source_kind(built: Built) -> str | None:
    """Return what the encoder reads: "tokens", "images", or None without one."""
    if built.model.encoder is None:
        return None
    if "source" in built.vocabularies:
        return "tokens"
    if _image_size(built) is not None:
        return "images"
    raise SeqkitError(
        f"cannot export {_describe(built, 'encoder')}: the run has no source "
        "vocabulary and neither the task nor the encoder has an image_size, so "
        "its input is neither token ids nor images"
    )


def _image_size(built: Built) -> int | None:
    size = getattr(built.task, "image_size", None)
    if size is None:
        size = getattr(built.model.encoder, "image_size", None)
    return None if size is None else int(size)


def _example(
    built: Built, source_kind: str | None, lengths: Sequence[int], seed: int
) -> Example:
    """Return an example batch of len(lengths) rows; `lengths` sizes token sources."""
    batch = len(lengths)
    inputs: tuple[Tensor, ...] = ()
    encoder_output = None
    with torch.no_grad():
        if source_kind is not None:
            inputs = encoder_inputs(built, source_kind, lengths, seed)
            encoder_output = built.model.encode(*inputs)
        state = built.model.decoder.init_state(batch, encoder_output)
    return Example(inputs, encoder_output, state)


def encoder_inputs(
    built: Built, source_kind: str, lengths: Sequence[int], seed: int
) -> tuple[Tensor, ...]:
    """Return random encoder inputs of len(lengths) rows.

    For token sources: ids (B, max(lengths)) padded with `<pad>`, and the
    lengths (B,). For images: pixels (B, 3, size, size) in [0, 1].
    """
    generator = torch.Generator().manual_seed(seed)
    batch = len(lengths)
    if source_kind == "images":
        size = _image_size(built)
        return (torch.rand(batch, 3, size, size, generator=generator),)
    vocab = built.vocabularies["source"]
    # Ids 0 to 3 are <pad>, <unk>, <bos> and <eos>, so ordinary tokens start at 4.
    low = 4 if len(vocab) > 4 else 0
    shape = (batch, max(lengths))
    source = torch.randint(low, len(vocab), shape, generator=generator)
    lengths_tensor = torch.tensor(list(lengths))
    pads = torch.arange(shape[1])[None, :] >= lengths_tensor[:, None]  # (B, S)
    return source.masked_fill(pads, vocab.pad_id), lengths_tensor


def _step_candidates(
    decoder: Decoder, encoder_output: EncoderOutput | None
) -> dict[str, Tensor]:
    """Return the encoder tensors a step might read: memory, mask, summary, keys."""
    from seqkit_builtins.decoders import RNNDecoder

    if encoder_output is None:
        return {}
    candidates = {}
    for name in ("memory", "mask", "summary"):
        value = getattr(encoder_output, name)
        if value is not None:
            candidates[name] = value
    attention = getattr(decoder, "attention", None)
    if (
        isinstance(decoder, RNNDecoder)
        and attention is not None
        and "memory" in candidates
    ):
        with torch.no_grad():
            keys = attention.prepare(candidates["memory"])
        # Luong's dot score uses the memory itself as the keys.
        if keys is not candidates["memory"]:
            candidates["keys"] = keys
    return candidates


def _used_encoder_tensors(
    decoder: Decoder,
    layout: StateLayout,
    token: Tensor,
    state_tensors: list[Tensor],
    candidates: dict[str, Tensor],
    component: str,
) -> list[str]:
    """Trace a step that takes every candidate and keep those its graph reads."""
    if not candidates:
        return []
    names = list(candidates)
    module = StepGraph(decoder, layout, names, returns_attention=False).eval()
    traced = _trace(module, (token, *state_tensors, *candidates.values()), component)
    # The graph's inputs are the module, the token, the state, the candidates.
    graph_inputs = list(traced.graph.inputs())[2 + len(state_tensors) :]
    return [
        name for name, value in zip(names, graph_inputs, strict=True) if value.uses()
    ]


def _without_cache(encoder_output: EncoderOutput | None) -> EncoderOutput | None:
    if encoder_output is None:
        return None
    return dataclasses.replace(encoder_output, cache={})


def _encoder_graph(
    built: Built,
    layout: StateLayout,
    encoder_names: list[str],
    example: Example,
    specs: _Specs,
) -> Graph:
    from seqkit_builtins.encoders import RNNEncoder

    encoder = built.model.encoder
    encode = encoder
    if type(encoder).forward is RNNEncoder.forward:
        encode = PaddedRNNEncoder(encoder).eval()
    module = EncoderGraph(encode, built.model.decoder, layout, encoder_names).eval()
    encoder_name = _describe(built, "encoder")
    decoder_name = _describe(built, "decoder")
    producers = {name: f"the initial state of {decoder_name}" for name in layout.names}
    for name in encoder_names:
        producers[name] = encoder_name
    if "keys" in encoder_names:
        producers["keys"] = _describe(built, "attention")
    return Graph(
        "encoder",
        module,
        example.inputs,
        specs.encoder_inputs(),
        [*specs.state(""), *specs.encoder_tensors(encoder_names)],
        f"{encoder_name} or the initial state of {decoder_name}",
        producers,
    )


STATE_DESCRIPTIONS = {
    "h": "the hidden state of each RNN layer",
    "c": "the LSTM cell state of each layer",
    "feed": "the previous step's attentional vector (input feeding)",
}
ENCODER_DESCRIPTIONS = {
    "memory": "the encoder's features per source step, which the decoder attends over",
    "mask": "True at real source steps, False at pads",
    "summary": "one encoder vector per row",
    "keys": "the attention keys, projected from the memory once per batch",
}


class _Specs:
    """Builds the TensorSpecs of a run's graph inputs and outputs."""

    def __init__(
        self,
        built: Built,
        layout: StateLayout,
        state_examples: list[Tensor],
        source_kind: str | None,
        candidates: dict[str, Tensor],
    ):
        self.built = built
        self.layout = layout
        self.state_examples = state_examples
        self.source_kind = source_kind
        self.candidates = candidates

    def _source_dims(self) -> dict[int, str]:
        # Images give a memory of fixed size: one step per feature map region.
        if self.source_kind == "tokens":
            return {0: BATCH, 1: SOURCE_LENGTH}
        return {0: BATCH}

    def _spec(
        self, name: str, example: Tensor, dims: dict[int, str], description: str
    ) -> TensorSpec:
        shape = [dims.get(dim, size) for dim, size in enumerate(example.shape)]
        dtype = str(example.dtype).removeprefix("torch.")
        return TensorSpec(name, shape, dtype, description)

    def encoder_inputs(self) -> list[TensorSpec]:
        if self.source_kind == "tokens":
            return [
                TensorSpec(
                    "source",
                    [BATCH, SOURCE_LENGTH],
                    "int64",
                    "source token ids, padded with <pad> after each row's length",
                ),
                TensorSpec(
                    "lengths",
                    [BATCH],
                    "int64",
                    "the number of real tokens in each source row, from 1 to "
                    "source_length",
                ),
            ]
        size = _image_size(self.built)
        return [
            TensorSpec(
                "images",
                [BATCH, 3, size, size],
                "float32",
                "RGB images with values in [0, 1]; the graph normalises them",
            )
        ]

    def state(self, prefix: str) -> list[TensorSpec]:
        role = "the state after the step" if prefix else "the decoder state"
        return [
            self._spec(
                prefix + name,
                example,
                {dim: BATCH},
                f"{role}: {STATE_DESCRIPTIONS.get(name, name)}",
            )
            for name, dim, example in zip(
                self.layout.names,
                self.layout.batch_dims,
                self.state_examples,
                strict=True,
            )
        ]

    def encoder_tensors(self, names: list[str]) -> list[TensorSpec]:
        specs = []
        for name in names:
            dims = {0: BATCH} if name == "summary" else self._source_dims()
            specs.append(
                self._spec(
                    name, self.candidates[name], dims, ENCODER_DESCRIPTIONS[name]
                )
            )
        return specs

    def token(self) -> TensorSpec:
        return TensorSpec(
            "token",
            [BATCH],
            "int64",
            "the previous token id of each row; <bos> at the first step",
        )

    def logits(self) -> TensorSpec:
        size = len(self.built.vocabularies["target"])
        return TensorSpec(
            "logits",
            [BATCH, size],
            "float32",
            "the unnormalised scores of the next token over the target vocabulary",
        )

    def attention(self, example: Tensor) -> TensorSpec:
        return self._spec(
            "attention",
            example,
            self._source_dims(),
            "the step's attention weights over the memory steps",
        )


# ---------------------------------------------------------------- writers


def _trace(module: nn.Module, example: tuple[Tensor, ...], component: str) -> Any:
    """Trace `module` on `example`, raising `SeqkitError` that names `component`."""
    with torch.no_grad(), warnings.catch_warnings():
        # torch 2.14 deprecates TorchScript with a FutureWarning. Tracing warns
        # about each Python value that it records as a constant, and the
        # comparison with the eager model catches a trace that they made wrong.
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        try:
            return torch.jit.trace(module, example, check_trace=False)
        except Exception as error:  # noqa: BLE001 - tracing raises many types
            raise SeqkitError(
                f"cannot export {component}: tracing it failed with "
                f"{type(error).__name__}: {_first_line(error)}"
            ) from None


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else "(no message)"


def _runtime_error(error: Exception) -> str:
    """Summarise an error raised by a saved graph in one line.

    TorchScript puts the reason last, after two tracebacks. The traceback of
    the original code names the line of the component that was traced.
    """
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    if len(lines) < 2 or "TorchScript interpreter" not in lines[0]:
        return f"{type(error).__name__}: {_first_line(error)}"
    summary = lines[-1]
    original = False
    for line in lines:
        if line.startswith("Traceback of TorchScript, original code"):
            original = True
        elif original and "/torch/" not in line and __file__ not in line:
            return f"{summary} (traced at {line})"
    return summary


def _save_torchscript(graph: Graph, path: Path) -> Runner:
    """Trace and save `graph`, and return a function that runs the saved file."""
    traced = _trace(graph.module, graph.example, graph.components)
    traced.save(str(path))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        loaded = torch.jit.load(str(path))

    def run(inputs: Sequence[Tensor]) -> list[Tensor]:
        with torch.no_grad():
            return list(loaded(*inputs))

    return run


def _save_onnx(graph: Graph, path: Path) -> Runner | None:
    """Export `graph` to ONNX, and return a function that runs the saved file.

    Returns None when onnxruntime is not installed to run it.
    """
    dynamic_axes = {}
    for spec in (*graph.inputs, *graph.outputs):
        named = {
            dim: size for dim, size in enumerate(spec.shape) if isinstance(size, str)
        }
        if named:
            dynamic_axes[spec.name] = named
    # This uses the TorchScript-based exporter because the torch.export-based
    # default of torch 2.14 fixes the source length of an RNN encoder. That
    # exporter computes the output shape of nn.LSTM by unrolling it over time.
    # NOTE: torch deprecates dynamo=False; a torch release without it needs
    # another way to keep the source length dynamic.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(
                graph.module,
                graph.example,
                str(path),
                input_names=[spec.name for spec in graph.inputs],
                output_names=[spec.name for spec in graph.outputs],
                dynamic_axes=dynamic_axes,
                dynamo=False,
            )
        except Exception as error:  # noqa: BLE001 - torch.onnx raises many types
            raise SeqkitError(
                f"cannot export {graph.components} to ONNX: torch.onnx.export "
                f"failed with {type(error).__name__}: {_first_line(error)}; "
                "try --format torchscript"
            ) from None

    if not _onnxruntime_installed():
        return None
    # Imported without catching ImportError: onnxruntime is installed, so an
    # error here is a broken install or a Ctrl-C while its C extension loads,
    # which Python may raise as ImportError.
    import onnxruntime

    options = onnxruntime.SessionOptions()
    # Level 4 (FATAL) stops onnxruntime from logging a failed run, which the
    # comparison reports in its own error.
    options.log_severity_level = 4
    session = onnxruntime.InferenceSession(
        str(path), options, providers=["CPUExecutionProvider"]
    )

    def run(inputs: Sequence[Tensor]) -> list[Tensor]:
        feed = {
            spec.name: tensor.numpy()
            for spec, tensor in zip(graph.inputs, inputs, strict=True)
        }
        return [torch.from_numpy(array) for array in session.run(None, feed)]

    return run


# ---------------------------------------------------------------- comparison


def compare_with_eager(
    built: Built, plan: GraphPlan, runners: dict[str, Runner]
) -> None:
    """Run the exported graphs and the eager model side by side on a new batch.

    The batch has other sizes than the traced example, and the step runs
    `CHECK_STEPS` times from `<bos>`, each side carrying its own state.
    Raises `SeqkitError` naming the component whose output differs.
    """
    decoder = built.model.decoder
    layout = plan.layout
    graphs = {graph.name: graph for graph in plan.graphs}
    batch = len(CHECK_SOURCE_LENGTHS)
    example = _example(built, plan.source_kind, CHECK_SOURCE_LENGTHS, seed=11)
    encoder_output = example.encoder_output
    state = example.state
    exported_encoder: list[Tensor] = []
    with torch.no_grad():
        if "encoder" in graphs:
            outputs = _run_graph(graphs["encoder"], runners, example.inputs, "")
            expected = layout.flatten(state)
            for name in plan.encoder_names:
                if name == "keys":
                    expected.append(decoder.attention.prepare(encoder_output.memory))
                else:
                    expected.append(getattr(encoder_output, name))
            # The encoder's tensors first: the initial state is computed from them.
            _compare(graphs["encoder"], outputs, expected, "", len(layout.names))
            exported_state = outputs[: len(layout.names)]
            exported_encoder = outputs[len(layout.names) :]
        else:
            values = plan.initial_values or [None] * len(layout.names)
            exported_state = [
                _initial_tensor(tensor, dim, value)
                for tensor, dim, value in zip(
                    layout.flatten(state), layout.batch_dims, values, strict=True
                )
            ]

        token = torch.full((batch,), built.vocabularies["target"].bos_id)
        for step in range(1, CHECK_STEPS + 1):
            eager = decoder.step(token, state, encoder_output)
            inputs = [token, *exported_state, *exported_encoder]
            outputs = _run_graph(graphs["step"], runners, inputs, f" at step {step}")
            expected = [eager.logits, *layout.flatten(eager.state)]
            if eager.attention is not None:
                expected.append(eager.attention)
            _compare(graphs["step"], outputs, expected, f" at step {step}")
            token = eager.logits.argmax(dim=-1)
            state = eager.state
            exported_state = outputs[1 : 1 + len(layout.names)]


def _initial_tensor(tensor: Tensor, dim: int, values: Any) -> Tensor:
    """Return the initial state as the manifest describes it: zeros or one row."""
    if values is None:
        return torch.zeros_like(tensor)
    row = torch.tensor(values, dtype=tensor.dtype).unsqueeze(dim)
    return row.expand_as(tensor).contiguous()


def _run_graph(
    graph: Graph, runners: dict[str, Runner], inputs: Sequence[Tensor], where: str
) -> list[Tensor]:
    try:
        return runners[graph.name](inputs)
    except Exception as error:  # noqa: BLE001 - TorchScript and onnxruntime raise many types
        raise SeqkitError(
            f"cannot export {graph.components}: the exported {graph.name} graph "
            f"failed on a batch of {len(inputs[0])}{where} with "
            f"{_runtime_error(error)}; a size or a Python "
            "value that tracing recorded as a constant is the usual cause"
        ) from None


def _compare(
    graph: Graph,
    actual: Sequence[Tensor],
    expected: Sequence[Tensor],
    where: str,
    first: int = 0,
) -> None:
    """Raise `SeqkitError` naming the first output that differs from the eager one.

    The outputs are checked from index `first` to the end, then from 0.
    """
    if len(actual) != len(expected):
        raise SeqkitError(
            f"cannot export {graph.components}: the exported {graph.name} graph "
            f"returned {len(actual)} tensors, the eager model {len(expected)}"
        )
    batch = len(CHECK_SOURCE_LENGTHS)
    order = [*range(first, len(actual)), *range(first)]
    for index in order:
        spec, exported, eager = graph.outputs[index], actual[index], expected[index]
        component = graph.producers.get(spec.name, graph.components)
        if exported.shape != eager.shape:
            raise SeqkitError(
                f"cannot export {component}: the exported {graph.name} graph "
                f"returns {spec.name!r} with shape {tuple(exported.shape)} for a batch "
                f"of {batch}{where}, the eager model {tuple(eager.shape)}; a size "
                "that tracing recorded as a constant is the usual cause"
            )
        if eager.is_floating_point():
            exported = exported.to(eager.dtype)
            close = torch.allclose(exported, eager, rtol=CHECK_RTOL, atol=CHECK_ATOL)
            difference = f"by up to {float((exported - eager).abs().max()):.3g}"
        else:
            close = torch.equal(exported.to(eager.dtype), eager)
            difference = "in its values"
        if not close:
            raise SeqkitError(
                f"cannot export {component}: {spec.name!r} of the exported "
                f"{graph.name} graph differs from the eager model {difference} on "
                f"a batch of {batch}{where}; a Python branch on tensor values, "
                "which tracing records as a constant, is the usual cause"
            )


# ---------------------------------------------------------------- manifest


def build_manifest(
    built: Built, plan: GraphPlan, format: str, folder: Path, run_dir: Path
) -> dict[str, Any]:
    """Return the manifest: graphs, inputs, outputs, state and special tokens."""
    from seqkit import __version__

    recipe = built.recipe
    vocab = built.vocabularies["target"]
    graphs = {
        graph.name: {
            "file": f"{graph.name}{FORMATS[format]}",
            "inputs": [dataclasses.asdict(spec) for spec in graph.inputs],
            "outputs": [dataclasses.asdict(spec) for spec in graph.outputs],
        }
        for graph in plan.graphs
    }
    manifest: dict[str, Any] = {
        "manifest_version": MANIFEST_VERSION,
        "format": format,
        "seqkit_version": __version__,
        "torch_version": torch.__version__,
        "run": str(run_dir.resolve()),
        "task": built.task_name,
        "components": {
            section: getattr(recipe, section).plugin
            for section in ("encoder", "decoder", "attention")
            if getattr(recipe, section) is not None
        },
        "vocabulary_file": VOCABULARY,
        "vocabulary_sizes": {
            name: len(vocabulary) for name, vocabulary in built.vocabularies.items()
        },
        "special_tokens": {
            "<pad>": vocab.pad_id,
            "<unk>": vocab.unk_id,
            "<bos>": vocab.bos_id,
            "<eos>": vocab.eos_id,
        },
        # seqkit's text generation, translation and captioning set these
        # logits to -inf before choosing a token.
        "banned_tokens": [vocab.pad_id, vocab.unk_id, vocab.bos_id],
        "tokenizer": _component_table(recipe.tokenizer),
        "graphs": graphs,
        "state": _state_entries(plan),
    }
    if recipe.source_tokenizer is not None:
        manifest["source_tokenizer"] = _component_table(recipe.source_tokenizer)
    if plan.source_kind == "tokens":
        manifest["source_max_tokens"] = recipe.train.seq_len - 1
    if plan.image_size is not None:
        manifest["image_size"] = plan.image_size
    if built.task_name in ("translation", "captioning"):
        manifest["max_new_tokens"] = recipe.train.seq_len
        manifest["sampler"] = recipe.sampler.plugin
        manifest["length_limits"] = _length_limits(recipe.sampler.options)
    if format == "onnx":
        manifest["onnx_opset"] = _onnx_opset(folder / f"step{FORMATS[format]}")
    return manifest


def _state_entries(plan: GraphPlan) -> list[dict[str, Any]]:
    """Describe each state tensor: its step input and output, batch dim, start."""
    entries = []
    layout = plan.layout
    for index, (name, dim) in enumerate(
        zip(layout.names, layout.batch_dims, strict=True)
    ):
        entry: dict[str, Any] = {
            "input": name,
            "output": f"new_{name}",
            "batch_dim": dim,
        }
        if plan.source_kind is not None:
            entry["initial"] = "encoder"
        elif plan.initial_values is None:
            entry["initial"] = "zeros"
        else:
            entry["initial"] = "values"
            entry["values"] = plan.initial_values[index]
        entries.append(entry)
    return entries


def _length_limits(options: Any) -> dict[str, Any]:
    """Return the options in `LENGTH_LIMITS` that the sampler has; None is unset."""
    return {
        name: getattr(options, name) for name in LENGTH_LIMITS if hasattr(options, name)
    }


def _component_table(component: Any) -> dict[str, Any]:
    return {"plugin": component.plugin, **schema.to_table(component.options)}


def _onnx_opset(path: Path) -> int | None:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return int(entry.version)
    return None
