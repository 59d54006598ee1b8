"""`python -m search.pool`: listing, the sample grid and removal, on a pool written through the real storage API;
paths that hold no pool are refused with one error line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from generators.pool import PoolKey, SyntheticPool, canonical_slots, derive_seed
from search.pool import main


@pytest.fixture
def filled_pool(tmp_path: Path) -> str:
    root = str(tmp_path / "pool")
    pool = SyntheticPool(root)
    pool.register_dataset("toy-16px-1ch", [f"train/{index}" for index in range(4)], image_shape=(1, 16, 16))
    key = PoolKey(generator="oversample", settings_hash="abc123abc123", dataset="toy-16px-1ch")
    for class_index in (0, 1):
        slots = canonical_slots(3, ["train/0", "train/1"])
        seeds = [derive_seed(key, class_index, source_id, slot) for source_id, slot in slots]
        images = np.full((len(slots), 1, 16, 16), 60 * (class_index + 1), dtype=np.uint8)
        pool.add(key, class_index, slots, seeds, images)
    return root


def test_list_shows_counts_per_generator_settings_and_class(filled_pool: str, capsys: pytest.CaptureFixture) -> None:
    assert main(["--pool", filled_pool, "list"]) == 0
    output = capsys.readouterr().out
    assert "oversample" in output and "abc123abc123" in output
    assert output.count(" 3 ") >= 2


def test_grid_writes_a_png_per_class(filled_pool: str, tmp_path: Path) -> None:
    output = tmp_path / "grid.png"
    assert main(["--pool", filled_pool, "grid", "--output", str(output), "--per-class", "3"]) == 0
    assert output.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_remove_deletes_a_generators_entries(filled_pool: str, capsys: pytest.CaptureFixture) -> None:
    assert main(["--pool", filled_pool, "remove", "oversample"]) == 0
    assert "removed 6 images" in capsys.readouterr().out
    assert SyntheticPool(filled_pool).summary() == []
    assert main(["--pool", filled_pool, "grid"]) == 2
    assert "holds no images" in capsys.readouterr().err


def assert_one_error_line(error_output: str, *expected: str) -> None:
    assert error_output.startswith("error: ") and error_output.count("\n") == 1, error_output
    for text in expected:
        assert text in error_output


@pytest.mark.parametrize("command", [["list"], ["grid"], ["remove", "oversample"]])
def test_a_folder_that_is_not_a_pool_is_refused_and_left_alone(
    command: list[str], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    folder = tmp_path / "photos"
    (folder / "oversample--abc123abc123--holiday").mkdir(parents=True)
    (folder / "notes.txt").write_text("not a pool")
    if command[0] == "grid":
        command = [*command, "--output", str(tmp_path / "grid.png")]
    assert main(["--pool", str(folder), *command]) == 2
    assert_one_error_line(
        capsys.readouterr().err, str(folder), "is not a synthetic pool", "notes.txt", "<storage>/synthetic_pool"
    )
    assert sorted(path.name for path in folder.iterdir()) == ["notes.txt", "oversample--abc123abc123--holiday"]
    assert not (tmp_path / "grid.png").exists()


@pytest.mark.parametrize("command", [["list"], ["grid"]])
def test_a_path_with_nothing_there_says_there_is_no_pool(
    command: list[str], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    missing = tmp_path / "typo" / "synthetic_pool"
    assert main(["--pool", str(missing), *command]) == 2
    assert_one_error_line(capsys.readouterr().err, f"there is no synthetic pool at {missing}", "nothing exists there")
    assert not (tmp_path / "typo").exists()


def test_a_file_or_an_empty_folder_is_not_a_pool(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    file = tmp_path / "pool.npz"
    file.write_bytes(b"")
    assert main(["--pool", str(file), "list"]) == 2
    assert_one_error_line(capsys.readouterr().err, "is not a synthetic pool: it is a file")
    (tmp_path / "empty").mkdir()
    assert main(["--pool", str(tmp_path / "empty"), "list"]) == 2
    assert_one_error_line(capsys.readouterr().err, "there is no synthetic pool", "the folder is empty")


def test_the_first_write_marks_the_folder_as_a_pool(tmp_path: Path) -> None:
    root = tmp_path / "pool"
    pool = SyntheticPool(str(root))
    assert not root.exists(), "opening a pool writes nothing"
    pool.register_dataset("toy-16px-1ch", ["train/0"], image_shape=(1, 16, 16))
    assert json.loads((root / "pool.json").read_text())["format"] == 1


def test_a_pool_written_before_the_marker_still_lists_and_is_marked_on_its_next_write(
    filled_pool: str, capsys: pytest.CaptureFixture
) -> None:
    (Path(filled_pool) / "pool.json").unlink()
    assert main(["--pool", filled_pool, "list"]) == 0
    assert "oversample" in capsys.readouterr().out
    assert not (Path(filled_pool) / "pool.json").exists(), "listing writes nothing"
    SyntheticPool(filled_pool).register_dataset("other-16px-1ch", ["train/0"], image_shape=(1, 16, 16))
    assert (Path(filled_pool) / "pool.json").exists()


def test_a_pool_marker_of_another_format_is_refused(filled_pool: str, capsys: pytest.CaptureFixture) -> None:
    (Path(filled_pool) / "pool.json").write_text(json.dumps({"format": 99}))
    assert main(["--pool", filled_pool, "list"]) == 2
    assert_one_error_line(capsys.readouterr().err, "format 99", "reads format 1")


def test_an_output_that_cannot_be_written_is_one_error_line(
    filled_pool: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("")
    assert main(["--pool", filled_pool, "grid", "--output", str(not_a_folder / "grid.png")]) == 2
    assert_one_error_line(capsys.readouterr().err, str(not_a_folder))
