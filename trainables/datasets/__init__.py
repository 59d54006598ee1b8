"""Data sources for a sweep: `load_dataset(source)` turns a source string (phantom, image folder,
.npz, .parquet, medmnist:<flag>) into train / val in memory and a lazily read test split."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from trainables.datasets.image_conversion import validate_image_options
from trainables.datasets.image_folder import load_image_folder
from trainables.datasets.image_set import DatasetError, DatasetSplits, ImageSet, SearchData
from trainables.datasets.medmnist_source import MEDMNIST_PREFIX, ROOT_ENVIRONMENT_VARIABLE, load_medmnist
from trainables.datasets.npz import load_npz
from trainables.datasets.parquet import load_parquet
from trainables.datasets.phantom import DEFAULT_PHANTOM_IMAGE_SIZE, PHANTOM_CLASS_NAMES, load_phantom, make_phantom
from trainables.datasets.splits import validate_split_fractions

__all__ = [
    "DatasetError",
    "DatasetSplits",
    "ImageSet",
    "SearchData",
    "PHANTOM_CLASS_NAMES",
    "describe_sources",
    "load_dataset",
    "make_phantom",
]

PHANTOM_SOURCE = "phantom"
_FILE_LOADERS = {".npz": load_npz, ".parquet": load_parquet}


def describe_sources() -> str:
    """The accepted source forms, for --help and for errors."""
    return "\n".join(
        [
            f"  {PHANTOM_SOURCE:<22} built-in procedural brain-MRI-like slices, 4 ordinal classes "
            f"(about 50/35/14/1 %), {DEFAULT_PHANTOM_IMAGE_SIZE} px unless image_size is given",
            f"  {MEDMNIST_PREFIX + '<flag>':<22} a MedMNIST 2D dataset such as {MEDMNIST_PREFIX}pneumoniamnist, "
            f"downloaded once into ${ROOT_ENVIRONMENT_VARIABLE} (default ~/.medmnist)",
            f"  {'path/to/data.npz':<22} MedMNIST layout: train_images, train_labels, optionally val_*, test_* "
            f"and class_names",
            f"  {'path/to/data.parquet':<22} Hugging Face layout: 'image' (PNG/JPEG bytes or struct "
            f"{{bytes, path}}), 'label' (int), optional 'split'",
            f"  {'path/to/folder':<22} one subfolder per class (PNG/JPEG/BMP/TIFF), optionally inside "
            f"train/, val/ (or validation/) and test/",
        ]
    )


def _validate_options(seed: int, ordinal: bool | None, split_fractions: Sequence[float]) -> None:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise DatasetError(f"seed must be a non-negative integer, got {seed!r}")
    if ordinal is not None and not isinstance(ordinal, bool):
        raise DatasetError(f"ordinal must be True, False or None (the source's default), got {ordinal!r}")
    validate_split_fractions(split_fractions)


def load_dataset(
    source: str | os.PathLike[str],
    *,
    image_size: int | None = None,
    channels: int | None = None,
    seed: int = 0,
    split_fractions: tuple[float, float, float] = (0.7, 0.1, 0.2),
    phantom_count: int = 1200,
    ordinal: bool | None = None,
) -> DatasetSplits:
    """Load a source into train / val (in memory, resized to image_size x image_size and converted
    to `channels` once) and a test split read only by `DatasetSplits.load_test()`.

    Splits the source lacks are carved out with a stratified split seeded by `seed`; see
    `trainables.datasets.splits.assemble_splits`. Raises DatasetError naming what is wrong."""
    validate_image_options(image_size, channels)
    _validate_options(seed, ordinal, split_fractions)
    options = dict(
        image_size=image_size, channels=channels, seed=int(seed), split_fractions=split_fractions, ordinal=ordinal
    )
    if not isinstance(source, (str, os.PathLike)) or not str(source).strip():
        raise DatasetError(f"data source must be a non-empty string, got {source!r}; accepted:\n{describe_sources()}")
    text = str(source).strip()
    if text == PHANTOM_SOURCE:
        return load_phantom(count=phantom_count, **options)
    if text.lower().startswith(MEDMNIST_PREFIX):
        return load_medmnist(text[len(MEDMNIST_PREFIX) :], **options)
    path = Path(text).expanduser()
    loader = _FILE_LOADERS.get(path.suffix.lower())
    if loader is not None and not path.is_dir():
        return loader(path, **options)
    if path.is_dir():
        return load_image_folder(path, **options)
    if path.exists():
        raise DatasetError(
            f"data source '{text}' is a file but neither .npz nor .parquet; accepted:\n{describe_sources()}"
        )
    raise DatasetError(f"data source '{text}' does not exist and is not a known name; accepted:\n{describe_sources()}")
