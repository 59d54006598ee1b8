"""The Tune runs of a sweep and what they share: the run configuration, the search's share of the time budget,
and the real-only twins' run after the search."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import pandas as pd
from ray import tune
from ray.tune import ResultGrid

from search.config import SweepConfig
from search.sweep_record import SweepRecord
from search.twins import histories_of, run_twins, twin_points, twin_space
from trainables.tune_trial import trial_finished


def ranked_with_twins(leaderboard: pd.DataFrame, twins: pd.DataFrame | None, sweep: SweepConfig) -> pd.DataFrame:
    """Search trials and real-only twins in one ranking: a twin is a configuration trained on the search's seeds
    too, and may be the best real-only one."""
    if twins is None or twins.empty or sweep.metric not in twins:
        return leaderboard
    combined = pd.concat([leaderboard, twins], ignore_index=True)
    return combined.sort_values(sweep.metric, ascending=sweep.mode == "min", na_position="last", kind="stable")


def finalists_on(sweep: SweepConfig) -> bool:
    return sweep.final_test and sweep.finalists > 0


def search_budget_s(sweep: SweepConfig) -> float | None:
    """The search's share of the time budget: the rest is kept for the answer (twins and finalists) when either runs."""
    if sweep.time_budget_s is None:
        return None
    share = sweep.answer_budget_share if (sweep.twins or finalists_on(sweep)) else 0.0
    return sweep.time_budget_s * (1.0 - share)


def tune_run_config(sweep: SweepConfig, name: str, storage_path: str, callbacks: list) -> tune.RunConfig:
    return tune.RunConfig(
        name=name,
        storage_path=storage_path,
        callbacks=callbacks,
        # Every checkpoint holds the trial's best weights so far, or none (trainables.tune_trial): the latest serves
        # resume, PBT and the final test evaluation alike. PBT clones other trials' recent checkpoints, which must
        # outlive the clone's restore, so it keeps a few.
        checkpoint_config=tune.CheckpointConfig(num_to_keep=4 if sweep.scheduler == "pbt" else 1),
        # A trial whose process or node dies (or that raises) starts again from its latest checkpoint, this many times.
        failure_config=tune.FailureConfig(max_failures=sweep.max_failures),
        # A trial that has trained its planned epochs stops before the scheduler sees the
        # result, so PBT never clones into a finished trial.
        stop=stop_after_planned_epochs,
        verbose=1,
    )


TWINS_RUN_NAME = "twins"


def train_twins(
    record: SweepRecord, results: ResultGrid, trainable_of: Callable, callbacks: list, budget_s: float | None
) -> ResultGrid | None:
    """The real-only twins the searcher did not draw, as one more Tune run inside the sweep's folder, within
    `budget_s` (their part of the time budget; None: no budget). Sets record.twins_path and, when some twins are
    missing, record.twins_note."""
    sweep, space = record.sweep, record.search_space
    twins = twin_space(space)
    path = f"{record.experiment_path}/{TWINS_RUN_NAME}"
    if sweep.resume and tune.Tuner.can_restore(path):
        record.twins_path = path
        return tune.Tuner.restore(path, trainable=trainable_of(twins), resume_errored=True).fit()
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
    twin_results = run_twins(
        trainable_of(twins), points, tune_run_config(sweep, TWINS_RUN_NAME, record.experiment_path, callbacks), sweep, budget_s
    )
    record.seconds["twins"] = time.monotonic() - started
    record.twins_path = path
    if budget_s is not None and any(result.metrics_dataframe is None for result in twin_results):
        record.twins_note = "the time budget ran out before every real-only twin had trained an epoch"
    return twin_results


# Less than this left of the time budget cannot train a twin's first epoch and would only start Tune.
MINIMUM_TWIN_BUDGET_S = 5.0


def stop_after_planned_epochs(trial_id: str, result: dict) -> bool:
    # A trial that stopped early (training.early_stopping_patience) or at its deadline has ended too: no scheduler
    # may perturb it.
    return trial_finished(result, result.get("epoch", 0), result.get("epochs_planned", math.inf))
