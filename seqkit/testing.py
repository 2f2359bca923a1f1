"""Contract checks for plugin authors: run a component through the rules of its
interface that seqkit's models, tasks and samplers rely on.

Each check runs the component in eval mode without gradients, restores its
training mode afterwards and raises `ContractError` at the first rule it finds
broken. The message names the component class, the rule and the measured
values. A test suite calls them on small instances::

    from seqkit.testing import check_decoder, check_encoder, check_sampler

    encoded = check_encoder(encoder, source, lengths)
    check_decoder(decoder, tokens, encoded)
    check_sampler(MySampler(MySampler.Options(), None))

Positions and rows in messages count from 0. Tolerances are absolute for
values up to 1 in magnitude and relative to the largest magnitude compared
above that, so large logits or image features get the same relative slack.

Shapes: B batch, T target steps, S source steps, S' memory steps, H encoder
width, V vocabulary size, N rows picked by `select_state`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from seqkit.interfaces import (
    Attention,
    Decoder,
    DecoderOutput,
    Encoder,
    EncoderOutput,
    Generation,
    Sampler,
    State,
    StepModel,
)
from seqkit.vocab import Vocabulary

__all__ = [
    "ContractError",
    "DecoderReport",
    "check_attention",
    "check_decoder",
    "check_encoder",
    "check_sampler",
]

# Extra pad steps appended to a token batch to check that padding changes nothing.
EXTRA_PAD_STEPS = 3
# Absolute tolerance on sequence scores, which sum several float32 log-probabilities.
SCORE_ATOL = 1e-4


class ContractError(AssertionError):
    """A component breaks a rule of its interface.

    component: the class name of the component.
    clause: a short name of the rule, such as "step equals forward".
    """

    def __init__(self, component: str, clause: str, message: str):
        super().__init__(message)
        self.component = component
        self.clause = clause


@dataclass(frozen=True)
class DecoderReport:
    """The measurements of `check_decoder`, one maximum difference per check.

    Each difference is the maximum absolute difference between two logits, or
    two attention weights, that the contract requires to be equal.
    """

    vocab_size: int
    # True when the decoder returns attention weights.
    attends: bool
    step_difference: float
    split_difference: float
    select_difference: float
    row_difference: float


# ------------------------------------------------------------------ helpers


@contextmanager
def _evaluating(module: nn.Module) -> Iterator[None]:
    """Run the block with `module` in eval mode and without gradients.

    Afterwards every submodule gets back its own training flag, so a frozen
    backbone kept in eval mode inside a training model stays that way.
    """
    modes = [(submodule, submodule.training) for submodule in module.modules()]
    module.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        for submodule, mode in modes:
            submodule.training = mode


def _difference(actual: Tensor, expected: Tensor) -> float:
    """Return the maximum absolute difference, NaN when either side has a NaN."""
    if expected.numel() == 0:
        return 0.0
    return float((actual.double() - expected.double()).abs().max())


def _tolerance(expected: Tensor, atol: float) -> float:
    """Return `atol`, scaled by the largest magnitude in `expected` above 1."""
    if expected.numel() == 0:
        return atol
    scale = float(expected.double().abs().max())
    return atol * max(1.0, scale) if math.isfinite(scale) else atol


def _within(difference: float, tolerance: float) -> bool:
    # Written as a negated comparison so that a NaN difference fails.
    return not (difference > tolerance or math.isnan(difference))


def _shape(tensor: Tensor) -> str:
    return str(tuple(tensor.shape))


def _leaves(state: Any) -> list[Tensor]:
    """Return the tensors in a state made of tensors, tuples and lists."""
    if isinstance(state, Tensor):
        return [state]
    if isinstance(state, tuple | list):
        return [leaf for part in state for leaf in _leaves(part)]
    if isinstance(state, dict):
        return [leaf for part in state.values() for leaf in _leaves(part)]
    return []


def _first_bad_row(values: Tensor) -> int:
    """Return the first row (dim 0) of `values` with a non-finite entry."""
    bad = ~torch.isfinite(values.reshape(values.shape[0], -1)).all(dim=1)
    return int(bad.nonzero()[0, 0])


def _check_finite(component: str, what: str, values: Tensor) -> None:
    finite = torch.isfinite(values)
    if not bool(finite.all()):
        count = int((~finite).sum())
        raise ContractError(
            component,
            "finite values",
            f"{component} {what} has {count} of {values.numel()} values that are "
            f"NaN or infinite, the first in row {_first_bad_row(values)}",
        )


# ------------------------------------------------------------------ encoders


def check_encoder(
    encoder: Encoder,
    source: Tensor,
    lengths: Tensor | None = None,
    *,
    pad_id: int | None = None,
    atol: float = 1e-5,
) -> EncoderOutput:
    """Check an encoder on `source` and return its output for the whole batch.

    `source` is token ids (B, S) with `lengths` (B,), or images (B, 3, H, W).
    Without `lengths`, every step that is not `pad_id` is real. `pad_id`
    defaults to the encoder's `pad_id` attribute, else `Vocabulary.pad_id`.

    Checks:

    - The result is an `EncoderOutput` with finite values.
    - The summary is (B, output_size) when the encoder has `output_size`,
      else (B, H).
    - The memory, when present, is (B, S', H) with the summary's width H.
    - The mask, when present, is (B, S') bool with a True step in every row.
    - Token sources: the memory has one step per token, and the mask is True
      exactly at the first `lengths` steps. A batch with pad steps must have
      a mask when it has a memory.
    - Token sources: each row encoded alone without padding, and the batch
      with `EXTRA_PAD_STEPS` more pad steps, give the same summary and the
      same memory at the real steps, within `atol`.
    - Images: each image encoded alone gives the same summary and memory.
    """
    component = type(encoder).__name__
    is_tokens = source.dim() == 2 and not source.is_floating_point()
    if not is_tokens and not (source.dim() == 4 and source.shape[1] == 3):
        raise ValueError(
            "source must be token ids (B, S) of an integer type or images "
            f"(B, 3, H, W), got shape {_shape(source)} of {source.dtype}"
        )
    if source.shape[0] < 1:
        raise ValueError("source must have at least one row")

    with _evaluating(encoder):
        output = _encode(encoder, component, source, lengths)
        _check_encoder_shapes(encoder, component, output, source.shape[0])
        if is_tokens:
            if pad_id is None:
                pad_id = getattr(encoder, "pad_id", Vocabulary.pad_id)
            real_lengths = _token_lengths(source, lengths, pad_id)
            _check_token_mask(component, output, real_lengths, source.shape[1])
            _check_rows_alone_tokens(
                encoder, component, source, real_lengths, output, atol
            )
            _check_extra_padding(
                encoder, component, source, real_lengths, output, pad_id, atol
            )
        else:
            _check_rows_alone_images(encoder, component, source, output, atol)
    return output


def _encode(
    encoder: Encoder, component: str, source: Tensor, lengths: Tensor | None
) -> EncoderOutput:
    output = encoder(source, lengths)
    if not isinstance(output, EncoderOutput):
        raise ContractError(
            component,
            "returns an EncoderOutput",
            f"{component}.forward returned {type(output).__name__}, expected an "
            "EncoderOutput",
        )
    return output


def _check_encoder_shapes(
    encoder: Encoder, component: str, output: EncoderOutput, batch: int
) -> None:
    """Check the shapes, dtypes and finiteness of `output`."""
    summary = output.summary
    if not isinstance(summary, Tensor) or summary.dim() != 2:
        shape = _shape(summary) if isinstance(summary, Tensor) else repr(summary)
        raise ContractError(
            component,
            "summary shape",
            f"{component} summary has shape {shape}, expected (B, H)",
        )
    width = getattr(encoder, "output_size", None)
    expected = (batch, summary.shape[1] if width is None else width)
    if tuple(summary.shape) != expected:
        raise ContractError(
            component,
            "summary shape",
            f"{component} summary has shape {_shape(summary)}, expected "
            f"(B, output_size) = {expected}",
        )
    width = expected[1]
    _check_finite(component, "summary", summary)

    memory = output.memory
    if memory is not None:
        if memory.dim() != 3 or memory.shape[0] != batch or memory.shape[2] != width:
            raise ContractError(
                component,
                "memory shape",
                f"{component} memory has shape {_shape(memory)}, expected "
                f"(B, S', H) with B = {batch} and H = {width}, the summary's width",
            )
        _check_finite(component, "memory", memory)

    mask = output.mask
    if mask is not None:
        steps = memory.shape[1] if memory is not None else mask.shape[-1]
        if mask.dtype != torch.bool or tuple(mask.shape) != (batch, steps):
            raise ContractError(
                component,
                "mask shape",
                f"{component} mask has shape {_shape(mask)} and dtype {mask.dtype}, "
                f"expected (B, S') = {(batch, steps)} of torch.bool",
            )
        empty = ~mask.any(dim=1)
        if bool(empty.any()):
            raise ContractError(
                component,
                "mask shape",
                f"{component} mask has no real step in row "
                f"{int(empty.nonzero()[0, 0])}, so attention over it is undefined",
            )


def _token_lengths(source: Tensor, lengths: Tensor | None, pad_id: int) -> Tensor:
    """Return the real length of each row on the CPU, checked against `source`."""
    if lengths is None:
        lengths = (source != pad_id).sum(dim=1)
    lengths = lengths.cpu().long()
    steps = source.shape[1]
    if tuple(lengths.shape) != (source.shape[0],):
        raise ValueError(
            f"lengths must be (B,) = ({source.shape[0]},), got {_shape(lengths)}"
        )
    if bool((lengths < 1).any()) or bool((lengths > steps).any()):
        raise ValueError(
            f"every length must be in [1, {steps}], got {lengths.tolist()}"
        )
    return lengths


def _check_token_mask(
    component: str, output: EncoderOutput, lengths: Tensor, steps: int
) -> None:
    memory, mask = output.memory, output.mask
    if memory is not None and memory.shape[1] != steps:
        raise ContractError(
            component,
            "memory shape",
            f"{component} memory has {memory.shape[1]} steps for a token source "
            f"of {steps} steps, expected one memory step per token",
        )
    padded = bool((lengths < steps).any())
    if memory is not None and mask is None and padded:
        raise ContractError(
            component,
            "mask at real steps",
            f"{component} returns a memory but no mask for a batch with pad steps "
            f"(lengths {lengths.tolist()}), so a decoder would attend to pad steps",
        )
    if mask is None:
        return
    positions = torch.arange(mask.shape[1])
    expected = positions[None, :] < lengths[:, None]  # (B, S')
    wrong = mask.cpu() != expected
    if bool(wrong.any()):
        row = int(wrong.any(dim=1).nonzero()[0, 0])
        raise ContractError(
            component,
            "mask at real steps",
            f"{component} mask is not True exactly at the real steps: row {row} "
            f"has length {int(lengths[row])} but mask "
            f"{mask[row].int().tolist()}",
        )


def _check_rows_alone_tokens(
    encoder: Encoder,
    component: str,
    source: Tensor,
    lengths: Tensor,
    output: EncoderOutput,
    atol: float,
) -> None:
    for row in range(source.shape[0]):
        length = int(lengths[row])
        alone = _encode(
            encoder, component, source[row : row + 1, :length], lengths[row : row + 1]
        )
        _compare_encoded(
            component,
            f"row {row} encoded alone without padding",
            alone,
            output,
            row,
            length,
            atol,
        )


def _check_extra_padding(
    encoder: Encoder,
    component: str,
    source: Tensor,
    lengths: Tensor,
    output: EncoderOutput,
    pad_id: int,
    atol: float,
) -> None:
    pads = source.new_full((source.shape[0], EXTRA_PAD_STEPS), pad_id)
    longer = torch.cat([source, pads], dim=1)  # (B, S + EXTRA_PAD_STEPS)
    padded = _encode(encoder, component, longer, lengths)
    _check_token_mask(component, padded, lengths, longer.shape[1])
    for row in range(source.shape[0]):
        _compare_encoded(
            component,
            f"row {row} with {EXTRA_PAD_STEPS} more pad steps",
            padded.select(torch.tensor([row], device=source.device)),
            output,
            row,
            int(lengths[row]),
            atol,
        )


def _check_rows_alone_images(
    encoder: Encoder,
    component: str,
    source: Tensor,
    output: EncoderOutput,
    atol: float,
) -> None:
    steps = output.memory.shape[1] if output.memory is not None else 0
    for row in range(source.shape[0]):
        alone = _encode(encoder, component, source[row : row + 1], None)
        _compare_encoded(
            component, f"image {row} encoded alone", alone, output, row, steps, atol
        )


def _compare_encoded(
    component: str,
    case: str,
    alone: EncoderOutput,
    batched: EncoderOutput,
    row: int,
    length: int,
    atol: float,
) -> None:
    """Compare a one-row output `alone` with row `row` of `batched`.

    The memory is compared at the first `length` steps, the real ones.
    """
    expected = batched.summary[row : row + 1]
    if tuple(alone.summary.shape) != tuple(expected.shape):
        raise ContractError(
            component,
            "padding invariance",
            f"{component} summary of {case} has shape {_shape(alone.summary)}, "
            f"expected {_shape(expected)}",
        )
    difference = _difference(alone.summary, expected)
    tolerance = _tolerance(expected, atol)
    if not _within(difference, tolerance):
        raise ContractError(
            component,
            "padding invariance",
            f"{component} summary of {case} differs from the batch by "
            f"{difference:.1e} (tolerance {tolerance:.2g})",
        )
    if batched.memory is None:
        return
    if alone.memory is None or alone.memory.shape[1] < length:
        raise ContractError(
            component,
            "padding invariance",
            f"{component} memory of {case} has shape "
            f"{_shape(alone.memory) if alone.memory is not None else None}, "
            f"expected at least {length} steps",
        )
    expected = batched.memory[row, :length]
    difference = _difference(alone.memory[0, :length], expected)
    tolerance = _tolerance(expected, atol)
    if not _within(difference, tolerance):
        raise ContractError(
            component,
            "padding invariance",
            f"{component} memory of {case} differs from the batch at the real "
            f"steps by {difference:.1e} (tolerance {tolerance:.2g})",
        )


# ------------------------------------------------------------------ decoders


def check_decoder(
    decoder: Decoder,
    tokens: Tensor,
    encoder_output: EncoderOutput | None = None,
    *,
    atol: float = 1e-5,
    vocab_size: int | None = None,
) -> DecoderReport:
    """Check a decoder on `tokens` (B, T), T >= 2, and return what it measured.

    Each check starts from a fresh `init_state(B, encoder_output)`, and
    logits must agree within `atol`:

    - `forward` returns a `DecoderOutput` with finite logits (B, T, V), with
      V equal to `vocab_size` when it is given (pass `len(context.vocab)`), and
      neither `forward` nor `step` changes the state it was given.
    - `step`, token by token, gives the logits and attention weights of
      `forward` at every position.
    - `forward` over the first T // 2 tokens, then over the rest from the
      returned state, gives the logits of one `forward` call.
    - `select_state` with an index that reverses the rows and repeats the
      last one (N = B + 1 rows) gives a state whose steps match those rows of
      `forward`.
    - Each row decoded alone gives the logits of the batch.
    - Attention weights, when `forward` returns them, are (B, T, S'),
      non-negative and exactly 0 at masked source steps, and they sum to 1
      over the real ones.
    """
    component = type(decoder).__name__
    if tokens.dim() != 2 or tokens.is_floating_point():
        raise ValueError(
            f"tokens must be integer ids (B, T), got shape {_shape(tokens)} of "
            f"{tokens.dtype}"
        )
    batch, steps = tokens.shape
    if batch < 1 or steps < 2:
        raise ValueError(
            f"tokens need at least 1 row and 2 steps, got shape {_shape(tokens)}"
        )

    with _evaluating(decoder):
        whole = _forward(decoder, component, tokens, encoder_output, "forward")
        if vocab_size is not None and whole.logits.shape[-1] != vocab_size:
            raise ContractError(
                component,
                "logits over the vocabulary",
                f"{component} forward returned logits of shape "
                f"{_shape(whole.logits)}; the last size must be the vocabulary "
                f"size {vocab_size}",
            )
        vocab_size = whole.logits.shape[-1]
        if whole.attention is not None:
            _check_decoder_weights(component, whole.attention, encoder_output, atol)
        step_difference = _check_steps(
            decoder, component, tokens, encoder_output, whole, atol
        )
        split_difference = _check_split(
            decoder, component, tokens, encoder_output, whole, atol
        )
        select_difference = _check_select(
            decoder, component, tokens, encoder_output, whole, atol
        )
        row_difference = _check_rows_alone(
            decoder, component, tokens, encoder_output, whole, atol
        )
    return DecoderReport(
        vocab_size=vocab_size,
        attends=whole.attention is not None,
        step_difference=step_difference,
        split_difference=split_difference,
        select_difference=select_difference,
        row_difference=row_difference,
    )


def _forward(
    decoder: Decoder,
    component: str,
    tokens: Tensor,
    encoder_output: EncoderOutput | None,
    case: str,
    state: State = None,
) -> DecoderOutput:
    """Run `forward` from `state` (default: a fresh initial state) and check it."""
    batch, steps = tokens.shape
    if state is None:
        state = decoder.init_state(batch, encoder_output)
    before = [leaf.clone() for leaf in _leaves(state)]
    output = decoder(tokens, state, encoder_output)
    if not isinstance(output, DecoderOutput):
        raise ContractError(
            component,
            "returns a DecoderOutput",
            f"{component}.forward returned {type(output).__name__}, expected a "
            "DecoderOutput",
        )
    _check_unchanged(component, "forward", state, before)
    logits = output.logits
    if logits.dim() != 3 or tuple(logits.shape[:2]) != (batch, steps):
        raise ContractError(
            component,
            "logits shape",
            f"{component}.forward logits ({case}) have shape {_shape(logits)}, "
            f"expected (B, T, V) with B = {batch} and T = {steps}",
        )
    _check_finite(component, f"forward logits ({case})", logits)
    return output


def _same_values(old: Tensor, new: Tensor) -> bool:
    """Return True when the tensors are equal, NaN matching NaN."""
    equal = old == new
    if old.is_floating_point():
        equal |= old.isnan() & new.isnan()
    return bool(equal.all())


def _check_unchanged(
    component: str, method: str, state: State, before: list[Tensor]
) -> None:
    after = _leaves(state)
    for old, new in zip(before, after, strict=True):
        if old.shape != new.shape or not _same_values(old, new):
            raise ContractError(
                component,
                "state not modified in place",
                f"{component}.{method} changed the state it was given in place; "
                "beam search and sampling reuse a state after stepping it, so "
                "return a new state instead",
            )


def _check_steps(
    decoder: Decoder,
    component: str,
    tokens: Tensor,
    encoder_output: EncoderOutput | None,
    whole: DecoderOutput,
    atol: float,
) -> float:
    batch = tokens.shape[0]
    state = decoder.init_state(batch, encoder_output)
    largest = 0.0
    for position in range(tokens.shape[1]):
        before = [leaf.clone() for leaf in _leaves(state)]
        output = decoder.step(tokens[:, position], state, encoder_output)
        _check_unchanged(component, "step", state, before)
        largest = max(
            largest,
            _compare_step(
                component, output, whole, position, torch.arange(batch), "step", atol
            ),
        )
        state = output.state
    return largest


def _compare_step(
    component: str,
    output: DecoderOutput,
    whole: DecoderOutput,
    position: int,
    rows: Tensor,
    case: str,
    atol: float,
) -> float:
    """Compare one step's output with rows `rows` of `whole` at `position`."""
    clause = "select_state" if case != "step" else "step equals forward"
    if not isinstance(output, DecoderOutput):
        raise ContractError(
            component,
            clause,
            f"{component}.step returned {type(output).__name__}, expected a "
            "DecoderOutput",
        )

    rows = rows.to(whole.logits.device)
    expected = whole.logits.index_select(0, rows)[:, position]  # (N, V)
    if tuple(output.logits.shape) != tuple(expected.shape):
        raise ContractError(
            component,
            clause,
            f"{component}.{case} at position {position} returned logits of shape "
            f"{_shape(output.logits)}, expected {_shape(expected)}",
        )
    difference = _difference(output.logits, expected)
    tolerance = _tolerance(expected, atol)
    if not _within(difference, tolerance):
        raise ContractError(
            component,
            clause,
            f"{component}.{case} at position {position} differs from forward by "
            f"{difference:.1e} (tolerance {tolerance:.2g})",
        )
    weight_difference = _compare_step_weights(
        component, clause, output, whole, position, rows, case, atol
    )
    return max(difference, weight_difference)


def _compare_step_weights(
    component: str,
    clause: str,
    output: DecoderOutput,
    whole: DecoderOutput,
    position: int,
    rows: Tensor,
    case: str,
    atol: float,
) -> float:
    """Compare one step's attention weights with `whole`, as `_compare_step`."""
    if whole.attention is None:
        if output.attention is not None:
            raise ContractError(
                component,
                clause,
                f"{component}.step returns attention weights but forward returns none",
            )
        return 0.0
    if output.attention is None:
        raise ContractError(
            component,
            clause,
            f"{component}.forward returns attention weights but step returns none",
        )
    expected = whole.attention.index_select(0, rows)[:, position]  # (N, S')
    if tuple(output.attention.shape) != tuple(expected.shape):
        raise ContractError(
            component,
            clause,
            f"{component}.{case} at position {position} returned attention weights "
            f"of shape {_shape(output.attention)}, expected {_shape(expected)}",
        )
    weight_difference = _difference(output.attention, expected)
    if not _within(weight_difference, atol):
        raise ContractError(
            component,
            clause,
            f"{component}.{case} attention weights at position {position} differ "
            f"from forward by {weight_difference:.1e} (tolerance {atol:.2g})",
        )
    return weight_difference


def _check_split(
    decoder: Decoder,
    component: str,
    tokens: Tensor,
    encoder_output: EncoderOutput | None,
    whole: DecoderOutput,
    atol: float,
) -> float:
    half = tokens.shape[1] // 2
    first = _forward(decoder, component, tokens[:, :half], encoder_output, "first half")
    second = _forward(
        decoder,
        component,
        tokens[:, half:],
        encoder_output,
        "second half",
        state=first.state,
    )
    logits = torch.cat([first.logits, second.logits], dim=1)  # (B, T, V)
    largest = 0.0
    for position in range(tokens.shape[1]):
        expected = whole.logits[:, position]
        difference = _difference(logits[:, position], expected)
        tolerance = _tolerance(expected, atol)
        if not _within(difference, tolerance):
            raise ContractError(
                component,
                "state carried",
                f"{component}.forward does not carry the state: positions "
                f"0-{half - 1} and then {half}-{tokens.shape[1] - 1} from the "
                f"returned state differ from one forward call at position "
                f"{position} by {difference:.1e} (tolerance {tolerance:.2g})",
            )
        largest = max(largest, difference)
    return largest


def _check_select(
    decoder: Decoder,
    component: str,
    tokens: Tensor,
    encoder_output: EncoderOutput | None,
    whole: DecoderOutput,
    atol: float,
) -> float:
    batch, steps = tokens.shape
    half = steps // 2
    prefix = _forward(decoder, component, tokens[:, :half], encoder_output, "prefix")
    # Reverse the rows and repeat the last one, so the index is a permutation
    # with a repetition and has more rows than the batch.
    order = [*reversed(range(batch)), batch - 1]
    index = torch.tensor(order, device=tokens.device)
    try:
        state = decoder.select_state(prefix.state, index)
    except (RuntimeError, ValueError, IndexError) as error:
        raise ContractError(
            component,
            "select_state",
            f"{component}.select_state with index {order} raised "
            f"{type(error).__name__}: {error}",
        ) from error
    _check_selected_shapes(component, prefix.state, state, batch, len(order), order)

    picked = None if encoder_output is None else encoder_output.select(index)
    largest = 0.0
    case = f"step after select_state with index {order}"
    for position in range(half, steps):
        try:
            output = decoder.step(tokens[index, position], state, picked)
        except (RuntimeError, ValueError, IndexError) as error:
            raise ContractError(
                component,
                "select_state",
                f"{component}.{case} at position {position} raised "
                f"{type(error).__name__}: {error}",
            ) from error
        largest = max(
            largest,
            _compare_step(component, output, whole, position, index, case, atol),
        )
        state = output.state
    return largest


def _check_selected_shapes(
    component: str,
    state: State,
    selected: State,
    batch: int,
    rows: int,
    order: list[int],
) -> None:
    """Check that some tensor of the state went from `batch` rows to `rows`."""
    before, after = _leaves(state), _leaves(selected)
    if not before:
        return
    if len(before) != len(after):
        raise ContractError(
            component,
            "select_state",
            f"{component}.select_state with index {order} returned a state of "
            f"{len(after)} tensors, expected {len(before)} like the state given",
        )
    for old, new in zip(before, after, strict=True):
        if old.dim() != new.dim():
            continue
        changed = [
            dim
            for dim in range(old.dim())
            if old.shape[dim] == batch and new.shape[dim] == rows
        ]
        if changed:
            return
    raise ContractError(
        component,
        "select_state",
        f"{component}.select_state with index {order} returned a state whose "
        f"tensors keep their {batch} rows, expected {rows} rows in the batch "
        "dimension",
    )


def _check_rows_alone(
    decoder: Decoder,
    component: str,
    tokens: Tensor,
    encoder_output: EncoderOutput | None,
    whole: DecoderOutput,
    atol: float,
) -> float:
    largest = 0.0
    for row in range(tokens.shape[0]):
        index = torch.tensor([row], device=tokens.device)
        picked = None if encoder_output is None else encoder_output.select(index)
        alone = _forward(decoder, component, tokens[row : row + 1], picked, "one row")
        expected = whole.logits[row : row + 1]
        difference = _difference(alone.logits, expected)
        tolerance = _tolerance(expected, atol)
        if not _within(difference, tolerance):
            raise ContractError(
                component,
                "rows independent",
                f"{component}.forward on row {row} alone differs from the batch "
                f"by {difference:.1e} (tolerance {tolerance:.2g})",
            )
        largest = max(largest, difference)
    return largest


def _check_decoder_weights(
    component: str,
    weights: Tensor,
    encoder_output: EncoderOutput | None,
    atol: float,
) -> None:
    memory = None if encoder_output is None else encoder_output.memory
    mask = None if encoder_output is None else encoder_output.mask
    if memory is not None:
        steps = memory.shape[1]
    elif mask is not None:
        steps = mask.shape[1]
    else:
        steps = weights.shape[-1]
    _check_weights(component, "forward", weights, mask, steps, atol)


def _check_weights(
    component: str,
    method: str,
    weights: Tensor,
    mask: Tensor | None,
    steps: int,
    atol: float,
) -> None:
    """Check attention weights (B, T, S') against the source mask (B, S')."""
    if weights.dim() != 3 or weights.shape[2] != steps:
        raise ContractError(
            component,
            "attention weights",
            f"{component}.{method} attention weights have shape {_shape(weights)}, "
            f"expected (B, T, S') with S' = {steps}",
        )
    _check_finite(component, f"{method} attention weights", weights)

    batch, positions = weights.shape[0], weights.shape[1]
    smallest = float(weights.min())
    if smallest < 0:
        raise ContractError(
            component,
            "attention weights",
            f"{component}.{method} attention weights are negative (minimum "
            f"{smallest:.2g})",
        )
    if mask is None:
        real = torch.ones(batch, 1, steps, dtype=torch.bool, device=weights.device)
    else:
        real = mask[:, None, :].to(weights.device)  # (B, 1, S')
    real = real.expand(batch, positions, steps)

    leaked = weights.masked_fill(real, 0.0)
    if bool((leaked != 0).any()):
        row, position, step = (leaked != 0).nonzero()[0].tolist()
        raise ContractError(
            component,
            "attention weights",
            f"{component}.{method} attention weight at masked source step {step} "
            f"(row {row}, position {position}) is "
            f"{float(weights[row, position, step]):.2g}, expected exactly 0",
        )

    sums = weights.masked_fill(~real, 0.0).double().sum(dim=-1)  # (B, T)
    error = (sums - 1).abs()
    if not _within(float(error.max()), atol):
        row, position = divmod(int(error.argmax()), positions)
        raise ContractError(
            component,
            "attention weights",
            f"{component}.{method} attention weights sum to "
            f"{float(sums[row, position]):.6g} over the real source steps of row "
            f"{row} at position {position}, expected 1 (tolerance {atol:.2g})",
        )


# ------------------------------------------------------------------ attention


def check_attention(
    attention_cls: type[Attention],
    options: Any,
    query_size: int,
    memory_size: int,
    *,
    atol: float = 1e-5,
    seed: int = 0,
) -> Attention:
    """Build `attention_cls(options, query_size, memory_size)`, check it and return it.

    The inputs are random, drawn with `seed`: a memory of 3 rows of 5 steps
    with 5, 3 and 1 real steps, and 2 query steps. Checks:

    - `prepare` returns keys (B, S', K).
    - `forward` returns a finite context (B, T, memory_size) and weights
      (B, T, S').
    - The weights are non-negative and exactly 0 at masked steps, and they
      sum to 1 over the real steps, also without a mask.
    - The context is the weighted sum of the memory.
    - Each query step attended alone gives the same context and weights.
    - Other memory values at masked steps change neither.
    """
    component = attention_cls.__name__
    attention = attention_cls(options, query_size, memory_size)
    generator = torch.Generator().manual_seed(seed)
    batch, steps, positions = 3, 5, 2
    memory = torch.randn(batch, steps, memory_size, generator=generator)
    query = torch.randn(batch, positions, query_size, generator=generator)
    lengths = torch.tensor([5, 3, 1])
    mask = torch.arange(steps)[None, :] < lengths[:, None]  # (B, S')
    parameter = next(attention.parameters(), None)
    if parameter is not None:
        memory, query, mask = (
            memory.to(parameter.device, parameter.dtype),
            query.to(parameter.device, parameter.dtype),
            mask.to(parameter.device),
        )

    with _evaluating(attention):
        context, weights = _attend(attention, component, query, memory, mask)
        _check_weights(component, "forward", weights, mask, steps, atol)
        expected = torch.bmm(weights, memory)  # (B, T, H)
        difference = _difference(context, expected)
        tolerance = _tolerance(expected, atol)
        if not _within(difference, tolerance):
            raise ContractError(
                component,
                "context is the weighted memory",
                f"{component}.forward context differs from the weights times the "
                f"memory by {difference:.1e} (tolerance {tolerance:.2g})",
            )

        for position in range(positions):
            one = query[:, position : position + 1]
            alone_context, alone_weights = _attend(
                attention, component, one, memory, mask
            )
            _compare_attention(
                component,
                f"query position {position} attended alone",
                (alone_context, alone_weights),
                (
                    context[:, position : position + 1],
                    weights[:, position : position + 1],
                ),
                atol,
            )

        noise = torch.randn(memory.shape, generator=generator).to(memory) * 10
        scrambled = torch.where(mask[:, :, None], memory, noise)
        _compare_attention(
            component,
            "memory with other values at masked steps",
            _attend(attention, component, query, scrambled, mask),
            (context, weights),
            atol,
        )

        _, unmasked = _attend(attention, component, query, memory, None)
        _check_weights(component, "forward without a mask", unmasked, None, steps, atol)
    return attention


def _attend(
    attention: Attention,
    component: str,
    query: Tensor,
    memory: Tensor,
    mask: Tensor | None,
) -> tuple[Tensor, Tensor]:
    """Run `prepare` and `forward` and check the shapes of what they return."""
    batch, steps, width = memory.shape
    keys = attention.prepare(memory)
    if not isinstance(keys, Tensor) or tuple(keys.shape[:2]) != (batch, steps):
        shape = _shape(keys) if isinstance(keys, Tensor) else type(keys).__name__
        raise ContractError(
            component,
            "prepare shape",
            f"{component}.prepare returned {shape}, expected keys (B, S', K) with "
            f"B = {batch} and S' = {steps}",
        )
    result = attention(query, keys, memory, mask)
    if not isinstance(result, tuple) or len(result) != 2:
        raise ContractError(
            component,
            "forward shape",
            f"{component}.forward returned {type(result).__name__}, expected a "
            "(context, weights) tuple",
        )
    context, weights = result
    expected = (batch, query.shape[1], width)
    if tuple(context.shape) != expected:
        raise ContractError(
            component,
            "forward shape",
            f"{component}.forward context has shape {_shape(context)}, expected "
            f"(B, T, memory_size) = {expected}",
        )
    _check_finite(component, "forward context", context)
    return context, weights


def _compare_attention(
    component: str,
    case: str,
    actual: tuple[Tensor, Tensor],
    expected: tuple[Tensor, Tensor],
    atol: float,
) -> None:
    for name, value, reference in zip(
        ("context", "weights"), actual, expected, strict=True
    ):
        difference = _difference(value, reference)
        tolerance = _tolerance(reference, atol)
        if value.shape != reference.shape or not _within(difference, tolerance):
            raise ContractError(
                component,
                "attention invariance",
                f"{component}.forward {name} for {case} differs by "
                f"{difference:.1e} (tolerance {tolerance:.2g})",
            )


# ------------------------------------------------------------------ samplers

# Logits of the scripted decoders. The banned tokens get the highest logit, so
# a sampler that bypasses `StepModel.banned` picks them. Once a row prefers
# <eos>, its logit is far above the others, which are standard normal draws.
BANNED_LOGIT = 12.0
EOS_PREFERRED_LOGIT = 9.0
EOS_RARE_LOGIT = -4.0
# Seed of the scripted decoders' logit tables, fixed so that every sampler is
# checked on the same distributions.
TABLE_SEED = 1234
# The scripted logits depend on the step and the row modulo this period.
STEP_PERIOD = 4


class _SamplerLimits(NamedTuple):
    """The vocabulary and limits that `check_sampler` gives a sampler."""

    vocab_size: int
    eos_id: int
    banned: tuple[int, ...]
    max_new_tokens: int


class _ScriptedDecoder(Decoder):
    """A decoder with fixed logits from the previous token, the step and the row.

    Row b prefers <eos> once it has emitted (2 b) mod (max_new_tokens + 2)
    tokens, so some rows end at their first token and others run past the
    limit. With `emits_eos` False, <eos> gets probability 0. The state
    (1, B, 3) contains each row's step count, <eos> step and row number, with the
    batch on dim 1, so the default `select_state` moves all three.
    """

    def __init__(
        self,
        vocab_size: int,
        eos_id: int,
        banned: tuple[int, ...],
        max_new_tokens: int,
        emits_eos: bool,
    ):
        super().__init__()
        generator = torch.Generator().manual_seed(TABLE_SEED)
        self.register_buffer(
            "bigrams", torch.randn(vocab_size, vocab_size, generator=generator)
        )
        self.register_buffer(
            "step_shifts", torch.randn(STEP_PERIOD, vocab_size, generator=generator)
        )
        self.register_buffer(
            "row_shifts", torch.randn(STEP_PERIOD, vocab_size, generator=generator)
        )
        self.eos_id = eos_id
        self.banned = list(banned)
        self.max_new_tokens = max_new_tokens
        self.emits_eos = emits_eos

    def init_state(
        self, batch_size: int, encoder_output: EncoderOutput | None = None
    ) -> State:
        steps = torch.zeros(batch_size, dtype=torch.long)
        rows = torch.arange(batch_size)
        eos_after = (2 * rows) % (self.max_new_tokens + 2)
        return torch.stack([steps, eos_after, rows], dim=-1).unsqueeze(0)  # (1, B, 3)

    def forward(
        self, tokens: Tensor, state: State, encoder_output: EncoderOutput | None = None
    ) -> DecoderOutput:
        steps = state[0, :, :1] + torch.arange(tokens.shape[1])  # (B, T)
        rows = state[0, :, 2] % STEP_PERIOD  # (B,)
        logits = self.bigrams[tokens] + self.step_shifts[steps % STEP_PERIOD]
        logits = logits + self.row_shifts[rows][:, None, :]  # (B, T, V)
        if self.emits_eos:
            logits[:, :, self.eos_id] = torch.where(
                steps >= state[0, :, 1:2], EOS_PREFERRED_LOGIT, EOS_RARE_LOGIT
            )
        else:
            logits[:, :, self.eos_id] = -math.inf
        logits[:, :, self.banned] = BANNED_LOGIT
        next_state = state.clone()
        next_state[0, :, 0] += tokens.shape[1]
        return DecoderOutput(logits, next_state)


def check_sampler(
    sampler: Sampler,
    *,
    vocab_size: int = 12,
    eos_id: int = 3,
    batch_size: int = 4,
    max_new_tokens: int = 6,
    seed: int = 0,
) -> None:
    """Drive `sampler` with two scripted decoders and check what it generates.

    One decoder makes each row prefer <eos> after a different number of
    tokens, some beyond `max_new_tokens`, and the other never allows <eos>.
    Both give the highest logit to the banned tokens, the first three ids
    other than `eos_id`. The sampler starts from the last of them, as seqkit
    starts from <bos>. Checks, on both decoders:

    - The result is a `Generation` with one list of token ids per row and
      finite scores (B,).
    - No row is longer than `max_new_tokens`.
    - A row that contains <eos> ends at it.
    - No banned token appears.
    - Each score is the summed log-probability of the row's tokens under the
      model, within `SCORE_ATOL` (relative above 1).
    - Two runs with a generator seeded with `seed` give the same result.
    - `Generation.nbest`, when set, has a non-empty list per row. Its entries
      follow the same rules, and the first one is the row's tokens and score.

    A sampler that takes one step by design, such as `argmax` for label heads,
    passes with any `max_new_tokens`. The classification task calls it with 1.
    """
    component = type(sampler).__name__
    if not 0 <= eos_id < vocab_size:
        raise ValueError(f"eos_id must be in [0, {vocab_size}), got {eos_id}")
    if vocab_size < 6:
        raise ValueError(
            f"vocab_size must be at least 6 (3 banned tokens, <eos> and 2 others), "
            f"got {vocab_size}"
        )
    if batch_size < 1 or max_new_tokens < 1:
        raise ValueError(
            "batch_size and max_new_tokens must be at least 1, got "
            f"{batch_size} and {max_new_tokens}"
        )
    banned = tuple(token for token in range(vocab_size) if token != eos_id)[:3]
    start = torch.full((batch_size,), banned[-1], dtype=torch.long)
    limits = _SamplerLimits(vocab_size, eos_id, banned, max_new_tokens)

    for emits_eos, scenario in (
        (True, "decoder that prefers <eos> after a few tokens"),
        (False, "decoder that never allows <eos>"),
    ):
        decoder = _ScriptedDecoder(
            vocab_size, eos_id, banned, max_new_tokens, emits_eos
        )
        first = _sample(sampler, decoder, banned, start, max_new_tokens, eos_id, seed)
        _check_generation(component, scenario, first, decoder, start, limits)
        second = _sample(sampler, decoder, banned, start, max_new_tokens, eos_id, seed)
        _check_reproducible(component, scenario, first, second, seed)


def _sample(
    sampler: Sampler,
    decoder: _ScriptedDecoder,
    banned: tuple[int, ...],
    start: Tensor,
    max_new_tokens: int,
    eos_id: int,
    seed: int,
) -> Generation:
    model = StepModel(decoder, None, banned)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        return sampler.generate(
            model,
            decoder.init_state(start.shape[0]),
            start,
            max_new_tokens,
            eos_id,
            generator=generator,
        )


def _check_generation(
    component: str,
    scenario: str,
    generation: Generation,
    decoder: _ScriptedDecoder,
    start: Tensor,
    limits: _SamplerLimits,
) -> None:
    batch = start.shape[0]
    if not isinstance(generation, Generation):
        raise ContractError(
            component,
            "returns a Generation",
            f"{component}.generate returned {type(generation).__name__}, expected a "
            "Generation",
        )
    tokens, scores = generation.tokens, generation.scores
    if not isinstance(tokens, list) or len(tokens) != batch:
        count = len(tokens) if isinstance(tokens, list) else type(tokens).__name__
        raise ContractError(
            component,
            "one token list per row",
            f"{component}.generate returned {count} token lists for {batch} rows "
            f"({scenario})",
        )
    if not isinstance(scores, Tensor) or tuple(scores.shape) != (batch,):
        shape = _shape(scores) if isinstance(scores, Tensor) else type(scores).__name__
        raise ContractError(
            component,
            "scores shape",
            f"{component}.generate returned scores of shape {shape}, expected "
            f"(B,) = ({batch},) ({scenario})",
        )
    _check_finite(component, f"generate scores ({scenario})", scores)
    for row in range(batch):
        where = f"row {row}"
        _check_sequence(component, scenario, where, tokens[row], limits)
        _check_score(
            component,
            scenario,
            where,
            decoder,
            start,
            row,
            tokens[row],
            float(scores[row]),
            limits,
        )
    if generation.nbest is not None:
        _check_nbest(component, scenario, generation, decoder, start, limits)


def _check_sequence(
    component: str, scenario: str, where: str, sequence: Any, limits: _SamplerLimits
) -> None:
    """Check the token ids of one generated row, or of one n-best entry.

    NOTE: a row may stop before `max_new_tokens` without <eos>, because beam
    search's `max_length` caps rows legitimately. So a sampler that stops
    early, or drops the <eos> it chose and its log-probability, passes.
    """
    vocab_size, eos_id, banned, max_new_tokens = limits
    if not isinstance(sequence, list) or not all(
        isinstance(token, int) and 0 <= token < vocab_size for token in sequence
    ):
        raise ContractError(
            component,
            "one token list per row",
            f"{component}.generate {where} is {sequence!r}, expected a list of "
            f"int token ids in [0, {vocab_size}) ({scenario})",
        )
    if len(sequence) > max_new_tokens:
        raise ContractError(
            component,
            "max_new_tokens",
            f"{component}.generate {where} has {len(sequence)} tokens, more than "
            f"max_new_tokens = {max_new_tokens}: {sequence} ({scenario})",
        )
    if eos_id in sequence and sequence.index(eos_id) != len(sequence) - 1:
        raise ContractError(
            component,
            "<eos> ends the row",
            f"{component}.generate {where} continues after <eos> (id {eos_id}) at "
            f"index {sequence.index(eos_id)}: {sequence} ({scenario})",
        )
    found = [token for token in sequence if token in banned]
    if found:
        raise ContractError(
            component,
            "banned tokens",
            f"{component}.generate {where} contains banned token {found[0]} "
            f"(StepModel.banned = {banned}): {sequence} ({scenario})",
        )


def _check_score(
    component: str,
    scenario: str,
    where: str,
    decoder: _ScriptedDecoder,
    start: Tensor,
    row: int,
    sequence: list[int],
    score: float,
    limits: _SamplerLimits,
) -> None:
    """Check that `score` is the summed log-probability of `sequence` in `row`."""
    model = StepModel(decoder, None, limits.banned)
    state = decoder.select_state(
        decoder.init_state(start.shape[0]), torch.tensor([row])
    )
    token = start[row : row + 1]
    expected = 0.0
    with torch.no_grad():
        for following in sequence:
            log_probs, state = model.step(token, state)  # (1, V)
            expected += float(log_probs[0, following])
            token = torch.tensor([following])
    tolerance = SCORE_ATOL * max(1.0, abs(expected))
    if not _within(abs(score - expected), tolerance):
        raise ContractError(
            component,
            "scores are summed log-probabilities",
            f"{component}.generate {where} has score {score:.6g}, but its tokens "
            f"{sequence} have summed log-probability {expected:.6g} under the "
            f"model (tolerance {tolerance:.2g}) ({scenario})",
        )


def _check_nbest(
    component: str,
    scenario: str,
    generation: Generation,
    decoder: _ScriptedDecoder,
    start: Tensor,
    limits: _SamplerLimits,
) -> None:
    batch = start.shape[0]
    nbest = generation.nbest
    if not isinstance(nbest, list) or len(nbest) != batch:
        count = len(nbest) if isinstance(nbest, list) else type(nbest).__name__
        raise ContractError(
            component,
            "nbest",
            f"{component}.generate returned nbest with {count} rows for {batch} "
            f"rows ({scenario})",
        )
    for row, entries in enumerate(nbest):
        if not isinstance(entries, list) or not entries:
            raise ContractError(
                component,
                "nbest",
                f"{component}.generate nbest[{row}] is {entries!r}, expected a "
                f"non-empty list of (tokens, score) pairs ({scenario})",
            )
        for rank, entry in enumerate(entries):
            where = f"nbest[{row}][{rank}]"
            if not isinstance(entry, tuple | list) or len(entry) != 2:
                raise ContractError(
                    component,
                    "nbest",
                    f"{component}.generate {where} is {entry!r}, expected a "
                    f"(tokens, score) pair ({scenario})",
                )
            sequence, score = entry
            _check_sequence(component, scenario, where, sequence, limits)
            _check_score(
                component,
                scenario,
                where,
                decoder,
                start,
                row,
                sequence,
                float(score),
                limits,
            )
        best_tokens, best_score = entries[0]
        row_score = float(generation.scores[row])
        same_score = _within(
            abs(float(best_score) - row_score), SCORE_ATOL * max(1.0, abs(row_score))
        )
        if best_tokens != generation.tokens[row] or not same_score:
            raise ContractError(
                component,
                "nbest",
                f"{component}.generate nbest[{row}][0] is ({best_tokens}, "
                f"{float(best_score):.6g}), expected the row's tokens and score "
                f"({generation.tokens[row]}, {row_score:.6g}) ({scenario})",
            )


def _check_reproducible(
    component: str, scenario: str, first: Generation, second: Generation, seed: int
) -> None:
    same = (
        first.tokens == second.tokens
        and first.nbest == second.nbest
        and torch.allclose(first.scores, second.scores, rtol=1e-6, atol=1e-6)
    )
    if same:
        return
    rows = [
        row
        for row in range(len(first.tokens))
        if row >= len(second.tokens) or first.tokens[row] != second.tokens[row]
    ]
    detail = (
        f"row {rows[0]}: {first.tokens[rows[0]]} and "
        f"{second.tokens[rows[0]] if rows[0] < len(second.tokens) else None}"
        if rows
        else f"scores {first.scores.tolist()} and {second.scores.tolist()}"
    )
    raise ContractError(
        component,
        "reproducible with a seeded generator",
        f"{component}.generate is not reproducible: two runs with a generator "
        f"seeded with {seed} differ in {detail}; draw random numbers from the "
        f"`generator` argument ({scenario})",
    )
