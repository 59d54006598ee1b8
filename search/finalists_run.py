"""The driver's side of the finalists (search/finalists.py): fresh-seed generators when a finalist draws synthetic
images from a fitted generator, one Tune run over the finalists within what is left of the time budget, then the
test split, once."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from ray import tune
from ray.tune import ResultGrid

from generators.pool import PoolKey, SyntheticPool
from search.finalists import (
    FINALISTS_RUN_NAME,
    Finalist,
    FinalistOutcome,
    choose_finalists,
    evaluate_on_test,
    finalist_seeds,
    pick_checkpoints,
    printable_finalists,
    training_order,
    write_finalist_results,
)
from search.sweep_record import SweepRecord
from search.synthetic_demand import GeneratorDemand
from search.synthetic_filter_setup import attach_label_filters, space_uses_label_filter
from search.synthetic_setup import PreparedGenerators, prepare_generators
from search.twins import TrialHistory, run_twins
from trainables.datasets import DatasetSplits, SearchData
from trainables.synthetic import SyntheticSource
from trainables.trial import TrialSettings

# Less than this left of the time budget cannot train a finalist's first epoch and would only start Tune.
MINIMUM_FINALIST_BUDGET_S = 5.0


@dataclass
class FinalistsRun:
    outcomes: list[FinalistOutcome]
    test_metrics_path: Path | None
    # The finalists' Tune run: what their checkpoints wrote counts in the sweep's storage.json.
    results: ResultGrid | None = None

    def real_only(self) -> FinalistOutcome | None:
        return next((o for o in self.outcomes if o.finalist.best_real_only and o.checkpoint is not None), None)

    def best(self) -> FinalistOutcome | None:
        return next((o for o in self.outcomes if o.finalist.rank is not None and o.checkpoint is not None), None)


def _generator_hash(finalist: Finalist, record: SweepRecord) -> str | None:
    space = record.search_space
    trial = space.resolve(finalist.point(space))
    return trial.synthetic.settings.settings_hash if finalist.synthetic and trial.synthetic.is_active else None


def too_costly_to_fit(
    finalists: list[Finalist], record: SweepRecord, demands: list[GeneratorDemand], data: SearchData,
    fit_fractions: dict[int, float], pool_root: str, seeds: list[int], left_s: float | None,
) -> dict[str, str]:
    """Synthetic finalists (by source trial id) left out, with why: their generators must be fit on every fresh seed
    the pool holds no fit for, and those fits (at the pace of the search's own fits, as the pool recorded them)
    would take more than half the time left."""
    if left_s is None:
        return {}
    hashes = {_generator_hash(finalist, record) for finalist in finalists}
    pool, source = SyntheticPool(pool_root), SyntheticSource(pool_root=pool_root, fit_fractions=fit_fractions)
    estimate, needed = 0.0, set()
    for demand in demands:
        settings = demand.settings
        if not settings.needs_fit or settings.settings_hash not in hashes:
            continue

        def stored(seed: int) -> PoolKey | None:
            return pool.find_generator(source.pool_key(settings, data, seed), settings.fit_settings_hash)  # noqa: B023

        paces = [float(pool.generator_info(key).get("fit_seconds", 0.0))
                 for key in (stored(seed) for seed in range(record.sweep.seed, record.sweep.seed + record.sweep.repeats))
                 if key is not None]
        missing = [seed for seed in seeds if stored(seed) is None]
        if missing:
            needed.add(settings.settings_hash)
            estimate += (max(paces) if paces else record.seconds.get("generators", 0.0)) * len(missing)
    if not needed or estimate <= 0.5 * left_s:
        return {}
    note = (f"not trained: its generator would need fitting on the fresh seeds (about {estimate:.0f} s at the search's "
            f"pace), more than half the time budget left ({left_s:.0f} s)")
    return {finalist.source_trial_id: note for finalist in finalists if _generator_hash(finalist, record) in needed}


def fresh_seed_generators(
    finalists: list[Finalist], record: SweepRecord, demands: list[GeneratorDemand], fit_fractions: dict[int, float],
    dataset: DatasetSplits, pool_root: str, seeds: list[int],
) -> PreparedGenerators | None:
    """The generators the synthetic finalists draw from, fit (or loaded from the pool) on the fresh seeds' fit
    subsets: a fitted generator learns from its seed's real subset, so new seeds need their own fits."""
    space = record.search_space
    hashes = {_generator_hash(finalist, record) for finalist in finalists}
    chosen = [demand for demand in demands if demand.settings.settings_hash in hashes]
    if not chosen:
        return None
    fresh = record.sweep.model_copy(update={"seed": seeds[0], "repeats": len(seeds)})
    data = dataset.for_search()
    generators = prepare_generators(chosen, fit_fractions, data, fresh, pool_root)
    if space_uses_label_filter(space):
        generators = dataclasses.replace(generators, source=attach_label_filters(generators.source, data, seeds))
    return generators


def train_and_test_finalists(
    record: SweepRecord, leaderboard: pd.DataFrame, histories: list[TrialHistory], *, real_only_ranking: pd.DataFrame,
    settings: TrialSettings,
    trainable_of: Callable[..., Any], run_config_of: Callable[[str], tune.RunConfig], dataset: DatasetSplits,
    demands: list[GeneratorDemand], fit_fractions: dict[int, float], pool_root: str, deadline: float | None,
    report_dir: Path,
) -> FinalistsRun | None:
    """Retrains the finalists on fresh seeds and evaluates them once on the test split (finalists.csv,
    test_metrics.json). None when there is no finalist; the reason is kept in record.not_computed."""
    sweep, space = record.sweep, record.search_space
    finalists = choose_finalists(leaderboard, histories, sweep.finalists, real_only_ranking)
    if not finalists:
        record.not_computed["finalists"] = "no trial reported a result"
        return None
    seeds = finalist_seeds(sweep.seed, sweep.repeats)
    path = f"{record.experiment_path}/{FINALISTS_RUN_NAME}"
    started = time.monotonic()
    resuming = sweep.resume and tune.Tuner.can_restore(path)
    left_s = None if deadline is None or resuming else deadline - time.monotonic()
    skipped = too_costly_to_fit(finalists, record, demands, dataset.for_search(), fit_fractions, pool_root, seeds, left_s)
    for note in sorted(set(skipped.values())):
        print(f"\nA synthetic finalist is {note}")
    training = training_order([finalist for finalist in finalists if finalist.source_trial_id not in skipped])
    generators = fresh_seed_generators(training, record, demands, fit_fractions, dataset, pool_root, seeds)
    # The test split reads the finalists' best weights: they keep them, and end themselves before the time budget
    # would stop them (TrialSettings.deadline), so each writes them once, at its end.
    fresh = dataclasses.replace(
        settings, seed=seeds[0], repeats=len(seeds), checkpoint_every_epoch=False, stopping_epochs=(), keep_weights=True,
        synthetic_source=generators.source if generators is not None else settings.synthetic_source,
    )
    results = None
    if resuming:
        results = tune.Tuner.restore(path, trainable=trainable_of(space, fresh), resume_errored=True).fit()
    elif training:
        budget_s = None if deadline is None else deadline - time.monotonic()
        if budget_s is not None and budget_s < MINIMUM_FINALIST_BUDGET_S:
            record.not_computed["finalists"] = (
                f"the time budget ({sweep.time_budget_s:g} s) was spent before the finalists could train "
                "(raise --time-budget-s or --answer-budget-share)"
            )
            print(f"\nNo time left for the finalists: {record.not_computed['finalists']}")
            return None
        print(f"\nTraining {len(training)} finalists on fresh seeds {seeds[0]}..{seeds[-1]} (never used by the search)"
              + (f", {budget_s:.0f} s of the time budget left" if budget_s is not None else ""))
        if budget_s is not None:
            fresh = dataclasses.replace(fresh, deadline=time.time() + budget_s)
        results = run_twins(trainable_of(space, fresh), [f.point(space) for f in training],
                            run_config_of(FINALISTS_RUN_NAME), sweep, budget_s)
    del generators  # the fresh-seed generator actors end here
    record.seconds["finalists"] = time.monotonic() - started
    record.finalists_path = path
    outcomes = pick_checkpoints(finalists, results, space, sweep.metric, sweep.mode)
    for outcome in outcomes:
        outcome.note = skipped.get(outcome.finalist.source_trial_id, outcome.note)
    # The test split is read here, after the search, the twins and the finalists' training, and nowhere else.
    labels = evaluate_on_test(outcomes, dataset, sweep.device)
    test_metrics_path = write_finalist_results(outcomes, labels, report_dir, sweep.metric, sweep.mode, dataset.class_names)
    if test_metrics_path is None:
        record.not_computed["finalists"] = "no finalist trained an epoch within the time budget"
        print(f"\nFinalists: {record.not_computed['finalists']}")
    else:
        print(f"\nFinalists on fresh seeds {seeds[0]}..{seeds[-1]}, on the test split (read once), mean [95% interval "
              "across seeds]:\n" + printable_finalists(test_metrics_path))
    return FinalistsRun(outcomes, test_metrics_path, results)
