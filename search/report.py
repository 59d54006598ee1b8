"""The sweep's own report: leaderboard.csv, the printed top of it, best_config.yaml and plots; `python -m search.report
<report folder>` rebuilds a finished sweep's whole report (see search.sweep_report)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import yaml  # noqa: E402
from ray.tune import ResultGrid  # noqa: E402

from search.config import SweepConfig  # noqa: E402
from spaces import SearchSpace, plain_value  # noqa: E402
from trainables.trial_cost import COST_COLUMNS  # noqa: E402

PRINTED_ROWS = 10
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


def printable_leaderboard(leaderboard: pd.DataFrame, space: SearchSpace, sweep: SweepConfig) -> str:
    """What a person wants first: rank, the metric with its spread over seeds, a few more metrics, the searched values."""
    metric_columns = [sweep.metric, f"{sweep.metric}_std"] + [
        name for name in ("val_auroc", "val_balanced_accuracy", "val_f1_macro", "val_loss") if name != sweep.metric
    ]
    # Conditional values (a policy's magnitudes) stay in the CSV; the printed table keeps to what every trial has.
    searched = [key for key, parameter in space.parameters.items() if key in leaderboard and not parameter.when]
    columns = ["rank"] + [c for c in metric_columns if c in leaderboard] + searched + [
        c for c in ("real_images", "synthetic_images", "epochs_run", "cost_seconds") if c in leaderboard
    ]
    table = leaderboard[columns].head(PRINTED_ROWS).copy()
    table.columns = [short_column_name(column) for column in table.columns]
    return table.to_string(index=False, float_format=lambda value: f"{value:.4g}")


def short_column_name(key: str) -> str:
    """`optimizer.lr` prints as `lr`, `optimizer.name` as `optimizer`, `model.backbone` as `backbone`."""
    group, _, field = key.rpartition(".")
    return group if field == "name" else field


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


def write_best_config(path: Path, settings: dict[str, Any], metric: str, value: float) -> None:
    header = f"# Best configuration found ({metric} = {value:.4g}). Rerun: python -m search.run --config {path.name}\n"
    atomic_write(path, header + yaml.safe_dump(settings, sort_keys=False))


def write_leaderboard(path: Path, leaderboard: pd.DataFrame) -> None:
    atomic_write(path, leaderboard.to_csv(index=False))


def atomic_write(path: Path, text: str) -> None:
    # A reader never sees half a file: write beside it, then rename over it.
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text)
    temporary.replace(path)


def _missing(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)


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
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def main(argv: list[str] | None = None) -> int:
    """`python -m search.report <report folder>`: rebuild a finished sweep's report from its stored Tune results."""
    import argparse
    import sys

    from search.sweep_report import regenerate_report
    from spaces import ConfigError

    parser = argparse.ArgumentParser(
        prog="python -m search.report",
        description="Rebuild a finished sweep's report (leaderboard, synthetic effect, curves, report.html) from "
        "its stored Ray Tune results; trains nothing and does not read the test split.",
    )
    parser.add_argument("folder", help="the sweep's report folder (holds sweep.json; default <storage>/<name>)")
    arguments = parser.parse_args(argv)
    try:
        path = regenerate_report(Path(arguments.folder).expanduser().resolve())
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"Report: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
