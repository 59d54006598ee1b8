"""The registry of augmentation policies: register a factory under a name, then create it by name.

Parameters are declared with their kind, default and range so that a search space can be checked,
and mutated by Population Based Training, without building any transform.
"""

from __future__ import annotations

import difflib
import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import torch

from trainables.errors import TrainableInputError

ImageTransform = Callable[[torch.Tensor], torch.Tensor]
"""Maps one uint8 [C, H, W] image to a uint8 image of the same shape."""

PolicyFactory = Callable[..., ImageTransform | None]
"""Called with every declared parameter as a keyword (defaults filled in, values validated)."""

ParameterValue = float | int


class AugmentationError(TrainableInputError):
    """An augmentation policy name, parameter or input batch is invalid."""


@dataclass(frozen=True)
class ParameterSpec:
    """One searchable parameter of a policy: its kind, default and inclusive range [low, high]."""

    name: str
    kind: Literal["float", "int"]
    default: float | int
    low: float | int
    high: float | int
    description: str

    def __post_init__(self) -> None:
        # A wrong spec is a bug in a policy module, so fail when it is registered, not mid-sweep.
        if self.kind not in ("float", "int"):
            raise ValueError(f"parameter {self.name!r}: kind {self.kind!r} is not one of 'float', 'int'")
        if not self.low <= self.default <= self.high:
            raise ValueError(
                f"parameter {self.name!r}: default {self.default} lies outside [{self.low}, {self.high}]"
            )

    def allowed(self) -> str:
        """The allowed values in words, for error messages and docs."""
        return f"{self.kind} in [{self.low}, {self.high}]"


@dataclass(frozen=True)
class _RegisteredPolicy:
    factory: PolicyFactory
    parameters: dict[str, ParameterSpec]


_POLICIES: dict[str, _RegisteredPolicy] = {}


def register_augmentation(
    name: str, parameters: Sequence[ParameterSpec] = ()
) -> Callable[[PolicyFactory], PolicyFactory]:
    """Decorator registering ``factory(**params) -> ImageTransform | None`` as policy ``name``."""
    if name in _POLICIES:
        raise ValueError(f"augmentation policy {name!r} is already registered")
    parameters_by_name = {spec.name: spec for spec in parameters}
    if len(parameters_by_name) != len(parameters):
        raise ValueError(f"augmentation policy {name!r} declares a parameter name twice")

    def register(factory: PolicyFactory) -> PolicyFactory:
        _POLICIES[name] = _RegisteredPolicy(factory=factory, parameters=parameters_by_name)
        return factory

    return register


def list_augmentation_policies() -> list[str]:
    """The registered policy names, sorted."""
    return sorted(_POLICIES)


def augmentation_parameters(policy: str) -> dict[str, ParameterSpec]:
    """The parameters ``policy`` accepts, by name, in the order the policy declares them."""
    return dict(_registered_policy(policy).parameters)


def resolve_augmentation_parameters(policy: str, **params: object) -> dict[str, ParameterValue]:
    """Validates ``params`` for ``policy`` and returns every parameter, defaults filled in.

    Ints may be given as integral floats (9.0 from a sampler); the result holds Python ints
    and floats, so it is safe to log or compare.
    """
    specs = _registered_policy(policy).parameters
    for name, value in params.items():
        if name not in specs:
            raise AugmentationError(
                f"augmentation policy {policy!r} has no parameter {name!r} (given {value!r}); "
                f"{_allowed_parameters_text(specs)}{_suggestion(name, specs)}"
            )
    return {
        name: _coerce(policy, spec, params[name]) if name in params else spec.default
        for name, spec in specs.items()
    }


def create_augmentation(policy: str, **params: object) -> ImageTransform | None:
    """Builds the transform of ``policy`` with ``params``; ``None`` means no augmentation."""
    resolved = resolve_augmentation_parameters(policy, **params)
    return _POLICIES[policy].factory(**resolved)


def _registered_policy(policy: str) -> _RegisteredPolicy:
    if policy not in _POLICIES:
        raise AugmentationError(
            f"unknown augmentation policy {policy!r}; registered policies: "
            f"{', '.join(list_augmentation_policies())}{_suggestion(policy, _POLICIES)}"
        )
    return _POLICIES[policy]


def _coerce(policy: str, spec: ParameterSpec, value: object) -> ParameterValue:
    where = f"augmentation policy {policy!r} parameter {spec.name!r}"
    # bool is an int to Python, but True as a magnitude is surely a config mistake.
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise AugmentationError(
            f"{where} = {value!r} ({type(value).__name__}) is not a number; allowed: {spec.allowed()}"
        )
    number = float(value)
    # Written so that NaN fails the check too.
    if not spec.low <= number <= spec.high:
        raise AugmentationError(f"{where} = {value!r} is out of range; allowed: {spec.allowed()}")
    if spec.kind == "int":
        if not number.is_integer():
            raise AugmentationError(f"{where} = {value!r} is not an integer; allowed: {spec.allowed()}")
        return int(number)
    if math.isinf(number):
        raise AugmentationError(f"{where} = {value!r} is not finite; allowed: {spec.allowed()}")
    return number


def _allowed_parameters_text(specs: Mapping[str, ParameterSpec]) -> str:
    if not specs:
        return "this policy takes no parameters"
    return "allowed parameters: " + ", ".join(f"{name} ({spec.allowed()})" for name, spec in specs.items())


def _suggestion(name: str, candidates: Mapping[str, object]) -> str:
    close = difflib.get_close_matches(name, list(candidates), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""
