"""A trial's real training subset: stratified, deterministic from (fraction, seed) and nested
(for one seed, a smaller fraction's subset lies inside a larger one's), plus its identity hash."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping

import numpy as np


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


def real_subset_indices(labels: np.ndarray, fraction: float | Mapping[int, float], seed: int) -> np.ndarray:
    """Sorted int64 indices into `labels` of the real images a trial trains on.

    Per class: a fixed permutation of that class's indices (generator seeded by (seed, class)),
    of which the first ceil(fraction * class size) are kept, at least 1. `fraction` is one value
    for all classes or a {class: fraction} mapping (classes it omits get 1.0); values lie in (0, 1],
    validated with the trial configuration."""
    labels = np.asarray(labels)
    classes = np.unique(labels)
    chosen: list[np.ndarray] = []
    for class_index, class_fraction in _fractions_per_class(classes, fraction).items():
        members = np.flatnonzero(labels == class_index)
        permutation = np.random.default_rng([int(seed), class_index]).permutation(members)
        chosen.append(permutation[: kept_count(class_fraction, len(members))])
    if not chosen:
        return np.zeros(0, dtype=np.int64)
    return np.sort(np.concatenate(chosen)).astype(np.int64)


def real_subset_identity(dataset_name: str, ids: np.ndarray) -> str:
    """A short stable hash (16 hex digits of sha256) of the dataset name and the image ids of a
    real subset, in any order: names the subset a generator was fit on, for leakage checks."""
    # JSON keeps the encoding unambiguous whatever characters names and ids contain.
    payload = json.dumps([str(dataset_name), sorted(str(image_id) for image_id in ids)])
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:16]
