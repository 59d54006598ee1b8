"""Finalists on fresh seeds, then the test split once (avoids the winner's curse of reporting the search's best):
which configurations, on which seeds, in which order, and the tables of their test results.

The top `finalists` configurations of the leaderboard and the best real-only one are retrained, as one Tune run
inside the sweep's folder (search.tuning.finalists_run), on repeat seeds the search never used:
the search's repeat r uses `seed + r` (r < repeats <= 1000), a finalist's repeat r uses `seed + 1000 + r`, with
max(repeats, 3) seeds. Each finalist's epoch is picked by validation (its best checkpoint by the searched metric);
then, and only then, the test split is read, once, and every finalist's repeat models are evaluated on it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from search.answer.statistics import INTERVAL_METHOD, MCNEMAR_METHOD, mcnemar_exact, seed_interval
from search.answer.test_effect import paired_test_effect
from search.answer.trial_history import TrialHistory, has_synthetic_images
from search.answer.twins import configuration_key, twin_values
from spaces import SearchSpace, TrialConfig, plain_value
from trainables.checkpoint_evaluation import RepeatEvaluation
from trainables.metrics import sanitize_class_name

FINALIST_SEED_OFFSET = 1000
MINIMUM_FINALIST_SEEDS = 3
SUMMARY_METRICS = ("balanced_accuracy", "auroc", "f1_macro", "accuracy")
PRINTED_TEST_METRICS = ("test_balanced_accuracy", "test_auroc", "test_accuracy")


def search_seeds(seed: int, repeats: int) -> list[int]:
    return [seed + repeat for repeat in range(repeats)]


def finalist_seeds(seed: int, repeats: int) -> list[int]:
    """Seeds no search trial used: the search's are seed .. seed + repeats - 1, and repeats is at most 1000."""
    return [seed + FINALIST_SEED_OFFSET + repeat for repeat in range(max(repeats, MINIMUM_FINALIST_SEEDS))]


def values_key(values: Mapping[str, Any]) -> str:
    """A configuration's identity: every active value, synthetic ones included."""
    return json.dumps({key: plain_value(value) for key, value in values.items()}, sort_keys=True, default=str)


@dataclass(frozen=True)
class Finalist:
    source_trial_id: str
    values: dict[str, Any]          # the active values, as the leaderboard has them
    rank: int | None                # its search rank when among the top k, else None
    best_real_only: bool
    best_synthetic: bool = False
    # The best synthetic configuration with every synthetic proportion 0 (search.answer.twins), retrained on the
    # same fresh seeds, so the test split gives the paired effect of synthetic images (search.answer.test_effect).
    twin_of_best_synthetic: bool = False

    @property
    def synthetic(self) -> bool:
        return has_synthetic_images(self.values)

    @property
    def role(self) -> str:
        roles = [f"top {self.rank}"] if self.rank is not None else []
        roles += ["best real-only"] if self.best_real_only else []
        roles += ["best synthetic"] if self.best_synthetic and self.rank is None else []
        roles += ["twin of the best synthetic"] if self.twin_of_best_synthetic else []
        return ", ".join(roles)

    def point(self, space: SearchSpace) -> dict[str, Any]:
        """The sample it trains from in `space` (search.stages passes it to the finalists' Tune run)."""
        return {name: value for name, value in self.values.items() if name in space.parameters}

    def trained_values(self, space: SearchSpace) -> dict[str, Any]:
        """The active values it trains with, as the finalists' Tune result has them: its point resolved in `space`.
        A real-only twin's values (search.answer.twins.twin_space) lack the synthetic keys the space fixes, such as
        `synthetic.generator`; resolving its point in the search space adds them back."""
        return space.active_values(self.point(space))

    def generator_hash(self, space: SearchSpace) -> str | None:
        """The settings hash of the generator it draws synthetic images from; None for a real-only finalist."""
        trial = space.resolve(self.point(space))
        return trial.synthetic.settings.settings_hash if self.synthetic and trial.synthetic.is_active else None


def _ranked_ids(frame: pd.DataFrame | None) -> list[str]:
    if frame is None or frame.empty or "trial_id" not in frame:
        return []
    ok = frame[frame["status"] == "ok"] if "status" in frame else frame
    return list(ok["trial_id"].astype(str))


def choose_finalists(
    leaderboard: pd.DataFrame, histories: Iterable[TrialHistory], count: int, real_only_ranking: pd.DataFrame | None = None
) -> list[Finalist]:
    """The `count` best distinct configurations of the (ranked) leaderboard, the best configuration with synthetic
    images and the best one without (McNemar's test compares those two): the real-only one from `real_only_ranking`
    (default: the leaderboard; the driver adds the real-only twins, which trained on the search's seeds too); and
    the best synthetic one's real-only twin (the paired test effect), a twin trial when one trained, else its values
    with search_trial_id "". A configuration that is several of these is one finalist."""
    by_id = {history.trial_id: history for history in histories}
    ranked = [by_id[trial_id] for trial_id in _ranked_ids(leaderboard) if trial_id in by_id]
    top: dict[str, TrialHistory] = {}
    for history in ranked:
        if len(top) >= count:
            break
        top.setdefault(values_key(history.values), history)
    candidates = [by_id[trial_id] for trial_id in _ranked_ids(
        leaderboard if real_only_ranking is None else real_only_ranking) if trial_id in by_id]
    real_only = next((history for history in candidates if not has_synthetic_images(history.values)), None)
    synthetic = next((history for history in ranked if has_synthetic_images(history.values)), None)
    twin = None if synthetic is None else next((
        history for history in candidates
        if not has_synthetic_images(history.values) and configuration_key(history.values) == configuration_key(synthetic.values)
    ), None)
    best = {role: values_key(history.values) if history is not None else None
            for role, history in (("real_only", real_only), ("synthetic", synthetic), ("twin", twin))}
    if synthetic is not None and twin is None:
        # Its twin was not trained (--no-twins, or the budget ran out first): it trains now, as a finalist only.
        best["twin"] = values_key(twin_values(synthetic.values))

    def finalist(history: TrialHistory, rank: int | None) -> Finalist:
        key = values_key(history.values)
        return Finalist(history.trial_id, dict(history.values), rank, key == best["real_only"], key == best["synthetic"],
                        key == best["twin"])

    finalists = [finalist(history, rank) for rank, history in enumerate(top.values(), start=1)]
    chosen = set(top)
    for history in (synthetic, real_only, twin):
        if history is not None and values_key(history.values) not in chosen:
            chosen.add(values_key(history.values))
            finalists.append(finalist(history, None))
    if synthetic is not None and best["twin"] not in chosen:
        finalists.append(Finalist("", twin_values(synthetic.values), None, False, False, True))
    return finalists


def training_order(finalists: list[Finalist]) -> list[Finalist]:
    """The order finalists start training in, so that a time budget too short for all of them costs the least: the
    best configuration first, then the best real-only and best synthetic ones (McNemar's pair; the real-only one is
    also the quality metrics' encoder) and the best synthetic one's twin (the paired test effect), then the rest by
    rank. The report keeps `finalists`' own order."""
    def priority(finalist: Finalist) -> tuple[int, float]:
        paired = finalist.best_real_only or finalist.best_synthetic or finalist.twin_of_best_synthetic
        needed = 0 if finalist.rank == 1 else 1 if paired else 2
        return needed, finalist.rank if finalist.rank is not None else math.inf
    return sorted(finalists, key=priority)


@dataclass
class FinalistOutcome:
    finalist: Finalist
    trial: TrialConfig
    trial_id: str | None = None
    checkpoint: Any = None                # the picked epoch's ray.tune.Checkpoint
    validation: float = math.nan          # the searched metric at the picked epoch (median over the fresh seeds)
    epochs_run: int = 0
    evaluations: list[RepeatEvaluation] = field(default_factory=list)
    note: str = ""


def reported_metrics(class_names: Iterable[str]) -> list[str]:
    names = [sanitize_class_name(name) for name in class_names]
    return [*SUMMARY_METRICS, *(f"recall_{name}" for name in names), *(f"f1_{name}" for name in names)]


def finalists_table(outcomes: list[FinalistOutcome], metric: str, class_names: Iterable[str]) -> pd.DataFrame:
    """finalists.csv: one row per finalist, each test metric as its mean over seeds and 95% interval."""
    metrics = reported_metrics(class_names)
    rows = []
    for outcome in outcomes:
        finalist = outcome.finalist
        row: dict[str, Any] = {
            "role": finalist.role, "synthetic": finalist.synthetic, "search_trial_id": finalist.source_trial_id,
            "finalist_trial_id": outcome.trial_id, "seeds": " ".join(str(e.seed) for e in outcome.evaluations),
            "epochs_run": outcome.epochs_run, f"val_{metric.removeprefix('val_')}": outcome.validation,
        }
        for name in metrics:
            mean, low, high = seed_interval([e.metrics.get(name, math.nan) for e in outcome.evaluations], bounds=(0.0, 1.0))
            row[f"test_{name}"], row[f"test_{name}_ci_low"], row[f"test_{name}_ci_high"] = mean, low, high
        row["note"] = outcome.note
        row.update(finalist.values)
        rows.append(row)
    return pd.DataFrame(rows)


def _best(outcomes: list[FinalistOutcome], mode: str) -> FinalistOutcome | None:
    evaluated = [outcome for outcome in outcomes if outcome.evaluations]
    if not evaluated:
        return None
    return sorted(evaluated, key=lambda outcome: -outcome.validation if mode == "max" else outcome.validation)[0]


def mcnemar_of(outcomes: list[FinalistOutcome], labels: np.ndarray, mode: str) -> dict[str, Any]:
    """McNemar's exact test between the best synthetic and the best real-only finalist (see MCNEMAR_METHOD)."""
    synthetic = _best([outcome for outcome in outcomes if outcome.finalist.synthetic], mode)
    real_only = _best([outcome for outcome in outcomes if not outcome.finalist.synthetic], mode)
    if synthetic is None or real_only is None:
        missing = "synthetic" if synthetic is None else "real-only"
        return {"note": f"not computed: no {missing} finalist was evaluated", "method": MCNEMAR_METHOD}
    test = mcnemar_exact(synthetic.evaluations[0].predictions == labels, real_only.evaluations[0].predictions == labels)
    return {
        "synthetic_trial_id": synthetic.trial_id, "real_only_trial_id": real_only.trial_id,
        "seed": synthetic.evaluations[0].seed, "synthetic_only_correct": test["a_only"],
        "real_only_only_correct": test["b_only"], "both_correct": test["both_correct"], "both_wrong": test["both_wrong"],
        "p_value": test["p_value"], "method": MCNEMAR_METHOD,
    }


def test_metrics_document(
    outcomes: list[FinalistOutcome], labels: np.ndarray | None, metric: str, mode: str, class_names: Iterable[str]
) -> dict[str, Any] | None:
    """test_metrics.json's content: its keys for the best configuration (the top finalist evaluated: trial_id is its
    search trial, test_<metric> the median over its fresh seeds), every finalist with its intervals, and McNemar's
    test. None when no top finalist was evaluated (or the test split was not read)."""
    class_names = list(class_names)
    best = next((outcome for outcome in outcomes if outcome.evaluations and outcome.finalist.rank is not None), None)
    if best is None or labels is None:
        return None
    median = median_over_seeds([evaluation.metrics for evaluation in best.evaluations])
    finalists = []
    for outcome in outcomes:
        intervals = {}
        for name in reported_metrics(class_names):
            per_seed = [e.metrics.get(name, math.nan) for e in outcome.evaluations]
            mean, low, high = seed_interval(per_seed, bounds=(0.0, 1.0))
            intervals[name] = {"mean": mean, "ci_low": low, "ci_high": high, "per_seed": per_seed}
        finalists.append({
            "role": outcome.finalist.role, "search_trial_id": outcome.finalist.source_trial_id,
            "finalist_trial_id": outcome.trial_id, "synthetic": outcome.finalist.synthetic,
            "seeds": [e.seed for e in outcome.evaluations], "validation": outcome.validation, "note": outcome.note,
            "config": outcome.trial.to_flat(), "test": intervals,
        })
    return {
        "trial_id": best.finalist.source_trial_id, "finalist_trial_id": best.trial_id, "config": best.trial.to_flat(),
        **{f"test_{name}": value for name, value in median.items()},
        "seeds": [e.seed for e in best.evaluations], "interval_method": INTERVAL_METHOD,
        "finalists": finalists, "mcnemar": mcnemar_of(outcomes, labels, mode),
        "synthetic_effect_on_test": paired_test_effect(outcomes, labels, class_names),
    }


def median_over_seeds(per_seed: list[dict[str, float]]) -> dict[str, float]:
    """`<name>` as the median over seeds and `<name>_std` as their spread, as trials report (trainables.trial's
    aggregate_over_repeats); NaN where a metric is undefined (a class absent from the test split)."""
    aggregated: dict[str, float] = {}
    for name in per_seed[0]:
        values = np.asarray([metrics[name] for metrics in per_seed], np.float64)
        aggregated[name], aggregated[f"{name}_std"] = float(np.median(values)), float(values.std())
    return aggregated
