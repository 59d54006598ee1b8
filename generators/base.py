"""The Generator interface and its registry: register a class under a name with its settings, create it by name.

Settings are declared as `SettingSpec`s so that a search space can be checked, and a pool can name a
generator's output by a settings hash, without building any model.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import math
import numbers
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np

from generators.errors import GeneratorError

SettingKind = Literal["int", "float", "str", "int_list"]
_SETTING_KINDS: tuple[str, ...] = ("int", "float", "str", "int_list")

# torch.Generator.manual_seed takes any 64-bit value, but int64 is what numpy, JSON and the pool store safely.
MAXIMUM_SEED = 2**63 - 1

ProgressCallback = Callable[[int, int], None]
"""Called as progress(step, total_steps) while a generator fits."""


@dataclass(frozen=True)
class SettingSpec:
    """One generator setting: its kind, default and allowed values, for validation, docs and search spaces.

    `low`/`high` bound int and float values (inclusive) and each element of an int_list; `choices`
    restricts to listed values; `multiple_of` requires ints (or each int_list element) to be multiples.
    `affects_images`: the setting changes what images come out, so it is part of `settings_hash`;
    operational settings (a sampling batch size) are not. `affects_fit`: the setting changes the fitted
    state (model shape, training), so a fitted state is reusable across settings that only affect sampling.
    """

    name: str
    kind: SettingKind
    default: Any
    low: float | None = None
    high: float | None = None
    choices: tuple | None = None
    description: str = ""
    affects_images: bool = True
    affects_fit: bool = False
    multiple_of: int | None = None

    def __post_init__(self) -> None:
        # A wrong spec is a bug in a generator module, so fail when it is registered, not mid-sweep.
        if self.kind not in _SETTING_KINDS:
            raise ValueError(f"setting {self.name!r}: kind {self.kind!r} is not one of {', '.join(_SETTING_KINDS)}")
        if self.affects_fit and not self.affects_images:
            raise ValueError(f"setting {self.name!r}: a setting that affects the fit also affects the images")
        try:
            self.coerce(self.default, where=f"setting {self.name!r} default")
        except GeneratorError as error:
            raise ValueError(str(error)) from None

    def allowed(self) -> str:
        """The allowed values in words, for error messages and docs."""
        if self.kind == "str":
            return "one of " + ", ".join(repr(choice) for choice in self.choices) if self.choices else "a string"
        element = "int" if self.kind == "int_list" else self.kind
        if self.choices is not None:
            text = f"{element}, one of " + ", ".join(repr(choice) for choice in self.choices)
        elif self.low is not None and self.high is not None:
            text = f"{element} in [{_number_text(self.low)}, {_number_text(self.high)}]"
        elif self.low is not None:
            text = f"{element} >= {_number_text(self.low)}"
        elif self.high is not None:
            text = f"{element} <= {_number_text(self.high)}"
        else:
            text = element
        if self.multiple_of is not None:
            text += f", a multiple of {self.multiple_of}"
        return f"a non-empty list, each element {text}" if self.kind == "int_list" else text

    def coerce(self, value: object, *, where: str) -> Any:
        """`value` as this setting's canonical JSON-able type (int, float, str or list of int), or GeneratorError."""
        if self.kind == "str":
            if not isinstance(value, str) or (self.choices is not None and value not in self.choices):
                raise GeneratorError(f"{where} = {value!r} is not allowed; allowed: {self.allowed()}")
            return value
        if self.kind == "int_list":
            if isinstance(value, str | bytes | Mapping) or not isinstance(value, Sequence | np.ndarray) or len(value) == 0:
                raise GeneratorError(f"{where} = {value!r} is not a non-empty list; allowed: {self.allowed()}")
            return [self._coerce_number(element, where=where, whole=value, integer=True) for element in value]
        return self._coerce_number(value, where=where, whole=value, integer=self.kind == "int")

    def _coerce_number(self, value: object, *, where: str, whole: object, integer: bool) -> int | float:
        # bool is an int to Python, but True as a learning rate is surely a config mistake.
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise GeneratorError(
                f"{where} = {whole!r} ({type(value).__name__}) is not a number; allowed: {self.allowed()}"
            )
        number = float(value)
        if not math.isfinite(number):
            raise GeneratorError(f"{where} = {whole!r} is not finite; allowed: {self.allowed()}")
        if integer:
            # A sampler may hand over 3.0 for an int; 3.5 is a real mistake.
            if not number.is_integer():
                raise GeneratorError(f"{where} = {whole!r} is not an integer; allowed: {self.allowed()}")
            coerced: int | float = int(number)
        else:
            coerced = number
        out_of_range = (self.low is not None and number < self.low) or (self.high is not None and number > self.high)
        not_a_choice = self.choices is not None and coerced not in self.choices
        not_a_multiple = self.multiple_of is not None and int(number) % self.multiple_of != 0
        if out_of_range or not_a_choice or not_a_multiple:
            raise GeneratorError(f"{where} = {whole!r} is not allowed; allowed: {self.allowed()}")
        return coerced


class Generator(ABC):
    """Makes synthetic uint8 images [N, C, H, W] of one class, one image per seed.

    Subclasses register with `register_generator`. Image i of `generate` must be a deterministic function of
    (fitted state, class_index, seeds[i], sources[i] for image-to-image generators) only, never of the other
    images in the call or their number: a shared pool then generates in any batches and stays reproducible.
    """

    name: ClassVar[str]
    setting_specs: ClassVar[dict[str, SettingSpec]]
    image_to_image: ClassVar[bool]
    """True: each image is made from one given source image; False: from noise."""
    needs_fit: ClassVar[bool]
    """True: must be fit on real images (or loaded) before it generates."""
    dependencies: ClassVar[tuple[str, ...]] = ()
    """Keyword objects the caller passes through create_generator (callables a generator may not import)."""
    undeclared_settings_rule: ClassVar[str | None] = None
    """In words, which settings beyond the declared ones `undeclared_setting_spec` accepts (None: none)."""

    @classmethod
    def undeclared_setting_spec(cls, setting: str) -> SettingSpec | None:
        """The spec for a setting name that is not declared but matches a rule of this generator, else None.

        Lets a generator accept settings it passes on opaquely (oversample's augmentation parameters);
        such settings have no default and appear in the resolved settings only when given.
        """
        return None

    @classmethod
    def check_setting_combination(cls, settings: Mapping[str, Any]) -> None:
        """Raises GeneratorError when resolved settings are each valid but not together (one setting bounds
        another); called by resolve_generator_settings so that a bad mix fails before any work starts."""
        return None

    def __init__(
        self,
        *,
        settings: Mapping[str, Any],
        num_classes: int,
        channels: int,
        image_size: int,
        device: str = "cpu",
    ) -> None:
        for field, value, lowest in (("num_classes", num_classes, 1), ("image_size", image_size, 1)):
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < lowest:
                raise GeneratorError(f"generator {self.name!r}: {field} = {value!r} is not allowed; allowed: int >= {lowest}")
        if channels not in (1, 3) or isinstance(channels, bool):
            raise GeneratorError(f"generator {self.name!r}: channels = {channels!r} is not allowed; allowed: 1 or 3")
        # Resolving again is idempotent and makes a directly constructed generator as safe as a created one.
        self.settings: dict[str, Any] = resolve_generator_settings(self.name, settings)
        self.num_classes = int(num_classes)
        self.channels = int(channels)
        self.image_size = int(image_size)
        self.device = str(device)

    @property
    def is_fitted(self) -> bool:
        """Whether generate can run: always for generators that need no fit."""
        return not self.needs_fit

    @abstractmethod
    def generate(self, class_index: int, seeds: Sequence[int], sources: np.ndarray | None = None) -> np.ndarray:
        """uint8 [len(seeds), C, H, W] images of `class_index`; `sources` (uint8 [len(seeds), C, H, W]) is
        required for image-to-image generators and must be None for the others."""

    def fit(
        self, images: np.ndarray, labels: np.ndarray, *, seed: int, progress: ProgressCallback | None = None
    ) -> None:
        """Fits on real images (uint8 [N, C, H, W]) and labels (int [N]); nothing to do for needs_fit=False."""
        if self.needs_fit:
            raise NotImplementedError(f"generator {self.name!r} needs a fit but does not implement fit")

    def save(self, directory: Path) -> None:
        """Writes the fitted state into `directory`; generators without state write nothing."""
        return None

    def load(self, directory: Path) -> None:
        """Restores what `save` wrote; generators without state read nothing."""
        return None

    def check_generate_request(
        self, class_index: int, seeds: Sequence[int], sources: np.ndarray | None
    ) -> list[int]:
        """Validates generate's arguments against this generator; returns the seeds as Python ints."""
        where = f"generator {self.name!r}"
        if isinstance(class_index, bool) or not isinstance(class_index, numbers.Integral) or not (
            0 <= class_index < self.num_classes
        ):
            raise GeneratorError(
                f"{where}: class_index = {class_index!r} is not allowed; allowed: int in [0, {self.num_classes - 1}]"
            )
        if isinstance(seeds, str | bytes) or not isinstance(seeds, Sequence | np.ndarray):
            raise GeneratorError(f"{where}: seeds = {seeds!r} is not a sequence of ints")
        checked = [check_seed(self.name, seed) for seed in seeds]
        if not self.image_to_image:
            if sources is not None:
                raise GeneratorError(
                    f"{where} makes images from noise and takes no source images; pass sources=None"
                )
            return checked
        expected = (len(checked), self.channels, self.image_size, self.image_size)
        if sources is None:
            raise GeneratorError(f"{where} makes each image from a source image; pass sources, uint8 {list(expected)}")
        if not isinstance(sources, np.ndarray) or sources.dtype != np.uint8 or sources.shape != expected:
            shape = getattr(sources, "shape", None)
            dtype = getattr(sources, "dtype", type(sources).__name__)
            raise GeneratorError(
                f"{where}: sources must be a uint8 array shaped {list(expected)} (one per seed), "
                f"got {dtype} shaped {None if shape is None else list(shape)}"
            )
        return checked

    def check_training_data(self, images: np.ndarray, labels: np.ndarray) -> None:
        """Validates fit's arguments: uint8 [N, C, H, W] images of this generator's size, labels in 0..K-1."""
        where = f"generator {self.name!r} fit"
        expected = [self.channels, self.image_size, self.image_size]
        if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 4 or list(images.shape[1:]) != expected:
            raise GeneratorError(
                f"{where}: images must be a uint8 array shaped [N, {', '.join(map(str, expected))}], "
                f"got {getattr(images, 'dtype', type(images).__name__)} shaped {list(getattr(images, 'shape', []))}"
            )
        if len(images) == 0:
            raise GeneratorError(f"{where}: no training images were given")
        if not isinstance(labels, np.ndarray) or labels.shape != (len(images),) or not np.issubdtype(labels.dtype, np.integer):
            raise GeneratorError(
                f"{where}: labels must be an int array shaped [{len(images)}] (one per image), "
                f"got {getattr(labels, 'dtype', type(labels).__name__)} shaped {list(getattr(labels, 'shape', []))}"
            )
        if labels.min() < 0 or labels.max() >= self.num_classes:
            raise GeneratorError(
                f"{where}: labels range over [{int(labels.min())}, {int(labels.max())}]; "
                f"allowed: [0, {self.num_classes - 1}] (num_classes = {self.num_classes})"
            )


def check_seed(generator: str, seed: object) -> int:
    """`seed` as a Python int, or GeneratorError when it is not an int in [0, 2**63 - 1]."""
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not 0 <= seed <= MAXIMUM_SEED:
        raise GeneratorError(f"generator {generator!r}: seed {seed!r} is not allowed; allowed: int in [0, 2**63 - 1]")
    return int(seed)


GeneratorClass = type[Generator]

_GENERATORS: dict[str, GeneratorClass] = {}


def register_generator(name: str, settings: Sequence[SettingSpec]) -> Callable[[GeneratorClass], GeneratorClass]:
    """Class decorator registering a Generator subclass as `name` with the settings it declares."""
    if name in _GENERATORS:
        raise ValueError(f"generator {name!r} is already registered (by {_GENERATORS[name].__qualname__})")
    specs = {spec.name: spec for spec in settings}
    if len(specs) != len(settings):
        raise ValueError(f"generator {name!r} declares a setting name twice")

    def register(cls: GeneratorClass) -> GeneratorClass:
        if not (isinstance(cls, type) and issubclass(cls, Generator)):
            raise TypeError(f"generator {name!r}: {cls!r} is not a subclass of Generator")
        cls.name = name
        cls.setting_specs = specs
        _GENERATORS[name] = cls
        return cls

    return register


def list_generators() -> list[str]:
    """The registered generator names, sorted."""
    return sorted(_GENERATORS)


def generator_class(name: str) -> GeneratorClass:
    """The class registered as `name`."""
    if name not in _GENERATORS:
        raise GeneratorError(
            f"unknown generator {name!r}; registered generators: {', '.join(list_generators())}"
            f"{_suggestion(str(name), _GENERATORS)}"
        )
    return _GENERATORS[name]


def generator_setting_specs(name: str) -> dict[str, SettingSpec]:
    """The settings `name` declares, by name, in declaration order (not the rule-matched ones)."""
    return dict(generator_class(name).setting_specs)


def resolve_generator_settings(name: str, settings: Mapping[str, Any] | None) -> dict[str, Any]:
    """Validates `settings` for generator `name` and returns every declared setting, defaults filled in.

    The result holds only ints, floats, strings and lists of ints, so it is safe to log, hash and compare.
    """
    cls = generator_class(name)
    settings = {} if settings is None else settings
    if not isinstance(settings, Mapping):
        raise GeneratorError(f"generator {name!r} settings must be a mapping of name to value, got {settings!r}")
    resolved: dict[str, Any] = {}
    undeclared: dict[str, Any] = {}
    for setting, value in settings.items():
        spec = _spec_for(cls, setting)
        if spec is None:
            raise GeneratorError(
                f"generator {name!r} has no setting {setting!r} (given {value!r}); "
                f"{_allowed_settings_text(cls)}{_suggestion(str(setting), cls.setting_specs)}"
            )
        coerced = spec.coerce(value, where=f"generator {name!r} setting {setting!r}")
        if setting in cls.setting_specs:
            resolved[setting] = coerced
        else:
            undeclared[setting] = coerced
    with_defaults = {
        setting: resolved[setting] if setting in resolved else spec.coerce(spec.default, where=setting)
        for setting, spec in cls.setting_specs.items()
    }
    result = with_defaults | dict(sorted(undeclared.items()))
    cls.check_setting_combination(result)
    return result


def settings_hash(name: str, settings: Mapping[str, Any] | None) -> str:
    """12 hex characters naming what images `name` with `settings` makes: a sha256 of the generator name and
    the resolved settings that affect images, as canonical JSON; the same across processes and key order."""
    return _hash_of(name, settings, lambda spec: spec.affects_images)


def fit_settings_hash(name: str, settings: Mapping[str, Any] | None) -> str:
    """Like `settings_hash`, over the settings that affect the fitted state only: two settings with one
    fit hash can share one fitted model and differ in sampling (guidance, steps)."""
    return _hash_of(name, settings, lambda spec: spec.affects_fit)


def create_generator(
    name: str,
    *,
    settings: Mapping[str, Any] | None,
    num_classes: int,
    channels: int,
    image_size: int,
    device: str = "cpu",
    **dependencies: Any,
) -> Generator:
    """Builds generator `name` with resolved `settings`; `dependencies` are the objects the class asks for
    in `dependencies` (e.g. oversample's `augment`)."""
    cls = generator_class(name)
    unexpected = sorted(set(dependencies) - set(cls.dependencies))
    if unexpected:
        accepted = ", ".join(cls.dependencies) if cls.dependencies else "none"
        raise GeneratorError(
            f"generator {name!r} takes no dependency {', '.join(map(repr, unexpected))}; accepted dependencies: {accepted}"
        )
    resolved = resolve_generator_settings(name, settings)
    return cls(
        settings=resolved, num_classes=num_classes, channels=channels, image_size=image_size, device=device, **dependencies
    )


def _spec_for(cls: GeneratorClass, setting: object) -> SettingSpec | None:
    if not isinstance(setting, str):
        return None
    return cls.setting_specs.get(setting) or cls.undeclared_setting_spec(setting)


def _hash_of(name: str, settings: Mapping[str, Any] | None, included: Callable[[SettingSpec], bool]) -> str:
    cls = generator_class(name)
    resolved = resolve_generator_settings(name, settings)
    kept = {setting: value for setting, value in resolved.items() if included(_spec_for(cls, setting))}
    canonical = json.dumps({"generator": name, "settings": kept}, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:12]


def _allowed_settings_text(cls: GeneratorClass) -> str:
    parts = [f"{setting} ({spec.allowed()})" for setting, spec in cls.setting_specs.items()]
    if cls.undeclared_settings_rule:
        parts.append(cls.undeclared_settings_rule)
    return "allowed settings: " + ", ".join(parts) if parts else "this generator takes no settings"


def _number_text(number: float) -> str:
    # 1000000 reads better than 1e+06 in an error message, 1e-07 better than 0.0000001.
    return str(int(number)) if float(number).is_integer() else repr(float(number))


def _suggestion(name: str, candidates: Mapping[str, object]) -> str:
    close = difflib.get_close_matches(name, list(candidates), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""
