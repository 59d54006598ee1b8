"""Traditional augmentation policies (torchvision v2; TorchIO for ``medical``), chosen by name, for trials and
for the `oversample` generator alike. Each policy is one factory and one settings model registered in
`spaces.AUGMENTATION_POLICIES`; `create_augmentation(settings)` builds one.

Transforms draw their randomness from torch's global RNG, so seed torch (``torch.manual_seed``) to make
``augment_batch`` reproducible.
"""

from collections.abc import Callable

import torch

# Imported for their registrations.
from generators.augmentation import custom, medical, standard  # noqa: F401
from generators.augmentation.batch import augment_batch
from spaces import AUGMENTATION_POLICIES, AugmentationSettings

ImageTransform = Callable[[torch.Tensor], torch.Tensor]
"""Maps one uint8 [C, H, W] image to a uint8 image of the same shape."""


def create_augmentation(settings: AugmentationSettings) -> ImageTransform | None:
    """The transform of `settings.policy` built from its validated settings; None means no augmentation."""
    return AUGMENTATION_POLICIES.get(settings.policy)(settings)


__all__ = ["ImageTransform", "augment_batch", "create_augmentation"]
