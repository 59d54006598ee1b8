"""The report folder's files: every name in it, and the one way each is written (whole, never half: a reader sees
the old file or the new one, through generators.pool.storage.write_whole_file)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from generators.pool.storage import write_whole_file
from search.settings.sweep_record import RECORD_FILE

__all__ = ["RECORD_FILE"]  # sweep.json is the settings' record; it is listed here with the other names

LEADERBOARD_FILE = "leaderboard.csv"
TWINS_FILE = "twins.csv"
BEST_CONFIG_FILE = "best_config.yaml"
EFFECT_FILE = "synthetic_effect.csv"
EQUIVALENT_FILE = "real_data_equivalent.csv"
PLOTS_FOLDER = "plots"
CURVE_PLOT = f"{PLOTS_FOLDER}/value_of_synthetic_data.png"
PARETO_FILE = "pareto_front.csv"
PARETO_PLOT = f"{PLOTS_FOLDER}/pareto_front.png"
FINALISTS_FILE = "finalists.csv"
TEST_METRICS_FILE = "test_metrics.json"
QUALITY_FILE = "synthetic_quality.csv"
NEAR_COPIES_FILE = "synthetic_near_copies.csv"
SAMPLES_FOLDER = "samples"
GRADCAM_PREFIX = "gradcam_"
REPORT_FILE = "report.html"
STORAGE_FILE = "storage.json"
WANDB_FOLDER = "wandb"


def real_fraction_plot(metric: str, group: str) -> str:
    """plots/<metric>_vs_real_fraction_by_<policy|backbone>.png for a group key such as `augmentation.policy`."""
    return f"{PLOTS_FOLDER}/{metric}_vs_real_fraction_by_{group.split('.')[-1]}.png"


def sample_grid_file(generator: str, settings_hash: str, fit_subset: str | None) -> str:
    fit = f"_fit-{fit_subset[:8]}" if fit_subset else ""
    return f"{SAMPLES_FOLDER}/samples_{generator}_{settings_hash[:8]}{fit}.png"


def gradcam_file(class_name: str) -> str:
    return f"{GRADCAM_PREFIX}{class_name}.png"


def write_text(path: Path, text: str) -> Path:
    write_whole_file(path, text)
    return path


def write_bytes(path: Path, data: bytes) -> Path:
    write_whole_file(path, data)
    return path


def write_csv(path: Path, frame: pd.DataFrame) -> Path:
    return write_text(path, frame.to_csv(index=False))


def write_json(path: Path, document: Any, default: Callable[[Any], Any] | None = str) -> Path:
    return write_text(path, json.dumps(document, indent=2, default=default))


def report_images(report_dir: Path) -> list[Path]:
    """Every figure of the report folder (plots/, sample grids, Grad-CAM maps), for W&B."""
    return (sorted(report_dir.glob(f"{PLOTS_FOLDER}/*.png")) + sorted(report_dir.glob(f"{SAMPLES_FOLDER}/*.png"))
            + sorted(report_dir.glob("*.png")))
