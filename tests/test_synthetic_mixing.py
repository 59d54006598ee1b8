"""What one trial takes from the pool: synthetic counts per class (add / balance, all / minority / named classes,
per-class proportions), the mix with the real subset, and fetching that survives a pool actor restart."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import ray
import torch

from generators.base import resolve_generator_settings
from generators.pool_actor import get_synthetic_pool
from search.config import SweepConfig
from search.synthetic_setup import GeneratorUse, prepare_generators
from spaces import TrialConfig
from trainables.datasets import load_dataset
from trainables.errors import TrainableInputError
from trainables.real_subset import real_subset_indices
from trainables.synthetic import mix_real_and_synthetic, synthetic_counts, synthetic_images_for

CLASSES = ("non_demented", "very_mild_demented", "mild_demented", "moderate_demented")
# Kwon's Alzheimer training counts: the last two classes are the minority.
TRAIN_COUNTS = np.array([2566, 1781, 724, 49])


def counts_for(synthetic: dict, real_counts: np.ndarray = TRAIN_COUNTS) -> list[int]:
    config = TrialConfig.model_validate({"synthetic": synthetic}).synthetic
    return synthetic_counts(config, real_counts, CLASSES, TRAIN_COUNTS).tolist()


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
    with pytest.raises(TrainableInputError, match="'severe'.*non_demented, very_mild_demented"):
        counts_for({"proportion": {"severe": 1.0}})
    with pytest.raises(TrainableInputError, match="synthetic.classes: '7'"):
        counts_for({"proportion": 1.0, "classes": ["7"]})


def test_mixing_flags_every_synthetic_sample_and_keeps_its_provenance() -> None:
    real_images = torch.zeros((5, 1, 4, 4), dtype=torch.uint8)
    real_labels = torch.tensor([0, 0, 1, 1, 1])
    synthetic = [
        (0, np.full((2, 1, 4, 4), 200, np.uint8), [{"image_id": "a"}, {"image_id": "b"}]),
        (1, np.zeros((0, 1, 4, 4), np.uint8), []),
        (2, np.full((1, 1, 4, 4), 100, np.uint8), [{"image_id": "c"}]),
    ]
    mixed = mix_real_and_synthetic(real_images, real_labels, synthetic)
    assert mixed.images.shape == (8, 1, 4, 4) and mixed.images.dtype == torch.uint8
    assert mixed.labels.tolist() == [0, 0, 1, 1, 1, 0, 0, 2]
    assert mixed.is_synthetic.tolist() == [False] * 5 + [True] * 3
    assert (mixed.images[mixed.is_synthetic].amax(dim=(1, 2, 3)) > 0).all()
    assert [record["image_id"] for record in mixed.provenance] == ["a", "b", "c"]


@pytest.mark.slow
def test_trials_keep_getting_new_images_after_the_pool_actor_restarts(tmp_path: Path, ray_cluster: None) -> None:
    data = load_dataset("phantom", image_size=16, phantom_count=120).for_search()
    settings = resolve_generator_settings("oversample", {"rotation_probability": 1.0})
    smaller, larger = (
        TrialConfig.model_validate({"real_fraction": 0.5, "synthetic": {
            "proportion": proportion, "generator": "oversample", "settings": settings,
        }})
        for proportion in (0.5, 1.0)
    )
    root = str(tmp_path / "pool")
    source = prepare_generators([GeneratorUse("oversample", settings)], [smaller, larger], data, SweepConfig(), root)
    real_indices = real_subset_indices(data.train.labels, 0.5, 0)
    _, before = synthetic_images_for(smaller.synthetic, source, data, real_indices, 0)

    # The pool actor loses its attachments with its memory; the trial's request carries them back.
    ray.kill(get_synthetic_pool(root), no_restart=False)
    counts, after = synthetic_images_for(larger.synthetic, source, data, real_indices, 0)
    real_counts = np.bincount(data.train.labels[real_indices], minlength=data.num_classes)
    assert counts.tolist() == real_counts.tolist()
    for (class_index, images, records), (_, first_images, first_records) in zip(after, before):
        assert len(images) == real_counts[class_index]
        # Nothing stored was made again: the smaller trial's images are the first of the larger one's.
        np.testing.assert_array_equal(images[: len(first_images)], first_images)
        assert records[: len(first_records)] == first_records
    assert ray.get(get_synthetic_pool(root).generated_count.remote()) == sum(len(images) for _, images, _ in after) - sum(
        len(images) for _, images, _ in before
    )
