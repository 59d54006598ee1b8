"""The error every configuration problem becomes: it names the field, the value and what is allowed."""


class ConfigError(ValueError):
    """A configuration value is invalid; raised before any Ray work starts."""

    def __init__(self, field: str, value: object, allowed: str, source: str | None = None) -> None:
        self.field = field
        self.value = value
        self.allowed = allowed
        self.source = source
        where = f" in {source}" if source else ""
        # A field is named by the user's own key, which may hold a newline: the message stays one line.
        shown = field if field.isprintable() else repr(field)
        super().__init__(f"{shown}{where}: {value!r} is not allowed; {allowed}")
