"""A CNN encoder for image captioning: the last feature map of a convolutional
backbone becomes the memory that an attention decoder reads.

Shapes: B batch, C feature channels, h and w the height and width of the final
feature map, S = h * w regions (row-major), M memory width.
"""

from __future__ import annotations

import logging
import math
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor, nn

from seqkit import BuildContext, Encoder, EncoderOutput, RecipeError, hookimpl
from seqkit.paths import resolve_inside

log = logging.getLogger(__name__)

# Per-channel statistics of the ImageNet training images that torchvision's
# pretrained models expect (torchvision 0.29 `ImageClassification` transform).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# Feature channels of the last feature map of each torchvision backbone.
TORCHVISION_CHANNELS = {
    "resnet18": 512,
    "resnet34": 512,
    "resnet50": 2048,
    "mobilenet_v3_small": 576,
    "efficientnet_b0": 1280,
}

# Every torchvision backbone above halves the image 5 times, rounding up, so a
# 224-pixel image gives a 7 x 7 grid and 32 pixels is the minimum for a 1 x 1 grid.
TORCHVISION_HALVINGS = 5
TORCHVISION_IMAGE_SIZE = 224

# The small net halves the image 3 times with 2 x 2 max pooling, rounding down.
SMALL_HALVINGS = 3
SMALL_IMAGE_SIZE = 64
SMALL_CHANNELS = 32


@dataclass
class CNNEncoderOptions:
    backbone: Literal[
        "small",
        "resnet18",
        "resnet34",
        "resnet50",
        "mobilenet_v3_small",
        "efficientnet_b0",
    ] = field(
        default="small",
        metadata={
            "help": "small: a convnet for small images, trained from scratch; the "
            "others: torchvision models without their classifier, built without "
            "pretrained weights (see `weights`)"
        },
    )
    image_size: int | None = field(
        default=None,
        metadata={
            "min": 1,
            "help": "side in pixels of the square images the task feeds in; "
            f"default {SMALL_IMAGE_SIZE} for small, {TORCHVISION_IMAGE_SIZE} "
            "for torchvision backbones",
        },
    )
    channels: int | None = field(
        default=None,
        metadata={
            "min": 1,
            "help": "small backbone only: width of the first of its 3 stages; "
            "each stage doubles it, so the features have 4 * channels "
            f"(default {SMALL_CHANNELS})",
        },
    )
    weights: str | None = field(
        default=None,
        metadata={
            "path": True,
            "help": "state_dict file of the backbone's model, relative to the "
            "recipe; keys of the removed classifier (fc., classifier.) are ignored",
        },
    )
    freeze: bool = field(
        default=False,
        metadata={
            "help": "keep the backbone's weights fixed and its batch norm layers "
            "in eval mode; otherwise the backbone is fine-tuned"
        },
    )
    memory_size: int | None = field(
        default=None,
        metadata={
            "min": 1,
            "help": "project the features to this width with a 1 x 1 convolution; "
            "default: no projection, the backbone's feature channels",
        },
    )
    dropout: float = field(
        default=0.0,
        metadata={"min": 0.0, "max": 0.99, "help": "on the memory and the summary"},
    )


class SmallConvNet(nn.Module):
    """A convnet for small images such as 32 x 32 to 64 x 64 glyphs.

    Three stages of two 3 x 3 conv, batch norm and ReLU layers, each stage
    followed by 2 x 2 max pooling, so the feature map is 1/8 of the image.
    The stages have `channels`, 2 * `channels` and 4 * `channels` filters.
    """

    def __init__(self, channels: int):
        super().__init__()
        layers: list[nn.Module] = []
        in_channels = 3
        for stage in range(SMALL_HALVINGS):
            width = channels * 2**stage
            for _ in range(2):
                layers += [
                    nn.Conv2d(in_channels, width, 3, padding=1, bias=False),
                    nn.BatchNorm2d(width),
                    nn.ReLU(inplace=True),
                ]
                in_channels = width
            layers.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*layers)
        self.out_channels = in_channels

    def forward(self, images: Tensor) -> Tensor:
        return self.features(images)  # (B, C, h, w)


class ResNetFeatures(nn.Module):
    """A torchvision ResNet without its average pooling and `fc` layer.

    The submodules keep torchvision's names, so the state_dict keys are those
    of the ResNet without the `fc.` keys.
    """

    def __init__(self, resnet: nn.Module):
        super().__init__()
        self.conv1 = resnet.conv1
        self.bn1 = resnet.bn1
        self.relu = resnet.relu
        self.maxpool = resnet.maxpool
        self.layer1 = resnet.layer1
        self.layer2 = resnet.layer2
        self.layer3 = resnet.layer3
        self.layer4 = resnet.layer4

    def forward(self, images: Tensor) -> Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(images))))
        x = self.layer2(self.layer1(x))
        return self.layer4(self.layer3(x))  # (B, C, h, w)


class FeaturesOnly(nn.Module):
    """The `features` part of a torchvision MobileNet or EfficientNet.

    The state_dict keys are those of the model without the `classifier.` keys.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.features = model.features

    def forward(self, images: Tensor) -> Tensor:
        return self.features(images)  # (B, C, h, w)


def build_backbone(options: CNNEncoderOptions) -> tuple[nn.Module, int]:
    """Build the backbone named in `options` and return it with its feature channels.

    Torchvision models are built with `weights=None`, so nothing is downloaded.
    """
    if options.backbone == "small":
        net = SmallConvNet(options.channels or SMALL_CHANNELS)
        return net, net.out_channels
    # Imported here because torchvision adds seconds to every seqkit command
    # that loads the plugins, also those that never build a CNN.
    import torchvision.models

    model = getattr(torchvision.models, options.backbone)(weights=None)
    if options.backbone.startswith("resnet"):
        return ResNetFeatures(model), TORCHVISION_CHANNELS[options.backbone]
    return FeaturesOnly(model), TORCHVISION_CHANNELS[options.backbone]


def grid_side(backbone: str, image_size: int) -> int:
    """Return the side of the final feature map for square images of `image_size`."""
    side = image_size
    if backbone == "small":
        for _ in range(SMALL_HALVINGS):
            side //= 2
        return side
    for _ in range(TORCHVISION_HALVINGS):
        side = math.ceil(side / 2)
    return side


def classifier_prefix(backbone: str) -> str | None:
    """Return the state_dict key prefix of the classifier the encoder removes."""
    if backbone == "small":
        return None
    return "fc." if backbone.startswith("resnet") else "classifier."


def min_image_size(backbone: str) -> int:
    """Return the smallest image side that gives a 1 x 1 feature map."""
    halvings = SMALL_HALVINGS if backbone == "small" else TORCHVISION_HALVINGS
    return 2**halvings


class CNNEncoder(Encoder):
    """A convolutional backbone over images, with its feature grid as the memory.

    `forward` takes images (B, 3, H, W) with values in [0, 1] and normalises
    them itself: with the ImageNet mean and standard deviation for torchvision
    backbones, with 0.5 and 0.5 for the small net. The memory has one row per
    region of the final feature map, in row-major order, and no mask, because
    every region is real. The summary is the mean of the memory over the regions.

    Attributes read by the captioning task and the decoder:
    `image_size` is the side of the images to feed in, `grid_size` the (h, w)
    of the feature map for that size, and `output_size` the memory width M.
    """

    Options = CNNEncoderOptions

    def __init__(self, options: CNNEncoderOptions, context: BuildContext):
        super().__init__()
        self.options = options
        file = context.recipe_file
        if options.channels is not None and options.backbone != "small":
            raise RecipeError(
                f"`channels` sets the width of the small backbone only; remove it "
                f"for backbone {options.backbone!r}",
                file,
                "encoder.channels",
            )
        self.image_size = self._resolve_image_size(options, file)
        side = grid_side(options.backbone, self.image_size)
        self.grid_size = (side, side)

        self.backbone, channels = build_backbone(options)
        if options.weights is not None and not context.restoring:
            path = resolve_inside(
                context.base_dir, options.weights, "encoder.weights", file
            )
            load_backbone_weights(self.backbone, path, options.backbone, file)
        if options.freeze:
            self.backbone.requires_grad_(False)

        if options.backbone == "small":
            mean, std = (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)
        else:
            mean, std = IMAGENET_MEAN, IMAGENET_STD
        # Constants, left out of the state_dict so checkpoints hold only weights.
        self.register_buffer(
            "mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False
        )
        self.register_buffer(
            "std", torch.tensor(std).view(1, 3, 1, 1), persistent=False
        )

        self.projection = None
        self.output_size = channels
        if options.memory_size is not None:
            self.projection = nn.Conv2d(channels, options.memory_size, kernel_size=1)
            self.output_size = options.memory_size
        self.dropout = nn.Dropout(options.dropout)
        # Put a frozen backbone's batch norm layers in eval mode from the start.
        self.train(self.training)

    @staticmethod
    def _resolve_image_size(options: CNNEncoderOptions, file: str | None) -> int:
        if options.image_size is None:
            if options.backbone == "small":
                return SMALL_IMAGE_SIZE
            return TORCHVISION_IMAGE_SIZE
        minimum = min_image_size(options.backbone)
        if options.image_size < minimum:
            raise RecipeError(
                f"must be at least {minimum} for backbone {options.backbone!r}, "
                f"whose feature map has 1/{minimum} of the image's side, "
                f"got {options.image_size}",
                file,
                "encoder.image_size",
            )
        return options.image_size

    def train(self, mode: bool = True) -> CNNEncoder:
        """Set training mode, keeping a frozen backbone in eval mode.

        In eval mode the batch norm layers of a frozen backbone use their
        stored statistics and never update them.
        """
        super().train(mode)
        if self.options.freeze:
            self.backbone.eval()
        return self

    def forward(self, source: Tensor, lengths: Tensor | None = None) -> EncoderOutput:
        """Encode images `source` (B, 3, H, W) with values in [0, 1].

        `lengths` is ignored because images have no padding.
        """
        if source.dim() != 4 or source.shape[1] != 3:
            raise ValueError(
                f"source must be RGB images (B, 3, H, W), got shape "
                f"{tuple(source.shape)}"
            )
        images = (source - self.mean) / self.std
        features = self.backbone(images)  # (B, C, h, w)
        if self.projection is not None:
            features = self.projection(features)  # (B, M, h, w)
        memory = features.flatten(2).transpose(1, 2)  # (B, S, M), row-major regions
        summary = memory.mean(dim=1)  # (B, M)
        return EncoderOutput(
            summary=self.dropout(summary), memory=self.dropout(memory), mask=None
        )


def load_backbone_weights(
    backbone: nn.Module, path: Path, name: str, file: str | None
) -> None:
    """Load the state_dict file at `path` into `backbone` (architecture `name`).

    The file may contain the state_dict itself or a dict with a "state_dict" or
    "model" entry. Keys of the classifier that the encoder removes are ignored.
    Raises `RecipeError` on `encoder.weights` for a missing or unreadable file
    and for keys or shapes that do not match the backbone.
    """
    key = "encoder.weights"
    if not path.is_file():
        raise RecipeError(
            f"weights file not found: {path}; check the path, which starts at the "
            "recipe's folder unless it is absolute",
            file,
            key,
        )
    payload = _read_weights(path, file)
    state = _find_state_dict(payload)
    if state is None:
        raise RecipeError(
            f"{path} contains no state_dict: expected a dict of tensors, or a dict "
            'with a "state_dict" or "model" entry; save the weights with '
            "torch.save(model.state_dict(), path)",
            file,
            key,
        )
    if state and all(name.startswith("module.") for name in state):
        # Saved from an nn.DataParallel or DistributedDataParallel wrapper.
        state = {name.removeprefix("module."): value for name, value in state.items()}

    prefix = classifier_prefix(name)
    ignored = [k for k in state if prefix is not None and k.startswith(prefix)]
    if ignored:
        log.info(
            "ignoring %d classifier keys in %s (%s), because the CNN encoder "
            "removes the classifier of %s",
            len(ignored),
            path,
            ", ".join(ignored[:4]),
            name,
        )
    state = {k: v for k, v in state.items() if k not in ignored}

    _check_keys(backbone, state, path, name, file)
    backbone.load_state_dict(state)


def _read_weights(path: Path, file: str | None) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        # torch 2.14 reports a pickled class or function that a weights-only
        # load does not allow as an "Unsupported global". Its advice to pass
        # weights_only=False is unsafe for a file of unknown origin, so the
        # message is not shown.
        if "Unsupported global" in str(error):
            raise RecipeError(
                f"{path} contains Python objects other than tensors, which are not "
                "loaded because unpickling them could run code; save only the "
                "weights with torch.save(model.state_dict(), path)",
                file,
                "encoder.weights",
            ) from None
        raise _unreadable(path, error, file) from None
    except Exception as error:  # noqa: BLE001 - torch raises many types for bad files
        raise _unreadable(path, error, file) from None


def _unreadable(path: Path, error: Exception, file: str | None) -> RecipeError:
    return RecipeError(
        f"cannot read weights file {path}: it is not a file written by torch.save, "
        f"or it is truncated or corrupt ({type(error).__name__}); save the weights "
        "with torch.save(model.state_dict(), path)",
        file,
        "encoder.weights",
    )


def _find_state_dict(payload: Any) -> dict[str, Tensor] | None:
    """Return the dict of tensors in `payload`, or None if there is none."""
    if isinstance(payload, dict):
        for entry in ("state_dict", "model"):
            if isinstance(payload.get(entry), dict):
                payload = payload[entry]
                break
    if not isinstance(payload, dict):
        return None
    if not all(
        isinstance(k, str) and isinstance(v, Tensor) for k, v in payload.items()
    ):
        return None
    return payload


def _check_keys(
    backbone: nn.Module,
    state: dict[str, Tensor],
    path: Path,
    name: str,
    file: str | None,
) -> None:
    """Raise a `RecipeError` listing the keys and shapes of `state` that do not fit."""
    expected = backbone.state_dict()
    # Batch norm layers fill in a missing `num_batches_tracked` counter when the
    # state_dict has no version metadata, which `state` lost when it was filtered.
    missing = [
        k for k in expected if k not in state and not k.endswith(".num_batches_tracked")
    ]
    unexpected = [k for k in state if k not in expected]
    mismatched = [
        f"{k} {tuple(state[k].shape)} instead of {tuple(expected[k].shape)}"
        for k in state
        if k in expected and state[k].shape != expected[k].shape
    ]
    problems = []
    for label, keys in (
        ("missing key", missing),
        ("unexpected key", unexpected),
        ("wrong shape", mismatched),
    ):
        if keys:
            more = f" and {len(keys) - 3} more" if len(keys) > 3 else ""
            label += "s" if len(keys) > 1 else ""
            problems.append(f"{len(keys)} {label}: {', '.join(keys[:3])}{more}")
    if not problems:
        return
    if name == "small":
        advice = "use weights saved from a small backbone with the same `channels`"
    else:
        advice = (
            "set `encoder.backbone` to the architecture the file was saved from, "
            f"or use weights saved from torchvision.models.{name}()"
        )
    raise RecipeError(
        f"the weights in {path} do not fit backbone {name!r} "
        f"({'; '.join(problems)}); {advice}",
        file,
        "encoder.weights",
    )


@hookimpl
def seqkit_add_encoders() -> dict[str, type]:
    return {"cnn": CNNEncoder}
