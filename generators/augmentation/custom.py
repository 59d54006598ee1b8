"""The ``custom`` policy: Lan 2024's traditional operations, each with a searchable probability and magnitude.

Settings are flat keys, ``<operation>_probability`` and ``<operation>_magnitude`` (both in [0, 1]).
Every probability defaults to 0, so ``custom`` with no settings changes nothing. The ``oversample``
generator makes its images with the same operations and the same settings.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

import torch
from pydantic import Field
from torchvision.transforms import v2

from spaces import AUGMENTATION_POLICIES, AugmentationSettings, ComponentSettings


@dataclass(frozen=True)
class CustomOperation:
    """One operation of ``custom``: ``build(strength)`` makes the transform, applied when the coin says so.

    The strength is magnitude * maximum; random operations draw their amount up to that strength on
    every application (signed ones symmetric around identity). Operations without a magnitude
    (the flips) have maximum None and are built with strength 0.
    """

    maximum: float | None
    strength_meaning: str
    build: Callable[[float], v2.Transform]


def _rotation(degrees: float) -> v2.Transform:
    return v2.RandomRotation(degrees=degrees, interpolation=v2.InterpolationMode.BILINEAR)


def _shear(degrees: float) -> v2.Transform:
    return v2.RandomAffine(
        degrees=0, shear=(-degrees, degrees, -degrees, degrees), interpolation=v2.InterpolationMode.BILINEAR
    )


def _translation(fraction_of_size: float) -> v2.Transform:
    return v2.RandomAffine(degrees=0, translate=(fraction_of_size, fraction_of_size))


def _horizontal_flip(_: float) -> v2.Transform:
    return v2.RandomHorizontalFlip(p=1.0)


def _vertical_flip(_: float) -> v2.Transform:
    return v2.RandomVerticalFlip(p=1.0)


def _brightness(factor_deviation: float) -> v2.Transform:
    return v2.ColorJitter(brightness=factor_deviation)


def _contrast(factor_deviation: float) -> v2.Transform:
    return v2.ColorJitter(contrast=factor_deviation)


def _gaussian_blur(sigma: float) -> v2.Transform:
    # A kernel of 3 sigma either side holds >99% of the Gaussian; 2.0 gives 13 px, which fits 28 px images.
    kernel_size = 2 * math.ceil(3 * sigma) + 1
    # torchvision's usual lowest sigma is 0.1; a smaller maximum must still give a valid range.
    return v2.GaussianBlur(kernel_size=kernel_size, sigma=(min(0.1, sigma), sigma))


def _gaussian_noise(sigma: float) -> v2.Transform:
    # Noise is added in float [0, 1] so sigma reads as a fraction of the intensity range;
    # GaussianNoise clamps to [0, 1] before the image goes back to uint8.
    return v2.Compose(
        [
            v2.ToDtype(torch.float32, scale=True),
            v2.GaussianNoise(sigma=sigma, clip=True),
            v2.ToDtype(torch.uint8, scale=True),
        ]
    )


# The one table of operations and their maxima, in the order they are applied: geometry first,
# then intensity, blur before noise so that the blur does not wash the noise out.
CUSTOM_OPERATIONS: dict[str, CustomOperation] = {
    "rotation": CustomOperation(30.0, "largest rotation angle, degrees either way", _rotation),
    "shear": CustomOperation(20.0, "largest shear angle, degrees either way on each axis", _shear),
    "translation": CustomOperation(0.2, "largest shift, fraction of width/height either way", _translation),
    "horizontal_flip": CustomOperation(None, "left-right flip", _horizontal_flip),
    "vertical_flip": CustomOperation(None, "top-bottom flip", _vertical_flip),
    "brightness": CustomOperation(0.5, "brightness factor drawn from [1 - s, 1 + s]", _brightness),
    "contrast": CustomOperation(0.5, "contrast factor drawn from [1 - s, 1 + s]", _contrast),
    "gaussian_blur": CustomOperation(2.0, "largest blur sigma, pixels", _gaussian_blur),
    "gaussian_noise": CustomOperation(0.1, "noise sigma, fraction of the intensity range", _gaussian_noise),
}

DEFAULT_MAGNITUDE = 0.5

Probability = Annotated[float, Field(ge=0.0, le=1.0, description="chance of applying the operation")]
Magnitude = Annotated[
    float, Field(ge=0.0, le=1.0, description="strength as a fraction of the operation's maximum; 0 is identity")
]


class CustomOperationSettings(ComponentSettings):
    """A probability per operation of CUSTOM_OPERATIONS and a magnitude per operation that has a maximum."""

    rotation_probability: Probability = 0.0
    rotation_magnitude: Magnitude = DEFAULT_MAGNITUDE
    shear_probability: Probability = 0.0
    shear_magnitude: Magnitude = DEFAULT_MAGNITUDE
    translation_probability: Probability = 0.0
    translation_magnitude: Magnitude = DEFAULT_MAGNITUDE
    horizontal_flip_probability: Probability = 0.0
    vertical_flip_probability: Probability = 0.0
    brightness_probability: Probability = 0.0
    brightness_magnitude: Magnitude = DEFAULT_MAGNITUDE
    contrast_probability: Probability = 0.0
    contrast_magnitude: Magnitude = DEFAULT_MAGNITUDE
    gaussian_blur_probability: Probability = 0.0
    gaussian_blur_magnitude: Magnitude = DEFAULT_MAGNITUDE
    gaussian_noise_probability: Probability = 0.0
    gaussian_noise_magnitude: Magnitude = DEFAULT_MAGNITUDE


# The table and the settings must name the same operations; a mismatch is a bug in this module.
assert set(CustomOperationSettings.model_fields) == {
    f"{name}_{part}" for name, operation in CUSTOM_OPERATIONS.items()
    for part in (("probability", "magnitude") if operation.maximum is not None else ("probability",))
}


def custom_transform(settings: CustomOperationSettings) -> v2.Transform:
    """The operations whose probability and strength are above zero, in table order, each applied on a coin flip."""
    applied: list[v2.Transform] = []
    for name, operation in CUSTOM_OPERATIONS.items():
        probability = getattr(settings, f"{name}_probability")
        strength = 0.0 if operation.maximum is None else operation.maximum * getattr(settings, f"{name}_magnitude")
        # Leaving out operations that cannot change the image saves time and keeps magnitude 0 exact
        # (a zero blur sigma is even invalid for torchvision).
        if probability == 0 or (operation.maximum is not None and strength == 0):
            continue
        applied.append(v2.RandomApply([operation.build(strength)], p=probability))
    return v2.Compose(applied) if applied else v2.Identity()


class CustomSettings(AugmentationSettings, CustomOperationSettings):
    """The ``custom`` policy's settings."""


@AUGMENTATION_POLICIES.register("custom", settings=CustomSettings)
def custom(settings: CustomSettings) -> v2.Transform:
    return custom_transform(settings)
