"""Does the synthetic effect's 95% interval keep its promise at the repeat counts people run?

Simulates paired per-seed differences (with synthetic images - real-only twin) with a known true effect, for 3, 5,
10 and 20 pairs, and prints per method and distribution: the coverage of the nominal 95% interval (the share of
simulations whose interval holds the true effect), its median width (in units of the noise's scale), and the
rejection rate at p < 0.05 when the true effect is zero. Methods:

  paired t      the shipped one: search.answer.statistics.paired_effect (mean difference, t interval, t-test)
  sign-flip     the exact sign-flip permutation test of the mean difference, and the interval that inverts it
                (every 2^n sign pattern up to 12 pairs, 4,096 random ones above)
  BCa median    what the tool shipped before: a BCa bootstrap of median(with) - median(without), pairs resampled
                (999 resamples here, 9,999 then), with the Wilcoxon signed-rank test beside it

Distributions of the differences' noise (the true effect is added; each is centred on its mean, the estimand):
  normal            standard normal
  t3                Student t with 3 degrees of freedom (heavy tails)
  skewed scores     lognormal(0, 1) noise in each arm's score, the difference taken: skewed scores, but the two
                    arms are exchangeable within a pair, so the differences are symmetric
  skewed effect     lognormal(0, 0.5) differences: the effect itself varies across seeds, skewed

    python bench/interval_coverage.py                    # 2,000 simulations per cell, about 15 minutes on 2 cores
    python bench/interval_coverage.py --simulations 200  # a quick look
"""

from __future__ import annotations

import argparse
import itertools
import math
import time
import warnings
from collections.abc import Callable, Iterator

import numpy as np
from scipy import stats

from search.answer.statistics import CONFIDENCE_LEVEL, paired_effect

TRUE_EFFECT = 0.5
PAIR_COUNTS = (3, 5, 10, 20)
ALPHA = 1 - CONFIDENCE_LEVEL
EXACT_SIGN_FLIPS_UP_TO = 12
RANDOM_SIGN_FLIPS = 4096

Noise = Callable[[np.random.Generator, int, int], np.ndarray]


def _skewed_scores(rng: np.random.Generator, size: int, n: int) -> np.ndarray:
    return rng.lognormal(0.0, 1.0, (size, n)) - rng.lognormal(0.0, 1.0, (size, n))


DISTRIBUTIONS: dict[str, Noise] = {
    "normal": lambda rng, size, n: rng.standard_normal((size, n)),
    "t3": lambda rng, size, n: rng.standard_t(3, (size, n)),
    "skewed scores": _skewed_scores,
    "skewed effect": lambda rng, size, n: rng.lognormal(0.0, 0.5, (size, n)) - math.exp(0.5**2 / 2),
}

Interval = tuple[float, float, float]  # low, high, p-value of "no effect"


def paired_t(differences: np.ndarray) -> Interval:
    estimate = paired_effect(differences, np.zeros_like(differences))
    if estimate.ci_low is None:
        return -math.inf, math.inf, 1.0
    return estimate.ci_low, estimate.ci_high, estimate.p_value


def _sign_patterns(n: int, rng: np.random.Generator) -> np.ndarray:
    if n <= EXACT_SIGN_FLIPS_UP_TO:
        return np.array(list(itertools.product((1.0, -1.0), repeat=n)))
    return np.vstack([np.ones(n), rng.choice((1.0, -1.0), (RANDOM_SIGN_FLIPS - 1, n))])


def _sign_flip_p(differences: np.ndarray, patterns: np.ndarray, shift: float) -> float:
    centred = differences - shift
    observed = abs(centred.sum())
    return float(np.mean(np.abs(patterns @ centred) >= observed * (1 - 1e-12)))


def sign_flip(differences: np.ndarray, patterns: np.ndarray) -> Interval:
    """The shifts the test does not reject at ALPHA, found by bisection on each side of the mean."""
    mean = float(differences.mean())
    reach = 4 * (float(np.ptp(differences)) + 1e-9)

    def bound(direction: float) -> float:
        inside, outside = mean, mean + direction * reach
        if _sign_flip_p(differences, patterns, outside) > ALPHA:
            return direction * math.inf
        for _ in range(40):
            middle = (inside + outside) / 2
            if _sign_flip_p(differences, patterns, middle) > ALPHA:
                inside = middle
            else:
                outside = middle
        return inside

    return bound(-1.0), bound(1.0), _sign_flip_p(differences, patterns, 0.0)


def _median_difference(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.median(x, axis=axis) - np.median(y, axis=axis)


def bca_median(differences: np.ndarray, rng: np.random.Generator) -> Interval:
    x, y = differences, np.zeros_like(differences)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = stats.bootstrap((x, y), _median_difference, paired=True, vectorized=True, method="BCa",
                                 confidence_level=CONFIDENCE_LEVEL, n_resamples=999, rng=rng)
        p_value = float(stats.wilcoxon(differences).pvalue) if np.count_nonzero(differences) >= 2 else 1.0
    low, high = float(result.confidence_interval.low), float(result.confidence_interval.high)
    if math.isnan(low) or math.isnan(high):
        low, high = -math.inf, math.inf
    return low, high, p_value


def simulate(distribution: str, n: int, simulations: int, seed: int, methods: list[str]) -> dict[str, dict[str, float]]:
    rng = np.random.default_rng(seed)
    noise = DISTRIBUTIONS[distribution](rng, simulations, n)
    null = DISTRIBUTIONS[distribution](rng, simulations, n)
    patterns = _sign_patterns(n, rng)
    compute: dict[str, Callable[[np.ndarray], Interval]] = {
        "paired t": paired_t,
        "sign-flip": lambda d: sign_flip(d, patterns),
        "BCa median": lambda d: bca_median(d, rng),
    }
    figures = {}
    for method in methods:
        covered, widths, rejected = 0, [], 0
        for shifted, unshifted in zip(noise + TRUE_EFFECT, null):
            low, high, _ = compute[method](shifted)
            covered += low <= TRUE_EFFECT <= high
            widths.append(high - low)
            rejected += compute[method](unshifted)[2] < ALPHA
        figures[method] = {"coverage": covered / simulations, "width": float(np.median(widths)),
                           "false_rejections": rejected / simulations}
    return figures


def coverage_table(simulations: int, seed: int, methods: list[str], distributions: list[str]) -> Iterator[dict]:
    """The table's rows, one cell (distribution, pairs) at a time, as each is simulated."""
    for distribution, n in itertools.product(distributions, PAIR_COUNTS):
        for method, figures in simulate(distribution, n, simulations, seed + n, methods).items():
            yield {"distribution": distribution, "pairs": n, "method": method, **figures}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--simulations", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--methods", default="paired t,sign-flip,BCa median")
    parser.add_argument("--distributions", default=",".join(DISTRIBUTIONS))
    arguments = parser.parse_args()
    methods = [method.strip() for method in arguments.methods.split(",")]
    distributions = [name.strip() for name in arguments.distributions.split(",")]
    started = time.monotonic()
    print(f"{arguments.simulations} simulations per cell, true effect {TRUE_EFFECT}, nominal {CONFIDENCE_LEVEL:.0%}")
    print(f"| {'distribution':14} | pairs | {'method':10} | coverage | median width | false rejections |")
    print(f"|{'-' * 16}|-------|{'-' * 12}|----------|--------------|------------------|")
    for row in coverage_table(arguments.simulations, arguments.seed, methods, distributions):
        width = "unbounded" if math.isinf(row["width"]) else f"{row['width']:.2f}"
        print(f"| {row['distribution']:14} | {row['pairs']:5} | {row['method']:10} | {row['coverage']:8.3f} | "
              f"{width:>12} | {row['false_rejections']:16.3f} |", flush=True)
    print(f"{time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
