"""What synthetic images a space can ask for, found before Ray starts: every generator (with its settings) a
trial can draw, and for each the largest number of images per class any trial can ask of it."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from spaces import ConfigError, GeneratorSettings, SearchSpace, TrialConfig
from trainables.datasets import SearchData
from trainables.real_subset import largest_real_subset_counts
from trainables.replicas import fractions_by_class_index
from trainables.synthetic_mixing import synthetic_counts

# Combinations of the count-deciding parameters' corner values enumerated at most; a space beyond it is too
# wide to bound before trials start, and its generators' images are made on demand instead.
MAXIMUM_COMBINATIONS = 200_000


def _decides_synthetic_images(key: str) -> bool:
    return key == "real_fraction" or key.startswith(("real_fraction.", "synthetic."))


def _is_generator_key(key: str) -> bool:
    return key == "synthetic.generator" or key.startswith("synthetic.settings.")


def _decides_generator_use(key: str) -> bool:
    # Which generator a trial draws, and whether it draws any: a space whose proportions are searched per class
    # (kwon2024) has no synthetic images at its default proportion.
    return _is_generator_key(key) or key == "synthetic.proportion" or key.startswith("synthetic.proportion.")


def _keys_and_conditions(space: SearchSpace, chosen: Callable[[str], bool]) -> list[str]:
    """The chosen parameters and every parameter their conditions hang on."""
    keys = [key for key in space.parameters if chosen(key)]
    pending = list(keys)
    while pending:
        for condition_key in space.parameters[pending.pop()].when or {}:
            if condition_key in space.parameters and condition_key not in keys:
                keys.append(condition_key)
                pending.append(condition_key)
    for key in keys:
        if _is_generator_key(key) and space.parameters[key].choice is None:
            raise ConfigError(
                f"parameters[{key!r}]",
                space.parameters[key].kind,
                "generators are prepared (fit, loaded) before trials start, so their name and settings need `choice` values",
            )
    return keys


def synthetic_trials(space: SearchSpace, chosen: Callable[[str], bool]) -> Iterator[TrialConfig]:
    """A trial for every combination of the chosen parameters' corner values (every choice, both ends of a
    range) that asks for synthetic images; the other parameters keep their defaults."""
    keys = _keys_and_conditions(space, chosen)
    corners = [space.parameters[key].corner_values() for key in keys]
    combinations = math.prod(len(values) for values in corners)
    if combinations > MAXIMUM_COMBINATIONS:
        raise ConfigError(
            "parameters",
            f"{combinations} combinations of {', '.join(keys)}",
            f"at most {MAXIMUM_COMBINATIONS} combinations of the parameters that decide synthetic images are "
            "enumerated before trials; give fewer choices, or pass --no-pregenerate",
        )
    for values in itertools.product(*corners):
        trial = space.resolve(dict(zip(keys, values)), f"space {space.name!r}")
        if trial.synthetic.is_active:
            yield trial


@dataclass
class GeneratorDemand:
    """One generator with its settings, and the most images per class any trial may ask of it."""

    settings: GeneratorSettings
    largest_count: np.ndarray  # int64 [num_classes]


def generator_uses(space: SearchSpace) -> list[GeneratorSettings]:
    """Every generator, with its settings, that a trial with synthetic images can draw from the space."""
    uses = {}
    for trial in synthetic_trials(space, _decides_generator_use):
        uses.setdefault((trial.synthetic.generator, trial.synthetic.settings.settings_hash), trial.synthetic.settings)
    return list(uses.values())


def generator_demands(space: SearchSpace, data: SearchData) -> list[GeneratorDemand]:
    """Every generator (and settings) a trial can draw, with its largest demand per class on this dataset.
    Counts grow with proportions and, in either mode, with real fractions, so the largest lies on the corners."""
    demands: dict[tuple[str, str], GeneratorDemand] = {}
    for trial in synthetic_trials(space, _decides_synthetic_images):
        settings = trial.synthetic.settings
        real_counts = largest_real_subset_counts(
            data.train.labels, data.num_classes, fractions_by_class_index(trial.real_fraction, data), data.train.groups
        )
        counts = synthetic_counts(trial.synthetic, real_counts, data)
        demand = demands.setdefault(
            (settings.generator, settings.settings_hash), GeneratorDemand(settings, np.zeros(data.num_classes, np.int64))
        )
        demand.largest_count = np.maximum(demand.largest_count, counts)
    return list(demands.values())


def smallest_fractions(trials: list[TrialConfig], data: SearchData) -> dict[int, float]:
    """Per class, the smallest real fraction any trial can draw: fitted generators are fit on that subset."""
    smallest = {index: 1.0 for index in range(data.num_classes)}
    for trial in trials:
        fractions = fractions_by_class_index(trial.real_fraction, data)
        for index in smallest:
            fraction = fractions if isinstance(fractions, float) else fractions.get(index, 1.0)
            smallest[index] = min(smallest[index], fraction)
    return smallest
