"""The optional parts of a sweep's report, after the finalists: synthetic-image quality with sample grids, and
Grad-CAM of the best model. Each is bounded by its settings (images per class, epochs, samples per grid) and
never fails the sweep: an error prints one line and the report says "not computed: <reason>"."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from search.diagnostics.gradcam import write_gradcam_for_checkpoint
from search.diagnostics.quality_encoders import (
    RealOnlyModel,
    best_real_only_model,
    real_only_model_from_checkpoint,
    user_feature_extractor,
)
from search.diagnostics.synthetic_quality import write_synthetic_quality
from search.settings.sweep_record import SweepRecord
from search.tuning.finalists_run import FinalistsRun
from search.tuning.results import best_checkpoint
from trainables.datasets import SearchData

QUALITY, GRADCAM = "quality", "gradcam"


def drew_synthetic_images(leaderboard: pd.DataFrame) -> bool:
    return "synthetic_images" in leaderboard and bool((leaderboard["synthetic_images"].fillna(0) > 0).any())


def _attempt(record: SweepRecord, part: str, label: str, work: Callable[[], str]) -> None:
    started = time.monotonic()
    try:
        print(f"  {label}: {work()}")
        record.not_computed.pop(part, None)
    except Exception as error:  # an optional part: say why in one line and in the report, and go on
        reason = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}".rstrip(": ")
        record.not_computed[part] = reason
        print(f"  {label} not computed: {reason}")
    record.seconds[part] = time.monotonic() - started


def _real_only_model(finalists: FinalistsRun | None, record: SweepRecord, results: Any, leaderboard: pd.DataFrame,
                     data: SearchData) -> RealOnlyModel | None:
    """The real-only finalist's repeat-0 model when finalists ran, else the best real-only search trial's; None
    when finalists were to run but none real-only trained (the search's checkpoints then hold no weights)."""
    outcome = finalists.real_only() if finalists is not None else None
    if outcome is not None:
        with outcome.checkpoint.as_directory() as directory:
            return real_only_model_from_checkpoint(Path(directory), outcome.trial, data,
                                                   name=f"real-only finalist {outcome.trial_id}")
    sweep = record.sweep
    if sweep.finalists_on:
        return None
    return best_real_only_model(results, leaderboard, record.search_space, sweep.metric, sweep.mode, data)


# Why a part that reads a model's weights has none, when finalists were to run but none trained.
NO_TRAINED_FINALIST = ("(finalists.csv says why), and the search's checkpoints keep no weights when finalists run "
                       "(raise --time-budget-s or --answer-budget-share)")


def write_optional_parts(
    record: SweepRecord, report_dir: Path, results: Any, leaderboard: pd.DataFrame, data: SearchData,
    pool_root: str, finalists: FinalistsRun | None,
) -> None:
    """synthetic_quality.csv with sample grids, and gradcam_<class>.png, when the sweep drew synthetic images."""
    if not drew_synthetic_images(leaderboard):
        for part in (QUALITY, GRADCAM):
            record.not_computed[part] = "no trial of the sweep trained on synthetic images"
        return
    print("\nAfter the sweep:")
    sweep = record.sweep

    def quality() -> str:
        settings = sweep.quality
        encoder = user_feature_extractor(settings.feature_extractor, data) if settings.feature_extractor else None
        real_only = _real_only_model(finalists, record, results, leaderboard, data)
        if real_only is None and encoder is None and sweep.finalists_on:
            raise ValueError(f"no real-only finalist trained an epoch {NO_TRAINED_FINALIST}; or give "
                             "--quality-feature-extractor")
        outputs = write_synthetic_quality(report_dir, pool_root, data, real_only, settings, encoder)
        return f"{outputs.csv_path} ({len(outputs.grid_paths)} generator settings, features of {outputs.encoder_name})"

    def gradcam() -> str:
        best = finalists.best() if finalists is not None else None
        if best is not None:
            checkpoint, trial, name = best.checkpoint, best.trial, f"finalist {best.trial_id}"
        elif sweep.finalists_on:
            raise ValueError(f"no finalist trained an epoch {NO_TRAINED_FINALIST}")
        else:
            trial_id = str(leaderboard.iloc[0]["trial_id"])
            result = next(result for result in results if (result.metrics or {}).get("trial_id") == trial_id)
            checkpoint = best_checkpoint(result, sweep.metric, sweep.mode)
            trial, name = record.search_space.resolve(result.config), f"search trial {trial_id}"
        if checkpoint is None:
            raise ValueError(f"the best model ({name}) has no checkpoint")
        with checkpoint.as_directory() as directory:
            paths = write_gradcam_for_checkpoint(report_dir, Path(directory), trial, data, pool_root)
        return f"{len(paths)} maps of {name} ({', '.join(path.name for path in paths)})"

    _attempt(record, QUALITY, "synthetic-image quality", quality)
    _attempt(record, GRADCAM, "Grad-CAM of the best model", gradcam)
