"""What a sweep prints on the terminal: the top of the leaderboard, the synthetic effects and the finalists' test
results, each the head of a file in the report folder."""

from __future__ import annotations

import math

import pandas as pd

from search.answer.statistics import PAIRED_METHOD, coverage_note
from search.settings.sweep_config import SweepConfig
from spaces import SearchSpace

PRINTED_ROWS = 10
PRINTED_EFFECTS = 10


def printable_leaderboard(leaderboard: pd.DataFrame, space: SearchSpace, sweep: SweepConfig) -> str:
    """What a person wants first: rank, the metric with its spread over seeds, a few more metrics, the searched values."""
    metric_columns = [sweep.metric, f"{sweep.metric}_std"] + [
        name for name in ("val_auroc", "val_balanced_accuracy", "val_f1_macro", "val_loss") if name != sweep.metric
    ]
    # Conditional values (a policy's magnitudes) stay in the CSV; the printed table keeps to what every trial has.
    searched = [key for key, parameter in space.parameters.items() if key in leaderboard and not parameter.when]
    columns = ["rank"] + [c for c in metric_columns if c in leaderboard] + searched + [
        c for c in ("real_images", "synthetic_images", "epochs_run", "cost_seconds") if c in leaderboard
    ]
    table = leaderboard[columns].head(PRINTED_ROWS).copy()
    table.columns = [short_column_name(column) for column in table.columns]
    return table.to_string(index=False, float_format=lambda value: f"{value:.4g}")


def short_column_name(key: str) -> str:
    """`optimizer.lr` prints as `lr`, `optimizer.name` as `optimizer`, `model.backbone` as `backbone`."""
    group, _, field = key.rpartition(".")
    return group if field == "name" else field


def printable_effects(effects: pd.DataFrame) -> str:
    """The top of synthetic_effect.csv for the terminal; an interval that cannot be computed says so."""
    if effects.empty:
        return ""
    shown = effects.head(PRINTED_EFFECTS)
    lines = []
    for row in shown.itertuples():
        if pd.isna(row.effect):
            lines.append(f"  {row.synthetic:<28} real {row.real_fraction}: {row.note}")
            continue
        note = f" ({row.note})" if isinstance(row.note, str) and row.note else ""
        if pd.isna(row.ci_low) and pd.isna(row.p_value) and note:
            # One repeat: the note says why there is neither interval nor test.
            lines.append(f"  {row.synthetic:<28} real {row.real_fraction}: effect {row.effect:+.4f}, "
                         f"{int(row.epochs_compared)} epochs{note}")
            continue
        interval = f"[{row.ci_low:+.4f}, {row.ci_high:+.4f}]" if pd.notna(row.ci_low) else "interval cannot be computed"
        p_value = f"p {row.p_value:.3g}, Holm {row.p_holm:.3g}" if pd.notna(row.p_value) else "no test"
        lines.append(f"  {row.synthetic:<28} real {row.real_fraction}: effect {row.effect:+.4f} {interval}, {p_value}, "
                     f"{int(row.repeats)} repeats, {int(row.epochs_compared)} epochs{note}")
    more = len(effects) - len(shown)
    lines += [f"  ... {more} more in synthetic_effect.csv"] if more > 0 else []
    repeats = effects["repeats"].dropna()
    if len(repeats) and repeats.max() >= 2:
        lines.append(f"  ({PAIRED_METHOD}; {coverage_note(int(repeats.max()))})")
    return "\n".join(lines)


def printable_finalists(document: dict) -> str:
    """test_metrics.json's finalists, one line each, and McNemar's test."""
    lines = []
    width = max((len(finalist["role"]) for finalist in document["finalists"]), default=0)
    for finalist in document["finalists"]:
        test = finalist["test"]
        if not finalist["seeds"]:
            lines.append(f"  {finalist['role']:<{width}} {finalist['note']}")
            continue
        parts = []
        for name in ("balanced_accuracy", "auroc"):
            value = test[name]
            interval = f" [{value['ci_low']:.3f}, {value['ci_high']:.3f}]" if not math.isnan(value["ci_low"]) else ""
            parts.append(f"{name} {value['mean']:.4f}{interval}")
        lines.append(f"  {finalist['role']:<{width}} {'synthetic' if finalist['synthetic'] else 'real-only':<9} "
                     + ", ".join(parts) + f" ({len(finalist['seeds'])} seeds)")
    mcnemar = document["mcnemar"]
    if "p_value" in mcnemar:
        lines.append(f"  McNemar, best synthetic vs best real-only (seed {mcnemar['seed']}): "
                     f"{mcnemar['synthetic_only_correct']} vs {mcnemar['real_only_only_correct']} discordant images, "
                     f"p {mcnemar['p_value']:.3g}")
    else:
        lines.append(f"  McNemar: {mcnemar['note']}")
    return "\n".join(lines + printable_test_effect(document.get("synthetic_effect_on_test")))


def printable_test_effect(effect: dict | None) -> list[str]:
    """The paired effect of synthetic images on the test split (search.answer.test_effect), one line per metric."""
    if effect is None:
        return []
    if "metrics" not in effect:
        return [f"  Synthetic images on the test split: {effect['note']}"]
    lines = [f"  Synthetic images on the test split, best synthetic finalist vs its real-only twin on seeds "
             f"{' '.join(str(seed) for seed in effect['seeds'])} ({effect['method']}):"]
    for name, value in effect["metrics"].items():
        if value["effect"] is None:
            lines.append(f"    {name}: {value['note']}")
            continue
        interval = (f"[{value['ci_low']:+.4f}, {value['ci_high']:+.4f}], p {value['p_value']:.3g}"
                    if value["ci_low"] is not None else value["note"])
        lines.append(f"    {name} {value['effect']:+.4f} {interval}")
    return lines
