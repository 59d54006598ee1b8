"""The one Ray actor in front of a pool root: serves trials' requests and has generator actors make each missing
image once, however many trials ask for it at the same time."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import ray

from generators.pool import PoolError, PoolKey, SyntheticPool, open_pool_root
from generators.pool_keys import SlotKey, check_class_index, check_count, derive_seed, examples

POOL_NAMESPACE = "synthaug"
# Requests mostly wait on locks and generator actors; many may be in flight at once.
POOL_ACTOR_CONCURRENCY = 256
# Images per generate call sent to one replica.
GENERATION_BATCH_SIZE = 32


def pool_actor_name(root: str) -> str:
    """The Ray name of the pool actor for a root; every spelling of one local folder gives one name."""
    canonical_root = open_pool_root(root)[0]
    return "synthetic-pool-" + hashlib.sha256(canonical_root.encode("utf-8")).hexdigest()[:12]


@dataclass(frozen=True)
class GeneratorAttachment:
    """The generator actor replicas that make one key's missing images. Trials carry it with every request, so a
    pool actor that restarted (and lost its attachments with its memory) takes it back from the next request."""

    actors: tuple[ray.actor.ActorHandle, ...]
    image_to_image: bool
    batch_size: int = GENERATION_BATCH_SIZE


@dataclass(frozen=True)
class _Attachment:
    generators: GeneratorAttachment
    # The generator's resolved settings, recorded with every image it makes.
    settings: dict[str, Any]


class SyntheticPoolActor:
    """Async actor around a SyntheticPool. Its state is a cache of storage plus the attached generator actors,
    which do not survive a restart: requests that carry a GeneratorAttachment re-attach them (it is idempotent)."""

    def __init__(self, root: str) -> None:
        self._pool = SyntheticPool(root)
        self._locks: dict[tuple[PoolKey, int], asyncio.Lock] = {}
        self._attached: dict[PoolKey, _Attachment] = {}
        self._generated_images = 0

    async def register_dataset(self, name: str, train_ids: Sequence[str], image_shape: Sequence[int]) -> None:
        """SyntheticPool.register_dataset, run where the pool lives."""
        await asyncio.to_thread(self._pool.register_dataset, name, train_ids, image_shape=image_shape)

    async def attach_generators(
        self,
        key: PoolKey,
        actor_handles: Sequence[ray.actor.ActorHandle],
        image_to_image: bool,
        batch_size: int = GENERATION_BATCH_SIZE,
    ) -> None:
        """Makes these GeneratorActor replicas generate the key's missing images, in batches of at most
        `batch_size` images spread over the replicas; replaces an earlier attachment. A fitted key must have its
        fit in the pool already; replicas load it when they hold another key's fit (one replica set may serve
        the keys of every repeat seed)."""
        if not actor_handles:
            raise PoolError(f"attach_generators for {key.folder_name} needs at least one generator actor")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise PoolError(f"batch_size must be a positive integer, got {batch_size!r}")
        if key.fit_subset is not None and not await asyncio.to_thread(self._pool.has_generator, key):
            raise PoolError(
                f"the pool holds no fitted model for {key.folder_name}; fit it first (GeneratorActor.fit_or_load), "
                f"then attach its actors"
            )
        descriptions = await asyncio.gather(*[actor.describe.remote() for actor in actor_handles])
        for description in descriptions:
            if (description["generator"], description["settings_hash"]) != (key.generator, key.settings_hash):
                raise PoolError(
                    f"a generator actor holds {description['generator']!r} with settings hash "
                    f"{description['settings_hash']!r}, not the key's {key.generator!r} / {key.settings_hash!r}"
                )
            if description["image_to_image"] != bool(image_to_image):
                raise PoolError(
                    f"image_to_image={image_to_image} but generator {key.generator!r} has "
                    f"image_to_image={description['image_to_image']}"
                )
        generators = GeneratorAttachment(tuple(actor_handles), bool(image_to_image), batch_size)
        self._attached[key] = _Attachment(generators, descriptions[0]["settings"])

    async def request(
        self,
        key: PoolKey,
        class_index: int,
        count: int,
        trial_subset_ids: list[str],
        allowed_source_ids: list[str] | None = None,
        sources: Mapping[str, np.ndarray] | None = None,
        generators: GeneratorAttachment | None = None,
    ) -> tuple[np.ndarray, list[dict[str, Any]]]:
        """The first `count` canonical images of (key, class) a trial with real subset `trial_subset_ids` may use,
        and their records as dicts. Image-to-image: `allowed_source_ids` is the trial's real subset of the class
        and `sources` maps those ids to uint8 [C, H, W] images. Missing images are generated once, then stored.
        `generators` are attached first when this actor holds none for the key (after a restart, say)."""
        class_index = check_class_index(class_index)
        count = check_count(count)
        if generators is not None and key not in self._attached:
            await self.attach_generators(key, generators.actors, generators.image_to_image, generators.batch_size)
        attachment = self._attached.get(key)
        if attachment is not None and attachment.generators.image_to_image != (allowed_source_ids is not None):
            needed = "needs allowed_source_ids" if attachment.generators.image_to_image else "takes no allowed_source_ids"
            raise PoolError(f"generator {key.generator!r} of {key.folder_name} {needed}")
        admitted = await asyncio.to_thread(self._pool.check_request, key, trial_subset_ids, allowed_source_ids)
        lock = self._locks.setdefault((key, class_index), asyncio.Lock())
        async with lock:
            missing = await asyncio.to_thread(self._missing_slots, key, class_index, count, allowed_source_ids)
            if missing:
                await self._generate(key, class_index, missing, sources)
        images, records = await asyncio.to_thread(self._pool.read_admitted, admitted, class_index, count)
        return images, [record.to_dict() for record in records]

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
        attachment = self._attached.get(key)
        if attachment is None:
            raise PoolError(
                f"{len(missing)} images of {key.folder_name} class {class_index} are missing and no generator actors "
                f"are attached for this key; call attach_generators(key, actors, image_to_image), or pass "
                f"generators=GeneratorAttachment(...) with the request"
            )
        generators = attachment.generators
        if generators.image_to_image:
            self._check_sources(key, missing, sources or {})
        batches = [missing[start : start + generators.batch_size] for start in range(0, len(missing), generators.batch_size)]
        launched = []
        for batch_number, batch in enumerate(batches):
            replica = generators.actors[batch_number % len(generators.actors)]
            seeds = [derive_seed(key, class_index, source_id, slot) for source_id, slot in batch]
            batch_sources = np.stack([sources[source_id] for source_id, _ in batch]) if generators.image_to_image else None
            reference = replica.generate.remote(class_index, seeds, batch_sources, key=key, pool_root=self._pool.root)
            launched.append((batch, seeds, reference))
        first_error: BaseException | None = None
        for batch, seeds, reference in launched:
            try:
                images = await reference
                await asyncio.to_thread(self._pool.add, key, class_index, batch, seeds, images, settings=attachment.settings)
            except Exception as error:  # noqa: BLE001 - the batches that did succeed are still stored
                first_error = first_error or error
                continue
            self._generated_images += len(batch)
        if first_error is not None:
            raise first_error

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

    async def summary(self) -> list[dict[str, Any]]:
        await asyncio.to_thread(self._pool.refresh)
        return await asyncio.to_thread(self._pool.summary)

    async def refresh(self) -> None:
        await asyncio.to_thread(self._pool.refresh)

    async def generated_count(self) -> int:
        """Images this actor had generated since it (last) started."""
        return self._generated_images


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
