"""The function Tune runs per trial: a searcher's sample becomes a typed TrialConfig, then trainables train it."""

from __future__ import annotations

import logging
from typing import Any

from spaces import SearchSpace
from trainables.datasets import SearchData
from trainables.trial import TrialSettings
from trainables.tune_trial import tune_trial


def search_trial(config: dict[str, Any], *, data: SearchData, space: SearchSpace, settings: TrialSettings) -> None:
    # Ray logs every saved checkpoint at INFO from the trial's own process, one line per trial and epoch on
    # the sweep's terminal; its warnings and errors still show.
    logging.getLogger("ray.train._internal.storage").setLevel(logging.WARNING)
    tune_trial(space.resolve(config), data, settings)
