"""The one place a sweep builds or restores a Ray Tune Tuner: the search over a searcher's plan, a run over given
points (the real-only twins, the finalists), and a run restored from its folder; with the run configuration they
share."""

from __future__ import annotations

import math
import os
from typing import Any

from ray import tune
from ray.tune import ResultGrid
from ray.tune.schedulers import FIFOScheduler, TrialScheduler

from search.settings.sweep_config import SweepConfig
from search.tuning._ray_compat import hide_trials_without_results_warning
from search.tuning.searchers import GridPoints, SearchPlan
from trainables.tune_reporting import trial_finished


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
        verbose=1,
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
