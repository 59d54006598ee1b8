"""Loading `.npz` files in the MedMNIST layout (train_images, train_labels, val_..., test_...);
the test arrays are read only when `DatasetSplits.load_test` is called."""

from __future__ import annotations

import functools
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from trainables.datasets.image_conversion import convert_image_array
from trainables.datasets.image_set import DatasetError, DatasetSplits, ImageSet
from trainables.datasets.load_options import LoadOptions
from trainables.datasets.sources import DATA_SOURCES
from trainables.datasets.splits import assemble_splits

CLASS_NAMES_KEY = "class_names"
_LAYOUT_HELP = (
    "expected the MedMNIST layout: train_images and train_labels, optionally val_images/val_labels "
    "and test_images/test_labels, and optionally class_names"
)


def _open_npz(path: Path) -> np.lib.npyio.NpzFile:
    if not path.is_file():
        raise DatasetError(f"npz file '{path}' does not exist")
    try:
        # allow_pickle=False: a data file must never run code, and object arrays are not images.
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile) as error:
        raise DatasetError(f"cannot read npz file '{path}': {error}") from error


def _read_array(npz: np.lib.npyio.NpzFile, key: str, path: Path) -> np.ndarray:
    try:
        return npz[key]
    except (OSError, ValueError, zipfile.BadZipFile) as error:
        raise DatasetError(f"cannot read array '{key}' from '{path}': {error}") from error


def _channels_first(images: np.ndarray, key: str, path: Path) -> np.ndarray:
    if images.dtype != np.uint8:
        raise DatasetError(f"'{key}' in '{path}' has dtype {images.dtype}; images must be uint8 (0..255)")
    if images.ndim == 3:
        return images[:, np.newaxis]
    if images.ndim == 4 and images.shape[3] in (1, 3):
        return images.transpose(0, 3, 1, 2)
    raise DatasetError(
        f"'{key}' in '{path}' has shape {images.shape}; allowed are N x H x W (grayscale) "
        f"and N x H x W x 3 (RGB)"
    )


def _flat_labels(labels: np.ndarray, key: str, path: Path, image_count: int) -> np.ndarray:
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1:
        raise DatasetError(
            f"'{key}' in '{path}' has shape {labels.shape}; allowed are N or N x 1 "
            f"(one class per image; multi-label data is not supported)"
        )
    if not np.issubdtype(labels.dtype, np.integer):
        raise DatasetError(f"'{key}' in '{path}' has dtype {labels.dtype}; labels must be integers")
    if len(labels) != image_count:
        raise DatasetError(
            f"'{key}' in '{path}' has {len(labels)} labels but the images of that split number {image_count}"
        )
    if len(labels) and labels.min() < 0:
        raise DatasetError(f"'{key}' in '{path}' has label {int(labels.min())}; labels must be 0..K-1")
    return labels.astype(np.int64)


def _read_split(
    npz: np.lib.npyio.NpzFile, split: str, path: Path, image_size: int | None, channels: int | None
) -> ImageSet:
    images_key, labels_key = f"{split}_images", f"{split}_labels"
    images = _channels_first(_read_array(npz, images_key, path), images_key, path)
    labels = _flat_labels(_read_array(npz, labels_key, path), labels_key, path, len(images))
    images = convert_image_array(images, image_size, channels, f"{path}:{images_key}")
    ids = np.array([f"{split}/{index:06d}" for index in range(len(labels))])
    return ImageSet(images=images, labels=labels, ids=ids)


def _stored_length(npz: np.lib.npyio.NpzFile, key: str, path: Path) -> int:
    """The first dimension of an array in the npz, read from its .npy header without reading the array."""
    try:
        with npz.zip.open(f"{key}.npy") as member:
            version = np.lib.format.read_magic(member)
            read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, _, _ = read_header(member)
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as error:
        raise DatasetError(f"cannot read array '{key}' from '{path}': {error}") from error
    return int(shape[0]) if shape else 0


def _check_test_labels(npz: np.lib.npyio.NpzFile, path: Path, class_names: Sequence[str]) -> None:
    """The test labels (never the test images) are checked when the file is loaded, so a wrong test split fails
    before the sweep rather than at its final evaluation."""
    labels = _flat_labels(_read_array(npz, "test_labels", path), "test_labels", path, _stored_length(npz, "test_images", path))
    if len(labels) and labels.max() >= len(class_names):
        raise DatasetError(
            f"'test_labels' in '{path}' has label {int(labels.max())}; {len(class_names)} classes allow labels "
            f"0..{len(class_names) - 1}"
        )


def _load_test_split(path: Path, image_size: int | None, channels: int) -> ImageSet:
    with _open_npz(path) as npz:
        return _read_split(npz, "test", path, image_size, channels)


def _check_layout(keys: list[str], path: Path) -> tuple[bool, bool]:
    """Whether the file has its own val and test splits; raises if a key of a split is missing."""
    missing = [key for key in ("train_images", "train_labels") if key not in keys]
    for split in ("val", "test"):
        pair = (f"{split}_images", f"{split}_labels")
        if any(key in keys for key in pair):
            missing += [key for key in pair if key not in keys]
    if missing:
        raise DatasetError(f"'{path}' is missing keys {missing}; it has keys {sorted(keys)}; {_LAYOUT_HELP}")
    return "val_images" in keys, "test_images" in keys


def _class_names(npz: np.lib.npyio.NpzFile, path: Path, labels: Sequence[np.ndarray]) -> tuple[str, ...]:
    if CLASS_NAMES_KEY in npz.files:
        names = _read_array(npz, CLASS_NAMES_KEY, path)
        if names.ndim != 1 or names.dtype.kind not in "US":
            raise DatasetError(
                f"'{CLASS_NAMES_KEY}' in '{path}' must be a 1-d string array, got dtype {names.dtype} "
                f"and shape {names.shape}"
            )
        return tuple(str(name) for name in names)
    class_count = max((int(split_labels.max()) + 1 for split_labels in labels if len(split_labels)), default=0)
    return tuple(str(index) for index in range(class_count))


@DATA_SOURCES.register("npz")
def load_npz(location: str, options: LoadOptions) -> DatasetSplits:
    """The npz file at `location`, named after the file."""
    path = Path(location)
    return load_npz_file(path, options, name=path.stem)


def load_npz_file(
    path: Path,
    options: LoadOptions,
    *,
    name: str,
    class_names: Sequence[str] | None = None,
    ordinal_by_default: bool = False,
) -> DatasetSplits:
    """Train and val from a MedMNIST-layout npz (val carved out of train if the file has none;
    test carved out of train if it has no test arrays). Class names: `class_names`, else the
    file's `class_names` array, else "0".."K-1"."""
    with _open_npz(path) as npz:
        has_val, has_test = _check_layout(npz.files, path)
        train = _read_split(npz, "train", path, options.image_size, options.channels)
        # The validation images must match the training images' channels even if stored otherwise.
        val = _read_split(npz, "val", path, options.image_size, train.images.shape[1]) if has_val else None
        if class_names is None:
            class_names = _class_names(npz, path, [train.labels] + ([val.labels] if val is not None else []))
        if has_test:
            _check_test_labels(npz, path, class_names)
    test_loader = (
        functools.partial(_load_test_split, path, options.image_size, int(train.images.shape[1])) if has_test else None
    )
    return assemble_splits(
        options,
        name=name,
        class_names=class_names,
        train=train,
        val=val,
        test_loader=test_loader,
        ordinal_by_default=ordinal_by_default,
    )
