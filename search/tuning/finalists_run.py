"""The finalists' Tune run (search.answer.finalists chooses them; search.stages runs it through
search.tuning.tuner): their trial settings on the fresh seeds, each finalist's checkpoint picked by validation,
then the test split, read once, here and nowhere else in a sweep."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from ray.tune import ResultGrid

from search.answer.finalists import Finalist, FinalistOutcome, values_key
from search.tuning.results import best_checkpoint
from spaces import SearchSpace
from trainables.checkpoint_evaluation import evaluate_repeats
from trainables.datasets import DatasetSplits
from trainables.synthetic_mixing import SyntheticSource
from trainables.trial import TrialSettings

FINALISTS_RUN_NAME = "finalists"
# Less than this left of the time budget cannot train a finalist's first epoch and would only start Tune.
MINIMUM_FINALIST_BUDGET_S = 5.0


@dataclass
class FinalistsRun:
    outcomes: list[FinalistOutcome]
    # The test split's labels, once it was read (None: no finalist had a checkpoint, and it was not read).
    labels: np.ndarray | None
    # The finalists' Tune run: what their checkpoints wrote counts in the sweep's storage.json.
    results: ResultGrid | None = None

    def real_only(self) -> FinalistOutcome | None:
        return next((o for o in self.outcomes if o.finalist.best_real_only and o.checkpoint is not None), None)

    def best(self) -> FinalistOutcome | None:
        return next((o for o in self.outcomes if o.finalist.rank is not None and o.checkpoint is not None), None)


def finalists_path(experiment_path: str) -> str:
    return f"{experiment_path}/{FINALISTS_RUN_NAME}"


def finalist_settings(
    settings: TrialSettings, seeds: list[int], source: SyntheticSource | None, budget_s: float | None
) -> TrialSettings:
    """The search's trial settings on the fresh seeds. The test split reads the finalists' best weights: they keep
    them, and end themselves before the time budget would stop them (TrialSettings.deadline), so each writes them
    once, at its end."""
    fresh = dataclasses.replace(
        settings, seed=seeds[0], repeats=len(seeds), checkpoint_every_epoch=False, stopping_epochs=(), keep_weights=True,
        synthetic_source=source if source is not None else settings.synthetic_source,
    )
    return fresh if budget_s is None else dataclasses.replace(fresh, deadline=time.time() + budget_s)


def pick_checkpoints(
    finalists: list[Finalist], results: Any, space: SearchSpace, metric: str, mode: str
) -> list[FinalistOutcome]:
    """Each finalist's Tune result: its best checkpoint by the searched metric (the epoch picked by validation).
    A result is matched by the active values it trained with, both sides resolved in `space` (Finalist.trained_values):
    a real-only twin's own values lack the synthetic keys the space fixes."""
    by_key = {}
    for result in results or []:
        by_key[values_key(space.active_values(result.config or {}))] = result
    outcomes = []
    for finalist in finalists:
        outcome = FinalistOutcome(finalist, space.resolve(finalist.point(space)))
        result = by_key.get(values_key(finalist.trained_values(space)))
        frame = result.metrics_dataframe if result is not None else None
        checkpoint = best_checkpoint(result, metric, mode)
        if frame is None or frame.empty or checkpoint is None:
            outcome.note = "not trained: the time budget ran out first" if result is not None else "not trained"
            if result is not None and result.error:
                outcome.note = f"failed: {str(result.error).splitlines()[0][:200]}"
            outcomes.append(outcome)
            continue
        outcome.trial_id = str(frame["trial_id"].iloc[-1])
        outcome.epochs_run = int(frame["epoch"].max())
        scores = frame[metric]
        outcome.validation = float(scores.max() if mode == "max" else scores.min())
        outcome.checkpoint = checkpoint
        stopped_early = "stopped_early" in frame and float(frame["stopped_early"].fillna(0).iloc[-1]) > 0
        if outcome.epochs_run < outcome.trial.training.epochs and not stopped_early:
            outcome.note = f"the time budget stopped it after {outcome.epochs_run} of {outcome.trial.training.epochs} epochs"
        outcomes.append(outcome)
    return outcomes


def evaluate_on_test(outcomes: list[FinalistOutcome], dataset: DatasetSplits, device: str) -> np.ndarray | None:
    """Reads the test split (the only place a sweep does) and evaluates every finalist's repeat models on it.
    Returns the test labels, or None when no finalist has a checkpoint (the test split is then not read)."""
    trained = [outcome for outcome in outcomes if outcome.checkpoint is not None]
    if not trained:
        return None
    test = dataset.load_test()
    data = dataset.for_search()
    for outcome in trained:
        with outcome.checkpoint.as_directory() as directory:
            outcome.evaluations = evaluate_repeats(Path(directory), outcome.trial, data, test, device=device)
    return np.asarray(test.labels, np.int64)
