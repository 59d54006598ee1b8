"""Ray actors that each hold one generator (on a GPU where the actor got one): fit or load it through the pool,
then generate batches for the pool actor."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import ray
import torch

from generators.base import GeneratorError, create_generator, resolve_generator_settings, settings_hash
from generators.pool import PoolError, PoolKey, SyntheticPool, open_pool_root

# What a caller may set on a generator actor; anything else is more likely a typo than a wish.
ACTOR_RESOURCE_OPTIONS = frozenset({"num_cpus", "num_gpus", "resources", "memory", "accelerator_type"})
# A replica that dies (a lost spot node, an out-of-memory kill) comes back and its calls are retried: generation
# is deterministic from seeds and a restarted replica reloads its fit from the pool, so a retry is harmless.
GENERATOR_ACTOR_RESTARTS = 3


@contextlib.contextmanager
def cpu_threads_for_fitting(device: str) -> Iterator[None]:
    """Fitting runs before any trial starts, so on CPU it may use every core, whatever CPUs the actor
    reserved (Ray caps an actor without CPUs at one thread); the cap returns for generation during trials."""
    if device != "cpu":
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _device_of_this_worker() -> str:
    # Inside an actor given a GPU, Ray sets CUDA_VISIBLE_DEVICES, so "cuda" is that GPU.
    return "cuda" if ray.is_initialized() and ray.get_gpu_ids() else "cpu"


class GeneratorActor:
    """One generator replica. Used as a Ray actor through create_generator_actors; a plain instance works too."""

    def __init__(
        self,
        name: str,
        *,
        settings: Mapping[str, Any],
        num_classes: int,
        channels: int,
        image_size: int,
        dependencies: Mapping[str, Any] | None = None,
        device: str | None = None,
    ) -> None:
        self._name = name
        self._settings = resolve_generator_settings(name, settings)
        self._settings_hash = settings_hash(name, settings)
        self._device = device or _device_of_this_worker()
        self._generator = create_generator(
            name,
            settings=settings,
            num_classes=num_classes,
            channels=channels,
            image_size=image_size,
            device=self._device,
            **dict(dependencies or {}),
        )
        self._generated_images = 0
        # A replica may serve several keys of one generator (one fit per repeat seed); it holds one fit at a time.
        self._fitted_key: PoolKey | None = None

    def describe(self) -> dict[str, Any]:
        """Name, resolved settings and their hash, kind, device, and how many images this replica generated."""
        generator_class = type(self._generator)
        return {
            "generator": self._name,
            "settings": self._settings,
            "settings_hash": self._settings_hash,
            "image_to_image": bool(generator_class.image_to_image),
            "needs_fit": bool(generator_class.needs_fit),
            "device": self._device,
            "ready": self._generator.is_fitted,
            "fitted_key": None if self._fitted_key is None else self._fitted_key.folder_name,
            "generated_images": self._generated_images,
        }

    def _check_key(self, key: PoolKey) -> None:
        if key.generator != self._name or key.settings_hash != self._settings_hash:
            raise PoolError(
                f"pool key {key.folder_name} does not describe this actor's generator {self._name!r} with settings "
                f"hash {self._settings_hash!r}; build the key from the same name and settings"
            )
        needs_fit = type(self._generator).needs_fit
        if needs_fit and key.fit_subset is None:
            raise PoolError(f"generator {self._name!r} is fitted, so its pool key needs fit_subset (the fit subset identity)")
        if not needs_fit and key.fit_subset is not None:
            raise PoolError(f"generator {self._name!r} needs no fit, so its pool key must have fit_subset=None")

    def fit_or_load(
        self,
        pool_root: str,
        key: PoolKey,
        images: np.ndarray,
        labels: np.ndarray,
        fit_info: Mapping[str, Any],
        seed: int,
    ) -> dict[str, Any]:
        """Loads the key's fitted model from the pool, or fits on (images, labels) and stores it there, so a
        restart never refits. fit_info must hold 'fit_subset_ids' (ids of `images`, all training ids) and
        may add anything JSON (dataset name, ...). Returns {"action": "loaded" | "fitted" | "not_needed", ...}."""
        self._check_key(key)
        if not type(self._generator).needs_fit:
            return {"action": "not_needed"}
        pool = SyntheticPool(pool_root)
        fit_subset_ids = fit_info.get("fit_subset_ids")
        if fit_subset_ids is None or len(fit_subset_ids) != len(images) or len(images) != len(labels):
            raise PoolError(
                "fit_info['fit_subset_ids'] must name each fit image: got "
                f"{None if fit_subset_ids is None else len(fit_subset_ids)} ids, {len(images)} images, {len(labels)} labels"
            )
        # Leakage is checked before fitting, not after hours of it.
        pool.check_fit_subset(key, fit_subset_ids)
        if pool.has_generator(key):
            return self.load(pool_root, key)
        started = time.time()
        with cpu_threads_for_fitting(self._device):
            self._generator.fit(np.asarray(images), np.asarray(labels), seed=seed)
        fit_seconds = time.time() - started
        record = {
            **fit_info,
            "seed": int(seed),
            "settings": self._settings,
            "fit_seconds": fit_seconds,
            "fitted_at": started,
            "device": self._device,
        }
        if not pool.save_generator(key, self._generator, record):
            # Another replica stored its fit first; using that one keeps every replica's images consistent.
            return self.load(pool_root, key)
        self._fitted_key = key
        return {"action": "fitted", **pool.generator_info(key)}

    def load(self, pool_root: str, key: PoolKey) -> dict[str, Any]:
        """Loads the key's fitted model from the pool (PoolError if it was never fitted)."""
        self._check_key(key)
        if not type(self._generator).needs_fit:
            return {"action": "not_needed"}
        pool = SyntheticPool(pool_root)
        pool.load_generator(key, self._generator)
        self._fitted_key = key
        return {"action": "loaded", **pool.generator_info(key)}

    def generate(
        self,
        class_index: int,
        seeds: Sequence[int],
        sources: np.ndarray | None = None,
        *,
        key: PoolKey | None = None,
        pool_root: str | None = None,
    ) -> np.ndarray:
        """uint8 [len(seeds), C, H, W]: image i from seeds[i] (and sources[i] for image-to-image). Given the
        `key` the images are for, a fitted generator first loads that key's fit from `pool_root` unless it holds it."""
        if key is not None:
            self._check_key(key)
            if type(self._generator).needs_fit and key != self._fitted_key:
                if pool_root is None:
                    raise GeneratorError(
                        f"generator {self._name!r} holds the fit of {self._fitted_key and self._fitted_key.folder_name}, "
                        f"not of {key.folder_name}; pass pool_root so it can load that fit"
                    )
                self.load(pool_root, key)
        if not self._generator.is_fitted:
            raise GeneratorError(
                f"generator {self._name!r} needs a fit: call fit_or_load (or load) on this actor before generate"
            )
        images = self._generator.generate(class_index, list(seeds), sources)
        self._generated_images += len(images)
        return images

    def generated_count(self) -> int:
        """Images this replica generated since it started."""
        return self._generated_images


def create_generator_actors(
    count: int,
    resources: Mapping[str, Any],
    *,
    name: str,
    settings: Mapping[str, Any],
    num_classes: int,
    channels: int,
    image_size: int,
    dependencies: Mapping[str, Any] | None = None,
) -> list[ray.actor.ActorHandle]:
    """`count` GeneratorActor replicas, each started with Ray options `resources`, e.g. {"num_cpus": 1,
    "num_gpus": 0.5, "resources": {"generator_gpu": 1}} to land on GPU nodes. `dependencies` (passed on to
    create_generator) travel by pickle, so they must be picklable objects, not lambdas of local state."""
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise PoolError(f"generator actor count must be a positive integer, got {count!r}")
    unknown = set(resources) - ACTOR_RESOURCE_OPTIONS
    if unknown:
        raise PoolError(f"unknown generator actor resource options {sorted(unknown)}; allowed: {sorted(ACTOR_RESOURCE_OPTIONS)}")
    # Fail in the caller, with the registry's message, rather than in `count` remote constructors.
    resolve_generator_settings(name, settings)
    remote_class = ray.remote(GeneratorActor).options(
        max_restarts=GENERATOR_ACTOR_RESTARTS, max_task_retries=GENERATOR_ACTOR_RESTARTS, **dict(resources)
    )
    return [
        remote_class.remote(
            name,
            settings=settings,
            num_classes=num_classes,
            channels=channels,
            image_size=image_size,
            dependencies=dependencies,
        )
        for _ in range(count)
    ]


def prepare_generator_actors(
    actors: Sequence[ray.actor.ActorHandle],
    pool_root: str,
    key: PoolKey,
    images: np.ndarray,
    labels: np.ndarray,
    fit_info: Mapping[str, Any],
    seed: int,
) -> dict[str, Any]:
    """Fits (or loads) on the first replica, then loads that model into the others, so a generator is fit once
    however many replicas serve it. Returns the first replica's fit_or_load answer."""
    if not actors:
        raise PoolError("prepare_generator_actors needs at least one generator actor")
    # Actors run in other folders (or machines); a relative path must be resolved here, where it was meant.
    pool_root = open_pool_root(pool_root)[0]
    first = ray.get(actors[0].fit_or_load.remote(pool_root, key, images, labels, fit_info, seed))
    ray.get([actor.load.remote(pool_root, key) for actor in actors[1:]])
    return first
