"""A real local Ray sweep whose space includes synthetic proportion: images come from the shared pool, once."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from generators.pool import PoolKey, SyntheticPool
from search.run import main
from trainables.datasets import load_dataset
from trainables.replicas import load_saved_trial

pytestmark = pytest.mark.slow

SYNTHETIC_SPACE = {
    "fixed": {"training.epochs": 1, "training.batch_size": 32, "model.backbone": "basic_cnn", "real_fraction": 0.5},
    "parameters": {
        "synthetic.proportion": {"choice": [0.0, 0.5, 1.0]},
        "synthetic.generator": {"choice": ["ddpm", "oversample"], "when": {"synthetic.proportion": [0.5, 1.0]}},
        "synthetic.settings.training_steps": {"choice": [10], "when": {"synthetic.generator": "ddpm"}},
        "synthetic.settings.block_out_channels": {"choice": [[8, 16]], "when": {"synthetic.generator": "ddpm"}},
        "synthetic.settings.sampling_steps": {"choice": [2], "when": {"synthetic.generator": "ddpm"}},
        "synthetic.settings.rotation_probability": {"choice": [1.0], "when": {"synthetic.generator": "oversample"}},
    },
}
CLASSES = ("non_demented", "very_mild_demented", "mild_demented", "moderate_demented")


def run(tmp_path: Path, name: str) -> int:
    space = tmp_path / "synthetic_space.yaml"
    space.write_text(yaml.safe_dump(SYNTHETIC_SPACE))
    return main([
        "--space", str(space), "--data", "phantom", "--phantom-count", "300", "--image-size", "16",
        "--searcher", "grid", "--scheduler", "none", "--storage", str(tmp_path / "results"), "--name", name,
        "--wandb-mode", "disabled", "--no-final-test",
    ])


def pool_counts(pool: SyntheticPool, generator: str) -> dict[int, int]:
    return {row["class_index"]: row["count"] for row in pool.summary() if row["generator"] == generator}


def test_synthetic_images_are_generated_once_for_the_largest_demand(tmp_path: Path, ray_cluster: None) -> None:
    assert run(tmp_path, "first") == 0
    leaderboard = pd.read_csv(tmp_path / "results" / "first" / "leaderboard.csv")
    # Grid: proportion 0, plus {ddpm, oversample} x {0.5, 1.0}.
    assert len(leaderboard) == 5 and set(leaderboard["status"]) == {"ok"}
    without = leaderboard[leaderboard["synthetic.proportion"] == 0.0]
    assert (without["synthetic_images"] == 0).all()
    with_synthetic = leaderboard[leaderboard["synthetic.proportion"] > 0]
    assert (with_synthetic["synthetic_images"] > 0).all()
    for name in CLASSES:
        # add mode: Y x the class's real count in the trial.
        expected = (with_synthetic["synthetic.proportion"] * with_synthetic[f"real_count_{name}"]).round()
        assert (with_synthetic[f"synthetic_count_{name}"] == expected).all(), name

    pool = SyntheticPool(str(tmp_path / "results" / "synthetic_pool"))
    for generator in ("ddpm", "oversample"):
        rows = with_synthetic[with_synthetic["synthetic.generator"] == generator]
        counts = pool_counts(pool, generator)
        for index, name in enumerate(CLASSES):
            # Made once, for the largest demand, not once per trial.
            assert counts.get(index, 0) == rows[f"synthetic_count_{name}"].max(), (generator, name)
        # Generating per trial would have cost the sum of the demands.
        assert sum(counts.values()) < rows["synthetic_images"].sum()

    # Provenance: generator, settings, fit subset for the fitted model, training-image sources for copies.
    train_ids = set(load_dataset("phantom", image_size=16, phantom_count=300).train.ids)
    for row in pool.summary():
        key = PoolKey.from_dict(row)
        for record in pool.records(key, row["class_index"]):
            assert (record.generator, record.settings_hash, record.created_at > 0) == (key.generator, key.settings_hash, True)
            if key.generator == "ddpm":
                assert key.fit_subset is not None and record.source_id is None
            else:
                assert record.source_id in train_ids

    # Each checkpoint names the pool images its model trained on: per class, the first n of a pool key's order.
    stored_keys = {PoolKey.from_dict(row).folder_name for row in pool.summary()}
    for _, row in with_synthetic.iterrows():
        checkpoint = next((tmp_path / "results" / "first").glob(f"*{row['trial_id']}*/checkpoint_*"))
        (state,) = load_saved_trial(checkpoint).replica_states
        draws = {draw["class_index"]: draw for draw in state["synthetic_draws"]}
        for index, name in enumerate(CLASSES):
            assert draws.get(index, {}).get("count", 0) == row[f"synthetic_count_{name}"], (row["trial_id"], name)
        assert {draw["pool_key"] for draw in draws.values()} <= stored_keys
        assert all(draw["pool_key"].startswith(f"{row['synthetic.generator']}--") for draw in draws.values())

    # A second sweep on the same pool generates nothing new and loads the fitted model instead of refitting.
    before = pool.summary()
    assert run(tmp_path, "second") == 0
    pool.refresh()
    assert pool.summary() == before
    second = pd.read_csv(tmp_path / "results" / "second" / "leaderboard.csv")
    assert sorted(second["val_loss"].round(6)) == sorted(leaderboard["val_loss"].round(6))


def test_the_label_filter_is_fit_before_trials_and_drops_from_what_a_trial_drew(tmp_path: Path, ray_cluster: None) -> None:
    space = tmp_path / "filter_space.yaml"
    space.write_text(yaml.safe_dump({
        "fixed": {
            "training.epochs": 1, "training.batch_size": 32, "model.backbone": "basic_cnn", "real_fraction": 0.5,
            "synthetic.proportion": 1.0, "synthetic.generator": "oversample",
            "synthetic.settings.rotation_probability": 1.0, "synthetic.filter_threshold": 0.99,
        },
        "parameters": {"synthetic.filter": {"choice": ["none", "label_fidelity"]}},
    }))
    assert main([
        "--space", str(space), "--data", "phantom", "--phantom-count", "300", "--image-size", "16",
        "--searcher", "grid", "--scheduler", "none", "--storage", str(tmp_path / "results"), "--name", "filtered",
        "--wandb-mode", "disabled", "--no-final-test",
    ]) == 0
    leaderboard = pd.read_csv(tmp_path / "results" / "filtered" / "leaderboard.csv").set_index("synthetic.filter")
    assert set(leaderboard["status"]) == {"ok"}
    for name in CLASSES:
        # Every trial drew proportion x its real count; the filter's trial trained on what it kept.
        drawn = leaderboard[f"synthetic_count_{name}"] + leaderboard[f"synthetic_filtered_{name}"]
        assert (drawn == leaderboard[f"real_count_{name}"]).all(), name
    assert leaderboard.loc["none", "synthetic_filtered"] == 0
    # A classifier of a few epochs is far from 99% sure of every rotated copy.
    assert leaderboard.loc["label_fidelity", "synthetic_filtered"] > 0
    assert leaderboard.loc["label_fidelity", "synthetic_images"] < leaderboard.loc["none", "synthetic_images"]
