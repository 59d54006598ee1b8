"""Before trials start: fit (or load) every generator a space can draw, once per repeat seed, and make the largest
set of images any trial can ask of it, with the machine's cores, so trials only read the pool."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import ray
from tqdm import tqdm

from generators.actors.generator_actor import create_generator_actors, prepare_generator_actors
from generators.actors.pool_actor import GENERATION_BATCH_SIZE, GENERATION_BATCH_TIMEOUT_S, get_synthetic_pool
from generators.image_api.settings import ImageApiSettings
from generators.pool import PoolKey
from search.settings.sweep_config import SweepConfig
from search.synthetic.demand import GeneratorDemand
from spaces import GeneratorSettings
from trainables.datasets import SearchData
from trainables.synthetic_mixing import SyntheticSource, generator_fit_subset, pool_dataset_name

# Calls that do little work once an actor runs; the first may wait for the actor's process to start and import
# torch (seconds, or minutes while a cluster adds a node).
ACTOR_CALL_TIMEOUT_S = 600.0


@dataclass(frozen=True)
class PreparedGenerators:
    """What trials read from, and the generator actors, which live as long as the driver holds them."""

    source: SyntheticSource
    actors: tuple[ray.actor.ActorHandle, ...]


def prepare_generators(
    demands: list[GeneratorDemand], fit_fractions: dict[int, float], data: SearchData, sweep: SweepConfig, pool_root: str
) -> PreparedGenerators:
    """Start each generator's actors, fit or load it once per repeat seed, and (unless the sweep says otherwise)
    generate each noise generator's largest demand. Image-to-image generators make images on demand: their
    sources are each trial's own real subset, so no two trial shapes share a demand (and an API generator would
    be paid for images no trial asks for)."""
    source = SyntheticSource(pool_root=pool_root, fit_fractions=fit_fractions)
    pool = get_synthetic_pool(pool_root)
    # Only training ids may ever be a generator's fit data or an image-to-image source.
    train_ids = [str(image_id) for image_id in data.train.ids]
    ray.get(
        pool.register_dataset.remote(pool_dataset_name(data), train_ids, data.train.images.shape[1:]),
        timeout=ACTOR_CALL_TIMEOUT_S,
    )
    if any(isinstance(demand.settings, ImageApiSettings) for demand in demands):
        ray.get(pool.set_api_spend_cap.remote(sweep.max_api_spend_usd), timeout=ACTOR_CALL_TIMEOUT_S)
    seeds = [sweep.seed + repeat for repeat in range(sweep.repeats)]
    actors: list[ray.actor.ActorHandle] = []
    for demand in demands:
        settings = demand.settings
        options = sweep.generator_resources.ray_options()
        if isinstance(settings, ImageApiSettings):
            # Its calls wait on the network: one replica runs this many generate calls (one API call each) at once.
            options["max_concurrency"] = settings.concurrent_calls
        replicas = create_generator_actors(
            sweep.generator_replicas, options, source.pool_key(settings, data, seeds[0]),
            settings, num_classes=data.num_classes, channels=data.channels, image_size=data.image_size,
            class_names=data.class_names,
        )
        actors += replicas
        # No trial runs yet, so the replicas may share every core; they give them back before trials start.
        ray.get([replica.use_all_cores.remote(True, len(replicas)) for replica in replicas], timeout=ACTOR_CALL_TIMEOUT_S)
        for seed in seeds if settings.needs_fit else seeds[:1]:
            key = source.pool_key(settings, data, seed)
            if settings.needs_fit:
                _fit_or_load(replicas, pool_root, settings, key, data, fit_fractions, seed)
            if sweep.pregenerate and not settings.image_to_image:
                _generate_largest_demand(pool, key, demand.largest_count, len(replicas))
        ray.get([replica.use_all_cores.remote(False) for replica in replicas], timeout=ACTOR_CALL_TIMEOUT_S)
    return PreparedGenerators(source, tuple(actors))


def _fit_or_load(
    replicas: list[ray.actor.ActorHandle],
    pool_root: str,
    settings: GeneratorSettings,
    key: PoolKey,
    data: SearchData,
    fit_fractions: dict[int, float],
    seed: int,
) -> None:
    indices, fit_subset = generator_fit_subset(data, fit_fractions, seed)
    fit_info = {
        "dataset": key.dataset, "dataset_name": data.name, "fit_subset": fit_subset, "seed": seed,
        "fit_subset_ids": [str(image_id) for image_id in data.train.ids[indices]],
        "fractions": {data.class_names[index]: fraction for index, fraction in fit_fractions.items()},
    }
    started = time.perf_counter()
    print(f"Generator {settings.generator} ({settings.settings_hash}, seed {seed}): fitting on {len(indices)} training "
          "images, or loading the fitted model from the pool", flush=True)
    answer = prepare_generator_actors(
        replicas, pool_root, key, data.train.images[indices], data.train.labels[indices], fit_info, seed
    )
    print(f"Generator {settings.generator} {answer['action']} in {time.perf_counter() - started:.0f} s", flush=True)


def _generate_largest_demand(pool: ray.actor.ActorHandle, key: PoolKey, largest_count: np.ndarray, replicas: int) -> None:
    """Asks the pool for each class's largest count in steps a progress bar can follow; images the pool holds
    already (an earlier sweep on the same pool) are not made again."""
    total = int(largest_count.sum())
    if total == 0:
        return
    step = GENERATION_BATCH_SIZE * replicas
    with tqdm(total=total, desc=f"{key.generator} {key.settings_hash[:6]} images", unit="image") as progress:
        for class_index, count in enumerate(largest_count.tolist()):
            made = 0
            while made < count:
                target = min(made + step, count)
                ray.get(pool.make.remote(key, class_index, target), timeout=GENERATION_BATCH_TIMEOUT_S)
                progress.update(target - made)
                made = target
