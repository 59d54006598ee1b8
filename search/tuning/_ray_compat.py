"""Every use of Ray's private names, in one place, checked against the Ray version below.

Where a public API does the job the sweep uses it; what is here has none: Ray's W&B callback offers no hook to
quiet its logging actors or to finish the runs of trials the time budget stopped, Tune has no public call for its
graceful stop (only the SIGUSR1 handler it installs while it runs), two of Ray's loggers are named after private
modules, and Tune's default output engine takes no progress reporter (an environment variable selects the one that
does, whose reporter reads an empty list of parameter columns as "all of them"). `check_ray_internals()` lists what
a new Ray release changed; tests/test_ray_compat.py runs it, so an upgrade fails there, loudly, instead of at the
end of a sweep.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import os
import signal
from collections.abc import Callable
from types import FrameType

from ray.air.integrations.wandb import WandbLoggerCallback, _QueueItem, _WandbLoggingActor
from ray.tune import CLIReporter

RAY_VERSION_CHECKED = "2.60.0"

# Ray logs every saved checkpoint at INFO from the trial's own process, one line per trial and epoch.
CHECKPOINT_LOGGER = "ray.train._internal.storage"
# Ray warns, with a FileNotFoundError each, about every trial without result files whenever a run's results are read.
RESULTS_LOGGER = "ray.tune.analysis.experiment_analysis"
MISSING_RESULTS_MESSAGE = "Failed to fetch metrics for"


def quiet_checkpoint_logs() -> None:
    """In a trial's process: Ray's line per saved checkpoint goes; its warnings and errors still show."""
    logging.getLogger(CHECKPOINT_LOGGER).setLevel(logging.WARNING)


class _WithoutResultFiles(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(MISSING_RESULTS_MESSAGE)


def hide_trials_without_results_warning() -> None:
    """Ray's warning about trials without result files, when a run's results are read: a trial the time budget
    stopped before its first report. The sweep says that itself ("the twin has no result", "not trained: the time
    budget ran out first"); on the terminal the warning read as a failure."""
    logger = logging.getLogger(RESULTS_LOGGER)
    if not any(isinstance(existing, _WithoutResultFiles) for existing in logger.filters):
        logger.addFilter(_WithoutResultFiles())


# Tune's default output engine (ray.tune.experimental.output, Ray 2.5 on) ignores RunConfig(progress_reporter) with
# a warning and prints every finished trial's whole last result as a box (the sweep's ~60 metrics: most of a sweep's
# terminal output), with no option to leave them out. "0" selects the engine that takes a progress reporter, where
# RunConfig(verbose=1) prints the reporter's status and no result per trial.
TUNE_OUTPUT_ENGINE_ENV = "RAY_AIR_NEW_OUTPUT"


def use_tune_progress_reporter() -> None:
    """In the driver, before a Tuner runs: Tune's status table comes from RunConfig(progress_reporter). Set, not
    defaulted: the reporter is how the sweep keeps its terminal readable, and the other engine would only warn that
    it ignores it."""
    os.environ[TUNE_OUTPUT_ENGINE_ENV] = "0"


class NoParameterColumns(list):
    """An empty list of parameter columns that Ray's CLIReporter keeps: it reads a false one as "every parameter"
    (`parameter_columns or []`, `if not parameter_columns`), which for a sweep is ten to twenty columns. The sweep
    shows the configuration values it wants as metric columns `config/<key>` instead, which Ray leaves out while no
    trial has them (a conditional parameter, a space without synthetic images)."""

    def __bool__(self) -> bool:
        return True


def _reporter_shows_no_parameter_columns() -> bool:
    from ray.tune.experiment.trial import Trial
    from ray.tune.utils import log

    storage = type("Storage", (), {"experiment_driver_staging_path": "", "trial_driver_staging_path": ""})()
    trial = Trial(
        "__check", config={"planted_parameter": 1}, evaluated_params={"planted_parameter": 1}, stub=True, storage=storage
    )
    trial.update_last_result({"planted_metric": 0.5})
    reporter = CLIReporter(
        metric_columns=["planted_metric"], parameter_columns=NoParameterColumns(), print_intermediate_tables=True
    )
    # The table is drawn only at a verbosity of 1 or more (Tune sets the level from RunConfig.verbose).
    level = log.verbosity
    log.set_verbosity(1)
    try:
        table = reporter._progress_str([trial], done=True)
    finally:
        log.set_verbosity(level)
    return "planted_metric" in table and "planted_parameter" not in table


TuneStopHandler = Callable[[int, FrameType | None], object]


def tune_stop_handler() -> TuneStopHandler | None:
    """The handler Tune installs for SIGUSR1 while a run is in progress (ray.tune.tune's signal_interrupt_tune_run:
    it saves the experiment state and stops the run, as Tune's own Ctrl-C does), or None outside a run."""
    handler = signal.getsignal(signal.SIGUSR1)
    return handler if callable(handler) else None


def ask_tune_to_stop(handler: TuneStopHandler) -> None:
    handler(signal.SIGUSR1, None)


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


class FinishingWandbLoggerCallback(WandbLoggerCallback):
    """Ray's W&B callback with quiet logging actors, whose experiment end finishes every run, including those of
    trials the time budget stopped."""

    # Ray's "The `callbacks.on_trial_result` operation took 0.5-2 s" warning, about once per trial, comes from
    # this callback: log_trial_start creates the trial's queue actor, and the trial's first result is put on it
    # with Queue.put, which waits (ray.get) until that actor's new process has started; with both cores
    # training and a logging actor importing wandb, that takes about a second. Later puts take about 1 ms.
    # One driver pause per trial, measured, so the warning is left as Ray prints it.
    _logger_actor_cls = QuietWandbLoggingActor

    def on_experiment_end(self, trials: list, **info: object) -> None:
        # Ray sends a logging actor its END item only from on_trial_complete / on_trial_error. Trials that the
        # sweep's time budget stops get neither, so their actors wait on their queues forever and Ray's own
        # on_experiment_end waits its whole upload timeout for them. Sending END to every actor still logging
        # lets each run call wandb.finish and write complete files. A second END to an actor that has one
        # already is never read. The puts are not awaited: the bounded wait below covers them too.
        for trial in list(self._trial_logging_futures):
            self._trial_queues[trial].actor.put_nowait.remote((_QueueItem.END, None))
        self._cleanup_logging_actors(timeout=self._upload_timeout, kill_on_timeout=True)


def check_ray_internals() -> list[str]:
    """What of the above the installed Ray no longer has: one line per change, empty when all is as checked."""
    problems = []
    for name in (CHECKPOINT_LOGGER, RESULTS_LOGGER):
        try:
            module = importlib.import_module(name)
        except ImportError:
            problems.append(f"logger module {name} is gone: the sweep's log filters name nothing")
            continue
        if name == RESULTS_LOGGER and MISSING_RESULTS_MESSAGE not in inspect.getsource(module):
            problems.append(f"{name} no longer warns {MISSING_RESULTS_MESSAGE!r}: the filter hides nothing")
    tune_source = inspect.getsource(importlib.import_module("ray.tune.tune"))
    output = importlib.import_module("ray.tune.experimental.output")
    previous = os.environ.get(TUNE_OUTPUT_ENGINE_ENV)
    try:
        os.environ[TUNE_OUTPUT_ENGINE_ENV] = "0"
        chosen = output.get_air_verbosity(1)
    finally:
        if previous is None:
            os.environ.pop(TUNE_OUTPUT_ENGINE_ENV)
        else:
            os.environ[TUNE_OUTPUT_ENGINE_ENV] = previous
    if chosen is not None or "progress_reporter or _detect_reporter(" not in tune_source:
        problems.append(f"{TUNE_OUTPUT_ENGINE_ENV}=0 no longer selects the output engine that takes a progress reporter: "
                        "every finished trial's result box is back on the terminal")
    try:
        if not _reporter_shows_no_parameter_columns():
            problems.append("CLIReporter(parameter_columns=NoParameterColumns()) shows parameter columns again")
    except Exception as error:
        problems.append(f"CLIReporter's table could not be drawn for a planted trial: {error!r}")
    if "signal.SIGUSR1" not in tune_source or "experiment_interrupted_event.set()" not in tune_source:
        problems.append("ray.tune.tune no longer stops a run on SIGUSR1: Ctrl-C cannot save the experiment's state")
    if not hasattr(_QueueItem, "END"):
        problems.append("ray.air.integrations.wandb._QueueItem has no END")
    actor_source = inspect.getsource(_WandbLoggingActor)
    if "self._wandb = wandb" not in actor_source or "def run(self)" not in actor_source:
        problems.append("_WandbLoggingActor no longer keeps wandb as self._wandb or has run()")
    callback_source = inspect.getsource(WandbLoggerCallback)
    for attribute in ("_logger_actor_cls", "_trial_logging_futures", "_trial_queues", "_upload_timeout"):
        if f"{attribute}" not in callback_source:
            problems.append(f"WandbLoggerCallback has no {attribute}")
    cleanup = getattr(WandbLoggerCallback, "_cleanup_logging_actors", None)
    if cleanup is None or not {"timeout", "kill_on_timeout"} <= set(inspect.signature(cleanup).parameters):
        problems.append("WandbLoggerCallback._cleanup_logging_actors(timeout, kill_on_timeout) is gone")
    return problems
