"""The cleanest answer the sweep gives: the effect of synthetic images on the test split, for one configuration.

The best configuration with synthetic images and its real-only twin (the same configuration, every synthetic
proportion 0) are both finalists, retrained on the same fresh seeds (search.answer.finalists); seed s of both
shares its real subset and initial weights. Their per-seed test metrics are paired seed by seed and compared with
the sweep's one paired procedure (search.answer.statistics.paired_effect): balanced accuracy, AUROC and the F1 of
the minority class (the class with the fewest test images).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from search.answer.statistics import PAIRED_METHOD, coverage_note, paired_effect
from trainables.metrics import sanitize_class_name

if TYPE_CHECKING:
    from search.answer.finalists import FinalistOutcome

EFFECT_METRICS = ("balanced_accuracy", "auroc")


def minority_f1(labels: np.ndarray, class_names: Sequence[str]) -> str:
    """`f1_<class>` of the class with the fewest test images (the first such class on a tie)."""
    counts = np.bincount(np.asarray(labels, np.int64), minlength=len(class_names))
    return f"f1_{sanitize_class_name(class_names[int(np.argmin(counts))])}"


def paired_test_effect(
    outcomes: list[FinalistOutcome], labels: np.ndarray, class_names: Sequence[str]
) -> dict[str, Any]:
    """test_metrics.json's `synthetic_effect_on_test`: per metric, the mean per-seed difference (best synthetic
    finalist - its real-only twin) with its interval and p-value; `note` alone when the pair was not evaluated."""
    synthetic = next((o for o in outcomes if o.finalist.best_synthetic and o.evaluations), None)
    twin = next((o for o in outcomes if o.finalist.twin_of_best_synthetic and o.evaluations), None)
    if synthetic is None or twin is None:
        missing = ("no configuration with synthetic images was a finalist" if not any(o.finalist.best_synthetic for o in outcomes)
                   else "the best synthetic finalist was not evaluated" if synthetic is None
                   else "its real-only twin was not a finalist" if not any(
                       o.finalist.twin_of_best_synthetic for o in outcomes)
                   else "its real-only twin was not evaluated")
        return {"note": f"not computed: {missing}"}
    twin_by_seed = {evaluation.seed: evaluation.metrics for evaluation in twin.evaluations}
    pairs = [(e.seed, e.metrics, twin_by_seed[e.seed]) for e in synthetic.evaluations if e.seed in twin_by_seed]
    if not pairs:
        return {"note": "not computed: the best synthetic finalist and its twin share no evaluated seed"}
    metrics = {}
    for name in (*EFFECT_METRICS, minority_f1(labels, class_names)):
        with_synthetic = [with_metrics.get(name, math.nan) for _, with_metrics, _ in pairs]
        real_only = [without.get(name, math.nan) for _, _, without in pairs]
        kept = [(x, y) for x, y in zip(with_synthetic, real_only) if not (math.isnan(x) or math.isnan(y))]
        if not kept:
            metrics[name] = {"effect": None, "ci_low": None, "ci_high": None, "p_value": None, "repeats": 0,
                             "note": f"{name} is undefined on this test split"}
            continue
        estimate = paired_effect([x for x, _ in kept], [y for _, y in kept])
        metrics[name] = {"effect": estimate.effect, "ci_low": estimate.ci_low, "ci_high": estimate.ci_high,
                         "p_value": estimate.p_value, "repeats": estimate.repeats, "note": estimate.note}
    return {
        "synthetic_trial_id": synthetic.trial_id, "twin_trial_id": twin.trial_id,
        "synthetic_search_trial_id": synthetic.finalist.source_trial_id,
        "twin_search_trial_id": twin.finalist.source_trial_id,
        "seeds": [seed for seed, _, _ in pairs], "method": f"{PAIRED_METHOD}, seed by seed on the test split",
        "coverage": coverage_note(len(pairs)), "metrics": metrics,
    }
