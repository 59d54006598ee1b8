"""The options every data source is loaded with (`LoadOptions`), checked once when they are made,
so that the loaders and `assemble_splits` can trust them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from trainables.datasets.image_set import DatasetError

ALLOWED_CHANNELS = (1, 3)


def _is_integer(value: object) -> bool:
    # bool is an int to Python, but `image_size=True` is a mistake, not a size of 1.
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _checked_image_size(image_size: int | None) -> int | None:
    if image_size is not None and (not _is_integer(image_size) or image_size < 1):
        raise DatasetError(
            f"image_size must be a positive integer (pixels per side) or None to keep the source size, "
            f"got {image_size!r}"
        )
    return None if image_size is None else int(image_size)


def _checked_channels(channels: int | None) -> int | None:
    if channels is not None and (isinstance(channels, bool) or channels not in ALLOWED_CHANNELS):
        raise DatasetError(f"channels must be 1 (grayscale), 3 (RGB) or None to keep the source's, got {channels!r}")
    return None if channels is None else int(channels)


def _checked_seed(seed: int) -> int:
    if not _is_integer(seed) or seed < 0:
        raise DatasetError(f"seed must be a non-negative integer, got {seed!r}")
    return int(seed)


def _checked_ordinal(ordinal: bool | None) -> bool | None:
    if ordinal is not None and not isinstance(ordinal, bool):
        raise DatasetError(f"ordinal must be True, False or None (the source's default), got {ordinal!r}")
    return ordinal


def _checked_split_fractions(split_fractions: Sequence[float]) -> tuple[float, float, float]:
    message = (
        f"split_fractions must be three positive numbers (train, val, test) that sum to 1, got {split_fractions!r}"
    )
    try:
        fractions = tuple(float(value) for value in split_fractions)
    except (TypeError, ValueError) as error:
        raise DatasetError(message) from error
    if len(fractions) != 3 or not all(value > 0 for value in fractions) or abs(sum(fractions) - 1) > 1e-6:
        raise DatasetError(message)
    return fractions  # type: ignore[return-value]


@dataclass(frozen=True)
class LoadOptions:
    """How to load any source: resize to image_size x image_size (None: keep the source's square
    size), convert to `channels` (None: the source's), carve the splits a source lacks with `seed`
    and `split_fractions` (train, val, test), `ordinal` (None: the source's default).

    Making one checks the values in this order and raises DatasetError naming the first bad one.
    `phantom_count` is checked by the phantom source, the only one that reads it, so that other
    sources keep ignoring it."""

    image_size: int | None = None
    channels: int | None = None
    seed: int = 0
    split_fractions: tuple[float, float, float] = (0.7, 0.1, 0.2)
    ordinal: bool | None = None
    phantom_count: int = 1200

    def __post_init__(self) -> None:
        # The dataclass is frozen; the checked values are stored normalised (numpy integers as int,
        # any sequence of fractions as a tuple of floats).
        object.__setattr__(self, "image_size", _checked_image_size(self.image_size))
        object.__setattr__(self, "channels", _checked_channels(self.channels))
        object.__setattr__(self, "seed", _checked_seed(self.seed))
        object.__setattr__(self, "ordinal", _checked_ordinal(self.ordinal))
        object.__setattr__(self, "split_fractions", _checked_split_fractions(self.split_fractions))

    def ordinal_or(self, source_default: bool) -> bool:
        """Whether labels are ordered grades: as asked, else as the source says."""
        return source_default if self.ordinal is None else self.ordinal
