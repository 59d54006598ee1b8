"""A search space: fixed values plus searchable parameters (with conditions), loaded from YAML presets."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from spaces.errors import ConfigError
from spaces.schema import TrialConfig, config_error_from, nest

PRESET_DIRECTORY = Path(__file__).parent / "presets"
DOMAIN_KINDS = ("choice", "uniform", "loguniform", "integer")


class Parameter(BaseModel):
    """One searchable parameter: exactly one domain kind, an optional condition, PBT mutability."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
    choice: list[Any] | None = None
    uniform: tuple[float, float] | None = None
    loguniform: tuple[float, float] | None = None
    # Inclusive integer range.
    integer: tuple[int, int] | None = None
    # Active only when every named key has one of the listed values (Optuna's conditional parameters).
    when: dict[str, list[Any]] | None = None
    # Population Based Training may change this value during training (magnitudes, learning rate).
    mutable: bool = False

    @model_validator(mode="before")
    @classmethod
    def _scalar_when_values(cls, values: Any) -> Any:
        if isinstance(values, dict) and isinstance(values.get("when"), dict):
            values = dict(values)
            values["when"] = {
                key: allowed if isinstance(allowed, list) else [allowed] for key, allowed in values["when"].items()
            }
        return values

    @model_validator(mode="after")
    def _one_domain(self) -> Parameter:
        kinds = [kind for kind in DOMAIN_KINDS if getattr(self, kind) is not None]
        if len(kinds) != 1:
            raise ValueError(f"give exactly one of {', '.join(DOMAIN_KINDS)}; got {kinds or 'none'}")
        if self.choice is not None and not self.choice:
            raise ValueError("choice needs at least one value")
        for key, allowed in (self.when or {}).items():
            if not allowed:
                raise ValueError(f"when: {key!r} needs at least one value the parameter is active for")
        for kind in ("uniform", "loguniform", "integer"):
            bounds = getattr(self, kind)
            if bounds is not None and not bounds[0] <= bounds[1]:
                raise ValueError(f"{kind} needs low <= high; got {list(bounds)}")
        if self.loguniform is not None and self.loguniform[0] <= 0:
            raise ValueError(f"loguniform needs a positive low bound; got {list(self.loguniform)}")
        return self

    @property
    def kind(self) -> str:
        return next(kind for kind in DOMAIN_KINDS if getattr(self, kind) is not None)

    def corner_values(self) -> list[Any]:
        """Values that exercise the whole domain: every choice, or both ends of a range."""
        if self.choice is not None:
            return list(self.choice)
        low, high = getattr(self, self.kind)
        return [low] if low == high else [low, high]

    def clamp(self, value: Any) -> Any:
        """Keep a value inside its range: Population Based Training perturbs by factors without bounds."""
        if self.kind == "choice" or not isinstance(value, (int, float)) or isinstance(value, bool):
            return value
        low, high = getattr(self, self.kind)
        value = min(max(value, low), high)
        return int(round(value)) if self.kind == "integer" else float(value)

    def is_active(self, values: Mapping[str, Any]) -> bool:
        return all(values.get(key) in allowed for key, allowed in (self.when or {}).items())


class SearchSpace(BaseModel):
    """What a sweep may vary. Keys are dotted TrialConfig paths (`optimizer.lr`, `augmentation.magnitude`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = "custom"
    description: str = ""
    fixed: dict[str, Any] = Field(default_factory=dict)
    parameters: dict[str, Parameter] = Field(default_factory=dict)
    # Sweep settings this space suggests (repeats, num_samples, image_size...); flags and --config override them.
    sweep: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _keys_consistent(self) -> SearchSpace:
        # ConfigErrors name the keys at fault; pydantic's own report would quote the whole space as the value.
        both = sorted(set(self.fixed) & set(self.parameters))
        if both:
            raise ConfigError(f"parameters[{both[0]!r}]", both, "a key is either fixed or searched, not both")
        known = set(self.fixed) | set(self.parameters)
        for key, parameter in self.parameters.items():
            for condition_key in parameter.when or {}:
                if condition_key not in known:
                    raise ConfigError(
                        f"parameters[{key!r}].when", condition_key, "a condition names a key that is fixed or searched"
                    )
        return self

    def ordered_parameters(self) -> list[tuple[str, Parameter]]:
        """Parameters ordered so that every condition's key is decided before the parameter it guards."""
        ordered: list[tuple[str, Parameter]] = []
        pending = dict(self.parameters)
        while pending:
            decided = set(self.fixed) | {key for key, _ in ordered}
            ready = [key for key, parameter in pending.items() if set(parameter.when or {}) <= decided]
            if not ready:
                raise ConfigError(
                    "parameters", sorted(pending), "conditions form a cycle; a `when:` may only refer to other parameters"
                )
            ordered.extend((key, pending.pop(key)) for key in ready)
        return ordered

    def mutable_parameters(self) -> dict[str, Parameter]:
        return {key: parameter for key, parameter in self.parameters.items() if parameter.mutable}

    def resolve(self, sampled: Mapping[str, Any], source: str | None = None) -> TrialConfig:
        """A searcher's sample (flat, possibly with inactive conditional keys) as a typed TrialConfig."""
        return TrialConfig.from_mapping(nest(self.active_values(sampled), source), source)

    def active_values(self, sampled: Mapping[str, Any]) -> dict[str, Any]:
        """Fixed values plus the sampled values whose conditions hold; the flat form leaderboards show."""
        # In dependency order, so a parameter guarded by an inactive one is inactive too.
        active = dict(self.fixed)
        for key, parameter in self.ordered_parameters():
            if key in sampled and parameter.is_active(active):
                active[key] = parameter.clamp(plain_value(sampled[key]))
        return active

    def representative_samples(self) -> Iterator[dict[str, Any]]:
        """One sample per corner value of every parameter, the others at their first corner.

        Validating these catches a wrong name or range before any Ray work starts, without
        sampling the whole space.
        """
        baseline = {key: parameter.corner_values()[0] for key, parameter in self.parameters.items()}
        yield dict(baseline)
        for key, parameter in self.parameters.items():
            for value in parameter.corner_values()[1:]:
                yield {**baseline, key: value}
            # A conditional parameter is only checked when its condition holds, so make it hold.
            for condition_key, allowed in (parameter.when or {}).items():
                if condition_key in self.parameters:
                    for value in parameter.corner_values():
                        yield {**baseline, condition_key: allowed[0], key: value}

    def validate_samples(self, source: str | None = None) -> list[TrialConfig]:
        return [self.resolve(sample, source) for sample in self.representative_samples()]

    def fixed_at(self, sample: Mapping[str, Any], name: str, description: str = "") -> SearchSpace:
        """This space with every parameter fixed at the given sample: what best_config.yaml holds."""
        return SearchSpace(name=name, description=description, fixed=self.active_values(sample), sweep=self.sweep)


def plain_value(value: Any) -> Any:
    """numpy scalars from samplers become plain Python values, so YAML and pydantic see ints and floats."""
    if hasattr(value, "item") and callable(value.item):
        return value.item()
    return value


def list_presets() -> list[str]:
    return sorted(path.stem for path in PRESET_DIRECTORY.glob("*.yaml"))


# More values than any space or sweep file needs (the largest preset has a few hundred), and few enough to check
# in milliseconds: YAML aliases nested in aliases expand a small file into millions of values (a "billion laughs").
MAX_YAML_VALUES = 100_000


def _expanded_size_within(values: Any, limit: int) -> bool:
    pending, seen = [values], 0
    while pending:
        item = pending.pop()
        seen += 1
        if seen > limit:
            return False
        if isinstance(item, Mapping):
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return True


def read_yaml(path: Path) -> Any:
    try:
        values = yaml.safe_load(path.read_text())
    except OSError as error:
        raise ConfigError("file", str(path), f"it cannot be read ({error.strerror})") from None
    except UnicodeDecodeError as error:
        raise ConfigError("file", str(path), f"it is not UTF-8 text ({error.reason} at byte {error.start})") from None
    except ValueError as error:  # a path with a NUL byte
        raise ConfigError("file", str(path), f"it is not a usable path ({error})") from None
    except yaml.YAMLError as error:
        raise ConfigError("file", str(path), f"it is not valid YAML: {yaml_problem(error)}") from None
    if not _expanded_size_within(values, MAX_YAML_VALUES):
        raise ConfigError(
            "file", str(path), f"its aliases expand to more than {MAX_YAML_VALUES} values (or refer to themselves); write "
            "the values out or use fewer nested aliases",
        )
    return values


def yaml_problem(error: yaml.YAMLError) -> str:
    """PyYAML's multi-line report as one line: the problem and where it is (so the CLI prints one `error:` line)."""
    if isinstance(error, yaml.MarkedYAMLError):
        mark = error.problem_mark or error.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        context = f" ({error.context})" if error.context else ""
        return f"{error.problem or 'invalid YAML'}{context}{where}"
    return " ".join(str(error).split())


def load_space(reference: str | Mapping[str, Any]) -> SearchSpace:
    """A preset name (`quick`), a path to a YAML file, or an inline mapping."""
    if isinstance(reference, Mapping):
        return space_from_mapping(reference, "inline space")
    if not isinstance(reference, str):
        raise ConfigError(
            "space", reference, f"give a preset name ({', '.join(list_presets())}), the path of a YAML file or a mapping"
        )
    path = Path(reference)
    if reference in list_presets():
        path = PRESET_DIRECTORY / f"{reference}.yaml"
    elif not (path.suffix in (".yaml", ".yml") and path.exists()):
        raise ConfigError(
            "space", reference, f"give a preset name ({', '.join(list_presets())}) or the path of an existing YAML file"
        )
    values = read_yaml(path)
    if not isinstance(values, Mapping):
        raise ConfigError("space", str(path), "the file must hold a mapping with 'fixed' and 'parameters'")
    return space_from_mapping({"name": path.stem, **values}, str(path))


def space_from_mapping(values: Mapping[str, Any], source: str) -> SearchSpace:
    try:
        return SearchSpace.model_validate(dict(values))
    except ValidationError as error:
        first = error.errors()[0]
        location = [str(part) for part in first["loc"]]
        # "parameters.optimizer.lr.uniform" reads ambiguously with dotted keys; keep the key intact.
        if len(location) >= 2 and location[0] == "parameters":
            field = f"parameters[{location[1]!r}]" + "".join(f".{part}" for part in location[2:])
            message = first["msg"].removeprefix("Value error, ")
            if first["type"] == "extra_forbidden":
                message = f"unknown key; allowed: {', '.join(Parameter.model_fields)}"
            raise ConfigError(field, first.get("input"), message, source) from None
        raise config_error_from(error, source, SearchSpace) from None
