"""The function Tune runs per trial: a searcher's sample becomes a typed TrialConfig, then trainables train it."""

from __future__ import annotations

from typing import Any

from spaces import SearchSpace
from trainables.datasets import SearchData
from trainables.trial import TrialSettings, tune_trial


def search_trial(config: dict[str, Any], *, data: SearchData, space: SearchSpace, settings: TrialSettings) -> None:
    tune_trial(space.resolve(config), data, settings)
