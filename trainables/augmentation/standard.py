"""The standard policies: none, hflip (Kwon 2024) and torchvision's AutoAugment, RandAugment, TrivialAugment."""

from __future__ import annotations

from torchvision.transforms import v2

from trainables.augmentation.registry import ImageTransform, ParameterSpec, register_augmentation

# RandAugment's magnitude is an index into this many evenly spaced strengths (0 = identity, 30 = strongest).
RANDAUGMENT_MAGNITUDE_BINS = 31


@register_augmentation("none")
def no_augmentation() -> None:
    return None


@register_augmentation(
    "hflip",
    parameters=[
        ParameterSpec("probability", "float", 0.5, 0.0, 1.0, "chance that an image is flipped left-right"),
    ],
)
def horizontal_flip(probability: float) -> ImageTransform:
    return v2.RandomHorizontalFlip(p=probability)


@register_augmentation("autoaugment")
def autoaugment() -> ImageTransform:
    return v2.AutoAugment(v2.AutoAugmentPolicy.IMAGENET)


@register_augmentation(
    "randaugment",
    parameters=[
        ParameterSpec("num_ops", "int", 2, 1, 5, "number of operations applied to each image"),
        ParameterSpec(
            "magnitude", "int", 9, 0, RANDAUGMENT_MAGNITUDE_BINS - 1, "strength of every operation (0 = identity)"
        ),
    ],
)
def randaugment(num_ops: int, magnitude: int) -> ImageTransform:
    return v2.RandAugment(num_ops=num_ops, magnitude=magnitude, num_magnitude_bins=RANDAUGMENT_MAGNITUDE_BINS)


@register_augmentation("trivialaugment")
def trivialaugment() -> ImageTransform:
    return v2.TrivialAugmentWide()
