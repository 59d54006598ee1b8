"""What can be searched: the typed trial configuration, search spaces, their YAML presets and validation."""

from spaces.errors import ConfigError
from spaces.schema import TrialConfig, flatten, nest
from spaces.space import Parameter, SearchSpace, list_presets, load_space, read_yaml

__all__ = [
    "ConfigError",
    "Parameter",
    "SearchSpace",
    "TrialConfig",
    "flatten",
    "list_presets",
    "load_space",
    "nest",
    "read_yaml",
]
