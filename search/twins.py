"""Real-only twins: every configuration with synthetic images against the same configuration without them.

A twin is the same configuration with every synthetic proportion 0, trained on the same repeat seeds: repeat r
of every trial uses `sweep.seed + r`, which fixes its real subset (trainables.real_subset), its initial weights
and its per-epoch augmentation and batch-order seeds (trainables.replicas, trainables.trial). Twins the searcher
drew already are reused; the others run after the search, as one more Tune run over exactly those configurations.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from spaces import SearchSpace, plain_value

SYNTHETIC_PREFIX = "synthetic."


def is_synthetic_key(key: str) -> bool:
    return key.startswith(SYNTHETIC_PREFIX)


def has_synthetic_images(values: Mapping[str, Any]) -> bool:
    """Some class gets a synthetic proportion above 0 (a global proportion, per-class keys or a per-class mapping)."""
    for key, value in values.items():
        if key == "synthetic.proportion" or key.startswith("synthetic.proportion."):
            proportions = value.values() if isinstance(value, Mapping) else [value]
            if any(float(proportion) > 0 for proportion in proportions):
                return True
    return False


def configuration_key(values: Mapping[str, Any]) -> str:
    """What a configuration and its twin share: every active value except the synthetic ones."""
    shared = {key: plain_value(value) for key, value in values.items() if not is_synthetic_key(key)}
    return json.dumps(shared, sort_keys=True, default=str)


def twin_space(space: SearchSpace) -> SearchSpace:
    """The space without its synthetic keys, proportion fixed at 0. A condition on a synthetic key is dropped:
    a twin's values are its partner's active values, so a value present is one whose condition held."""
    parameters = {
        key: parameter.model_copy(
            update={"when": {name: allowed for name, allowed in (parameter.when or {}).items() if not is_synthetic_key(name)}
                    or None}
        )
        for key, parameter in space.parameters.items()
        if not is_synthetic_key(key)
    }
    fixed = {key: value for key, value in space.fixed.items() if not is_synthetic_key(key)}
    return SearchSpace(
        name=f"{space.name}-real-only", description=f"real-only twins of {space.name}",
        fixed={**fixed, "synthetic.proportion": 0.0}, parameters=parameters, sweep=space.sweep,
    )


@dataclass(frozen=True)
class TrialHistory:
    """One trial as the analysis needs it: its active values and its per-epoch results (Tune's metrics_dataframe)."""

    trial_id: str
    values: dict[str, Any]
    history: pd.DataFrame
    source: str  # "search" or "twin"

    @property
    def epochs_run(self) -> int:
        return int(self.history["epoch"].max()) if "epoch" in self.history and not self.history.empty else 0

    @property
    def epochs_comparable(self) -> int:
        """The epochs this trial stands for: a trial its own patience stopped (training.early_stopping_patience)
        would not have improved on, so it counts as trained to its planned epochs; one a scheduler or the time
        budget stopped only for the epochs it ran."""
        last = self.history.iloc[-1] if not self.history.empty else None
        if last is not None and float(last.get("stopped_early", 0) or 0) > 0 and "epochs_planned" in last:
            return int(last["epochs_planned"])
        return self.epochs_run


def histories_of(results: Iterable[Any], space: SearchSpace, source: str) -> list[TrialHistory]:
    """Trials of a Tune ResultGrid with at least one reported epoch."""
    histories = []
    for result in results:
        frame = result.metrics_dataframe
        if frame is None or frame.empty or "epoch" not in frame:
            continue
        trial_id = str(frame["trial_id"].iloc[-1]) if "trial_id" in frame else str(result.path).rsplit("/", 1)[-1]
        histories.append(TrialHistory(trial_id, space.active_values(result.config or {}), frame, source))
    return histories


def twin_points(histories: Iterable[TrialHistory], twins: SearchSpace) -> list[dict[str, Any]]:
    """The twin samples still missing: one per distinct synthetic configuration without a real-only trial."""
    histories = list(histories)
    drawn = {configuration_key(history.values) for history in histories if not has_synthetic_images(history.values)}
    points: dict[str, dict[str, Any]] = {}
    for history in histories:
        if has_synthetic_images(history.values):
            key = configuration_key(history.values)
            if key not in drawn:
                points.setdefault(key, {name: value for name, value in history.values.items() if name in twins.parameters})
    return list(points.values())


@dataclass(frozen=True)
class TwinPair:
    with_synthetic: TrialHistory
    real_only: TrialHistory | None


def pair_with_twins(histories: Iterable[TrialHistory]) -> list[TwinPair]:
    """Each synthetic trial with its real-only twin; of several real-only trials of one configuration (a searcher
    may draw one twice), the one that trained longest."""
    histories = list(histories)
    real_only: dict[str, TrialHistory] = {}
    for history in histories:
        if not has_synthetic_images(history.values):
            key = configuration_key(history.values)
            if key not in real_only or history.epochs_comparable > real_only[key].epochs_comparable:
                real_only[key] = history
    return [
        TwinPair(history, real_only.get(configuration_key(history.values)))
        for history in histories
        if has_synthetic_images(history.values)
    ]


def run_twins(trainable: Any, points: list[dict[str, Any]], run_config: Any, sweep: Any, budget_s: float | None) -> Any:
    """One Tune run over exactly `points`, with no early stopping: each twin may train every epoch its partner could.
    `budget_s` is what is left of the sweep's time budget (None: no budget); Tune stops the twins when it runs out."""
    from ray import tune
    from ray.tune.schedulers import FIFOScheduler

    from search.searchers import GridPoints

    tuner = tune.Tuner(
        trainable,
        param_space={},
        tune_config=tune.TuneConfig(
            metric=sweep.metric, mode=sweep.mode, search_alg=GridPoints(points), scheduler=FIFOScheduler(),
            num_samples=len(points), max_concurrent_trials=sweep.max_concurrent, time_budget_s=budget_s,
            reuse_actors=True,
        ),
        run_config=run_config,
    )
    return tuner.fit()
