"""Classifier backbones by name: the seeds' small CNN (registered here) and every timm model.

`create_backbone` is the one entry point; configs name a backbone and nothing else needs to know where it lives.
"""

from __future__ import annotations

import difflib
import inspect
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import timm
import torch
from timm.models.vision_transformer import VisionTransformer
from torch import nn

from trainables.errors import TrainableInputError

_logger = logging.getLogger(__name__)

BackboneFactory = Callable[..., nn.Module]

_BACKBONE_FACTORIES: dict[str, BackboneFactory] = {}

# A ViT below this many patches per side has too few tokens for attention to mean anything.
MINIMUM_PATCH_GRID = 4

# Used when no pretrained statistics apply: maps [0, 1] to [-1, 1].
DEFAULT_MEAN = 0.5
DEFAULT_STD = 0.5


class BackboneError(TrainableInputError):
    """A backbone name, size or weight source that cannot be used."""


def register_backbone(name: str) -> Callable[[BackboneFactory], BackboneFactory]:
    """Register `factory(*, num_classes, in_channels, image_size, dropout) -> nn.Module` under `name`.

    A registered name takes precedence over a timm model of the same name. To load `pretrained_path` checkpoints
    whose class count differs, the module should expose its last layer through `get_classifier()` as timm models do.
    """

    def decorator(factory: BackboneFactory) -> BackboneFactory:
        if name in _BACKBONE_FACTORIES:
            raise BackboneError(f"backbone {name!r} is already registered (by {_BACKBONE_FACTORIES[name].__qualname__})")
        _BACKBONE_FACTORIES[name] = factory
        return factory

    return decorator


def list_backbones() -> list[str]:
    """The registered backbones; any timm model name (`timm.list_models()`) is accepted as well."""
    return sorted(_BACKBONE_FACTORIES)


def is_known_backbone(name: str) -> bool:
    return name in _BACKBONE_FACTORIES or timm.is_model(name)


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
    """Build a classifier taking float images [N, in_channels, image_size, image_size] and returning logits [N, num_classes].

    `pretrained_path` (a safetensors or torch state-dict file) implies pretrained weights; without it,
    `pretrained=True` downloads timm's published weights from the Hugging Face hub (offline, huggingface_hub
    retries for about a minute before the BackboneError; HF_HUB_OFFLINE=1 fails at once). timm models built for
    one input size (ViTs, Swin) get `img_size=image_size`, and a ViT trained from scratch a patch small enough for
    a grid of at least 4x4 patches. A backbone whose downsampling cannot take images this small fails here, by name.
    """
    _check_sizes(num_classes=num_classes, in_channels=in_channels, image_size=image_size, dropout=dropout)
    if not is_known_backbone(name):
        raise BackboneError(_unknown_backbone_message(name))
    checkpoint = _read_checkpoint(pretrained_path) if pretrained_path is not None else None
    if name in _BACKBONE_FACTORIES:
        return _create_registered_backbone(
            name, num_classes=num_classes, in_channels=in_channels, image_size=image_size, dropout=dropout,
            pretrained=pretrained, checkpoint=checkpoint,
        )
    return _create_timm_backbone(
        name, num_classes=num_classes, in_channels=in_channels, image_size=image_size, dropout=dropout,
        pretrained=pretrained, checkpoint=checkpoint,
    )


def input_normalization(name: str, in_channels: int, pretrained: bool) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(mean, std) per channel for float images in [0, 1].

    Pretrained timm models get the statistics their weights were trained with; a grayscale input averages
    them to one channel (matching timm's summing of the first convolution's RGB weights). Other channel
    counts repeat the averaged value. Without pretrained weights every channel gets 0.5 / 0.5.
    """
    if in_channels < 1:
        raise BackboneError(f"in_channels must be a positive integer, got {in_channels!r}")
    if not is_known_backbone(name):
        raise BackboneError(_unknown_backbone_message(name))
    pretrained_config = timm.get_pretrained_cfg(name) if pretrained and name not in _BACKBONE_FACTORIES else None
    if pretrained_config is None or pretrained_config.mean is None or pretrained_config.std is None:
        return (DEFAULT_MEAN,) * in_channels, (DEFAULT_STD,) * in_channels
    mean, std = tuple(float(value) for value in pretrained_config.mean), tuple(float(value) for value in pretrained_config.std)
    if in_channels == len(mean):
        return mean, std
    return (sum(mean) / len(mean),) * in_channels, (sum(std) / len(std),) * in_channels


class BasicCNN(nn.Module):
    """The basic CNN of Kwon 2024: two conv/ReLU/max-pool blocks, two hidden fully connected layers, a classifier."""

    def __init__(
        self,
        *,
        num_classes: int,
        in_channels: int,
        image_size: int,
        dropout: float,
        channels: tuple[int, int] = (16, 32),
        hidden: tuple[int, int] = (128, 64),
    ) -> None:
        super().__init__()
        if image_size < 8:
            raise BackboneError(f"basic_cnn needs image_size >= 8 (two 2x max-pools), got {image_size}")
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, channels[0], kernel_size=3, padding=1),
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
            nn.Dropout(dropout),
            nn.Linear(hidden[0], hidden[1]),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
        )
        self.classifier = nn.Linear(hidden[1], num_classes)

    def get_classifier(self) -> nn.Module:
        return self.classifier

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.hidden(self.features(images)))


@register_backbone("basic_cnn")
def basic_cnn(*, num_classes: int, in_channels: int, image_size: int, dropout: float) -> nn.Module:
    return BasicCNN(num_classes=num_classes, in_channels=in_channels, image_size=image_size, dropout=dropout)


def _check_sizes(*, num_classes: int, in_channels: int, image_size: int, dropout: float) -> None:
    if not isinstance(num_classes, int) or num_classes < 2:
        raise BackboneError(f"num_classes must be an integer >= 2, got {num_classes!r}")
    if not isinstance(in_channels, int) or in_channels < 1:
        raise BackboneError(f"in_channels must be a positive integer (1 for grayscale, 3 for RGB), got {in_channels!r}")
    if not isinstance(image_size, int) or image_size < 1:
        raise BackboneError(f"image_size must be a positive integer (pixels per side), got {image_size!r}")
    if not 0.0 <= dropout < 1.0:
        raise BackboneError(f"dropout must be in [0, 1), got {dropout!r}")


def _unknown_backbone_message(name: str) -> str:
    candidates = list(_BACKBONE_FACTORIES) + timm.list_models()
    close = difflib.get_close_matches(name, candidates, n=5, cutoff=0.6)
    suggestion = f" (did you mean {', '.join(close)}?)" if close else ""
    return (
        f"unknown backbone {name!r}{suggestion}. Registered backbones: {', '.join(list_backbones())}; "
        f"any timm model name (timm.list_models()) is accepted too"
    )


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


def _create_registered_backbone(
    name: str,
    *,
    num_classes: int,
    in_channels: int,
    image_size: int,
    dropout: float,
    pretrained: bool,
    checkpoint: dict[str, torch.Tensor] | None,
) -> nn.Module:
    if pretrained and checkpoint is None:
        raise BackboneError(
            f"backbone {name!r} has no published pretrained weights; pass pretrained_path or set pretrained false"
        )
    factory = _BACKBONE_FACTORIES[name]
    model = factory(num_classes=num_classes, in_channels=in_channels, image_size=image_size, dropout=dropout)
    if checkpoint is not None:
        _load_registered_checkpoint(name, model, checkpoint)
    return model


def _load_registered_checkpoint(name: str, model: nn.Module, checkpoint: dict[str, torch.Tensor]) -> None:
    """Load all weights; the classifier is left freshly initialised when its class count differs, as timm does."""
    state = model.state_dict()
    classifier_keys = _classifier_keys(model)
    head_differs = any(key in checkpoint and checkpoint[key].shape != state[key].shape for key in classifier_keys)
    if head_differs:
        checkpoint = {key: value for key, value in checkpoint.items() if key not in classifier_keys}
    try:
        model.load_state_dict(checkpoint, strict=not head_differs)
    except RuntimeError as error:
        raise BackboneError(f"the checkpoint does not fit backbone {name!r} with these sizes: {error}") from error


def _classifier_keys(model: nn.Module) -> set[str]:
    get_classifier = getattr(model, "get_classifier", None)
    if get_classifier is None:
        return set()
    classifier = get_classifier()
    for module_name, module in model.named_modules():
        if module is classifier:
            prefix = f"{module_name}." if module_name else ""
            return {prefix + parameter_name for parameter_name, _ in module.named_parameters()}
    return set()


def _create_timm_backbone(
    name: str,
    *,
    num_classes: int,
    in_channels: int,
    image_size: int,
    dropout: float,
    pretrained: bool,
    checkpoint: dict[str, torch.Tensor] | None,
) -> nn.Module:
    arguments: dict[str, Any] = dict(num_classes=num_classes, in_chans=in_channels, drop_rate=dropout)
    default_probe = _probe(name, arguments)
    size_arguments = _size_arguments(default_probe, image_size, pretrained or checkpoint is not None, checkpoint)
    probe = _probe(name, {**arguments, **size_arguments}) if size_arguments else default_probe
    arguments.update(size_arguments)
    _check_accepts_image_size(name, probe, default_probe, in_channels, image_size)
    if pretrained and checkpoint is None:
        return _create_with_downloaded_weights(name, arguments)
    overlay = _checkpoint_overlay(name, checkpoint, probe) if checkpoint is not None else None
    try:
        return timm.create_model(name, pretrained=checkpoint is not None, pretrained_cfg_overlay=overlay, **arguments)
    except (RuntimeError, ValueError, AssertionError, TypeError) as error:
        settings = f"in_channels={in_channels}, image_size={image_size}, num_classes={num_classes}"
        source = " from pretrained_path" if checkpoint is not None else ""
        raise BackboneError(f"timm could not build backbone {name!r}{source} with {settings}: {error}") from error


def _probe(name: str, arguments: dict[str, Any]) -> nn.Module | None:
    """Build the model on the meta device (no memory, no weights) to learn its structure; None if that fails."""
    try:
        with torch.device("meta"):
            return timm.create_model(name, pretrained=False, **arguments)
    except Exception as error:  # noqa: BLE001 - some timm constructors read tensor values, which meta cannot give
        _logger.debug("could not probe %s on the meta device: %s", name, error)
        return None


def _size_arguments(
    probe: nn.Module | None,
    image_size: int,
    pretrained: bool,
    checkpoint: dict[str, torch.Tensor] | None,
) -> dict[str, Any]:
    """`img_size` for models built for one input size (ViTs and similar), and a ViT patch small enough for small images.

    A ViT trained from scratch gets the largest patch giving a grid of at least 4x4 patches (vit_tiny_patch16 at
    28 px: patch 7); a pretrained ViT keeps the patch of its weights (a local checkpoint's own patch) so they load
    unchanged, and timm resamples the position embedding to the new grid.
    """
    if probe is None or not _takes_image_size(type(probe)):
        return {}
    size_arguments: dict[str, Any] = {"img_size": image_size}
    if isinstance(probe, VisionTransformer):
        if checkpoint is not None and checkpoint.get("patch_embed.proj.weight", torch.empty(0)).ndim == 4:
            size_arguments["patch_size"] = int(checkpoint["patch_embed.proj.weight"].shape[-1])
        elif not pretrained:
            default_patch = probe.patch_embed.patch_size[0]
            if image_size // default_patch < MINIMUM_PATCH_GRID:
                size_arguments["patch_size"] = max(1, image_size // MINIMUM_PATCH_GRID)
    return size_arguments


def _takes_image_size(model_class: type) -> bool:
    # Subclasses often take **kwargs and pass them on (timm's distilled DeiT), so the whole MRO is asked.
    return any(
        "img_size" in inspect.signature(base.__init__).parameters
        for base in model_class.__mro__
        if issubclass(base, nn.Module) and base is not nn.Module
    )


def _check_accepts_image_size(
    name: str, probe: nn.Module | None, default_probe: nn.Module | None, in_channels: int, image_size: int
) -> None:
    """Fail now, naming the backbone, when its downsampling leaves nothing of an image this small.

    A forward pass on the meta device costs no compute; when it fails, the same pass at the model's default input
    size tells a size problem apart from an operation the meta device cannot run.
    """
    if probe is None or default_probe is None:
        return
    error = _meta_forward_error(probe, in_channels, image_size)
    if error is None:
        return
    default_size = (timm.get_pretrained_cfg_value(name, "input_size") or (3, 224, 224))[-1]
    if _meta_forward_error(default_probe, in_channels, default_size) is not None:
        _logger.debug("could not check %s on the meta device: %s", name, error)
        return
    raise BackboneError(
        f"backbone {name!r} cannot take {image_size}x{image_size} images ({error}); "
        f"use a larger image_size or a backbone that downsamples less (basic_cnn, resnet18)"
    ) from error


def _meta_forward_error(probe: nn.Module, in_channels: int, image_size: int) -> Exception | None:
    probe.eval()
    try:
        probe(torch.empty(1, in_channels, image_size, image_size, device="meta"))
    except Exception as error:  # noqa: BLE001 - any failure is an answer here, the caller tells which kind
        return error
    return None


def _checkpoint_overlay(name: str, checkpoint: dict[str, torch.Tensor], probe: nn.Module | None) -> dict[str, Any]:
    """Hand the checkpoint to timm's own loader, so in_chans adaptation and head reset follow timm's rules.

    The state dict is passed rather than `file=path`: models whose published weights use a custom format
    (ViT .npz) would otherwise send a torch file to that custom loader. `num_classes` and the input channels
    are the checkpoint's own, so timm keeps the classifier exactly when the class count is unchanged and adapts
    the first convolution exactly when the channel count changed.
    """
    overlay: dict[str, Any] = dict(state_dict=dict(checkpoint), source=None)
    classifier = timm.get_pretrained_cfg_value(name, "classifier")
    classifier_names = (classifier,) if isinstance(classifier, str) else tuple(classifier or ())
    overlay["num_classes"] = 0  # no classifier in the checkpoint: any class count differs, so timm loads non-strictly
    for classifier_name in classifier_names:
        weight = checkpoint.get(f"{classifier_name}.weight")
        if weight is not None:
            overlay["num_classes"] = int(weight.shape[0])
            break
    checkpoint_channels = _checkpoint_input_channels(name, checkpoint, probe)
    input_size = timm.get_pretrained_cfg_value(name, "input_size")
    if checkpoint_channels is not None and input_size is not None:
        overlay["input_size"] = (checkpoint_channels, *tuple(input_size)[1:])
    return overlay


def _checkpoint_input_channels(name: str, checkpoint: dict[str, torch.Tensor], probe: nn.Module | None) -> int | None:
    """The image channels a checkpoint was trained on, read from its first convolution when that is a plain one."""
    first_conv = timm.get_pretrained_cfg_value(name, "first_conv")
    if probe is None or not isinstance(first_conv, str):
        return None
    weight = checkpoint.get(f"{first_conv}.weight")
    try:
        module = probe.get_submodule(first_conv)
    except AttributeError:
        return None
    # Space-to-depth or grouped stems fold channels into the weight; only a plain stem shows them directly.
    if weight is None or weight.ndim != 4 or not isinstance(module, nn.Conv2d) or module.groups != 1:
        return None
    return int(weight.shape[1])


def _create_with_downloaded_weights(name: str, arguments: dict[str, Any]) -> nn.Module:
    pretrained_config = timm.get_pretrained_cfg(name)
    if pretrained_config is None or not (pretrained_config.hf_hub_id or pretrained_config.url):
        raise BackboneError(f"timm publishes no pretrained weights for {name!r}; set pretrained false")
    try:
        return timm.create_model(name, pretrained=True, **arguments)
    except OSError as error:
        # huggingface_hub retries for about a minute before giving up; HF_HUB_OFFLINE=1 makes it fail at once.
        raise BackboneError(
            f"weights for {name!r} could not be downloaded (no network?): {error}; download them once and pass "
            f"pretrained_path, or set pretrained false"
        ) from error
