"""Patient keys: the one form in which a patient's identity exists after loading (a salted hash, salt drawn afresh
for every load and never stored), and the grouping of image positions by patient that splits and subsets use."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable, Sequence

import numpy as np

from trainables.datasets.errors import DatasetError

PATIENT_KEY_PREFIX = "patient-"


class PatientKeys:
    """Turns raw patient identifiers (a DICOM PatientID, a manifest's patient column, a file-name match) into keys.

    The salt is random per instance and lives only in memory, so a key cannot be reversed by hashing guessed
    record numbers, and keys of two loads cannot be linked. Nothing downstream may depend on a key's value:
    splits and subsets order patients by their first image, which is why a resumed sweep, loading again with a
    new salt, draws the same splits."""

    def __init__(self) -> None:
        self._salt = secrets.token_bytes(32)

    def key(self, identifier: str) -> str:
        digest = hashlib.blake2b(str(identifier).encode("utf-8"), key=self._salt, digest_size=8).hexdigest()
        return PATIENT_KEY_PREFIX + digest

    def keys(self, identifiers: Iterable[str]) -> np.ndarray:
        return np.array([self.key(identifier) for identifier in identifiers], dtype=str)


def groups_in_order(groups: np.ndarray) -> list[np.ndarray]:
    """Positions of each group's images, groups in the order of their first image (never in key order: keys are
    salted afresh for every load, positions are not)."""
    _, first, inverse = np.unique(np.asarray(groups), return_index=True, return_inverse=True)
    rank = np.empty(len(first), dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(len(first))
    order = rank[inverse.ravel()]
    sorted_positions = np.argsort(order, kind="stable")
    boundaries = np.flatnonzero(np.diff(order[sorted_positions])) + 1
    return np.split(sorted_positions.astype(np.int64), boundaries)


def group_classes(labels: np.ndarray, members: Sequence[np.ndarray]) -> np.ndarray:
    """Each group's class for stratification: the most common label among its images (the lowest on a tie)."""
    return np.array([int(np.argmax(np.bincount(labels[positions]))) for positions in members], dtype=np.int64)


def partition_signature(groups: np.ndarray | None) -> bytes:
    """What the grouping is, salt-free, for fingerprints: each image's group numbered by first appearance."""
    if groups is None:
        return b""
    number = np.empty(len(groups), dtype=np.int64)
    for index, positions in enumerate(groups_in_order(groups)):
        number[positions] = index
    return number.tobytes()


def patient_units(labels: np.ndarray, groups: np.ndarray | None) -> tuple[list[np.ndarray], np.ndarray]:
    """What splits and subsets draw: each patient's image positions (in the order of its first image) and its class
    (its most common label). Without patients every image is its own unit, so drawing units draws images."""
    labels = np.asarray(labels)
    if groups is None:
        return [np.array([position], dtype=np.int64) for position in range(len(labels))], labels.astype(np.int64)
    members = groups_in_order(groups)
    return members, group_classes(labels, members)


def check_patients_apart(name: str, splits: dict[str, np.ndarray]) -> None:
    """No patient in two splits: the leakage that most inflates medical-imaging results. Keys are salted, so the
    message counts patients instead of naming them."""
    split_names = list(splits)
    for position, first in enumerate(split_names):
        for second in split_names[position + 1 :]:
            shared = np.intersect1d(splits[first], splits[second])
            if len(shared):
                raise DatasetError(
                    f"{len(shared)} patient(s) of '{name}' have images in both the {first} and the {second} split; "
                    f"one patient's images must stay in one split: fix the source's split column or folders, or "
                    f"leave the split out and let it be carved by patient"
                )
