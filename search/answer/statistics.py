"""The answer's statistics, in one place. Over repeat seeds of a configuration and its real-only twin: the mean of
the paired per-seed differences with the paired t interval and the paired t-test (one procedure, so the interval
excludes zero exactly when p < 0.05), and Holm's correction across configurations. Over the finalists' test
results: a Student t interval across seeds, and McNemar's exact test.

Why the paired t: bench/interval_coverage.py simulated 2,000 sweeps per cell (3, 5, 10, 20 pairs; normal, skewed
and heavy-tailed differences). The BCa bootstrap this replaced covered 0.73-0.76 at 3 pairs (it resamples three
values); the exact sign-flip permutation test cannot reject below 6 pairs, so its interval is unbounded there; the
paired t covers >= 0.949 for symmetric differences at every n, 3 included, and 0.92-0.93 when the effect itself is
skewed across seeds, as the permutation test does (bench/README.md has the table; MEASURED_COVERAGE below is what
the report quotes)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

CONFIDENCE_LEVEL = 0.95
BOOTSTRAP_RESAMPLES = 9999
PAIRED_METHOD = "paired t interval and paired t-test on the per-seed differences"
# Coverage of the 95% paired t interval measured by `python bench/interval_coverage.py` (2,000 simulations per
# cell), by number of pairs: (lowest over symmetric differences: normal, Student t with 3 degrees of freedom and
# differences of skewed lognormal scores; differences that are themselves skewed, lognormal sigma 0.5).
MEASURED_COVERAGE: dict[int, tuple[float, float]] = {3: (0.949, 0.921), 5: (0.959, 0.927), 10: (0.950, 0.925), 20: (0.958, 0.932)}


@dataclass(frozen=True)
class PairedEffect:
    """`effect` is the mean of the paired differences (with - without); interval and p-value are None where they
    cannot be computed, and `note` says why."""

    effect: float
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    repeats: int
    note: str = ""


def paired_effect(with_synthetic: Sequence[float], real_only: Sequence[float]) -> PairedEffect:
    """Repeat r of both sequences shares its seed (real subset, initialisation), so they are compared as pairs."""
    x = np.asarray(with_synthetic, dtype=float)
    y = np.asarray(real_only, dtype=float)
    if x.shape != y.shape or x.ndim != 1 or len(x) == 0:
        raise ValueError(f"paired values need two equally long, non-empty sequences; got {x.shape} and {y.shape}")
    differences = x - y
    effect = float(differences.mean())
    repeats = len(x)
    if repeats < 2:
        return PairedEffect(effect, None, None, None, repeats, "1 repeat: no interval or test (needs --repeats 2 or more)")
    # Metric values are fractions of a few validation images, so equal differences can differ in the last bits.
    if np.ptp(differences) <= 1e-12:
        if abs(differences[0]) <= 1e-12:
            return PairedEffect(0.0, 0.0, 0.0, 1.0, repeats, "the same score with and without synthetic images on every repeat")
        return PairedEffect(effect, None, None, None, repeats,
                            "every repeat differs by the same amount: no spread, so no t interval or test")
    result = stats.ttest_1samp(differences, 0.0)
    interval = result.confidence_interval(CONFIDENCE_LEVEL)
    return PairedEffect(effect, float(interval.low), float(interval.high), float(result.pvalue), repeats)


def coverage_note(repeats: int) -> str:
    """What the interval's promise was measured to be at `repeats` pairs (the nearest simulated count at or below)."""
    if repeats < 2:
        return "1 repeat: no interval or test (needs --repeats 2 or more)"
    simulated = [n for n in MEASURED_COVERAGE if n <= repeats]
    if not simulated:
        return f"{repeats} pairs: below the 3 the coverage was simulated for (bench/interval_coverage.py)"
    closest = max(simulated)
    symmetric, skewed = MEASURED_COVERAGE[closest]
    return (f"with {repeats} pairs, a 95% interval of this kind covered the true effect in {symmetric:.1%} of "
            f"simulated sweeps of {closest} pairs with symmetric differences and {skewed:.1%} when the effect itself "
            "was skewed across seeds (bench/interval_coverage.py)")


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
