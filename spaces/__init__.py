"""What can be searched: the typed trial configuration, search spaces, their YAML presets and validation, and the
registries of the components a configuration names (which register themselves from their own packages)."""

from spaces.components import (
    AUGMENTATION_POLICIES,
    GENERATORS,
    AugmentationSettings,
    ComponentSettings,
    GeneratorSettings,
    StrictModel,
    setting,
)
from spaces.errors import ConfigError
from spaces.registry import Registry
from spaces.schema import SyntheticConfig, TrialConfig, flatten, nest
from spaces.space import Parameter, SearchSpace, list_presets, load_space, plain_value, read_yaml

__all__ = [
    "AUGMENTATION_POLICIES",
    "GENERATORS",
    "AugmentationSettings",
    "ComponentSettings",
    "ConfigError",
    "GeneratorSettings",
    "Parameter",
    "Registry",
    "SearchSpace",
    "StrictModel",
    "SyntheticConfig",
    "TrialConfig",
    "flatten",
    "list_presets",
    "load_space",
    "nest",
    "plain_value",
    "read_yaml",
    "setting",
]
