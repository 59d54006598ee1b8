"""synthetic_effect.csv: per configuration with synthetic images, the paired difference of the searched metric
against its real-only twin: the mean per-seed difference with its paired t interval and p-value (which agree: the
interval excludes zero exactly when p < 0.05) and the p-value's Holm correction.

How pairs are compared: an early-stopping scheduler (or the time budget) may stop either trial of a pair before
the other, and the longer-trained one would win for that alone. So both are read over the epochs both trained,
each at its best such epoch by the median over repeats (the leaderboard's rule, within the common epochs); the
repeats' values at that epoch are paired seed by seed. A trial its own patience stopped
(training.early_stopping_patience) counts as trained to its planned epochs: it ended because it stopped improving.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from search.answer.statistics import CONFIDENCE_LEVEL, PAIRED_METHOD, holm, paired_effect
from search.answer.trial_history import TrialHistory, is_synthetic_key
from search.answer.twins import TwinPair

EFFECT_COLUMNS = ("effect", "ci_low", "ci_high", "p_value", "p_holm", "repeats")
COMPARISON_NOTE = (
    "Each pair is compared over the epochs both trials trained (a trial a scheduler or the time budget stopped "
    "against its twin's same epochs; one its own patience stopped counts as finished), each at its best such epoch "
    "by the median over repeats; the repeats are paired seed by seed "
    "(same real subset, initialisation and augmentation seeds). with_synthetic, real_only: means over the repeats; "
    "effect = the mean of the per-seed differences (with synthetic images - real-only twin), with its "
    f"{CONFIDENCE_LEVEL:.0%} {PAIRED_METHOD} (two-sided), so the interval excludes zero exactly when p < 0.05; "
    "p_holm: Holm-corrected across the configurations tested (the interval is not)."
)


def synthetic_label(values: Mapping[str, Any]) -> str:
    """A synthetic setting in a few words: generator, proportion(s), mode, and the generator settings and filter the
    space searched, e.g. `ddpm x0.5 add` or `stable_diffusion x0.5 add mode=img2img`."""
    proportions = {
        key.removeprefix("synthetic.proportion").lstrip("."): value
        for key, value in values.items()
        if key == "synthetic.proportion" or key.startswith("synthetic.proportion.")
    }
    if not any(_positive(value) for value in proportions.values()):
        return "real only"
    parts = [str(values.get("synthetic.generator", "ddpm"))]
    for name, value in sorted(proportions.items()):
        if isinstance(value, Mapping):
            parts += [f"{key}:x{float(share):g}" for key, share in sorted(value.items())]
        else:
            parts.append(f"{name}:x{float(value):g}" if name else f"x{float(value):g}")
    parts.append(str(values.get("synthetic.mode", "add")))
    classes = values.get("synthetic.classes", "all")
    if classes != "all":
        parts.append(f"classes={classes}")
    # Settings the space searched tell configurations of one generator apart (fixed ones are the same in all).
    parts += [
        f"{key.removeprefix('synthetic.settings.').removeprefix('synthetic.')}={value}"
        for key, value in sorted(values.items())
        if key.startswith("synthetic.settings.") or key in ("synthetic.filter", "synthetic.filter_threshold")
    ]
    return " ".join(parts)


def _positive(value: Any) -> bool:
    values = value.values() if isinstance(value, Mapping) else [value]
    return any(float(share) > 0 for share in values)


def best_row_within(history: pd.DataFrame, metric: str, mode: str, epochs: int) -> pd.Series:
    frame = history[history["epoch"] <= epochs].dropna(subset=[metric])
    position = frame[metric].idxmax() if mode == "max" else frame[metric].idxmin()
    return frame.loc[position]


def repeat_values(row: pd.Series, metric: str, repeats: int) -> np.ndarray | None:
    """The metric of each repeat seed at one epoch; one repeat's value is the reported median itself."""
    columns = [f"{metric}_repeat_{repeat}" for repeat in range(repeats)]
    if all(column in row and pd.notna(row[column]) for column in columns):
        return row[columns].to_numpy(dtype=float)
    return np.array([float(row[metric])]) if repeats == 1 else None


def effect_table(
    pairs: list[TwinPair], metric: str, mode: str, repeats: int, missing_twin_reason: str = "no twin"
) -> pd.DataFrame:
    rows = [_effect_row(pair, metric, mode, repeats, missing_twin_reason) for pair in pairs]
    table = pd.DataFrame(rows, columns=_columns(rows))
    if table.empty:
        return table
    table["p_holm"] = holm([None if pd.isna(p) else float(p) for p in table["p_value"]])
    # Ties (common with few validation images) in trial order, so a rebuilt report lists rows as the first did.
    table = table.sort_values(["effect", "trial_id"], ascending=[mode == "min", True], na_position="last")
    return table.reset_index(drop=True)


def _columns(rows: list[dict[str, Any]]) -> list[str]:
    leading = ["trial_id", "twin_trial_id", "synthetic", "real_fraction", "epochs_compared", "with_synthetic",
               "real_only", *EFFECT_COLUMNS, "note"]
    extra = sorted({key for row in rows for key in row} - set(leading))
    return leading + extra


def _effect_row(pair: TwinPair, metric: str, mode: str, repeats: int, missing_twin_reason: str) -> dict[str, Any]:
    trial: TrialHistory = pair.with_synthetic
    row: dict[str, Any] = {
        "trial_id": trial.trial_id,
        "synthetic": synthetic_label(trial.values),
        "real_fraction": trial.values.get("real_fraction"),
        **{key: value for key, value in trial.values.items() if is_synthetic_key(key) or key.startswith("real_fraction.")},
        "p_holm": None,
    }
    twin = pair.real_only
    if twin is None:
        return {**row, "note": missing_twin_reason}
    epochs = min(trial.epochs_comparable, twin.epochs_comparable)
    with_synthetic = best_row_within(trial.history, metric, mode, epochs)
    real_only = best_row_within(twin.history, metric, mode, epochs)
    row.update(twin_trial_id=twin.trial_id, epochs_compared=epochs,
               with_synthetic=float(with_synthetic[metric]), real_only=float(real_only[metric]))
    x, y = repeat_values(with_synthetic, metric, repeats), repeat_values(real_only, metric, repeats)
    if x is None or y is None:
        return {**row, "effect": row["with_synthetic"] - row["real_only"], "repeats": repeats,
                "note": "per-repeat values were not reported (a sweep from an older version): no interval or test"}
    estimate = paired_effect(x, y)
    row.update(with_synthetic=float(x.mean()), real_only=float(y.mean()))
    return {**row, "effect": estimate.effect, "ci_low": estimate.ci_low, "ci_high": estimate.ci_high,
            "p_value": estimate.p_value, "repeats": estimate.repeats, "note": estimate.note}
