"""W&B logging through Ray's WandbLoggerCallback: offline run files by default, online only when asked and keyed."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

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


def create_wandb_callback(sweep: SweepConfig, sweep_name: str, run_directory: Path) -> WandbLoggerCallback | None:
    if sweep.wandb.mode == "disabled":
        return None
    if sweep.wandb.mode == "online" and not has_wandb_credentials():
        raise ConfigError(
            "wandb.mode",
            "online",
            "online logging needs a W&B API key: set WANDB_API_KEY (or run `wandb login`), or use mode 'offline'",
        )
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
