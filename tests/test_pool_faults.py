"""Faults on the pool's side (issue 11 part 3): a shard or manifest damaged on disk is caught by the checksums its
manifest stores, never served, named, and its images made again from their seeds; manifests written before the
checksums still read; `python -m search.pool verify` finds and sets aside what is damaged."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import ray
from image_api_server import Fault, ImageApiServer, running_server
from loopback_cluster import free_port
from moto.server import ThreadedMotoServer
from ray import cloudpickle
from s3_server import S3Server

from generators.actors.generator_actor import create_generator_actors
from generators.actors.pool_actor import get_synthetic_pool
from generators.errors import GeneratorError
from generators.image_api.openai_images import OpenAIImagesSettings
from generators.oversample import OversampleSettings
from generators.pool import CorruptBatchError, PoolError, PoolKey, SyntheticPool, canonical_slots, derive_seed
from search.pool import main as pool_command

SHAPE = (1, 8, 8)
DATASET = "faults-8px-1ch"
TRAIN_IDS = [f"train/{index:03d}" for index in range(12)]
KEY = PoolKey(generator="oversample", settings_hash="0123456789ab", dataset=DATASET)
API_KEY = "sk-pool-faults-test"


def images_for(seeds: list[int]) -> np.ndarray:
    """What a generator makes: image i depends only on its seed, so a batch made again is the same batch."""
    return np.stack([np.random.default_rng(seed).integers(0, 256, SHAPE, dtype=np.uint8) for seed in seeds])


def store(pool: SyntheticPool, class_index: int, count: int, sources: list[str]) -> None:
    slots = pool.missing_slots(KEY, class_index, count, sources)
    seeds = [derive_seed(KEY, class_index, source_id, slot) for source_id, slot in slots]
    pool.add(KEY, class_index, slots, seeds, images_for(seeds))


@pytest.fixture
def root(tmp_path: Path) -> str:
    """A pool with two batches of class 0 (3 images, then 3 more) and one of class 1."""
    root = str(tmp_path / "pool")
    pool = SyntheticPool(root)
    pool.register_dataset(DATASET, TRAIN_IDS, image_shape=SHAPE)
    store(pool, 0, 3, TRAIN_IDS[:3])
    store(pool, 0, 6, TRAIN_IDS[:3])
    store(pool, 1, 2, TRAIN_IDS[3:5])
    return root


def first_batch(root: str) -> tuple[Path, Path]:
    """(manifest, shard) of class 0's first batch."""
    record = SyntheticPool(root).records(KEY, 0)[0]
    folder = Path(root) / KEY.folder_name
    return folder / "manifests" / record.shard.replace(".npy", ".json"), folder / "shards" / record.shard


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])


def flip_last_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01  # a pixel's lowest bit: still a valid .npy of the right shape
    path.write_bytes(bytes(data))


def flip_header_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[12] ^= 0x20
    path.write_bytes(bytes(data))


def read_class(root: str, class_index: int, count: int, sources: list[str]) -> np.ndarray:
    return SyntheticPool(root).read(KEY, class_index, count, trial_subset_ids=TRAIN_IDS, allowed_source_ids=sources)[0]


@pytest.mark.parametrize("damage", [truncate, flip_last_byte, flip_header_byte], ids=lambda damage: damage.__name__)
def test_a_damaged_shard_is_never_served_and_the_error_names_it_and_the_repair(
    root: str, damage: Callable[[Path], None]
) -> None:
    before = read_class(root, 0, 6, TRAIN_IDS[:3])
    manifest, shard = first_batch(root)
    damage(shard)
    with pytest.raises(CorruptBatchError, match="verify --repair") as caught:
        read_class(root, 0, 6, TRAIN_IDS[:3])
    assert str(shard) in str(caught.value) and caught.value.manifest_path == str(manifest)
    # The other class's batch is untouched and still served.
    read_class(root, 1, 2, TRAIN_IDS[3:5])

    # Set aside, its slots are missing; made again from the same seeds they are the images that were lost.
    pool = SyntheticPool(root)
    assert pool.set_aside(str(manifest)) == f"{manifest}.corrupt"
    assert len(pool.missing_slots(KEY, 0, 6, TRAIN_IDS[:3])) == 3
    store(pool, 0, 6, TRAIN_IDS[:3])
    np.testing.assert_array_equal(read_class(root, 0, 6, TRAIN_IDS[:3]), before)
    # The damaged shard, no longer named by a manifest, is an orphan the cleaner removes; the set-aside manifest stays.
    assert pool.clean_orphans(older_than_s=0) == 1 and not shard.exists() and Path(f"{manifest}.corrupt").exists()


def change_a_position(path: Path) -> None:
    # Still valid JSON of a valid manifest, but a record now points at another image: only the checksum tells.
    payload = json.loads(path.read_text())
    payload["records"][0]["position"] = 2
    path.write_text(json.dumps(payload))


def claim_format_1(path: Path) -> None:
    # A manifest that says it was written before checksums, yet carries them: they are checked all the same.
    payload = json.loads(path.read_text())
    payload["format"] = 1
    path.write_text(json.dumps(payload))


@pytest.mark.parametrize(
    "damage", [truncate, change_a_position, claim_format_1, lambda path: path.write_bytes(b"\x00" * 40)],
    ids=["truncated", "changed", "format", "zeros"],
)
def test_a_damaged_manifest_is_ignored_with_a_warning_so_its_images_are_made_again(
    root: str, damage: Callable[[Path], None], caplog: pytest.LogCaptureFixture
) -> None:
    before = read_class(root, 0, 6, TRAIN_IDS[:3])
    manifest, _ = first_batch(root)
    damage(manifest)
    pool = SyntheticPool(root)
    with caplog.at_level(logging.WARNING, logger="generators.pool.batches"):
        missing = pool.missing_slots(KEY, 0, 6, TRAIN_IDS[:3])
    assert missing == canonical_slots(3, TRAIN_IDS[:3])
    assert f"ignoring corrupt manifest {manifest}" in caplog.text
    with pytest.raises(Exception, match="not in the pool yet"):
        read_class(root, 0, 6, TRAIN_IDS[:3])
    # Read once per process, warned once: a refresh does not read it again.
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="generators.pool.batches"):
        pool.refresh()
    assert caplog.text == ""
    store(pool, 0, 6, TRAIN_IDS[:3])
    np.testing.assert_array_equal(read_class(root, 0, 6, TRAIN_IDS[:3]), before)


def test_manifests_written_before_checksums_are_still_read_and_reported_as_unverified(
    root: str, capsys: pytest.CaptureFixture
) -> None:
    before = read_class(root, 0, 6, TRAIN_IDS[:3])
    manifest, _ = first_batch(root)
    payload = json.loads(manifest.read_text())
    for name in ("shard_sha256", "manifest_sha256"):
        del payload[name]
    payload["format"] = 1
    manifest.write_text(json.dumps(payload))
    np.testing.assert_array_equal(read_class(root, 0, 6, TRAIN_IDS[:3]), before)
    assert pool_command(["--pool", root, "verify"]) == 0
    assert "3 batches: 2 checked against their checksums, 1 written before checksums (read back only)" in capsys.readouterr().out


def test_verify_finds_damaged_batches_and_repair_sets_them_aside(root: str, capsys: pytest.CaptureFixture) -> None:
    assert pool_command(["--pool", root, "verify"]) == 0
    assert "3 batches: 3 checked against their checksums" in capsys.readouterr().out
    manifest, shard = first_batch(root)
    flip_last_byte(shard)
    second_batch = SyntheticPool(root).records(KEY, 0)[3].shard
    other_manifest = manifest.parent / second_batch.replace(".npy", ".json")
    truncate(other_manifest)

    assert pool_command(["--pool", root, "verify"]) == 1
    output = capsys.readouterr().out
    assert f"corrupt: {shard}" in output and f"corrupt: {other_manifest}" in output
    assert "run again with --repair" in output
    assert manifest.exists() and other_manifest.exists()

    assert pool_command(["--pool", root, "verify", "--repair"]) == 0
    output = capsys.readouterr().out
    assert f"set aside {manifest} as {manifest}.corrupt" in output
    assert f"set aside {other_manifest} as {other_manifest}.corrupt" in output
    assert pool_command(["--pool", root, "verify"]) == 0
    assert "1 batches: 1 checked against their checksums" in capsys.readouterr().out
    assert len(SyntheticPool(root).missing_slots(KEY, 0, 6, TRAIN_IDS[:3])) == 6


# ----- through the pool actor, as trials read


@pytest.fixture(scope="module")
def oversample_actor(module_ray: None) -> Iterator[tuple[PoolKey, ray.actor.ActorHandle]]:
    """A real oversample generator actor (image-to-image augmentation, cheap on a CPU) for the module's key."""
    settings = OversampleSettings()
    key = PoolKey(generator="oversample", settings_hash=settings.settings_hash, dataset=DATASET)
    actors = create_generator_actors(1, {"num_cpus": 0}, key, settings, num_classes=2, channels=1, image_size=8)
    yield key, actors[0]
    for actor in actors:
        ray.kill(actor, no_restart=True)


def test_the_pool_actor_sets_a_damaged_batch_aside_and_serves_the_images_made_again(
    oversample_actor: tuple[PoolKey, ray.actor.ActorHandle], tmp_path: Path
) -> None:
    key, generator = oversample_actor
    root = str(tmp_path / "pool")
    pool = SyntheticPool(root)
    pool.register_dataset(DATASET, TRAIN_IDS, image_shape=SHAPE)
    sources = {image_id: np.full(SHAPE, 20 * index, np.uint8) for index, image_id in enumerate(TRAIN_IDS[:3])}
    # Stored by an earlier sweep, then damaged on disk.
    slots = canonical_slots(3, list(sources))
    seeds = [derive_seed(key, 0, source_id, slot) for source_id, slot in slots]
    batch_sources = np.stack([sources[source_id] for source_id, _ in slots])
    images = ray.get(generator.generate.remote(0, seeds, batch_sources, key=key, pool_root=root), timeout=120)
    records = pool.add(key, 0, slots, seeds, images)
    flip_last_byte(Path(root) / key.folder_name / "shards" / records[0].shard)

    # The next sweep's pool actor checks the shard rather than trusting it, sets the batch aside, makes its images
    # again with the same seeds and serves those.
    actor = get_synthetic_pool(root)
    try:
        again, again_records = ray.get(actor.request.remote(key, 0, 3, TRAIN_IDS, list(sources), sources), timeout=120)
    finally:
        ray.kill(actor, no_restart=True)
    np.testing.assert_array_equal(again, images)
    manifests = sorted(path.name for path in (Path(root) / key.folder_name / "manifests").iterdir())
    assert manifests == sorted([records[0].shard.replace(".npy", ".json.corrupt"),
                                again_records[0]["shard"].replace(".npy", ".json")])


# ----- an S3 server that stops mid-write


@pytest.fixture(scope="module")
def moto() -> Iterator[tuple[ThreadedMotoServer, S3Server]]:
    """moto's S3 server on 127.0.0.1. Stopping it closes its socket (connections are refused, as from a store that
    went down); starting the same server again serves the same buckets and objects, which moto keeps in this
    process, as a restarted S3-compatible store serves what it had stored."""
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        s3 = S3Server(f"http://127.0.0.1:{port}", "pool-faults")
        s3.client().create_bucket(Bucket=s3.bucket)
        yield server, s3
    finally:
        server.stop()


@pytest.mark.parametrize("stopped_before", ["shards", "manifests"])
def test_a_storage_server_stopped_mid_write_fails_the_write_serves_nothing_half_written_and_the_next_pool_fills_in(
    moto: tuple[ThreadedMotoServer, S3Server], stopped_before: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    server, s3 = moto
    for name, value in s3.env().items():
        monkeypatch.setenv(name, value)
    prefix = f"{stopped_before}-stop/pool"
    root = f"s3://{s3.bucket}/{prefix}"
    pool = SyntheticPool(root)
    pool.register_dataset(DATASET, TRAIN_IDS, image_shape=SHAPE)
    store(pool, 0, 3, TRAIN_IDS[:3])
    expected = read_class(root, 0, 3, TRAIN_IDS[:3])

    # The server goes down as the second batch writes its shard (nothing of the batch stored) or its manifest (the
    # shard stored, the batch not yet).
    storage = pool._storage
    write = storage.write

    def write_while_the_server_stops(path: str, data: bytes) -> None:
        if f"/{stopped_before}/" in path:
            server.stop()
        write(path, data)

    monkeypatch.setattr(storage, "write", write_while_the_server_stops)
    try:
        with pytest.raises(PoolError, match=rf"could not write \S+/{prefix}/\S+/{stopped_before}/\S+ to the pool at {root}"):
            store(pool, 0, 6, TRAIN_IDS[:3])
    finally:
        server.start()
    shards = [key for key in s3.keys(prefix) if key.endswith(".npy")]
    assert len(shards) == (2 if stopped_before == "manifests" else 1)

    # A later process (another trial, the next sweep) sees the first batch only, fills in the rest, same seeds.
    later = SyntheticPool(root)
    assert later.missing_slots(KEY, 0, 6, TRAIN_IDS[:3]) == canonical_slots(6, TRAIN_IDS[:3])[3:]
    np.testing.assert_array_equal(read_class(root, 0, 3, TRAIN_IDS[:3]), expected)
    store(later, 0, 6, TRAIN_IDS[:3])
    slots = canonical_slots(6, TRAIN_IDS[:3])
    seeds = [derive_seed(KEY, 0, source_id, slot) for source_id, slot in slots]
    np.testing.assert_array_equal(read_class(root, 0, 6, TRAIN_IDS[:3]), images_for(seeds))
    # The shard the stopped write left behind is an orphan: never served, removed by the cleaner.
    assert later.clean_orphans(older_than_s=0) == (1 if stopped_before == "manifests" else 0)
    assert later.verify().corrupt == []

    # `verify --repair` on the bucket: a shard changed in place is found and its batch set aside.
    client = s3.client()
    shard = next(key for key in s3.keys(prefix) if key.endswith(".npy"))
    data = bytearray(client.get_object(Bucket=s3.bucket, Key=shard)["Body"].read())
    data[-1] ^= 0x01
    client.put_object(Bucket=s3.bucket, Key=shard, Body=bytes(data))
    report = SyntheticPool(root).verify(repair=True)
    assert [error.damaged for error in report.corrupt] == [f"{s3.bucket}/{shard}"]
    manifest = f"{s3.bucket}/{shard.replace('/shards/', '/manifests/').replace('.npy', '.json')}"
    assert report.set_aside == {manifest: f"{manifest}.corrupt"}
    assert f"{manifest.split('/', 1)[1]}.corrupt" in s3.keys(prefix)


# ----- a generator that fails mid-request


@pytest.fixture(scope="module")
def image_api() -> Iterator[ImageApiServer]:
    with running_server(API_KEY) as server:
        yield server


def read_as_a_trial(root: str, key: PoolKey, count: int, sources: dict[str, np.ndarray]) -> np.ndarray:
    """What a trial does (trainables.synthetic_mixing): ask the pool actor, in a Ray worker of its own."""
    reference = get_synthetic_pool(root).request.remote(key, 0, count, TRAIN_IDS, list(sources), sources)
    return ray.get(reference, timeout=120)[0]


def test_a_generator_failing_mid_request_fails_the_trial_with_its_message_and_the_pool_keeps_the_earlier_calls(
    module_ray: None, image_api: ImageApiServer, tmp_path: Path
) -> None:
    # The real openai_images generator against the loopback API: two images per call, one call at a time, so the
    # scripted answers meet the calls in canonical order; the key reaches only the generator actor's process.
    settings = OpenAIImagesSettings(base_url=image_api.base_url, n=2, max_concurrent_requests=1)
    key = PoolKey(generator="openai_images", settings_hash=settings.settings_hash, dataset=DATASET)
    resources = {"num_cpus": 0, "runtime_env": {"env_vars": {"OPENAI_API_KEY": API_KEY}}}
    actors = create_generator_actors(1, resources, key, settings, num_classes=2, channels=1, image_size=8)
    root = str(tmp_path / "pool")
    pool = SyntheticPool(root)
    pool.register_dataset(DATASET, TRAIN_IDS, image_shape=SHAPE)
    ray.get(get_synthetic_pool(root).set_api_spend_cap.remote(1.0))
    sources = {image_id: np.full(SHAPE, 40 * index, np.uint8) for index, image_id in enumerate(TRAIN_IDS[:3])}
    # The trial-like task is this module's function: workers cannot import tests/, so it travels by value.
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    trial = ray.remote(num_cpus=0, max_retries=0)(read_as_a_trial)
    try:
        image_api.reset()
        # Calls 1 and 2 answer; call 3 (the third source's) is refused by the API.
        image_api.script(Fault(), Fault(), Fault(status=400))
        with pytest.raises(GeneratorError) as caught:
            ray.get(trial.remote(root, key, 6, sources), timeout=120)
        # Through three processes (generator actor, pool actor, trial), the generator's own message and the source
        # it failed on; what `python -m search.run` prints (the cause) says it in its first line.
        cause = str(getattr(caught.value, "cause", None) or caught.value)
        assert "rejected by the safety system" in cause.splitlines()[0]
        assert f"from source image ['{TRAIN_IDS[2]}']" in cause.splitlines()[0]

        # The two calls that answered are stored, whole; nothing of the failed one is.
        stored = SyntheticPool(root).records(key, 0)
        assert sorted(record.source_id for record in stored) == sorted([TRAIN_IDS[0], TRAIN_IDS[1]] * 2)
        assert SyntheticPool(root).clean_orphans(older_than_s=0) == 0
        assert SyntheticPool(root).verify().corrupt == []

        # The next trial asks again: only the failed call's images are requested, the rest are served as stored.
        images = ray.get(trial.remote(root, key, 6, sources), timeout=120)
        assert len(image_api.received) == 4 and images.shape == (6, *SHAPE)
        assert len(SyntheticPool(root).records(key, 0)) == 6
    finally:
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
        ray.kill(get_synthetic_pool(root), no_restart=True)
        for actor in actors:
            ray.kill(actor, no_restart=True)
