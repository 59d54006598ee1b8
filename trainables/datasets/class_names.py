"""Class names as every source hands them over, checked once where they enter (`assemble_splits`): they label
plots, prompts and metric names, so a name that could be read as a path (`../x`, `a/b`), that is empty or
unprintable, or that two classes would share once reduced to a metric name, is refused before any Ray work starts.
Pool folders, model stores and report files use class indices or the sanitised names, never a raw class name."""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence

from trainables.datasets.image_set import DatasetError
from trainables.metrics import sanitize_class_name

ALLOWED = (
    "class names must be non-empty text with at least one letter or digit (a-z, 0-9), without path separators "
    "(/ or \\), '..' or control characters, and distinct once lowercased to [a-z0-9_]"
)


def _problem(class_name: str) -> str | None:
    if not class_name.strip():
        return "it is empty"
    if "/" in class_name or "\\" in class_name or class_name.strip() in (".", ".."):
        return "it could be read as a path (path separators, '.' or '..')"
    if ".." in class_name.split("/"):
        return "it could be read as a path ('..')"
    if any(unicodedata.category(character).startswith("C") for character in class_name):
        return "it holds control characters"
    if not sanitize_class_name(class_name):
        return "it has no letter or digit (a-z, 0-9) to name its metrics with"
    return None


def check_class_names(dataset: str, class_names: Sequence[object]) -> tuple[str, ...]:
    """The names as strings; raises DatasetError naming the first bad name, the dataset and what is allowed."""
    names = tuple(str(class_name) for class_name in class_names)
    for class_name in names:
        problem = _problem(class_name)
        if problem:
            raise DatasetError(f"class name {class_name!r} of '{dataset}' is refused: {problem}; {ALLOWED}")
    seen: dict[str, str] = {}
    for class_name in names:
        metric_name = sanitize_class_name(class_name)
        if metric_name in seen:
            raise DatasetError(
                f"class names {seen[metric_name]!r} and {class_name!r} of '{dataset}' share the same metric name "
                f"{metric_name!r}; {ALLOWED}"
            )
        seen[metric_name] = class_name
    return names
