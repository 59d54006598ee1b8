"""The pixels of pool images: one `.npy` shard per written batch under `<key folder>/shards/`, each checked against
the sha256 its manifest records before any of its images is served, read through a cache bounded in bytes that
holds checked arrays only."""

from __future__ import annotations

import io
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence

import numpy as np

from generators.errors import PoolError
from generators.pool.batches import CorruptBatchError, Manifest, sha256_hex
from generators.pool.keys import PoolKey, SyntheticRecord, examples
from generators.pool.storage import PoolStorage


def decode_shard(storage: PoolStorage, manifest: Manifest, data: bytes, image_shape: tuple[int, int, int]) -> np.ndarray:
    """The images of a shard's bytes, checked: its sha256 (when its manifest records one: manifests of format 1
    do not), its .npy header, and a uint8 [N, C, H, W] array that holds every position the manifest names.
    CorruptBatchError, naming the shard, otherwise."""
    path = storage.path(manifest.folder, "shards", manifest.shard)

    def corrupt(reason: str) -> CorruptBatchError:
        return CorruptBatchError(storage.root, manifest.path, path, reason)

    if manifest.shard_sha256 is not None and sha256_hex(data) != manifest.shard_sha256:
        raise corrupt(f"its {len(data)} bytes do not match the sha256 its manifest {manifest.path} records")
    try:
        array = np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, EOFError, OSError) as error:
        raise corrupt(f"not a readable .npy file: {error}") from None
    needed = max((record.position for record in manifest.records), default=-1) + 1
    if array.dtype != np.uint8 or array.ndim != 4 or tuple(array.shape[1:]) != tuple(image_shape) or len(array) < needed:
        raise corrupt(
            f"it holds {array.dtype} {list(array.shape)}, not the uint8 [{needed}, {', '.join(map(str, image_shape))}] "
            "its manifest names"
        )
    return array


class ShardCache:
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


class ShardReader:
    """Reads the stored pixels of records, one shard read per shard however many of its images are asked for.
    `manifest_of` gives the manifest that names a shard (by the shard's path), whose checksum the shard must
    match."""

    def __init__(self, storage: PoolStorage, cache_bytes: int, manifest_of: Callable[[str], Manifest | None]) -> None:
        self._storage = storage
        self._manifest_of = manifest_of
        self.cache = ShardCache(cache_bytes)

    def images_of(
        self, key: PoolKey, records: Sequence[SyntheticRecord], image_shape: tuple[int, int, int]
    ) -> np.ndarray:
        """The pixels of `records` of one key, uint8 [len(records), C, H, W]."""
        foreign = [record.image_id for record in records if record.key != key]
        if foreign:
            raise PoolError(f"records of other keys than {key.folder_name} were given: {examples(foreign)}")
        images = np.empty((len(records), *image_shape), dtype=np.uint8)
        by_shard: dict[str, list[int]] = {}
        for index, record in enumerate(records):
            by_shard.setdefault(record.shard, []).append(index)
        for shard, indices in by_shard.items():
            stored = self._load(key, shard, image_shape)
            images[indices] = stored[[records[index].position for index in indices]]
        return images

    def _load(self, key: PoolKey, shard: str, image_shape: tuple[int, int, int]) -> np.ndarray:
        path = self._storage.path(key.folder_name, "shards", shard)
        cached = self.cache.get(path)
        if cached is not None:
            return cached
        manifest = self._manifest_of(path)
        if manifest is None:
            raise PoolError(
                f"no manifest in the pool's index names shard {path} (its batch was removed or set aside since these "
                "records were read); call refresh() and read the records again"
            )
        try:
            data = self._storage.read_bytes(path)
        except FileNotFoundError:
            if not self._storage.exists(manifest.path):
                raise PoolError(
                    f"shard {path} and its manifest are gone (removed by another process?); call refresh() and retry"
                ) from None
            raise CorruptBatchError(
                self._storage.root, manifest.path, path, f"it is gone, though its manifest {manifest.path} names it"
            ) from None
        array = decode_shard(self._storage, manifest, data, image_shape)
        self.cache.put(path, array)
        return array
