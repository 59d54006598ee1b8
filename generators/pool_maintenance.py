"""Deleting from a pool: a generator's key folders, and the leftovers of crashed writes (temporary names, shards no
manifest names)."""

from __future__ import annotations

import time

import pyarrow.fs

from generators.manifest_index import ManifestIndex
from generators.pool_storage import TEMPORARY_PREFIX, PoolStorage


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
