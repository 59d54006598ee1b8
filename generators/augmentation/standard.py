"""The standard policies: none, hflip (Kwon 2024) and torchvision's AutoAugment, RandAugment, TrivialAugment."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field
from torchvision.transforms import v2

from spaces import AUGMENTATION_POLICIES, AugmentationSettings

# RandAugment's magnitude is an index into this many evenly spaced strengths (0 = identity, 30 = strongest).
RANDAUGMENT_MAGNITUDE_BINS = 31


@AUGMENTATION_POLICIES.register("none", settings=AugmentationSettings)
def no_augmentation(settings: AugmentationSettings) -> None:
    return None


class HorizontalFlipSettings(AugmentationSettings):
    probability: Annotated[float, Field(ge=0.0, le=1.0, description="chance that an image is flipped left-right")] = 0.5


@AUGMENTATION_POLICIES.register("hflip", settings=HorizontalFlipSettings)
def horizontal_flip(settings: HorizontalFlipSettings) -> v2.Transform:
    return v2.RandomHorizontalFlip(p=settings.probability)


@AUGMENTATION_POLICIES.register("autoaugment", settings=AugmentationSettings)
def autoaugment(settings: AugmentationSettings) -> v2.Transform:
    return v2.AutoAugment(v2.AutoAugmentPolicy.IMAGENET)


class RandAugmentSettings(AugmentationSettings):
    num_ops: Annotated[int, Field(ge=1, le=5, description="number of operations applied to each image")] = 2
    magnitude: Annotated[
        int, Field(ge=0, le=RANDAUGMENT_MAGNITUDE_BINS - 1, description="strength of every operation (0 = identity)")
    ] = 9


@AUGMENTATION_POLICIES.register("randaugment", settings=RandAugmentSettings)
def randaugment(settings: RandAugmentSettings) -> v2.Transform:
    return v2.RandAugment(
        num_ops=settings.num_ops, magnitude=settings.magnitude, num_magnitude_bins=RANDAUGMENT_MAGNITUDE_BINS
    )


@AUGMENTATION_POLICIES.register("trivialaugment", settings=AugmentationSettings)
def trivialaugment(settings: AugmentationSettings) -> v2.Transform:
    return v2.TrivialAugmentWide()
