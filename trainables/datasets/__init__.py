"""Data sources for a sweep: `load_dataset(source)` turns a source string (phantom, a folder of images, DICOM
files or NIfTI volumes, a CSV / TSV manifest, .npz, .parquet, medmnist:<flag>) into train / val in memory and a
lazily read test split, using the loader registered in DATA_SOURCES under the name the string means."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

# The loader modules register their data sources in DATA_SOURCES when imported.
from trainables.datasets import image_folder, manifest, medmnist_source, npz, parquet, phantom  # noqa: F401
from trainables.datasets.image_set import DatasetError, DatasetSplits, ImageSet, SearchData
from trainables.datasets.load_options import DATA_FORMATS, LoadOptions, ManifestColumns
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
    "ManifestColumns",
    "DATA_FORMATS",
    "SearchData",
    "PHANTOM_CLASS_NAMES",
    "describe_sources",
    "load_dataset",
    "make_phantom",
]

PHANTOM_SOURCE = "phantom"
# A file's suffix -> the data source that reads it.
FILE_SOURCES = {".npz": "npz", ".parquet": "parquet", ".csv": "manifest", ".tsv": "manifest"}

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
        "one subfolder per class of images (PNG/JPEG/BMP/TIFF), DICOM files (.dcm or the DICM preamble; "
        "--window lung) or NIfTI volumes (--slices axial:middle:16), optionally inside train/, val/ and test/",
    ),
    "manifest": (
        "path/to/labels.csv",
        "CSV / TSV with path,label[,split][,patient_id]; paths relative to --image-root; any format above",
    ),
}


# Medical data as it comes, one line each, for --help.
SOURCE_EXAMPLES = (
    ("--data scans/ --window lung", "class folders of DICOM files (any name with the DICM preamble), lung window"),
    ("--data volumes/ --slices axial:middle:16", "class folders of NIfTI volumes, the 16 central axial slices of each"),
    ("--data labels.csv --image-root images/ --patient-column patient_id", "a manifest; one patient in one split"),
    ("--data chest_xray/ --patient-from-filename '(person\\d+)_'", "patients from Kermany-style file names"),
)


def describe_sources() -> str:
    """The accepted source forms, for --help and for errors."""
    forms = [f"  {form:<22} {description}" for form, description in SOURCE_FORMS.values()]
    examples = [f"  {example}\n      {meaning}" for example, meaning in SOURCE_EXAMPLES]
    return "\n".join([*forms, "  for example:", *examples])


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
    **reading: Any,
) -> DatasetSplits:
    """Load a source into train / val (in memory, resized to image_size x image_size and converted
    to `channels` once) and a test split read only by `DatasetSplits.load_test()`.

    Splits the source lacks are carved out with a stratified split seeded by `seed`, patient by patient where
    patients are known; see `trainables.datasets.splits.assemble_splits`. `reading` holds the other LoadOptions
    (data_format, window, dicom_frame, slices, skip_unreadable, patient_from_filename, manifest). Raises
    DatasetError naming what is wrong."""
    options = LoadOptions(
        image_size=image_size,
        channels=channels,
        seed=seed,
        split_fractions=split_fractions,
        ordinal=ordinal,
        phantom_count=phantom_count,
        **reading,
    )
    if not isinstance(source, (str, os.PathLike)) or not str(source).strip():
        raise DatasetError(f"data source must be a non-empty string, got {source!r}; accepted:\n{describe_sources()}")
    name, location = _source_and_location(str(source).strip())
    _check_reading_applies(name, options)
    return DATA_SOURCES.get(name)(location, options)


# Sources that read files one by one, and so take the file-reading and patient options.
_FILE_LISTING_SOURCES = ("image_folder", "manifest")


def _check_reading_applies(name: str, options: LoadOptions) -> None:
    """An option the source would ignore is a mistake to say, not to pass over: a patient pattern that silently
    does nothing would leave patients on both sides of the split."""
    defaults = LoadOptions()
    given = [
        option
        for option in ("data_format", "window", "dicom_frame", "slices", "skip_unreadable", "patient_from_filename")
        if getattr(options, option) != getattr(defaults, option)
    ]
    if name not in _FILE_LISTING_SOURCES and given:
        raise DatasetError(f"{', '.join(given)} applies to folders and manifests (files read one by one), not to a {name} source")
    if name != "manifest" and options.manifest != defaults.manifest:
        raise DatasetError(
            f"image_root, path_column, label_column, split_column, patient_column and class_names apply to a CSV / TSV "
            f"manifest, not to a {name} source"
        )
