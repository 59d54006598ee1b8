"""The datasets registered in a pool: which image ids are training images and the image shape, stored as
`datasets/<dataset>.json`."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

from generators.errors import PoolError
from generators.pool.keys import check_ids, check_name
from generators.pool.storage import TEMPORARY_PREFIX, PoolStorage


@dataclass(frozen=True)
class RegisteredDataset:
    train_ids: frozenset[str]
    image_shape: tuple[int, int, int]


class DatasetRegistry:
    """Registered datasets, read from storage once per process and immutable after registration."""

    def __init__(self, storage: PoolStorage) -> None:
        self._storage = storage
        self._datasets: dict[str, RegisteredDataset] = {}
        self._lock = threading.Lock()

    def register(self, name: str, train_ids: Sequence[str], *, image_shape: Sequence[int]) -> None:
        """Records a dataset's training ids and image shape [C, H, W]. Registering the same again is a no-op;
        registering different ids or a different shape under a taken name is refused."""
        check_name(name, "dataset name")
        ids = frozenset(check_ids(train_ids, "train_ids"))
        shape = tuple(int(size) for size in image_shape) if isinstance(image_shape, Sequence) else ()
        if len(shape) != 3 or min(shape) < 1:
            raise PoolError(f"image_shape must be (channels, height, width) of positive sizes, got {image_shape!r}")
        try:
            existing = self.get(name)
        except PoolError:
            existing = None
        if existing is not None:
            if existing.train_ids == ids and existing.image_shape == shape:
                return
            raise PoolError(
                f"dataset {name!r} is already registered in pool {self._storage.root} with {len(existing.train_ids)} "
                f"training ids and image shape {list(existing.image_shape)}, not these {len(ids)} ids and shape "
                f"{list(shape)}; give each dataset and preprocessing its own name (e.g. '{name}-{shape[1]}px-{shape[0]}ch')"
            )
        payload = {"name": name, "image_shape": list(shape), "train_ids": sorted(ids), "registered_at": time.time()}
        self._storage.write(self._storage.path("datasets", f"{name}.json"), json.dumps(payload).encode("utf-8"))
        with self._lock:
            self._datasets[name] = RegisteredDataset(ids, shape)

    def get(self, name: str) -> RegisteredDataset:
        """The registered dataset `name`; PoolError naming the registered ones if it is not registered."""
        with self._lock:
            if name in self._datasets:
                return self._datasets[name]
        try:
            payload = json.loads(self._storage.read_bytes(self._storage.path("datasets", f"{name}.json")))
        except FileNotFoundError:
            registered = sorted(
                info.base_name.removesuffix(".json")
                for info in self._storage.list(self._storage.path("datasets"))
                if info.base_name.endswith(".json") and not info.base_name.startswith(TEMPORARY_PREFIX)
            )
            raise PoolError(
                f"dataset {name!r} is not registered in pool {self._storage.root}; call register_dataset(name, "
                f"train_ids, image_shape=...) first (registered: {registered})"
            ) from None
        dataset = RegisteredDataset(frozenset(payload["train_ids"]), tuple(payload["image_shape"]))
        with self._lock:
            self._datasets[name] = dataset
        return dataset
