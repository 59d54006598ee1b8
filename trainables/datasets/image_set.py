"""In-memory image sets and the split containers a sweep passes around: what a trial may see
(`SearchData`) and what only the final evaluation may open (`DatasetSplits.load_test`)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from trainables.datasets.errors import DatasetError
from trainables.datasets.patients import check_patients_apart, partition_signature

__all__ = ["DatasetError", "DatasetSplits", "ImageSet", "SearchData"]


def _read_only(array: np.ndarray) -> np.ndarray:
    # Arrays that come back from Ray's object store are read-only; making ours read-only too
    # means an in-place write fails in a plain unit test, not only inside a sweep.
    view = array.view()
    view.flags.writeable = False
    return view


@dataclass(frozen=True, eq=False)
class ImageSet:
    """Images (uint8 [N, C, H, W]), labels (int64 [N]), stable ids (str [N]) of one split and, where the source knows
    them, patient keys (str [N], salted hashes: `trainables.datasets.patients`); None means one patient per image."""

    images: np.ndarray
    labels: np.ndarray
    ids: np.ndarray
    groups: np.ndarray | None = None

    def __post_init__(self) -> None:
        images = np.asarray(self.images)
        labels = np.asarray(self.labels)
        ids = np.asarray(self.ids)
        if images.dtype != np.uint8 or images.ndim != 4:
            raise DatasetError(
                f"images must be a uint8 array shaped [N, C, H, W], got dtype {images.dtype} and shape {images.shape}"
            )
        if images.shape[1] not in (1, 3):
            raise DatasetError(f"images must have 1 (grayscale) or 3 (RGB) channels in axis 1, got shape {images.shape}")
        if labels.ndim != 1 or len(labels) != len(images):
            raise DatasetError(
                f"labels must be shaped [N] with N = {len(images)} (the number of images), got shape {labels.shape}"
            )
        if len(labels) and not np.issubdtype(labels.dtype, np.integer):
            raise DatasetError(f"labels must be integers, got dtype {labels.dtype}")
        if len(labels) and labels.min() < 0:
            raise DatasetError(f"labels must be >= 0, got {int(labels.min())}")
        if ids.shape != (len(images),):
            raise DatasetError(f"ids must be shaped [N] with N = {len(images)} (the number of images), got shape {ids.shape}")
        if ids.dtype.kind != "U":
            ids = ids.astype(str)
        if self.groups is not None:
            groups = np.asarray(self.groups)
            if groups.shape != (len(images),):
                raise DatasetError(
                    f"patient groups must be shaped [N] with N = {len(images)} (the number of images), got shape {groups.shape}"
                )
            object.__setattr__(self, "groups", _read_only(groups.astype(str, copy=False)))
        object.__setattr__(self, "images", _read_only(images))
        object.__setattr__(self, "labels", _read_only(labels.astype(np.int64, copy=False)))
        object.__setattr__(self, "ids", _read_only(ids))

    def __len__(self) -> int:
        return len(self.labels)

    def __repr__(self) -> str:
        # The default repr would print every pixel.
        channels, height, width = self.images.shape[1:]
        return f"ImageSet({len(self)} images, {channels}x{height}x{width})"

    def subset(self, indices: np.ndarray) -> ImageSet:
        """The images at `indices` (integer positions, in the given order; repeats allowed), as new arrays."""
        indices = np.asarray(indices)
        if indices.size == 0:
            indices = indices.astype(np.int64)
        if indices.ndim != 1 or not np.issubdtype(indices.dtype, np.integer):
            raise DatasetError(f"subset indices must be a 1-d integer array, got dtype {indices.dtype} and shape {indices.shape}")
        if indices.size and (indices.min() < 0 or indices.max() >= len(self)):
            raise DatasetError(
                f"subset indices must lie in [0, {len(self) - 1}], got values from {int(indices.min())} to {int(indices.max())}"
            )
        groups = None if self.groups is None else self.groups[indices]
        return ImageSet(images=self.images[indices], labels=self.labels[indices], ids=self.ids[indices], groups=groups)

    @property
    def patients(self) -> np.ndarray:
        """Each image's patient: its key where patients are known, else its own id (one patient per image)."""
        return self.ids if self.groups is None else self.groups

    def patient_count(self) -> int:
        return len(np.unique(self.patients))

    def patient_counts(self, num_classes: int) -> np.ndarray:
        """Patients with at least one image of each class (int64 [num_classes]); one patient may count in two."""
        pairs = set(zip(self.patients.tolist(), self.labels.tolist()))
        return np.bincount([label for _, label in pairs], minlength=num_classes).astype(np.int64)

    def class_counts(self, num_classes: int) -> np.ndarray:
        """Number of images of each class 0..num_classes-1 (int64 [num_classes])."""
        if len(self) and self.labels.max() >= num_classes:
            raise DatasetError(
                f"label {int(self.labels.max())} is out of range for {num_classes} classes (allowed 0..{num_classes - 1})"
            )
        return np.bincount(self.labels, minlength=num_classes).astype(np.int64)


@dataclass(frozen=True, eq=False)
class _TrainAndValidation:
    """A named dataset's classes and its train and validation images: what `SearchData` and
    `DatasetSplits` both hold. Neither is the other, so a DatasetSplits never passes for SearchData."""

    name: str
    class_names: tuple[str, ...]
    ordinal: bool
    train: ImageSet
    val: ImageSet

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def channels(self) -> int:
        return int(self.train.images.shape[1])

    @property
    def image_size(self) -> int:
        return int(self.train.images.shape[2])

    @property
    def minority_class(self) -> int:
        """The class with the fewest training images (the first of them on a tie): what `val_f1_minority` scores."""
        return int(np.argmin(self.train.class_counts(self.num_classes)))


@dataclass(frozen=True, eq=False)
class SearchData(_TrainAndValidation):
    """What a trial may see: train and validation only. This is what goes into Ray's object
    store; it holds no test images and no reference to them."""

    def class_index(self, key: str) -> int:
        """A class named in a configuration (`real_fraction.<class>`, `synthetic.classes`): its name or index."""
        if key in self.class_names:
            return self.class_names.index(key)
        if str(key).isdigit() and int(key) < self.num_classes:
            return int(key)
        raise DatasetError(f"{key!r} is not a class of this dataset; classes: {', '.join(self.class_names)} (or their indices)")

    @cached_property
    def fingerprint(self) -> str:
        """16 hex digits of sha256 over the training images as preprocessed, their labels, ids, the class names and
        the patient grouping (salt-free; none for sources without patients, so their pools keep their names): what
        synthetic images are made from, and which real subsets a generator's fit subset can be."""
        digest = hashlib.sha256()
        digest.update(json.dumps([list(self.class_names), list(self.train.images.shape)]).encode("utf-8"))
        for array in (self.train.images, self.train.labels, self.train.ids):
            digest.update(np.ascontiguousarray(array).tobytes())
        digest.update(partition_signature(self.train.groups))
        return digest.hexdigest()[:16]


def _describe_counts(split_name: str, image_set: ImageSet, class_names: tuple[str, ...]) -> str:
    counts = image_set.class_counts(len(class_names))
    if image_set.groups is None:
        per_class = ", ".join(f"{name} {count}" for name, count in zip(class_names, counts))
        return f"  {split_name:<5} {len(image_set):>6}: {per_class}"
    patients = image_set.patient_counts(len(class_names))
    per_class = ", ".join(
        f"{name} {count} ({patient_count} patients)" for name, count, patient_count in zip(class_names, counts, patients)
    )
    return f"  {split_name:<5} {len(image_set):>6} images of {image_set.patient_count()} patients: {per_class}"


@dataclass(frozen=True, eq=False)
class DatasetSplits(_TrainAndValidation):
    """Train and validation in memory, and a loader for the test split that the search never calls."""

    test_loader: Callable[[], ImageSet] = field(repr=False)
    # Files --skip-unreadable left out, each as "<id>: <why>" (never a patient attribute).
    skipped_files: tuple[str, ...] = ()
    _loaded_test: list[ImageSet] = field(default_factory=list, init=False, repr=False)

    def load_test(self) -> ImageSet:
        """Read the test split (once; later calls return the same set). Only for final evaluation."""
        if not self._loaded_test:
            test = self.test_loader()
            expected_shape = self.train.images.shape[1:]
            if test.images.shape[1:] != expected_shape:
                raise DatasetError(
                    f"test images of '{self.name}' are shaped {test.images.shape[1:]} (C, H, W), "
                    f"but train images are {expected_shape}"
                )
            test.class_counts(self.num_classes)  # raises on labels out of range
            if test.groups is not None:
                check_patients_apart(self.name, {"train": self.train.patients, "val": self.val.patients, "test": test.patients})
            self._loaded_test.append(test)
        return self._loaded_test[0]

    def for_search(self) -> SearchData:
        return SearchData(name=self.name, class_names=self.class_names, ordinal=self.ordinal, train=self.train, val=self.val)

    def describe(self, include_test: bool = False) -> str:
        """Counts per class of each split, image size and channels. The test split is counted
        only when `include_test` is set or it was already loaded, so describing never reads it."""
        lines = [
            f"{self.name}: {self.num_classes} classes, {self.image_size}x{self.image_size} px, "
            f"{self.channels} channel{'s' if self.channels > 1 else ''}, ordinal={self.ordinal}",
            _describe_counts("train", self.train, self.class_names),
            _describe_counts("val", self.val, self.class_names),
        ]
        if include_test or self._loaded_test:
            lines.append(_describe_counts("test", self.load_test(), self.class_names))
        else:
            lines.append("  test  held back: read only by the final evaluation")
        if self.train.groups is not None:
            lines.append("  patients: each patient's images lie in one split, and real subsets keep whole patients")
        if self.skipped_files:
            lines.append(
                f"  skipped {len(self.skipped_files)} unreadable file{'s' if len(self.skipped_files) > 1 else ''} "
                f"(--skip-unreadable), e.g. {self.skipped_files[0]}"
            )
        return "\n".join(lines)
