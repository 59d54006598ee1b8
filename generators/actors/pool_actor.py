"""The one Ray actor in front of a pool root: serves trials' requests and has generator actors make each missing
image once, however many trials ask for it at the same time."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import ray

from generators.actors.generator_actor import POOL_NAMESPACE, find_generator_actors, generator_actor_name
from generators.errors import GeneratorError, PoolError
from generators.image_api.settings import ImageApiSettings
from generators.pool import CorruptBatchError, PoolKey, SyntheticPool, open_pool_root
from generators.pool.api_spend import Reservation
from generators.pool.keys import SlotKey, check_class_index, check_count, derive_seed, examples
from spaces import GENERATORS

# Requests mostly wait on locks and generator actors; many may be in flight at once.
POOL_ACTOR_CONCURRENCY = 256
# Images per generate call sent to one replica; image API generators get one API call per generate call instead.
GENERATION_BATCH_SIZE = 32
# Bounds on waits for a generator actor: describing itself is instant once it runs (its start may import torch
# and diffusers), and one batch of generation is seconds to minutes on a CPU.
GENERATOR_DESCRIBE_TIMEOUT_S = 300.0
GENERATION_BATCH_TIMEOUT_S = 3600.0
# A request that meets a corrupt batch sets it aside and makes its images again, one batch per try, this many tries
# in all: a batch corrupt again right after it was written points at the storage, reported, not retried forever.
CORRUPT_BATCH_ATTEMPTS = 8

logger = logging.getLogger(__name__)


def pool_actor_name(root: str) -> str:
    """The Ray name of the pool actor for a root; every spelling of one local folder gives one name."""
    canonical_root = open_pool_root(root)[0]
    return "synthetic-pool-" + hashlib.sha256(canonical_root.encode("utf-8")).hexdigest()[:12]


@dataclass(frozen=True)
class _Generators:
    """The replicas that make one key's missing images, found by name, and what every image they make records."""

    actors: tuple[ray.actor.ActorHandle, ...]
    image_to_image: bool
    settings: dict[str, Any]
    # Set for a generator that pays an image API per image: it is asked one API call at a time.
    api: ImageApiSettings | None = None

    @property
    def parallel_batches(self) -> int:
        return len(self.actors) * (self.api.concurrent_calls if self.api is not None else 1)


class SyntheticPoolActor:
    """Async actor around a SyntheticPool. Its state is a cache of storage; generator actors are found by name
    (generator_actor_name) whenever images are missing, so a restarted pool actor finds them again."""

    def __init__(self, root: str) -> None:
        self._pool = SyntheticPool(root)
        self._locks: dict[tuple[PoolKey, int], asyncio.Lock] = {}

    async def register_dataset(self, name: str, train_ids: Sequence[str], image_shape: Sequence[int]) -> None:
        """SyntheticPool.register_dataset, run where the pool lives."""
        await asyncio.to_thread(self._pool.register_dataset, name, train_ids, image_shape=image_shape)

    async def _generators_of(self, key: PoolKey) -> _Generators:
        # Looked up by name for every generation, not kept: this actor outlives sweeps, and the replicas of the
        # sweep that asked last may be gone (they die with their driver) while the next sweep's have the names.
        actors = await asyncio.to_thread(find_generator_actors, key)
        if not actors:
            raise PoolError(
                f"images of {key.folder_name} are missing and no generator actor named "
                f"{generator_actor_name(key, 0)!r} is running; the sweep's driver starts them before trials "
                "(search.synthetic.preparation.prepare_generators)"
            )
        description = await asyncio.wait_for(actors[0].describe.remote(), GENERATOR_DESCRIBE_TIMEOUT_S)
        model = GENERATORS.entry(description["generator"]).settings
        api = model.model_validate(description["settings"]) if issubclass(model, ImageApiSettings) else None
        return _Generators(tuple(actors), description["image_to_image"], description["settings"], api)

    async def set_api_spend_cap(self, cap_usd: float) -> None:
        """The most the pool may have spent on image APIs in total (the sweep's --max-api-spend-usd)."""
        await asyncio.to_thread(self._pool.spend.set_cap, cap_usd)

    async def request(
        self,
        key: PoolKey,
        class_index: int,
        count: int,
        trial_subset_ids: list[str],
        allowed_source_ids: list[str] | None = None,
        sources: Mapping[str, np.ndarray] | None = None,
    ) -> tuple[np.ndarray, list[dict[str, Any]]]:
        """The first `count` canonical images of (key, class) a trial with real subset `trial_subset_ids` may use,
        and their records as dicts. Image-to-image: `allowed_source_ids` is the trial's real subset of the class
        and `sources` maps those ids to uint8 [C, H, W] images. Missing images are generated once, then stored.

        A request whose trial the scheduler or the time budget stopped meanwhile still finishes its generation:
        the images are canonical, so they serve every later trial that asks for as many, and each batch is bounded
        by GENERATION_BATCH_TIMEOUT_S. The driver makes the largest demand of noise generators before trials
        start, so in a sweep this is left to image-to-image generators, whose images are cheap per source."""
        class_index = check_class_index(class_index)
        count = check_count(count)
        admitted = await asyncio.to_thread(self._pool.check_request, key, trial_subset_ids, allowed_source_ids)
        lock = self._locks.setdefault((key, class_index), asyncio.Lock())
        for attempt in range(CORRUPT_BATCH_ATTEMPTS):
            async with lock:
                missing = await asyncio.to_thread(self._missing_slots, key, class_index, count, allowed_source_ids)
                if missing:
                    await self._generate(key, class_index, missing, sources)
            try:
                images, records = await asyncio.to_thread(self._pool.read_admitted, admitted, class_index, count)
            except CorruptBatchError as error:
                if attempt + 1 == CORRUPT_BATCH_ATTEMPTS:
                    raise
                # Never served: set aside, so its slots are missing and made again (same seeds) on the next turn.
                logger.warning("%s", error)
                await asyncio.to_thread(self._pool.set_aside, error.manifest_path)
                continue
            return images, [record.to_dict() for record in records]
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def make(self, key: PoolKey, class_index: int, count: int) -> int:
        """Generates the missing images among the first `count` of a noise generator's (key, class), returning
        how many were made; nothing is read back. The driver uses it to fill the pool before trials start."""
        class_index = check_class_index(class_index)
        async with self._locks.setdefault((key, class_index), asyncio.Lock()):
            missing = await asyncio.to_thread(self._missing_slots, key, class_index, check_count(count), None)
            if missing:
                await self._generate(key, class_index, missing, None)
        return len(missing)

    def _missing_slots(
        self, key: PoolKey, class_index: int, count: int, allowed_source_ids: Sequence[str] | None
    ) -> list[SlotKey]:
        missing = self._pool.missing_slots(key, class_index, count, allowed_source_ids)
        if missing:
            # Another process may have written them (or removed some) since this actor last looked.
            self._pool.refresh(key)
            missing = self._pool.missing_slots(key, class_index, count, allowed_source_ids)
        return missing

    async def _generate(
        self, key: PoolKey, class_index: int, missing: list[SlotKey], sources: Mapping[str, np.ndarray] | None
    ) -> None:
        generators = await self._generators_of(key)
        if generators.image_to_image:
            self._check_sources(key, missing, sources or {})
        reservation = None
        if generators.api is not None:
            # The whole request is held against the cap before anything is sent: a trial the budget cannot pay for
            # in full spends nothing.
            reservation = self._pool.spend.reserve(key, class_index, len(missing), generators.api.price_per_image)
        batches = _batches(missing, generators.api)
        outcomes = []
        try:
            launched = []
            for batch_number, batch in enumerate(batches):
                replica = generators.actors[batch_number % len(generators.actors)]
                seeds = [derive_seed(key, class_index, source_id, slot) for source_id, slot in batch]
                batch_sources = np.stack([sources[source_id] for source_id, _ in batch]) if generators.image_to_image else None
                reference = replica.generate.remote(class_index, seeds, batch_sources, key=key, pool_root=self._pool.root)
                # Replicas work through their batches in turn, so a later batch's wait starts with its turn.
                turn = batch_number // generators.parallel_batches + 1
                launched.append(self._store(key, class_index, batch, seeds, reference, turn, generators, reservation))
            # Each batch is stored as soon as it arrives, whatever the others do: the batches that succeed are kept.
            outcomes = await asyncio.gather(*launched, return_exceptions=True)
        finally:
            if reservation is not None:
                self._pool.spend.release(reservation)
        errors = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
        if errors:
            raise errors[0]

    async def _store(
        self,
        key: PoolKey,
        class_index: int,
        batch: list[SlotKey],
        seeds: list[int],
        reference: ray.ObjectRef,
        turn: int,
        generators: _Generators,
        reservation: Reservation | None,
    ) -> None:
        try:
            images = await asyncio.wait_for(reference, GENERATION_BATCH_TIMEOUT_S * turn)
        except Exception as error:
            cause = getattr(error, "cause", None) or error
            if isinstance(cause, GeneratorError):
                # The generator's own message, first, as one error (not Ray's nested tracebacks) for the trial that
                # asked and the sweep's summary; what this request stored before stays stored.
                sources = sorted({source_id for source_id, _ in batch if source_id is not None})
                where = f" from source image {examples(sources)}" if sources else ""
                raise GeneratorError(f"{key.generator} could not make images of class {class_index}{where}: {cause}") from None
            raise
        if reservation is not None:
            # Recorded before it is stored: a stored image is always counted, even if the write below fails.
            await asyncio.to_thread(self._pool.spend.record, reservation, len(batch))
        await asyncio.to_thread(self._pool.add, key, class_index, batch, seeds, images, settings=generators.settings)

    def _check_sources(self, key: PoolKey, missing: list[SlotKey], sources: Mapping[str, np.ndarray]) -> None:
        needed = {source_id for source_id, _ in missing}
        absent = needed - set(sources)
        if absent:
            raise PoolError(
                f"image-to-image generator {key.generator!r} needs the source images of {len(absent)} allowed sources "
                f"that are not in `sources`: {examples(absent)}; pass sources={{source_id: uint8 [C, H, W] image}}"
            )
        for source_id in needed:
            image = sources[source_id]
            if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3:
                described = f"{image.dtype} {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
                raise PoolError(f"source image {source_id!r} must be a uint8 array [C, H, W], got {described}")

    async def generation_cost(self, folder: str) -> dict[str, float]:
        """SyntheticPool.generation_cost of a key folder, as a dict (generators.pool.generation_cost.KeyCost)."""
        return (await asyncio.to_thread(self._pool.generation_cost, folder)).to_dict()

    async def summary(self) -> list[dict[str, Any]]:
        await asyncio.to_thread(self._pool.refresh)
        return await asyncio.to_thread(self._pool.summary)

    async def refresh(self) -> None:
        await asyncio.to_thread(self._pool.refresh)


def _batches(missing: list[SlotKey], api: ImageApiSettings | None) -> list[list[SlotKey]]:
    """Generate calls: GENERATION_BATCH_SIZE slots each; for an image API, one call's slots of one source each,
    so every paid image is stored when its call returns and a failed call loses nothing else."""
    if api is None:
        return [missing[start : start + GENERATION_BATCH_SIZE] for start in range(0, len(missing), GENERATION_BATCH_SIZE)]
    by_source: dict[str | None, list[tuple[int, SlotKey]]] = {}
    for position, slot in enumerate(missing):
        by_source.setdefault(slot[0], []).append((position, slot))
    per_call = api.images_per_call
    calls = [slots[start : start + per_call] for slots in by_source.values() for start in range(0, len(slots), per_call)]
    # In canonical order of their first slot, so an interrupted request has made a prefix of it where it can.
    return [[slot for _, slot in call] for call in sorted(calls, key=lambda call: call[0][0])]


def get_synthetic_pool(root: str) -> ray.actor.ActorHandle:
    """The pool actor for `root`, created on first use: named and detached in namespace "synthaug", so every trial
    of every sweep on this Ray cluster shares it, and restarted from storage if it dies. A local root must be a
    folder every node can see (or a one-node cluster). A detached actor outlives sweeps: after changing this
    code, ray.kill it (or restart Ray) so the next sweep starts the new code."""
    canonical_root = open_pool_root(root)[0]
    return (
        ray.remote(SyntheticPoolActor)
        .options(
            name=pool_actor_name(canonical_root),
            namespace=POOL_NAMESPACE,
            get_if_exists=True,
            lifetime="detached",
            max_restarts=-1,
            # Requests are idempotent (storage decides what exists), so a call cut off by a restart is retried.
            max_task_retries=-1,
            max_concurrency=POOL_ACTOR_CONCURRENCY,
            num_cpus=0,
        )
        .remote(canonical_root)
    )
