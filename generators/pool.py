"""The persistent synthetic image pool: images, provenance, fitted generators and leakage rules, all in storage.

Layout under a root (a local folder, or a URI such as s3://bucket/pool opened with pyarrow.fs):
  datasets/<dataset>.json                   training image ids and image shape of a registered dataset
  <key folder> = <generator>--<settings hash>--<dataset>[--fit-<fit subset>]   (PoolKey.folder_name)
  <key folder>/shards/<batch>.npy           uint8 [N, C, H, W] images of one written batch
  <key folder>/manifests/<batch>.json       that batch's key, settings and records; a batch exists once this exists
  <key folder>/model/                       a fitted generator's files, fit_info.json, and COMPLETE written last
Local writes go to a `.tmp-` name and are renamed; object stores write whole objects, so a reader never sees
half a file. Names starting with `.tmp-` and shards without a manifest are ignored and removed by clean_orphans().
"""

from __future__ import annotations

import io
import json
import logging
import math
import tempfile
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow.fs

from generators.errors import LeakageError, PoolError
from generators.pool_keys import (
    PoolKey,
    SlotKey,
    SyntheticRecord,
    canonical_slots,
    check_class_index,
    check_ids,
    check_name,
    derive_seed,
    examples,
    slot_order,
    synthetic_image_id,
)

if TYPE_CHECKING:
    from generators.base import Generator

__all__ = ["LeakageError", "PoolError", "PoolKey", "SyntheticPool", "SyntheticRecord", "canonical_slots", "derive_seed"]

logger = logging.getLogger(__name__)

TEMPORARY_PREFIX = ".tmp-"
MANIFEST_FORMAT = 1

@dataclass(frozen=True)
class _Manifest:
    path: str
    folder: str
    batch_id: str
    created_at: float
    key: PoolKey
    class_index: int
    shard: str
    records: tuple[SyntheticRecord, ...]


@dataclass(frozen=True)
class _Dataset:
    train_ids: frozenset[str]
    image_shape: tuple[int, int, int]


class _ShardCache:
    """Recently read shards (immutable once their manifest exists), bounded in bytes."""

    def __init__(self, max_bytes: int) -> None:
        self._max_bytes = max_bytes
        self._arrays: OrderedDict[str, np.ndarray] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, path: str) -> np.ndarray | None:
        with self._lock:
            array = self._arrays.get(path)
            if array is not None:
                self._arrays.move_to_end(path)
            return array

    def put(self, path: str, array: np.ndarray) -> None:
        with self._lock:
            if path in self._arrays or array.nbytes > self._max_bytes:
                return
            self._arrays[path] = array
            self._bytes += array.nbytes
            while self._bytes > self._max_bytes:
                _, evicted = self._arrays.popitem(last=False)
                self._bytes -= evicted.nbytes

    def clear(self) -> None:
        with self._lock:
            self._arrays.clear()
            self._bytes = 0


def open_pool_root(root: str) -> tuple[str, pyarrow.fs.FileSystem, str]:
    """(canonical root, filesystem, base path): local paths (and file:// URIs) become absolute paths, so every
    spelling of one folder names one pool."""
    if not isinstance(root, str) or not root.strip():
        raise PoolError(f"pool root must be a folder path or a URI such as s3://bucket/pool, got {root!r}")
    if "://" not in root:
        root = str(Path(root).expanduser().resolve())
    try:
        filesystem, base = pyarrow.fs.FileSystem.from_uri(root)
    except (pyarrow.ArrowInvalid, OSError) as error:
        raise PoolError(f"pool root {root!r} cannot be opened: {error}") from error
    base = base.rstrip("/")
    if isinstance(filesystem, pyarrow.fs.LocalFileSystem):
        return base, filesystem, base
    return root.rstrip("/"), filesystem, base


class SyntheticPool:
    """One pool per storage root. Every fact lives in storage; this object only caches the index of manifests,
    loaded on first use and brought up to date by refresh(). Safe to share between threads of one process."""

    def __init__(self, root: str, *, shard_cache_bytes: int = 512 * 2**20) -> None:
        self.root, self._filesystem, self._base = open_pool_root(root)
        self._is_local = isinstance(self._filesystem, pyarrow.fs.LocalFileSystem)
        self._lock = threading.RLock()
        self._manifests: dict[str, _Manifest] = {}
        self._index: dict[PoolKey, dict[int, dict[SlotKey, SyntheticRecord]]] = {}
        self._loaded = False
        self._datasets: dict[str, _Dataset] = {}
        self._fit_subset_ids: dict[PoolKey, frozenset[str]] = {}
        self._shards = _ShardCache(shard_cache_bytes)
        self._created_folders: set[str] = set()

    def __repr__(self) -> str:
        return f"SyntheticPool({self.root!r})"

    # ----- storage primitives

    def _path(self, *parts: str) -> str:
        return "/".join([self._base, *parts])

    def _make_folder(self, path: str) -> None:
        if path not in self._created_folders:
            self._filesystem.create_dir(path, recursive=True)
            self._created_folders.add(path)

    def _write(self, path: str, data: bytes) -> None:
        folder, name = path.rsplit("/", 1)
        self._make_folder(folder)
        if not self._is_local:
            # An object store publishes an object whole on close; a temporary copy would only double the upload.
            with self._filesystem.open_output_stream(path) as stream:
                stream.write(data)
            return
        temporary = f"{folder}/{TEMPORARY_PREFIX}{uuid.uuid4().hex}-{name}"
        with self._filesystem.open_output_stream(temporary) as stream:
            stream.write(data)
        self._filesystem.move(temporary, path)

    def _read_bytes(self, path: str) -> bytes:
        with self._filesystem.open_input_file(path) as stream:
            return stream.read()

    def _exists(self, path: str) -> bool:
        return self._filesystem.get_file_info(path).type != pyarrow.fs.FileType.NotFound

    def _list(self, path: str) -> list[pyarrow.fs.FileInfo]:
        return self._filesystem.get_file_info(pyarrow.fs.FileSelector(path, allow_not_found=True))

    def _key_folders(self) -> list[str]:
        return sorted(
            info.base_name
            for info in self._list(self._base)
            if info.type == pyarrow.fs.FileType.Directory and "--" in info.base_name
        )

    # ----- datasets

    def register_dataset(self, name: str, train_ids: Sequence[str], *, image_shape: Sequence[int]) -> None:
        """Record which image ids of a dataset are training images (the only ones synthetic images may come
        from) and its image shape [C, H, W]. Registering the same again is a no-op; registering different ids or
        a different shape under a taken name is refused, so name each dataset and preprocessing apart."""
        check_name(name, "dataset name")
        ids = frozenset(check_ids(train_ids, "train_ids"))
        shape = tuple(int(size) for size in image_shape) if isinstance(image_shape, Sequence) else ()
        if len(shape) != 3 or min(shape) < 1:
            raise PoolError(f"image_shape must be (channels, height, width) of positive sizes, got {image_shape!r}")
        try:
            existing = self._dataset(name)
        except PoolError:
            existing = None
        if existing is not None:
            if existing.train_ids == ids and existing.image_shape == shape:
                return
            raise PoolError(
                f"dataset {name!r} is already registered in pool {self.root} with {len(existing.train_ids)} training ids "
                f"and image shape {list(existing.image_shape)}, not these {len(ids)} ids and shape {list(shape)}; "
                f"give each dataset and preprocessing its own name (e.g. '{name}-{shape[1]}px-{shape[0]}ch')"
            )
        payload = {"name": name, "image_shape": list(shape), "train_ids": sorted(ids), "registered_at": time.time()}
        self._write(self._path("datasets", f"{name}.json"), json.dumps(payload).encode("utf-8"))
        with self._lock:
            self._datasets[name] = _Dataset(ids, shape)

    def _dataset(self, name: str) -> _Dataset:
        with self._lock:
            if name in self._datasets:
                return self._datasets[name]
        path = self._path("datasets", f"{name}.json")
        try:
            payload = json.loads(self._read_bytes(path))
        except FileNotFoundError:
            registered = sorted(
                info.base_name.removesuffix(".json")
                for info in self._list(self._path("datasets"))
                if info.base_name.endswith(".json") and not info.base_name.startswith(TEMPORARY_PREFIX)
            )
            raise PoolError(
                f"dataset {name!r} is not registered in pool {self.root}; call register_dataset(name, train_ids, "
                f"image_shape=...) first (registered: {registered})"
            ) from None
        dataset = _Dataset(frozenset(payload["train_ids"]), tuple(payload["image_shape"]))
        with self._lock:
            self._datasets[name] = dataset
        return dataset

    # ----- leakage rules

    def check_fit_subset(self, key: PoolKey, fit_subset_ids: Sequence[str]) -> None:
        """Refuses a fit subset that holds any id that is not a training image of the key's dataset."""
        ids = set(check_ids(fit_subset_ids, "fit_subset_ids"))
        if not ids:
            raise PoolError(f"fit_subset_ids of {key.folder_name} is empty: a fitted generator needs training images")
        outside = ids - self._dataset(key.dataset).train_ids
        if outside:
            raise LeakageError(
                f"rule 'generators are fit on training images only': the fit subset of {key.folder_name} holds "
                f"{len(outside)} ids that are not training ids of dataset {key.dataset!r} (validation, test or "
                f"unknown): {examples(outside)}"
            )

    def check_request(
        self, key: PoolKey, trial_subset_ids: Sequence[str], allowed_source_ids: Sequence[str] | None = None
    ) -> None:
        """Refuses a request that would leak: a trial subset or image-to-image source that is not a training
        image, a source outside the trial's real subset, or a generator fit on images outside it."""
        trial_ids = set(check_ids(trial_subset_ids, "trial_subset_ids"))
        train_ids = self._dataset(key.dataset).train_ids
        outside_train = trial_ids - train_ids
        if outside_train:
            raise LeakageError(
                f"rule 'synthetic images come from training images only': trial_subset_ids holds {len(outside_train)} "
                f"ids that are not training ids of dataset {key.dataset!r}: {examples(outside_train)}"
            )
        if allowed_source_ids is not None:
            sources = set(check_ids(allowed_source_ids, "allowed_source_ids"))
            not_training = sources - train_ids
            if not_training:
                raise LeakageError(
                    f"rule 'image-to-image sources are training images only': allowed_source_ids holds "
                    f"{len(not_training)} ids that are not training ids of dataset {key.dataset!r}: "
                    f"{examples(not_training)}"
                )
            outside_trial = sources - trial_ids
            if outside_trial:
                raise LeakageError(
                    f"rule 'image-to-image sources lie inside the trial's real subset': allowed_source_ids holds "
                    f"{len(outside_trial)} ids outside trial_subset_ids: {examples(outside_trial)}"
                )
        if key.fit_subset is not None:
            outside_trial = self._fit_ids(key) - trial_ids
            if outside_trial:
                raise LeakageError(
                    f"rule 'a trial only uses generators fit on a subset of its own real subset': {key.generator} "
                    f"was fit on subset {key.fit_subset!r}, of which {len(outside_trial)} images are not in the "
                    f"trial's real subset: {examples(outside_trial)}"
                )

    def _fit_ids(self, key: PoolKey) -> frozenset[str]:
        with self._lock:
            if key in self._fit_subset_ids:
                return self._fit_subset_ids[key]
        if not self.has_generator(key):
            raise PoolError(
                f"{key.folder_name} names a fitted generator, but the pool holds no fitted model for it, so its "
                f"fit subset cannot be checked against the trial's real subset; fit it first (fit_or_load)"
            )
        ids = frozenset(self.generator_info(key)["fit_subset_ids"])
        with self._lock:
            self._fit_subset_ids[key] = ids
        return ids

    # ----- fitted generators

    def _model_path(self, key: PoolKey) -> str:
        return self._path(key.folder_name, "model")

    def has_generator(self, key: PoolKey) -> bool:
        return self._exists(f"{self._model_path(key)}/COMPLETE")

    def save_generator(self, key: PoolKey, generator: Generator, fit_info: Mapping[str, Any]) -> bool:
        """Stores a fitted generator and its fit record (JSON: dataset, fit subset identity and ids, seed,
        settings, fit time). Returns False, storing nothing, when a model for the key is already stored."""
        if key.fit_subset is None:
            raise PoolError(f"{key.folder_name} has no fit_subset: only fitted generators are saved in the pool")
        if "fit_subset_ids" not in fit_info:
            raise PoolError("fit_info must hold 'fit_subset_ids', the ids of the real images the generator was fit on")
        if fit_info.get("dataset", key.dataset) != key.dataset:
            raise PoolError(f"fit_info names dataset {fit_info['dataset']!r}, but the key's dataset is {key.dataset!r}")
        fit_subset_ids = check_ids(fit_info["fit_subset_ids"], "fit_info['fit_subset_ids']")
        self.check_fit_subset(key, fit_subset_ids)
        record = {**fit_info, **key.to_dict(), "fit_subset_ids": sorted(fit_subset_ids), "saved_at": time.time()}
        try:
            record_bytes = json.dumps(record, indent=1).encode("utf-8")
        except TypeError as error:
            raise PoolError(f"fit_info must hold only JSON values (str, numbers, lists, dicts): {error}") from error
        if self.has_generator(key):
            return False
        model = self._model_path(key)
        if self._is_local:
            temporary = self._path(key.folder_name, f"{TEMPORARY_PREFIX}model-{uuid.uuid4().hex}")
            self._filesystem.create_dir(temporary, recursive=True)
            generator.save(Path(temporary))
            with self._filesystem.open_output_stream(f"{temporary}/fit_info.json") as stream:
                stream.write(record_bytes)
            with self._filesystem.open_output_stream(f"{temporary}/COMPLETE") as stream:
                stream.write(b"")
            try:
                self._filesystem.move(temporary, model)
            except OSError:
                # Another process stored its model first; theirs stays, so every replica loads the same one.
                self._filesystem.delete_dir(temporary)
                return False
            return True
        with tempfile.TemporaryDirectory() as local_folder:
            generator.save(Path(local_folder))
            pyarrow.fs.copy_files(
                local_folder, model, source_filesystem=pyarrow.fs.LocalFileSystem(), destination_filesystem=self._filesystem
            )
        self._write(f"{model}/fit_info.json", record_bytes)
        self._write(f"{model}/COMPLETE", b"")
        return True

    def load_generator(self, key: PoolKey, generator: Generator) -> None:
        """Restores a fitted generator stored by save_generator (the generator must read its files in load())."""
        if not self.has_generator(key):
            raise PoolError(f"the pool {self.root} holds no fitted model for {key.folder_name}")
        model = self._model_path(key)
        if self._is_local:
            generator.load(Path(model))
            return
        with tempfile.TemporaryDirectory() as local_folder:
            pyarrow.fs.copy_files(
                model, local_folder, source_filesystem=self._filesystem, destination_filesystem=pyarrow.fs.LocalFileSystem()
            )
            generator.load(Path(local_folder))

    def generator_info(self, key: PoolKey) -> dict[str, Any]:
        """The fit record of a stored fitted generator."""
        if not self.has_generator(key):
            raise PoolError(f"the pool {self.root} holds no fitted model for {key.folder_name}")
        return json.loads(self._read_bytes(f"{self._model_path(key)}/fit_info.json"))

    # ----- index

    def refresh(self, key: PoolKey | None = None) -> None:
        """Brings the index up to date with the manifests in storage (all keys, or one key's folder)."""
        with self._lock:
            folders = [key.folder_name] if key is not None else self._key_folders()
            found: set[str] = set()
            for folder in folders:
                for info in self._list(self._path(folder, "manifests")):
                    if info.base_name.endswith(".json") and not info.base_name.startswith(TEMPORARY_PREFIX):
                        found.add(info.path)
            touched = set(folders)
            for path in [path for path, manifest in self._manifests.items() if manifest.folder in touched]:
                if path not in found:
                    del self._manifests[path]
            for path in sorted(found - self._manifests.keys()):
                manifest = self._parse_manifest(path)
                if manifest is not None:
                    self._manifests[path] = manifest
            if key is None:
                self._index.clear()
                touched = {manifest.folder for manifest in self._manifests.values()}
            self._rebuild(touched)
            self._loaded = True

    def _ensure_loaded(self) -> None:
        with self._lock:
            if not self._loaded:
                self.refresh()

    def _parse_manifest(self, path: str) -> _Manifest | None:
        folder = path[len(self._base) + 1 :].split("/", 1)[0]
        try:
            payload = json.loads(self._read_bytes(path))
            key = PoolKey.from_dict(payload["key"])
            records = tuple(SyntheticRecord(**record) for record in payload["records"])
            manifest = _Manifest(
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
        class_index = check_class_index(class_index)
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

    def missing_slots(
        self, key: PoolKey, class_index: int, count: int, allowed_source_ids: Sequence[str] | None = None
    ) -> list[SlotKey]:
        """The canonical slots among the first `count` that the pool does not hold yet."""
        class_index = check_class_index(class_index)
        slots = canonical_slots(count, allowed_source_ids)
        self._ensure_loaded()
        self._check_kind(key, allowed_source_ids is not None)
        with self._lock:
            present = self._index.get(key, {}).get(class_index, {})
            return [slot for slot in slots if slot not in present]

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
        dataset = self._dataset(key.dataset)
        if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 4:
            described = f"{images.dtype} {images.shape}" if isinstance(images, np.ndarray) else type(images).__name__
            raise PoolError(f"images must be a uint8 array [N, C, H, W], got {described}")
        if not len(slots) == len(seeds) == len(images):
            raise PoolError(f"slots, seeds and images must have one length, got {len(slots)}, {len(seeds)}, {len(images)}")
        if tuple(images.shape[1:]) != dataset.image_shape:
            raise PoolError(
                f"images have shape [C, H, W] = {list(images.shape[1:])}, but dataset {key.dataset!r} is registered "
                f"with {list(dataset.image_shape)}"
            )
        if len(set(slots)) != len(slots):
            raise PoolError(f"slots must not repeat within one batch, got {len(slots) - len(set(slots))} repeats")
        kinds = {source_id is not None for source_id, _ in slots}
        if len(kinds) > 1:
            raise PoolError("a batch mixes slots with and without source ids; one generator is either kind, not both")
        for (source_id, slot), seed in zip(slots, seeds):
            if int(seed) != derive_seed(key, class_index, source_id, slot):
                raise PoolError(
                    f"seed {seed} of slot {(source_id, slot)} is not derive_seed(key, {class_index}, {source_id!r}, "
                    f"{slot}); pool images must be reproducible from their slot"
                )
        sources = {source_id for source_id, _ in slots if source_id is not None}
        not_training = sources - dataset.train_ids
        if not_training:
            raise LeakageError(
                f"rule 'image-to-image sources are training images only': the batch has sources that are not "
                f"training ids of dataset {key.dataset!r}: {examples(not_training)}"
            )
        self._ensure_loaded()
        if slots:
            self._check_kind(key, bool(sources))
        with self._lock:
            present = self._index.get(key, {}).get(class_index, {})
            new = [position for position, slot in enumerate(slots) if slot not in present]
        if new:
            self._write_batch(key, class_index, [slots[i] for i in new], [int(seeds[i]) for i in new], images[new], settings)
        with self._lock:
            stored = self._index[key][class_index] if slots else {}
            return [stored[slot] for slot in slots]

    def _write_batch(
        self,
        key: PoolKey,
        class_index: int,
        slots: list[SlotKey],
        seeds: list[int],
        images: np.ndarray,
        settings: Mapping[str, Any] | None,
    ) -> None:
        batch_id = uuid.uuid4().hex
        shard = f"{batch_id}.npy"
        created_at = time.time()
        buffer = io.BytesIO()
        np.save(buffer, np.ascontiguousarray(images), allow_pickle=False)
        # The shard goes first: once the manifest is visible, every image it names is complete.
        self._write(self._path(key.folder_name, "shards", shard), buffer.getvalue())
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
        path = self._path(key.folder_name, "manifests", f"{batch_id}.json")
        self._write(path, manifest_bytes)
        manifest = _Manifest(path, key.folder_name, batch_id, created_at, key, class_index, shard, records)
        with self._lock:
            self._manifests[path] = manifest
            self._rebuild({key.folder_name})

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
        class_index = check_class_index(class_index)
        self.check_request(key, trial_subset_ids, allowed_source_ids)
        slots = canonical_slots(count, allowed_source_ids)
        missing = self.missing_slots(key, class_index, len(slots), allowed_source_ids)
        if missing:
            raise PoolError(
                f"{len(missing)} of the {len(slots)} requested images of {key.folder_name} class {class_index} are not "
                f"in the pool yet (first missing slots: {missing[:3]}); generate them through the pool actor's request()"
            )
        with self._lock:
            present = self._index[key][class_index] if slots else {}
            chosen = [present[slot] for slot in slots]
        return self.images_of(key, chosen), chosen

    def images_of(self, key: PoolKey, records: Sequence[SyntheticRecord]) -> np.ndarray:
        """The stored pixels of `records` of one key, uint8 [len(records), C, H, W]. No leakage check: for
        looking at the pool; trials read through read() or the pool actor."""
        foreign = [record.image_id for record in records if record.key != key]
        if foreign:
            raise PoolError(f"records of other keys than {key.folder_name} were given: {examples(foreign)}")
        images = np.empty((len(records), *self._dataset(key.dataset).image_shape), dtype=np.uint8)
        by_shard: dict[str, list[int]] = {}
        for index, record in enumerate(records):
            by_shard.setdefault(record.shard, []).append(index)
        for shard, indices in by_shard.items():
            stored = self._load_shard(key, shard)
            images[indices] = stored[[records[index].position for index in indices]]
        return images

    def _load_shard(self, key: PoolKey, shard: str) -> np.ndarray:
        path = self._path(key.folder_name, "shards", shard)
        cached = self._shards.get(path)
        if cached is not None:
            return cached
        try:
            array = np.load(io.BytesIO(self._read_bytes(path)), allow_pickle=False)
        except FileNotFoundError:
            raise PoolError(
                f"shard {path} named by a manifest is gone (removed by another process?); call refresh() and retry"
            ) from None
        self._shards.put(path, array)
        return array

    # ----- reports and maintenance

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

    def remove(self, generator: str, settings_hash: str | None = None) -> int:
        """Deletes a generator's images and fitted models (one settings hash, or all); returns the number of
        images removed. Manifests go first, so no reader ever sees a record whose shard is gone."""
        check_name(generator, "generator")
        self.refresh()
        prefix = f"{generator}--" if settings_hash is None else f"{generator}--{settings_hash}--"
        folders = [folder for folder in self._key_folders() if folder.startswith(prefix)]
        with self._lock:
            removed = sum(
                len(records)
                for key, per_class in self._index.items()
                if key.folder_name in folders
                for records in per_class.values()
            )
        for folder in folders:
            for info in self._list(self._path(folder, "manifests")):
                self._filesystem.delete_file(info.path)
            self._filesystem.delete_dir(self._path(folder))
        with self._lock:
            for path in [path for path, manifest in self._manifests.items() if manifest.folder in folders]:
                del self._manifests[path]
            self._rebuild(set(folders))
            for key in [key for key in self._fit_subset_ids if key.folder_name in folders]:
                del self._fit_subset_ids[key]
            self._created_folders = {path for path in self._created_folders
                                     if not any(path.startswith(self._path(folder)) for folder in folders)}
        self._shards.clear()
        return removed

    def clean_orphans(self, older_than_s: float = 3600.0) -> int:
        """Deletes temporary files and folders and shards no manifest names, if older than `older_than_s`
        (younger ones may belong to a write in progress); returns how many were deleted."""
        self.refresh()
        cutoff = time.time() - older_than_s
        with self._lock:
            referenced = {self._path(manifest.folder, "shards", manifest.shard) for manifest in self._manifests.values()}
        deleted = 0
        candidates: list[pyarrow.fs.FileInfo] = list(self._list(self._path("datasets")))
        for folder in self._key_folders():
            candidates += self._list(self._path(folder))
            candidates += self._list(self._path(folder, "shards"))
            candidates += self._list(self._path(folder, "manifests"))
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
                self._filesystem.delete_dir(info.path)
            else:
                self._filesystem.delete_file(info.path)
            deleted += 1
        return deleted
