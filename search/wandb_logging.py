"""W&B logging: offline (the default) writes every run after the sweep from Tune's results, in this process, so
trials pay nothing for it; online streams each trial live through Ray's WandbLoggerCallback. Both end with a
summary run holding the report's tables and plots."""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd
from ray.air.integrations.wandb import WandbLoggerCallback, _QueueItem, _WandbLoggingActor

from search.config import SweepConfig
from spaces import ConfigError

# How long the end of a sweep waits for W&B runs to finish. An offline run finishes in about a second
# and an online one uploads a few metrics, so this bound only matters when W&B is stuck (an unreachable
# server); a run stopped by it keeps its local files, which `wandb sync` uploads later.
RUN_FINISH_TIMEOUT_S = 30


def has_wandb_credentials() -> bool:
    netrc = Path.home() / ".netrc"
    return bool(os.environ.get("WANDB_API_KEY")) or (netrc.exists() and "api.wandb.ai" in netrc.read_text())


class QuietWandbLoggingActor(_WandbLoggingActor):
    """Ray's logging actor, without W&B's run header and summary on the sweep's terminal."""

    def run(self) -> None:
        # Every logging actor's output reaches the driver's terminal, and W&B's header, history and summary
        # per run made up most of a sweep's output. The actor is its own process, so this changes only it.
        # Environment, not wandb.init settings: W&B sets up its terminal printer from the environment, and a
        # show_info passed to wandb.init leaves the offline header lines. Warnings and errors still show
        # (WANDB_SILENT would hide them too).
        os.environ["WANDB_QUIET"] = "true"
        os.environ["WANDB_SHOW_INFO"] = "false"
        super().run()
        # Stop W&B's service process now, while this actor is alive. Otherwise W&B does it in an atexit hook
        # as Ray kills the actor, after Ray has already killed the actor's child processes, and that hook
        # printed a ConnectionResetError traceback for some runs.
        self._wandb.teardown()


class SweepWandbLoggerCallback(WandbLoggerCallback):
    """Ray's W&B callback whose experiment end finishes every run, including trials stopped by the time budget."""

    # Ray's "The `callbacks.on_trial_result` operation took 0.5-2 s" warning, about once per trial, comes from
    # this callback: log_trial_start creates the trial's queue actor, and the trial's first result is put on it
    # with Queue.put, which waits (ray.get) until that actor's new process has started; with both cores
    # training and a logging actor importing wandb, that takes about a second. Later puts take about 1 ms.
    # One driver pause per trial, measured, so the warning is left as Ray prints it.
    _logger_actor_cls = QuietWandbLoggingActor

    def on_experiment_end(self, trials: list[Any], **info: Any) -> None:
        # Ray sends a logging actor its END item only from on_trial_complete / on_trial_error. Trials that the
        # sweep's time budget stops get neither, so their actors wait on their queues forever and Ray's own
        # on_experiment_end waits its whole upload timeout for them. Sending END to every actor still logging
        # lets each run call wandb.finish and write complete files. A second END to an actor that has one
        # already is never read. The puts are not awaited: the bounded wait below covers them too.
        for trial in list(self._trial_logging_futures):
            self._trial_queues[trial].actor.put_nowait.remote((_QueueItem.END, None))
        self._cleanup_logging_actors(timeout=self._upload_timeout, kill_on_timeout=True)


def check_wandb_settings(sweep: SweepConfig) -> None:
    if sweep.wandb.mode == "online" and not has_wandb_credentials():
        raise ConfigError(
            "wandb.mode",
            "online",
            "online logging needs a W&B API key: set WANDB_API_KEY (or run `wandb login`), or use mode 'offline'",
        )


def create_wandb_callback(sweep: SweepConfig, sweep_name: str, run_directory: Path) -> WandbLoggerCallback | None:
    """Live logging during the sweep, online mode only: offline runs are written afterwards (write_wandb_runs)."""
    check_wandb_settings(sweep)
    if sweep.wandb.mode != "online":
        return None
    run_directory.mkdir(parents=True, exist_ok=True)
    # Ray's callback asks for an API key at setup unless W&B's own mode variable says offline.
    os.environ["WANDB_MODE"] = sweep.wandb.mode
    # The key is read by wandb from the environment on each logging actor; it is never passed in a
    # config, so it cannot be logged with one.
    return SweepWandbLoggerCallback(
        project=sweep.wandb.project,
        entity=sweep.wandb.entity,
        group=sweep_name,
        mode=sweep.wandb.mode,
        dir=str(run_directory),
        log_config=False,
        excludes=["time_this_iter_s", "pid", "hostname", "node_ip"],
        upload_timeout=RUN_FINISH_TIMEOUT_S,
        # What Ray's reinit=True means (one run per actor process), without W&B's deprecation warning per run.
        reinit="finish_previous",
    )


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
    search.twins.TrialHistory), then, in both modes, a summary run with `tables` and `images`. Runs land in
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
