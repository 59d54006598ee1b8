"""The answer's statistics, in one place. Over repeat seeds of a configuration and its real-only twin: a difference
of medians with its BCa bootstrap interval, Wilcoxon's signed-rank test, and Holm's correction across
configurations. Over the finalists' test results: a Student t interval across seeds, and McNemar's exact test."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

CONFIDENCE_LEVEL = 0.95
BOOTSTRAP_RESAMPLES = 9999


@dataclass(frozen=True)
class PairedEffect:
    """`effect` is median(with) - median(without); interval and p-value are None where they cannot be computed,
    and `note` says why."""

    effect: float
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    repeats: int
    note: str = ""


def _difference_of_medians(with_synthetic: np.ndarray, real_only: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.median(with_synthetic, axis=axis) - np.median(real_only, axis=axis)


def smallest_wilcoxon_p(nonzero_differences: int) -> float:
    """The smallest two-sided p-value the exact signed-rank test can give: all signs alike, 2 / 2^n."""
    return min(1.0, 2.0 / 2**nonzero_differences)


def paired_effect(with_synthetic: Sequence[float], real_only: Sequence[float], seed: int = 0) -> PairedEffect:
    """Repeat r of both sequences shares its seed (real subset, initialisation), so they are resampled as pairs."""
    x = np.asarray(with_synthetic, dtype=float)
    y = np.asarray(real_only, dtype=float)
    if x.shape != y.shape or x.ndim != 1 or len(x) == 0:
        raise ValueError(f"paired values need two equally long, non-empty sequences; got {x.shape} and {y.shape}")
    effect = float(_difference_of_medians(x, y))
    repeats = len(x)
    if repeats < 2:
        return PairedEffect(effect, None, None, None, repeats, "1 repeat: no interval or test (needs --repeats 2 or more)")
    differences = x - y
    notes: list[str] = []
    if np.all(differences == differences[0]):
        # Every resample gives the same value, which BCa cannot turn into an interval; the interval is that value.
        low = high = effect
        notes.append("every repeat differs by the same amount")
    else:
        low, high, method = _bootstrap_interval(x, y, seed)
        if method != "BCa":
            notes.append(f"{method} interval (BCa undefined for these values)")
    nonzero = int(np.count_nonzero(differences))
    if nonzero < 2:
        p_value = None
        notes.append(f"Wilcoxon needs >= 2 nonzero differences (has {nonzero})")
    else:
        p_value = float(stats.wilcoxon(x, y).pvalue)
        if smallest_wilcoxon_p(nonzero) > 1 - CONFIDENCE_LEVEL:
            notes.append(f"with {nonzero} nonzero differences p cannot go below {smallest_wilcoxon_p(nonzero):.3g}")
    return PairedEffect(effect, low, high, p_value, repeats, "; ".join(notes))


def _bootstrap_interval(x: np.ndarray, y: np.ndarray, seed: int) -> tuple[float, float, str]:
    for method in ("BCa", "percentile"):
        with warnings.catch_warnings():
            # Few repeats make BCa's jackknife degenerate; scipy warns and returns NaN, handled below.
            warnings.simplefilter("ignore")
            result = stats.bootstrap(
                (x, y), _difference_of_medians, paired=True, vectorized=True, method=method,
                confidence_level=CONFIDENCE_LEVEL, n_resamples=BOOTSTRAP_RESAMPLES, rng=np.random.default_rng(seed),
            )
        low, high = float(result.confidence_interval.low), float(result.confidence_interval.high)
        if not (math.isnan(low) or math.isnan(high)):
            return low, high, method
    return math.nan, math.nan, "no"


def holm(p_values: Sequence[float | None]) -> list[float | None]:
    """Holm's step-down adjustment across the given p-values; None (no test) stays None and is not counted."""
    indexed = [(p, index) for index, p in enumerate(p_values) if p is not None and not math.isnan(p)]
    adjusted: list[float | None] = [None] * len(p_values)
    count = len(indexed)
    running = 0.0
    for rank, (p, index) in enumerate(sorted(indexed)):
        running = max(running, min(1.0, (count - rank) * p))
        adjusted[index] = running
    return adjusted


# The finalists' test results.
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
    values: Sequence[float], confidence: float = CONFIDENCE_LEVEL, bounds: tuple[float, float] | None = None
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
