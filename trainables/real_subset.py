"""A trial's real training subset: stratified, deterministic from (fraction, seed) and nested
(for one seed, a smaller fraction's subset lies inside a larger one's), plus its identity hash. Where patients
are known a subset keeps whole patients: a 30% subset holds 30% of each class's patients and all their images."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping

import numpy as np

from trainables.datasets.patients import patient_units


def _fractions_per_class(classes: np.ndarray, fraction: float | Mapping[int, float]) -> dict[int, float]:
    if not isinstance(fraction, Mapping):
        return {int(class_index): float(fraction) for class_index in classes}
    # Classes the mapping leaves out keep all their images.
    return {int(class_index): float(fraction.get(int(class_index), 1.0)) for class_index in classes}


def kept_count(fraction: float, class_size: int) -> int:
    """Images a class keeps in a real subset: ceil(fraction x class size), at least one."""
    # Rounded before ceil so that 0.3 * 10 (3.0000000000000004 in floating point) keeps 3, not 4.
    return max(1, math.ceil(round(fraction * class_size, 9)))


def real_subset_counts(class_sizes: np.ndarray, fraction: float | Mapping[int, float]) -> np.ndarray:
    """Images per class of a real subset: the same for every seed, so known without drawing one."""
    per_class = _fractions_per_class(np.arange(len(class_sizes)), fraction)
    return np.array([kept_count(per_class[index], int(size)) if size else 0 for index, size in enumerate(class_sizes)])


def _unit_permutation(unit_classes: np.ndarray, class_index: int, rng_seed: list[int]) -> np.ndarray:
    # Permuting the class's unit numbers (ascending first image) with the same generator as its image positions
    # once were keeps every subset drawn before patients were known: with one image per patient they coincide.
    return np.random.default_rng(rng_seed).permutation(np.flatnonzero(unit_classes == class_index))


def _positions(members: list[np.ndarray], units: np.ndarray) -> np.ndarray:
    if len(units) == 0:
        return np.zeros(0, dtype=np.int64)
    return np.concatenate([members[unit] for unit in units])


def real_subset_indices(
    labels: np.ndarray, fraction: float | Mapping[int, float], seed: int, groups: np.ndarray | None = None
) -> np.ndarray:
    """Sorted int64 indices into `labels` of the real images a trial trains on.

    Per class: a fixed permutation of that class's patients (generator seeded by (seed, class)), of which the first
    ceil(fraction * patients of the class) are kept, at least 1, with all their images. Without `groups` (patient
    keys) each image is a patient. `fraction` is one value for all classes or a {class: fraction} mapping (classes
    it omits get 1.0); values lie in (0, 1], validated with the trial configuration."""
    members, unit_classes = patient_units(labels, groups)
    chosen: list[np.ndarray] = []
    for class_index, class_fraction in _fractions_per_class(np.unique(unit_classes), fraction).items():
        permutation = _unit_permutation(unit_classes, class_index, [int(seed), class_index])
        chosen.append(_positions(members, permutation[: kept_count(class_fraction, len(permutation))]))
    if not chosen:
        return np.zeros(0, dtype=np.int64)
    return np.sort(np.concatenate(chosen)).astype(np.int64)


def largest_real_subset_counts(
    labels: np.ndarray, num_classes: int, fraction: float | Mapping[int, float], groups: np.ndarray | None
) -> np.ndarray:
    """Images per class that a real subset holds at most, over every seed: exact without patients (the counts do
    not depend on the seed), else the images of the patients with the most of them, for synthetic demand."""
    labels = np.asarray(labels)
    if groups is None:
        return real_subset_counts(np.bincount(labels, minlength=num_classes), fraction)
    members, unit_classes = patient_units(labels, groups)
    per_unit = np.stack([np.bincount(labels[positions], minlength=num_classes) for positions in members])
    largest = np.zeros(num_classes, dtype=np.int64)
    for class_index, class_fraction in _fractions_per_class(np.unique(unit_classes), fraction).items():
        units = per_unit[unit_classes == class_index]
        kept = kept_count(class_fraction, len(units))
        largest += np.sort(units, axis=0)[::-1][:kept].sum(axis=0)
    return largest


def real_subset_identity(dataset_name: str, ids: np.ndarray) -> str:
    """A short stable hash (16 hex digits of sha256) of the dataset name and the image ids of a
    real subset, in any order: names the subset a generator was fit on, for leakage checks."""
    # JSON keeps the encoding unambiguous whatever characters names and ids contain.
    payload = json.dumps([str(dataset_name), sorted(str(image_id) for image_id in ids)])
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:16]
