"""Text generation from a prompt with a trained run."""

from __future__ import annotations

import copy
import logging

import pytest
import torch
from seqkit_builtins.samplers import (
    GreedyOptions,
    GreedySampler,
    RandomSampler,
    SampleOptions,
)

from seqkit.generation import generate_text
from seqkit.run import load_run


@pytest.fixture(scope="module")
def built(char_run):
    return load_run(char_run)


@pytest.fixture
def fed_tokens(built, monkeypatch):
    """Record the token batch (B, T) of every decoder call."""
    calls = []
    decoder = built.model.decoder
    forward = type(decoder).forward

    def recording_forward(self, tokens, state, encoder_output=None):
        calls.append(tokens.tolist())
        return forward(self, tokens, state, encoder_output)

    monkeypatch.setattr(type(decoder), "forward", recording_forward)
    return calls


def generate(built, prompt="", sampler=None, seed=0, **options):
    return generate_text(
        built.model,
        built.tokenizer,
        built.vocabularies["target"],
        sampler or GreedySampler(GreedyOptions()),
        prompt=prompt,
        generator=torch.Generator().manual_seed(seed),
        **options,
    )


def test_empty_prompt_starts_from_bos(built, fed_tokens):
    texts = generate(built, "", max_new_tokens=5)

    bos = built.vocabularies["target"].bos_id
    assert fed_tokens[0] == [[bos]]
    assert len(fed_tokens) == 5
    assert len(texts) == 1
    assert not texts[0].startswith("<bos>")


def test_prompt_fed_once_then_continued(built, fed_tokens):
    vocab = built.vocabularies["target"]

    texts = generate(built, "MACBETH:", max_new_tokens=4)

    ids = vocab.encode(list("MACBETH:"))
    # All prompt tokens but the last go through one forward call. The sampler
    # feeds the last one and then its own tokens.
    assert fed_tokens[0] == [ids[:-1]]
    assert fed_tokens[1] == [[ids[-1]]]
    assert len(fed_tokens) == 1 + 4
    assert texts[0].startswith("MACBETH:")


def test_unknown_prompt_characters_warned(built, fed_tokens, caplog):
    vocab = built.vocabularies["target"]
    assert "@" not in vocab
    assert "\u263a" not in vocab

    with caplog.at_level(logging.WARNING, logger="seqkit"):
        texts = generate(built, "A@\u263a@", max_new_tokens=2)

    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert warnings[0].getMessage() == (
        "prompt tokens not in the vocabulary, replaced by <unk>: '@' '\u263a'"
    )
    assert fed_tokens[0] == [[vocab.index["A"], vocab.unk_id, vocab.unk_id]]
    assert fed_tokens[1] == [[vocab.unk_id]]
    assert texts[0].startswith("A@\u263a@")


def test_known_prompt_no_warning(built, caplog):
    with caplog.at_level(logging.WARNING, logger="seqkit"):
        generate(built, "MACBETH:", max_new_tokens=2)

    assert caplog.records == []


def test_prompt_normalized_to_nfc(built, fed_tokens):
    vocab = built.vocabularies["target"]

    generate(built, "Ma\r\nc", max_new_tokens=1)

    assert fed_tokens[0] == [vocab.encode(["M", "a", "\n"])]


def test_num_samples_drawn_as_one_batch(built, fed_tokens):
    sampler = RandomSampler(SampleOptions(temperature=1.5))

    texts = generate(
        built, "MACBETH:", sampler, seed=1, max_new_tokens=12, num_samples=4
    )

    assert len(texts) == 4
    assert all(text.startswith("MACBETH:") for text in texts)
    assert len(set(texts)) > 1
    assert len(fed_tokens) == 1 + 12
    assert all(len(tokens) == 4 for tokens in fed_tokens)


def test_seeded_generation_repeatable(built):
    sampler = RandomSampler(SampleOptions(temperature=0.8))

    first = generate(
        built, "MACBETH:", sampler, seed=7, max_new_tokens=30, num_samples=2
    )
    second = generate(
        built, "MACBETH:", sampler, seed=7, max_new_tokens=30, num_samples=2
    )
    other = generate(
        built, "MACBETH:", sampler, seed=8, max_new_tokens=30, num_samples=2
    )

    assert first == second
    assert first != other


def test_greedy_samples_identical(built):
    texts = generate(built, "MACBETH:", max_new_tokens=20, num_samples=3)

    assert texts[0] == texts[1] == texts[2]


def test_generation_never_emits_specials(built):
    model = copy.deepcopy(built.model)
    vocab = built.vocabularies["target"]
    with torch.no_grad():
        for banned in (vocab.pad_id, vocab.bos_id, vocab.unk_id):
            model.decoder.output.bias[banned] = 100.0
    sampler = RandomSampler(SampleOptions(temperature=1.0))

    texts = generate_text(
        model,
        built.tokenizer,
        vocab,
        sampler,
        prompt="MACBETH:",
        max_new_tokens=40,
        num_samples=4,
        generator=torch.Generator().manual_seed(0),
    )

    assert len(texts) == 4
    for text in texts:
        assert "<unk>" not in text
        assert "<pad>" not in text
        assert "<bos>" not in text
        assert len(text) > len("MACBETH:")
