"""A trial's real training subset: stratified, deterministic from (fraction, seed) and nested
(for one seed, a smaller fraction's subset lies inside a larger one's), plus its identity hash."""

from __future__ import annotations

import hashlib
import json
import math
import numbers
from collections.abc import Mapping

import numpy as np

from trainables.errors import TrainableInputError


def _check_fraction(fraction: object, what: str) -> float:
    if isinstance(fraction, bool) or not isinstance(fraction, numbers.Real) or not 0 < float(fraction) <= 1:
        raise TrainableInputError(f"{what} must be a number in (0, 1], got {fraction!r}")
    return float(fraction)


def _fractions_per_class(
    classes: np.ndarray, fraction: float | Mapping[int, float]
) -> dict[int, float]:
    if not isinstance(fraction, Mapping):
        value = _check_fraction(fraction, "real fraction")
        return {int(class_index): value for class_index in classes}
    known = {int(class_index) for class_index in classes}
    for class_index in fraction:
        if isinstance(class_index, bool) or not isinstance(class_index, numbers.Integral):
            raise TrainableInputError(
                f"real fraction keys must be integer class indices, got {class_index!r}; classes are {sorted(known)}"
            )
        if int(class_index) not in known:
            raise TrainableInputError(
                f"real fraction given for class {class_index}, which has no images; classes are {sorted(known)}"
            )
    per_class = {int(key): _check_fraction(value, f"real fraction for class {key}") for key, value in fraction.items()}
    # Classes the mapping leaves out keep all their images.
    return {class_index: per_class.get(class_index, 1.0) for class_index in sorted(known)}


def real_subset_indices(labels: np.ndarray, fraction: float | Mapping[int, float], seed: int) -> np.ndarray:
    """Sorted int64 indices into `labels` of the real images a trial trains on.

    Per class: a fixed permutation of that class's indices (generator seeded by (seed, class)),
    of which the first ceil(fraction * class size) are kept, at least 1. `fraction` is one value
    for all classes or a {class: fraction} mapping (classes it omits get 1.0); values lie in (0, 1]."""
    labels = np.asarray(labels)
    if labels.ndim != 1 or (labels.size and not np.issubdtype(labels.dtype, np.integer)):
        raise TrainableInputError(
            f"labels must be a 1-d integer array, got dtype {labels.dtype} and shape {labels.shape}"
        )
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise TrainableInputError(f"real subset seed must be a non-negative integer, got {seed!r}")
    classes = np.unique(labels)
    chosen: list[np.ndarray] = []
    for class_index, class_fraction in _fractions_per_class(classes, fraction).items():
        members = np.flatnonzero(labels == class_index)
        permutation = np.random.default_rng([int(seed), class_index]).permutation(members)
        # Rounded before ceil so that 0.3 * 10 (3.0000000000000004 in floating point) keeps 3, not 4.
        keep = max(1, math.ceil(round(class_fraction * len(members), 9)))
        chosen.append(permutation[:keep])
    if not chosen:
        return np.zeros(0, dtype=np.int64)
    return np.sort(np.concatenate(chosen)).astype(np.int64)


def real_subset_identity(dataset_name: str, ids: np.ndarray) -> str:
    """A short stable hash (16 hex digits of sha256) of the dataset name and the image ids of a
    real subset, in any order: names the subset a generator was fit on, for leakage checks."""
    ids = np.asarray(ids)
    if ids.ndim != 1:
        raise TrainableInputError(f"ids must be a 1-d array of image ids, got shape {ids.shape}")
    # JSON keeps the encoding unambiguous whatever characters names and ids contain.
    payload = json.dumps([str(dataset_name), sorted(str(image_id) for image_id in ids)])
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:16]
