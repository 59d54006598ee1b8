"""The leaderboard: one row per trial at its best epoch, ranked by the searched metric, and the best configuration
as a sweep of its own (best_config.yaml's content)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd
from ray.tune import ResultGrid

from search.settings.sweep_config import SweepConfig
from spaces import SearchSpace, plain_value
from trainables.trial_cost import COST_COLUMNS

# Ray's bookkeeping columns that say nothing about a configuration's quality.
_RAY_COLUMNS = ("timestamp", "done", "training_iteration", "trial_id", "date", "time_this_iter_s", "time_total_s",
                "pid", "hostname", "node_ip", "time_since_restore", "iterations_since_restore", "checkpoint_dir_name",
                "should_checkpoint", "epochs_planned", "stopped_early", "stopped_at_deadline", "checkpoint_bytes")


def _best_epoch(frame: pd.DataFrame, metric: str, mode: str) -> pd.Series:
    scores = frame[metric]
    position = scores.idxmax() if mode == "max" else scores.idxmin()
    return frame.loc[position]


def build_leaderboard(results: ResultGrid, space: SearchSpace, sweep: SweepConfig) -> pd.DataFrame:
    """One row per trial at its best epoch, ranked by the searched metric; config columns first."""
    rows: list[dict[str, Any]] = []
    for result in results:
        frame = result.metrics_dataframe
        config = space.active_values(result.config or {})
        if frame is None or frame.empty or sweep.metric not in frame:
            rows.append({"trial_id": _trial_id(result), "status": "error" if result.error else "no result", **config})
            continue
        best = _best_epoch(frame, sweep.metric, sweep.mode)
        metrics = {key: value for key, value in best.items() if key not in _RAY_COLUMNS and not key.startswith("config/")}
        rows.append({
            "trial_id": best.get("trial_id", _trial_id(result)),
            "status": "error" if result.error else "ok",
            **config,
            **metrics,
            # Cost is cumulative: the whole trial's (its last result), while the metrics are its best epoch's.
            **{column: float(frame[column].max()) for column in COST_COLUMNS if column in frame},
            "epochs_run": int(frame["epoch"].max()),
            "time_total_s": float(frame["time_total_s"].max()),
            # Bytes of every checkpoint the trial saved, kept or since deleted.
            "checkpoint_mb_written": float(frame.get("checkpoint_bytes", pd.Series(dtype=float)).fillna(0).sum()) / 1e6,
        })
    leaderboard = pd.DataFrame(rows)
    if sweep.metric in leaderboard:
        leaderboard = leaderboard.sort_values(sweep.metric, ascending=sweep.mode == "min", na_position="last")
    leaderboard.insert(0, "rank", range(1, len(leaderboard) + 1))
    return leaderboard.reset_index(drop=True)


def _trial_id(result: Any) -> str:
    return Path(result.path).name if getattr(result, "path", None) else "?"


def trials_with_results(leaderboard: pd.DataFrame) -> pd.DataFrame:
    return leaderboard[leaderboard["status"] == "ok"] if "status" in leaderboard else leaderboard.iloc[0:0]


def ranked_with_twins(leaderboard: pd.DataFrame, twins: pd.DataFrame | None, sweep: SweepConfig) -> pd.DataFrame:
    """Search trials and real-only twins in one ranking: a twin is a configuration trained on the search's seeds
    too, and may be the best real-only one."""
    if twins is None or twins.empty or sweep.metric not in twins:
        return leaderboard
    combined = pd.concat([leaderboard, twins], ignore_index=True)
    return combined.sort_values(sweep.metric, ascending=sweep.mode == "min", na_position="last", kind="stable")


def best_sweep_settings(leaderboard: pd.DataFrame, space: SearchSpace, sweep: SweepConfig, sweep_name: str) -> dict[str, Any]:
    """The best trial as a sweep of one fixed configuration: `python -m search.run --config` reruns it."""
    best = leaderboard.iloc[0]
    sample = {key: plain_value(best[key]) for key in space.parameters if key in best and not _missing(best[key])}
    best_space = space.fixed_at(sample, name=f"{space.name}-best", description=f"best configuration of sweep {sweep_name}")
    settings = sweep.model_dump(mode="json", exclude={"name", "resume", "report_dir", "time_budget_s"})
    settings.update(
        space=best_space.model_dump(mode="json", exclude={"sweep"}),
        searcher="random", scheduler="none", num_samples=1,
    )
    return settings


def _missing(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)
