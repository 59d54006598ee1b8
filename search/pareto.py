"""The Pareto front of a sweep: the configurations no other beats on both the searched metric and cost_seconds.

A user with a budget reads it from the cheap end: the first row whose cost fits is the best that budget buys,
and each row after it says what more metric the extra seconds buy. Written for every sweep whose trials
report cost (trainables/trial_cost.py), whatever `objective` searched; `objective: multi` makes the searcher
aim for this front instead of for the metric alone.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from search.report import atomic_write  # noqa: E402
from spaces import SearchSpace  # noqa: E402

COST = "cost_seconds"
PARETO_FILE = "pareto_front.csv"
PARETO_PLOT = "plots/pareto_front.png"
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
    candidates = frame[frame[metric].map(_finite) & frame[cost].map(_finite)]
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


def _finite(value: object) -> bool:
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


def plot_pareto_front(frame: pd.DataFrame, front: pd.DataFrame, metric: str, mode: str, path: Path) -> Path:
    """Every trial's metric against its cost (log scale when costs span a decade), the front drawn as a staircase
    with each point labelled by its leaderboard rank."""
    figure, axes = plt.subplots(figsize=(6.5, 4.2))
    axes.scatter(frame[COST], frame[metric], color="0.65", alpha=0.7, label="trials")
    axes.step(front[COST], front[metric], where="post", color="tab:red", alpha=0.8)
    axes.scatter(front[COST], front[metric], color="tab:red", zorder=3, label="Pareto front")
    if "rank" in front:
        for row in front.itertuples():
            axes.annotate(f"#{int(row.rank)}", (getattr(row, COST), getattr(row, metric)),
                          textcoords="offset points", xytext=(4, 4), fontsize=8)
    costs = frame[COST].astype(float)
    if len(costs) > 1 and costs.min() > 0 and costs.max() / costs.min() > 10:
        axes.set_xscale("log")
    axes.set_xlabel("cost_seconds (training + share of generation and fit)")
    axes.set_ylabel(f"{metric} ({'higher' if mode == 'max' else 'lower'} is better)")
    axes.set_title(f"{metric} against cost: the Pareto front")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def write_pareto_front(leaderboard: pd.DataFrame, space: SearchSpace, metric: str, mode: str, report_dir: Path) -> Path | None:
    """pareto_front.csv and plots/pareto_front.png from the leaderboard's trials with results; None (nothing
    written) when no trial reported cost."""
    ok = leaderboard[leaderboard["status"] == "ok"] if "status" in leaderboard else leaderboard
    front = pareto_front(ok, metric, mode)
    if front.empty:
        return None
    atomic_write(report_dir / PARETO_FILE, front_table(front, space, metric).to_csv(index=False))
    plotted = ok[ok[metric].map(_finite) & ok[COST].map(_finite)]
    return plot_pareto_front(plotted, front, metric, mode, report_dir / PARETO_PLOT)
