"""The final evaluation: the best configuration's checkpoint on the test split, read once, after the search."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from ray.tune import ResultGrid

from search.config import SweepConfig
from search.report import atomic_write
from spaces import SearchSpace
from trainables.checkpoint_evaluation import evaluate_checkpoint
from trainables.datasets import DatasetSplits

PRINTED_TEST_METRICS = ("test_balanced_accuracy", "test_auroc", "test_accuracy")


def evaluate_best_on_test(
    results: ResultGrid, leaderboard: pd.DataFrame, space: SearchSpace, sweep: SweepConfig,
    dataset: DatasetSplits, report_dir: Path,
) -> Path | None:
    """Writes test_metrics.json for the leaderboard's first trial, from its best-scoring checkpoint."""
    best_id = leaderboard.iloc[0]["trial_id"]
    best = next((result for result in results if (result.metrics or {}).get("trial_id") == best_id), None)
    if best is None:
        return None
    # A trial's latest checkpoint holds its best epoch's weights (trainables.trial.tune_trial).
    checkpoint = best.checkpoint
    if checkpoint is None:
        return None
    trial = space.resolve(best.config)
    test_images = dataset.load_test()
    with checkpoint.as_directory() as directory:
        metrics = evaluate_checkpoint(Path(directory), trial, dataset.for_search(), test_images, device=sweep.device)
    test_metrics = {f"test_{name}": value for name, value in metrics.items()}
    path = report_dir / "test_metrics.json"
    atomic_write(path, json.dumps({"trial_id": best_id, "config": trial.to_flat(), **test_metrics}, indent=2))
    print("\nBest configuration on the test split: " + ", ".join(
        f"{name} {test_metrics[name]:.4f}" for name in PRINTED_TEST_METRICS if name in test_metrics
    ))
    return path
