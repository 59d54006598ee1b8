"""Tests for the built-in phantom dataset: deterministic, imbalanced, ordinal and not trivially separable."""

from __future__ import annotations

import numpy as np
import pytest

from trainables.datasets import DatasetError, load_dataset
from trainables.datasets.phantom import PHANTOM_CLASS_NAMES, make_phantom, phantom_class_sizes


@pytest.fixture(scope="module")
def phantom_1200() -> tuple[np.ndarray, np.ndarray]:
    return make_phantom(1200, 32, seed=0)


def _central_dark_fraction(images: np.ndarray) -> np.ndarray:
    """Share of dark pixels in the central half of each image: grows with ventricle size."""
    size = images.shape[-1]
    centre = images[:, 0, size // 4 : size * 3 // 4, size // 4 : size * 3 // 4]
    return (centre < 70).mean(axis=(1, 2))


def test_same_arguments_give_identical_images_and_labels() -> None:
    first_images, first_labels = make_phantom(300, 32, seed=4)
    second_images, second_labels = make_phantom(300, 32, seed=4)
    np.testing.assert_array_equal(first_images, second_images)
    np.testing.assert_array_equal(first_labels, second_labels)


def test_another_seed_gives_other_images() -> None:
    first_images, _ = make_phantom(300, 32, seed=4)
    second_images, _ = make_phantom(300, 32, seed=5)
    assert not np.array_equal(first_images, second_images)


@pytest.mark.parametrize("image_size", [16, 32, 64])
def test_images_are_single_channel_uint8_of_the_requested_size(image_size: int) -> None:
    images, labels = make_phantom(40, image_size, seed=0)
    assert images.shape == (40, 1, image_size, image_size) and images.dtype == np.uint8
    assert labels.shape == (40,) and labels.dtype == np.int64
    # Not a blank or saturated image: a dark background and bright structures.
    assert images.min() < 40 and images.max() > 200


def test_class_sizes_follow_the_alzheimer_mri_shares(phantom_1200: tuple[np.ndarray, np.ndarray]) -> None:
    _, labels = phantom_1200
    assert np.bincount(labels).tolist() == [600, 420, 168, 12]
    # Shuffled, not sorted by class.
    assert not np.all(np.diff(labels) >= 0)


@pytest.mark.parametrize(
    ("count", "expected"), [(200, [100, 70, 28, 2]), (20, [8, 7, 3, 2]), (1000, [500, 350, 140, 10])]
)
def test_smallest_class_has_at_least_two_images(count: int, expected: list[int]) -> None:
    assert phantom_class_sizes(count).tolist() == expected
    assert np.bincount(make_phantom(count, 16, seed=0)[1]).tolist() == expected


def test_background_is_dark_and_brain_tissue_is_brighter(phantom_1200: tuple[np.ndarray, np.ndarray]) -> None:
    images, _ = phantom_1200
    corners = images[:, 0, :3, :3].mean()
    tissue_beside_centre = images[:, 0, 14:18, 8:11].mean()
    assert corners < 40 < 100 < tissue_beside_centre


def test_dark_centre_grows_with_the_grade(phantom_1200: tuple[np.ndarray, np.ndarray]) -> None:
    images, labels = phantom_1200
    feature = _central_dark_fraction(images)
    class_means = [feature[labels == grade].mean() for grade in range(len(PHANTOM_CLASS_NAMES))]
    assert all(lower < higher for lower, higher in zip(class_means, class_means[1:]))


def test_neighbouring_grades_overlap_on_the_dark_centre(phantom_1200: tuple[np.ndarray, np.ndarray]) -> None:
    images, labels = phantom_1200
    feature = _central_dark_fraction(images)
    for grade in range(len(PHANTOM_CLASS_NAMES) - 1):
        lower, higher = feature[labels == grade], feature[labels == grade + 1]
        best_balanced_accuracy = max(
            0.5 * ((higher > threshold).mean() + (lower <= threshold).mean()) for threshold in np.unique(feature)
        )
        assert best_balanced_accuracy < 0.9, f"grades {grade} and {grade + 1} are separable by one threshold"


def test_load_dataset_phantom_is_ordinal_with_named_classes_and_stratified_splits() -> None:
    splits = load_dataset("phantom", phantom_count=400, seed=1)
    search_data = splits.for_search()
    assert splits.ordinal and search_data.ordinal
    assert splits.class_names == PHANTOM_CLASS_NAMES
    assert (search_data.image_size, search_data.channels, search_data.num_classes) == (32, 1, 4)
    test = splits.load_test()
    assert len(splits.train) + len(splits.val) + len(test) == 400
    assert splits.train.class_counts(4).tolist() == [140, 98, 39, 2]
    assert splits.val.class_counts(4).tolist() == [20, 14, 6, 1]
    assert test.class_counts(4).tolist() == [40, 28, 11, 1]


def test_load_dataset_phantom_honours_size_channels_and_ordinal_override() -> None:
    splits = load_dataset("phantom", phantom_count=100, image_size=48, channels=3, ordinal=False)
    assert splits.train.images.shape[1:] == (3, 48, 48)
    assert not splits.ordinal
    np.testing.assert_array_equal(splits.train.images[:, 0], splits.train.images[:, 2])


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ((19, 32, 0), r"phantom count must be an integer >= 20, got 19"),
        ((100, 8, 0), r"phantom image_size must be an integer >= 16, got 8"),
        ((100, 32, -1), r"phantom seed must be a non-negative integer, got -1"),
    ],
)
def test_invalid_arguments_are_rejected(arguments: tuple[int, int, int], message: str) -> None:
    with pytest.raises(DatasetError, match=message):
        make_phantom(*arguments)
