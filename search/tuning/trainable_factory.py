"""The function Tune runs per trial: a searcher's sample becomes a typed TrialConfig, then trainables train it;
and the trainable Tune is given, with the sweep's data by reference and each trial's resources."""

from __future__ import annotations

from typing import Any

from ray import tune

from search.settings.sweep_config import ResourceSettings
from search.tuning._ray_compat import quiet_checkpoint_logs
from spaces import SearchSpace
from trainables.datasets import SearchData
from trainables.trial import TrialSettings
from trainables.tune_reporting import tune_trial


def search_trial(config: dict[str, Any], *, data: SearchData, space: SearchSpace, settings: TrialSettings) -> None:
    quiet_checkpoint_logs()
    tune_trial(space.resolve(config), data, settings)


def trainable_of(space: SearchSpace, settings: TrialSettings, data: SearchData, resources: ResourceSettings) -> Any:
    """Only train and validation go to the object store, once; trials get a reference, never a copy on disk."""
    return tune.with_resources(
        tune.with_parameters(search_trial, data=data, space=space, settings=settings),
        {"cpu": resources.cpus, "gpu": resources.gpus},
    )
