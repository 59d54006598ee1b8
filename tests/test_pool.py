"""The synthetic pool: canonical nested order, one generation for concurrent requests, atomic writes, restarts,
fit-once generators, removal, URI roots, and the leakage rules, each tried and refused."""

from __future__ import annotations

import asyncio
import itertools
import json
import sys
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
import ray
from ray import cloudpickle

import spaces
from generators.actors.generator_actor import create_generator_actors, prepare_generator_actors
from generators.actors.pool_actor import GENERATION_BATCH_SIZE, SyntheticPoolActor, get_synthetic_pool, pool_actor_name
from generators.base import Generator
from generators.pool import LeakageError, PoolError, PoolKey, SyntheticPool, derive_seed
from generators.pool.leakage import LeakageRules
from spaces import GeneratorSettings

SHAPE = (1, 8, 8)
DATASET = "pooltest-8px-1ch"
TRAIN_IDS = [f"train/{index:04d}" for index in range(40)]
VALIDATION_ID = "val/0003"
NOISE = "pool_test_noise"
INVERT = "pool_test_invert"
FITTED = "pool_test_fitted"


class NoiseSettings(GeneratorSettings):
    pass


class InvertSettings(GeneratorSettings):
    image_to_image: ClassVar[bool] = True


class FittedSettings(GeneratorSettings):
    needs_fit: ClassVar[bool] = True


SETTINGS = {NOISE: NoiseSettings, INVERT: InvertSettings, FITTED: FittedSettings}


class NoiseFromSeed(Generator):
    """Image i depends only on (class, seeds[i])."""


    def generate(self, class_index: int, seeds: Sequence[int], sources: np.ndarray | None = None) -> np.ndarray:
        images = [np.random.default_rng([seed, class_index]).integers(0, 256, SHAPE, dtype=np.uint8) for seed in seeds]
        return np.stack(images) if images else np.zeros((0, *SHAPE), np.uint8)

    def fit(self, images: np.ndarray, labels: np.ndarray, *, seed: int, progress: object = None) -> None:
        raise AssertionError("a generator that needs no fit is never fit")

    def save(self, directory: Path) -> None:
        pass

    def load(self, directory: Path) -> None:
        pass


class InvertSource(Generator):
    """Image i is the inverted source i, so a returned image shows which source it came from."""


    def generate(self, class_index: int, seeds: Sequence[int], sources: np.ndarray | None = None) -> np.ndarray:
        assert sources is not None and len(sources) == len(seeds)
        return (255 - sources).astype(np.uint8)

    def fit(self, images: np.ndarray, labels: np.ndarray, *, seed: int, progress: object = None) -> None:
        raise AssertionError("a generator that needs no fit is never fit")

    def save(self, directory: Path) -> None:
        pass

    def load(self, directory: Path) -> None:
        pass


class FittedMean(Generator):
    """Learns the mean fit image; each fit also draws a random offset, so a refit gives different images."""


    def __init__(self, settings: FittedSettings, **arguments: object) -> None:
        super().__init__(settings, **arguments)
        self.state: dict[str, float] | None = None

    @property
    def is_fitted(self) -> bool:
        return self.state is not None

    def fit(self, images: np.ndarray, labels: np.ndarray, *, seed: int, progress: object = None) -> None:
        self.state = {"mean": float(images.mean()), "offset": int(np.random.default_rng().integers(0, 256))}

    def save(self, directory: Path) -> None:
        (directory / "state.json").write_text(json.dumps(self.state))

    def load(self, directory: Path) -> None:
        self.state = json.loads((directory / "state.json").read_text())

    def generate(self, class_index: int, seeds: Sequence[int], sources: np.ndarray | None = None) -> np.ndarray:
        assert self.state is not None
        value = (int(self.state["mean"]) + self.state["offset"]) % 256
        return np.stack([np.full(SHAPE, (value + seed) % 256, np.uint8) for seed in seeds])


def register_test_generators() -> None:
    # Through the module: this function travels to workers by value, and a global object would travel as a copy.
    for name, generator_class in ((NOISE, NoiseFromSeed), (INVERT, InvertSource), (FITTED, FittedMean)):
        if name not in spaces.GENERATORS:
            spaces.GENERATORS.register(name, settings=SETTINGS[name])(generator_class)


def key_for(generator: str, dataset: str = DATASET, fit_subset: str | None = None) -> PoolKey:
    return PoolKey(generator=generator, settings_hash=SETTINGS[generator]().settings_hash, dataset=dataset, fit_subset=fit_subset)


def source_images(ids: Sequence[str]) -> dict[str, np.ndarray]:
    return {image_id: np.full(SHAPE, TRAIN_IDS.index(image_id) * 3, np.uint8) for image_id in ids}


@pytest.fixture(scope="module", autouse=True)
def local_ray() -> Iterator[None]:
    """One 2-CPU Ray for the module, whose worker processes know the test generators."""
    was_running = ray.is_initialized()
    if was_running:
        ray.shutdown()
    # Workers cannot import this file by name, so the registration travels to them by value (Ray pickles
    # with its own vendored cloudpickle).
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    register_test_generators()
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={"worker_process_setup_hook": register_test_generators},
    )
    yield
    ray.shutdown()
    cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
    # Later modules see only the real generators (test_generators lists the registered names).
    for name in (NOISE, INVERT, FITTED):
        spaces.GENERATORS.unregister(name)
    if was_running:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)


# Named actors that no handle refers to are collected by Ray; a sweep's driver holds its replicas, and so does this.
_started_actors: list[ray.actor.ActorHandle] = []


def start_generator_actors(key: PoolKey, replicas: int) -> list[ray.actor.ActorHandle]:
    """Replicas named after the key, as a sweep starts them; the same key finds the same replicas again."""
    settings = SETTINGS[key.generator]()
    actors = create_generator_actors(replicas, {"num_cpus": 0}, key, settings, num_classes=2, channels=1, image_size=8)
    _started_actors.extend(actors)
    return actors


# The module shares one pool root (each test has its own dataset, hence its own keys and generator actors).
@pytest.fixture(scope="module")
def shared_root(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(tmp_path_factory.mktemp("shared") / "pool")


_dataset_numbers = itertools.count()


@pytest.fixture
def dataset(shared_root: str) -> str:
    """A dataset of its own for one test on the shared root."""
    name = f"pooltest-{next(_dataset_numbers)}"
    SyntheticPool(shared_root).register_dataset(name, TRAIN_IDS, image_shape=SHAPE)
    return name


@pytest.fixture
def pool_root(tmp_path: Path) -> str:
    """A fresh root for tests of storage alone."""
    root = str(tmp_path / "pool")
    SyntheticPool(root).register_dataset(DATASET, TRAIN_IDS, image_shape=SHAPE)
    return root


def generated_by(actors: list[ray.actor.ActorHandle]) -> list[int]:
    return [description["generated_images"] for description in ray.get([actor.describe.remote() for actor in actors])]


def stored_count(root: str, key: PoolKey, class_index: int) -> int:
    return len(SyntheticPool(root).records(key, class_index))


def test_smaller_request_is_a_prefix_of_a_larger_one_and_reruns_are_identical(shared_root: str, dataset: str) -> None:
    key = key_for(NOISE, dataset)
    start_generator_actors(key, 2)
    pool = get_synthetic_pool(shared_root)
    three, three_records = ray.get(pool.request.remote(key, 1, 3, TRAIN_IDS[:5]))
    seven, seven_records = ray.get(pool.request.remote(key, 1, 7, TRAIN_IDS[:5]))
    assert three.shape == (3, *SHAPE) and seven.shape == (7, *SHAPE)
    np.testing.assert_array_equal(seven[:3], three)
    assert [record["image_id"] for record in seven_records[:3]] == [record["image_id"] for record in three_records]
    assert [record["seed"] for record in seven_records] == [derive_seed(key, 1, None, slot) for slot in range(7)]
    assert len({record["image_id"] for record in seven_records}) == 7

    fresh_images, fresh_records = SyntheticPool(shared_root).read(key, 1, 7, trial_subset_ids=TRAIN_IDS[:5])
    np.testing.assert_array_equal(fresh_images, seven)
    assert [record.to_dict() for record in fresh_records] == seven_records


def test_concurrent_requests_for_the_same_images_generate_them_once(shared_root: str, dataset: str) -> None:
    key = key_for(NOISE, dataset)
    noise_actors = start_generator_actors(key, 2)
    pool = get_synthetic_pool(shared_root)
    # Another spelling of the same root reaches the same actor, as trials of another sweep would.
    same_pool = get_synthetic_pool(Path(shared_root).as_uri())
    wanted = 2 * GENERATION_BATCH_SIZE + 3
    answers = ray.get([handle.request.remote(key, 0, wanted, TRAIN_IDS) for handle in (pool, same_pool, pool, same_pool)])
    for images, records in answers[1:]:
        np.testing.assert_array_equal(images, answers[0][0])
        assert records == answers[0][1]
    made = generated_by(noise_actors)
    assert sum(made) == wanted and stored_count(shared_root, key, 0) == wanted
    # Three batches, spread over both replicas.
    assert all(count > 0 for count in made)


def test_a_restarted_pool_actor_serves_the_stored_images_and_finds_its_generators_by_name(
    shared_root: str, dataset: str
) -> None:
    key = key_for(NOISE, dataset)
    noise_actors = start_generator_actors(key, 2)
    pool = get_synthetic_pool(shared_root)
    before, before_records = ray.get(pool.request.remote(key, 0, 6, TRAIN_IDS))
    counts_before = generated_by(noise_actors)
    ray.kill(pool, no_restart=False)
    restarted = get_synthetic_pool(shared_root)
    after, after_records = ray.get(restarted.request.remote(key, 0, 6, TRAIN_IDS))
    np.testing.assert_array_equal(after, before)
    assert after_records == before_records
    assert generated_by(noise_actors) == counts_before and stored_count(shared_root, key, 0) == 6
    # The restarted actor finds the key's generator actors by name: only the 2 missing images are made.
    more, more_records = ray.get(restarted.request.remote(key, 0, 8, TRAIN_IDS))
    np.testing.assert_array_equal(more[:6], before)
    assert more_records[:6] == before_records
    assert sum(generated_by(noise_actors)) - sum(counts_before) == 2 and stored_count(shared_root, key, 0) == 8


def test_a_pool_actor_that_outlives_a_sweep_uses_the_next_sweeps_generator_actors(shared_root: str, dataset: str) -> None:
    key = key_for(NOISE, dataset)
    (first_sweep,) = start_generator_actors(key, 1)
    pool = get_synthetic_pool(shared_root)
    before, _ = ray.get(pool.request.remote(key, 0, 4, TRAIN_IDS))
    # A sweep's replicas die with its driver; the detached pool actor stays.
    ray.kill(first_sweep, no_restart=True)
    (next_sweep,) = start_generator_actors(key, 1)
    assert next_sweep != first_sweep
    more, _ = ray.get(pool.request.remote(key, 0, 6, TRAIN_IDS))
    np.testing.assert_array_equal(more[:4], before)
    assert generated_by([next_sweep]) == [2]


def test_crash_leftovers_are_ignored_and_cleaned(pool_root: str) -> None:
    key = key_for(NOISE)
    pool = SyntheticPool(pool_root)
    slots = pool.missing_slots(key, 0, 2)
    stored = pool.add(key, 0, slots, [derive_seed(key, 0, None, slot) for _, slot in slots], np.ones((2, *SHAPE), np.uint8))
    key_folder = Path(pool_root) / key.folder_name
    # A crash after the shard but before its manifest, and one in the middle of writing a manifest.
    np.save(key_folder / "shards" / "0123abcd.npy", np.zeros((5, *SHAPE), np.uint8))
    (key_folder / "manifests" / ".tmp-feed-0123abcd.json").write_text('{"records": [{"slot": 2')

    reopened = SyntheticPool(pool_root)
    assert reopened.records(key, 0) == stored
    assert reopened.missing_slots(key, 0, 3) == [(None, 2)]
    assert reopened.clean_orphans() == 0, "young leftovers may belong to a write in progress"
    assert reopened.clean_orphans(older_than_s=0) == 2
    assert not (key_folder / "shards" / "0123abcd.npy").exists()
    assert not (key_folder / "manifests" / ".tmp-feed-0123abcd.json").exists()
    images, _ = SyntheticPool(pool_root).read(key, 0, 2, trial_subset_ids=TRAIN_IDS)
    np.testing.assert_array_equal(images, np.ones((2, *SHAPE), np.uint8))


def test_two_writers_racing_for_a_slot_yield_one_image_the_earliest(pool_root: str) -> None:
    key = key_for(NOISE)
    first_writer, second_writer = SyntheticPool(pool_root), SyntheticPool(pool_root)
    assert first_writer.missing_slots(key, 0, 2) == second_writer.missing_slots(key, 0, 2) == [(None, 0), (None, 1)]
    seeds = [derive_seed(key, 0, None, 0), derive_seed(key, 0, None, 1)]
    first_writer.add(key, 0, [(None, 0), (None, 1)], seeds, np.full((2, *SHAPE), 1, np.uint8))
    second_writer.add(key, 0, [(None, 0), (None, 1)], seeds, np.full((2, *SHAPE), 2, np.uint8))
    assert len(list((Path(pool_root) / key.folder_name / "manifests").glob("*.json"))) == 2

    for pool in (SyntheticPool(pool_root), first_writer, second_writer):
        pool.refresh()
        assert len(pool.records(key, 0)) == 2
        images, _ = pool.read(key, 0, 2, trial_subset_ids=TRAIN_IDS)
        np.testing.assert_array_equal(images, np.full((2, *SHAPE), 1, np.uint8))


def test_a_fitted_generator_is_fit_once_and_loaded_by_other_replicas(pool_root: str) -> None:
    fit_ids = TRAIN_IDS[:6]
    key = key_for(FITTED, fit_subset="subset-a")
    fitted_actors = start_generator_actors(key, 2)
    images = np.arange(6 * 64, dtype=np.uint8).reshape(6, *SHAPE)
    labels = np.array([0, 0, 0, 1, 1, 1])
    fit_info = {"dataset": DATASET, "fit_subset_ids": fit_ids}
    first, second = fitted_actors
    assert ray.get(first.fit_or_load.remote(pool_root, key, images, labels, fit_info, 7))["action"] == "fitted"
    answer = prepare_generator_actors([second], pool_root, key, images, labels, fit_info, 7)
    assert answer["action"] == "loaded"
    assert answer["seed"] == 7 and answer["fit_subset_ids"] == sorted(fit_ids) and answer["dataset"] == DATASET
    # The fit draws a random offset, so equal images prove the second replica loaded rather than refit.
    np.testing.assert_array_equal(
        ray.get(first.generate.remote(0, [1, 2, 3], key=key, pool_root=pool_root)),
        ray.get(second.generate.remote(0, [1, 2, 3], key=key, pool_root=pool_root)),
    )
    assert SyntheticPool(pool_root).generator_info(key)["fit_subset"] == "subset-a"


def test_a_generator_actor_that_dies_comes_back_with_its_fit_loaded_not_refit(shared_root: str, dataset: str) -> None:
    key = key_for(FITTED, dataset, fit_subset="subset-restart")
    (actor,) = start_generator_actors(key, 1)
    fit_info = {"fit_subset_ids": TRAIN_IDS[:4]}
    prepare_generator_actors([actor], shared_root, key, np.zeros((4, *SHAPE), np.uint8), np.zeros(4, np.int64), fit_info, 0)
    pool = get_synthetic_pool(shared_root)
    before, before_records = ray.get(pool.request.remote(key, 0, 3, TRAIN_IDS))
    ray.kill(actor, no_restart=False)
    more, more_records = ray.get(pool.request.remote(key, 0, 6, TRAIN_IDS))
    assert generated_by([actor]) == [3]  # the restarted replica made the 3 new images
    np.testing.assert_array_equal(more[:3], before)
    # FittedMean draws a random offset per fit: the new images follow the stored fit only if it was loaded.
    base = (int(before[0, 0, 0, 0]) - before_records[0]["seed"]) % 256
    for image, record in zip(more, more_records):
        np.testing.assert_array_equal(image, np.full(SHAPE, (base + record["seed"]) % 256, np.uint8))


def test_fit_on_a_validation_image_is_refused_before_fitting(pool_root: str) -> None:
    key = key_for(FITTED, fit_subset="subset-leaky")
    fitted_actors = start_generator_actors(key, 1)
    fit_info = {"dataset": DATASET, "fit_subset_ids": [TRAIN_IDS[0], VALIDATION_ID]}
    with pytest.raises(LeakageError, match=f"training images only.*{VALIDATION_ID}"):
        ray.get(fitted_actors[0].fit_or_load.remote(
            pool_root, key, np.zeros((2, *SHAPE), np.uint8), np.zeros(2, np.int64), fit_info, 0
        ))
    assert not SyntheticPool(pool_root).has_generator(key)


def test_a_generator_fit_outside_the_trial_subset_is_refused(shared_root: str, dataset: str) -> None:
    key = key_for(FITTED, dataset, fit_subset="subset-b")
    fitted_actors = start_generator_actors(key, 2)
    fit_ids = TRAIN_IDS[:8]
    prepare_generator_actors(
        fitted_actors, shared_root, key, np.zeros((8, *SHAPE), np.uint8), np.zeros(8, np.int64),
        {"fit_subset_ids": fit_ids}, 0,
    )
    pool = get_synthetic_pool(shared_root)
    images, _ = ray.get(pool.request.remote(key, 0, 3, TRAIN_IDS[:10]))
    assert images.shape == (3, *SHAPE)
    with pytest.raises(LeakageError, match=r"fit on a subset of its own real subset.*train/0007"):
        ray.get(pool.request.remote(key, 0, 3, TRAIN_IDS[:7]))
    with pytest.raises(LeakageError, match="fit on a subset of its own real subset"):
        SyntheticPool(shared_root).read(key, 0, 3, trial_subset_ids=TRAIN_IDS[1:20])


def test_replicas_serving_two_fits_generate_each_keys_images_from_its_own_fit(shared_root: str, dataset: str) -> None:
    first_key, second_key = key_for(FITTED, dataset, fit_subset="seed-1"), key_for(FITTED, dataset, fit_subset="seed-2")
    images, labels = np.zeros((4, *SHAPE), np.uint8), np.zeros(4, np.int64)
    seeds = [derive_seed(first_key, 0, None, slot) for slot in range(3)]
    # One replica set serves every repeat seed's fit of a generator (named without the fit subset).
    (actor,) = start_generator_actors(first_key, 1)
    assert start_generator_actors(second_key, 1) == [actor]
    ray.get(actor.fit_or_load.remote(shared_root, first_key, images, labels, {"fit_subset_ids": TRAIN_IDS[:4]}, 1))
    first_fit_images = ray.get(actor.generate.remote(0, seeds, key=first_key, pool_root=shared_root))
    # The same replica now fits the next repeat seed's subset, as a sweep with repeats does.
    ray.get(actor.fit_or_load.remote(shared_root, second_key, images, labels, {"fit_subset_ids": TRAIN_IDS[:4]}, 2))
    pool = get_synthetic_pool(shared_root)
    served, _ = ray.get(pool.request.remote(first_key, 0, 3, TRAIN_IDS[:10]))
    np.testing.assert_array_equal(served, first_fit_images)


def test_image_to_image_uses_only_the_trials_own_training_sources(shared_root: str, dataset: str) -> None:
    key = key_for(INVERT, dataset)
    start_generator_actors(key, 1)
    pool = get_synthetic_pool(shared_root)
    everyone = TRAIN_IDS[:4]
    ray.get(pool.request.remote(key, 0, 8, everyone, everyone, source_images(everyone)))
    assert len(SyntheticPool(shared_root).records(key, 0)) == 8

    allowed = TRAIN_IDS[2:4]
    images, records = ray.get(pool.request.remote(key, 0, 4, allowed, allowed, source_images(allowed)))
    assert [record["source_id"] for record in records] == [allowed[0], allowed[1], allowed[0], allowed[1]]
    assert [record["slot"] for record in records] == [0, 0, 1, 1]
    expected = source_images(allowed)
    for image, record in zip(images, records):
        np.testing.assert_array_equal(image, 255 - expected[record["source_id"]])

    with pytest.raises(LeakageError, match=f"sources are training images only.*{VALIDATION_ID}"):
        ray.get(pool.request.remote(key, 0, 2, allowed, [*allowed, VALIDATION_ID], source_images(allowed)))
    with pytest.raises(LeakageError, match=r"inside the trial's real subset.*train/0000"):
        ray.get(pool.request.remote(key, 0, 2, allowed, [TRAIN_IDS[0]], source_images([TRAIN_IDS[0]])))
    with pytest.raises(LeakageError, match=f"training images only.*{VALIDATION_ID}"):
        ray.get(pool.request.remote(key, 0, 2, [*allowed, VALIDATION_ID], allowed, source_images(allowed)))


def test_missing_source_images_are_named(shared_root: str, dataset: str) -> None:
    key = key_for(INVERT, dataset)
    start_generator_actors(key, 1)
    pool = get_synthetic_pool(shared_root)
    allowed = TRAIN_IDS[5:8]
    with pytest.raises(PoolError, match="train/0007"):
        ray.get(pool.request.remote(key, 0, 3, allowed, allowed, source_images(allowed[:2])))


def store(pool: SyntheticPool, key: PoolKey, class_index: int, count: int, sources: Sequence[str] | None = None) -> None:
    slots = pool.missing_slots(key, class_index, count, sources)
    seeds = [derive_seed(key, class_index, source_id, slot) for source_id, slot in slots]
    pool.add(key, class_index, slots, seeds, np.zeros((len(slots), *SHAPE), np.uint8))


def test_remove_deletes_one_generators_images_and_keeps_the_others(pool_root: str) -> None:
    pool = SyntheticPool(pool_root)
    store(pool, key_for(NOISE), 0, 5)
    store(pool, key_for(NOISE), 1, 2)
    store(pool, key_for(INVERT), 0, 3, TRAIN_IDS[:3])
    assert {(row["generator"], row["class_index"], row["count"]) for row in SyntheticPool(pool_root).summary()} == {
        (NOISE, 0, 5), (NOISE, 1, 2), (INVERT, 0, 3)
    }
    assert SyntheticPool(pool_root).remove(NOISE) == 7
    assert [row["generator"] for row in SyntheticPool(pool_root).summary()] == [INVERT]
    assert not (Path(pool_root) / key_for(NOISE).folder_name).exists()
    assert SyntheticPool(pool_root).missing_slots(key_for(NOISE), 0, 5) == [(None, slot) for slot in range(5)]


def test_a_file_uri_root_is_the_same_pool_as_its_folder(pool_root: str) -> None:
    key = key_for(NOISE)
    uri = Path(pool_root).as_uri()
    uri_pool = SyntheticPool(uri)
    slots = uri_pool.missing_slots(key, 0, 3)
    uri_pool.add(key, 0, slots, [derive_seed(key, 0, None, slot) for _, slot in slots], np.full((3, *SHAPE), 9, np.uint8))
    images, _ = SyntheticPool(pool_root).read(key, 0, 3, trial_subset_ids=TRAIN_IDS)
    np.testing.assert_array_equal(images, np.full((3, *SHAPE), 9, np.uint8))
    assert pool_actor_name(uri) == pool_actor_name(pool_root)
    assert uri_pool.root == SyntheticPool(pool_root).root


def test_bad_writes_and_registrations_are_refused_with_what_is_allowed(pool_root: str) -> None:
    pool = SyntheticPool(pool_root)
    key = key_for(NOISE)
    with pytest.raises(PoolError, match=r"not derive_seed"):
        pool.add(key, 0, [(None, 0)], [123], np.zeros((1, *SHAPE), np.uint8))
    with pytest.raises(PoolError, match=r"registered with \[1, 8, 8\]"):
        pool.add(key, 0, [(None, 0)], [derive_seed(key, 0, None, 0)], np.zeros((1, 1, 4, 4), np.uint8))
    with pytest.raises(PoolError, match="already registered"):
        pool.register_dataset(DATASET, TRAIN_IDS[:3], image_shape=SHAPE)
    pool.register_dataset(DATASET, list(reversed(TRAIN_IDS)), image_shape=SHAPE)
    with pytest.raises(PoolError, match="'unknown' is not registered.*register_dataset"):
        pool.read(PoolKey(generator=NOISE, settings_hash="ab", dataset="unknown"), 0, 1, trial_subset_ids=TRAIN_IDS)
    with pytest.raises(PoolError, match="PoolKey.generator"):
        PoolKey(generator="bad--name", settings_hash="ab", dataset=DATASET)


def test_concurrent_thread_writers_in_one_process_keep_one_image_per_slot(pool_root: str) -> None:
    pool = SyntheticPool(pool_root)
    key = key_for(NOISE)
    seeds = [derive_seed(key, 0, None, slot) for slot in range(4)]

    def write(value: int) -> None:
        pool.add(key, 0, [(None, slot) for slot in range(4)], seeds, np.full((4, *SHAPE), value, np.uint8))

    with ThreadPoolExecutor(4) as executor:
        list(executor.map(write, range(4)))
    images, records = SyntheticPool(pool_root).read(key, 0, 4, trial_subset_ids=TRAIN_IDS)
    assert len({record.shard for record in records}) == 1, "the four slots come from one winning batch"
    assert len(np.unique(images)) == 1


def test_the_pool_actor_checks_the_leakage_rules_once_per_request(
    pool_root: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = key_for(NOISE)
    store(SyntheticPool(pool_root), key, 0, 3)
    checked_keys = []
    check_request = LeakageRules.check_request

    def counted_check_request(rules: LeakageRules, key: PoolKey, *arguments: object) -> object:
        checked_keys.append(key)
        return check_request(rules, key, *arguments)

    monkeypatch.setattr(LeakageRules, "check_request", counted_check_request)
    # The actor class itself, in this process, so the counting rules are the ones it uses.
    images, records = asyncio.run(SyntheticPoolActor(pool_root).request(key, 0, 3, TRAIN_IDS))
    assert images.shape == (3, *SHAPE) and len(records) == 3
    assert checked_keys == [key]
