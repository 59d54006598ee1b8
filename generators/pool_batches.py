"""One written batch of pool images: its checks, its shard, and its manifest, the file that makes the batch exist,
written and read back.

A key folder holds `shards/<batch>.npy` (uint8 [N, C, H, W]) and `manifests/<batch>.json` (the batch's key,
settings and records).
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from generators.errors import PoolError
from generators.image_shards import encode_shard
from generators.pool_keys import PoolKey, SlotKey, SyntheticRecord, derive_seed, synthetic_image_id
from generators.pool_storage import PoolStorage

logger = logging.getLogger(__name__)

MANIFEST_FORMAT = 1


@dataclass(frozen=True)
class Manifest:
    path: str
    folder: str
    batch_id: str
    created_at: float
    key: PoolKey
    class_index: int
    shard: str
    records: tuple[SyntheticRecord, ...]


def check_batch(
    key: PoolKey,
    class_index: int,
    slots: Sequence[SlotKey],
    seeds: Sequence[int],
    images: np.ndarray,
    image_shape: tuple[int, int, int],
) -> None:
    """Refuses a generated batch that is not uint8 [N, C, H, W] of the dataset's shape, one image per distinct slot
    of one kind, each made with its slot's seed."""
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 4:
        described = f"{images.dtype} {images.shape}" if isinstance(images, np.ndarray) else type(images).__name__
        raise PoolError(f"images must be a uint8 array [N, C, H, W], got {described}")
    if not len(slots) == len(seeds) == len(images):
        raise PoolError(f"slots, seeds and images must have one length, got {len(slots)}, {len(seeds)}, {len(images)}")
    if tuple(images.shape[1:]) != image_shape:
        raise PoolError(
            f"images have shape [C, H, W] = {list(images.shape[1:])}, but dataset {key.dataset!r} is registered "
            f"with {list(image_shape)}"
        )
    if len(set(slots)) != len(slots):
        raise PoolError(f"slots must not repeat within one batch, got {len(slots) - len(set(slots))} repeats")
    if len({source_id is not None for source_id, _ in slots}) > 1:
        raise PoolError("a batch mixes slots with and without source ids; one generator is either kind, not both")
    for (source_id, slot), seed in zip(slots, seeds):
        if int(seed) != derive_seed(key, class_index, source_id, slot):
            raise PoolError(
                f"seed {seed} of slot {(source_id, slot)} is not derive_seed(key, {class_index}, {source_id!r}, "
                f"{slot}); pool images must be reproducible from their slot"
            )


def write_batch(
    storage: PoolStorage,
    key: PoolKey,
    class_index: int,
    slots: list[SlotKey],
    seeds: list[int],
    images: np.ndarray,
    settings: Mapping[str, Any] | None,
) -> Manifest:
    """Writes a checked batch, shard then manifest, and returns its manifest."""
    batch_id = uuid.uuid4().hex
    shard = f"{batch_id}.npy"
    created_at = time.time()
    # The shard goes first: once the manifest is visible, every image it names is complete.
    storage.write(storage.path(key.folder_name, "shards", shard), encode_shard(images))
    records = tuple(
        SyntheticRecord(
            image_id=synthetic_image_id(key, class_index, source_id, slot),
            generator=key.generator,
            settings_hash=key.settings_hash,
            dataset=key.dataset,
            fit_subset=key.fit_subset,
            class_index=class_index,
            source_id=source_id,
            slot=slot,
            seed=seed,
            created_at=created_at,
            shard=shard,
            position=position,
        )
        for position, ((source_id, slot), seed) in enumerate(zip(slots, seeds))
    )
    payload = {
        "format": MANIFEST_FORMAT,
        "batch_id": batch_id,
        "created_at": created_at,
        "key": key.to_dict(),
        "settings": dict(settings) if settings is not None else None,
        "class_index": class_index,
        "shard": shard,
        "image_shape": list(images.shape[1:]),
        "records": [record.to_dict() for record in records],
    }
    try:
        manifest_bytes = json.dumps(payload).encode("utf-8")
    except TypeError as error:
        raise PoolError(f"settings must hold only JSON values: {error}") from error
    path = storage.path(key.folder_name, "manifests", f"{batch_id}.json")
    storage.write(path, manifest_bytes)
    return Manifest(path, key.folder_name, batch_id, created_at, key, class_index, shard, records)


def read_manifest(storage: PoolStorage, path: str) -> Manifest | None:
    """The manifest stored at `path`, or None (with a warning) if it is gone, unreadable or in the wrong folder."""
    folder = path[len(storage.base) + 1 :].split("/", 1)[0]
    try:
        payload = json.loads(storage.read_bytes(path))
        key = PoolKey.from_dict(payload["key"])
        records = tuple(SyntheticRecord(**record) for record in payload["records"])
        manifest = Manifest(
            path, folder, payload["batch_id"], float(payload["created_at"]), key,
            int(payload["class_index"]), payload["shard"], records,
        )
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError) as error:
        # One damaged file must not take every sweep on this pool down; it is left for a person to look at.
        logger.warning("ignoring unreadable manifest %s: %s", path, error)
        return None
    if key.folder_name != folder:
        logger.warning("ignoring manifest %s: its key belongs in folder %s", path, key.folder_name)
        return None
    return manifest
