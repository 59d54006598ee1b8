"""A trial's cost: its training seconds plus its standalone share of generator fits and generated images, from
figures the generator actors record in the pool."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from generators.actors.generator_actor import GeneratorActor
from generators.pool import PoolKey, SyntheticPool
from generators.pool.generation_cost import GENERATION_TIMES, key_cost
from generators.pool.storage import PoolStorage
from spaces import SyntheticConfig
from trainables.synthetic_mixing import SyntheticDraw
from trainables.trial_cost import (
    COST_GPU_SECONDS,
    COST_SECONDS,
    COST_SYNTHETIC_SECONDS,
    COST_TRAIN_SECONDS,
    SyntheticCost,
    TrialCost,
    images_per_key,
    synthetic_cost,
)

SIZE = 16
TINY_DDPM = {"block_out_channels": [8, 16], "training_steps": 4, "batch_size": 8, "num_train_timesteps": 20,
             "sampling_steps": 2, "sampling_batch_size": 4}


def test_repeats_of_one_key_share_its_canonical_images_and_image_to_image_repeats_do_not() -> None:
    draws = [
        SyntheticDraw(0, 10, "ddpm--a--d--fit-1"), SyntheticDraw(1, 4, "ddpm--a--d--fit-1"),
        SyntheticDraw(0, 10, "ddpm--a--d--fit-2"),  # another seed's fit subset: another key
        SyntheticDraw(0, 6, "noise--b--d"), SyntheticDraw(0, 9, "noise--b--d"),  # two repeats, one key: prefixes
    ]
    assert images_per_key(draws, image_to_image=False) == {"ddpm--a--d--fit-1": 14, "ddpm--a--d--fit-2": 10, "noise--b--d": 9}
    assert images_per_key(draws, image_to_image=True)["noise--b--d"] == 15


def test_the_share_is_each_keys_fit_plus_its_seconds_per_image_times_the_images_used() -> None:
    costs = {
        "a": {"fit_seconds": 100.0, "fit_gpu_seconds": 50.0, "seconds_per_image": 0.5, "gpu_seconds_per_image": 0.25},
        "b": {"fit_seconds": 0.0, "fit_gpu_seconds": 0.0, "seconds_per_image": 2.0, "gpu_seconds_per_image": 0.0},
    }
    assert synthetic_cost({"a": 10, "b": 3}, costs) == SyntheticCost(100.0 + 5.0 + 6.0, 50.0 + 2.5)
    cost = TrialCost(SyntheticCost(111.0, 52.5), gpus=0.5, train_seconds=20.0)
    assert cost.figures() == {
        COST_SECONDS: 131.0, COST_GPU_SECONDS: 10.0 + 52.5, COST_TRAIN_SECONDS: 20.0, COST_SYNTHETIC_SECONDS: 111.0,
    }
    cost.resume_from({COST_TRAIN_SECONDS: 7.5, "epoch": 2})
    assert cost.train_seconds == 7.5
    cost.resume_from({"epoch": 2})  # a checkpoint written before cost was reported
    assert cost.train_seconds == 0.0


def _images() -> tuple[np.ndarray, np.ndarray, list[str]]:
    random = np.random.default_rng(0)
    images = random.integers(0, 256, size=(16, 1, SIZE, SIZE)).astype(np.uint8)
    labels = np.repeat(np.arange(2, dtype=np.int64), 8)
    return images, labels, [f"train-{index}" for index in range(16)]


def test_generator_actors_record_fit_and_generation_seconds_per_key_in_the_pool(tmp_path: Path) -> None:
    images, labels, ids = _images()
    root = str(tmp_path / "pool")
    pool = SyntheticPool(root)
    pool.register_dataset("tiny", ids, image_shape=images.shape[1:])
    settings = SyntheticConfig.model_validate({"generator": "ddpm", "settings": TINY_DDPM}).settings
    key = PoolKey(generator="ddpm", settings_hash=settings.settings_hash, dataset="tiny", fit_subset="all")
    # Nothing made yet: no fit, no timing, no cost.
    assert key_cost(PoolStorage(root), key.folder_name).to_dict() == {
        "fit_seconds": 0.0, "fit_gpu_seconds": 0.0, "seconds_per_image": 0.0, "gpu_seconds_per_image": 0.0,
        "timed_images": 0.0,
    }
    first = GeneratorActor(settings, num_classes=2, channels=1, image_size=SIZE, device="cpu")
    fitted = first.fit_or_load(root, key, images, labels, {"fit_subset_ids": ids, "dataset": "tiny"}, 0)
    assert fitted["action"] == "fitted" and fitted["fit_seconds"] > 0 and fitted["fit_gpus"] == 0.0
    first.generate(0, [1, 2, 3], key=key, pool_root=root)
    first.generate(1, [4, 5], key=key, pool_root=root)
    # A second replica (or a restarted one) keeps totals of its own in its own file.
    second = GeneratorActor(settings, num_classes=2, channels=1, image_size=SIZE, device="cpu")
    second.generate(0, [6, 7, 8, 9], key=key, pool_root=root)

    files = sorted((tmp_path / "pool" / key.folder_name / GENERATION_TIMES).glob("*.json"))
    totals = [json.loads(path.read_text()) for path in files]
    assert sorted(total["images"] for total in totals) == [4, 5]
    assert all(total["seconds"] > 0 and total["gpu_seconds"] == 0.0 for total in totals)
    cost = pool.generation_cost(key.folder_name)
    assert cost.timed_images == 9
    assert cost.seconds_per_image == pytest.approx(sum(total["seconds"] for total in totals) / 9)
    assert cost.fit_seconds == fitted["fit_seconds"] and cost.fit_gpu_seconds == 0.0


@pytest.mark.parametrize("folder", ["../escape", "a/b--c", ".tmp-x--y", "nodash"])
def test_a_key_folder_that_is_not_one_is_refused(tmp_path: Path, folder: str) -> None:
    from generators.errors import PoolError

    with pytest.raises(PoolError, match="key folder name"):
        SyntheticPool(str(tmp_path / "pool")).generation_cost(folder)


GPU_SCRIPT = """
import json, sys
import numpy as np
import ray
import generators  # registers the generators
from generators.actors.generator_actor import GeneratorActor
from generators.pool import PoolKey, SyntheticPool
from spaces import SyntheticConfig, TrialConfig
from trainables.datasets import load_dataset
from trainables.trial import TrialSettings, train_classifier

root = sys.argv[1]
# Ray is told of one GPU that is not there: what it assigns is bookkeeping, and the models train on the CPU.
ray.init(num_cpus=2, num_gpus=1, include_dashboard=False, log_to_driver=False)
data = load_dataset("phantom", image_size=16, phantom_count=200).for_search()
trial = TrialConfig.from_mapping({"model": {"backbone": "basic_cnn"}, "training": {"epochs": 2, "batch_size": 32}})

@ray.remote(num_gpus=0.5)
def half_a_gpu():
    reports = []
    train_classifier(trial, data, TrialSettings(device="cpu"), on_epoch=lambda metrics, *_: reports.append(metrics))
    return reports

settings = SyntheticConfig.model_validate({"generator": "oversample"}).settings
ids = [str(i) for i in data.train.ids]
SyntheticPool(root).register_dataset("tiny", ids, image_shape=data.train.images.shape[1:])
key = PoolKey(generator="oversample", settings_hash=settings.settings_hash, dataset="tiny", fit_subset=None)
actor = ray.remote(GeneratorActor).options(num_gpus=0.25).remote(
    settings, num_classes=data.num_classes, channels=data.channels, image_size=16, device="cpu")
ray.get(actor.generate.remote(0, [1, 2, 3], data.train.images[:3], key=key, pool_root=root))
print(json.dumps({"reports": ray.get(half_a_gpu.remote()), "key": key.folder_name}))
"""


def test_gpu_seconds_are_seconds_times_the_gpus_ray_assigned(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    root = str(tmp_path / "pool")
    completed = subprocess.run(
        [sys.executable, "-c", GPU_SCRIPT, root], capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}, cwd=tmp_path,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    answer = json.loads(completed.stdout.strip().splitlines()[-1])
    for report in answer["reports"]:
        assert report[COST_TRAIN_SECONDS] > 0 and report[COST_SYNTHETIC_SECONDS] == 0.0
        assert report[COST_GPU_SECONDS] == pytest.approx(0.5 * report[COST_TRAIN_SECONDS])
        assert report[COST_SECONDS] == report[COST_TRAIN_SECONDS]
    (totals,) = [json.loads(path.read_text()) for path in (tmp_path / "pool" / answer["key"] / GENERATION_TIMES).iterdir()]
    assert totals["images"] == 3 and totals["gpu_seconds"] == pytest.approx(0.25 * totals["seconds"])
