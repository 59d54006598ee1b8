"""The index of a pool's manifests: which images exist per (key, class), in canonical order, which slots are
missing, and adding a batch. Manifests whose name starts with `.tmp-` or that do not end in `.json` (a corrupt
batch set aside) are ignored; so are corrupt manifests, whose slots therefore count as missing."""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from generators.errors import PoolError
from generators.pool.batches import Manifest, read_manifest, set_aside, write_batch
from generators.pool.keys import PoolKey, SlotKey, SyntheticRecord, slot_order
from generators.pool.storage import TEMPORARY_PREFIX, PoolStorage


class ManifestIndex:
    """Every fact lives in storage; this caches the manifests, loaded on first use and brought up to date by
    refresh(). Safe to share between threads of one process."""

    def __init__(self, storage: PoolStorage) -> None:
        self._storage = storage
        self._lock = threading.RLock()
        self._manifests: dict[str, Manifest] = {}
        # Manifests found corrupt (batch names are never reused, so they stay so): not read again, not warned again.
        self._ignored: set[str] = set()
        self._index: dict[PoolKey, dict[int, dict[SlotKey, SyntheticRecord]]] = {}
        self._loaded = False

    def refresh(self, key: PoolKey | None = None) -> None:
        """Brings the index up to date with the manifests in storage (all keys, or one key's folder)."""
        with self._lock:
            folders = [key.folder_name] if key is not None else self._storage.key_folders()
            found: set[str] = set()
            for folder in folders:
                for info in self._storage.list(self._storage.path(folder, "manifests")):
                    if info.base_name.endswith(".json") and not info.base_name.startswith(TEMPORARY_PREFIX):
                        found.add(info.path)
            touched = set(folders)
            for path in [path for path, manifest in self._manifests.items() if manifest.folder in touched]:
                if path not in found:
                    del self._manifests[path]
            for path in sorted(found - self._manifests.keys() - self._ignored):
                manifest = read_manifest(self._storage, path)
                if manifest is not None:
                    self._manifests[path] = manifest
                elif self._storage.exists(path):
                    self._ignored.add(path)
            if key is None:
                self._index.clear()
                touched = {manifest.folder for manifest in self._manifests.values()}
            self._rebuild(touched)
            self._loaded = True

    def _ensure_loaded(self) -> None:
        with self._lock:
            if not self._loaded:
                self.refresh()

    def _rebuild(self, folders: set[str]) -> None:
        manifests = sorted(
            (manifest for manifest in self._manifests.values() if manifest.folder in folders),
            key=lambda manifest: (manifest.created_at, manifest.batch_id),
        )
        for key in [key for key in self._index if key.folder_name in folders]:
            del self._index[key]
        for manifest in manifests:
            per_slot = self._index.setdefault(manifest.key, {}).setdefault(manifest.class_index, {})
            for record in manifest.records:
                # Two writers that raced for a slot: the earliest batch wins everywhere, the other is ignored.
                per_slot.setdefault(record.slot_key, record)

    def records(self, key: PoolKey, class_index: int) -> list[SyntheticRecord]:
        """Every stored image of (key, class), in canonical order."""
        self._ensure_loaded()
        with self._lock:
            stored = list(self._index.get(key, {}).get(class_index, {}).values())
        return sorted(stored, key=slot_order)

    def _check_kind(self, key: PoolKey, image_to_image: bool) -> None:
        with self._lock:
            per_class = self._index.get(key, {})
            stored = next((record for records in per_class.values() for record in records.values()), None)
        if stored is not None and (stored.source_id is not None) != image_to_image:
            stored_kind = "an image-to-image" if stored.source_id is not None else "a noise"
            wanted = "without allowed_source_ids" if stored.source_id is not None else "with allowed_source_ids"
            raise PoolError(f"{key.folder_name} holds images of {stored_kind} generator; it cannot be used {wanted}")

    def missing_slots(self, key: PoolKey, class_index: int, slots: list[SlotKey], image_to_image: bool) -> list[SlotKey]:
        """The slots among `slots` that the pool does not hold yet."""
        self._ensure_loaded()
        self._check_kind(key, image_to_image)
        with self._lock:
            present = self._index.get(key, {}).get(class_index, {})
            return [slot for slot in slots if slot not in present]

    def stored_records(
        self, key: PoolKey, class_index: int, slots: list[SlotKey], image_to_image: bool
    ) -> list[SyntheticRecord]:
        """The records of `slots`; PoolError if some are not generated yet."""
        missing = self.missing_slots(key, class_index, slots, image_to_image)
        if missing:
            raise PoolError(
                f"{len(missing)} of the {len(slots)} requested images of {key.folder_name} class {class_index} are not "
                f"in the pool yet (first missing slots: {missing[:3]}); generate them through the pool actor's request()"
            )
        with self._lock:
            present = self._index[key][class_index] if slots else {}
            return [present[slot] for slot in slots]

    def add(
        self,
        key: PoolKey,
        class_index: int,
        slots: list[SlotKey],
        seeds: Sequence[int],
        images: np.ndarray,
        settings: Mapping[str, Any] | None,
    ) -> list[SyntheticRecord]:
        """Stores the slots of a checked batch that the pool does not hold yet and returns the records of all of
        `slots`; a slot already stored keeps its image."""
        self._ensure_loaded()
        if slots:
            self._check_kind(key, slots[0][0] is not None)
        with self._lock:
            present = self._index.get(key, {}).get(class_index, {})
            new = [position for position, slot in enumerate(slots) if slot not in present]
        if new:
            manifest = write_batch(
                self._storage, key, class_index, [slots[i] for i in new], [int(seeds[i]) for i in new], images[new], settings
            )
            with self._lock:
                self._manifests[manifest.path] = manifest
                self._rebuild({key.folder_name})
        with self._lock:
            stored = self._index[key][class_index] if slots else {}
            return [stored[slot] for slot in slots]

    def summary(self) -> list[dict[str, Any]]:
        """One row per (key, class): generator, settings_hash, dataset, fit_subset, class_index, count and the
        first and last creation times."""
        self._ensure_loaded()
        rows = []
        with self._lock:
            for key, per_class in self._index.items():
                for class_index, records in per_class.items():
                    created = [record.created_at for record in records.values()]
                    rows.append({
                        **key.to_dict(),
                        "class_index": class_index,
                        "count": len(records),
                        "first_created_at": min(created) if created else math.nan,
                        "last_created_at": max(created) if created else math.nan,
                    })
        return sorted(rows, key=lambda row: (row["generator"], row["settings_hash"], row["dataset"],
                                             row["fit_subset"] or "", row["class_index"]))

    def image_count(self, folders: list[str]) -> int:
        """How many images these key folders hold."""
        with self._lock:
            return sum(
                len(records)
                for key, per_class in self._index.items()
                if key.folder_name in folders
                for records in per_class.values()
            )

    def forget(self, folders: list[str]) -> None:
        """Drops the manifests of these key folders, once they are deleted from storage."""
        with self._lock:
            for path in [path for path, manifest in self._manifests.items() if manifest.folder in folders]:
                del self._manifests[path]
            self._rebuild(set(folders))

    def manifest_of(self, shard_path: str) -> Manifest | None:
        """The indexed manifest that names the shard at `shard_path`."""
        folder, _, shard = shard_path[len(self._storage.base) + 1 :].partition("/shards/")
        with self._lock:
            batch_id = shard.removesuffix(".npy")
            manifest = self._manifests.get(self._storage.path(folder, "manifests", f"{batch_id}.json"))
            return manifest if manifest is not None and manifest.shard == shard else None

    def set_aside(self, manifest_path: str) -> str | None:
        """Sets a corrupt batch aside (batches.set_aside) and drops it, so its slots count as missing."""
        with self._lock:
            target = set_aside(self._storage, manifest_path)
            manifest = self._manifests.pop(manifest_path, None)
            if manifest is not None:
                self._rebuild({manifest.folder})
            return target

    def referenced_shards(self) -> set[str]:
        """Paths of the shards some manifest names."""
        with self._lock:
            return {
                self._storage.path(manifest.folder, "shards", manifest.shard) for manifest in self._manifests.values()
            }
