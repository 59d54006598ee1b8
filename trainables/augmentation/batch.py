"""Applies an image transform to a batch, one random draw per image."""

from __future__ import annotations

import torch

from trainables.augmentation.registry import AugmentationError, ImageTransform


def augment_batch(transform: ImageTransform | None, images: torch.Tensor) -> torch.Tensor:
    """Transforms uint8 [B, C, H, W] ``images`` one by one; returns ``images`` itself if ``transform`` is None.

    A torchvision v2 transform called on a whole batch draws its random parameters once and applies
    them to every image, so each image is transformed on its own to get its own draw. The draws come
    from torch's global RNG: the result is reproducible when the caller seeds torch beforehand.
    """
    if not isinstance(images, torch.Tensor):
        raise AugmentationError(f"images must be a torch.Tensor of uint8 [B, C, H, W]; got {type(images).__name__}")
    if images.ndim != 4 or images.dtype != torch.uint8:
        raise AugmentationError(
            f"images must be uint8 [B, C, H, W]; got {images.dtype} with shape {tuple(images.shape)}"
        )
    if transform is None or len(images) == 0:
        return images
    augmented = torch.stack([transform(image) for image in images])
    # A registered policy that resizes or changes dtype would silently break the training batch.
    if augmented.shape != images.shape or augmented.dtype != images.dtype:
        raise AugmentationError(
            f"transform {transform!r} must keep each image's shape and dtype: got {augmented.dtype} "
            f"{tuple(augmented.shape)} from {images.dtype} {tuple(images.shape)}"
        )
    return augmented
