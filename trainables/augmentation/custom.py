"""The ``custom`` policy: Lan 2024's traditional operations, each with a searchable probability and magnitude.

Parameters are flat keys, ``<operation>_probability`` and ``<operation>_magnitude`` (both in [0, 1]).
Every probability defaults to 0, so ``custom`` with no parameters changes nothing.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torchvision.transforms import v2

from trainables.augmentation.registry import ImageTransform, ParameterSpec, register_augmentation


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


def _custom_parameters() -> list[ParameterSpec]:
    parameters: list[ParameterSpec] = []
    for name, operation in CUSTOM_OPERATIONS.items():
        parameters.append(
            ParameterSpec(f"{name}_probability", "float", 0.0, 0.0, 1.0, f"chance of applying {name}")
        )
        if operation.maximum is not None:
            parameters.append(
                ParameterSpec(
                    f"{name}_magnitude",
                    "float",
                    DEFAULT_MAGNITUDE,
                    0.0,
                    1.0,
                    f"{name} strength as a fraction of {operation.maximum} "
                    f"({operation.strength_meaning}); 0 is identity",
                )
            )
    return parameters


@register_augmentation("custom", parameters=_custom_parameters())
def custom(**params: float) -> ImageTransform:
    applied: list[v2.Transform] = []
    for name, operation in CUSTOM_OPERATIONS.items():
        probability = params[f"{name}_probability"]
        strength = 0.0 if operation.maximum is None else operation.maximum * params[f"{name}_magnitude"]
        # Leaving out operations that cannot change the image saves time and keeps magnitude 0 exact
        # (a zero blur sigma is even invalid for torchvision).
        if probability == 0 or (operation.maximum is not None and strength == 0):
            continue
        applied.append(v2.RandomApply([operation.build(strength)], p=probability))
    return v2.Compose(applied) if applied else v2.Identity()
