"""The statistics of the finalists' test results: an interval across repeat seeds, and McNemar's exact test."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
INTERVAL_METHOD = (
    "95% interval across the finalist's repeat seeds: mean +/- Student t (n-1 degrees of freedom) x standard error, "
    "clipped to the metric's range [0, 1]. "
    "A bootstrap over 3-5 seeds would only resample the same few values; the t interval says honestly how wide it is."
)
MCNEMAR_METHOD = (
    "McNemar's exact test (two-sided binomial test on the discordant test images) between the repeat-0 models of the "
    "best synthetic and the best real-only finalist (best: highest median validation score on the fresh seeds); both "
    "trained on the same seed, so the same real subset and initialisation. One model each, as Lan et al. compared "
    "two classifiers; the spread over seeds is in the intervals."
)


def seed_interval(
    values: Sequence[float], confidence: float = CONFIDENCE, bounds: tuple[float, float] | None = None
) -> tuple[float, float, float]:
    """(mean, low, high) of per-seed values; NaN values (a class absent from the test split) are left out, and
    the interval is NaN with fewer than two values. `bounds`: the metric's range, which the interval is clipped to
    (a t interval over 3 seeds of a recall can otherwise reach past 1)."""
    finite = np.asarray([value for value in values if not math.isnan(value)], np.float64)
    if len(finite) == 0:
        return math.nan, math.nan, math.nan
    mean = float(finite.mean())
    if len(finite) < 2:
        return mean, math.nan, math.nan
    half = float(stats.t.ppf(0.5 + confidence / 2, len(finite) - 1) * finite.std(ddof=1) / math.sqrt(len(finite)))
    low, high = mean - half, mean + half
    if bounds is not None:
        low, high = max(low, bounds[0]), min(high, bounds[1])
    return mean, low, high


def mcnemar_exact(correct_a: np.ndarray, correct_b: np.ndarray) -> dict[str, float]:
    """McNemar's exact test on paired per-image correctness: `a_only` images only A gets right, `b_only` only B;
    under no difference each discordant image is a fair coin, so p is the two-sided binomial test of a_only of
    a_only + b_only at 1/2 (1.0 without discordant images)."""
    correct_a, correct_b = np.asarray(correct_a, bool), np.asarray(correct_b, bool)
    if correct_a.shape != correct_b.shape:
        raise ValueError(f"McNemar needs the same test images for both models: {correct_a.shape} vs {correct_b.shape}")
    a_only, b_only = int((correct_a & ~correct_b).sum()), int((~correct_a & correct_b).sum())
    discordant = a_only + b_only
    p_value = float(stats.binomtest(a_only, discordant, 0.5).pvalue) if discordant else 1.0
    return {"a_only": a_only, "b_only": b_only, "both_correct": int((correct_a & correct_b).sum()),
            "both_wrong": int((~correct_a & ~correct_b).sum()), "p_value": p_value}
