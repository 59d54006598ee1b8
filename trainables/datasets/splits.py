"""Seeded stratified splitting into train / validation / test, and assembly of a `DatasetSplits`
from whichever splits a source brings with it (carving out only the ones it lacks)."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence

import numpy as np

from trainables.datasets.class_names import check_class_names
from trainables.datasets.image_set import DatasetError, DatasetSplits, ImageSet
from trainables.datasets.load_options import LoadOptions
from trainables.datasets.patients import check_patients_apart, patient_units

# Mixed into the generator seed so that split permutations are unrelated to the real-subset
# permutations, which are seeded by (seed, class) over the train indices.
_SPLIT_STREAM = 0x5B117


def _part_counts(class_size: int, shares: Sequence[float]) -> list[int]:
    """Images of one class per part: largest-remainder rounding of share * class_size, then every
    part gets at least one image when the class has enough (train first, then val, then test)."""
    exact = [round(share * class_size, 9) for share in shares]
    counts = [math.floor(value) for value in exact]
    by_remainder = sorted(range(len(shares)), key=lambda part: (round(counts[part] - exact[part], 9), part))
    for part in by_remainder[: class_size - sum(counts)]:
        counts[part] += 1
    for part in range(len(shares)):
        if counts[part] > 0:
            continue
        donor = max(range(len(shares)), key=lambda candidate: counts[candidate])
        # Train must hold every class, even if that empties another part of a one-image class.
        if counts[donor] > 1 or (part == 0 and counts[donor] == 1):
            counts[donor] -= 1
            counts[part] += 1
    return counts


def stratified_partition(
    labels: np.ndarray, shares: Sequence[float], seed: int, groups: np.ndarray | None = None
) -> list[np.ndarray]:
    """Split positions 0..N-1 into len(shares) parts with each class's patients divided by `shares`.

    A patient (`groups`: one key per image; None: every image its own patient) goes whole into one part, drawn with
    the patients of its class (its most common label): stratified as well as the patients allow. Deterministic
    for (labels, shares, seed, grouping); each part's indices are sorted. A class with too few patients to give
    every part one fills train first, then val, then test."""
    members, unit_classes = patient_units(labels, groups)
    parts: list[list[np.ndarray]] = [[] for _ in shares]
    for class_index in np.unique(unit_classes):
        shuffled = np.random.default_rng([_SPLIT_STREAM, seed, int(class_index)]).permutation(
            np.flatnonzero(unit_classes == class_index)
        )
        boundaries = np.cumsum(_part_counts(len(shuffled), shares))[:-1]
        for part, chosen in zip(parts, np.split(shuffled, boundaries)):
            part.extend(members[unit] for unit in chosen)
    return [np.sort(np.concatenate(part)).astype(np.int64) if part else np.zeros(0, np.int64) for part in parts]


def _return_held_out(held_out: ImageSet) -> ImageSet:
    return held_out


def _check_labels(name: str, class_names: tuple[str, ...], split_name: str, image_set: ImageSet) -> None:
    if len(image_set) and image_set.labels.max() >= len(class_names):
        raise DatasetError(
            f"label {int(image_set.labels.max())} in the {split_name} split of '{name}' is out of range: "
            f"{len(class_names)} classes allow labels 0..{len(class_names) - 1}"
        )


def _check_enough_to_carve_val(name: str, class_names: tuple[str, ...], train: ImageSet) -> None:
    """A stratified split puts a class's first patient in train and its second in val: a class with one would
    have no validation image, and its validation metrics (recall, F1, the minority class's F1) would mean nothing."""
    unit = "image" if train.groups is None else "patient"
    _, unit_classes = patient_units(train.labels, train.groups)
    for class_index, class_name in enumerate(class_names):
        if np.count_nonzero(unit_classes == class_index) == 1 and np.any(train.labels == class_index):
            raise DatasetError(
                f"class {class_name!r} of '{name}' has 1 {unit}; a stratified split needs at least 2 of every class "
                f"(one to train on, one to validate with): add {unit}s of it, drop or merge the class, or give the "
                f"source its own val split"
            )


def assemble_splits(
    options: LoadOptions,
    *,
    name: str,
    class_names: Sequence[str],
    train: ImageSet,
    val: ImageSet | None,
    test_loader: Callable[[], ImageSet] | None,
    ordinal_by_default: bool = False,
    test_patients: np.ndarray | None = None,
    skipped_files: tuple[str, ...] = (),
) -> DatasetSplits:
    """Build the splits, carving what the source lacks out of `train` (all of the source when it
    has neither val nor test) with a stratified split seeded by `options.seed`. The dataset is
    ordinal as `options` asks, else `ordinal_by_default` (what the source says).

    val missing: val share = f_val / (f_train + f_val) of train. test missing: test share =
    f_test / (f_train + f_test) of train. Both missing: (f_train, f_val, f_test) of everything. Carving keeps
    each patient whole (`ImageSet.groups`); `test_patients`, the keys of a source's own test split read without
    its images, are checked against train and val now, so a leaking split fails before the search."""
    class_names = check_class_names(name, class_names)
    train_fraction, val_fraction, test_fraction = options.split_fractions
    seed = options.seed
    if len(class_names) < 2:
        raise DatasetError(f"'{name}' has {len(class_names)} class ({list(class_names)}); a classifier needs at least 2")
    _check_labels(name, class_names, "train", train)
    if val is not None:
        _check_labels(name, class_names, "val", val)
    else:
        _check_enough_to_carve_val(name, class_names, train)

    if val is None and test_loader is None:
        train_indices, val_indices, test_indices = stratified_partition(
            train.labels, (train_fraction, val_fraction, test_fraction), seed, train.groups
        )
        held_out = train.subset(test_indices)
        test_patients = held_out.patients if train.groups is not None else None
        train, val = train.subset(train_indices), train.subset(val_indices)
        test_loader = functools.partial(_return_held_out, held_out)
    elif val is None:
        total = train_fraction + val_fraction
        train_indices, val_indices = stratified_partition(
            train.labels, (train_fraction / total, val_fraction / total), seed, train.groups
        )
        train, val = train.subset(train_indices), train.subset(val_indices)
    elif test_loader is None:
        total = train_fraction + test_fraction
        train_indices, test_indices = stratified_partition(
            train.labels, (train_fraction / total, test_fraction / total), seed, train.groups
        )
        held_out = train.subset(test_indices)
        test_patients = held_out.patients if train.groups is not None else None
        train = train.subset(train_indices)
        test_loader = functools.partial(_return_held_out, held_out)

    train_counts = train.class_counts(len(class_names))
    missing = [class_name for class_name, count in zip(class_names, train_counts) if count == 0]
    if missing:
        raise DatasetError(f"'{name}' has no training images for classes {missing}; every class needs some")
    if len(val) == 0:
        raise DatasetError(f"the validation split of '{name}' is empty; the source has too few images")
    shared_ids = np.intersect1d(train.ids, val.ids)
    if len(shared_ids):
        raise DatasetError(f"train and val of '{name}' share image ids {shared_ids[:5].tolist()}")
    if train.groups is not None or val.groups is not None:
        apart = {"train": train.patients, "val": val.patients}
        if test_patients is not None:
            apart["test"] = np.asarray(test_patients)
        check_patients_apart(name, apart)
    return DatasetSplits(
        name=name,
        class_names=class_names,
        ordinal=options.ordinal_or(ordinal_by_default),
        train=train,
        val=val,
        test_loader=test_loader,
        skipped_files=skipped_files,
    )
