"""Synthetic images: the Generator interface, its implementations, generator actors and the shared pool; and the
traditional augmentation policies (`generators.augmentation`) that trials and the `oversample` generator share.
Importing the package registers every built-in generator and policy."""

from generators.base import Generator, ProgressCallback, create_generator, generator_class
from generators.ddpm import DDPMGenerator
from generators.ddpm_settings import DDPMSettings
from generators.errors import GeneratorError, LeakageError, PoolError
from generators.openai_images import OpenAIImagesGenerator, OpenAIImagesSettings
from generators.oversample import OversampleGenerator, OversampleSettings
from generators.stable_diffusion import StableDiffusionGenerator
from generators.stable_diffusion_settings import StableDiffusionSettings

__all__ = [
    "DDPMGenerator",
    "DDPMSettings",
    "Generator",
    "GeneratorError",
    "LeakageError",
    "OpenAIImagesGenerator",
    "OpenAIImagesSettings",
    "OversampleGenerator",
    "OversampleSettings",
    "PoolError",
    "ProgressCallback",
    "StableDiffusionGenerator",
    "StableDiffusionSettings",
    "create_generator",
    "generator_class",
]
