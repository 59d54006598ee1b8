"""Before trials start: which images a space can ask for, made once with the pool ready; and what names a dataset
in the pool (its content, not its folder)."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import ray
from PIL import Image

from generators.pool import SyntheticPool
from search.settings.sweep_config import SweepConfig
from search.synthetic.demand import generator_demands, generator_uses, smallest_fractions
from search.synthetic.preparation import prepare_generators
from spaces import ConfigError, SearchSpace
from trainables.datasets import load_dataset
from trainables.real_subset import real_subset_counts, real_subset_indices
from trainables.replicas import fractions_by_class_index
from trainables.synthetic_mixing import fetch_synthetic_images, pool_dataset_name, synthetic_counts

TINY_DDPM = {
    "synthetic.generator": "ddpm", "synthetic.settings.training_steps": 5, "synthetic.settings.block_out_channels": [8, 16],
    "synthetic.settings.sampling_steps": 2, "synthetic.settings.num_train_timesteps": 50,
}
DEMAND_SPACE = SearchSpace(
    fixed=TINY_DDPM,
    parameters={
        "real_fraction": {"choice": [0.5, 1.0]},
        "synthetic.proportion": {"choice": [0.0, 0.25, 1.0]},
        "synthetic.mode": {"choice": ["add", "balance"]},
        "synthetic.classes": {"choice": ["all", "minority"]},
    },
)


@pytest.fixture(scope="module")
def phantom():
    return load_dataset("phantom", image_size=16, phantom_count=200).for_search()


def brute_force_largest(space: SearchSpace, data) -> np.ndarray:
    """Every combination of every choice, counted one by one."""
    keys = list(space.parameters)
    largest = np.zeros(data.num_classes, np.int64)
    for values in itertools.product(*(space.parameters[key].choice for key in keys)):
        trial = space.resolve(dict(zip(keys, values)))
        real_counts = real_subset_counts(
            data.train.class_counts(data.num_classes), fractions_by_class_index(trial.real_fraction, data)
        )
        largest = np.maximum(largest, synthetic_counts(trial.synthetic, real_counts, data))
    return largest


def test_the_largest_demand_per_class_is_what_any_trial_of_the_space_can_ask(phantom) -> None:
    (demand,) = generator_demands(DEMAND_SPACE, phantom)
    np.testing.assert_array_equal(demand.largest_count, brute_force_largest(DEMAND_SPACE, phantom))
    # balance mode tops the rare classes up to the largest: their demand exceeds their real count.
    assert demand.largest_count[3] > phantom.train.class_counts(4)[3]


def test_continuous_proportions_and_fractions_are_bounded_by_their_upper_ends(phantom) -> None:
    space = SearchSpace(fixed=TINY_DDPM, parameters={
        "real_fraction": {"uniform": [0.2, 0.8]}, "synthetic.proportion": {"uniform": [0.0, 0.6]},
    })
    (demand,) = generator_demands(space, phantom)
    at_the_ends = SearchSpace(fixed=TINY_DDPM, parameters={
        "real_fraction": {"choice": [0.8]}, "synthetic.proportion": {"choice": [0.6]},
    })
    np.testing.assert_array_equal(demand.largest_count, brute_force_largest(at_the_ends, phantom))


def test_generator_settings_must_be_choices_to_be_prepared() -> None:
    space = SearchSpace(
        fixed={"synthetic.proportion": 0.5}, parameters={"synthetic.settings.guidance_scale": {"uniform": [1.0, 3.0]}}
    )
    with pytest.raises(ConfigError, match=r"synthetic.settings.guidance_scale.*need `choice` values"):
        generator_uses(space)


@pytest.mark.slow
def test_the_pool_holds_the_largest_demand_before_any_trial_and_trials_only_read(
    tmp_path: Path, ray_cluster: None, phantom
) -> None:
    demands = generator_demands(DEMAND_SPACE, phantom)
    fit_fractions = smallest_fractions(DEMAND_SPACE.validate_samples(), phantom)
    root = str(tmp_path / "pool")
    sweep = SweepConfig(repeats=2)
    prepared = prepare_generators(demands, fit_fractions, phantom, sweep, root)
    stored = SyntheticPool(root).summary()
    # One fit per repeat seed, each with the space's whole largest demand, before any trial.
    assert len({row["fit_subset"] for row in stored}) == 2
    for row in stored:
        assert row["count"] == demands[0].largest_count[row["class_index"]]

    # The most demanding trial now reads what is there; nothing is generated while trials run.
    largest_trial = DEMAND_SPACE.resolve({"real_fraction": 1.0, "synthetic.proportion": 1.0, "synthetic.mode": "balance"})
    for seed in (0, 1):
        real_indices = real_subset_indices(phantom.train.labels, 1.0, seed)
        fetched = fetch_synthetic_images(largest_trial.synthetic, prepared.source, phantom, real_indices, seed)
        assert sum(len(images) for _, images in fetched) > 0
    assert SyntheticPool(root).summary() == stored
    descriptions = ray.get([actor.describe.remote() for actor in prepared.actors])
    assert sum(description["generated_images"] for description in descriptions) == sum(row["count"] for row in stored)


def write_folder(root: Path, values: tuple[int, int]) -> Path:
    """Two classes of six 16 px grayscale PNGs, the same file names whatever the pixel values."""
    for class_name, value in zip(("normal", "pneumonia"), values):
        folder = root / "scans" / class_name
        folder.mkdir(parents=True, exist_ok=True)
        for index in range(6):
            Image.fromarray(np.full((16, 16), value + index, np.uint8)).save(folder / f"{index}.png")
    return root / "scans"


def test_folders_of_one_name_holding_other_images_are_other_datasets_in_the_pool(tmp_path: Path) -> None:
    first = load_dataset(write_folder(tmp_path / "a", (40, 200)), seed=0).for_search()
    second = load_dataset(write_folder(tmp_path / "b", (90, 150)), seed=0).for_search()
    assert first.name == second.name == "scans" and list(first.train.ids) == list(second.train.ids)
    assert pool_dataset_name(first) != pool_dataset_name(second)
    assert pool_dataset_name(first).startswith("scans-16px-1ch-")
    # The same images load to the same name, so a later sweep reuses the pool; changed images get a new one.
    assert pool_dataset_name(load_dataset(tmp_path / "a" / "scans", seed=0).for_search()) == pool_dataset_name(first)
    Image.fromarray(np.full((16, 16), 7, np.uint8)).save(tmp_path / "a" / "scans" / "normal" / "0.png")
    assert pool_dataset_name(load_dataset(tmp_path / "a" / "scans", seed=0).for_search()) != pool_dataset_name(first)
    # Preprocessing is part of the identity too.
    assert pool_dataset_name(load_dataset(tmp_path / "b" / "scans", seed=0, image_size=8).for_search()) != pool_dataset_name(
        second
    )
