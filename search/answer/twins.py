"""Real-only twins: every configuration with synthetic images against the same configuration without them.

A twin is the same configuration with every synthetic proportion 0, trained on the same repeat seeds: repeat r
of every trial uses `sweep.seed + r`, which fixes its real subset (trainables.real_subset), its initial weights
and its per-epoch augmentation and batch-order seeds (trainables.replicas, trainables.trial). Twins the searcher
drew already are reused; the others run after the search, as one more Tune run over exactly those configurations
(search.tuning.twins_run).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from search.answer.trial_history import TrialHistory, has_synthetic_images, is_synthetic_key
from spaces import SearchSpace, plain_value


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


def twin_values(values: Mapping[str, Any]) -> dict[str, Any]:
    """A configuration's real-only twin as twin_space would train it: its values without the synthetic ones, and
    every synthetic proportion 0."""
    return {**{key: value for key, value in values.items() if not is_synthetic_key(key)}, "synthetic.proportion": 0.0}


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
