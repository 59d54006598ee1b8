"""Reading the files a folder or a manifest lists into images: photo formats through Pillow, a DICOM file through
pydicom (one image), a NIfTI volume through nibabel (its chosen slices), each image with its id and its patient."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from trainables.datasets.dicom_settings import DICOM_SUFFIXES, is_dicom_file
from trainables.datasets.filename_patients import patients_from_file_names
from trainables.datasets.image_conversion import IMAGE_SUFFIXES, check_one_size, convert_pixels, decode_image, source_channels
from trainables.datasets.image_set import DatasetError, DatasetSplits, ImageSet
from trainables.datasets.load_options import LoadOptions
from trainables.datasets.patients import PatientKeys
from trainables.datasets.splits import assemble_splits

# pydicom and nibabel are imported where a file is read (`_readers`): trials import this package for SearchData
# and never read a file; each costs about 0.25 s of import (measured on 2 cores).

FileKind = Literal["image", "dicom", "nifti"]

# What each --data-format reads; "auto" reads them all, DICOM also without a suffix (PACS exports name files
# IM000001 or by their UID) when the file has DICOM's preamble.
FORMAT_DESCRIPTIONS = {
    "images": f"photo formats ({', '.join(IMAGE_SUFFIXES)})",
    "dicom": f"DICOM files ({', '.join(DICOM_SUFFIXES)}, or any name with the DICM preamble)",
    "nifti": "NIfTI volumes (.nii, .nii.gz), sliced by --slices",
}


def _is_nifti(path: Path) -> bool:
    return path.name.lower().endswith((".nii", ".nii.gz"))


def file_kind(path: Path, data_format: str) -> FileKind | None:
    """How `path` is read under `data_format`, or None when that format does not read it (left out of a folder)."""
    suffix = path.suffix.lower()
    if data_format == "images":
        return "image" if suffix in IMAGE_SUFFIXES else None
    if data_format == "nifti":
        return "nifti" if _is_nifti(path) else None
    if data_format == "dicom":
        return "dicom"
    if _is_nifti(path):
        return "nifti"
    if suffix in IMAGE_SUFFIXES:
        return "image"
    if is_dicom_file(path):
        return "dicom"
    return None


@dataclass(frozen=True)
class ListedFile:
    """A file to read, its class and, from a manifest's patient column, its patient (raw: hashed when read)."""

    path: Path
    label: int
    patient: str | None = None


def _file_id(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix() if path.is_relative_to(root) else path.as_posix()


def _dicom_channels(path: Path, name: str) -> int:
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        header = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["SamplesPerPixel", "PhotometricInterpretation"])
    except (InvalidDicomError, OSError, ValueError, EOFError) as error:
        raise DatasetError(f"cannot read DICOM file '{name}': {type(error).__name__}") from error
    colour = int(header.get("SamplesPerPixel", 1) or 1) == 3 or header.get("PhotometricInterpretation") == "PALETTE COLOR"
    return 3 if colour else 1


def _channels_of(path: Path, kind: FileKind, name: str) -> int:
    if kind == "image":
        return source_channels(path, name)
    return _dicom_channels(path, name) if kind == "dicom" else 1


def _patient_of_file(listed: ListedFile, kind: FileKind, file_id: str, from_name: str | None) -> str | None:
    """The raw patient of one file: the manifest's column, else the file-name pattern's match, else the DICOM
    PatientID, else (a NIfTI volume) the volume itself; None when nothing says."""
    if listed.patient is not None:
        return listed.patient
    if from_name is not None:
        return from_name
    if kind == "dicom":
        from trainables.datasets.dicom import dicom_patient_identifier

        try:
            return dicom_patient_identifier(listed.path)
        except Exception:  # noqa: BLE001 - an unreadable file fails (or is skipped) when its pixels are read
            return None
    if kind == "nifti":
        return "volume:" + file_id
    return None


@dataclass
class _Reading:
    root: Path
    options: LoadOptions
    channels: int
    keys: PatientKeys

    def images_of(self, listed: ListedFile, kind: FileKind, file_id: str) -> list[tuple[str, np.ndarray]]:
        size = self.options.image_size
        if kind == "image":
            return [(file_id, decode_image(listed.path, file_id, self.channels, size))]
        if kind == "dicom":
            from trainables.datasets.dicom import read_dicom

            return [(file_id, convert_pixels(read_dicom(listed.path, file_id, self.options.dicom), self.channels, size))]
        from trainables.datasets.nifti import read_nifti_slices

        volume = read_nifti_slices(listed.path, file_id, self.options.slice_selection)
        axis = self.options.slice_selection.axis
        return [
            (f"{file_id}#{axis}={index}", convert_pixels(pixels, self.channels, size))
            for index, pixels in zip(volume.slice_indices, volume.pixels)
        ]


def _kinds(files: Sequence[ListedFile], root: Path, data_format: str) -> list[FileKind]:
    kinds = []
    for listed in files:
        kind = file_kind(listed.path, data_format)
        if kind is None:
            raise DatasetError(
                f"'{_file_id(listed.path, root)}' is not a file that data_format {data_format!r} reads; it reads "
                f"{FORMAT_DESCRIPTIONS.get(data_format, ', '.join(FORMAT_DESCRIPTIONS.values()))}"
            )
        kinds.append(kind)
    return kinds


def listed_patients(files: Sequence[ListedFile], root: Path, options: LoadOptions, keys: PatientKeys) -> np.ndarray | None:
    """Each file's patient key (its own id's where nothing says), without reading pixels; None when no file has
    a patient, so the images stay one patient each."""
    ids = [_file_id(listed.path, root) for listed in files]
    from_names = patients_from_file_names(options.patient_pattern, ids) if options.patient_pattern else [None] * len(ids)
    kinds = _kinds(files, root, options.data_format)
    raw = [_patient_of_file(listed, kind, file_id, name) for listed, kind, file_id, name in zip(files, kinds, ids, from_names)]
    if all(patient is None for patient in raw):
        return None
    return keys.keys(patient if patient is not None else "file:" + file_id for patient, file_id in zip(raw, ids))


def channels_of_files(files: Sequence[ListedFile], root: Path, options: LoadOptions) -> int:
    """1 if every file is grayscale, else 3, from headers (pixels are not decoded); unreadable files count as
    grayscale when they are to be skipped."""
    found = []
    for listed, kind in zip(files, _kinds(files, root, options.data_format)):
        try:
            found.append(_channels_of(listed.path, kind, _file_id(listed.path, root)))
        except DatasetError:
            if not options.skip_unreadable:
                raise
    return max(found, default=1)


def read_listed_files(
    files: Sequence[ListedFile],
    root: Path,
    options: LoadOptions,
    channels: int | None,
    keys: PatientKeys,
    skipped: list[str],
) -> tuple[ImageSet, int]:
    """The images of `files` (a NIfTI volume gives several) as one ImageSet with ids relative to `root` and patient
    keys, and the channel count (None: 1 unless a file is colour). With `options.skip_unreadable` a file that
    cannot be read is left out and named in `skipped`; otherwise it is an error naming it."""
    kinds = _kinds(files, root, options.data_format)
    ids = [_file_id(listed.path, root) for listed in files]
    patients = listed_patients(files, root, options, keys)
    if channels is None:
        channels = channels_of_files(files, root, options)
    reading = _Reading(root, options, channels, keys)
    images: list[np.ndarray] = []
    image_ids: list[str] = []
    labels: list[int] = []
    groups: list[str] = []
    for position in range(len(files)):
        try:
            decoded = reading.images_of(files[position], kinds[position], ids[position])
        except DatasetError as error:
            if not options.skip_unreadable:
                raise
            skipped.append(f"{ids[position]}: {error}")
            continue
        for image_id, pixels in decoded:
            if options.image_size is None:
                check_one_size(pixels, image_id, images[0] if images else pixels, image_ids[0] if image_ids else image_id)
            images.append(pixels)
            image_ids.append(image_id)
            labels.append(files[position].label)
            if patients is not None:
                groups.append(str(patients[position]))
    size = options.image_size or 1
    stacked = np.stack(images) if images else np.zeros((0, channels, size, size), dtype=np.uint8)
    image_set = ImageSet(
        images=stacked,
        labels=np.array(labels, dtype=np.int64),
        ids=np.array(image_ids, dtype=str),
        groups=np.array(groups, dtype=str) if patients is not None else None,
    )
    return image_set, channels


def splits_of_listed_files(
    options: LoadOptions,
    *,
    name: str,
    class_names: tuple[str, ...],
    root: Path,
    train: Sequence[ListedFile],
    val: Sequence[ListedFile],
    test: Sequence[ListedFile],
) -> DatasetSplits:
    """Train and val read now (one channel count for both, one patient salt for all three); the test files' patients
    are read now too, without pixels, so a patient on both sides fails before the sweep, and their pixels only by
    `load_test`. Splits not given are carved by `assemble_splits`."""
    keys = PatientKeys()
    skipped: list[str] = []
    channels = options.channels or channels_of_files([*train, *val], root, options)
    train_set = read_listed_files(train, root, options, channels, keys, skipped)[0]
    val_set = read_listed_files(val, root, options, channels, keys, skipped)[0] if val else None
    test_loader = test_patients = None
    if test:
        test_patients = listed_patients(test, root, options, keys)
        test_loader = functools.partial(_read_test_files, list(test), root, options, channels, keys)
    return assemble_splits(
        options,
        name=name,
        class_names=class_names,
        train=train_set,
        val=val_set,
        test_loader=test_loader,
        test_patients=test_patients,
        skipped_files=tuple(skipped),
    )


def _read_test_files(files: list[ListedFile], root: Path, options: LoadOptions, channels: int, keys: PatientKeys) -> ImageSet:
    # Files skipped here were listed, not read, when the summary was written; the test split's size says it.
    return read_listed_files(files, root, options, channels, keys, [])[0]
