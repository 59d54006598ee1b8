"""`python -m search.pool`: listing, the sample grid and removal, on a pool written through the real storage API."""

from __future__ import annotations

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
