"""Classifier backbones by name: every timm model, and the seeds' small CNN registered into timm's own registry.

`create_backbone` is the one entry point; it is `timm.create_model` plus two things timm leaves to its caller:
local pretrained weights (no hub access at run time) and a patch small enough for a ViT trained on small images.
A backbone is added the timm way: `@timm.models.register_model` on a function building it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import timm
import torch
from timm.models import build_model_with_cfg, register_model
from timm.models.vision_transformer import VisionTransformer
from torch import nn

from spaces.errors import did_you_mean
from trainables.errors import TrainableInputError

_logger = logging.getLogger(__name__)

# A ViT below this many patches per side has too few tokens for attention to mean anything.
MINIMUM_PATCH_GRID = 4

# Used when no pretrained statistics apply: maps [0, 1] to [-1, 1].
DEFAULT_MEAN = 0.5
DEFAULT_STD = 0.5


class BackboneError(TrainableInputError):
    """A backbone name, size or weight source that cannot be used."""


class BasicCNN(nn.Module):
    """The basic CNN of Kwon 2024: two conv/ReLU/max-pool blocks, two hidden fully connected layers, a classifier."""

    def __init__(
        self,
        *,
        num_classes: int,
        in_chans: int,
        img_size: int | tuple[int, int],
        drop_rate: float = 0.0,
        channels: tuple[int, int] = (16, 32),
        hidden: tuple[int, int] = (128, 64),
    ) -> None:
        super().__init__()
        image_size = img_size if isinstance(img_size, int) else img_size[0]
        if image_size < 8:
            raise BackboneError(f"basic_cnn needs image_size >= 8 (two 2x max-pools), got {image_size}")
        self.features = nn.Sequential(
            nn.Conv2d(in_chans, channels[0], kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(channels[0], channels[1], kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Flatten(),
        )
        pooled_size = image_size // 4
        self.hidden = nn.Sequential(
            nn.Linear(channels[1] * pooled_size * pooled_size, hidden[0]),
            nn.ReLU(inplace=True),
            nn.Dropout(drop_rate),
            nn.Linear(hidden[0], hidden[1]),
            nn.ReLU(inplace=True),
            nn.Dropout(drop_rate),
        )
        self.num_features = hidden[1]
        self.classifier = nn.Linear(hidden[1], num_classes)

    def get_classifier(self) -> nn.Module:
        return self.classifier

    def reset_classifier(self, num_classes: int) -> None:
        """timm's convention: a new classifier for `num_classes`, or none (the model returns its features) for 0."""
        self.classifier = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.hidden(self.features(images)))


# timm reads a module's `default_cfgs` when a model of it is registered: basic_cnn takes a fixed input size (its
# first linear layer depends on it), and timm's own loader finds its first convolution and classifier by these names.
default_cfgs = {
    "basic_cnn": dict(
        num_classes=2, input_size=(1, 32, 32), fixed_input_size=True, mean=(DEFAULT_MEAN,), std=(DEFAULT_STD,),
        first_conv="features.0", classifier="classifier",
    )
}


@register_model
def basic_cnn(pretrained: bool = False, **kwargs: Any) -> BasicCNN:
    return build_model_with_cfg(BasicCNN, "basic_cnn", pretrained, **kwargs)


def is_known_backbone(name: str) -> bool:
    return timm.is_model(name)


def unknown_backbone_message(name: str) -> str:
    close = did_you_mean(name, timm.list_models(), n=5)
    suggestion = f" ({close})" if close else ""
    return f"unknown backbone {name!r}{suggestion}; allowed: basic_cnn or any timm model name (timm.list_models())"


def create_backbone(
    name: str,
    *,
    num_classes: int,
    in_channels: int,
    image_size: int,
    dropout: float = 0.0,
    pretrained: bool = False,
    pretrained_path: str | None = None,
) -> nn.Module:
    """A classifier taking float images [N, in_channels, image_size, image_size] and returning logits [N, num_classes].

    `pretrained_path` (a safetensors or torch state-dict file) implies pretrained weights, loaded by timm's own
    loader (it adapts the first convolution to the channel count and resets a head of another class count);
    without it, `pretrained=True` downloads timm's published weights. Models that take one input size get
    `img_size=image_size`, and a ViT trained from scratch a patch small enough for a grid of at least 4x4 patches.
    """
    if not is_known_backbone(name):
        raise BackboneError(unknown_backbone_message(name))
    arguments: dict[str, Any] = dict(num_classes=num_classes, in_chans=in_channels, drop_rate=dropout)
    checkpoint = _read_checkpoint(pretrained_path) if pretrained_path is not None else None
    if _config_value(name, "fixed_input_size"):
        arguments["img_size"] = image_size
        arguments.update(_vit_patch(name, image_size, pretrained or checkpoint is not None, checkpoint))
    if checkpoint is not None:
        return _create(name, arguments, pretrained=True, pretrained_cfg_overlay=_checkpoint_overlay(name, checkpoint))
    if pretrained:
        if not (_config_value(name, "hf_hub_id") or _config_value(name, "url")):
            raise BackboneError(
                f"backbone {name!r} has no published pretrained weights; pass pretrained_path or set pretrained false"
            )
        try:
            return timm.create_model(name, pretrained=True, **arguments)
        except OSError as error:
            # huggingface_hub retries for about a minute before giving up; HF_HUB_OFFLINE=1 makes it fail at once.
            raise BackboneError(
                f"weights for {name!r} could not be downloaded (no network?): {error}; download them once and pass "
                f"pretrained_path, or set pretrained false"
            ) from error
    return _create(name, arguments, pretrained=False)


def check_backbone(
    name: str, *, num_classes: int, in_channels: int, image_size: int, pretrained: bool, pretrained_path: str | None
) -> None:
    """Builds the backbone and runs two blank images through it, so a name, weights or an image size it cannot
    take fail before the sweep starts, by name, instead of in every trial."""
    model = create_backbone(
        name, num_classes=num_classes, in_channels=in_channels, image_size=image_size,
        pretrained=pretrained, pretrained_path=pretrained_path,
    )
    check_forward(model, name, in_channels=in_channels, image_size=image_size)


def check_forward(model: nn.Module, name: str, *, in_channels: int, image_size: int) -> None:
    """Two blank images through the model in eval mode; a size it cannot take is a BackboneError naming `name`."""
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(2, in_channels, image_size, image_size))
    except (RuntimeError, ValueError, AssertionError) as error:
        raise BackboneError(
            f"backbone {name!r} cannot take {image_size}x{image_size} images ({error}); "
            f"use a larger image_size or a backbone that downsamples less (basic_cnn, resnet18)"
        ) from error


def input_normalization(name: str, in_channels: int, pretrained: bool) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(mean, std) per channel for float images in [0, 1].

    Pretrained weights get the statistics timm's pretrained config gives; a grayscale input averages them to one
    channel (matching timm's summing of the first convolution's RGB weights). Without pretrained weights every
    channel gets 0.5 / 0.5.
    """
    config = timm.get_pretrained_cfg(name) if pretrained else None
    if config is None or config.mean is None or config.std is None:
        return (DEFAULT_MEAN,) * in_channels, (DEFAULT_STD,) * in_channels
    mean, std = tuple(float(value) for value in config.mean), tuple(float(value) for value in config.std)
    if in_channels == len(mean):
        return mean, std
    return (sum(mean) / len(mean),) * in_channels, (sum(std) / len(std),) * in_channels


def _config_value(name: str, key: str) -> Any:
    """A value of timm's pretrained config for the model; None for a model registered without one."""
    return getattr(timm.get_pretrained_cfg(name), key, None)


def _create(
    name: str, arguments: dict[str, Any], *, pretrained: bool, pretrained_cfg_overlay: dict[str, Any] | None = None
) -> nn.Module:
    try:
        return timm.create_model(name, pretrained=pretrained, pretrained_cfg_overlay=pretrained_cfg_overlay, **arguments)
    except BackboneError:
        raise
    except (RuntimeError, ValueError, AssertionError, TypeError) as error:
        settings = f"in_channels={arguments['in_chans']}, num_classes={arguments['num_classes']}"
        source = " from pretrained_path" if pretrained_cfg_overlay is not None else ""
        raise BackboneError(f"timm could not build backbone {name!r}{source} with {settings}: {error}") from error


def _vit_patch(name: str, image_size: int, pretrained: bool, checkpoint: dict[str, torch.Tensor] | None) -> dict[str, Any]:
    """A ViT trained from scratch gets the largest patch giving a grid of at least 4x4 patches (vit_tiny_patch16
    at 28 px: patch 7); a pretrained ViT keeps the patch of its weights (a local checkpoint's own patch) so they
    load unchanged, and timm resamples the position embedding to the new grid."""
    if checkpoint is not None and checkpoint.get("patch_embed.proj.weight", torch.empty(0)).ndim == 4:
        return {"patch_size": int(checkpoint["patch_embed.proj.weight"].shape[-1])}
    if pretrained:
        return {}
    # timm's config does not record a model's patch; building it on the meta device costs no memory or compute.
    with torch.device("meta"):
        model = timm.create_model(name, pretrained=False, img_size=image_size)
    if isinstance(model, VisionTransformer) and image_size // model.patch_embed.patch_size[0] < MINIMUM_PATCH_GRID:
        return {"patch_size": max(1, image_size // MINIMUM_PATCH_GRID)}
    return {}


def _read_checkpoint(pretrained_path: str) -> dict[str, torch.Tensor]:
    path = Path(pretrained_path)
    if not path.is_file():
        raise BackboneError(f"pretrained_path {str(path)!r} does not exist or is not a file")
    try:
        # timm's reader handles safetensors and torch files, unwrapping {'state_dict': ...} / {'model': ...}.
        return timm.models.load_state_dict(str(path))
    except Exception as error:
        raise BackboneError(
            f"pretrained_path {str(path)!r} could not be read as a safetensors or torch state dict: {error}"
        ) from error


def _checkpoint_overlay(name: str, checkpoint: dict[str, torch.Tensor]) -> dict[str, Any]:
    """Hand the checkpoint to timm's own loader, so in_chans adaptation and head reset follow timm's rules.

    The state dict is passed rather than `file=path`: models whose published weights use a custom format
    (ViT .npz) would otherwise send a torch file to that custom loader. `num_classes` and the input channels
    are the checkpoint's own, so timm keeps the classifier exactly when the class count is unchanged and adapts
    the first convolution exactly when the channel count changed.
    """
    overlay: dict[str, Any] = dict(state_dict=dict(checkpoint), source=None)
    classifier = _config_value(name, "classifier")
    classifier_names = (classifier,) if isinstance(classifier, str) else tuple(classifier or ())
    overlay["num_classes"] = 0  # no classifier in the checkpoint: any class count differs, so timm loads non-strictly
    for classifier_name in classifier_names:
        weight = checkpoint.get(f"{classifier_name}.weight")
        if weight is not None:
            overlay["num_classes"] = int(weight.shape[0])
            break
    # The channels the checkpoint was trained on, read from a plain 4-d first convolution (space-to-depth and
    # grouped stems fold channels into the weight, and then timm's default stays).
    first_conv = _config_value(name, "first_conv")
    input_size = _config_value(name, "input_size")
    weight = checkpoint.get(f"{first_conv}.weight") if isinstance(first_conv, str) else None
    if weight is not None and weight.ndim == 4 and weight.shape[1] in (1, 3) and input_size is not None:
        overlay["input_size"] = (int(weight.shape[1]), *tuple(input_size)[1:])
    return overlay
