"""The Pareto front of a sweep: the configurations no other beats on both the searched metric and cost_seconds
(pareto_front.csv and its plot are written by search.report).

A user with a budget reads it from the cheap end: the first row whose cost fits is the best that budget buys,
and each row after it says what more metric the extra seconds buy. Written for every sweep whose trials
report cost (trainables/trial_cost.py), whatever `objective` searched; `objective: multi` makes the searcher
aim for this front instead of for the metric alone.
"""

from __future__ import annotations

import math

import pandas as pd

from spaces import SearchSpace

COST = "cost_seconds"
COST_DEFINITION = (
    "cost_seconds is what reproducing a configuration on its own costs: its training and validation wall seconds "
    "(every repeat, every epoch it ran, counted across resumes) plus its share of synthetic images: the fit seconds "
    "of each generator it draws from plus that generator's measured seconds per image times the images it uses. "
    "The share does not depend on which trial made the images first. cost_gpu_seconds is the same in GPU-seconds "
    "(0 on CPUs). The metric is at each trial's best epoch; the cost is the whole trial's."
)


def pareto_front(frame: pd.DataFrame, metric: str, mode: str, cost: str = COST) -> pd.DataFrame:
    """The rows (finite metric and cost) that no other row dominates: none is at most as costly and at least as
    good with one of the two strictly better. Sorted by cost, cheapest first; ties on both keep every row."""
    if metric not in frame or cost not in frame:
        return frame.iloc[0:0]
    candidates = frame[frame[metric].map(finite) & frame[cost].map(finite)]
    sign = 1.0 if mode == "max" else -1.0
    values = list(zip(candidates[cost].astype(float), sign * candidates[metric].astype(float)))

    def dominated(point: tuple[float, float]) -> bool:
        return any(
            other[0] <= point[0] and other[1] >= point[1] and (other[0] < point[0] or other[1] > point[1])
            for other in values
        )

    kept = [not dominated(point) for point in values]
    front = candidates[kept]
    return front.sort_values([cost, metric], ascending=[True, mode == "min"], kind="stable").reset_index(drop=True)


def finite(value: object) -> bool:
    try:
        return math.isfinite(float(value))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False


def front_table(front: pd.DataFrame, space: SearchSpace, metric: str) -> pd.DataFrame:
    """pareto_front.csv's columns: the trial, the metric, the cost and its parts, then the configuration."""
    first = ["rank", "trial_id", metric, f"{metric}_std", COST, "cost_gpu_seconds", "cost_train_seconds",
             "cost_synthetic_seconds"]
    config = [key for key in space.parameters if key in front]
    return front[[column for column in first if column in front] + config]


def sweep_front(leaderboard: pd.DataFrame, metric: str, mode: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(the trials with results whose metric and cost are finite, their Pareto front); the front is empty when no
    trial reported cost."""
    ok = leaderboard[leaderboard["status"] == "ok"] if "status" in leaderboard else leaderboard
    front = pareto_front(ok, metric, mode)
    if front.empty:
        return front, front
    return ok[ok[metric].map(finite) & ok[COST].map(finite)], front
