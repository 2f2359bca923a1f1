"""The CNN encoder: backbones, feature grid, normalisation, weight files, freezing."""

from __future__ import annotations

import io
import logging
import socket

import pytest
import torch
import torchvision.models
from seqkit_builtins.attention import BahdanauAttention, BahdanauOptions
from seqkit_builtins.cnn import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    CNNEncoder,
    CNNEncoderOptions,
)
from seqkit_builtins.decoders import RNNDecoder, RNNDecoderOptions

from seqkit import schema
from seqkit.context import BuildContext
from seqkit.errors import RecipeError
from seqkit.recipe import Component

# backbone: feature channels with the default options
CHANNELS = {
    "small": 128,
    "resnet18": 512,
    "resnet34": 512,
    "resnet50": 2048,
    "mobilenet_v3_small": 576,
    "efficientnet_b0": 1280,
}


class Payload:
    """A class instance, which a weights-only load must reject."""


class OpensFile:
    """Unpickling this object would create `path`, so it shows whether code ran."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.fixture
def context(tmp_path) -> BuildContext:
    return BuildContext(base_dir=tmp_path, recipe_file=str(tmp_path / "recipe.toml"))


@pytest.fixture
def no_network(monkeypatch):
    """Make every download and socket connection fail."""

    def fail(*args, **kwargs):
        raise AssertionError("the CNN encoder tried to reach the network")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", fail)
    monkeypatch.setattr(torch.hub, "download_url_to_file", fail)
    monkeypatch.setattr(torchvision.models._api, "load_state_dict_from_url", fail)
    monkeypatch.setattr(socket.socket, "connect", fail)


def make_encoder(context, **options) -> CNNEncoder:
    torch.manual_seed(0)
    return CNNEncoder(CNNEncoderOptions(**options), context).eval()


def images(batch: int, size: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(1)
    return torch.rand(batch, 3, size, size, generator=generator)


def resnet18_features(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Run a torchvision ResNet up to its last feature map (B, C, h, w)."""
    x = model.maxpool(model.relu(model.bn1(model.conv1(x))))
    return model.layer4(model.layer3(model.layer2(model.layer1(x))))


def grid_rows(features: torch.Tensor) -> torch.Tensor:
    """Flatten (B, C, h, w) features into (B, h * w, C), region by region."""
    B, C, h, w = features.shape
    rows = [features[:, :, r, c] for r in range(h) for c in range(w)]
    return torch.stack(rows, dim=1)


# ---------------------------------------------------------------- shapes


@pytest.mark.parametrize("backbone", list(CHANNELS))
def test_backbone_output_shapes(context, no_network, backbone):
    encoder = make_encoder(context, backbone=backbone, image_size=64)
    with torch.no_grad():
        output = encoder(images(2, 64))
    h, w = encoder.grid_size
    expected_side = 8 if backbone == "small" else 2
    assert (h, w) == (expected_side, expected_side)
    assert encoder.output_size == CHANNELS[backbone]
    assert output.memory.shape == (2, h * w, CHANNELS[backbone])
    assert output.summary.shape == (2, CHANNELS[backbone])
    assert output.mask is None
    assert output.source_lengths() is None


def test_default_image_sizes(context):
    small = make_encoder(context)
    assert small.image_size == 64
    assert small.grid_size == (8, 8)
    resnet = make_encoder(context, backbone="resnet18")
    assert resnet.image_size == 224
    assert resnet.grid_size == (7, 7)
    with torch.no_grad():
        output = resnet(images(1, 224))
    assert output.memory.shape == (1, 49, 512)


@pytest.mark.parametrize(("size", "side"), [(32, 4), (48, 6), (64, 8), (70, 8)])
def test_small_grid(context, size, side):
    encoder = make_encoder(context, image_size=size, channels=4)
    with torch.no_grad():
        output = encoder(images(2, size))
    assert encoder.grid_size == (side, side)
    assert encoder.output_size == 16
    assert output.memory.shape == (2, side * side, 16)


def test_torchvision_grid_rounds_up(context):
    encoder = make_encoder(context, backbone="mobilenet_v3_small", image_size=100)
    with torch.no_grad():
        output = encoder(images(1, 100))
    assert encoder.grid_size == (4, 4)
    assert output.memory.shape[1] == 16


def test_memory_rows_follow_grid_row_major(context):
    encoder = make_encoder(context, image_size=32, channels=4)
    x = images(2, 32)
    with torch.no_grad():
        output = encoder(x)
        features = encoder.backbone((x - 0.5) / 0.5)  # (B, C, 4, 4)
    torch.testing.assert_close(output.memory, grid_rows(features))
    torch.testing.assert_close(output.summary, features.mean(dim=(2, 3)))


# ---------------------------------------------------------------- normalisation


def test_small_normalises_with_half(context):
    encoder = make_encoder(context, image_size=32, channels=4)
    assert encoder.mean.flatten().tolist() == [0.5, 0.5, 0.5]
    assert encoder.std.flatten().tolist() == [0.5, 0.5, 0.5]
    # A mid-grey image is all zeros after normalisation.
    grey = torch.full((1, 3, 32, 32), 0.5)
    with torch.no_grad():
        output = encoder(grey)
        expected = encoder.backbone(torch.zeros(1, 3, 32, 32))
    torch.testing.assert_close(output.memory, grid_rows(expected))


def test_resnet_normalises_with_imagenet_statistics(context):
    encoder = make_encoder(context, backbone="resnet18", image_size=32)
    x = images(2, 32)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        output = encoder(x)
        expected = encoder.backbone((x - mean) / std)
    torch.testing.assert_close(output.memory, grid_rows(expected))


def test_normalisation_buffers_not_saved(context):
    encoder = make_encoder(context, image_size=32, channels=4)
    keys = encoder.state_dict().keys()
    assert "mean" not in keys
    assert "std" not in keys


def test_source_must_be_rgb_batch(context):
    encoder = make_encoder(context, image_size=32, channels=4)
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        encoder(torch.rand(2, 1, 32, 32))
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        encoder(torch.rand(3, 32, 32))


# ---------------------------------------------------------------- projection


def test_memory_size_projects_features(context):
    encoder = make_encoder(context, backbone="resnet18", image_size=64, memory_size=24)
    with torch.no_grad():
        output = encoder(images(2, 64))
    assert encoder.output_size == 24
    assert output.memory.shape == (2, 4, 24)
    assert output.summary.shape == (2, 24)
    torch.testing.assert_close(output.summary, output.memory.mean(dim=1))


def test_dropout_only_in_training(context):
    encoder = make_encoder(context, image_size=32, channels=4, dropout=0.5)
    x = images(2, 32)
    with torch.no_grad():
        first = encoder(x).memory
        second = encoder(x).memory
    torch.testing.assert_close(first, second)
    encoder.train()
    with torch.no_grad():
        dropped = encoder(x).memory
    assert (dropped == 0).float().mean() > 0.3


# ---------------------------------------------------------------- options


def test_image_size_too_small_rejected(context):
    with pytest.raises(RecipeError, match=r"`encoder.image_size`.*at least 32"):
        make_encoder(context, backbone="resnet18", image_size=31)
    with pytest.raises(RecipeError, match=r"`encoder.image_size`.*at least 8"):
        make_encoder(context, image_size=7)


def test_minimum_image_size_accepted(context):
    encoder = make_encoder(context, backbone="resnet18", image_size=32)
    with torch.no_grad():
        output = encoder(images(1, 32))
    assert output.memory.shape == (1, 1, 512)


def test_channels_only_for_small(context):
    with pytest.raises(RecipeError, match="`encoder.channels`"):
        make_encoder(context, backbone="resnet18", channels=8)


def test_options_validated_from_table():
    options = schema.validate(
        CNNEncoderOptions,
        {"backbone": "resnet50", "memory_size": 256, "freeze": True},
        "encoder",
        None,
    )
    assert options.memory_size == 256
    with pytest.raises(RecipeError, match="encoder.backbone"):
        schema.validate(CNNEncoderOptions, {"backbone": "vgg16"}, "encoder", None)
    with pytest.raises(RecipeError, match="encoder.memory_size"):
        schema.validate(CNNEncoderOptions, {"memory_size": 0}, "encoder", None)


def test_weights_path_saved_absolute(tmp_path):
    options = CNNEncoderOptions(weights="weights/r18.pt")
    table = schema.to_table(options, tmp_path)
    assert table["weights"] == str(tmp_path.resolve() / "weights/r18.pt")


def test_registered_as_cnn(registry):
    assert registry.get("encoder", "cnn") is CNNEncoder


# ---------------------------------------------------------------- weight files


def test_weights_load_torchvision_state_dict(context, tmp_path, caplog):
    torch.manual_seed(5)
    source = torchvision.models.resnet18(weights=None).eval()
    torch.save(source.state_dict(), tmp_path / "r18.pt")
    with caplog.at_level(logging.INFO, logger="seqkit_builtins.cnn"):
        encoder = make_encoder(
            context, backbone="resnet18", image_size=64, weights="r18.pt"
        )
    assert "ignoring 2 classifier keys" in caplog.text
    assert "fc.weight" in caplog.text
    x = images(2, 64)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        output = encoder(x)
        expected = resnet18_features(source, (x - mean) / std)
    torch.testing.assert_close(output.memory, grid_rows(expected))


@pytest.mark.parametrize("wrapping", ["state_dict", "model", "module"])
def test_weights_accept_wrapped_state_dict(context, tmp_path, wrapping):
    torch.manual_seed(5)
    source = CNNEncoder(CNNEncoderOptions(channels=4), context).backbone
    state = source.state_dict()
    if wrapping == "module":
        payload = {f"module.{key}": value for key, value in state.items()}
    else:
        payload = {wrapping: state, "epoch": 3}
    torch.save(payload, tmp_path / "small.pt")
    encoder = make_encoder(context, channels=4, weights="small.pt")
    for key, value in state.items():
        torch.testing.assert_close(encoder.backbone.state_dict()[key], value)


def test_weights_without_batch_norm_counters(context, tmp_path):
    source = CNNEncoder(CNNEncoderOptions(channels=4), context).backbone
    state = {
        key: value
        for key, value in source.state_dict().items()
        if not key.endswith("num_batches_tracked")
    }
    torch.save(state, tmp_path / "old.pt")
    encoder = make_encoder(context, channels=4, weights="old.pt")
    loaded = encoder.backbone.state_dict()
    torch.testing.assert_close(
        loaded["features.1.running_var"], state["features.1.running_var"]
    )
    assert int(loaded["features.1.num_batches_tracked"]) == 0


def test_weights_of_other_architecture_rejected(context, tmp_path):
    torch.save(
        torchvision.models.resnet18(weights=None).state_dict(), tmp_path / "w.pt"
    )
    with pytest.raises(RecipeError) as caught:
        make_encoder(context, backbone="resnet34", image_size=32, weights="w.pt")
    message = str(caught.value)
    assert "`encoder.weights`" in message
    assert str(tmp_path / "w.pt") in message
    assert "'resnet34'" in message
    assert "missing keys: layer1.2.conv1.weight" in message
    assert "`encoder.backbone`" in message


def test_weights_with_wrong_shapes_rejected(context, tmp_path):
    source = CNNEncoder(CNNEncoderOptions(channels=4), context).backbone
    torch.save(source.state_dict(), tmp_path / "small4.pt")
    with pytest.raises(RecipeError, match=r"wrong shapes: features\.0\.weight"):
        make_encoder(context, channels=8, weights="small4.pt")


def test_one_wrong_shape_named_in_singular(context, tmp_path):
    state = CNNEncoder(CNNEncoderOptions(channels=4), context).backbone.state_dict()
    first = next(iter(state))
    state[first] = torch.zeros(1)
    torch.save(state, tmp_path / "one.pt")

    with pytest.raises(RecipeError) as caught:
        make_encoder(context, channels=4, weights="one.pt")

    assert f"(1 wrong shape: {first} (1,) instead of " in str(caught.value)


def test_weights_file_missing(context, tmp_path):
    with pytest.raises(RecipeError, match="weights file not found") as caught:
        make_encoder(context, weights="absent.pt")
    assert str(tmp_path / "absent.pt") in str(caught.value)


def truncated_torch_file() -> bytes:
    buffer = io.BytesIO()
    torch.save({"features.0.weight": torch.zeros(4, 3, 3, 3)}, buffer)
    return buffer.getvalue()[:300]


@pytest.mark.parametrize(
    "content",
    [b"not a tensor file\n", b"\x80\x02garbage", b"", truncated_torch_file()],
    ids=["text", "bad-pickle", "empty", "truncated"],
)
def test_weights_file_not_torch(context, tmp_path, content):
    (tmp_path / "bad.pt").write_bytes(content)
    with pytest.raises(RecipeError, match="cannot read weights file") as caught:
        make_encoder(context, weights="bad.pt")
    assert "weights_only=False" not in str(caught.value)
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__


def test_weights_with_objects_rejected(context, tmp_path):
    torch.save({"conv.weight": torch.zeros(2), "extra": Payload()}, tmp_path / "p.pt")
    with pytest.raises(
        RecipeError, match="Python objects other than tensors"
    ) as caught:
        make_encoder(context, weights="p.pt")
    assert "weights_only=False" not in str(caught.value)
    assert caught.value.__suppress_context__


def test_weights_with_code_never_run(context, tmp_path):
    marker = tmp_path / "created-by-unpickling"
    torch.save({"payload": OpensFile(str(marker))}, tmp_path / "code.pt")
    with pytest.raises(RecipeError, match="Python objects other than tensors"):
        make_encoder(context, weights="code.pt")
    assert not marker.exists()


def test_weights_without_state_dict_rejected(context, tmp_path):
    torch.save([torch.zeros(2)], tmp_path / "list.pt")
    with pytest.raises(RecipeError, match="contains no state_dict"):
        make_encoder(context, weights="list.pt")


def test_weights_path_outside_recipe_folder(context, tmp_path):
    with pytest.raises(RecipeError, match="outside the recipe's folder") as caught:
        make_encoder(context, weights="../elsewhere/w.pt")
    assert "`encoder.weights`" in str(caught.value)


# ---------------------------------------------------------------- freezing


def batch_norm_stats(module: torch.nn.Module) -> list[torch.Tensor]:
    return [
        buffer.clone()
        for name, buffer in module.named_buffers()
        if name.endswith(("running_mean", "running_var"))
    ]


def test_freeze_fixes_backbone(context):
    encoder = make_encoder(
        context, image_size=32, channels=4, freeze=True, memory_size=6
    )
    encoder.train()
    assert encoder.training
    assert not encoder.backbone.training
    assert not any(p.requires_grad for p in encoder.backbone.parameters())
    assert all(p.requires_grad for p in encoder.projection.parameters())
    before = batch_norm_stats(encoder.backbone)
    output = encoder(images(2, 32))
    output.summary.sum().backward()
    after = batch_norm_stats(encoder.backbone)
    for old, new in zip(before, after, strict=True):
        torch.testing.assert_close(old, new, rtol=0, atol=0)
    assert all(p.grad is None for p in encoder.backbone.parameters())
    assert encoder.projection.weight.grad is not None


def test_without_freeze_backbone_trains(context):
    encoder = make_encoder(context, image_size=32, channels=4)
    encoder.train()
    assert encoder.backbone.training
    before = batch_norm_stats(encoder.backbone)
    encoder(images(2, 32)).summary.sum().backward()
    after = batch_norm_stats(encoder.backbone)
    assert not torch.equal(before[0], after[0])
    assert all(p.grad is not None for p in encoder.backbone.parameters())


def test_frozen_resnet_batch_norm_in_eval(context):
    encoder = make_encoder(context, backbone="resnet18", image_size=32, freeze=True)
    encoder.train()
    modes = [m.training for m in encoder.backbone.modules()]
    assert not any(modes)


# ---------------------------------------------------------------- with a decoder


def test_attention_decoder_reads_memory(context, letters_vocab):
    encoder = make_encoder(context, image_size=32, channels=4)
    context.vocab = letters_vocab
    context.encoder_size = encoder.output_size
    context.attention = Component("bahdanau", BahdanauAttention, BahdanauOptions(8))
    torch.manual_seed(0)
    decoder = RNNDecoder(
        RNNDecoderOptions(embedding_size=6, hidden_size=10), context
    ).eval()
    with torch.no_grad():
        encoded = encoder(images(2, 32))
        state = decoder.init_state(2, encoded)
        output = decoder(torch.tensor([[2, 4, 5], [2, 6, 7]]), state, encoded)
    assert output.logits.shape == (2, 3, len(letters_vocab))
    assert output.attention.shape == (2, 3, 16)
    torch.testing.assert_close(output.attention.sum(-1), torch.ones(2, 3))
