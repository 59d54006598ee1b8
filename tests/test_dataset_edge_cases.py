"""Datasets that are wrong in the ways real folders and files are: each is refused with a DatasetError naming the file,
folder or class, what is wrong and what is allowed, when the data is loaded (before any Ray work), or loads correctly.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as parquet
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from search.run import main
from trainables.datasets import DatasetError, load_dataset
from trainables.datasets.medmnist_source import supported_flags


def write_folder(root: Path, class_sizes: dict[str, int], size: int = 12, mode: str = "L") -> Path:
    for label, (class_name, count) in enumerate(class_sizes.items()):
        (root / class_name).mkdir(parents=True, exist_ok=True)
        for index in range(count):
            Image.new(mode, (size, size), 40 + 50 * label).save(root / class_name / f"img_{index:03d}.png")
    return root


def write_npz(path: Path, labels: list[int], image_count: int | None = None, **extra: np.ndarray) -> Path:
    count = len(labels) if image_count is None else image_count
    images = np.random.default_rng(0).integers(0, 256, (count, 8, 8), dtype=np.uint8)
    np.savez(path, train_images=images, train_labels=np.array(labels, dtype=np.int64), **extra)
    return path


# --- class sizes and labels ------------------------------------------------------------------


def test_a_class_with_one_image_is_refused_naming_the_class_and_the_minimum(tmp_path: Path) -> None:
    root = write_folder(tmp_path / "data", {"common": 20, "rare": 1})
    with pytest.raises(DatasetError, match=r"class 'rare' of 'data' has 1 image.*at least 2.*one to train on, one to val"):
        load_dataset(root)


def test_a_class_with_one_image_in_an_npz_without_val_is_refused(tmp_path: Path) -> None:
    path = write_npz(tmp_path / "tiny.npz", [0] * 10 + [1] * 10 + [2])
    with pytest.raises(DatasetError, match=r"class '2' of 'tiny' has 1 image"):
        load_dataset(path)


def test_a_class_with_two_images_loads_with_one_in_train_and_one_in_val(tmp_path: Path) -> None:
    splits = load_dataset(write_folder(tmp_path / "data", {"common": 20, "rare": 2}))
    assert splits.train.class_counts(2)[1] == 1 and splits.val.class_counts(2)[1] == 1


def test_a_source_with_its_own_val_split_may_lack_a_class_there(tmp_path: Path) -> None:
    root = tmp_path / "data"
    write_folder(root / "train", {"a": 5, "b": 1})
    write_folder(root / "val", {"a": 2})
    write_folder(root / "test", {"a": 2, "b": 1})
    splits = load_dataset(root)
    assert splits.train.class_counts(2).tolist() == [5, 1]


@pytest.mark.parametrize("layout", ["flat", "train_only"])
def test_a_single_class_is_refused(tmp_path: Path, layout: str) -> None:
    root = tmp_path / "data"
    write_folder(root / "train" if layout == "train_only" else root, {"only": 5})
    with pytest.raises(DatasetError, match=r"single class folder \['only'\]; a classifier needs at least 2"):
        load_dataset(root)
    with pytest.raises(DatasetError, match=r"'one' has 1 class \(\['0'\]\); a classifier needs at least 2"):
        load_dataset(write_npz(tmp_path / "one.npz", [0] * 6))


def test_labels_out_of_range_for_the_class_names_are_refused(tmp_path: Path) -> None:
    path = write_npz(tmp_path / "named.npz", [0, 1, 5, 0, 1, 0], class_names=np.array(["a", "b"]))
    with pytest.raises(DatasetError, match=r"label 5 in the train split of 'named' is out of range: 2 classes allow labels 0..1"):
        load_dataset(path)


def test_negative_labels_are_refused_naming_the_key(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"'train_labels' in '.*negative.npz' has label -1; labels must be 0..K-1"):
        load_dataset(write_npz(tmp_path / "negative.npz", [0, 1, -1, 0, 1, 0]))


def test_test_labels_out_of_range_are_refused_when_the_npz_is_loaded_not_after_the_sweep(tmp_path: Path) -> None:
    images = np.zeros((4, 8, 8), np.uint8)
    path = write_npz(
        tmp_path / "late.npz",
        [0, 1] * 6,
        class_names=np.array(["a", "b"]),
        val_images=images,
        val_labels=np.array([0, 1, 0, 1]),
        test_images=images,
        test_labels=np.array([0, 1, 2, 1]),
    )
    with pytest.raises(DatasetError, match=r"'test_labels' in '.*late.npz' has label 2.*2 classes allow labels 0..1"):
        load_dataset(path)


@pytest.mark.parametrize("split", ["train", "test"])
def test_npz_arrays_of_different_lengths_are_refused_naming_both(tmp_path: Path, split: str) -> None:
    if split == "train":
        path = write_npz(tmp_path / "mismatch.npz", [0, 1] * 5, image_count=7)
        expected = r"'train_labels' in '.*mismatch.npz' has 10 labels but the images of that split number 7"
    else:
        images = np.zeros((4, 8, 8), np.uint8)
        path = write_npz(
            tmp_path / "mismatch.npz",
            [0, 1] * 5,
            val_images=images,
            val_labels=np.array([0, 1, 0, 1]),
            test_images=images,
            test_labels=np.array([0, 1, 0]),
        )
        expected = r"'test_labels' in '.*mismatch.npz' has 3 labels but the images of that split number 4"
    with pytest.raises(DatasetError, match=expected):
        load_dataset(path)


# --- images ----------------------------------------------------------------------------------


def test_images_of_mixed_sizes_need_image_size_and_load_with_it(tmp_path: Path) -> None:
    root = write_folder(tmp_path / "data", {"a": 4, "b": 4}, size=12)
    Image.new("L", (20, 16), 9).save(root / "b" / "odd.png")
    with pytest.raises(DatasetError, match=r"image 'b/odd.png' is 20x16 px \(not square\); pass image_size"):
        load_dataset(root)
    Image.new("L", (20, 20), 9).save(root / "b" / "odd.png")
    with pytest.raises(DatasetError, match=r"'b/odd.png' is 20x20 px but 'a/img_000.png' is 12x12 px.*unless image_size"):
        load_dataset(root)
    splits = load_dataset(root, image_size=16)
    assert splits.train.images.shape[1:] == (1, 16, 16)


def test_images_of_mixed_modes_load_as_one_channel_count(tmp_path: Path) -> None:
    root = tmp_path / "data"
    modes = ["L", "RGB", "RGBA", "P", "LA", "1", "I;16", "I", "F", "CMYK"]
    for class_name in ("a", "b"):
        (root / class_name).mkdir(parents=True)
        for mode in modes:
            suffix = "jpg" if mode == "CMYK" else "tiff" if mode in ("I", "F") else "png"
            Image.new(mode, (12, 12)).save(root / class_name / f"{mode.replace(';', '_')}.{suffix}")
    splits = load_dataset(root, split_fractions=(0.5, 0.25, 0.25))
    assert splits.channels == 3 and splits.train.images.dtype == np.uint8
    assert load_dataset(root, channels=1, split_fractions=(0.5, 0.25, 0.25)).channels == 1


def test_a_sixteen_bit_png_is_scaled_to_eight_bits_not_clipped(tmp_path: Path) -> None:
    root = tmp_path / "data"
    for label, value in enumerate((1000, 60000)):
        (root / f"class_{label}").mkdir(parents=True)
        for index in range(4):
            Image.fromarray(np.full((8, 8), value, np.uint16)).save(root / f"class_{label}" / f"{index}.png")
    with Image.open(root / "class_0" / "0.png") as image:
        assert image.mode.startswith("I")  # really 16-bit on disk
    splits = load_dataset(root)
    values = sorted({int(pixel) for pixel in np.unique(splits.train.images)})
    assert values == [round(1000 * 255 / 65535), round(60000 * 255 / 65535)]


def test_a_truncated_image_is_refused_naming_the_file(tmp_path: Path) -> None:
    root = write_folder(tmp_path / "data", {"a": 4, "b": 4})
    data = (root / "a" / "img_001.png").read_bytes()
    (root / "a" / "img_001.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(DatasetError, match=r"cannot read image 'a/img_001.png'"):
        load_dataset(root)


# --- folders ---------------------------------------------------------------------------------


def test_an_empty_folder_is_refused_saying_what_it_should_hold(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match=r"'.*empty' has no class subfolders \(found 0 loose image files\); expected one"):
        load_dataset(tmp_path / "empty")


def test_class_folders_without_images_are_refused_naming_them(tmp_path: Path) -> None:
    root = write_folder(tmp_path / "data", {"a": 4})
    (root / "b").mkdir()
    (root / "b" / "notes.txt").write_text("not an image")
    message = r"class folders \['b'\] in '.*data' hold no images \(files read: photo formats .*\.png"
    with pytest.raises(DatasetError, match=message):
        load_dataset(root)


def test_a_symlink_loop_is_refused_naming_the_link(tmp_path: Path) -> None:
    root = write_folder(tmp_path / "data", {"a": 4, "b": 4})
    os.symlink(root / "a", root / "a" / "again")
    with pytest.raises(DatasetError, match=r"'a/again' in '.*data' leads back to 'a' \(a symbolic link.*a loop"):
        load_dataset(root)


def test_a_folder_linked_into_two_classes_is_refused(tmp_path: Path) -> None:
    root = write_folder(tmp_path / "data", {"a": 4, "b": 4})
    os.symlink(root / "a", root / "b" / "borrowed")
    with pytest.raises(DatasetError, match=r"'b/borrowed' in '.*data' leads back to 'a'.*one folder linked twice"):
        load_dataset(root)


def test_a_class_folder_linked_from_elsewhere_is_read_once(tmp_path: Path) -> None:
    elsewhere = write_folder(tmp_path / "elsewhere", {"b": 4})
    root = write_folder(tmp_path / "data", {"a": 4})
    os.symlink(elsewhere / "b", root / "b")
    assert load_dataset(root).class_names == ("a", "b")


def test_a_test_folder_with_an_unknown_class_is_refused_when_loaded_not_after_the_sweep(tmp_path: Path) -> None:
    root = tmp_path / "data"
    write_folder(root / "train", {"a": 4, "b": 4})
    write_folder(root / "test", {"a": 2, "c": 2})
    with pytest.raises(DatasetError, match=r"has folders \['c'\] that are not classes of the training folder"):
        load_dataset(root)


# --- class names -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        (["../../escape", "b"], r"class name '../../escape' of 'named'.*path separators"),
        (["a/b", "c"], r"class name 'a/b'.*path separators"),
        (["a\\b", "c"], r"class name 'a\\\\b'.*path separators"),
        (["..", "c"], r"class name '..'"),
        (["", "c"], r"class name ''"),
        (["ok", "bad\x00name"], r"class name 'bad\\x00name'.*control characters"),
        (["***", "c"], r"class name '\*\*\*'.*letter or digit"),
        (["Mild", "mild"], r"class names 'Mild' and 'mild'.*same metric name 'mild'"),
        (["a", "a"], r"class names 'a' and 'a'"),
    ],
)
def test_class_names_that_could_name_a_path_or_collide_are_refused(tmp_path: Path, names: list[str], expected: str) -> None:
    path = write_npz(tmp_path / "named.npz", [0, 1] * 6, class_names=np.array(names))
    with pytest.raises(DatasetError, match=expected):
        load_dataset(path)


def png() -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (8, 8), 7).save(buffer, format="PNG")
    return buffer.getvalue()


def test_parquet_test_rows_with_labels_out_of_range_are_refused_when_loaded(tmp_path: Path) -> None:
    splits = ["train"] * 8 + ["val"] * 4 + ["test"] * 2
    table = pa.table({"image": [png() for _ in splits], "label": [0, 1] * 6 + [0, 3], "split": splits})
    parquet.write_table(table, tmp_path / "late.parquet")
    with pytest.raises(DatasetError, match=r"a test row of '.*late.parquet' has label 3; 2 classes allow labels 0..1"):
        load_dataset(tmp_path / "late.parquet")


def test_parquet_class_names_from_metadata_are_checked_too(tmp_path: Path) -> None:
    table = pa.table({"image": [png() for _ in range(12)], "label": [0, 1] * 6})
    table = table.replace_schema_metadata({b"class_names": json.dumps(["../up", "fine"]).encode()})
    parquet.write_table(table, tmp_path / "meta.parquet")
    with pytest.raises(DatasetError, match=r"class name '../up' of 'meta'"):
        load_dataset(tmp_path / "meta.parquet")


def test_unicode_class_names_with_letters_are_accepted(tmp_path: Path) -> None:
    root = write_folder(tmp_path / "data", {"Normal ü": 4, "Démence légère": 4})
    assert load_dataset(root).class_names == ("Démence légère", "Normal ü")


def test_a_bad_dataset_is_one_error_line_from_the_command_before_ray(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    import ray

    root = write_folder(tmp_path / "data", {"common": 20, "rare": 1})
    assert main(["--data", str(root), "--storage", str(tmp_path / "results"), "--image-size", "16"]) == 2
    error = capsys.readouterr().err
    assert error.count("error:") == 1 and "class 'rare'" in error
    assert not ray.is_initialized()


# --- fuzzed source strings -------------------------------------------------------------------


@settings(
    max_examples=200, deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    source=st.one_of(
        st.text(max_size=30),
        st.sampled_from(
            ["medmnist:", "medmnist:../x", "x.npz", "x.parquet", "~/no", "a\x00b.npz", "medmnist:\x00", "nope.NPZ", " "]
        ),
    )
)
def test_a_fuzzed_data_source_string_is_a_dataset_error(source: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # an empty folder: relative strings name nothing
    monkeypatch.setenv("MEDMNIST_ROOT", str(tmp_path / "medmnist"))
    try:
        is_folder = Path(source.strip()).expanduser().is_dir()
    except (ValueError, OSError):
        is_folder = False
    flag = source.strip().lower().removeprefix("medmnist:")
    if source.strip() in ("phantom", "") or is_folder or flag in supported_flags():
        return  # real sources (the phantom, folders such as / or ~, MedMNIST downloads) are tested on their own
    with pytest.raises(DatasetError):
        load_dataset(source)


def test_a_class_folder_named_with_a_control_character_is_refused(tmp_path: Path) -> None:
    root = write_folder(tmp_path / "data", {"a": 4, "new\nline": 4})
    with pytest.raises(DatasetError, match=r"class name 'new\\nline' of 'data' is refused: it holds control characters"):
        load_dataset(root)
