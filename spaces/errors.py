"""The error every configuration problem becomes: it names the field, the value and what is allowed."""

import difflib
import reprlib
from collections.abc import Iterable

# A value is quoted in full unless it is large: a YAML alias repeated inside aliases (`[*a, *a, ...]` nested) is a
# list of millions of items, which a plain repr would spell out in the one-line error.
_QUOTE = reprlib.Repr()
_QUOTE.maxlevel, _QUOTE.maxlist, _QUOTE.maxtuple, _QUOTE.maxdict, _QUOTE.maxset = 2, 10, 10, 10, 10
_QUOTE.maxstring, _QUOTE.maxother, _QUOTE.maxlong = 300, 300, 100


def _quote(value: object, limit: int = 1000) -> str:
    """repr(value), or a shortened one for a value with more than `limit` items (or a recursive one)."""
    pending, seen = [value], 0
    while pending:
        item = pending.pop()
        seen += 1
        if seen > limit:
            return _QUOTE.repr(value)
        if isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, (list, tuple, set, frozenset)):
            pending.extend(item)
        elif isinstance(item, str) and len(item) > 10 * limit:
            return _QUOTE.repr(value)
    return repr(value)


class ConfigError(ValueError):
    """A configuration value is invalid; raised before any Ray work starts."""

    def __init__(self, field: str, value: object, allowed: str, source: str | None = None) -> None:
        self.field = field
        self.value = value
        self.allowed = allowed
        self.source = source
        where = f" in {source}" if source else ""
        # A field is named by the user's own key, which may hold a newline: the message stays one line.
        shown = field if str(field).isprintable() else repr(field)
        super().__init__(f"{shown}{where}: {_quote(value)} is not allowed; {allowed}")


def did_you_mean(value: object, allowed: Iterable[str], *, n: int = 1) -> str:
    """The hint every "unknown name" message ends with: "did you mean 'x'?" for the allowed names closest to a
    mistyped one (difflib's ratio of at least 0.6, at most `n` of them), or "" when none is close."""
    close = difflib.get_close_matches(str(value), list(allowed), n=n)
    return f"did you mean {', '.join(repr(name) for name in close)}?" if close else ""
