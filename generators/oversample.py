"""`oversample`: the traditional baseline as a generator (Lan 2024's unbalanced / balanced strategies): each
image is an augmented copy of one real source image, made with the `custom` and `medical` policies' operations."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from typing import Any, ClassVar

import numpy as np
import torch
from torchvision.transforms import v2

from generators.augmentation.custom import CustomOperationSettings, custom_transform
from generators.augmentation.medical import MedicalOperationSettings, applied_medical_operations, medical_transform
from generators.base import Generator
from spaces import GENERATORS, GeneratorSettings

OVERSAMPLE = "oversample"

# Both tables' settings sit side by side in one flat model; a name in both would silently become one setting.
assert not set(CustomOperationSettings.model_fields) & set(MedicalOperationSettings.model_fields)


class _CustomOnlySettings(GeneratorSettings, CustomOperationSettings):
    """Oversample's settings as they were before the medical operations, kept only to compute their hash."""

    generator: ClassVar[str] = OVERSAMPLE


class OversampleSettings(GeneratorSettings, CustomOperationSettings, MedicalOperationSettings):
    """The `custom` and `medical` policies' probabilities and magnitudes (all of them make other images, so all
    are hashed); custom's operations apply first, then medical's."""

    image_to_image: ClassVar[bool] = True

    @cached_property
    def settings_hash(self) -> str:
        if applied_medical_operations(self):
            return super().settings_hash
        # Without a medical operation the generator makes exactly the images these settings made before medical
        # operations existed (same transform, same random draws), so they keep the hash that names those images
        # in existing pools, whatever the medical magnitudes say.
        custom_values = self.model_dump(include=set(CustomOperationSettings.model_fields))
        return _CustomOnlySettings.model_construct(**custom_values).settings_hash


@GENERATORS.register(OVERSAMPLE, settings=OversampleSettings)
class OversampleGenerator(Generator):
    """Augmented copies of source images; image i depends only on (sources[i], seeds[i]) and the settings."""

    def __init__(self, settings: OversampleSettings, **shape: Any) -> None:
        super().__init__(settings, **shape)
        self.transform = custom_transform(settings)
        if applied_medical_operations(settings):
            self.transform = v2.Compose([self.transform, medical_transform(settings)])

    def generate(self, class_index: int, seeds: Sequence[int], sources: np.ndarray | None = None) -> np.ndarray:
        assert sources is not None, "oversample makes each image from a source image"
        images = np.empty_like(sources)
        # Augmentation is cheap, so it runs on CPU whatever the device: that keeps it on the one RNG seeded here.
        # fork_rng restores the global CPU RNG afterwards so callers' randomness is untouched.
        with torch.random.fork_rng(devices=[]):
            for position, seed in enumerate(seeds):
                torch.random.default_generator.manual_seed(int(seed))
                # A copy: sources may be read-only (Ray's object store) and an augmentation may work in place.
                images[position] = self.transform(torch.tensor(sources[position])).numpy()
        return images
