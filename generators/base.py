"""The Generator interface and its one entry point, `create_generator(settings, ...)`.

A generator is added by writing one Generator subclass and one GeneratorSettings model and registering them:
`@GENERATORS.register("name", settings=NameSettings)`. Settings arrive validated (when the trial configuration
was built) and are trusted here.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from spaces import GENERATORS, GeneratorSettings

ProgressCallback = Callable[[int, int], None]
"""Called as progress(step, total_steps) while a generator fits."""


class Generator(ABC):
    """Makes synthetic uint8 images [N, C, H, W] of one class, one image per seed.

    Image i of `generate` must be a deterministic function of (fitted state, class_index, seeds[i], sources[i] for
    image-to-image generators) only, never of the other images in the call or their number: a shared pool then
    generates in any batches and stays reproducible.
    """

    def __init__(
        self,
        settings: GeneratorSettings,
        *,
        num_classes: int,
        channels: int,
        image_size: int,
        device: str = "cpu",
        class_names: Sequence[str] | None = None,
    ) -> None:
        self.settings = settings
        self.num_classes = num_classes
        self.class_names = tuple(class_names) if class_names is not None else tuple(str(i) for i in range(num_classes))
        """The dataset's class names by index (text-conditioned generators put them in prompts)."""
        self.channels = channels
        self.image_size = image_size
        self.device = device

    @property
    def name(self) -> str:
        return self.settings.generator

    @classmethod
    def check_data_shape(
        cls, settings: GeneratorSettings, *, channels: int, image_size: int, class_names: Sequence[str] = ()
    ) -> None:
        """Raises GeneratorError when valid settings cannot serve this dataset (its image shape, its class names)
        or cannot run here (a model that cannot be reached); called once per sweep, before Ray starts, because the
        dataset is not known to the configuration."""
        return None

    @property
    def image_to_image(self) -> bool:
        return self.settings.image_to_image

    @property
    def needs_fit(self) -> bool:
        return self.settings.needs_fit

    @property
    def is_fitted(self) -> bool:
        """Whether generate can run: always for generators that need no fit."""
        return not self.needs_fit

    @abstractmethod
    def generate(self, class_index: int, seeds: Sequence[int], sources: np.ndarray | None = None) -> np.ndarray:
        """uint8 [len(seeds), C, H, W] images of `class_index`; `sources` (uint8 [len(seeds), C, H, W]) is given
        to image-to-image generators and is None for the others."""

    def fit(self, images: np.ndarray, labels: np.ndarray, *, seed: int, progress: ProgressCallback | None = None) -> None:
        """Fits on real images (uint8 [N, C, H, W]) and labels (int [N]); nothing to do for needs_fit=False."""
        if self.needs_fit:
            raise NotImplementedError(f"generator {self.name!r} needs a fit but does not implement fit")

    def save(self, directory: Path) -> None:
        """Writes the fitted state into `directory`; generators without state write nothing."""
        return None

    def load(self, directory: Path) -> None:
        """Restores what `save` wrote; generators without state read nothing."""
        return None


def generator_class(settings_or_name: GeneratorSettings | str) -> type[Generator]:
    """The Generator subclass registered for these settings (or under this name)."""
    name = settings_or_name if isinstance(settings_or_name, str) else settings_or_name.generator
    return GENERATORS.get(name)


def create_generator(
    settings: GeneratorSettings,
    *,
    num_classes: int,
    channels: int,
    image_size: int,
    device: str = "cpu",
    class_names: Sequence[str] | None = None,
) -> Generator:
    """The generator these validated settings name, for images of this shape and these classes."""
    return generator_class(settings)(
        settings, num_classes=num_classes, channels=channels, image_size=image_size, device=device, class_names=class_names
    )
