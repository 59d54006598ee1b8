"""Tests for data sources (image folders, npz, parquet, medmnist), splits and what a trial may see."""

from __future__ import annotations

import dataclasses
import io
import json
import pickle
import shutil
import socket
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as parquet
import pytest
from PIL import Image

from spaces import ConfigError
from trainables.datasets import (
    DATA_SOURCES,
    FILE_SOURCES,
    SOURCE_FORMS,
    DatasetError,
    DatasetSplits,
    ImageSet,
    LoadOptions,
    SearchData,
    describe_sources,
    load_dataset,
)
from trainables.datasets.splits import assemble_splits, stratified_partition
from trainables.errors import TrainableInputError

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _class_image(label: int, size: int = 12, mode: str = "L") -> Image.Image:
    """An image whose pixel value encodes its class, so tests can check labels follow images."""
    value = 40 + 50 * label
    if mode == "RGB":
        return Image.new("RGB", (size, size), (value, value, value))
    return Image.new(mode, (size, size), value)


def _png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _write_class_folders(root: Path, class_sizes: dict[str, int], mode: str = "L", size: int = 12) -> None:
    for label, (class_name, count) in enumerate(sorted(class_sizes.items())):
        (root / class_name).mkdir(parents=True, exist_ok=True)
        for index in range(count):
            _class_image(label, size, mode).save(root / class_name / f"img_{index:03d}.png")


def _write_npz(path: Path, **arrays: np.ndarray) -> Path:
    np.savez(path, **arrays)
    return path


def _medmnist_arrays(rgb: bool = False, sizes: tuple[int, int, int] = (40, 10, 12)) -> dict[str, np.ndarray]:
    generator = np.random.default_rng(0)
    arrays = {}
    for split, count in zip(("train", "val", "test"), sizes):
        shape = (count, 28, 28, 3) if rgb else (count, 28, 28)
        arrays[f"{split}_images"] = generator.integers(0, 256, shape, dtype=np.uint8)
        arrays[f"{split}_labels"] = (np.arange(count) % 2).reshape(count, 1).astype(np.uint8)
    return arrays


def _class_values(image_set: ImageSet) -> np.ndarray:
    """The class each image's pixel value encodes (see _class_image)."""
    return (image_set.images[:, 0, 0, 0].astype(int) - 40) // 50


# --- image folders ---------------------------------------------------------------------------


def test_folder_of_class_folders_is_split_stratified_with_labels_from_folder_names(tmp_path: Path) -> None:
    _write_class_folders(tmp_path, {"mild": 20, "healthy": 30, "severe": 10})
    splits = load_dataset(tmp_path, seed=0)
    assert splits.class_names == ("healthy", "mild", "severe")
    assert splits.train.class_counts(3).tolist() == [21, 14, 7]
    assert splits.val.class_counts(3).tolist() == [3, 2, 1]
    assert splits.load_test().class_counts(3).tolist() == [6, 4, 2]
    for image_set in (splits.train, splits.val, splits.load_test()):
        np.testing.assert_array_equal(_class_values(image_set), image_set.labels)
    assert splits.train.ids[0].startswith(("healthy/img_", "mild/img_", "severe/img_"))
    assert splits.train.images.shape[1:] == (1, 12, 12) and not splits.ordinal


def test_folder_split_is_deterministic_per_seed_and_disjoint(tmp_path: Path) -> None:
    _write_class_folders(tmp_path, {"a": 20, "b": 20})
    first, again, other = (load_dataset(tmp_path, seed=seed) for seed in (3, 3, 4))
    np.testing.assert_array_equal(first.train.ids, again.train.ids)
    np.testing.assert_array_equal(first.load_test().ids, again.load_test().ids)
    assert set(first.train.ids) != set(other.train.ids)
    all_ids = [*first.train.ids, *first.val.ids, *first.load_test().ids]
    assert len(all_ids) == len(set(all_ids)) == 40


def test_folder_with_train_val_test_uses_them_and_reads_test_only_on_load_test(tmp_path: Path) -> None:
    _write_class_folders(tmp_path / "train", {"a": 6, "b": 4})
    _write_class_folders(tmp_path / "val", {"a": 2, "b": 2})
    _write_class_folders(tmp_path / "test", {"a": 3, "b": 1})
    (tmp_path / "test" / "b" / "broken.png").write_bytes(b"not a png")
    splits = load_dataset(tmp_path)
    assert (len(splits.train), len(splits.val)) == (10, 4)
    assert splits.val.ids.tolist() == ["val/a/img_000.png", "val/a/img_001.png", "val/b/img_000.png", "val/b/img_001.png"]
    with pytest.raises(DatasetError, match=r"cannot read image 'test/b/broken\.png'"):
        splits.load_test()


def test_folder_with_train_and_test_carves_val_out_of_train(tmp_path: Path) -> None:
    _write_class_folders(tmp_path / "train", {"a": 32, "b": 16})
    _write_class_folders(tmp_path / "test", {"a": 5, "b": 5})
    splits = load_dataset(tmp_path, split_fractions=(0.6, 0.2, 0.2))
    # val share of train = 0.2 / (0.6 + 0.2)
    assert splits.val.class_counts(2).tolist() == [8, 4]
    assert splits.train.class_counts(2).tolist() == [24, 12]
    assert len(splits.load_test()) == 10
    assert all(image_id.startswith("train/") for image_id in splits.val.ids)


def test_folder_named_validation_is_the_val_split(tmp_path: Path) -> None:
    _write_class_folders(tmp_path / "train", {"a": 4, "b": 4})
    _write_class_folders(tmp_path / "validation", {"a": 1, "b": 1})
    splits = load_dataset(tmp_path)
    assert splits.val.ids.tolist() == ["validation/a/img_000.png", "validation/b/img_000.png"]
    # No test folder: the test split is carved out of train.
    assert len(splits.train) + len(splits.load_test()) == 8


def test_corrupt_image_fails_naming_the_file_and_returns_nothing(tmp_path: Path) -> None:
    _write_class_folders(tmp_path / "train", {"MildDemented": 3, "NonDemented": 3})
    (tmp_path / "train" / "MildDemented" / "img_003.png").write_bytes(_png_bytes(_class_image(0))[:40])
    with pytest.raises(DatasetError, match=r"cannot read image 'train/MildDemented/img_003\.png'"):
        load_dataset(tmp_path)


def test_mixed_grayscale_and_rgb_folder_becomes_rgb_and_channels_converts(tmp_path: Path) -> None:
    _write_class_folders(tmp_path, {"a": 10, "b": 10})
    _class_image(1, mode="RGB").save(tmp_path / "b" / "colour.png")
    rgb = load_dataset(tmp_path)
    assert rgb.for_search().channels == 3
    gray = load_dataset(tmp_path, channels=1)
    assert gray.train.images.shape[1] == 1
    np.testing.assert_array_equal(_class_values(gray.train), gray.train.labels)


def test_images_are_resized_once_with_antialiasing(tmp_path: Path) -> None:
    checkerboard = (np.indices((32, 32)).sum(axis=0) % 2 * 255).astype(np.uint8)
    for class_name in ("a", "b"):
        (tmp_path / class_name).mkdir()
        for index in range(5):
            Image.fromarray(checkerboard).save(tmp_path / class_name / f"{index}.png")
    splits = load_dataset(tmp_path, image_size=8)
    assert splits.train.images.shape[1:] == (1, 8, 8)
    # A nearest-neighbour resize would keep pure black and white; bilinear antialiasing averages.
    assert np.all(np.abs(splits.train.images.astype(int) - 128) < 20)


def test_images_of_different_sizes_need_image_size(tmp_path: Path) -> None:
    _write_class_folders(tmp_path, {"a": 4, "b": 4})
    _class_image(1, size=20).save(tmp_path / "b" / "large.png")
    with pytest.raises(DatasetError, match=r"image 'b/large\.png' is 20x20 px but 'a/img_000\.png' is 12x12 px"):
        load_dataset(tmp_path)
    assert load_dataset(tmp_path, image_size=16).train.images.shape[2:] == (16, 16)


def test_sixteen_bit_images_are_scaled_not_clipped(tmp_path: Path) -> None:
    for label, class_name in enumerate(("a", "b")):
        (tmp_path / class_name).mkdir()
        for index in range(5):
            Image.fromarray(np.full((8, 8), 1000 + 30000 * label, dtype=np.uint16)).save(tmp_path / class_name / f"{index}.png")
    splits = load_dataset(tmp_path)
    values = {label: int(splits.train.images[splits.train.labels == label].max()) for label in (0, 1)}
    assert values == {0: round(1000 * 255 / 65535), 1: round(31000 * 255 / 65535)}


@pytest.mark.parametrize(
    ("layout", "message"),
    [
        ({"a": 5, "b": 0}, r"class folders \['b'\] in '.*' hold no images"),
        ({"only": 5}, r"has a single class folder \['only'\]; a classifier needs at least 2"),
        ({}, r"has no class subfolders"),
    ],
)
def test_folder_layout_errors(tmp_path: Path, layout: dict[str, int], message: str) -> None:
    _write_class_folders(tmp_path, layout)
    with pytest.raises(DatasetError, match=message):
        load_dataset(tmp_path)


def test_val_folder_with_a_class_train_lacks_is_rejected(tmp_path: Path) -> None:
    _write_class_folders(tmp_path / "train", {"a": 4, "b": 4})
    _write_class_folders(tmp_path / "val", {"a": 1, "c": 1})
    with pytest.raises(DatasetError, match=r"folders \['c'\] that are not classes of the training folder"):
        load_dataset(tmp_path)


def test_split_folders_without_train_are_rejected(tmp_path: Path) -> None:
    _write_class_folders(tmp_path / "val", {"a": 1, "b": 1})
    with pytest.raises(DatasetError, match=r"has \['val'\] folders but no train/ folder"):
        load_dataset(tmp_path)


# --- npz (MedMNIST layout) -------------------------------------------------------------------


def test_npz_in_medmnist_layout_keeps_its_own_splits(tmp_path: Path) -> None:
    arrays = _medmnist_arrays()
    splits = load_dataset(_write_npz(tmp_path / "tiny.npz", **arrays))
    assert splits.name == "tiny" and splits.class_names == ("0", "1")
    np.testing.assert_array_equal(splits.train.images[:, 0], arrays["train_images"])
    np.testing.assert_array_equal(splits.train.labels, arrays["train_labels"][:, 0])
    assert splits.train.labels.dtype == np.int64
    assert splits.train.ids[17] == "train/000017" and splits.val.ids[0] == "val/000000"
    np.testing.assert_array_equal(splits.load_test().images[:, 0], arrays["test_images"])


def test_rgb_npz_is_channels_first_and_converts_to_grayscale(tmp_path: Path) -> None:
    arrays = _medmnist_arrays(rgb=True)
    path = _write_npz(tmp_path / "rgb.npz", **arrays, class_names=np.array(["benign", "malignant"]))
    splits = load_dataset(path)
    assert splits.class_names == ("benign", "malignant")
    np.testing.assert_array_equal(splits.train.images, arrays["train_images"].transpose(0, 3, 1, 2))
    gray = load_dataset(path, channels=1, image_size=14)
    assert gray.train.images.shape[1:] == (1, 14, 14)
    assert gray.load_test().images.shape[1:] == (1, 14, 14)


def test_npz_test_split_is_not_read_until_load_test(tmp_path: Path) -> None:
    arrays = _medmnist_arrays()
    # An object array needs allow_pickle to be read: touching it before load_test would fail.
    arrays["test_images"] = np.array([None] * 12, dtype=object)
    splits = load_dataset(_write_npz(tmp_path / "lazy.npz", **arrays))
    assert len(splits.for_search().train) == 40
    assert "held back" in splits.describe()
    with pytest.raises(DatasetError, match=r"cannot read array 'test_images' from '.*lazy\.npz'"):
        splits.load_test()


def test_npz_with_train_and_test_only_carves_a_stratified_val(tmp_path: Path) -> None:
    arrays = _medmnist_arrays(sizes=(80, 10, 12))
    del arrays["val_images"], arrays["val_labels"]
    splits = load_dataset(_write_npz(tmp_path / "no_val.npz", **arrays), split_fractions=(0.6, 0.2, 0.2))
    # val share of train = 0.2 / 0.8 = 1/4 of 40 images per class
    assert splits.val.class_counts(2).tolist() == [10, 10]
    assert splits.train.class_counts(2).tolist() == [30, 30]
    assert len(splits.load_test()) == 12


def test_npz_missing_keys_are_named_with_the_keys_found(tmp_path: Path) -> None:
    arrays = _medmnist_arrays()
    del arrays["train_labels"], arrays["val_images"]
    with pytest.raises(
        DatasetError,
        match=r"missing keys \['train_labels', 'val_images'\]; it has keys \['test_images', 'test_labels', "
        r"'train_images', 'val_labels'\]",
    ):
        load_dataset(_write_npz(tmp_path / "broken.npz", **arrays))


def test_npz_labels_out_of_range_for_its_class_names_are_rejected(tmp_path: Path) -> None:
    arrays = _medmnist_arrays()
    arrays["val_labels"][0] = 2
    path = _write_npz(tmp_path / "labels.npz", **arrays, class_names=np.array(["a", "b"]))
    with pytest.raises(DatasetError, match=r"label 2 in the val split of 'labels' is out of range: 2 classes"):
        load_dataset(path)


def test_npz_with_a_single_class_is_rejected(tmp_path: Path) -> None:
    arrays = _medmnist_arrays()
    for split in ("train", "val", "test"):
        arrays[f"{split}_labels"][:] = 0
    with pytest.raises(DatasetError, match=r"has 1 class \(\['0'\]\); a classifier needs at least 2"):
        load_dataset(_write_npz(tmp_path / "one.npz", **arrays))


def test_npz_with_float_images_is_rejected_naming_the_dtype(tmp_path: Path) -> None:
    arrays = _medmnist_arrays()
    arrays["train_images"] = arrays["train_images"].astype(np.float32)
    with pytest.raises(DatasetError, match=r"'train_images' in '.*' has dtype float32; images must be uint8"):
        load_dataset(_write_npz(tmp_path / "float.npz", **arrays))


@pytest.mark.skipif(not (SHARED_DATA / "pneumoniamnist.npz").is_file(), reason="shared MedMNIST data not present")
def test_real_pneumoniamnist_keeps_the_official_splits() -> None:
    splits = load_dataset(SHARED_DATA / "pneumoniamnist.npz")
    assert splits.train.class_counts(2).tolist() == [1214, 3494]
    assert splits.val.class_counts(2).tolist() == [135, 389]
    assert splits.load_test().class_counts(2).tolist() == [234, 390]
    search_data = splits.for_search()
    assert (search_data.image_size, search_data.channels, search_data.num_classes) == (28, 1, 2)
    resized = load_dataset(SHARED_DATA / "pneumoniamnist.npz", image_size=32, channels=3)
    assert resized.train.images.shape == (4708, 3, 32, 32)


# --- parquet (Hugging Face layout) -----------------------------------------------------------


def _hugging_face_table(labels: list[int], splits: list[str] | None = None, as_struct: bool = True) -> pa.Table:
    encoded = [_png_bytes(_class_image(label)) for label in labels]
    images = pa.array([{"bytes": data, "path": None} for data in encoded]) if as_struct else pa.array(encoded)
    columns = {"image": images, "label": pa.array(labels, type=pa.int64())}
    if splits is not None:
        columns["split"] = pa.array(splits)
    names = ["Mild_Demented", "Moderate_Demented", "Non_Demented"]
    features = {"image": {"_type": "Image"}, "label": {"names": names, "_type": "ClassLabel"}}
    return pa.table(columns).replace_schema_metadata({"huggingface": json.dumps({"info": {"features": features}})})


def test_parquet_without_split_column_is_split_stratified_with_hugging_face_class_names(tmp_path: Path) -> None:
    labels = [0] * 20 + [1] * 10 + [2] * 30
    parquet.write_table(_hugging_face_table(labels), tmp_path / "alzheimer.parquet")
    splits = load_dataset(tmp_path / "alzheimer.parquet")
    assert splits.class_names == ("Mild_Demented", "Moderate_Demented", "Non_Demented")
    assert splits.train.class_counts(3).tolist() == [14, 7, 21]
    np.testing.assert_array_equal(_class_values(splits.train), splits.train.labels)
    assert splits.train.ids[0] == "row/000000"


def test_parquet_split_column_is_used_and_test_rows_decode_only_on_load_test(tmp_path: Path) -> None:
    labels = [0, 1, 2] * 6
    row_splits = ["train"] * 12 + ["validation"] * 3 + ["test"] * 3
    table = _hugging_face_table(labels, row_splits, as_struct=False)
    broken = table.column("image").to_pylist()
    broken[-1] = b"corrupt"
    table = table.set_column(0, "image", pa.array(broken))
    parquet.write_table(table, tmp_path / "split.parquet")
    splits = load_dataset(tmp_path / "split.parquet")
    assert (len(splits.train), len(splits.val)) == (12, 3)
    assert splits.val.ids.tolist() == ["row/000012", "row/000013", "row/000014"]
    with pytest.raises(DatasetError, match=r"cannot read image 'split\.parquet row 17'"):
        splits.load_test()


def test_parquet_without_label_column_names_the_columns_found(tmp_path: Path) -> None:
    parquet.write_table(pa.table({"image": pa.array([b"x"]), "grade": pa.array([1])}), tmp_path / "bad.parquet")
    with pytest.raises(DatasetError, match=r"no column\(s\) \['label'\]; it has columns \['image', 'grade'\]"):
        load_dataset(tmp_path / "bad.parquet")


# --- medmnist: ------------------------------------------------------------------------------


def test_medmnist_without_network_fails_fast_and_suggests_passing_the_npz(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_network(*arguments: object, **keywords: object) -> None:
        raise socket.gaierror("Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    monkeypatch.setenv("MEDMNIST_ROOT", str(tmp_path))
    with pytest.raises(DatasetError, match=r"(?s)Downloading needs network access.*--data path/to/breastmnist\.npz"):
        load_dataset("medmnist:breastmnist")
    assert list(tmp_path.iterdir()) == []  # no half-downloaded file left behind


def test_medmnist_uses_the_cached_file_with_class_names_and_ordinal_task(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    arrays = _medmnist_arrays()
    for split in ("train", "val", "test"):
        arrays[f"{split}_labels"] = (np.arange(len(arrays[f"{split}_labels"])) % 5).reshape(-1, 1)
    _write_npz(tmp_path / "retinamnist.npz", **arrays)
    monkeypatch.setenv("MEDMNIST_ROOT", str(tmp_path))
    splits = load_dataset("medmnist:retinamnist")
    assert splits.name == "retinamnist" and splits.ordinal
    assert splits.class_names == ("0", "1", "2", "3", "4")
    assert len(splits.train) == 40


@pytest.mark.skipif(not (SHARED_DATA / "breastmnist.npz").is_file(), reason="shared MedMNIST data not present")
def test_medmnist_breastmnist_from_cache_has_its_class_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shutil.copy(SHARED_DATA / "breastmnist.npz", tmp_path / "breastmnist.npz")
    monkeypatch.setenv("MEDMNIST_ROOT", str(tmp_path))
    splits = load_dataset("medmnist:breastmnist")
    assert splits.class_names == ("malignant", "normal, benign") and not splits.ordinal
    assert splits.train.class_counts(2).tolist() == [147, 399]


def test_medmnist_unknown_flag_lists_known_flags_and_3d_is_unsupported() -> None:
    with pytest.raises(DatasetError, match=r"unknown MedMNIST dataset 'lungmnist'; known: .*pneumoniamnist"):
        load_dataset("medmnist:lungmnist")
    with pytest.raises(DatasetError, match=r"'organmnist3d' .* is not supported: only 2D single-label"):
        load_dataset("medmnist:organmnist3d")


# --- sources and options ---------------------------------------------------------------------


def test_unknown_source_lists_the_accepted_forms(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"(?s)'no/such/place' does not exist.*phantom.*medmnist:<flag>.*\.npz"):
        load_dataset("no/such/place")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(DatasetError, match=r"is a file but neither \.npz nor \.parquet"):
        load_dataset(tmp_path / "notes.txt")
    with pytest.raises(DatasetError, match=r"npz file '.*missing\.npz' does not exist"):
        load_dataset(tmp_path / "missing.npz")
    assert "medmnist:<flag>" in describe_sources()


def test_a_data_source_registered_under_a_new_name_is_loaded_through_the_registry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(DATA_SOURCES, "_entries", dict(DATA_SOURCES._entries))
    monkeypatch.setitem(FILE_SOURCES, ".tiny", "tiny")
    calls: list[tuple[str, LoadOptions]] = []

    # What adding a source takes: one function and one registration line (and the suffix rule above).
    @DATA_SOURCES.register("tiny")
    def load_tiny(location: str, options: LoadOptions) -> DatasetSplits:
        calls.append((location, options))
        size = options.image_size or 4
        labels = np.arange(20) % 2
        # Each image's pixels hold its label, so the test can see labels follow images through the split.
        images = np.broadcast_to(labels.astype(np.uint8)[:, None, None, None], (20, 1, size, size)).copy()
        train = ImageSet(images=images, labels=labels, ids=np.array([f"tiny/{index}" for index in range(20)]))
        return assemble_splits(
            options, name=Path(location).stem, class_names=("even", "odd"), train=train, val=None, test_loader=None
        )

    path = tmp_path / "numbers.tiny"
    path.write_text("")
    splits = load_dataset(path, image_size=8, seed=3, split_fractions=[0.6, 0.2, 0.2])
    assert calls == [(str(path), LoadOptions(image_size=8, seed=3, split_fractions=(0.6, 0.2, 0.2)))]
    assert splits.name == "numbers" and splits.class_names == ("even", "odd") and not splits.ordinal
    assert (len(splits.train), len(splits.val), len(splits.load_test())) == (12, 4, 4)
    assert splits.image_size == 8
    np.testing.assert_array_equal(splits.train.images[:, 0, 0, 0], splits.train.labels)


def test_a_source_string_meaning_an_unregistered_source_names_the_registered_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(FILE_SOURCES, ".tiny", "tiny")
    (tmp_path / "numbers.tiny").write_text("")
    with pytest.raises(
        ConfigError,
        match=r"^data: 'tiny' is not allowed; unknown data source; registered: image_folder, manifest, medmnist, npz, "
        r"parquet, phantom$",
    ):
        load_dataset(tmp_path / "numbers.tiny")
    with pytest.raises(ConfigError, match=r"registered: image_folder, .*; did you mean 'parquet'\?"):
        DATA_SOURCES.get("parket")


def test_every_registered_data_source_is_described_for_help_and_errors() -> None:
    assert sorted(SOURCE_FORMS) == DATA_SOURCES.names() == ["image_folder", "manifest", "medmnist", "npz", "parquet", "phantom"]
    for form, _ in SOURCE_FORMS.values():
        assert f"  {form} " in describe_sources()


def test_load_options_are_checked_and_normalised_when_made() -> None:
    options = LoadOptions(image_size=np.int64(16), channels=np.int64(3), seed=np.int64(2), split_fractions=[0.5, 0.25, 0.25])
    assert options == LoadOptions(image_size=16, channels=3, seed=2, split_fractions=(0.5, 0.25, 0.25))
    assert type(options.image_size) is int and type(options.seed) is int and isinstance(options.split_fractions, tuple)
    assert (options.ordinal_or(True), LoadOptions(ordinal=False).ordinal_or(True)) == (True, False)
    with pytest.raises(DatasetError, match=r"image_size must be a positive integer .* got True"):
        LoadOptions(image_size=True)
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.seed = 5  # type: ignore[misc]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {"split_fractions": (0.5, 0.5, 0.5)},
            r"split_fractions must be three positive numbers .* got \(0\.5, 0\.5, 0\.5\)",
        ),
        ({"split_fractions": (0.8, 0.2, 0.0)}, r"split_fractions must be three positive numbers"),
        ({"image_size": 0}, r"image_size must be a positive integer .* got 0"),
        ({"channels": 2}, r"channels must be 1 \(grayscale\), 3 \(RGB\) or None .* got 2"),
        ({"seed": -3}, r"seed must be a non-negative integer, got -3"),
        ({"ordinal": 1}, r"ordinal must be True, False or None \(the source's default\), got 1"),
    ],
)
def test_invalid_options_are_rejected_before_loading(options: dict[str, object], message: str) -> None:
    with pytest.raises(DatasetError, match=message):
        load_dataset("phantom", **options)  # type: ignore[arg-type]


def test_dataset_error_is_a_trainable_input_error() -> None:
    assert issubclass(DatasetError, TrainableInputError) and issubclass(DatasetError, ValueError)


# --- what a trial sees ----------------------------------------------------------------------


def test_search_data_holds_no_test_split_and_pickles_small(tmp_path: Path) -> None:
    arrays = _medmnist_arrays(sizes=(200, 50, 300))
    splits = load_dataset(_write_npz(tmp_path / "data.npz", **arrays))
    search_data = splits.for_search()
    field_names = {field.name for field in dataclasses.fields(SearchData)}
    assert field_names == {"name", "class_names", "ordinal", "train", "val"}
    pickled = pickle.dumps(search_data)
    image_bytes = search_data.train.images.nbytes + search_data.val.images.nbytes
    # The 300 test images (235 kB) would double it.
    assert len(pickled) < image_bytes + 20_000
    restored = pickle.loads(pickled)
    np.testing.assert_array_equal(restored.val.images, search_data.val.images)
    assert restored.class_names == ("0", "1")


def test_dataset_splits_pickle_with_a_lazy_test_loader(tmp_path: Path) -> None:
    arrays = _medmnist_arrays()
    splits = pickle.loads(pickle.dumps(load_dataset(_write_npz(tmp_path / "data.npz", **arrays))))
    assert isinstance(splits, DatasetSplits)
    np.testing.assert_array_equal(splits.load_test().images[:, 0], arrays["test_images"])


def test_describe_counts_each_split_per_class(tmp_path: Path) -> None:
    _write_class_folders(tmp_path, {"healthy": 20, "sick": 10})
    splits = load_dataset(tmp_path)
    description = splits.describe()
    assert "2 classes, 12x12 px, 1 channel" in description
    assert "train     21: healthy 14, sick 7" in description
    assert "test  held back" in description
    assert "test       6: healthy 4, sick 2" in splits.describe(include_test=True)


def test_image_set_arrays_are_read_only_and_subset_copies(tmp_path: Path) -> None:
    splits = load_dataset("phantom", phantom_count=40)
    with pytest.raises(ValueError, match="read-only"):
        splits.train.images[0, 0, 0, 0] = 1
    picked = splits.train.subset(np.array([2, 0, 2]))
    assert picked.ids.tolist() == [splits.train.ids[2], splits.train.ids[0], splits.train.ids[2]]
    with pytest.raises(DatasetError, match=r"subset indices must lie in \[0, \d+\], got values from 0 to 999"):
        splits.train.subset(np.array([0, 999]))
    with pytest.raises(DatasetError, match=r"label 3 is out of range for 2 classes"):
        splits.train.class_counts(2)


def test_image_set_rejects_arrays_of_the_wrong_shape() -> None:
    with pytest.raises(
        DatasetError, match=r"images must be a uint8 array shaped \[N, C, H, W\], got dtype uint8 and shape \(4, 8, 8\)"
    ):
        ImageSet(images=np.zeros((4, 8, 8), np.uint8), labels=np.zeros(4, np.int64), ids=np.array(list("abcd")))
    with pytest.raises(DatasetError, match=r"labels must be shaped \[N\] with N = 4"):
        ImageSet(images=np.zeros((4, 1, 8, 8), np.uint8), labels=np.zeros(3, np.int64), ids=np.array(list("abcd")))


# --- stratified splitting --------------------------------------------------------------------


def test_stratified_partition_follows_the_fractions_per_class_deterministically() -> None:
    labels = np.repeat([0, 1, 2], [100, 50, 10])
    parts = stratified_partition(labels, (0.7, 0.1, 0.2), seed=0)
    assert [np.bincount(labels[part], minlength=3).tolist() for part in parts] == [[70, 35, 7], [10, 5, 1], [20, 10, 2]]
    again = stratified_partition(labels, (0.7, 0.1, 0.2), seed=0)
    assert all(np.array_equal(first, second) for first, second in zip(parts, again))
    assert np.array_equal(np.sort(np.concatenate(parts)), np.arange(len(labels)))


@pytest.mark.parametrize(("class_size", "expected"), [(1, [1, 0, 0]), (2, [1, 1, 0]), (3, [1, 1, 1]), (4, [2, 1, 1])])
def test_a_tiny_class_fills_train_first_then_val_then_test(class_size: int, expected: list[int]) -> None:
    labels = np.repeat([0, 1], [100, class_size])
    parts = stratified_partition(labels, (0.7, 0.1, 0.2), seed=0)
    assert [int((labels[part] == 1).sum()) for part in parts] == expected
