"""The persistent synthetic image pool: the one front over its storage, datasets, manifest index, image shards,
fitted models, leakage rules and maintenance, each in its own module.

Layout under a root (a local folder, or a URI such as s3://bucket/pool opened with pyarrow.fs):
  pool.json                                 marks the folder as a pool (with its format), written before the first write
  datasets/<dataset>.json                   training image ids and image shape of a registered dataset
  <key folder> = <generator>--<settings hash>--<dataset>[--fit-<fit subset>]   (PoolKey.folder_name)
  <key folder>/shards/<batch>.npy           uint8 [N, C, H, W] images of one written batch
  <key folder>/manifests/<batch>.json       that batch's key, settings, records and checksums; a batch exists once
                                            this exists
  <key folder>/manifests/<batch>.json.corrupt   a corrupt batch set aside (its shard or manifest failed its checksum)
  <key folder>/model/                       a fitted generator's files, fit_info.json, and COMPLETE written last
  api_spend.json                            image API spend per key and the cap (generators.pool.api_spend)
Local writes go to a `.tmp-` name and are renamed; object stores write whole objects, so a reader never sees
half a file. Names starting with `.tmp-` and shards without a manifest are ignored and removed by clean_orphans().
Every shard is checked against the sha256 its manifest records before its images are served (generators.pool.batches).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from generators.errors import PoolError
from generators.pool.api_spend import SpendLedger
from generators.pool.batches import check_batch
from generators.pool.dataset_registry import DatasetRegistry
from generators.pool.generation_cost import KeyCost, key_cost
from generators.pool.keys import (
    PoolKey,
    SlotKey,
    SyntheticRecord,
    canonical_slots,
    check_class_index,
    check_name,
)
from generators.pool.leakage import AdmittedRequest, LeakageRules
from generators.pool.maintenance import VerifyReport, clean_orphans, remove_key_folders, verify_batches
from generators.pool.manifest_index import ManifestIndex
from generators.pool.model_store import ModelStore
from generators.pool.shards import ShardReader
from generators.pool.storage import PoolStorage

if TYPE_CHECKING:
    from generators.base import Generator


class SyntheticPool:
    """One pool per storage root. Every fact lives in storage; this object only caches what it read. Safe to
    share between threads of one process."""

    def __init__(self, root: str, *, shard_cache_bytes: int = 512 * 2**20) -> None:
        self._storage = PoolStorage(root)
        self.root = self._storage.root
        self._datasets = DatasetRegistry(self._storage)
        self._models = ModelStore(self._storage)
        self._leakage = LeakageRules(self._datasets, self._models)
        self._index = ManifestIndex(self._storage)
        self._shards = ShardReader(self._storage, shard_cache_bytes, self._index.manifest_of)
        self.spend = SpendLedger(self._storage)
        """What the pool has spent on image APIs, and the cap on it."""

    @classmethod
    def open_existing(cls, root: str) -> SyntheticPool:
        """The pool at `root` for a command that reads or changes an existing pool: PoolError, naming the root,
        if nothing is there or the folder is not a synthetic pool."""
        pool = cls(root)
        pool._storage.check_is_pool()
        return pool

    def __repr__(self) -> str:
        return f"SyntheticPool({self.root!r})"

    # ----- datasets and leakage rules

    def register_dataset(self, name: str, train_ids: Sequence[str], *, image_shape: Sequence[int]) -> None:
        """Record which image ids of a dataset are training images (the only ones synthetic images may come
        from) and its image shape [C, H, W]. Registering the same again is a no-op; registering different ids or
        a different shape under a taken name is refused, so name each dataset and preprocessing apart."""
        self._datasets.register(name, train_ids, image_shape=image_shape)

    def check_fit_subset(self, key: PoolKey, fit_subset_ids: Sequence[str]) -> None:
        """Refuses a fit subset that holds any id that is not a training image of the key's dataset."""
        self._leakage.check_fit_subset(key, fit_subset_ids)

    def check_request(
        self, key: PoolKey, trial_subset_ids: Sequence[str], allowed_source_ids: Sequence[str] | None = None
    ) -> AdmittedRequest:
        """The pool's door for a trial's request: refuses one that would leak (a trial subset or image-to-image
        source that is not a training image, a source outside the trial's real subset, or a generator fit on images
        outside it) and admits the rest, for read_admitted()."""
        return self._leakage.check_request(key, trial_subset_ids, allowed_source_ids)

    # ----- fitted generators

    def has_generator(self, key: PoolKey) -> bool:
        return self._models.has(key)

    def find_generator(self, key: PoolKey, fit_settings_hash: str) -> PoolKey | None:
        """The key whose stored fit serves `key` (itself, or one with the same fit settings); None: fit it."""
        return self._models.find(key, fit_settings_hash)

    def share_generator(self, source: PoolKey, key: PoolKey, settings: Mapping[str, Any]) -> bool:
        """Stores the fit of `source` for `key` too (same generator, dataset, fit subset and fit settings)."""
        return self._models.share(source, key, settings)

    def save_generator(self, key: PoolKey, generator: Generator, fit_info: Mapping[str, Any]) -> bool:
        """Stores a fitted generator and its fit record (JSON: dataset, fit subset identity and ids, seed,
        settings, fit time). Returns False, storing nothing, when a model for the key is already stored."""
        fit_subset_ids = self._models.fit_subset_ids_of(key, fit_info)
        self._leakage.check_fit_subset(key, fit_subset_ids)
        return self._models.save(key, generator, fit_info, fit_subset_ids)

    def load_generator(self, key: PoolKey, generator: Generator) -> None:
        """Restores a fitted generator stored by save_generator (the generator must read its files in load())."""
        self._models.load(key, generator)

    def generator_info(self, key: PoolKey) -> dict[str, Any]:
        """The fit record of a stored fitted generator."""
        return self._models.fit_info(key)

    def generation_cost(self, folder: str) -> KeyCost:
        """What a key's images cost to make: its generator's fit and the measured seconds per image (key folder
        name, as trials' draws name it)."""
        if not isinstance(folder, str) or "/" in folder or "\\" in folder or folder.startswith(".") or "--" not in folder:
            raise PoolError(f"a key folder name is <generator>--<settings hash>--<dataset>[...], got {folder!r}")
        return key_cost(self._storage, folder)

    # ----- images

    def refresh(self, key: PoolKey | None = None) -> None:
        """Brings the index up to date with the manifests in storage (all keys, or one key's folder)."""
        self._index.refresh(key)

    def records(self, key: PoolKey, class_index: int) -> list[SyntheticRecord]:
        """Every stored image of (key, class), in canonical order."""
        return self._index.records(key, check_class_index(class_index))

    def missing_slots(
        self, key: PoolKey, class_index: int, count: int, allowed_source_ids: Sequence[str] | None = None
    ) -> list[SlotKey]:
        """The canonical slots among the first `count` that the pool does not hold yet."""
        class_index = check_class_index(class_index)
        slots = canonical_slots(count, allowed_source_ids)
        return self._index.missing_slots(key, class_index, slots, image_to_image=allowed_source_ids is not None)

    def add(
        self,
        key: PoolKey,
        class_index: int,
        slots: Sequence[SlotKey],
        seeds: Sequence[int],
        images: np.ndarray,
        *,
        settings: Mapping[str, Any] | None = None,
    ) -> list[SyntheticRecord]:
        """Stores one generated batch (shard, then manifest) and returns the records of `slots`. Slots the pool
        already holds keep their stored image; the new copy is not written."""
        class_index = check_class_index(class_index)
        slots = [(source_id, int(slot)) for source_id, slot in slots]
        check_batch(key, class_index, slots, seeds, images, self._datasets.get(key.dataset).image_shape)
        self._leakage.check_batch_sources(key, slots)
        return self._index.add(key, class_index, slots, seeds, images, settings)

    def read(
        self,
        key: PoolKey,
        class_index: int,
        count: int,
        *,
        trial_subset_ids: Sequence[str],
        allowed_source_ids: Sequence[str] | None = None,
    ) -> tuple[np.ndarray, list[SyntheticRecord]]:
        """The first `count` canonical images of (key, class) for a trial with real subset `trial_subset_ids`
        (leakage rules checked first); raises PoolError if some are not generated yet."""
        return self.read_admitted(self.check_request(key, trial_subset_ids, allowed_source_ids), class_index, count)

    def read_admitted(
        self, request: AdmittedRequest, class_index: int, count: int
    ) -> tuple[np.ndarray, list[SyntheticRecord]]:
        """read() for a request check_request() already admitted, so a caller that generates between the check
        and the read (the pool actor) checks the leakage rules once."""
        class_index = check_class_index(class_index)
        slots = canonical_slots(count, request.allowed_source_ids)
        image_to_image = request.allowed_source_ids is not None
        chosen = self._index.stored_records(request.key, class_index, slots, image_to_image=image_to_image)
        return self.images_of(request.key, chosen), chosen

    def images_of(self, key: PoolKey, records: Sequence[SyntheticRecord]) -> np.ndarray:
        """The stored pixels of `records` of one key, uint8 [len(records), C, H, W]. No leakage check: for
        looking at the pool; trials read through read() or the pool actor. CorruptBatchError, naming the file, if
        a shard does not match its manifest's checksum (set_aside() then lets the pool make its images again)."""
        return self._shards.images_of(key, records, self._datasets.get(key.dataset).image_shape)

    # ----- reports and maintenance

    def summary(self) -> list[dict[str, Any]]:
        """One row per (key, class): generator, settings_hash, dataset, fit_subset, class_index, count and the
        first and last creation times."""
        return self._index.summary()

    def remove(self, generator: str, settings_hash: str | None = None) -> int:
        """Deletes a generator's images and fitted models (one settings hash, or all); returns the number of
        images removed."""
        check_name(generator, "generator")
        self.refresh()
        prefix = f"{generator}--" if settings_hash is None else f"{generator}--{settings_hash}--"
        folders = [folder for folder in self._storage.key_folders() if folder.startswith(prefix)]
        removed = remove_key_folders(self._storage, self._index, folders)
        self._leakage.forget_fits(folders)
        self._shards.cache.clear()
        return removed

    def clean_orphans(self, older_than_s: float = 3600.0) -> int:
        """Deletes temporary files and folders and shards no manifest names, if older than `older_than_s`
        (younger ones may belong to a write in progress); returns how many were deleted."""
        return clean_orphans(self._storage, self._index, older_than_s)

    def set_aside(self, manifest_path: str) -> str | None:
        """Sets a corrupt batch aside (its manifest renamed to `<batch>.json.corrupt`, its shard left to
        clean_orphans()), so its slots count as missing and are made again with their seeds; returns the new
        name, or None if another process set it aside first."""
        return self._index.set_aside(manifest_path)

    def verify(self, *, repair: bool = False) -> VerifyReport:
        """Checks every stored batch: manifests against their own checksum, shards against the one their manifest
        records (batches of format 1 manifests, written before checksums, are only read back). With `repair`,
        sets the corrupt batches aside."""
        return verify_batches(self._storage, self._index, self._datasets, repair)
