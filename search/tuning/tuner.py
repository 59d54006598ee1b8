"""The one place a sweep builds or restores a Ray Tune Tuner: the search over a searcher's plan, a run over given
points (the real-only twins, the finalists), and a run restored from its folder; with the run configuration they
share."""

from __future__ import annotations

import math
import os
from typing import Any

from ray import tune
from ray.tune import ResultGrid
from ray.tune.experiment import Trial
from ray.tune.schedulers import FIFOScheduler, TrialScheduler

from search.settings.sweep_config import SweepConfig
from search.tuning._ray_compat import NoParameterColumns, hide_trials_without_results_warning, use_tune_progress_reporter
from search.tuning.searchers import GridPoints, SearchPlan
from trainables.tune_reporting import trial_finished

# Tune's status table: this often while a run goes on (and once, every trial in it, at its end), this many trials in
# it. A sweep of a few minutes gets a few, next to the sweep's own progress bars.
STATUS_EVERY_S = 60
STATUS_ROWS = 10


def status_columns(metric: str) -> dict[str, str]:
    """The status table's columns after trial name, status and place, by result key: the configuration values a
    person follows a sweep by (`config/<key>`: shown once some trial has the key, so not for a space without
    synthetic images), the epochs trained, the searched metric and its spread over seeds. The rest of every result is
    in the trials' result files and the report."""
    return {
        "config/synthetic.proportion": "synthetic.proportion", "config/synthetic.generator": "synthetic.generator",
        "epoch": "epoch", metric: metric, f"{metric}_std": f"{metric}_std",
    }


class SweepStatusReporter(tune.CLIReporter):
    """Tune's status (trials by state, resources, the scheduler's rungs, errored trials and their error files) with
    `status_columns` only, and the best trial so far by its metric alone."""

    def __init__(self, metric: str, mode: str) -> None:
        columns = status_columns(metric)
        super().__init__(
            metric_columns=columns, parameter_columns=NoParameterColumns(), max_report_frequency=STATUS_EVERY_S,
            max_progress_rows=STATUS_ROWS, print_intermediate_tables=True,
            max_column_length=max(len(header) for header in columns.values()),
        )
        self.best_of = (metric, mode)

    def set_search_properties(self, metric: str | None, mode: str | None) -> bool:
        # Tune passes the run's metric and mode; kept from Ray's reporter, whose best-trial line lists every
        # parameter (or, with parameter columns, raises for one the best trial lacks). `report` writes the line.
        return True

    def report(self, trials: list[Trial], done: bool, *sys_info: str) -> None:
        super().report(trials, done, *sys_info, *best_trial_line(trials, *self.best_of))


def best_trial_line(trials: list[Trial], metric: str, mode: str) -> list[str]:
    scored = [
        (value, trial) for trial in trials
        if isinstance(value := trial.last_result.get(metric), int | float) and not math.isnan(value)
    ]
    if not scored or mode not in ("max", "min"):
        return []
    value, trial = (max if mode == "max" else min)(scored, key=lambda pair: pair[0])
    # The latest epoch's, as in the table (the leaderboard ranks trials by their best epoch).
    return [f"Current best trial: {trial} with {metric}={value:.4f} at its latest epoch"]


def run_config(sweep: SweepConfig, name: str, storage_path: str, callbacks: list) -> tune.RunConfig:
    return tune.RunConfig(
        name=name,
        storage_path=storage_path,
        callbacks=callbacks,
        # Every checkpoint holds the trial's best weights so far, or none (trainables.tune_reporting): the latest serves
        # resume, PBT and the final test evaluation alike. PBT clones other trials' recent checkpoints, which must
        # outlive the clone's restore, so it keeps a few.
        checkpoint_config=tune.CheckpointConfig(num_to_keep=4 if sweep.scheduler == "pbt" else 1),
        # A trial whose process or node dies (or that raises) starts again from its latest checkpoint, this many times.
        failure_config=tune.FailureConfig(max_failures=sweep.max_failures),
        # A trial that has trained its planned epochs stops before the scheduler sees the
        # result, so PBT never clones into a finished trial.
        stop=stop_after_planned_epochs,
        # With Tune's progress reporter engine (_quiet_tune): the reporter's status, and no result per trial (2 and 3
        # print one line or every metric per trial and epoch). A failed trial's traceback is Tune's error log.
        verbose=1,
        progress_reporter=SweepStatusReporter(sweep.metric, sweep.mode),
    )


def stop_after_planned_epochs(trial_id: str, result: dict) -> bool:
    # A trial that stopped early (training.early_stopping_patience) or at its deadline has ended too: no scheduler
    # may perturb it.
    return trial_finished(result, result.get("epoch", 0), result.get("epochs_planned", math.inf))


def _quiet_tune() -> None:
    # With one checkpoint kept per trial, Tune saves its experiment state with every checkpoint (so it never names
    # a deleted one) and warns each time that happens within 5 s; that is the intended cost, not news.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    hide_trials_without_results_warning()
    # Tune's default output engine ignores RunConfig(progress_reporter) and prints every finished trial's whole result.
    use_tune_progress_reporter()


def _fit(
    trainable: Any, sweep: SweepConfig, config: tune.RunConfig, *, search_algorithm: Any, scheduler: TrialScheduler,
    param_space: dict[str, Any], num_samples: int, budget_s: float | None,
) -> ResultGrid:
    _quiet_tune()
    tuner = tune.Tuner(
        trainable,
        param_space=param_space,
        tune_config=tune.TuneConfig(
            metric=sweep.metric, mode=sweep.mode, search_alg=search_algorithm, scheduler=scheduler,
            num_samples=num_samples, max_concurrent_trials=sweep.max_concurrent, time_budget_s=budget_s,
            # Starting a worker process (torch, timm, Ray imports) costs seconds; trials reuse them.
            reuse_actors=True,
        ),
        run_config=config,
    )
    return tuner.fit()


def fit_search(
    trainable: Any, plan: SearchPlan, scheduler: TrialScheduler, sweep: SweepConfig, config: tune.RunConfig
) -> ResultGrid:
    """The search: the searcher's plan under the sweep's scheduler, within the search's share of the time budget."""
    return _fit(
        trainable, sweep, config, search_algorithm=plan.search_algorithm, scheduler=scheduler,
        param_space=plan.param_space, num_samples=plan.num_samples, budget_s=sweep.search_budget_s,
    )


def fit_points(
    trainable: Any, points: list[dict[str, Any]], sweep: SweepConfig, config: tune.RunConfig, budget_s: float | None
) -> ResultGrid:
    """One Tune run over exactly `points`, with no early stopping: each may train every epoch the search's trials
    could. `budget_s` is what is left of the sweep's time budget (None: no budget); Tune stops the run when it runs
    out."""
    return _fit(
        trainable, sweep, config, search_algorithm=GridPoints(points), scheduler=FIFOScheduler(), param_space={},
        num_samples=len(points), budget_s=budget_s,
    )


def can_restore(path: str) -> bool:
    return tune.Tuner.can_restore(path)


def fit_restored(path: str, trainable: Any) -> ResultGrid:
    """A run continued from its folder: finished trials kept, unfinished and errored ones from their checkpoints."""
    _quiet_tune()
    return tune.Tuner.restore(path, trainable=trainable, resume_errored=True).fit()
