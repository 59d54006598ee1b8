"""The report folder's result files, written from the answer (search.answer): leaderboard.csv, twins.csv,
synthetic_effect.csv, best_config.yaml, the Pareto front, the plots and real_data_equivalent.csv; the finalists'
finalists.csv and test_metrics.json; storage.json."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from search.answer.analysis import SweepAnalysis
from search.answer.pareto import front_table
from search.report import files
from search.report.plots import plot_metric_against_real_fraction, plot_pareto_front, plot_value_curve
from search.settings.sweep_record import SweepRecord
from search.tuning.storage_usage import StorageUsage
from spaces import SearchSpace


@dataclass
class AnalysisFiles:
    best_config_path: Path | None = None
    plots: list[Path] = field(default_factory=list)


def write_analysis(record: SweepRecord, analysis: SweepAnalysis, report_dir: Path) -> AnalysisFiles:
    """Every file of the report folder that Tune's results determine (not report.html: the finalists come first)."""
    sweep, space = record.sweep, record.search_space
    written = AnalysisFiles()
    files.write_csv(report_dir / files.LEADERBOARD_FILE, analysis.leaderboard)
    if analysis.twins_leaderboard is not None:
        files.write_csv(report_dir / files.TWINS_FILE, analysis.twins_leaderboard)
    if not analysis.effects.empty:
        files.write_csv(report_dir / files.EFFECT_FILE, analysis.effects)
    if analysis.best_settings is None:
        return written
    written.best_config_path = write_best_config(
        report_dir / files.BEST_CONFIG_FILE, analysis.best_settings, sweep.metric, analysis.best_value
    )
    pareto_plot = write_pareto_front(analysis.pareto_trials, analysis.pareto, space, sweep.metric, sweep.mode, report_dir)
    if pareto_plot is not None:
        written.plots.append(pareto_plot)
    for group in ("augmentation.policy", "model.backbone"):
        path = report_dir / files.real_fraction_plot(sweep.metric, group)
        if plot_metric_against_real_fraction(analysis.leaderboard, sweep.metric, group, path) is not None:
            written.plots.append(path)
    if analysis.curve is not None and not analysis.curve.empty:
        written.plots.append(plot_value_curve(analysis.curve, sweep.metric, report_dir / files.CURVE_PLOT))
        files.write_csv(report_dir / files.EQUIVALENT_FILE, analysis.equivalents)
    return written


def write_pareto_front(
    trials: pd.DataFrame | None, front: pd.DataFrame | None, space: SearchSpace, metric: str, mode: str, report_dir: Path
) -> Path | None:
    """pareto_front.csv and plots/pareto_front.png (search.answer.pareto.sweep_front's trials and front); None,
    with nothing written, when there is no front (no trial reported cost)."""
    if trials is None or front is None or front.empty:
        return None
    files.write_csv(report_dir / files.PARETO_FILE, front_table(front, space, metric))
    return plot_pareto_front(trials, front, metric, mode, report_dir / files.PARETO_PLOT)


def write_best_config(path: Path, settings: dict[str, Any], metric: str, value: float) -> Path:
    header = f"# Best configuration found ({metric} = {value:.4g}). Rerun: python -m search.run --config {path.name}\n"
    return files.write_text(path, header + yaml.safe_dump(settings, sort_keys=False))


def write_finalist_results(table: pd.DataFrame, document: dict[str, Any] | None, report_dir: Path) -> Path | None:
    """finalists.csv always; test_metrics.json when a top finalist was tested (its path, else None)."""
    files.write_csv(report_dir / files.FINALISTS_FILE, table)
    if document is None:
        return None
    return files.write_json(report_dir / files.TEST_METRICS_FILE, document, default=_json_value)


def _json_value(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


def write_storage_usage(report_dir: Path, usage: StorageUsage) -> Path:
    return files.write_json(report_dir / files.STORAGE_FILE, asdict(usage), default=None)
