"""Patient-level grouping, attacked: no patient in two splits, real subsets and generator fit subsets that keep
whole patients, nested and stratified by patient, and a fingerprint that knows the grouping but not the salt."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.medical_files import write_kermany_folder
from trainables.datasets import DatasetError, ImageSet, load_dataset
from trainables.datasets.patients import PatientKeys, groups_in_order
from trainables.datasets.splits import stratified_partition
from trainables.real_subset import largest_real_subset_counts, real_subset_indices
from trainables.synthetic_mixing import generator_fit_subset


def _patients(count: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Labels and patient keys: `count` patients of 1 to 6 images each, 30% of patients in class 1, a few with an
    image of the other class too (a patient's class is its most common label)."""
    generator = np.random.default_rng(seed)
    labels, groups = [], []
    for patient in range(count):
        label = int(generator.random() < 0.3)
        images = int(generator.integers(1, 7))
        labels += [label] * images
        if patient % 7 == 0:
            labels.append(1 - label)
            images += 1
        groups += [f"patient-{patient:04d}"] * images
    order = generator.permutation(len(labels))  # images of one patient are not adjacent in a real listing
    return np.array(labels)[order], np.array(groups)[order]


def _patients_of(groups: np.ndarray, indices: np.ndarray) -> set[str]:
    return set(groups[indices].tolist())


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_no_patient_lies_in_two_parts_and_each_class_is_divided_by_patients(seed: int) -> None:
    labels, groups = _patients(300, seed)
    parts = stratified_partition(labels, (0.7, 0.1, 0.2), seed, groups)
    assert sum(len(part) for part in parts) == len(labels)
    assert np.array_equal(np.sort(np.concatenate(parts)), np.arange(len(labels)))
    patient_sets = [_patients_of(groups, part) for part in parts]
    for first in range(3):
        for second in range(first + 1, 3):
            assert patient_sets[first].isdisjoint(patient_sets[second])
    # Shares hold for patients (within one patient of rounding per class), not only for images.
    members = groups_in_order(groups)
    classes = np.array([np.argmax(np.bincount(labels[positions])) for positions in members])
    keys = np.array([groups[positions[0]] for positions in members])
    for class_index in (0, 1):
        class_patients = set(keys[classes == class_index].tolist())
        for part, share in zip(patient_sets, (0.7, 0.1, 0.2)):
            assert abs(len(part & class_patients) - share * len(class_patients)) <= 1


def test_one_image_per_patient_draws_what_an_ungrouped_split_draws() -> None:
    labels = np.random.default_rng(3).integers(0, 3, 200)
    ids = np.array([f"image{index}" for index in range(200)])
    for seed in range(4):
        grouped = stratified_partition(labels, (0.7, 0.1, 0.2), seed, ids)
        plain = stratified_partition(labels, (0.7, 0.1, 0.2), seed)
        assert all(np.array_equal(a, b) for a, b in zip(grouped, plain))
        assert np.array_equal(real_subset_indices(labels, 0.3, seed, ids), real_subset_indices(labels, 0.3, seed))


@pytest.mark.parametrize("seed", [0, 5])
def test_a_real_subset_keeps_whole_patients_nested_and_a_fraction_of_each_class_s_patients(seed: int) -> None:
    labels, groups = _patients(200, seed)
    members = groups_in_order(groups)
    classes = np.array([np.argmax(np.bincount(labels[positions])) for positions in members])
    previous: set[int] = set()
    for fraction in (0.1, 0.3, 0.6, 1.0):
        subset = real_subset_indices(labels, fraction, seed, groups)
        kept = _patients_of(groups, subset)
        # Whole patients: every image of a kept patient is in the subset.
        assert set(subset.tolist()) == {int(p) for p in np.flatnonzero(np.isin(groups, list(kept)))}
        for class_index in (0, 1):
            class_keys = {groups[members[unit][0]] for unit in np.flatnonzero(classes == class_index)}
            assert len(kept & class_keys) == max(1, int(np.ceil(round(fraction * len(class_keys), 9))))
        assert previous <= set(subset.tolist())  # nested
        previous = set(subset.tolist())


def test_a_generator_is_fit_only_on_patients_of_every_trial_that_may_use_it() -> None:
    """The attack: find a trial whose real subset excludes a patient the generator learnt from."""
    labels, groups = _patients(150, 1)
    images = np.zeros((len(labels), 1, 4, 4), np.uint8)
    train = ImageSet(images=images, labels=labels, ids=np.array([f"i{n}" for n in range(len(labels))]), groups=groups)
    from trainables.datasets.image_set import SearchData

    data = SearchData(name="grouped", class_names=("a", "b"), ordinal=False, train=train, val=train.subset(np.arange(3)))
    for seed in range(6):
        fit_indices, _ = generator_fit_subset(data, {0: 0.2, 1: 0.2}, seed)
        fit_patients = _patients_of(groups, fit_indices)
        for fraction in (0.2, 0.5, 0.9):
            trial_patients = _patients_of(groups, real_subset_indices(labels, fraction, seed, groups))
            assert fit_patients <= trial_patients, (seed, fraction)


def test_the_largest_subset_counts_bound_every_seed_s_subset() -> None:
    labels, groups = _patients(120, 2)
    bound = largest_real_subset_counts(labels, 2, 0.3, groups)
    for seed in range(30):
        counts = np.bincount(labels[real_subset_indices(labels, 0.3, seed, groups)], minlength=2)
        assert np.all(counts <= bound)
    assert np.array_equal(
        largest_real_subset_counts(labels, 2, 0.3, None), np.bincount(labels[real_subset_indices(labels, 0.3, 0)], minlength=2)
    )


def test_keys_are_salted_per_load_and_order_is_by_first_image() -> None:
    first, second = PatientKeys(), PatientKeys()
    assert first.key("MRN-1") == first.key("MRN-1") != second.key("MRN-1")
    assert "MRN" not in first.key("MRN-1")
    groups = np.array(["z", "a", "z", "m", "a"])
    assert [positions.tolist() for positions in groups_in_order(groups)] == [[0, 2], [1, 4], [3]]


def test_a_kermany_folder_split_by_file_name_keeps_each_person_in_one_split(tmp_path: Path) -> None:
    write_kermany_folder(tmp_path / "chest_xray", patients=20)
    grouped = load_dataset(tmp_path / "chest_xray", patient_from_filename=r"(person\d+)_")
    again = load_dataset(tmp_path / "chest_xray", patient_from_filename=r"(person\d+)_")
    people = {}
    test = grouped.load_test()
    for split, image_set in (("train", grouped.train), ("val", grouped.val), ("test", test)):
        for image_id in image_set.ids:
            person = image_id.split("/")[1].split("_")[0]
            people.setdefault(person, set()).add(split)
    assert all(len(splits) == 1 for splits in people.values())
    # A new load draws new salts but the same splits (a resumed sweep trains on what it trained on), and the
    # fingerprint does not depend on the salt.
    assert np.array_equal(grouped.train.ids, again.train.ids) and np.array_equal(grouped.val.ids, again.val.ids)
    assert not np.array_equal(grouped.train.groups, again.train.groups)
    assert grouped.for_search().fingerprint == again.for_search().fingerprint
    plain = load_dataset(tmp_path / "chest_xray")
    assert plain.train.groups is None
    assert plain.for_search().fingerprint != grouped.for_search().fingerprint
    described = grouped.describe()
    assert "patients:" in described and "images of" in described and "(" in described
    # Without the pattern, images of one person land on both sides: what the option is for.
    plain_people = {}
    for split, image_set in (("train", plain.train), ("val", plain.val), ("test", plain.load_test())):
        for image_id in image_set.ids:
            plain_people.setdefault(image_id.split("/")[1].split("_")[0], set()).add(split)
    assert any(len(splits) > 1 for splits in plain_people.values())


def test_a_pattern_that_misses_a_file_or_captures_nothing_is_refused(tmp_path: Path) -> None:
    write_kermany_folder(tmp_path / "chest_xray", patients=4)
    with pytest.raises(DatasetError, match=r"does not match '.*person.*png'"):
        load_dataset(tmp_path / "chest_xray", patient_from_filename=r"(patient\d+)_")
    with pytest.raises(DatasetError, match="no \\(group\\)"):
        load_dataset(tmp_path / "chest_xray", patient_from_filename=r"person\d+_")
    with pytest.raises(DatasetError, match="not a valid regular expression"):
        load_dataset(tmp_path / "chest_xray", patient_from_filename=r"(person")


def test_a_source_split_that_puts_one_patient_on_both_sides_is_refused(tmp_path: Path) -> None:
    """The attack: a person's image in train/ and another of theirs in val/."""
    write_kermany_folder(tmp_path / "data" / "train", patients=6)
    write_kermany_folder(tmp_path / "data" / "val", patients=3, seed=1)
    with pytest.raises(DatasetError, match=r"patient\(s\) .* both the train and the val split"):
        load_dataset(tmp_path / "data", patient_from_filename=r"(person\d+)_")
