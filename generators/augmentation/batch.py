"""Applies an image transform to a batch, one random draw per image."""

from __future__ import annotations

from collections.abc import Callable

import torch


def augment_batch(transform: Callable[[torch.Tensor], torch.Tensor] | None, images: torch.Tensor) -> torch.Tensor:
    """Transforms uint8 [B, C, H, W] ``images`` one by one; returns ``images`` itself if ``transform`` is None.

    A torchvision v2 transform called on a whole batch draws its random parameters once and applies
    them to every image, so each image is transformed on its own to get its own draw. The draws come
    from torch's global RNG: the result is reproducible when the caller seeds torch beforehand.
    """
    if transform is None or len(images) == 0:
        return images
    return torch.stack([transform(image) for image in images])
