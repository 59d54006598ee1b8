"""Ray Tune searchers by name (the SEARCHERS registry), each turning a SearchSpace into what Tune needs (search
algorithm, param space)."""

from __future__ import annotations

import itertools
import json
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import optuna
from ray import tune
from ray.tune.search import BasicVariantGenerator, SearchAlgorithm, Searcher
from ray.tune.search.optuna import OptunaSearch

from spaces import ConfigError, Parameter, Registry, SearchSpace

# The second objective of `objective: multi`, reported by every trial (trainables/trial_cost.py), minimised.
COST_OBJECTIVE = "cost_seconds"


@dataclass(frozen=True)
class SearchGoal:
    metric: str
    mode: str
    num_samples: int
    seed: int
    # "multi": the searcher minimises cost_seconds too (SweepConfig.objective; optuna only).
    objective: str = "single"

    @property
    def metrics(self) -> str | list[str]:
        return [self.metric, COST_OBJECTIVE] if self.objective == "multi" else self.metric

    @property
    def modes(self) -> str | list[str]:
        return [self.mode, "min"] if self.objective == "multi" else self.mode


@dataclass(frozen=True)
class SearchPlan:
    search_algorithm: Searcher | SearchAlgorithm | None
    param_space: dict[str, Any]
    num_samples: int


def _is_plain(value: Any) -> bool:
    return value is None or isinstance(value, bool | int | float | str)


def _suggest(trial: optuna.Trial, key: str, parameter: Parameter) -> Any:
    if parameter.choice is not None:
        if all(_is_plain(value) for value in parameter.choice):
            return trial.suggest_categorical(key, parameter.choice)
        # Optuna's categorical values must be plain (it stores them); a list (UNet widths) is suggested as its JSON.
        return json.loads(trial.suggest_categorical(key, [json.dumps(value) for value in parameter.choice]))
    if parameter.uniform is not None:
        return trial.suggest_float(key, *parameter.uniform)
    if parameter.loguniform is not None:
        return trial.suggest_float(key, *parameter.loguniform, log=True)
    return trial.suggest_int(key, *parameter.integer)


def tune_domain(parameter: Parameter) -> Any:
    if parameter.choice is not None:
        return tune.choice(parameter.choice)
    if parameter.uniform is not None:
        return tune.uniform(*parameter.uniform)
    if parameter.loguniform is not None:
        return tune.loguniform(*parameter.loguniform)
    low, high = parameter.integer
    return tune.randint(low, high + 1)


class DefineByRunSpace:
    """The space as an Optuna define-by-run function, so conditional parameters are only sampled when active.

    A class rather than a closure: Tune pickles the searcher into its experiment checkpoint.
    """

    def __init__(self, space: SearchSpace) -> None:
        self.space = space
        self.ordered = space.ordered_parameters()

    def __call__(self, trial: optuna.Trial) -> dict[str, Any]:
        values: dict[str, Any] = dict(self.space.fixed)
        sampled: dict[str, Any] = {}
        for key, parameter in self.ordered:
            if parameter.is_active(values):
                values[key] = sampled[key] = _suggest(trial, key, parameter)
        # Returned values replace what Optuna recorded, so a list choice reaches the trial as the list itself.
        return sampled


class GridPoints(Searcher):
    """Suggests each grid point once, in order. Tune's own grid_search would also run every combination of
    inactive conditional values, and its preset points cannot hold list values (UNet widths)."""

    def __init__(self, points: list[dict[str, Any]]) -> None:
        super().__init__()
        self.points = points
        self.suggested = 0

    def set_search_properties(self, metric: str | None, mode: str | None, config: dict, **spec: Any) -> bool:
        return True

    def suggest(self, trial_id: str) -> dict[str, Any] | str:
        if self.suggested >= len(self.points):
            return Searcher.FINISHED
        self.suggested += 1
        return dict(self.points[self.suggested - 1])

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        return None

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as file:
            pickle.dump((self.points, self.suggested), file)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as file:
            self.points, self.suggested = pickle.load(file)


SearcherFactory = Callable[[SearchSpace, SearchGoal], SearchPlan]
# Names are SweepConfig.searcher's allowed values (tests/test_tuning_registries.py holds the two together).
SEARCHERS: Registry[SearcherFactory] = Registry("searcher", "searcher")


@SEARCHERS.register("optuna")
def optuna_plan(space: SearchSpace, goal: SearchGoal) -> SearchPlan:
    """Optuna's TPE sampler inside Ray Tune's OptunaSearch, seeded. With `objective: multi` the study has two
    directions (the metric's, and cost_seconds minimised) and TPE samples multi-objective (Optuna's MOTPE: it ranks
    past trials by non-domination); it suits sweeps of tens of trials, where NSGA-II's generations of 50 would
    still be sampling at random."""
    if not space.parameters:
        return random_plan(space, goal)
    # A define-by-run space must be given its metric and mode here; Tune does not pass them on (Tune's own metric
    # and mode, one metric, stay the scheduler's and the results').
    searcher = OptunaSearch(
        space=DefineByRunSpace(space), metric=goal.metrics, mode=goal.modes,
        sampler=optuna.samplers.TPESampler(seed=goal.seed),
    )
    return SearchPlan(searcher, {}, goal.num_samples)


@SEARCHERS.register("random")
def random_plan(space: SearchSpace, goal: SearchGoal) -> SearchPlan:
    """Tune's own random search; inactive conditional values are sampled too and dropped by the trial."""
    param_space = {key: tune_domain(parameter) for key, parameter in space.parameters.items()}
    return SearchPlan(BasicVariantGenerator(random_state=goal.seed), param_space, goal.num_samples)


def grid_points(space: SearchSpace) -> list[dict[str, Any]]:
    """Every distinct active combination of `choice` values (conditional values only where active)."""
    not_choice = [key for key, parameter in space.parameters.items() if parameter.choice is None]
    if not_choice:
        raise ConfigError(
            f"parameters[{not_choice[0]!r}]", space.parameters[not_choice[0]].kind,
            "the grid searcher needs `choice` values for every parameter; use optuna or random for ranges",
        )
    keys = list(space.parameters)
    points: dict[str, dict[str, Any]] = {}
    for combination in itertools.product(*(space.parameters[key].choice for key in keys)):
        active = space.active_values(dict(zip(keys, combination)))
        point = {key: value for key, value in active.items() if key in space.parameters}
        # Values may be lists (block_out_channels), so points are told apart by their canonical JSON.
        points.setdefault(json.dumps(point, sort_keys=True), point)
    return list(points.values())


@SEARCHERS.register("grid")
def grid_plan(space: SearchSpace, goal: SearchGoal) -> SearchPlan:
    points = grid_points(space)
    return SearchPlan(GridPoints(points), {}, len(points))
