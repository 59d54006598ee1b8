"""The value-of-synthetic-data curve's points (Kwon's figure, with intervals; drawn by search.report.plots) and the
real-data equivalent.

Each line is one synthetic setting (generator, proportion, mode; "real only" for none) against the share of the
training split used as real images. A point is the best configuration of that setting at that real fraction (by
the median over repeats, as the leaderboard ranks), drawn at its median with a percentile bootstrap interval of
the median over its repeats as the band. Every line picks its best the same way, so all are optimistic alike.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
from scipy import stats

from search.answer.effect import repeat_values, synthetic_label
from search.answer.statistics import BOOTSTRAP_RESAMPLES, CONFIDENCE_LEVEL

REAL_ONLY = "real only"
FRACTION = "real_fraction_of_train"
EQUIVALENT_METHOD = (
    "Real-data equivalent: for each real fraction, the best synthetic setting's median is placed on the real-only "
    "curve, made monotone first (its running best over increasing fractions, since more real data should not be "
    "worth less and a dip is noise), by linear interpolation between the real fractions tried. A value below the "
    "curve's first point is reported as '<=' the smallest fraction tried, one above its last point as '>' the "
    "largest: the method does not extrapolate. With fewer than two real-only fractions it is not computed."
)


def curve_points(trials: pd.DataFrame, metric: str, mode: str, repeats: int) -> pd.DataFrame:
    """One row per (synthetic setting, real fraction): the best trial there, its median, band and repeats."""
    if trials.empty or metric not in trials or FRACTION not in trials:
        return pd.DataFrame(columns=["setting", FRACTION, "trial_id", metric, "band_low", "band_high", "repeats"])
    frame = trials.dropna(subset=[metric, FRACTION]).copy()
    frame["setting"] = [synthetic_label(_synthetic_values(row)) for _, row in frame.iterrows()]
    frame[FRACTION] = frame[FRACTION].round(4)
    rows = []
    for (setting, fraction), group in frame.groupby(["setting", FRACTION]):
        best = group.loc[group[metric].idxmax() if mode == "max" else group[metric].idxmin()]
        values = repeat_values(best, metric, repeats)
        low, high = _median_band(values)
        rows.append({"setting": setting, FRACTION: fraction, "trial_id": best.get("trial_id"), metric: float(best[metric]),
                     "band_low": low, "band_high": high, "repeats": 0 if values is None else len(values)})
    return pd.DataFrame(rows).sort_values(["setting", FRACTION]).reset_index(drop=True)


def _synthetic_values(row: pd.Series) -> dict:
    return {key: value for key, value in row.items() if str(key).startswith("synthetic.") and not _missing(value)}


def _missing(value: object) -> bool:
    return isinstance(value, float) and math.isnan(value)


def _median_band(values: np.ndarray | None) -> tuple[float | None, float | None]:
    if values is None or len(values) < 2 or np.all(values == values[0]):
        return None, None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = stats.bootstrap(
            (values,), np.median, vectorized=True, method="percentile", confidence_level=CONFIDENCE_LEVEL,
            n_resamples=BOOTSTRAP_RESAMPLES, rng=np.random.default_rng(0),
        )
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def real_data_equivalent(points: pd.DataFrame, metric: str, mode: str) -> pd.DataFrame:
    """Per real fraction with synthetic settings: what share of real data alone reaches the best one's median."""
    columns = [FRACTION, "best_synthetic", "with_synthetic", "real_only", "equivalent_real_fraction", "relation", "worth"]
    real = points[points["setting"] == REAL_ONLY].sort_values(FRACTION)
    synthetic = points[points["setting"] != REAL_ONLY]
    if len(real) < 2 or synthetic.empty:
        return pd.DataFrame(columns=columns)
    sign = 1.0 if mode == "max" else -1.0
    fractions = real[FRACTION].to_numpy(float)
    envelope = np.maximum.accumulate(sign * real[metric].to_numpy(float))
    real_at = dict(zip(real[FRACTION], real[metric]))
    rows = []
    for fraction, group in synthetic.groupby(FRACTION):
        best = group.loc[(sign * group[metric]).idxmax()]
        target = sign * float(best[metric])
        equivalent, relation = _invert(fractions, envelope, target)
        rows.append({
            FRACTION: fraction, "best_synthetic": best["setting"], "with_synthetic": float(best[metric]),
            "real_only": real_at.get(fraction), "equivalent_real_fraction": equivalent, "relation": relation,
            "worth": equivalent / fraction if relation == "=" else None,
        })
    return pd.DataFrame(rows, columns=columns)


def _invert(fractions: np.ndarray, envelope: np.ndarray, target: float) -> tuple[float, str]:
    """The smallest fraction where the monotone curve reaches target, interpolated linearly."""
    if target <= envelope[0]:
        return float(fractions[0]), "<="
    if target > envelope[-1]:
        return float(fractions[-1]), ">"
    above = int(np.argmax(envelope >= target))
    low_f, high_f, low_v, high_v = fractions[above - 1], fractions[above], envelope[above - 1], envelope[above]
    return float(low_f + (target - low_v) / (high_v - low_v) * (high_f - low_f)), "="
