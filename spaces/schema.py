"""The typed configuration of one trial: what a searcher's sample becomes before training starts."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from spaces.errors import ConfigError

OPTIMIZER_NAMES = ("adam", "adamw", "sgd")
IMBALANCE_STRATEGIES = ("none", "class_weighted_loss", "balanced_sampler")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AugmentationConfig(BaseModel):
    """A policy name from the augmentation registry plus that policy's own parameters (flat keys)."""

    # Each policy has its own parameters (magnitude, rotation_probability, ...); the registry checks them.
    model_config = ConfigDict(extra="allow", frozen=True)
    policy: str = "none"

    @property
    def parameters(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class ModelConfig(_Strict):
    backbone: str = "basic_cnn"
    pretrained: bool = False
    pretrained_path: str | None = None
    dropout: float = Field(0.0, ge=0.0, lt=1.0)


class OptimizerConfig(_Strict):
    name: Literal["adam", "adamw", "sgd"] = "adam"
    lr: float = Field(1e-3, gt=0.0, le=10.0)
    weight_decay: float = Field(0.0, ge=0.0, le=1.0)
    momentum: float = Field(0.9, ge=0.0, lt=1.0)


class TrainingConfig(_Strict):
    epochs: int = Field(10, ge=1, le=10_000)
    batch_size: int = Field(64, ge=2, le=65_536)
    label_smoothing: float = Field(0.0, ge=0.0, lt=1.0)
    imbalance: Literal["none", "class_weighted_loss", "balanced_sampler"] = "none"


class SyntheticConfig(_Strict):
    """How many synthetic images each class gets, and from which generator (drawn from the shared pool)."""

    # add: Y x the class's real count in the trial (Kwon's Y_i). balance: Y x the gap to the largest
    # class (Lan's balanced strategy; Y = 1 tops every chosen class up to the largest).
    proportion: float | dict[str, float] = 0.0
    mode: Literal["add", "balance"] = "add"
    # all classes, the minority ones (fewer training images than the mean class), or named classes.
    classes: Literal["all", "minority"] | list[str] = "all"
    generator: str = "ddpm"
    settings: dict[str, Any] = Field(default_factory=dict)

    @field_validator("proportion")
    @classmethod
    def _proportion_in_range(cls, value: float | dict[str, float]) -> float | dict[str, float]:
        proportions = value.items() if isinstance(value, dict) else [("", value)]
        for class_key, proportion in proportions:
            if not 0.0 <= float(proportion) <= 100.0:
                where = f" for class {class_key!r}" if class_key else ""
                raise ValueError(f"synthetic proportion{where} must be in [0, 100], got {proportion!r}")
        return value

    @property
    def is_active(self) -> bool:
        proportions = self.proportion.values() if isinstance(self.proportion, dict) else [self.proportion]
        return any(float(proportion) > 0 for proportion in proportions)


class TrialConfig(_Strict):
    """Everything one trial needs to know besides the data and the sweep-wide settings."""

    # A float applies to every class; a mapping gives per-class fractions (class name or index as key).
    real_fraction: float | dict[str, float] = 1.0
    augmentation: AugmentationConfig = AugmentationConfig()
    model: ModelConfig = ModelConfig()
    optimizer: OptimizerConfig = OptimizerConfig()
    training: TrainingConfig = TrainingConfig()
    synthetic: SyntheticConfig = SyntheticConfig()

    @field_validator("real_fraction")
    @classmethod
    def _fraction_in_range(cls, value: float | dict[str, float]) -> float | dict[str, float]:
        fractions = value.items() if isinstance(value, dict) else [("", value)]
        for class_key, fraction in fractions:
            if not 0.0 < float(fraction) <= 1.0:
                where = f" for class {class_key!r}" if class_key else ""
                raise ValueError(f"real fraction{where} must be in (0, 1], got {fraction!r}")
        return value

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], source: str | None = None) -> TrialConfig:
        """Validate a nested mapping, turning pydantic's report into a ConfigError naming the field."""
        try:
            return cls.model_validate(dict(values))
        except ValidationError as error:
            raise config_error_from(error, source) from None

    def to_flat(self) -> dict[str, Any]:
        """Dotted keys (`optimizer.lr`), the form spaces, leaderboards and best_config.yaml use."""
        return flatten(self.model_dump(exclude_none=True))


def config_error_from(error: ValidationError, source: str | None) -> ConfigError:
    first = error.errors()[0]
    field = ".".join(str(part) for part in first["loc"]) or "(top level)"
    value = first.get("input")
    message = first["msg"]
    if first["type"] == "extra_forbidden":
        message = "unknown field"
    return ConfigError(field, value, message, source)


def flatten(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def nest(flat: Mapping[str, Any], source: str | None = None) -> dict[str, Any]:
    """Turn dotted keys into nested mappings; a key that is both a value and a group is an error.

    Keys are visited in sorted order, so a plain key (`real_fraction`) is always seen before its
    sub-keys (`real_fraction.mild`) and the clash is caught in one place.
    """
    nested: dict[str, Any] = {}
    for key in sorted(flat):
        parts = key.split(".")
        node = nested
        for depth, part in enumerate(parts[:-1]):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                prefix = ".".join(parts[: depth + 1])
                raise ConfigError(
                    key, flat[key], f"{prefix!r} is already set to a single value; set either {prefix!r} or its sub-keys",
                    source,
                )
            node = child
        node[parts[-1]] = flat[key]
    return nested
