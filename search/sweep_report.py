"""Everything the report folder holds that Tune's results determine: leaderboard, best config, plots, the paired
synthetic effect, the value-of-synthetic-data curve, report.html. Written at the end of a sweep and again, from
the stored results alone, by `python -m search.report <report folder>`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from search.pareto import write_pareto_front
from search.report import (
    atomic_write,
    best_sweep_settings,
    build_leaderboard,
    plot_metric_against_real_fraction,
    write_best_config,
    write_leaderboard,
)
from search.report_html import ReportContext, write_report_html
from search.report_sections import CURVE_FILE, EFFECT_FILE, EQUIVALENT_FILE, SECTIONS, TWINS_FILE
from search.sweep_record import SweepRecord
from search.synthetic_effect import effect_table
from search.twins import TrialHistory, histories_of, pair_with_twins, twin_space
from search.value_curve import curve_points, plot_value_curve, real_data_equivalent

PRINTED_EFFECTS = 10


@dataclass
class SweepAnalysis:
    leaderboard: pd.DataFrame
    histories: list[TrialHistory]
    effects: pd.DataFrame
    equivalents: pd.DataFrame
    twins_leaderboard: pd.DataFrame | None = None
    best_config_path: Path | None = None
    plots: list[Path] = field(default_factory=list)

    @property
    def tables(self) -> dict[str, pd.DataFrame]:
        tables = {"leaderboard": self.leaderboard, "synthetic_effect": self.effects, "real_data_equivalent": self.equivalents}
        if self.twins_leaderboard is not None:
            tables["twins"] = self.twins_leaderboard
        return {name: table for name, table in tables.items() if not table.empty}


def analyse_sweep(record: SweepRecord, results: Any, twin_results: Any | None, report_dir: Path) -> SweepAnalysis:
    """Writes the result files of the report folder (not report.html: the final test evaluation comes first)."""
    sweep, space = record.sweep, record.search_space
    leaderboard = build_leaderboard(results, space, sweep)
    write_leaderboard(report_dir / "leaderboard.csv", leaderboard)
    histories = histories_of(results, space, "search")
    twins_leaderboard = None
    if twin_results is not None:
        twins = twin_space(space)
        twins_leaderboard = build_leaderboard(twin_results, twins, sweep)
        write_leaderboard(report_dir / TWINS_FILE, twins_leaderboard)
        histories += histories_of(twin_results, twins, "twin")
    effects = effect_table(
        pair_with_twins(histories), sweep.metric, sweep.mode, sweep.repeats,
        missing_twin_reason=record.twins_note or "the twin has no result",
    )
    if not effects.empty:
        atomic_write(report_dir / EFFECT_FILE, effects.to_csv(index=False))
    ok = leaderboard[leaderboard["status"] == "ok"] if "status" in leaderboard else leaderboard.iloc[0:0]
    analysis = SweepAnalysis(leaderboard, histories, effects, pd.DataFrame(), twins_leaderboard)
    if ok.empty:
        return analysis
    analysis.best_config_path = report_dir / "best_config.yaml"
    write_best_config(
        analysis.best_config_path, best_sweep_settings(leaderboard, space, sweep, record.name), sweep.metric,
        float(leaderboard.iloc[0][sweep.metric]),
    )
    pareto_plot = write_pareto_front(leaderboard, space, sweep.metric, sweep.mode, report_dir)
    if pareto_plot is not None:
        analysis.plots.append(pareto_plot)
    for group in ("augmentation.policy", "model.backbone"):
        path = report_dir / "plots" / f"{sweep.metric}_vs_real_fraction_by_{group.split('.')[-1]}.png"
        if plot_metric_against_real_fraction(leaderboard, sweep.metric, group, path) is not None:
            analysis.plots.append(path)
    trials = pd.concat([ok, *([twins_leaderboard] if twins_leaderboard is not None else [])], ignore_index=True)
    points = curve_points(trials, sweep.metric, sweep.mode, sweep.repeats)
    curve = plot_value_curve(points, sweep.metric, report_dir / CURVE_FILE)
    if curve is not None:
        analysis.plots.append(curve)
        analysis.equivalents = real_data_equivalent(points, sweep.metric, sweep.mode)
        atomic_write(report_dir / EQUIVALENT_FILE, analysis.equivalents.to_csv(index=False))
    return analysis


def report_images(report_dir: Path) -> list[Path]:
    """Every figure of the report folder (plots/, and sample grids or Grad-CAM maps beside the CSVs), for W&B."""
    return sorted(report_dir.glob("plots/*.png")) + sorted(report_dir.glob("samples/*.png")) + sorted(report_dir.glob("*.png"))


def write_html_report(record: SweepRecord, report_dir: Path) -> Path:
    return write_report_html(ReportContext(report_dir, record), SECTIONS)


def printable_effects(effects: pd.DataFrame) -> str:
    """The top of synthetic_effect.csv for the terminal; an interval that cannot be computed says so."""
    if effects.empty:
        return ""
    shown = effects.head(PRINTED_EFFECTS)
    lines = []
    for row in shown.itertuples():
        if pd.isna(row.effect):
            lines.append(f"  {row.synthetic:<28} real {row.real_fraction}: {row.note}")
            continue
        note = f" ({row.note})" if isinstance(row.note, str) and row.note else ""
        if pd.isna(row.ci_low) and pd.isna(row.p_value) and note:
            # One repeat: the note says why there is neither interval nor test.
            lines.append(f"  {row.synthetic:<28} real {row.real_fraction}: effect {row.effect:+.4f}, "
                         f"{int(row.epochs_compared)} epochs{note}")
            continue
        interval = f"[{row.ci_low:+.4f}, {row.ci_high:+.4f}]" if pd.notna(row.ci_low) else "interval cannot be computed"
        p_value = f"p {row.p_value:.3g}, Holm {row.p_holm:.3g}" if pd.notna(row.p_value) else "no test"
        lines.append(f"  {row.synthetic:<28} real {row.real_fraction}: effect {row.effect:+.4f} {interval}, {p_value}, "
                     f"{int(row.repeats)} repeats, {int(row.epochs_compared)} epochs{note}")
    more = len(effects) - len(shown)
    return "\n".join(lines + ([f"  ... {more} more in synthetic_effect.csv"] if more > 0 else []))


def stored_results(path: str | None) -> Any | None:
    """A finished Tune run's ResultGrid from its folder, without running anything."""
    if not path:
        return None
    from ray.tune import ExperimentAnalysis, ResultGrid

    return ResultGrid(ExperimentAnalysis(path))


def regenerate_report(report_dir: Path) -> Path:
    record = SweepRecord.read(report_dir)
    analyse_sweep(record, stored_results(record.experiment_path), stored_results(record.twins_path), report_dir)
    return write_html_report(record, report_dir)
