"""The answer of a sweep, computed from Tune's results alone (nothing is written here; search.report writes it):
the leaderboard, the paired synthetic effect, the Pareto front, the value-of-synthetic-data curve and the
real-data equivalent."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from search.answer.effect import effect_table
from search.answer.leaderboard import best_sweep_settings, build_leaderboard, trials_with_results
from search.answer.pareto import sweep_front
from search.answer.trial_history import TrialHistory, histories_of
from search.answer.twins import pair_with_twins, twin_space
from search.answer.value_curve import curve_points, real_data_equivalent
from search.settings.sweep_record import SweepRecord


@dataclass
class SweepAnalysis:
    leaderboard: pd.DataFrame
    histories: list[TrialHistory]
    effects: pd.DataFrame
    twins_leaderboard: pd.DataFrame | None = None
    # Empty, or None below, when no trial reported a result.
    curve: pd.DataFrame | None = None          # value-curve points (search.answer.value_curve.curve_points)
    equivalents: pd.DataFrame | None = None    # the real-data equivalent of the curve's synthetic settings
    pareto_trials: pd.DataFrame | None = None  # trials with finite metric and cost, and their front
    pareto: pd.DataFrame | None = None
    best_settings: dict[str, Any] | None = None  # best_config.yaml: the best trial as a sweep of its own
    best_value: float | None = None

    @property
    def finished(self) -> int:
        return len(trials_with_results(self.leaderboard))

    @property
    def tables(self) -> dict[str, pd.DataFrame]:
        equivalents = self.equivalents if self.equivalents is not None else pd.DataFrame()
        tables = {"leaderboard": self.leaderboard, "synthetic_effect": self.effects, "real_data_equivalent": equivalents}
        if self.twins_leaderboard is not None:
            tables["twins"] = self.twins_leaderboard
        return {name: table for name, table in tables.items() if not table.empty}


def analyse_sweep(record: SweepRecord, results: Any, twin_results: Any | None) -> SweepAnalysis:
    sweep, space = record.sweep, record.search_space
    leaderboard = build_leaderboard(results, space, sweep)
    histories = histories_of(results, space, "search")
    twins_leaderboard = None
    if twin_results is not None:
        twins = twin_space(space)
        twins_leaderboard = build_leaderboard(twin_results, twins, sweep)
        histories += histories_of(twin_results, twins, "twin")
    effects = effect_table(
        pair_with_twins(histories), sweep.metric, sweep.mode, sweep.repeats,
        missing_twin_reason=record.twins_note or "the twin has no result",
    )
    analysis = SweepAnalysis(leaderboard, histories, effects, twins_leaderboard)
    ok = trials_with_results(leaderboard)
    if ok.empty:
        return analysis
    analysis.best_settings = best_sweep_settings(leaderboard, space, sweep, record.name)
    analysis.best_value = float(leaderboard.iloc[0][sweep.metric])
    analysis.pareto_trials, analysis.pareto = sweep_front(leaderboard, sweep.metric, sweep.mode)
    trials = pd.concat([ok, *([twins_leaderboard] if twins_leaderboard is not None else [])], ignore_index=True)
    analysis.curve = curve_points(trials, sweep.metric, sweep.mode, sweep.repeats)
    if not analysis.curve.empty:
        analysis.equivalents = real_data_equivalent(analysis.curve, sweep.metric, sweep.mode)
    return analysis
