"""Synthetic images: the Generator interface, its implementations, generator actors and the shared pool."""

from generators.base import (
    Generator,
    GeneratorError,
    SettingSpec,
    create_generator,
    fit_settings_hash,
    generator_class,
    generator_setting_specs,
    list_generators,
    register_generator,
    resolve_generator_settings,
    settings_hash,
)

# Imported for their registrations; diffusers itself is imported only when a ddpm model is built or loaded.
from generators.ddpm import DDPMGenerator
from generators.oversample import OversampleGenerator

__all__ = [
    "DDPMGenerator",
    "Generator",
    "GeneratorError",
    "OversampleGenerator",
    "SettingSpec",
    "create_generator",
    "fit_settings_hash",
    "generator_class",
    "generator_setting_specs",
    "list_generators",
    "register_generator",
    "resolve_generator_settings",
    "settings_hash",
]
