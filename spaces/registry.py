"""One small registry of named components (as torchvision's `models/_api.py` and timm's `register_model`):
register under a name, list the names, get by name with a "did you mean" suggestion."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from spaces.errors import ConfigError, did_you_mean

Component = TypeVar("Component")


@dataclass(frozen=True)
class Registered(Generic[Component]):
    """A registered component and the pydantic model of its settings (None: it takes none)."""

    name: str
    component: Component
    settings: type | None


class Registry(Generic[Component]):
    """Components of one kind by name. `field` is the configuration key that names them, so an unknown name
    is a ConfigError naming that key, the value and the registered names."""

    def __init__(self, kind: str, field: str) -> None:
        self.kind = kind
        self.field = field
        self._entries: dict[str, Registered[Component]] = {}

    def register(self, name: str, *, settings: type | None = None) -> Callable[[Component], Component]:
        """Decorator: `@POLICIES.register("randaugment", settings=RandAugmentSettings)` above a class or function."""

        def register(component: Component) -> Component:
            # Two components under one name would make a config mean whichever module was imported last.
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is already registered (by {self._entries[name].component!r})")
            self._entries[name] = Registered(name, component, settings)
            return component

        return register

    def unregister(self, name: str) -> None:
        """Removes `name` (what registered it for a while, such as a test's own components, takes it back)."""
        if name not in self._entries:
            raise ValueError(f"{self.kind} {name!r} is not registered")
        del self._entries[name]

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self._entries

    def entry(self, name: str) -> Registered[Component]:
        # A name from a YAML file may be a list or a mapping, which cannot even be looked up.
        if name not in self:
            hint = did_you_mean(name, self._entries)
            suggestion = f"; {hint}" if hint else ""
            registered = ", ".join(self.names()) or f"none (import the package that registers {self.kind}s first)"
            raise ConfigError(self.field, name, f"unknown {self.kind}; registered: {registered}{suggestion}")
        return self._entries[name]

    def get(self, name: str) -> Component:
        return self.entry(name).component
