"""`oversample`: the traditional baseline as a generator (Lan 2024's unbalanced / balanced strategies): each
image is an augmented copy of one real source image, made with the `custom` augmentation policy's operations."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import torch

from generators.augmentation.custom import CustomOperationSettings, custom_transform
from generators.base import Generator
from spaces import GENERATORS, GeneratorSettings


class OversampleSettings(GeneratorSettings, CustomOperationSettings):
    """The `custom` policy's probabilities and magnitudes; all of them make other images, so all are hashed."""

    image_to_image: ClassVar[bool] = True


@GENERATORS.register("oversample", settings=OversampleSettings)
class OversampleGenerator(Generator):
    """Augmented copies of source images; image i depends only on (sources[i], seeds[i]) and the settings."""

    def __init__(self, settings: OversampleSettings, **shape: Any) -> None:
        super().__init__(settings, **shape)
        self.transform = custom_transform(settings)

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
