"""Searchers and schedulers are registered by name like generators and policies, and the names a sweep accepts
(SweepConfig.searcher, .scheduler) are exactly the registered ones."""

from __future__ import annotations

import typing

import pytest

from search.settings.sweep_config import SweepConfig
from search.tuning.schedulers import SCHEDULERS
from search.tuning.searchers import SEARCHERS, SearchGoal
from spaces import ConfigError, load_space


@pytest.mark.parametrize(("registry", "field"), [(SEARCHERS, "searcher"), (SCHEDULERS, "scheduler")])
def test_the_settings_accept_exactly_the_registered_names(registry, field: str) -> None:
    allowed = typing.get_args(SweepConfig.model_fields[field].annotation)
    assert sorted(allowed) == registry.names()


def test_an_unknown_searcher_names_the_registered_ones() -> None:
    with pytest.raises(ConfigError, match=r"^searcher: 'optunaa'.*registered: grid, optuna, random; did you mean 'optuna'"):
        SEARCHERS.get("optunaa")
    plan = SEARCHERS.get("random")(load_space("quick"), SearchGoal("val_auroc", "max", num_samples=3, seed=0))
    assert plan.num_samples == 3
