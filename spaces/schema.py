"""The typed configuration of one trial: what a searcher's sample becomes before training starts."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, Field, SerializeAsAny, ValidationError, ValidationInfo, field_validator, model_validator

from spaces.components import (
    AUGMENTATION_POLICIES,
    GENERATORS,
    AugmentationSettings,
    GeneratorSettings,
    StrictModel,
    UnknownSettingError,
)
from spaces.errors import ConfigError

OptimizerName = Literal["adam", "adamw", "sgd"]
ImbalanceStrategy = Literal["none", "class_weighted_loss", "balanced_sampler"]
# full: every weight trains. frozen: only the head trains (Berdjouh's frozen ResNet-50). lora: peft LoRA adapters on
# the backbone plus the head train.
FineTuneMode = Literal["full", "frozen", "lora"]
LearningRateSchedule = Literal["constant", "cosine"]


class ModelConfig(StrictModel):
    backbone: str = "basic_cnn"
    pretrained: bool = False
    pretrained_path: str | None = None
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    finetune: FineTuneMode = "full"
    # Widths of Linear+ReLU+Dropout layers between the backbone's pooled features and the classifier (Kakkar's
    # multi-layer head); [] keeps timm's own head.
    head_hidden_layers: list[int] = Field(default_factory=list, max_length=16)
    # LoRA adapters (finetune lora only): rank and alpha (scale alpha / rank; alpha defaults to the rank).
    lora_rank: int = Field(8, ge=1, le=1024)
    lora_alpha: float | None = Field(None, gt=0.0, le=100_000.0)

    @field_validator("head_hidden_layers")
    @classmethod
    def _widths_in_range(cls, widths: list[int]) -> list[int]:
        for width in widths:
            if not 1 <= width <= 65_536:
                raise ValueError(f"head layer widths must be in [1, 65536], got {width!r}")
        return widths

    @model_validator(mode="after")
    def _pretrained_for_partial_fine_tuning(self) -> ModelConfig:
        # Training only the head (or low-rank adapters) on random backbone weights measures random features, not
        # transfer: almost always a forgotten `pretrained`, found here rather than after a sweep of poor trials.
        if self.finetune != "full" and not (self.pretrained or self.pretrained_path is not None):
            raise ConfigError(
                "model.finetune", self.finetune,
                "frozen and lora keep the backbone's weights, so they need pretrained ones: set model.pretrained true "
                "or model.pretrained_path, or use finetune 'full'",
            )
        return self


class OptimizerConfig(StrictModel):
    name: OptimizerName = "adam"
    lr: float = Field(1e-3, gt=0.0, le=10.0)
    weight_decay: float = Field(0.0, ge=0.0, le=1.0)
    momentum: float = Field(0.9, ge=0.0, lt=1.0)
    # Learning rate per epoch: `lr` throughout, or cosine decay to zero over the epochs after the warmup; both
    # rise linearly over `warmup_epochs` first (see trainables.training.learning_rate_factor).
    schedule: LearningRateSchedule = "constant"
    warmup_epochs: int = Field(0, ge=0, le=10_000)


class TrainingConfig(StrictModel):
    epochs: int = Field(10, ge=1, le=10_000)
    batch_size: int = Field(64, ge=2, le=65_536)
    label_smoothing: float = Field(0.0, ge=0.0, lt=1.0)
    imbalance: ImbalanceStrategy = "none"
    # Stop a trial once the searched metric has not improved for this many epochs; None or 0: train every epoch.
    early_stopping_patience: int | None = Field(None, ge=0, le=10_000)


class SyntheticConfig(StrictModel):
    """How many synthetic images each class gets, and from which generator (drawn from the shared pool)."""

    # add: Y x the class's real count in the trial (Kwon's Y_i). balance: Y x the gap to the largest
    # class (Lan's balanced strategy; Y = 1 tops every chosen class up to the largest).
    proportion: float | dict[str, float] = 0.0
    mode: Literal["add", "balance"] = "add"
    # all classes, the minority ones (fewer training images than the mean class), or named classes.
    classes: Literal["all", "minority"] | list[str] = "all"
    generator: str = "ddpm"
    # The generator's own settings model, chosen by `generator` (SerializeAsAny: dumped with its own fields).
    settings: SerializeAsAny[GeneratorSettings] = Field(default_factory=dict, validate_default=True)
    # label_fidelity: drop the drawn synthetic images to which a classifier fit on the generator's fit subset gives
    # less than `filter_threshold` probability of their own label (Kakkar's manual filtering, automated; see
    # trainables/synthetic_filter.py). The trial draws its n images first, then drops: it may train on fewer.
    filter: Literal["none", "label_fidelity"] = "none"
    filter_threshold: float = Field(0.5, ge=0.0, le=1.0)

    @field_validator("generator")
    @classmethod
    def _registered_generator(cls, name: str) -> str:
        GENERATORS.entry(name)
        return name

    @field_validator("settings", mode="before")
    @classmethod
    def _settings_of_the_generator(cls, value: Any, info: ValidationInfo) -> Any:
        if "generator" not in info.data:  # the name itself was invalid; that error is reported
            return value
        model = GENERATORS.entry(info.data["generator"]).settings
        return value if isinstance(value, model) else model.model_validate(value)

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


class TrialConfig(StrictModel):
    """Everything one trial needs to know besides the data and the sweep-wide settings."""

    # A float applies to every class; a mapping gives per-class fractions (class name or index as key).
    real_fraction: float | dict[str, float] = 1.0
    # The policy's own settings model, chosen by `augmentation.policy` (flat keys: `augmentation.magnitude`).
    augmentation: SerializeAsAny[AugmentationSettings] = AugmentationSettings()
    model: ModelConfig = ModelConfig()
    optimizer: OptimizerConfig = OptimizerConfig()
    training: TrainingConfig = TrainingConfig()
    synthetic: SyntheticConfig = Field(default_factory=SyntheticConfig)

    @field_validator("real_fraction")
    @classmethod
    def _fraction_in_range(cls, value: float | dict[str, float]) -> float | dict[str, float]:
        fractions = value.items() if isinstance(value, dict) else [("", value)]
        for class_key, fraction in fractions:
            if not 0.0 < float(fraction) <= 1.0:
                where = f" for class {class_key!r}" if class_key else ""
                raise ValueError(f"real fraction{where} must be in (0, 1], got {fraction!r}")
        return value

    @model_validator(mode="after")
    def _warmup_shorter_than_training(self) -> TrialConfig:
        if self.optimizer.warmup_epochs and self.optimizer.warmup_epochs >= self.training.epochs:
            raise ConfigError(
                "optimizer.warmup_epochs", self.optimizer.warmup_epochs,
                f"it must be fewer than training.epochs ({self.training.epochs}), so some epochs train at the full rate",
            )
        return self

    @field_validator("augmentation", mode="before")
    @classmethod
    def _settings_of_the_policy(cls, value: Any) -> Any:
        if isinstance(value, AugmentationSettings) or not isinstance(value, Mapping):
            return value
        policy = value.get("policy", "none")
        return AUGMENTATION_POLICIES.entry(policy).settings.model_validate({**value, "policy": policy})

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], source: str | None = None) -> TrialConfig:
        """Validate a nested mapping, turning pydantic's report into a ConfigError naming the field."""
        try:
            return cls.model_validate(dict(values))
        except ValidationError as error:
            raise config_error_from(error, source, TrialConfig) from None

    def to_flat(self) -> dict[str, Any]:
        """Dotted keys (`optimizer.lr`), the form spaces, leaderboards and best_config.yaml use."""
        return flatten(self.model_dump(exclude_none=True))


def config_error_from(error: ValidationError, source: str | None, model: type[BaseModel] | None = None) -> ConfigError:
    """The first error pydantic found, as a ConfigError naming the field, the value and what is allowed (for an
    unknown key of `model` or its nested models, the keys they do have)."""
    first = error.errors()[0]
    cause = first.get("ctx", {}).get("error")
    if isinstance(cause, ConfigError):  # a registry's answer already names the field, the value and the names
        return ConfigError(cause.field, cause.value, cause.allowed, source)
    if isinstance(cause, UnknownSettingError):
        return ConfigError(".".join([*map(str, first["loc"]), str(cause.key)]), cause.value, cause.allowed, source)
    location = [str(part) for part in first["loc"]]
    value = first.get("input")
    message = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        known = _known_fields(model, location[:-1])
        message = f"unknown field; allowed: {', '.join(known)}" if known else "unknown field"
        # An unknown group (`foo.bar: 1` nests to foo: {bar: 1}) is named down to the key the user wrote.
        while isinstance(value, Mapping) and len(value) == 1:
            key, value = next(iter(value.items()))
            location.append(str(key))
    return ConfigError(".".join(location) or "(top level)", value, message, source)


def _known_fields(model: type[BaseModel] | None, location: list[str]) -> list[str]:
    for part in location:
        field = model.model_fields.get(part) if model is not None else None
        model = field.annotation if field is not None and isinstance(field.annotation, type) else None
        if model is None or not issubclass(model, BaseModel):
            return []
    return list(model.model_fields) if model is not None else []


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
