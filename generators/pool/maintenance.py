"""Deleting from a pool: a generator's key folders, and the leftovers of crashed writes (temporary names, shards no
manifest names); checking every stored batch against its checksums, and setting corrupt ones aside."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import pyarrow.fs

from generators.pool.batches import CorruptBatchError, parse_manifest
from generators.pool.dataset_registry import DatasetRegistry
from generators.pool.manifest_index import ManifestIndex
from generators.pool.shards import decode_shard
from generators.pool.storage import TEMPORARY_PREFIX, PoolStorage


@dataclass
class VerifyReport:
    """What `verify` found: batches checked against their checksums, batches of format 1 manifests (written before
    checksums) that were only read back, the corrupt ones (manifest path and why), and where those were set aside."""

    verified: int = 0
    unverified: int = 0
    images: int = 0
    corrupt: list[CorruptBatchError] = field(default_factory=list)
    set_aside: dict[str, str] = field(default_factory=dict)


def verify_batches(storage: PoolStorage, index: ManifestIndex, datasets: DatasetRegistry, repair: bool) -> VerifyReport:
    """Reads every manifest and shard of the pool and checks them (shards against the sha256 their manifest
    records); with `repair`, sets the corrupt batches aside so the next request makes their images again."""
    report = VerifyReport()
    for folder in storage.key_folders():
        for info in storage.list(storage.path(folder, "manifests")):
            if not info.base_name.endswith(".json") or info.base_name.startswith(TEMPORARY_PREFIX):
                continue
            try:
                manifest = parse_manifest(storage, info.path)
                if manifest.key.folder_name != folder:
                    continue  # not this folder's batch; the index ignores it too
                shard = storage.path(folder, "shards", manifest.shard)
                try:
                    data = storage.read_bytes(shard)
                except FileNotFoundError:
                    raise CorruptBatchError(storage.root, info.path, shard, "it is gone, though its manifest names it") from None
                # A dataset that is not registered is a PoolError of its own, never a reason to set batches aside.
                decode_shard(storage, manifest, data, datasets.get(manifest.key.dataset).image_shape)
            except FileNotFoundError:
                continue  # removed while this ran
            except CorruptBatchError as error:
                report.corrupt.append(error)
                continue
            report.verified += manifest.shard_sha256 is not None
            report.unverified += manifest.shard_sha256 is None
            report.images += len(manifest.records)
    if repair:
        for error in report.corrupt:
            target = index.set_aside(error.manifest_path)
            if target is not None:
                report.set_aside[error.manifest_path] = target
    return report


def remove_key_folders(storage: PoolStorage, index: ManifestIndex, folders: list[str]) -> int:
    """Deletes these key folders and returns how many images they held. Manifests go first, so no reader ever sees
    a record whose shard is gone."""
    removed = index.image_count(folders)
    for folder in folders:
        for info in storage.list(storage.path(folder, "manifests")):
            storage.delete_file(info.path)
        storage.delete_folder(storage.path(folder))
    index.forget(folders)
    storage.forget_folders(folders)
    return removed


def clean_orphans(storage: PoolStorage, index: ManifestIndex, older_than_s: float) -> int:
    """Deletes temporary files and folders and shards no manifest names, if older than `older_than_s` (younger ones
    may belong to a write in progress); returns how many were deleted."""
    index.refresh()
    cutoff = time.time() - older_than_s
    referenced = index.referenced_shards()
    deleted = 0
    candidates: list[pyarrow.fs.FileInfo] = [*storage.list(storage.base), *storage.list(storage.path("datasets"))]
    for folder in storage.key_folders():
        candidates += storage.list(storage.path(folder))
        candidates += storage.list(storage.path(folder, "shards"))
        candidates += storage.list(storage.path(folder, "manifests"))
    for info in candidates:
        temporary = info.base_name.startswith(TEMPORARY_PREFIX)
        unreferenced_shard = (
            info.type == pyarrow.fs.FileType.File and "/shards/" in info.path and info.path not in referenced
        )
        if not (temporary or unreferenced_shard):
            continue
        if info.mtime is not None and info.mtime.timestamp() > cutoff:
            continue
        if info.type == pyarrow.fs.FileType.Directory:
            storage.delete_folder(info.path)
        else:
            storage.delete_file(info.path)
        deleted += 1
    return deleted
