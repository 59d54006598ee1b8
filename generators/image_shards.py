"""The pixels of pool images: one `.npy` shard per written batch under `<key folder>/shards/`, read through a cache
bounded in bytes."""

from __future__ import annotations

import io
import threading
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np

from generators.errors import PoolError
from generators.pool_keys import PoolKey, SyntheticRecord, examples
from generators.pool_storage import PoolStorage


def encode_shard(images: np.ndarray) -> bytes:
    """The bytes of one shard: uint8 [N, C, H, W] images as .npy, never pickled."""
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(images), allow_pickle=False)
    return buffer.getvalue()


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
    """Reads the stored pixels of records, one shard read per shard however many of its images are asked for."""

    def __init__(self, storage: PoolStorage, cache_bytes: int) -> None:
        self._storage = storage
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
            stored = self._load(key, shard)
            images[indices] = stored[[records[index].position for index in indices]]
        return images

    def _load(self, key: PoolKey, shard: str) -> np.ndarray:
        path = self._storage.path(key.folder_name, "shards", shard)
        cached = self.cache.get(path)
        if cached is not None:
            return cached
        try:
            array = np.load(io.BytesIO(self._storage.read_bytes(path)), allow_pickle=False)
        except FileNotFoundError:
            raise PoolError(
                f"shard {path} named by a manifest is gone (removed by another process?); call refresh() and retry"
            ) from None
        self.cache.put(path, array)
        return array
