"""Ray Tune searchers by name, each turning a SearchSpace into what Tune needs (search algorithm, param space)."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import optuna
from ray import tune
from ray.tune.search import BasicVariantGenerator, SearchAlgorithm, Searcher
from ray.tune.search.optuna import OptunaSearch

from spaces import ConfigError, Parameter, SearchSpace

# The key under which grid points travel; a trial's sampled values are read back from it.
GRID_POINT_KEY = "grid_point"


@dataclass(frozen=True)
class SearchGoal:
    metric: str
    mode: str
    num_samples: int
    seed: int


@dataclass(frozen=True)
class SearchPlan:
    search_algorithm: Searcher | SearchAlgorithm | None
    param_space: dict[str, Any]
    num_samples: int


SearcherFactory = Callable[[SearchSpace, "SearchGoal"], SearchPlan]
SEARCHERS: dict[str, SearcherFactory] = {}


def register_searcher(name: str) -> Callable[[SearcherFactory], SearcherFactory]:
    def register(factory: SearcherFactory) -> SearcherFactory:
        SEARCHERS[name] = factory
        return factory

    return register


def create_search_plan(name: str, space: SearchSpace, goal: SearchGoal) -> SearchPlan:
    if name not in SEARCHERS:
        raise ConfigError("searcher", name, f"allowed: {', '.join(sorted(SEARCHERS))}")
    return SEARCHERS[name](space, goal)


def sampled_values(config: dict[str, Any]) -> dict[str, Any]:
    """A trial's sampled values, whichever searcher produced them."""
    return dict(config.get(GRID_POINT_KEY, config))


def _suggest(trial: optuna.Trial, key: str, parameter: Parameter) -> Any:
    if parameter.choice is not None:
        return trial.suggest_categorical(key, parameter.choice)
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

    def __call__(self, trial: optuna.Trial) -> None:
        values: dict[str, Any] = dict(self.space.fixed)
        for key, parameter in self.ordered:
            if parameter.is_active(values):
                values[key] = _suggest(trial, key, parameter)


@register_searcher("optuna")
def optuna_plan(space: SearchSpace, goal: SearchGoal) -> SearchPlan:
    """Optuna's TPE sampler inside Ray Tune's OptunaSearch, seeded."""
    if not space.parameters:
        return random_plan(space, goal)
    # A define-by-run space must be given its metric and mode here; Tune does not pass them on.
    searcher = OptunaSearch(
        space=DefineByRunSpace(space), metric=goal.metric, mode=goal.mode,
        sampler=optuna.samplers.TPESampler(seed=goal.seed),
    )
    return SearchPlan(searcher, {}, goal.num_samples)


@register_searcher("random")
def random_plan(space: SearchSpace, goal: SearchGoal) -> SearchPlan:
    """Tune's own random search; inactive conditional values are sampled too and dropped by the trial."""
    param_space = {key: tune_domain(parameter) for key, parameter in space.parameters.items()}
    return SearchPlan(BasicVariantGenerator(random_state=goal.seed), param_space, goal.num_samples)


@register_searcher("grid")
def grid_plan(space: SearchSpace, goal: SearchGoal) -> SearchPlan:
    """Every distinct active combination of `choice` values once (conditional values only where active)."""
    not_choice = [key for key, parameter in space.parameters.items() if parameter.choice is None]
    if not_choice:
        raise ConfigError(
            f"parameters[{not_choice[0]!r}]", space.parameters[not_choice[0]].kind,
            "the grid searcher needs `choice` values for every parameter; use optuna or random for ranges",
        )
    keys = list(space.parameters)
    points: list[dict[str, Any]] = []
    seen: set[str] = set()
    for combination in itertools.product(*(space.parameters[key].choice for key in keys)):
        active = {
            key: value
            for key, value in space.active_values(dict(zip(keys, combination))).items()
            if key in space.parameters
        }
        # Values may be lists (block_out_channels), so compare points by their canonical JSON.
        signature = json.dumps(active, sort_keys=True)
        if signature not in seen:
            seen.add(signature)
            points.append(active)
    return SearchPlan(BasicVariantGenerator(random_state=goal.seed), {GRID_POINT_KEY: tune.grid_search(points)}, 1)
