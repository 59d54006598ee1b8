"""`oversample`: the traditional baseline as a generator (Lan 2024's unbalanced / balanced strategies): each
image is an augmented copy of one real source image, made by the caller's augmentation."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from generators.base import Generator, GeneratorError, SettingSpec, register_generator

ImageAugmentation = Callable[[torch.Tensor], torch.Tensor]
"""Maps one uint8 [C, H, W] CPU tensor to a uint8 tensor of the same shape, drawing from torch's global RNG."""

# The augmentation's own parameters (`<operation>_probability`, `<operation>_magnitude`) belong to the caller's
# augmentation registry, which generators may not import; they are accepted by name pattern instead.
AUGMENTATION_SETTING_PATTERN = re.compile(r"[a-z][a-z0-9_]*_(probability|magnitude)")


@register_generator("oversample", settings=())
class OversampleGenerator(Generator):
    """Augmented copies of source images; image i depends only on (sources[i], seeds[i]) and the settings.

    Its settings are the augmentation parameters, opaque here: any float in [0, 1] named `<operation>_probability`
    or `<operation>_magnitude`. They are part of the settings hash (another augmentation makes other images),
    and the caller builds `augment` from the same settings and passes it to create_generator.
    """

    image_to_image = True
    needs_fit = False
    dependencies = ("augment",)
    undeclared_settings_rule = "any '<operation>_probability' or '<operation>_magnitude' (float in [0, 1])"

    @classmethod
    def undeclared_setting_spec(cls, setting: str) -> SettingSpec | None:
        if not AUGMENTATION_SETTING_PATTERN.fullmatch(setting):
            return None
        return SettingSpec(setting, "float", 0.0, low=0.0, high=1.0, description="a parameter of the caller's augmentation")

    def __init__(
        self,
        *,
        settings: Mapping[str, Any],
        num_classes: int,
        channels: int,
        image_size: int,
        device: str = "cpu",
        augment: ImageAugmentation | None = None,
    ) -> None:
        super().__init__(settings=settings, num_classes=num_classes, channels=channels, image_size=image_size, device=device)
        if augment is None or not callable(augment):
            raise GeneratorError(
                "generator 'oversample' needs an augment callable: create_generator('oversample', ..., "
                f"augment=transform) with transform(uint8 [C, H, W] tensor) -> uint8 [C, H, W] tensor; got {augment!r}"
            )
        self.augment = augment

    def generate(self, class_index: int, seeds: Sequence[int], sources: np.ndarray | None = None) -> np.ndarray:
        checked_seeds = self.check_generate_request(class_index, seeds, sources)
        assert sources is not None
        images = np.empty_like(sources)
        # Augmentation is cheap, so it runs on CPU whatever the device: that keeps it on the one RNG seeded here.
        # fork_rng restores the global CPU RNG afterwards so callers' randomness is untouched.
        with torch.random.fork_rng(devices=[]):
            for position, seed in enumerate(checked_seeds):
                torch.random.default_generator.manual_seed(seed)
                # A copy: sources may be read-only (Ray's object store) and an augmentation may work in place.
                augmented = self.augment(torch.tensor(sources[position]))
                if not isinstance(augmented, torch.Tensor) or augmented.dtype != torch.uint8 or augmented.shape != sources[position].shape:
                    raise GeneratorError(
                        f"generator 'oversample': augment must return a uint8 tensor shaped {list(sources[position].shape)}, "
                        f"got {getattr(augmented, 'dtype', type(augmented).__name__)} shaped "
                        f"{list(getattr(augmented, 'shape', []))}"
                    )
                images[position] = augmented.cpu().numpy()
        return images
