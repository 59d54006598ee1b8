"""Data sources for a sweep: `load_dataset(source)` turns a source string (phantom, image folder,
.npz, .parquet, medmnist:<flag>) into train / val in memory and a lazily read test split, using
the loader registered in DATA_SOURCES under the name the string means."""

from __future__ import annotations

import os
from pathlib import Path

# The loader modules register their data sources in DATA_SOURCES when imported.
from trainables.datasets import image_folder, medmnist_source, npz, parquet, phantom  # noqa: F401
from trainables.datasets.image_set import DatasetError, DatasetSplits, ImageSet, SearchData
from trainables.datasets.load_options import LoadOptions
from trainables.datasets.medmnist_source import MEDMNIST_PREFIX, ROOT_ENVIRONMENT_VARIABLE
from trainables.datasets.phantom import DEFAULT_PHANTOM_IMAGE_SIZE, PHANTOM_CLASS_NAMES, make_phantom
from trainables.datasets.sources import DATA_SOURCES

__all__ = [
    "DATA_SOURCES",
    "FILE_SOURCES",
    "SOURCE_FORMS",
    "DatasetError",
    "DatasetSplits",
    "ImageSet",
    "LoadOptions",
    "SearchData",
    "PHANTOM_CLASS_NAMES",
    "describe_sources",
    "load_dataset",
    "make_phantom",
]

PHANTOM_SOURCE = "phantom"
# A file's suffix -> the data source that reads it.
FILE_SOURCES = {".npz": "npz", ".parquet": "parquet"}

# How each registered data source is written as a source string, and what it is: for --help and errors.
SOURCE_FORMS: dict[str, tuple[str, str]] = {
    "phantom": (
        PHANTOM_SOURCE,
        f"built-in procedural brain-MRI-like slices, 4 ordinal classes (about 50/35/14/1 %), "
        f"{DEFAULT_PHANTOM_IMAGE_SIZE} px unless image_size is given",
    ),
    "medmnist": (
        MEDMNIST_PREFIX + "<flag>",
        f"a MedMNIST 2D dataset such as {MEDMNIST_PREFIX}pneumoniamnist, downloaded once into "
        f"${ROOT_ENVIRONMENT_VARIABLE} (default ~/.medmnist)",
    ),
    "npz": ("path/to/data.npz", "MedMNIST layout: train_images, train_labels, optionally val_*, test_* and class_names"),
    "parquet": (
        "path/to/data.parquet",
        "Hugging Face layout: 'image' (PNG/JPEG bytes or struct {bytes, path}), 'label' (int), optional 'split'",
    ),
    "image_folder": (
        "path/to/folder",
        "one subfolder per class (PNG/JPEG/BMP/TIFF), optionally inside train/, val/ (or validation/) and test/",
    ),
}


def describe_sources() -> str:
    """The accepted source forms, for --help and for errors."""
    return "\n".join(f"  {form:<22} {description}" for form, description in SOURCE_FORMS.values())


def _source_and_location(text: str) -> tuple[str, str]:
    """The name of the data source a source string means, and the location to pass to it."""
    if text == PHANTOM_SOURCE:
        return "phantom", ""
    if text.lower().startswith(MEDMNIST_PREFIX):
        return "medmnist", text[len(MEDMNIST_PREFIX) :]
    path = Path(text).expanduser()
    if path.is_dir():
        return "image_folder", str(path)
    if path.suffix.lower() in FILE_SOURCES:
        return FILE_SOURCES[path.suffix.lower()], str(path)
    if path.exists():
        raise DatasetError(
            f"data source '{text}' is a file but neither {' nor '.join(FILE_SOURCES)}; accepted:\n{describe_sources()}"
        )
    raise DatasetError(f"data source '{text}' does not exist and is not a known name; accepted:\n{describe_sources()}")


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
    options = LoadOptions(
        image_size=image_size,
        channels=channels,
        seed=seed,
        split_fractions=split_fractions,
        ordinal=ordinal,
        phantom_count=phantom_count,
    )
    if not isinstance(source, (str, os.PathLike)) or not str(source).strip():
        raise DatasetError(f"data source must be a non-empty string, got {source!r}; accepted:\n{describe_sources()}")
    name, location = _source_and_location(str(source).strip())
    return DATA_SOURCES.get(name)(location, options)
