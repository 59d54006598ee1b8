"""What one trial takes from the pool: synthetic counts per class (add / balance, all / minority / named classes,
per-class proportions), the mix with the real subset, and fetching that survives a pool actor restart."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import ray
import torch

from generators.actors.pool_actor import get_synthetic_pool
from generators.pool import SyntheticPool
from search.settings.sweep_config import SweepConfig
from search.synthetic.demand import GeneratorDemand
from search.synthetic.preparation import prepare_generators
from spaces import TrialConfig
from trainables.datasets import DatasetError, ImageSet, SearchData, load_dataset
from trainables.real_subset import real_subset_indices
from trainables.synthetic_mixing import SyntheticDraw, fetch_synthetic_images, mix_real_and_synthetic, synthetic_counts

CLASSES = ("non_demented", "very_mild_demented", "mild_demented", "moderate_demented")
# Kwon's Alzheimer training counts: the last two classes are the minority.
TRAIN_COUNTS = np.array([2566, 1781, 724, 49])


def counts_only_data(counts: np.ndarray) -> SearchData:
    """A dataset with these training counts per class (1-pixel images: only the counts matter here)."""
    labels = np.repeat(np.arange(len(counts)), counts)
    images = ImageSet(
        np.zeros((len(labels), 1, 1, 1), np.uint8), labels, np.array([f"train/{index}" for index in range(len(labels))])
    )
    return SearchData(name="counts", class_names=CLASSES, ordinal=True, train=images, val=images)


ALZHEIMER = counts_only_data(TRAIN_COUNTS)


def counts_for(synthetic: dict, real_counts: np.ndarray = TRAIN_COUNTS) -> list[int]:
    config = TrialConfig.from_mapping({"synthetic": synthetic}).synthetic
    return synthetic_counts(config, real_counts, ALZHEIMER).tolist()


def test_add_mode_gives_each_class_its_proportion_of_the_trials_real_count() -> None:
    assert counts_for({"proportion": 0.5}) == [1283, 890, 362, 24]
    # Counts follow the trial's real subset (30% here), not the whole training split.
    assert counts_for({"proportion": 1.0}, np.array([770, 534, 217, 15])) == [770, 534, 217, 15]


def test_balance_mode_tops_chosen_classes_up_to_the_largest() -> None:
    assert counts_for({"proportion": 1.0, "mode": "balance"}) == [0, 785, 1842, 2517]
    assert counts_for({"proportion": 0.5, "mode": "balance"}) == [0, 392, 921, 1258]


def test_minority_and_named_classes_get_synthetic_images_and_the_others_none() -> None:
    # "Mild and Moderate only": the classes under the mean training count.
    assert counts_for({"proportion": 1.0, "classes": "minority"}) == [0, 0, 724, 49]
    assert counts_for({"proportion": 1.0, "classes": ["moderate_demented", "0"]}) == [2566, 0, 0, 49]


def test_per_class_proportions_by_name_or_index() -> None:
    assert counts_for({"proportion": {"mild_demented": 0.5, "3": 2.0}}) == [0, 0, 362, 98]


def test_an_unknown_class_is_named_with_the_classes_allowed() -> None:
    with pytest.raises(DatasetError, match="'severe' is not a class of this dataset; classes: non_demented, very_mild_demented"):
        counts_for({"proportion": {"severe": 1.0}})
    with pytest.raises(DatasetError, match="'7' is not a class"):
        counts_for({"proportion": 1.0, "classes": ["7"]})


def test_mixing_flags_every_synthetic_sample_and_keeps_its_provenance() -> None:
    real_images = torch.zeros((5, 1, 4, 4), dtype=torch.uint8)
    real_labels = torch.tensor([0, 0, 1, 1, 1])
    first, second = SyntheticDraw(0, 2, "ddpm--abc--data--fit-1"), SyntheticDraw(2, 1, "ddpm--abc--data--fit-1")
    read_only = np.full((2, 1, 4, 4), 200, np.uint8)
    read_only.flags.writeable = False  # as arrays from Ray's object store are
    mixed = mix_real_and_synthetic(real_images, real_labels, [(first, read_only), (second, np.full((1, 1, 4, 4), 100, np.uint8))])
    assert mixed.images.shape == (8, 1, 4, 4) and mixed.images.dtype == torch.uint8
    assert mixed.labels.tolist() == [0, 0, 1, 1, 1, 0, 0, 2]
    assert mixed.is_synthetic.tolist() == [False] * 5 + [True] * 3
    assert (mixed.images[mixed.is_synthetic].amax(dim=(1, 2, 3)) > 0).all()
    # The synthetic samples, in order, are the first 2 of class 0 and the first 1 of class 2 of that pool key.
    assert mixed.draws == (first, second)


@pytest.mark.slow
def test_trials_keep_getting_new_images_after_the_pool_actor_restarts(tmp_path: Path, ray_cluster: None) -> None:
    data = load_dataset("phantom", image_size=16, phantom_count=120).for_search()
    smaller, larger = (
        TrialConfig.from_mapping({"real_fraction": 0.5, "synthetic": {
            "proportion": proportion, "generator": "oversample", "settings": {"rotation_probability": 1.0},
        }})
        for proportion in (0.5, 1.0)
    )
    root = str(tmp_path / "pool")
    demand = GeneratorDemand(smaller.synthetic.settings, np.zeros(data.num_classes, np.int64))
    prepared = prepare_generators([demand], {index: 0.5 for index in range(data.num_classes)}, data, SweepConfig(), root)
    real_indices = real_subset_indices(data.train.labels, 0.5, 0)
    before = fetch_synthetic_images(smaller.synthetic, prepared.source, data, real_indices, 0)

    # The restarted pool actor finds the generator actors again by their names.
    ray.kill(get_synthetic_pool(root), no_restart=False)
    after = fetch_synthetic_images(larger.synthetic, prepared.source, data, real_indices, 0)
    real_counts = np.bincount(data.train.labels[real_indices], minlength=data.num_classes)
    assert [draw.count for draw, _ in after] == real_counts.tolist()
    for (draw, images), (first_draw, first_images) in zip(after, before):
        assert len(images) == real_counts[draw.class_index] and draw.pool_key == first_draw.pool_key
        # Nothing stored was made again: the smaller trial's images are the first of the larger one's.
        np.testing.assert_array_equal(images[: len(first_images)], first_images)
    # Each class holds exactly what the larger trial asked for: nothing was made twice.
    stored = {row["class_index"]: row["count"] for row in SyntheticPool(root).summary()}
    assert stored == {draw.class_index: draw.count for draw, _ in after}
