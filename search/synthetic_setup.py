"""Before trials start: find the generators a space can use, fit or load them once, attach them to the pool."""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass
from typing import Any

from search.config import SweepConfig
from spaces import ConfigError, SearchSpace, TrialConfig
from trainables.datasets import SearchData
from trainables.replicas import fractions_by_class_index
from trainables.synthetic import (
    OversampleAugmentation,
    SyntheticSource,
    generator_fit_subset,
    pool_dataset_name,
    pool_key_for,
)

_GENERATOR_KEYS = ("synthetic.generator", "synthetic.settings.")


@dataclass(frozen=True)
class GeneratorUse:
    """One generator with one set of settings that some trial of the sweep may ask images from."""

    name: str
    settings: dict[str, Any]


def _is_generator_key(key: str) -> bool:
    return key == _GENERATOR_KEYS[0] or key.startswith(_GENERATOR_KEYS[1])


def generator_uses(space: SearchSpace) -> list[GeneratorUse]:
    """Every (generator, settings) combination a trial with synthetic images can draw from the space."""
    from generators.base import resolve_generator_settings

    if not any(key.startswith("synthetic.") for key in [*space.fixed, *space.parameters]):
        return []
    # The generator keys and every parameter their conditions hang on (synthetic.proportion, say).
    keys = [key for key in space.parameters if _is_generator_key(key)]
    pending = list(keys)
    while pending:
        for condition_key in space.parameters[pending.pop()].when or {}:
            if condition_key in space.parameters and condition_key not in keys:
                keys.append(condition_key)
                pending.append(condition_key)
    for key in keys:
        if space.parameters[key].choice is None:
            raise ConfigError(
                f"parameters[{key!r}]", space.parameters[key].kind,
                "generators are prepared (fit, loaded) before trials start, so their name, settings and what they "
                "depend on need `choice` values",
            )
    uses: dict[str, GeneratorUse] = {}
    for values in itertools.product(*(space.parameters[key].choice for key in keys)):
        sample = dict(zip(keys, values))
        if "synthetic.generator" in space.parameters and "synthetic.generator" not in space.active_values(sample):
            continue  # its condition says this sample makes no synthetic images
        synthetic = space.resolve(sample).synthetic
        try:
            settings = resolve_generator_settings(synthetic.generator, synthetic.settings)
        except ValueError as error:
            raise ConfigError("synthetic.settings", synthetic.settings, str(error), f"space {space.name!r}") from None
        uses.setdefault(f"{synthetic.generator}:{sorted(settings.items())}", GeneratorUse(synthetic.generator, settings))
    return list(uses.values())


def smallest_fractions(trials: list[TrialConfig], data: SearchData) -> dict[int, float]:
    """Per class, the smallest real fraction any trial can draw: fitted generators are fit on that subset."""
    smallest = {index: 1.0 for index in range(data.num_classes)}
    for trial in trials:
        fractions = fractions_by_class_index(trial.real_fraction, data.class_names)
        for index in smallest:
            fraction = fractions if isinstance(fractions, float) else fractions.get(index, 1.0)
            smallest[index] = min(smallest[index], fraction)
    return smallest


def pool_root_of(sweep: SweepConfig, storage_root: str) -> str:
    return sweep.pool or f"{storage_root.rstrip('/')}/synthetic_pool"


def prepare_generators(
    uses: list[GeneratorUse], trials: list[TrialConfig], data: SearchData, sweep: SweepConfig, pool_root: str
) -> SyntheticSource:
    """Fit (or load from the pool) every generator once per repeat seed and attach its actors to the pool."""
    import ray

    from generators.base import generator_class
    from generators.generator_actor import create_generator_actors, prepare_generator_actors
    from generators.pool import PoolKey
    from generators.pool_actor import GeneratorAttachment, get_synthetic_pool

    source = SyntheticSource(pool_root=pool_root, fit_fractions=smallest_fractions(trials, data))
    pool = get_synthetic_pool(pool_root)

    def attach(key: PoolKey, actors: list, image_to_image: bool) -> None:
        generators = source.generators[key] = GeneratorAttachment(tuple(actors), image_to_image)
        ray.get(pool.attach_generators.remote(key, generators.actors, image_to_image, generators.batch_size))

    # Only training ids may ever be a generator's fit data or an image-to-image source.
    train_ids = [str(image_id) for image_id in data.train.ids]
    dataset_name = pool_dataset_name(data)
    ray.get(pool.register_dataset.remote(dataset_name, train_ids, data.train.images.shape[1:]))
    seeds = [sweep.seed + repeat for repeat in range(sweep.repeats)]
    for use in uses:
        generator = generator_class(use.name)
        dependencies = {"augment": OversampleAugmentation(use.settings)} if generator.image_to_image else {}
        actors = create_generator_actors(
            sweep.generator_replicas,
            sweep.generator_resources.ray_options(),
            name=use.name, settings=use.settings, num_classes=data.num_classes, channels=data.channels,
            image_size=data.image_size, dependencies=dependencies,
        )
        config = TrialConfig.model_validate({"synthetic": {"generator": use.name, "settings": use.settings}}).synthetic
        if not generator.needs_fit:
            attach(pool_key_for(config, dataset_name, None), actors, generator.image_to_image)
            continue
        for seed in seeds:
            indices, fit_subset = generator_fit_subset(data, source.fit_fractions, seed)
            key = pool_key_for(config, dataset_name, fit_subset)
            fit_info = {
                "dataset": dataset_name, "fit_subset": fit_subset, "seed": seed,
                "fit_subset_ids": [str(image_id) for image_id in data.train.ids[indices]],
                "fractions": {data.class_names[index]: fraction for index, fraction in source.fit_fractions.items()},
            }
            started = time.perf_counter()
            print(f"Generator {use.name} ({key.settings_hash}, seed {seed}): fitting on {len(indices)} training images, "
                  "or loading the fitted model from the pool")
            prepare_generator_actors(actors, pool_root, key, data.train.images[indices], data.train.labels[indices], fit_info, seed)
            print(f"Generator {use.name} ready after {time.perf_counter() - started:.0f} s")
            attach(key, actors, generator.image_to_image)
    return source
