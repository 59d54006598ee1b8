"""The options every data source is loaded with (`LoadOptions`), checked once when they are made,
so that the loaders and `assemble_splits` can trust them: sizes and splits, how files are read (DICOM window and
frame, NIfTI slices, unreadable files), where patients come from and a manifest's columns."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from trainables.datasets.dicom_settings import DicomSettings, parse_window
from trainables.datasets.errors import DatasetError
from trainables.datasets.filename_patients import compile_patient_pattern

if TYPE_CHECKING:
    from trainables.datasets.nifti import SliceSelection

ALLOWED_CHANNELS = (1, 3)
DataFormat = Literal["auto", "images", "dicom", "nifti"]
DATA_FORMATS: tuple[str, ...] = ("auto", "images", "dicom", "nifti")


def _is_integer(value: object) -> bool:
    # bool is an int to Python, but `image_size=True` is a mistake, not a size of 1.
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _checked_image_size(image_size: int | None) -> int | None:
    if image_size is not None and (not _is_integer(image_size) or image_size < 1):
        raise DatasetError(
            f"image_size must be a positive integer (pixels per side) or None to keep the source size, got {image_size!r}"
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
    message = f"split_fractions must be three positive numbers (train, val, test) that sum to 1, got {split_fractions!r}"
    try:
        fractions = tuple(float(value) for value in split_fractions)
    except (TypeError, ValueError) as error:
        raise DatasetError(message) from error
    if len(fractions) != 3 or not all(value > 0 for value in fractions) or abs(sum(fractions) - 1) > 1e-6:
        raise DatasetError(message)
    return fractions  # type: ignore[return-value]


def _checked_column(name: str, column: str | None, optional: bool) -> str | None:
    if column is None and optional:
        return None
    if not isinstance(column, str) or not column.strip():
        raise DatasetError(f"{name} must name a column of the manifest, got {column!r}")
    return column.strip()


def _checked_class_names(class_names: str | Sequence[str] | None) -> tuple[str, ...] | None:
    if class_names is None:
        return None
    names = class_names.split(",") if isinstance(class_names, str) else list(class_names)
    names = [str(name).strip() for name in names]
    if len(names) < 2 or not all(names) or len(set(names)) != len(names):
        raise DatasetError(
            f"class_names must be two or more distinct names, comma-separated, in the order of the integer labels "
            f"0, 1, ... (e.g. 'normal,pneumonia'), got {class_names!r}"
        )
    return tuple(names)


def _dicom_settings(window: str | None, frame: int | None) -> DicomSettings:
    return DicomSettings(window=None if window in (None, "", "file") else parse_window(window), frame=frame)


def _slice_selection(slices: str | None) -> Any:
    from trainables.datasets.nifti import DEFAULT_SLICES, parse_slices

    return DEFAULT_SLICES if slices is None else parse_slices(slices)


@dataclass(frozen=True)
class ManifestColumns:
    """Which columns of a CSV / TSV manifest hold what; `image_root` is where its relative paths start (None: the
    manifest's folder). `patient` None uses a `patient_id` column where there is one. `class_names` maps integer
    labels 0, 1, ... to names (labels written as names are kept as they are)."""

    image_root: str | None = None
    path: str = "path"
    label: str = "label"
    split: str = "split"
    patient: str | None = None
    class_names: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", _checked_column("path_column", self.path, optional=False))
        object.__setattr__(self, "label", _checked_column("label_column", self.label, optional=False))
        object.__setattr__(self, "split", _checked_column("split_column", self.split, optional=False))
        object.__setattr__(self, "patient", _checked_column("patient_column", self.patient, optional=True))
        object.__setattr__(self, "class_names", _checked_class_names(self.class_names))


@dataclass(frozen=True)
class LoadOptions:
    """How to load any source: resize to image_size x image_size (None: keep the source's square
    size), convert to `channels` (None: the source's), carve the splits a source lacks with `seed`
    and `split_fractions` (train, val, test), `ordinal` (None: the source's default).

    Making one checks the values in this order and raises DatasetError naming the first bad one; `window`
    ('lung', 'center,width', or None / 'file' for the file's own), `slices` ('axial:middle:16') and
    `patient_from_filename` (a regular expression with a group) are parsed once, into `dicom`,
    `slice_selection` and `patient_pattern`.
    `phantom_count` is checked by the phantom source, the only one that reads it, so that other
    sources keep ignoring it."""

    image_size: int | None = None
    channels: int | None = None
    seed: int = 0
    split_fractions: tuple[float, float, float] = (0.7, 0.1, 0.2)
    ordinal: bool | None = None
    phantom_count: int = 1200
    data_format: DataFormat = "auto"
    window: str | None = None
    dicom_frame: int | None = None
    slices: str | None = None
    skip_unreadable: bool = False
    patient_from_filename: str | None = None
    manifest: ManifestColumns = field(default_factory=ManifestColumns)
    # Parsed from the text fields above when the options are made.
    dicom: DicomSettings = field(init=False, repr=False)
    slice_selection: SliceSelection = field(init=False, repr=False)
    patient_pattern: re.Pattern[str] | None = field(init=False, repr=False)

    def __post_init__(self) -> None:
        # The dataclass is frozen; the checked values are stored normalised (numpy integers as int,
        # any sequence of fractions as a tuple of floats).
        object.__setattr__(self, "image_size", _checked_image_size(self.image_size))
        object.__setattr__(self, "channels", _checked_channels(self.channels))
        object.__setattr__(self, "seed", _checked_seed(self.seed))
        object.__setattr__(self, "ordinal", _checked_ordinal(self.ordinal))
        object.__setattr__(self, "split_fractions", _checked_split_fractions(self.split_fractions))
        if self.data_format not in DATA_FORMATS:
            raise DatasetError(f"data_format must be one of {', '.join(DATA_FORMATS)}, got {self.data_format!r}")
        if self.dicom_frame is not None and (not _is_integer(self.dicom_frame) or self.dicom_frame < 0):
            raise DatasetError(f"dicom_frame must be a frame number >= 0 (0 is the first) or None, got {self.dicom_frame!r}")
        object.__setattr__(self, "dicom", _dicom_settings(self.window, self.dicom_frame))
        object.__setattr__(self, "slice_selection", _slice_selection(self.slices))
        if not isinstance(self.skip_unreadable, bool):
            raise DatasetError(f"skip_unreadable must be True or False, got {self.skip_unreadable!r}")
        pattern = None if self.patient_from_filename is None else compile_patient_pattern(self.patient_from_filename)
        object.__setattr__(self, "patient_pattern", pattern)

    def ordinal_or(self, source_default: bool) -> bool:
        """Whether labels are ordered grades: as asked, else as the source says."""
        return source_default if self.ordinal is None else self.ordinal
