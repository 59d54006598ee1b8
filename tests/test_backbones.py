"""Backbones by name: the basic CNN registered into timm, timm models at small image sizes, local pretrained weights."""

from __future__ import annotations

from pathlib import Path

import huggingface_hub.constants
import pytest
import safetensors.torch
import timm
import torch
from timm.models import register_model
from torch import nn

from trainables.backbones import BackboneError, check_backbone, create_backbone, input_normalization, is_known_backbone
from trainables.errors import TrainableInputError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


# Tiny models: on a machine shared with other jobs, two torch threads that wait on each other are slower than one.
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def forward_and_backward(model: nn.Module, in_channels: int, image_size: int) -> torch.Tensor:
    logits = model(torch.randn(2, in_channels, image_size, image_size))
    logits.sum().backward()
    return logits


@pytest.mark.parametrize("name", ["basic_cnn", "resnet18", "vit_tiny_patch16_224"])
@pytest.mark.parametrize(("in_channels", "image_size"), [(1, 28), (3, 64)])
def test_backbone_trains_on_small_images(name: str, in_channels: int, image_size: int) -> None:
    model = create_backbone(name, num_classes=3, in_channels=in_channels, image_size=image_size, dropout=0.1)
    logits = forward_and_backward(model, in_channels, image_size)
    assert logits.shape == (2, 3)
    assert all(parameter.grad is not None for parameter in model.parameters() if parameter.requires_grad)


@pytest.mark.parametrize(("image_size", "expected_patch"), [(28, 7), (32, 8), (64, 16), (128, 16)])
def test_vit_from_scratch_gets_a_patch_grid_of_at_least_four(image_size: int, expected_patch: int) -> None:
    model = create_backbone("test_vit", num_classes=2, in_channels=1, image_size=image_size)
    assert model.patch_embed.patch_size == (expected_patch, expected_patch)
    assert model.patch_embed.grid_size[0] >= 4


def test_basic_cnn_accepts_the_smallest_size_and_rejects_smaller() -> None:
    model = create_backbone("basic_cnn", num_classes=2, in_channels=1, image_size=8)
    assert forward_and_backward(model, 1, 8).shape == (2, 2)
    with pytest.raises(BackboneError, match="basic_cnn needs image_size >= 8.*got 7"):
        create_backbone("basic_cnn", num_classes=2, in_channels=1, image_size=7)


def test_basic_cnn_has_the_kwon_layout() -> None:
    model = create_backbone("basic_cnn", num_classes=4, in_channels=1, image_size=32, dropout=0.3)
    assert [type(layer) for layer in model.modules() if isinstance(layer, (nn.Conv2d, nn.MaxPool2d))] == [
        nn.Conv2d, nn.MaxPool2d, nn.Conv2d, nn.MaxPool2d,
    ]
    linear_layers = [layer for layer in model.modules() if isinstance(layer, nn.Linear)]
    assert len(linear_layers) == 3
    assert linear_layers[-1] is model.get_classifier() and linear_layers[-1].out_features == 4
    assert all(layer.p == 0.3 for layer in model.modules() if isinstance(layer, nn.Dropout))


def test_backbone_too_small_for_the_image_is_named() -> None:
    with pytest.raises(BackboneError, match="backbone 'densenet121' cannot take 28x28 images"):
        check_backbone("densenet121", num_classes=2, in_channels=1, image_size=28, pretrained=False, pretrained_path=None)
    check_backbone("resnet18", num_classes=2, in_channels=1, image_size=28, pretrained=False, pretrained_path=None)


def test_unknown_backbone_suggests_close_names() -> None:
    with pytest.raises(BackboneError, match=r"unknown backbone 'resnet81' \(did you mean 'resnet18'.*basic_cnn or any timm"):
        create_backbone("resnet81", num_classes=2, in_channels=1, image_size=28)


def test_backbone_error_is_a_trainable_input_error() -> None:
    with pytest.raises(TrainableInputError):
        create_backbone("no_such_backbone", num_classes=2, in_channels=1, image_size=28)


def test_known_backbones_are_timm_names_basic_cnn_included() -> None:
    assert "basic_cnn" in timm.list_models()
    assert is_known_backbone("basic_cnn")
    assert is_known_backbone("resnet18")
    assert is_known_backbone("resnet18.a1_in1k")
    assert not is_known_backbone("resnet81")


def linear_probe(
    pretrained: bool = False, *, num_classes: int, in_chans: int, drop_rate: float = 0.0, **kwargs: object
) -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Dropout(drop_rate), nn.LazyLinear(num_classes))


def test_a_backbone_registered_into_timm_is_created_by_name() -> None:
    register_model(linear_probe)
    model = create_backbone("linear_probe", num_classes=5, in_channels=1, image_size=8)
    assert model(torch.zeros(2, 1, 8, 8)).shape == (2, 5)


def test_pretrained_download_without_network_says_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    # Offline mode makes huggingface_hub fail at once instead of retrying for a minute.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(BackboneError, match="weights for 'test_resnet' could not be downloaded.*pass pretrained_path"):
        create_backbone("test_resnet", num_classes=2, in_channels=1, image_size=28, pretrained=True)


def test_basic_cnn_has_no_published_weights() -> None:
    with pytest.raises(BackboneError, match="'basic_cnn' has no published pretrained weights; pass pretrained_path"):
        create_backbone("basic_cnn", num_classes=2, in_channels=1, image_size=28, pretrained=True)


def test_missing_pretrained_path_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "missing.safetensors"
    with pytest.raises(BackboneError, match=f"pretrained_path '{missing}' does not exist"):
        create_backbone("test_resnet", num_classes=2, in_channels=1, image_size=28, pretrained_path=str(missing))


def test_unreadable_pretrained_path_is_named(tmp_path: Path) -> None:
    garbage = tmp_path / "weights.pth"
    garbage.write_text("not a checkpoint")
    with pytest.raises(BackboneError, match=f"pretrained_path '{garbage}' could not be read"):
        create_backbone("test_resnet", num_classes=2, in_channels=1, image_size=28, pretrained_path=str(garbage))


def save_checkpoint(model: nn.Module, path: Path) -> None:
    state = {key: value.contiguous() for key, value in model.state_dict().items()}
    if path.suffix == ".safetensors":
        safetensors.torch.save_file(state, str(path))
    else:
        torch.save(state, path)


def differing_weights(original: nn.Module, loaded: nn.Module) -> set[str]:
    loaded_state = loaded.state_dict()
    return {
        key for key, value in original.state_dict().items()
        if value.shape != loaded_state[key].shape or not torch.equal(value, loaded_state[key])
    }


@pytest.mark.parametrize(("name", "head"), [("basic_cnn", "classifier"), ("test_resnet", "fc"), ("test_vit", "head")])
@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_pretrained_path_loads_all_weights_and_resets_a_resized_head(name: str, head: str, suffix: str, tmp_path: Path) -> None:
    original = create_backbone(name, num_classes=3, in_channels=1, image_size=28)
    path = tmp_path / f"weights{suffix}"
    save_checkpoint(original, path)

    same_classes = create_backbone(name, num_classes=3, in_channels=1, image_size=28, pretrained_path=str(path))
    assert differing_weights(original, same_classes) == set()

    more_classes = create_backbone(name, num_classes=5, in_channels=1, image_size=28, pretrained_path=str(path))
    assert differing_weights(original, more_classes) == {f"{head}.weight", f"{head}.bias"}
    assert more_classes.state_dict()[f"{head}.weight"].shape[0] == 5


def test_pretrained_path_adapts_grayscale_weights_to_rgb_as_timm_does(tmp_path: Path) -> None:
    grayscale = create_backbone("test_resnet", num_classes=2, in_channels=1, image_size=32)
    path = tmp_path / "grayscale.pth"
    save_checkpoint(grayscale, path)
    rgb = create_backbone("test_resnet", num_classes=2, in_channels=3, image_size=32, pretrained_path=str(path))
    grayscale_stem = grayscale.state_dict()["conv1.0.weight"]
    # timm repeats the single channel and divides by the new channel count, so a gray image gives the same response.
    torch.testing.assert_close(rgb.state_dict()["conv1.0.weight"], grayscale_stem.repeat(1, 3, 1, 1) / 3)


def test_normalization_follows_pretrained_statistics() -> None:
    assert input_normalization("resnet18", 3, pretrained=True) == (IMAGENET_MEAN, IMAGENET_STD)
    mean, std = input_normalization("resnet18", 1, pretrained=True)
    assert mean == pytest.approx((sum(IMAGENET_MEAN) / 3,)) and std == pytest.approx((sum(IMAGENET_STD) / 3,))
    assert input_normalization("resnet18", 1, pretrained=False) == ((0.5,), (0.5,))
    assert input_normalization("basic_cnn", 3, pretrained=True) == ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))


@pytest.mark.parametrize("name", ["densenet121", "efficientnet_b0"])
def test_larger_timm_backbones_train_on_rgb_64(name: str) -> None:
    model = create_backbone(name, num_classes=3, in_channels=3, image_size=64)
    assert forward_and_backward(model, 3, 64).shape == (2, 3)
