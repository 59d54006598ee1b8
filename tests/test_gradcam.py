"""Grad-CAM of real and synthetic images on tiny timm models at 28 px: a CNN whose last stage is 1x1 there, and a
ViT whose tokens need a reshape; heatmap shapes and the PNG grids per class."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from search.diagnostics.gradcam import gradcam_maps, target_layer, vit_tokens_to_map, write_gradcam
from spaces import TrialConfig
from trainables.datasets import load_dataset
from trainables.replicas import build_model, normalization_of

DATA = load_dataset("phantom", image_size=28, phantom_count=60).for_search()


def model_of(backbone: str) -> tuple[torch.nn.Module, tuple]:
    trial = TrialConfig.from_mapping({"model": {"backbone": backbone}})
    torch.manual_seed(0)
    return build_model(trial, DATA).eval(), normalization_of(trial, DATA)


@pytest.mark.parametrize("backbone", ["resnet18", "vit_tiny_patch16_224", "basic_cnn"])
def test_heatmaps_have_the_image_size_and_come_from_a_map_larger_than_1x1(backbone: str) -> None:
    model, normalization = model_of(backbone)
    layer, reshape = target_layer(model, DATA.channels, DATA.image_size)
    captured = []
    handle = layer.register_forward_hook(lambda _module, _inputs, output: captured.append(output))
    with torch.no_grad():
        model(torch.zeros(1, DATA.channels, 28, 28))
    handle.remove()
    feature_map = reshape(captured[0]) if reshape is not None else captured[0]
    assert feature_map.ndim == 4 and min(feature_map.shape[2:]) > 1
    if backbone == "resnet18":
        assert layer is model.layer3  # layer4 is 1x1 at 28 px
    images, labels = DATA.val.images[:3], DATA.val.labels[:3]
    maps = gradcam_maps(model, normalization, images, labels)
    assert maps.shape == (3, 28, 28) and maps.dtype == np.float32
    assert np.isfinite(maps).all() and maps.min() >= 0.0 and maps.max() <= 1.0
    # Not a constant picture: the map varies over the image.
    assert (maps.reshape(3, -1).std(axis=1) > 0).any()


def test_vit_reshape_drops_the_prefix_tokens_and_lays_patches_on_their_grid() -> None:
    tokens = torch.arange(2 * (1 + 6) * 3, dtype=torch.float32).reshape(2, 7, 3)
    feature_map = vit_tokens_to_map(tokens, prefix_tokens=1, grid=(2, 3))
    assert feature_map.shape == (2, 3, 2, 3)
    # Patch token (row 1, column 2) is token 1 + 1 * 3 + 2 = 6.
    assert torch.equal(feature_map[0, :, 1, 2], tokens[0, 6])


def test_a_png_per_class_with_real_and_synthetic_rows(tmp_path: Path) -> None:
    model, normalization = model_of("basic_cnn")
    synthetic = {0: DATA.train.images[DATA.train.labels == 0][:4]}  # only class 0 has synthetic images
    paths = write_gradcam(tmp_path, model, normalization, DATA, synthetic, per_class=4)
    assert [path.name for path in paths] == [f"gradcam_{name}.png" for name in DATA.class_names]
    for path in paths:
        with Image.open(path) as image:
            assert image.format == "PNG" and image.size[0] > 100
