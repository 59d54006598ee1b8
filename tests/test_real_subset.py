"""Tests for the real-data subset a trial trains on: stratified, deterministic, nested."""

from __future__ import annotations

import math

import numpy as np
import pytest

from trainables.real_subset import real_subset_counts, real_subset_identity, real_subset_indices

# Imbalanced like the Alzheimer MRI data, shuffled so class members are interleaved.
CLASS_SIZES = (320, 224, 90, 7)
LABELS = np.random.default_rng(0).permutation(np.repeat(np.arange(len(CLASS_SIZES)), CLASS_SIZES))


@pytest.mark.parametrize("seed", [0, 1, 17])
def test_smaller_fraction_lies_inside_larger_fraction(seed: int) -> None:
    fractions = [0.05, 0.1, 0.3, 0.5, 0.7, 1.0]
    subsets = [set(real_subset_indices(LABELS, fraction, seed).tolist()) for fraction in fractions]
    for smaller, larger in zip(subsets, subsets[1:]):
        assert smaller < larger


@pytest.mark.parametrize("seed", [0, 5])
def test_per_class_fractions_are_nested_class_by_class(seed: int) -> None:
    small = real_subset_indices(LABELS, {0: 0.2, 1: 0.5, 3: 0.3}, seed)
    large = real_subset_indices(LABELS, {0: 0.6, 1: 0.5, 3: 1.0}, seed)
    assert set(small.tolist()) <= set(large.tolist())
    # A class's subset does not depend on the other classes' fractions.
    alone = real_subset_indices(LABELS, 0.2, seed)
    assert set(small[LABELS[small] == 0].tolist()) == set(alone[LABELS[alone] == 0].tolist())


@pytest.mark.parametrize("fraction", [0.01, 0.3, 0.5, 0.77, 1.0])
def test_each_class_keeps_ceil_of_its_share(fraction: float) -> None:
    chosen = real_subset_indices(LABELS, fraction, seed=3)
    counts = np.bincount(LABELS[chosen], minlength=len(CLASS_SIZES))
    expected = [max(1, math.ceil(round(fraction * size, 9))) for size in CLASS_SIZES]
    assert counts.tolist() == expected


def test_fraction_that_is_inexact_in_floating_point_is_not_rounded_up() -> None:
    labels = np.repeat([0, 1], 10)
    # 0.3 * 10 is 3.0000000000000004 in floating point; the subset must still hold 3 per class.
    assert len(real_subset_indices(labels, 0.3, seed=0)) == 6


def test_tiny_fraction_keeps_at_least_one_image_per_class() -> None:
    chosen = real_subset_indices(LABELS, 1e-6, seed=0)
    assert np.bincount(LABELS[chosen]).tolist() == [1, 1, 1, 1]


def test_result_is_sorted_unique_int64_indices_into_labels() -> None:
    chosen = real_subset_indices(LABELS, 0.4, seed=2)
    assert chosen.dtype == np.int64
    assert np.all(np.diff(chosen) > 0)
    assert chosen.min() >= 0 and chosen.max() < len(LABELS)


def test_same_fraction_and_seed_give_the_same_subset() -> None:
    first = real_subset_indices(LABELS, 0.3, seed=11)
    second = real_subset_indices(LABELS.copy(), 0.3, seed=11)
    np.testing.assert_array_equal(first, second)


def test_different_seeds_give_different_subsets() -> None:
    first = real_subset_indices(LABELS, 0.3, seed=0)
    second = real_subset_indices(LABELS, 0.3, seed=1)
    assert len(first) == len(second)
    assert set(first.tolist()) != set(second.tolist())


def test_per_class_mapping_gives_each_class_its_fraction_and_omitted_classes_all_images() -> None:
    chosen = real_subset_indices(LABELS, {0: 0.1, 2: 0.5}, seed=0)
    counts = np.bincount(LABELS[chosen], minlength=len(CLASS_SIZES))
    assert counts.tolist() == [32, 224, 45, 7]


def test_numpy_scalar_fraction_and_keys_are_accepted() -> None:
    chosen = real_subset_indices(LABELS, {np.int64(0): np.float64(0.5)}, seed=np.int64(0))
    assert np.bincount(LABELS[chosen]).tolist() == [160, 224, 90, 7]


@pytest.mark.parametrize("fraction", [0.01, 0.3, 0.5, {0: 0.3, 3: 0.5}, 1.0])
def test_counts_known_without_drawing_match_every_seeds_subset(fraction: float | dict[int, float]) -> None:
    counts = real_subset_counts(np.bincount(LABELS), fraction)
    for seed in (0, 1, 7):
        assert np.bincount(LABELS[real_subset_indices(LABELS, fraction, seed=seed)]).tolist() == counts.tolist()


def test_identity_ignores_id_order_and_is_sixteen_hex_digits() -> None:
    ids = np.array(["train/000003", "train/000001", "train/000002"])
    identity = real_subset_identity("phantom", ids)
    assert len(identity) == 16 and int(identity, 16) >= 0
    assert identity == real_subset_identity("phantom", ids[::-1])
    # Stored next to generated images, so it must not change between runs or versions.
    assert identity == "50125ebf5c5170dd"


def test_identity_changes_with_dataset_name_and_with_the_chosen_ids() -> None:
    ids = np.array(["train/000001", "train/000002"])
    identity = real_subset_identity("phantom", ids)
    assert identity != real_subset_identity("pneumoniamnist", ids)
    assert identity != real_subset_identity("phantom", ids[:1])
    # The encoding is unambiguous: moving a separator between name and ids changes the hash.
    assert real_subset_identity("a", np.array(["b,c"])) != real_subset_identity("a", np.array(["b", "c"]))
