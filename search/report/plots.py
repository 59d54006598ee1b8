"""The report's plots, drawn from the answer's tables (search.answer): the metric against the real fraction per
policy or backbone, the value of synthetic data, and the metric against cost with its Pareto front."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from search.answer.pareto import COST
from search.answer.value_curve import FRACTION, REAL_ONLY
from search.report.figures import plt, save_figure


def plot_metric_against_real_fraction(leaderboard: pd.DataFrame, metric: str, group_by: str, path: Path) -> Path | None:
    """Each trial's metric against the share of real training images it used, one colour per group."""
    if group_by not in leaderboard or metric not in leaderboard or "real_fraction_of_train" not in leaderboard:
        return None
    frame = leaderboard.dropna(subset=[metric, "real_fraction_of_train"])
    if frame.empty:
        return None
    figure, axes = plt.subplots(figsize=(6.5, 4.2))
    for group, rows in frame.groupby(group_by, dropna=False):
        points = axes.scatter(rows["real_fraction_of_train"], rows[metric], label=str(group), alpha=0.75)
        medians = rows.groupby("real_fraction_of_train")[metric].median().sort_index()
        if len(medians) > 1:
            axes.plot(medians.index, medians.values, color=points.get_facecolor()[0], alpha=0.6)
    axes.set_xlabel("real training images used (share of the training split)")
    axes.set_ylabel(metric)
    axes.set_title(f"{metric} by real-data fraction, per {group_by}")
    axes.grid(alpha=0.3)
    axes.legend(title=group_by, fontsize=8)
    figure.tight_layout()
    return save_figure(figure, path, dpi=120)


def plot_value_curve(points: pd.DataFrame, metric: str, path: Path) -> Path | None:
    if points.empty:
        return None
    figure, axes = plt.subplots(figsize=(7, 4.5))
    settings = sorted(points["setting"].unique(), key=lambda setting: (setting != REAL_ONLY, setting))
    for setting in settings:
        line = points[points["setting"] == setting].sort_values(FRACTION)
        style = {"color": "black", "linewidth": 2.2, "zorder": 3} if setting == REAL_ONLY else {"linewidth": 1.4}
        drawn = axes.plot(line[FRACTION], line[metric], marker="o", label=setting, **style)[0]
        banded = line.dropna(subset=["band_low", "band_high"])
        if not banded.empty:
            axes.fill_between(banded[FRACTION], banded["band_low"].astype(float), banded["band_high"].astype(float),
                              color=drawn.get_color(), alpha=0.15, linewidth=0)
    axes.set_xlabel("real training images used (share of the training split)")
    axes.set_ylabel(f"{metric} (median over repeats)")
    axes.set_title("Value of synthetic data: best configuration per point, band = interval over repeats", fontsize=10)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8, title="synthetic setting")
    figure.tight_layout()
    return save_figure(figure, path, dpi=120)


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
    return save_figure(figure, path, dpi=120)
