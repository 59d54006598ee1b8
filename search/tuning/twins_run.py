"""The real-only twins the searcher did not draw, trained after the search as one more Tune run inside the
sweep's folder (search.answer.twins says what a twin is)."""

from __future__ import annotations

import time
from collections.abc import Callable

from ray.tune import ResultGrid

from search.answer.trial_history import histories_of
from search.answer.twins import twin_points, twin_space
from search.settings.sweep_record import SweepRecord
from search.tuning.tuner import can_restore, fit_points, fit_restored, run_config

TWINS_RUN_NAME = "twins"
# Less than this left of the time budget cannot train a twin's first epoch and would only start Tune.
MINIMUM_TWIN_BUDGET_S = 5.0


def train_twins(
    record: SweepRecord, results: ResultGrid, trainable_of: Callable, callbacks: list, budget_s: float | None
) -> ResultGrid | None:
    """The real-only twins the searcher did not draw, within `budget_s` (their part of the time budget; None: no
    budget). Sets record.twins_path and, when some twins are missing, record.twins_note."""
    sweep, space = record.sweep, record.search_space
    twins = twin_space(space)
    path = f"{record.experiment_path}/{TWINS_RUN_NAME}"
    if sweep.resume and can_restore(path):
        record.twins_path = path
        return fit_restored(path, trainable_of(twins))
    points = twin_points(histories_of(results, space, "search"), twins)
    if not points:
        return None
    if not sweep.twins:
        record.twins_note = "twins are off (twins: false): configurations the searcher drew no twin for are not compared"
        return None
    if sweep.scheduler == "pbt":
        record.twins_note = ("PBT changes a trial's hyperparameters while it trains, so it has no fixed real-only twin; "
                             "only twins the searcher drew are compared")
        return None
    if budget_s is not None and budget_s < MINIMUM_TWIN_BUDGET_S:
        record.twins_note = (f"the time budget ({sweep.time_budget_s:g} s) was spent by the search: {len(points)} "
                             "real-only twins were not trained (raise --time-budget-s or --answer-budget-share)")
        print(f"\nNo time left for {len(points)} real-only twins: {record.twins_note}")
        return None
    print(f"\nTraining {len(points)} real-only twins of configurations with synthetic images"
          + (f" ({budget_s:.0f} s of the time budget left)" if budget_s is not None else ""))
    started = time.monotonic()
    twin_results = fit_points(
        trainable_of(twins), points, sweep, run_config(sweep, TWINS_RUN_NAME, record.experiment_path, callbacks), budget_s
    )
    record.seconds["twins"] = time.monotonic() - started
    record.twins_path = path
    if budget_s is not None and any(result.metrics_dataframe is None for result in twin_results):
        record.twins_note = "the time budget ran out before every real-only twin had trained an epoch"
    return twin_results
