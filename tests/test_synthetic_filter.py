"""The label-fidelity filter: fit on the generator's fit subset only (never more real images than the generator saw),
it drops drawn synthetic images planted with a wrong label, keeps the canonical order of the rest, and a trial
reports how many it dropped."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from search.settings.sweep_config import SweepConfig
from search.synthetic.demand import GeneratorDemand
from search.synthetic.label_filters import attach_label_filters, space_uses_label_filter
from search.synthetic.preparation import prepare_generators
from spaces import ConfigError, TrialConfig
from spaces.space import space_from_mapping
from trainables.datasets import ImageSet, SearchData
from trainables.errors import TrainableInputError
from trainables.replicas import build_replica
from trainables.synthetic_filter import SmallClassifierRecipe
from trainables.synthetic_mixing import (
    SyntheticDraw,
    SyntheticSource,
    filter_draw,
    filtered_counts,
    generator_fit_subset,
    label_filter_of,
)
from trainables.trial import subset_counts

CLASSES = ("dark", "bright", "striped")


def separable_images(labels: np.ndarray, seed: int) -> np.ndarray:
    """16 px images a small CNN tells apart at a glance: dark noise, bright noise, or vertical stripes."""
    rng = np.random.default_rng(seed)
    images = np.empty((len(labels), 1, 16, 16), np.uint8)
    for position, label in enumerate(labels):
        if label == 0:
            images[position] = rng.integers(0, 60, (1, 16, 16))
        elif label == 1:
            images[position] = rng.integers(195, 256, (1, 16, 16))
        else:
            images[position] = np.where(np.arange(16) % 4 < 2, 240, 15)[None, None, :] + rng.integers(0, 10, (1, 16, 16))
    return images


def separable_data() -> SearchData:
    labels = np.repeat(np.arange(3), [40, 30, 10])
    train = ImageSet(separable_images(labels, 0), labels, np.array([f"train/{index}" for index in range(len(labels))]))
    val_labels = np.repeat(np.arange(3), 5)
    val = ImageSet(separable_images(val_labels, 1), val_labels, np.array([f"val/{index}" for index in range(15)]))
    return SearchData(name="separable", class_names=CLASSES, ordinal=False, train=train, val=val)


DATA = separable_data()
FIT_FRACTIONS = {0: 0.5, 1: 0.5, 2: 0.5}


@pytest.fixture(scope="module")
def source() -> SyntheticSource:
    plain = SyntheticSource(pool_root="unused", fit_fractions=FIT_FRACTIONS)
    return attach_label_filters(plain, DATA, [0, 1], SmallClassifierRecipe(epochs=12))


def test_each_seed_has_a_filter_fit_on_that_seeds_generator_fit_subset_only(source: SyntheticSource) -> None:
    assert sorted(source.label_filters) == [0, 1]
    for seed, label_filter in source.label_filters.items():
        indices, identity = generator_fit_subset(DATA, FIT_FRACTIONS, seed)
        assert label_filter.fit_subset == identity and label_filter.fit_images == len(indices) < len(DATA.train)
    assert source.label_filters[0].fit_subset != source.label_filters[1].fit_subset


def test_images_planted_with_a_wrong_label_are_dropped_and_the_rest_keep_their_order(source: SyntheticSource) -> None:
    # Twelve images drawn for class "dark"; those at positions 2, 5, 9 and 11 are really bright or striped.
    true_labels = np.zeros(12, np.int64)
    true_labels[[2, 5, 9]] = 1
    true_labels[11] = 2
    images = separable_images(true_labels, seed=7)
    draw = SyntheticDraw(0, 12, "key")
    filtered, kept = filter_draw(draw, images, source.label_filters[0], threshold=0.5)
    assert filtered.dropped == (2, 5, 9, 11) and filtered.kept_count == 8 and filtered.count == 12
    np.testing.assert_array_equal(kept, images[true_labels == 0])
    assert filtered_counts((filtered, SyntheticDraw(2, 3, "key")), 3).tolist() == [4, 0, 0]
    # Threshold 0 keeps everything.
    assert filter_draw(draw, images, source.label_filters[0], threshold=0.0)[0].dropped == ()


def test_a_trial_reports_what_the_filter_dropped(source: SyntheticSource) -> None:
    @dataclass
    class Drawn:  # what subset_counts reads of a replica
        labels: torch.Tensor
        is_synthetic: torch.Tensor
        synthetic_draws: tuple[SyntheticDraw, ...]

    replica = Drawn(torch.tensor([0, 1, 2, 0, 0]), torch.tensor([False, False, False, True, True]),
                    (SyntheticDraw(0, 5, "key", (1, 3, 4)),))
    counts = subset_counts(replica, DATA)
    assert counts["synthetic_filtered"] == 3 and counts["synthetic_filtered_dark"] == 3
    assert counts["synthetic_filtered_bright"] == 0 and counts["synthetic_count_dark"] == 2


def test_a_filter_asked_for_without_one_fitted_names_the_seed() -> None:
    with pytest.raises(TrainableInputError, match="no label filter for repeat seed 3"):
        label_filter_of(SyntheticSource("unused", FIT_FRACTIONS), 3)


def test_filter_keys_are_validated_and_found_in_a_space() -> None:
    config = TrialConfig.from_mapping({"synthetic": {"proportion": 1.0, "filter": "label_fidelity", "filter_threshold": 0.7}})
    assert config.synthetic.filter == "label_fidelity" and config.to_flat()["synthetic.filter_threshold"] == 0.7
    with pytest.raises(ConfigError, match="synthetic.filter"):
        TrialConfig.from_mapping({"synthetic": {"filter": "by_eye"}})
    with pytest.raises(ConfigError, match="synthetic.filter_threshold"):
        TrialConfig.from_mapping({"synthetic": {"filter_threshold": 1.5}})
    searched = space_from_mapping({
        "fixed": {"synthetic.proportion": 0.5, "synthetic.generator": "oversample"},
        "parameters": {"synthetic.filter": {"choice": ["none", "label_fidelity"]}},
    }, "test")
    plain = space_from_mapping({"fixed": {"synthetic.proportion": 0.5, "synthetic.generator": "oversample"}}, "test")
    assert space_uses_label_filter(searched) and not space_uses_label_filter(plain)


@pytest.mark.slow
def test_a_trial_drops_from_the_images_it_drew_from_the_pool(tmp_path: Path, ray_cluster: None) -> None:
    trials = {
        threshold: TrialConfig.from_mapping({"real_fraction": 0.5, "synthetic": {
            "proportion": 1.0, "generator": "oversample", "settings": {"rotation_probability": 1.0},
            "filter": "label_fidelity", "filter_threshold": threshold,
        }})
        for threshold in (0.0, 0.999999)
    }
    demand = GeneratorDemand(trials[0.0].synthetic.settings, np.zeros(DATA.num_classes, np.int64))
    prepared = prepare_generators([demand], FIT_FRACTIONS, DATA, SweepConfig(), str(tmp_path / "pool"))
    source = attach_label_filters(prepared.source, DATA, [0], SmallClassifierRecipe(epochs=3))
    everything = build_replica(trials[0.0], DATA, 0, torch.device("cpu"), source)
    strict = build_replica(trials[0.999999], DATA, 0, torch.device("cpu"), source)
    # Both drew the same first n images of each class; the strict filter dropped some of them, nothing else changed.
    assert [draw.count for draw in strict.synthetic_draws] == [draw.count for draw in everything.synthetic_draws]
    assert all(draw.dropped == () for draw in everything.synthetic_draws)
    dropped = sum(len(draw.dropped) for draw in strict.synthetic_draws)
    assert dropped > 0
    assert int(strict.is_synthetic.sum()) == int(everything.is_synthetic.sum()) - dropped
    assert subset_counts(strict, DATA)["synthetic_filtered"] == dropped
