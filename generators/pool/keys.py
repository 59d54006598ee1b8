"""Identity and order of pool images: pool keys, provenance records, slot seeds, canonical order."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from generators.errors import PoolError

# Names become folder names; a single dash is allowed inside, "--" separates the parts of a key folder.
_NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.]*(?:-[A-Za-z0-9_.]+)*")
_HEX_PATTERN = re.compile(r"[0-9a-f]+")

SlotKey = tuple[str | None, int]


def check_name(value: object, what: str) -> str:
    if not isinstance(value, str) or not _NAME_PATTERN.fullmatch(value):
        raise PoolError(
            f"{what} must be a string of letters, digits, '_', '.' and single '-' starting with a letter or digit, "
            f"got {value!r}"
        )
    return value


def check_class_index(class_index: object) -> int:
    if isinstance(class_index, bool) or not isinstance(class_index, (int, np.integer)) or class_index < 0:
        raise PoolError(f"class_index must be a non-negative integer, got {class_index!r}")
    return int(class_index)


def check_count(count: object) -> int:
    if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 0:
        raise PoolError(f"count must be a non-negative integer, got {count!r}")
    return int(count)


def check_ids(ids: object, what: str) -> list[str]:
    # A bare string is a sequence too; taking it as a list of one-letter ids would hide the mistake.
    if isinstance(ids, (str, bytes)) or not isinstance(ids, (Sequence, np.ndarray, set, frozenset)):
        raise PoolError(f"{what} must be a list of image id strings, got {type(ids).__name__}")
    checked = [str(image_id) if isinstance(image_id, np.str_) else image_id for image_id in ids]
    wrong = [image_id for image_id in checked if not isinstance(image_id, str)]
    if wrong:
        raise PoolError(f"{what} must contain only image id strings, got {wrong[:3]!r}")
    return checked


def examples(ids: set[str] | list[str], limit: int = 5) -> str:
    shown = sorted(ids)[:limit]
    more = f" and {len(ids) - limit} more" if len(ids) > limit else ""
    return f"{shown}{more}"


@dataclass(frozen=True, kw_only=True)
class PoolKey:
    """Which images are interchangeable: one generator with one settings hash, for one dataset (and, for a
    fitted generator, the identity of the real subset it was fit on)."""

    generator: str
    settings_hash: str
    # Source ids and image shapes are only meaningful within one dataset and its preprocessing.
    dataset: str
    fit_subset: str | None = None

    def __post_init__(self) -> None:
        check_name(self.generator, "PoolKey.generator")
        check_name(self.dataset, "PoolKey.dataset")
        if not isinstance(self.settings_hash, str) or not _HEX_PATTERN.fullmatch(self.settings_hash):
            raise PoolError(f"PoolKey.settings_hash must be lowercase hex digits, got {self.settings_hash!r}")
        if self.fit_subset is not None:
            check_name(self.fit_subset, "PoolKey.fit_subset")

    @property
    def folder_name(self) -> str:
        fit = f"--fit-{self.fit_subset}" if self.fit_subset is not None else ""
        return f"{self.generator}--{self.settings_hash}--{self.dataset}{fit}"

    def to_dict(self) -> dict[str, str | None]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> PoolKey:
        return cls(
            generator=values["generator"],
            settings_hash=values["settings_hash"],
            dataset=values["dataset"],
            fit_subset=values.get("fit_subset"),
        )


@dataclass(frozen=True, kw_only=True)
class SyntheticRecord:
    """Provenance of one synthetic image and where its pixels are stored."""

    image_id: str
    generator: str
    settings_hash: str
    dataset: str
    fit_subset: str | None
    class_index: int
    source_id: str | None
    slot: int
    seed: int
    created_at: float
    shard: str
    position: int

    @property
    def key(self) -> PoolKey:
        return PoolKey(
            generator=self.generator, settings_hash=self.settings_hash, dataset=self.dataset, fit_subset=self.fit_subset
        )

    @property
    def slot_key(self) -> SlotKey:
        return (self.source_id, self.slot)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def derive_seed(key: PoolKey, class_index: int, source_id: str | None, slot: int) -> int:
    """The seed of one canonical slot: a stable 63-bit integer from sha256 of the key, class, source and slot."""
    parts = [key.generator, key.settings_hash, key.dataset, key.fit_subset, int(class_index), source_id, int(slot)]
    digest = hashlib.sha256(json.dumps(parts).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def synthetic_image_id(key: PoolKey, class_index: int, source_id: str | None, slot: int) -> str:
    """A stable id naming the slot, so reruns and other processes give the same image the same id."""
    if source_id is None:
        return f"synthetic/{key.folder_name}/class-{class_index}/slot-{slot}"
    return f"synthetic/{key.folder_name}/class-{class_index}/source-{source_id}/round-{slot}"


def canonical_slots(count: int, allowed_source_ids: Sequence[str] | None = None) -> list[SlotKey]:
    """The first `count` slots in canonical order: noise slots 0..count-1, or for image-to-image round 0 over the
    sorted allowed sources, then round 1, ...; a smaller request is always a prefix of a larger one."""
    count = check_count(count)
    if allowed_source_ids is None:
        return [(None, slot) for slot in range(count)]
    sources = sorted(set(check_ids(allowed_source_ids, "allowed_source_ids")))
    if not sources:
        if count:
            raise PoolError("allowed_source_ids is empty: an image-to-image generator needs at least one source image")
        return []
    return [(sources[index % len(sources)], index // len(sources)) for index in range(count)]


def slot_order(record: SyntheticRecord) -> tuple[int, str]:
    return (record.slot, record.source_id or "")
