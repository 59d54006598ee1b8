"""Synthetic images: the Generator interface (`base`), one subpackage per generator family (`ddpm`,
`stable_diffusion`, `image_api`) and `oversample`; the shared pool without Ray (`pool`) and the actors in front of it
(`actors`, the only Ray code here); and the traditional augmentation policies (`augmentation`) that trials and the
`oversample` generator share. Importing the package registers every built-in generator and policy."""

from generators.base import Generator, ProgressCallback, create_generator, generator_class
from generators.ddpm import DDPMGenerator, DDPMSettings
from generators.errors import GeneratorError, LeakageError, PoolError
from generators.image_api import OpenAIImagesGenerator, OpenAIImagesSettings
from generators.oversample import OversampleGenerator, OversampleSettings
from generators.stable_diffusion import StableDiffusionGenerator, StableDiffusionSettings

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
