"""One trial as the answer reads it (its active values and per-epoch results), and what makes a configuration one
with synthetic images."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from spaces import SearchSpace

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
