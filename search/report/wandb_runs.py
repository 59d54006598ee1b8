"""W&B runs written after the sweep, in this process, from Tune's results: in offline mode (the default) one run per
trial with its whole history, so trials pay nothing for W&B; in both modes a summary run holding the report's
tables and plots. Online mode streams the trials live during the sweep (search.tuning.wandb_callback)."""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from search.settings.sweep_config import SweepConfig
from search.tuning.wandb_callback import RUN_FINISH_TIMEOUT_S

# Tune's bookkeeping and the trial's host: not metrics of the run.
_NOT_LOGGED = {"timestamp", "done", "training_iteration", "time_this_iter_s", "pid", "hostname", "node_ip", "date",
               "trial_id", "checkpoint_dir_name", "should_checkpoint", "time_since_restore", "iterations_since_restore"}


def history_rows(history: pd.DataFrame) -> list[tuple[int, dict[str, float]]]:
    """(step, numeric metrics) per reported epoch; the step is the epoch, so W&B charts read like the leaderboard."""
    columns = [
        column for column in history.columns
        if column not in _NOT_LOGGED and not column.startswith("config/") and pd.api.types.is_numeric_dtype(history[column])
    ]
    rows = []
    for position, (_, row) in enumerate(history.iterrows(), start=1):
        step = int(row["epoch"]) if "epoch" in row and not _missing(row["epoch"]) else position
        rows.append((step, {column: float(row[column]) for column in columns if not _missing(row[column])}))
    return rows


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _plain(values: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value.item() if hasattr(value, "item") else value for key, value in values.items()}


def write_wandb_runs(
    sweep: SweepConfig,
    sweep_name: str,
    report_dir: Path,
    trials: Iterable[Any],
    tables: Mapping[str, pd.DataFrame],
    images: Iterable[Path],
) -> int:
    """After the sweep, in this process: in offline mode one run per trial with its whole history (trials are
    search.answer.trial_history.TrialHistory), then, in both modes, a summary run with `tables` and `images`. Runs land in
    <report_dir>/wandb, the folder `wandb sync` uploads from any machine. Every run is bounded by
    RUN_FINISH_TIMEOUT_S; after one that is not done in time, no more are started. Returns the runs written."""
    if sweep.wandb.mode == "disabled":
        return 0
    import wandb

    # In this process rather than in logging actors; W&B reads these when a run starts (see QuietWandbLoggingActor).
    quiet = {"WANDB_QUIET": "true", "WANDB_SHOW_INFO": "false"}
    previous = {name: os.environ.get(name) for name in quiet}
    os.environ.update(quiet)
    common = {
        "project": sweep.wandb.project, "entity": sweep.wandb.entity, "group": sweep_name, "mode": sweep.wandb.mode,
        "dir": str(report_dir), "reinit": "finish_previous", "settings": wandb.Settings(init_timeout=RUN_FINISH_TIMEOUT_S),
    }

    def trial_run(trial: Any) -> Callable[[], None]:
        def write() -> None:
            run = wandb.init(name=trial.trial_id, job_type=trial.source, config=_plain(trial.values), **common)
            for step, metrics in history_rows(trial.history):
                run.log(metrics, step=step)
            run.finish()

        return write

    def summary_run() -> None:
        run = wandb.init(name=f"{sweep_name}-summary", job_type="summary", config=sweep.model_dump(mode="json"), **common)
        run.log({
            **{name: wandb.Table(dataframe=_table_frame(frame)) for name, frame in tables.items()},
            **{path.stem: wandb.Image(str(path)) for path in images},
        })
        run.finish()

    writes = [trial_run(trial) for trial in trials] if sweep.wandb.mode == "offline" else []
    written, stuck = 0, False
    try:
        for write in [*writes, summary_run]:
            worker = threading.Thread(target=write, name="wandb-run", daemon=True)
            worker.start()
            worker.join(RUN_FINISH_TIMEOUT_S)
            if worker.is_alive():
                print(f"W&B did not finish a run within {RUN_FINISH_TIMEOUT_S} s; the remaining runs are not written")
                stuck = True
                break
            written += 1
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    if not stuck:
        # Stop W&B's service process now rather than in an exit hook; a stuck one is left to its own exit.
        wandb.teardown()
    return written


def _table_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """W&B tables want one type per column: text columns as strings, missing values as None."""
    table = frame.astype(object).where(frame.notna(), None)
    for column in table.columns:
        if not pd.api.types.is_numeric_dtype(frame[column]):
            table[column] = [None if value is None else str(value) for value in table[column]]
    return table
