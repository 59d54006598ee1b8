"""Augmentation policies for training images, chosen by name: a registry of torchvision v2 transforms.

Transforms draw their randomness from torch's global RNG, so seed torch (``torch.manual_seed``) to
make ``augment_batch`` reproducible.
"""

# Imported for their side effect: each module registers its policies by name.
from trainables.augmentation import custom, standard  # noqa: F401
from trainables.augmentation.batch import augment_batch
from trainables.augmentation.registry import (
    AugmentationError,
    ImageTransform,
    ParameterSpec,
    augmentation_parameters,
    create_augmentation,
    list_augmentation_policies,
    register_augmentation,
    resolve_augmentation_parameters,
)

__all__ = [
    "AugmentationError",
    "ImageTransform",
    "ParameterSpec",
    "augment_batch",
    "augmentation_parameters",
    "create_augmentation",
    "list_augmentation_policies",
    "register_augmentation",
    "resolve_augmentation_parameters",
]
