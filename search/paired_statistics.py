"""Paired statistics over repeat seeds: a difference of medians with its BCa bootstrap interval, Wilcoxon's
signed-rank test, and Holm's correction across configurations."""

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
