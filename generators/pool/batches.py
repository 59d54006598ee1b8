"""One written batch of pool images: its checks, its shard, and its manifest, the file that makes the batch exist,
written and read back.

A key folder holds `shards/<batch>.npy` (uint8 [N, C, H, W]) and `manifests/<batch>.json` (the batch's key,
settings and records, the sha256 of the shard's bytes and a sha256 of the manifest itself). A batch whose shard or
manifest does not match its checksums is corrupt: it is never served, and set aside (its manifest renamed to
`<batch>.json.corrupt`, a name the index ignores) so its slots count as missing and are made again from their seeds.

Manifests of format 1, written before checksums existed, are still read, unverified: a pool written then keeps
working, and `python -m search.pool verify` reports which batches it could not check.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from generators.errors import PoolError
from generators.pool.keys import PoolKey, SlotKey, SyntheticRecord, derive_seed, synthetic_image_id
from generators.pool.storage import PoolStorage

logger = logging.getLogger(__name__)

MANIFEST_FORMAT = 2
# Format 1 manifests carry no checksums; they are read as before, unverified.
UNVERIFIED_MANIFEST_FORMAT = 1
SET_ASIDE_SUFFIX = ".corrupt"


class CorruptBatchError(PoolError):
    """A stored batch whose shard or manifest is damaged (truncated, changed, unreadable): never served. Names the
    damaged file and the manifest that sets the batch aside."""

    def __init__(self, root: str, manifest_path: str, damaged: str, reason: str) -> None:
        self.manifest_path = manifest_path
        self.damaged = damaged
        self.reason = reason
        super().__init__(
            f"{damaged} is corrupt ({reason}); its images are not served. The pool actor of a sweep sets the batch "
            f"aside and makes its images again; to check and repair the whole pool run "
            f"`python -m search.pool --pool {root} verify --repair`"
        )


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def manifest_checksum(payload: Mapping[str, Any]) -> str:
    """The sha256 of a manifest's content, without its own checksum field, in one canonical JSON spelling (JSON
    numbers and strings round-trip exactly, so a reader recomputes the writer's value)."""
    content = {name: value for name, value in payload.items() if name != "manifest_sha256"}
    return sha256_hex(json.dumps(content, sort_keys=True).encode("utf-8"))


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
    # None for a format 1 manifest, written before checksums: its shard is read unverified.
    shard_sha256: str | None = None


def encode_shard(images: np.ndarray) -> bytes:
    """The bytes of one shard: uint8 [N, C, H, W] images as .npy, never pickled."""
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(images), allow_pickle=False)
    return buffer.getvalue()


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
    shard_bytes = encode_shard(images)
    storage.write(storage.path(key.folder_name, "shards", shard), shard_bytes)
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
        "shard_sha256": sha256_hex(shard_bytes),
    }
    try:
        # Over the payload as a reader will parse it (settings keys that are not strings become strings).
        payload["manifest_sha256"] = manifest_checksum(json.loads(json.dumps(payload)))
        manifest_bytes = json.dumps(payload).encode("utf-8")
    except (TypeError, ValueError) as error:
        raise PoolError(f"settings must hold only JSON values: {error}") from error
    path = storage.path(key.folder_name, "manifests", f"{batch_id}.json")
    storage.write(path, manifest_bytes)
    return Manifest(path, key.folder_name, batch_id, created_at, key, class_index, shard, records, payload["shard_sha256"])


def parse_manifest(storage: PoolStorage, path: str) -> Manifest:
    """The manifest stored at `path`, checked against its own checksum: CorruptBatchError if it is truncated,
    changed or not a manifest; FileNotFoundError if it is gone."""
    folder = path[len(storage.base) + 1 :].split("/", 1)[0]
    data = storage.read_bytes(path)
    try:
        payload = json.loads(data)
        if not isinstance(payload, dict):
            raise TypeError(f"it holds a JSON {type(payload).__name__}, not an object")
        manifest_format = payload.get("format", UNVERIFIED_MANIFEST_FORMAT)
        if manifest_format not in (UNVERIFIED_MANIFEST_FORMAT, MANIFEST_FORMAT):
            raise ValueError(f"manifest format {manifest_format!r}; this code reads formats 1 and {MANIFEST_FORMAT}")
        if manifest_format == MANIFEST_FORMAT and ("manifest_sha256" not in payload or "shard_sha256" not in payload):
            raise ValueError(f"a format {MANIFEST_FORMAT} manifest without its checksums")
        # Checked whenever present, whatever the format says: a changed format number must not switch it off.
        if "manifest_sha256" in payload and payload["manifest_sha256"] != manifest_checksum(payload):
            raise ValueError("its content does not match the sha256 it records")
        key = PoolKey.from_dict(payload["key"])
        records = tuple(SyntheticRecord(**record) for record in payload["records"])
        shard_sha256 = payload.get("shard_sha256")
        if shard_sha256 is not None and not isinstance(shard_sha256, str):
            raise TypeError(f"shard_sha256 is {shard_sha256!r}, not a string")
        return Manifest(
            path, folder, payload["batch_id"], float(payload["created_at"]), key,
            int(payload["class_index"]), payload["shard"], records, shard_sha256,
        )
    except (ValueError, KeyError, TypeError) as error:
        if isinstance(error, (json.JSONDecodeError, UnicodeDecodeError)):
            reason = f"not valid JSON, truncated or changed: {error}"
        elif isinstance(error, ValueError):
            reason = str(error)
        else:
            reason = f"not a manifest: {type(error).__name__}: {error}"
        raise CorruptBatchError(storage.root, path, path, reason) from None


def read_manifest(storage: PoolStorage, path: str) -> Manifest | None:
    """The manifest stored at `path`, or None (with a warning) if it is gone, corrupt or in the wrong folder. A
    corrupt manifest's slots count as missing, so they are made again; the file is left for `verify --repair`."""
    folder = path[len(storage.base) + 1 :].split("/", 1)[0]
    try:
        manifest = parse_manifest(storage, path)
    except FileNotFoundError:
        return None
    except CorruptBatchError as error:
        # One damaged file must not take every sweep on this pool down.
        logger.warning("ignoring corrupt manifest %s: %s", path, error.reason)
        return None
    if manifest.key.folder_name != folder:
        logger.warning("ignoring manifest %s: its key belongs in folder %s", path, manifest.key.folder_name)
        return None
    return manifest


def set_aside(storage: PoolStorage, manifest_path: str) -> str | None:
    """Renames a corrupt batch's manifest to a name the index ignores, so its slots count as missing; its shard
    is then unreferenced and clean_orphans() removes it. Returns the new name, or None if the manifest is already
    gone (another process set it aside first)."""
    target = f"{manifest_path}{SET_ASIDE_SUFFIX}"
    try:
        if storage.exists(target):
            target = f"{manifest_path}.{uuid.uuid4().hex[:8]}{SET_ASIDE_SUFFIX}"
        storage.filesystem.move(manifest_path, target)
    except FileNotFoundError:
        return None
    logger.warning("set aside corrupt batch %s as %s; its images will be made again", manifest_path, target)
    return target
