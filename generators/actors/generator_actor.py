"""Ray actors that each hold one generator (on a GPU where the actor got one): fit or load it through the pool,
then generate batches for the pool actor. Replicas are named after the pool key they serve, so a pool actor
that restarted finds them again by name."""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import ray
import torch

from generators.base import create_generator
from generators.errors import PoolError
from generators.pool import PoolKey, SyntheticPool, open_pool_root
from generators.pool.generation_cost import GenerationTotals, write_generation_totals
from generators.pool.storage import PoolStorage
from spaces import GeneratorSettings

logger = logging.getLogger(__name__)

# Generator actors live in the pool actor's namespace, where it looks them up by name.
POOL_NAMESPACE = "synthaug"
# A replica that dies (a lost spot node, an out-of-memory kill) comes back and its calls are retried: generation
# is deterministic from seeds and a restarted replica reloads its fit from the pool, so a retry is harmless.
GENERATOR_ACTOR_RESTARTS = 3
# A fit is the one long wait of a sweep's preparation: minutes on a CPU for the quick preset, an hour or more for a
# large model on a GPU. A day means something is stuck.
GENERATOR_FIT_TIMEOUT_S = 24 * 3600.0
# Loading a stored fit reads model files from the pool.
GENERATOR_LOAD_TIMEOUT_S = 600.0


def generator_actor_name(key: PoolKey, replica: int) -> str:
    """One replica set per generator, settings and dataset; it serves the fits of every repeat seed in turn."""
    return f"generator--{key.generator}--{key.settings_hash}--{key.dataset}--{replica}"


class FitProgressBar:
    """A generator's fit progress (Generator.fit's `progress` callback) as Ray's actor-friendly tqdm bar: in an
    actor it prints its state at most once a second, and the driver (log_to_driver) draws one bar per fit."""

    def __init__(self, description: str) -> None:
        self._description = description
        self._bar: Any = None

    def __call__(self, step: int, total: int) -> None:
        if self._bar is None:
            from ray.experimental.tqdm_ray import tqdm

            self._bar = tqdm(desc=self._description, total=total, unit="step")
        self._bar.update(step - self._bar.n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def assigned_gpus() -> float:
    """The GPUs Ray gave this task or actor (fractions included); 0 elsewhere (no Ray, or a driver, which Ray gives
    no resources)."""
    if not ray.is_initialized() or ray.get_runtime_context().worker.mode != ray.WORKER_MODE:
        return 0.0
    return float(ray.get_runtime_context().get_assigned_resources().get("GPU", 0.0))


def _device_of_this_worker() -> str:
    # Inside an actor given a GPU, Ray sets CUDA_VISIBLE_DEVICES, so "cuda" is that GPU.
    return "cuda" if ray.is_initialized() and ray.get_gpu_ids() else "cpu"


class GeneratorActor:
    """One generator replica. Used as a Ray actor through create_generator_actors; a plain instance works too."""

    def __init__(
        self,
        settings: GeneratorSettings,
        *,
        num_classes: int,
        channels: int,
        image_size: int,
        class_names: Sequence[str] | None = None,
        device: str | None = None,
    ) -> None:
        self._settings = settings
        self._device = device or _device_of_this_worker()
        self._generator = create_generator(
            settings, num_classes=num_classes, channels=channels, image_size=image_size, device=self._device,
            class_names=class_names,
        )
        self._generated_images = 0
        # Ray caps an actor's torch threads at its CPU reservation (one, or one for a 0-CPU actor); before trials
        # start, fitting and pre-generation may use every core instead (use_all_cores).
        self._reserved_threads = torch.get_num_threads()
        # A replica serves the keys of one generator for every repeat seed; it holds one fit at a time.
        self._fitted_key: PoolKey | None = None
        # Generation seconds per key, written to the pool under this instance's own name (generators.pool.generation_cost).
        self._writer = uuid.uuid4().hex
        self._generation_totals: dict[str, GenerationTotals] = {}
        self._storages: dict[str, PoolStorage] = {}

    def describe(self) -> dict[str, Any]:
        """Name, settings and their hash, kind, device, and how many images this replica generated."""
        return {
            "generator": self._settings.generator,
            "settings": self._settings.model_dump(mode="json"),
            "settings_hash": self._settings.settings_hash,
            "image_to_image": self._settings.image_to_image,
            "needs_fit": self._settings.needs_fit,
            "device": self._device,
            "ready": self._generator.is_fitted,
            "fitted_key": None if self._fitted_key is None else self._fitted_key.folder_name,
            "generated_images": self._generated_images,
        }

    def use_all_cores(self, enabled: bool, replicas: int = 1) -> None:
        """On CPU, work before trials start (fits, pre-generation) may share the machine's cores among the
        replicas; during trials a replica keeps to its reservation so trials keep theirs."""
        if self._device == "cpu":
            torch.set_num_threads(max(1, (os.cpu_count() or 1) // replicas) if enabled else self._reserved_threads)

    def fit_or_load(
        self, pool_root: str, key: PoolKey, images: np.ndarray, labels: np.ndarray, fit_info: Mapping[str, Any], seed: int
    ) -> dict[str, Any]:
        """Loads the key's fitted model from the pool, or fits on (images, labels) and stores it there, so a
        restart never refits. fit_info must hold 'fit_subset_ids' (ids of `images`, all training ids) and
        may add anything JSON (dataset name, ...). Returns {"action": "loaded" | "fitted" | "not_needed", ...}."""
        if not self._settings.needs_fit:
            return {"action": "not_needed"}
        pool = SyntheticPool(pool_root)
        # Leakage is checked before fitting, not after hours of it.
        pool.check_fit_subset(key, fit_info["fit_subset_ids"])
        stored = pool.find_generator(key, self._settings.fit_settings_hash)
        if stored is not None and stored != key:
            # Settings that differ only in sampling (img2img strength, guidance) reuse a fit instead of repeating it.
            pool.share_generator(stored, key, self._settings.model_dump(mode="json"))
        if stored is not None:
            return self.load(pool_root, key)
        started = time.time()
        progress = FitProgressBar(f"fit {key.generator} {key.settings_hash[:6]}")
        try:
            self._generator.fit(np.asarray(images), np.asarray(labels), seed=seed, progress=progress)
        finally:
            progress.close()
        record = {
            **fit_info,
            "seed": int(seed),
            "settings": self._settings.model_dump(mode="json"),
            "fit_seconds": time.time() - started,
            "fitted_at": started,
            "device": self._device,
            "fit_settings_hash": self._settings.fit_settings_hash,
            "fit_gpus": assigned_gpus(),
        }
        if not pool.save_generator(key, self._generator, record):
            # Another replica stored its fit first; using that one keeps every replica's images consistent.
            return self.load(pool_root, key)
        self._fitted_key = key
        return {"action": "fitted", **pool.generator_info(key)}

    def load(self, pool_root: str, key: PoolKey) -> dict[str, Any]:
        """Loads the key's fitted model from the pool (PoolError if it was never fitted)."""
        if not self._settings.needs_fit:
            return {"action": "not_needed"}
        pool = SyntheticPool(pool_root)
        pool.load_generator(key, self._generator)
        self._fitted_key = key
        return {"action": "loaded", **pool.generator_info(key)}

    def generate(
        self, class_index: int, seeds: Sequence[int], sources: np.ndarray | None = None, *, key: PoolKey, pool_root: str
    ) -> np.ndarray:
        """uint8 [len(seeds), C, H, W]: image i from seeds[i] (and sources[i] for image-to-image), for pool key
        `key`; a fitted generator first loads that key's fit from the pool unless it holds it already."""
        if self._settings.needs_fit and key != self._fitted_key:
            self.load(pool_root, key)
        started = time.perf_counter()
        images = self._generator.generate(class_index, list(seeds), sources)
        self._record_generation(pool_root, key, len(images), time.perf_counter() - started)
        self._generated_images += len(images)
        return images

    def _record_generation(self, pool_root: str, key: PoolKey, images: int, seconds: float) -> None:
        """Adds a batch's seconds to this replica's totals for the key in the pool; the images matter more than
        the timing, so a failed write is logged, not raised."""
        totals = self._generation_totals.setdefault(key.folder_name, GenerationTotals())
        totals.add(images, seconds, assigned_gpus())
        try:
            if pool_root not in self._storages:
                self._storages[pool_root] = PoolStorage(pool_root)
            write_generation_totals(self._storages[pool_root], key.folder_name, self._writer, totals)
        except OSError as error:
            logger.warning("could not record generation seconds of %s: %s", key.folder_name, error)


def create_generator_actors(
    count: int,
    resources: Mapping[str, Any],
    key: PoolKey,
    settings: GeneratorSettings,
    *,
    num_classes: int,
    channels: int,
    image_size: int,
    class_names: Sequence[str] | None = None,
) -> list[ray.actor.ActorHandle]:
    """`count` GeneratorActor replicas for the key's generator, each started with Ray options `resources`, e.g.
    {"num_cpus": 1, "num_gpus": 0.5, "resources": {"generator_gpu": 1}} to land on GPU nodes. They are named after
    the key (without its fit subset): an existing replica of that name is reused, not started twice."""
    remote_class = ray.remote(GeneratorActor)
    return [
        remote_class.options(
            name=generator_actor_name(key, replica),
            namespace=POOL_NAMESPACE,
            get_if_exists=True,
            max_restarts=GENERATOR_ACTOR_RESTARTS,
            max_task_retries=GENERATOR_ACTOR_RESTARTS,
            **dict(resources),
        ).remote(settings, num_classes=num_classes, channels=channels, image_size=image_size, class_names=class_names)
        for replica in range(count)
    ]


def find_generator_actors(key: PoolKey) -> list[ray.actor.ActorHandle]:
    """The replicas serving this key, looked up by name (replica 0, 1, ... until one is missing)."""
    actors = []
    while True:
        try:
            actors.append(ray.get_actor(generator_actor_name(key, len(actors)), namespace=POOL_NAMESPACE))
        except ValueError:  # no actor of that name
            return actors


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
    first = ray.get(actors[0].fit_or_load.remote(pool_root, key, images, labels, fit_info, seed), timeout=GENERATOR_FIT_TIMEOUT_S)
    ray.get([actor.load.remote(pool_root, key) for actor in actors[1:]], timeout=GENERATOR_LOAD_TIMEOUT_S)
    return first
