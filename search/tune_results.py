"""Reading Tune's results where a trial may have no checkpoint at all."""

from __future__ import annotations

from typing import Any

from ray import tune


def best_checkpoint(result: Any, metric: str, mode: str) -> tune.Checkpoint | None:
    """A trial's checkpoint with the best `metric`, or its latest; None when it wrote none (Tune's
    get_best_checkpoint raises then). A trial checkpoints where a scheduler may stop it and at its end
    (trainables.trial.CheckpointSchedule), so one the time budget stopped before either has none."""
    if result is None or not result.best_checkpoints:
        return None
    return result.get_best_checkpoint(metric, mode) or result.checkpoint
