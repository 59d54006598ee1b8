"""The components a trial configuration names (generators, augmentation policies): their registries and the base
classes of their settings models. Components register themselves from their own packages, which import this one."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from functools import cached_property
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from spaces.errors import did_you_mean
from spaces.registry import Registry

Affects = Literal["fit", "images", "nothing"]


class StrictModel(BaseModel):
    """A frozen pydantic model that refuses unknown keys (a typo in a config is an error, never ignored) and NaN or
    infinite numbers (YAML's .nan and .inf, a flag's `nan`), which no setting means."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class UnknownSettingError(ValueError):
    """A key that a component's settings model does not have; `config_error_from` names it under its parent."""

    def __init__(self, key: str, value: Any, allowed: str) -> None:
        self.key, self.value, self.allowed = key, value, allowed
        super().__init__(allowed)


class ComponentSettings(StrictModel):
    """One component's settings, as diffusers' ConfigMixin keeps a component's constructor arguments: validated
    once, when a trial configuration is built, then trusted by everything downstream."""

    model_config = ConfigDict(allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _known_settings(cls, values: Any) -> Any:
        # pydantic would say only "extra inputs are not permitted"; a user wants the names this component takes.
        if isinstance(values, Mapping):
            for key in values:
                if key not in cls.model_fields:
                    close = did_you_mean(key, cls.model_fields)
                    hint = f"; {close}" if close else ""
                    raise UnknownSettingError(key, values[key], f"unknown setting; allowed: {', '.join(cls.model_fields)}{hint}")
        return values


def setting(default: Any, *, affects: Affects = "images", **field: Any) -> Any:
    """A generator setting's Field. `affects`: "fit" changes the fitted state (model shape, training) and so the
    images too; "images" changes only what sampling makes (steps, guidance); "nothing" changes neither
    (a batch size), so it stays out of the settings hash that names a generator's images in the pool."""
    return Field(default, json_schema_extra={"affects": affects}, **field)


class GeneratorSettings(ComponentSettings):
    """Base of every generator's settings model; `GENERATORS.register(name, settings=...)` sets `generator`."""

    generator: ClassVar[str] = ""
    # What kind of generator these settings make. A class attribute for generators of one kind; a property where a
    # setting decides (Stable Diffusion's `mode` and `fine_tune`).
    image_to_image: ClassVar[bool] = False
    """True: each image is made from one given real source image; False: from noise."""
    needs_fit: ClassVar[bool] = False
    """True: the generator must be fit on real images (or its fit loaded from the pool) before it generates."""

    @cached_property
    def settings_hash(self) -> str:
        """12 hex digits naming what images these settings make: sha256 of the generator name and the settings
        that affect images, as canonical JSON, so the same across processes, machines and key order."""
        return self._hash_of(("fit", "images"))

    @cached_property
    def fit_settings_hash(self) -> str:
        """Like settings_hash over the settings that affect the fit: models with one fit hash are interchangeable."""
        return self._hash_of(("fit",))

    def _hash_of(self, kinds: tuple[Affects, ...]) -> str:
        values = self.model_dump(mode="json")
        kept = {
            name: values[name] for name, field in type(self).model_fields.items() if _affects(field.json_schema_extra) in kinds
        }
        canonical = json.dumps({"generator": self.generator, "settings": kept}, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:12]


def _affects(extra: Any) -> Affects:
    # A plain Field (no `setting(...)`) is taken to change the images: hashing too much only costs a regeneration.
    return extra.get("affects", "images") if isinstance(extra, dict) else "images"


class AugmentationSettings(ComponentSettings):
    """Base of every augmentation policy's settings model, and the settings of policies that take none."""

    policy: str = "none"


class GeneratorRegistry(Registry):
    def register(self, name: str, *, settings: type | None = None):  # type: ignore[override]
        # The name is stamped on the settings model, which names its images' hash; one model serves one generator.
        if settings is None or not issubclass(settings, GeneratorSettings) or settings.generator not in ("", name):
            raise ValueError(f"generator {name!r} needs a GeneratorSettings subclass of its own, got {settings!r}")
        settings.generator = name
        return super().register(name, settings=settings)


GENERATORS = GeneratorRegistry("generator", "synthetic.generator")
AUGMENTATION_POLICIES: Registry = Registry("augmentation policy", "augmentation.policy")
