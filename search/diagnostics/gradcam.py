"""Grad-CAM of the best model on real validation and synthetic images, per class (Kwon 2024): does the classifier
look at the same places in both? PNG grids `gradcam_<class>.png`, computed with pytorch-grad-cam."""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path

import numpy as np
import torch
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.image import show_cam_on_image
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from timm.models.vision_transformer import VisionTransformer
from torch import Tensor, nn

from generators.pool import PoolKey, SyntheticPool
from search.report.figures import plt, save_figure
from search.report.files import gradcam_file
from spaces import TrialConfig
from trainables.datasets import SearchData
from trainables.metrics import sanitize_class_name
from trainables.replicas import build_model, load_saved_trial, normalization_of
from trainables.training import Normalization, to_model_input

ReshapeTransform = Callable[[Tensor], Tensor]


def vit_tokens_to_map(tokens: Tensor, *, prefix_tokens: int, grid: tuple[int, int]) -> Tensor:
    """A ViT block's tokens [B, prefix + h*w, D] as a feature map [B, D, h, w]: the class (and register) tokens
    timm puts first are dropped, the patch tokens laid back on their grid."""
    patches = tokens[:, prefix_tokens:, :]
    return patches.reshape(tokens.shape[0], grid[0], grid[1], tokens.shape[2]).permute(0, 3, 1, 2)


def _vision_transformer(model: nn.Module) -> VisionTransformer | None:
    return next((module for module in model.modules() if isinstance(module, VisionTransformer)), None)


def target_layer(model: nn.Module, channels: int, image_size: int) -> tuple[nn.Module, ReshapeTransform | None]:
    """Where Grad-CAM looks, and how its output becomes a map.

    A timm ViT: the last block's first norm, its tokens reshaped to the patch grid. Otherwise the last module, in
    the order a forward pass finishes them, whose output is a feature map larger than 1x1: at 28-32 px a ResNet's
    last stage is 1x1, which would paint every image one colour, so its stage before is taken."""
    vit = _vision_transformer(model)
    if vit is not None:
        grid = tuple(int(size) for size in vit.patch_embed.grid_size)
        return vit.blocks[-1].norm1, partial(vit_tokens_to_map, prefix_tokens=vit.num_prefix_tokens, grid=grid)
    finished: list[nn.Module] = []

    def record(module: nn.Module, _inputs: object, output: object) -> None:
        if isinstance(output, Tensor) and output.ndim == 4 and min(output.shape[2:]) > 1:
            finished.append(module)

    handles = [module.register_forward_hook(record) for module in model.modules() if module is not model]
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, channels, image_size, image_size))
    finally:
        for handle in handles:
            handle.remove()
    if not finished:
        raise ValueError(f"{type(model).__name__} has no feature map larger than 1x1 at {image_size} px for Grad-CAM")
    return finished[-1], None


def gradcam_maps(model: nn.Module, normalization: Normalization, images: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """float32 heatmaps [N, H, W] in [0, 1] of each uint8 image [N, C, H, W] for its own label."""
    if len(images) == 0:
        return np.zeros((0, *images.shape[2:]), np.float32)
    # A copy whose weights all take gradients: with a frozen backbone no gradient would reach the target layer.
    model = copy.deepcopy(model).eval().requires_grad_(True)
    layer, reshape = target_layer(model, images.shape[1], images.shape[2])
    inputs = to_model_input(torch.from_numpy(np.array(images)), *normalization)
    with GradCAM(model=model, target_layers=[layer], reshape_transform=reshape) as cam:
        maps = cam(input_tensor=inputs, targets=[ClassifierOutputTarget(int(label)) for label in labels])
    return np.asarray(maps, np.float32)


def _overlay(image: np.ndarray, heatmap: np.ndarray) -> np.ndarray:
    rgb = np.transpose(image, (1, 2, 0)).astype(np.float32) / 255.0
    rgb = np.repeat(rgb, 3, axis=2) if rgb.shape[2] == 1 else rgb
    return show_cam_on_image(rgb, heatmap, use_rgb=True)


def write_gradcam(
    report_dir: Path,
    model: nn.Module,
    normalization: Normalization,
    data: SearchData,
    synthetic: Mapping[int, np.ndarray],
    per_class: int = 6,
) -> list[Path]:
    """`gradcam_<class>.png` per class: real validation images and the synthetic images of `synthetic[class]`
    (uint8 [N, C, H, W]), each over its Grad-CAM for the class. Validation, never test, images."""
    paths = []
    for class_index, class_name in enumerate(data.class_names):
        real = data.val.images[data.val.labels == class_index][:per_class]
        fake = np.asarray(synthetic.get(class_index, np.zeros((0, *data.val.images.shape[1:]), np.uint8)))[:per_class]
        rows = [(f"real ({class_name})", real), (f"synthetic ({class_name})", fake)]
        figure, axes = plt.subplots(4, per_class, figsize=(per_class * 1.2, 5.2), squeeze=False)
        for row, (title, images) in enumerate(rows):
            heatmaps = gradcam_maps(model, normalization, images, np.full(len(images), class_index))
            for column in range(per_class):
                plain, overlaid = axes[2 * row, column], axes[2 * row + 1, column]
                plain.axis("off")
                overlaid.axis("off")
                if column < len(images):
                    pixels = np.transpose(images[column], (1, 2, 0))
                    plain.imshow(pixels.squeeze(-1) if pixels.shape[-1] == 1 else pixels, cmap="gray", vmin=0, vmax=255)
                    overlaid.imshow(_overlay(images[column], heatmaps[column]))
            axes[2 * row, 0].set_title(title if len(images) else f"{title}: none", fontsize=7, loc="left")
        figure.tight_layout()
        paths.append(save_figure(figure, report_dir / gradcam_file(sanitize_class_name(class_name)), dpi=110))
    return paths


def synthetic_images_of_draws(
    pool_root: str, draws: list[Mapping[str, object]], per_class: int
) -> dict[int, np.ndarray]:
    """The first `per_class` synthetic images per class a checkpoint trained on (its `synthetic_draws`), read from
    the pool without a leakage check (reading only, after the sweep); images a label filter dropped are left out."""
    pool = SyntheticPool(pool_root)
    pool.refresh()
    keys = {PoolKey.from_dict(row).folder_name: PoolKey.from_dict(row) for row in pool.summary()}
    images: dict[int, np.ndarray] = {}
    for draw in draws:
        key = keys.get(str(draw["pool_key"]))
        if key is None:
            continue
        class_index = int(draw["class_index"])
        dropped = set(draw.get("dropped", ()))
        records = pool.records(key, class_index)[: int(draw["count"])]
        kept = [record for position, record in enumerate(records) if position not in dropped][:per_class]
        if kept:
            images[class_index] = pool.images_of(key, kept)
    return images


def write_gradcam_for_checkpoint(
    report_dir: Path, checkpoint_directory: Path, trial: TrialConfig, data: SearchData, pool_root: str | None,
    per_class: int = 6,
) -> list[Path]:
    """write_gradcam for repeat 0's model of a trial checkpoint (the best model), with the synthetic images it
    trained on."""
    saved = load_saved_trial(checkpoint_directory)
    state = saved.replica_states[0]
    model = build_model(trial, data)
    model.load_state_dict(saved.weights(0))
    draws = state.get("synthetic_draws", [])
    synthetic = synthetic_images_of_draws(pool_root, draws, per_class) if pool_root and draws else {}
    return write_gradcam(report_dir, model.eval(), normalization_of(trial, data), data, synthetic, per_class)
