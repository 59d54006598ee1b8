"""The first section of report.html: the sweep's answer in plain words, from the report folder's numbers.

The best configuration and its test metrics (test_metrics.json), the effect of synthetic images on the test split
for it (its `synthetic_effect_on_test`) and across the search (synthetic_effect.csv), which generator and proportion
it uses, and the quality of that generator's images (synthetic_quality.csv). Without finalists it says why and
gives the search's answer: leaderboard.csv's best row, on the validation split.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Mapping
from typing import Any

import pandas as pd

from search.answer.statistics import coverage_note
from search.report.files import EFFECT_FILE, LEADERBOARD_FILE, QUALITY_FILE, TEST_METRICS_FILE
from search.report.page import ReportContext, escape, table

TEST_METRICS = ("balanced_accuracy", "auroc", "f1_macro")
ALL_CLASSES = "all"  # synthetic_quality.csv's row over every class of a pool key (search.diagnostics.synthetic_quality)


def answer_section(context: ReportContext) -> str:
    metrics = context.json(TEST_METRICS_FILE)
    if metrics is not None:
        config = metrics.get("config") or {}
        head = _test_answer(metrics)
        items = [_test_metrics_item(metrics), _synthetic_item(config), _test_effect_item(metrics, config)]
    else:
        best = _leaderboard_best(context)
        why = _finalists_missing(context)
        if best is None:
            return (f'<p class="missing">The finalists did not run on the test split: {escape(why)}. No trial reported '
                    f"a result either, so the search has no answer.</p>")
        config = {key: value for key, value in best.items() if _present(value)}
        head = (f'<p class="missing">The finalists did not run on the test split: {escape(why)}. The answer below is '
                "the search's, on the validation split only.</p>" + _search_answer(context, best))
        items = [_synthetic_item(config)]
    trial_id = metrics.get("trial_id") if metrics is not None else best.get("trial_id")
    items += [_search_effect_item(context, trial_id), _quality_item(context, config)]
    body = "".join(f"<li>{item}</li>" for item in items if item)
    return f'<div class="answer">{head}<ul>{body}</ul></div>' + _config_table(context, config)


# The best configuration ------------------------------------------------------------------------------------------


def _test_answer(metrics: Mapping[str, Any]) -> str:
    seeds = metrics.get("seeds") or []
    seed_words = f"{len(seeds)} fresh seeds ({', '.join(str(seed) for seed in seeds)})" if seeds else "fresh seeds"
    return (f"<p><strong>Best configuration: search trial {escape(metrics.get('trial_id'))}</strong>, the search's "
            "best on the validation split of those the finalists evaluated, retrained as finalist trial "
            f"{escape(metrics.get('finalist_trial_id'))} on {escape(seed_words)} and evaluated once on the test "
            "split.</p>")


def _best_finalist(metrics: Mapping[str, Any]) -> dict | None:
    wanted = metrics.get("finalist_trial_id")
    return next((entry for entry in metrics.get("finalists") or [] if entry.get("finalist_trial_id") == wanted), None)


def _test_metrics_item(metrics: Mapping[str, Any]) -> str:
    finalist = _best_finalist(metrics)
    if finalist is None:
        return ("<strong>Test split</strong>: test_metrics.json lists no finalist with trial id "
                f"{escape(metrics.get('finalist_trial_id'))}, so its intervals are not known.")
    seeds = finalist.get("seeds") or metrics.get("seeds") or []
    parts = []
    for name in TEST_METRICS:
        values = (finalist.get("test") or {}).get(name) or {}
        mean, low, high = _finite(values.get("mean")), _finite(values.get("ci_low")), _finite(values.get("ci_high"))
        if mean is None:
            parts.append(f"{_metric_name(name)} not measured")
        elif low is None or high is None:
            parts.append(f"{_metric_name(name)} {mean:.3f} (no interval: {len(seeds)} seed{'s' * (len(seeds) != 1)})")
        else:
            parts.append(f"{_metric_name(name)} {mean:.3f} [{low:.3f}, {high:.3f}]")
    return (f"<strong>Test split</strong> (mean over its {len(seeds)} seeds [95% interval]): "
            f"{escape(', '.join(parts))}.")


def _leaderboard_best(context: ReportContext) -> dict | None:
    leaderboard = context.csv(LEADERBOARD_FILE)
    metric = context.record.sweep.metric
    if leaderboard is None or leaderboard.empty or metric not in leaderboard:
        return None
    ranked = leaderboard.dropna(subset=[metric])
    if "rank" in ranked:
        ranked = ranked.sort_values("rank", kind="stable")
    return None if ranked.empty else ranked.iloc[0].to_dict()


def _finalists_missing(context: ReportContext) -> str:
    reason = context.record.not_computed.get("finalists")
    if reason:
        return reason
    if not context.record.sweep.finalists_on:
        return "finalists were off (final_test false or finalists 0), so the test split was not read"
    return f"no {TEST_METRICS_FILE} in the report folder"


def _search_answer(context: ReportContext, best: Mapping[str, Any]) -> str:
    sweep = context.record.sweep
    value, spread = _finite(best.get(sweep.metric)), _finite(best.get(f"{sweep.metric}_std"))
    spread_words = f" (spread {spread:.3f} over {sweep.repeats} repeat seeds)" if spread is not None and sweep.repeats > 1 else ""
    return (f"<p><strong>Best configuration: search trial {escape(best.get('trial_id'))}</strong>, first in "
            f"{LEADERBOARD_FILE} with {escape(sweep.metric)} {value:.3f}{escape(spread_words)} "
            f"({'median over ' * (sweep.repeats != 1)}{sweep.repeats} repeat seed{'s' * (sweep.repeats != 1)}, at its "
            "best epoch).</p>")


def _config_table(context: ReportContext, config: Mapping[str, Any]) -> str:
    """The best configuration's searched values (the space's active parameters), as a two-column table."""
    space = context.record.search_space
    rows = [(key, _plain(config[key])) for key, parameter in space.parameters.items()
            if key in config and _present(config[key]) and parameter.is_active(config)]
    if not rows:
        return ""
    return ("<h3>The best configuration's searched values</h3>"
            + table(pd.DataFrame(rows, columns=["setting", "value"]).astype(str)))


# Synthetic images in the best configuration ----------------------------------------------------------------------


def _proportions(config: Mapping[str, Any]) -> dict[str, Any]:
    return {key.removeprefix("synthetic.proportion").lstrip("."): value for key, value in config.items()
            if (key == "synthetic.proportion" or key.startswith("synthetic.proportion.")) and _present(value)}


def uses_synthetic(config: Mapping[str, Any]) -> bool:
    return any(_positive(value) for value in _proportions(config).values())


def _synthetic_item(config: Mapping[str, Any]) -> str:
    fraction = config.get("real_fraction")
    real = f"; real fraction {_plain(fraction)}" if _present(fraction) else ""
    if not uses_synthetic(config):
        return f"<strong>Synthetic images</strong>: none, real only (synthetic proportion 0){escape(real)}."
    generator = config.get("synthetic.generator", "ddpm")
    mode = config.get("synthetic.mode", "add")
    proportions = _proportions(config)
    shares = ", ".join(
        f"class {name}: {_plain(value)}" if name else _plain(value) for name, value in sorted(proportions.items())
    )
    base = "each chosen class's real count, added" if mode == "add" else "each chosen class's gap to the largest class"
    classes = config.get("synthetic.classes", "all")
    chosen = {"all": "every class", "minority": "the minority classes"}.get(str(classes), f"classes {_plain(classes)}")
    filtered = config.get("synthetic.filter", "none")
    filter_words = (f"; images filtered by {filtered} (threshold {_plain(config.get('synthetic.filter_threshold'))})"
                    if _present(filtered) and filtered != "none" else "")
    return (f"<strong>Synthetic images</strong>: from the <strong>{escape(generator)}</strong> generator, proportion "
            f"<strong>{escape(shares)}</strong> × {escape(base)} (mode {escape(mode)}), for {escape(chosen)}"
            f"{escape(filter_words + real)}.")


# Effects -----------------------------------------------------------------------------------------------------------


def _test_effect_item(metrics: Mapping[str, Any], config: Mapping[str, Any]) -> str:
    label = "<strong>Effect of synthetic images on the test split</strong>"
    effect = metrics.get("synthetic_effect_on_test")
    if effect is None:
        return (f"{label}: not recorded (this {TEST_METRICS_FILE} has no synthetic_effect_on_test: it comes from a "
                "sweep that did not measure it).")
    if "metrics" not in effect:
        return f"{label}: {escape(effect.get('note') or 'not computed')}."
    synthetic, twin = effect.get("synthetic_trial_id"), effect.get("twin_trial_id")
    if not uses_synthetic(config):
        whom = "the best configuration uses none; for the best synthetic finalist"
    elif synthetic in (metrics.get("finalist_trial_id"), metrics.get("trial_id")):
        whom = "for the best configuration itself"
    else:
        whom = "for the best synthetic finalist (not the best configuration)"
    seeds = effect.get("seeds") or []
    seed_words = f" ({', '.join(str(seed) for seed in seeds)})" if seeds else ""
    parts = []
    for name, values in (effect.get("metrics") or {}).items():
        words = effect_words(values.get("effect"), values.get("ci_low"), values.get("ci_high"), values.get("p_value"),
                             values.get("repeats"), values.get("note"), higher_is_better=True)
        parts.append(f"{_metric_name(name)} {words}")
    notes = "; ".join(escape(text) for text in (effect.get("method"), effect.get("coverage")) if text)
    return (f"{label} ({escape(whom)}: finalist trial {escape(synthetic)} against its real-only twin {escape(twin)}, "
            f"the same configuration with synthetic proportion 0, paired on the same seeds{escape(seed_words)}): "
            f"{escape('; '.join(parts) or 'no metric')}." + (f'<br><span class="note">{notes}</span>' if notes else ""))


def _search_effect_item(context: ReportContext, best_trial_id: Any) -> str:
    label = "<strong>Across the search</strong>"
    effects = context.csv(EFFECT_FILE)
    if effects is None or effects.empty:
        return f"{label}: no configuration had synthetic images, so there is no effect to measure."
    sweep = context.record.sweep
    higher = sweep.mode == "max"
    measured = effects[effects["effect"].notna()]
    unmeasured = effects[effects["effect"].isna()]
    intro = (f"{label} ({escape(sweep.metric)} on the validation split, each synthetic configuration against its "
             f"real-only twin, paired seed by seed): ")
    missing = ""
    if not unmeasured.empty:
        reasons = unmeasured["note"].fillna("no reason given").astype(str).value_counts()
        missing = "; ".join(f"{count} with no effect: {reason}" for reason, count in reasons.items())
    if measured.empty:
        return intro + f"no effect could be measured for any of the {len(effects)} configurations ({escape(missing)})."
    with_interval = measured[measured["ci_low"].notna() & measured["ci_high"].notna()]
    excludes = with_interval[(with_interval["ci_low"] > 0) | (with_interval["ci_high"] < 0)]
    helped = int(((excludes["effect"] > 0) if higher else (excludes["effect"] < 0)).sum())
    best = measured.loc[measured["effect"].idxmax() if higher else measured["effect"].idxmin()]
    words = effect_words(best["effect"], best.get("ci_low"), best.get("ci_high"), best.get("p_value"), best.get("repeats"),
                         best.get("note"), higher_is_better=higher)
    holm = _finite(best.get("p_holm"))
    holm_words = f", Holm-corrected p = {_p(holm)}" if holm is not None else ""
    fraction = f" at real fraction {_plain(best['real_fraction'])}" if _present(best.get("real_fraction")) else ""
    counted = (f"{len(excludes)} of the {len(measured)} measured configurations have an interval that excludes zero "
               f"({helped} helped, {len(excludes) - helped} hurt)" if len(with_interval) else
               f"none of the {len(measured)} measured configurations has an interval")
    tail = f"; {missing}" if missing else ""
    own = ""
    if "trial_id" in effects and best["trial_id"] != best_trial_id and (effects["trial_id"] == best_trial_id).any():
        row = effects[effects["trial_id"] == best_trial_id].iloc[0]
        own = "; for the best configuration itself: " + effect_words(
            row["effect"], row.get("ci_low"), row.get("ci_high"), row.get("p_value"), row.get("repeats"), row.get("note"),
            higher_is_better=higher)
    return intro + escape(f"{counted}; the best effect{' (the lowest: lower is better)' * (not higher)}: "
                          f"{best['synthetic']}{fraction}: {words}{holm_words}{own}{tail}.")


def effect_words(
    effect: Any, low: Any, high: Any, p_value: Any, repeats: Any, note: Any, higher_is_better: bool = True
) -> str:
    """An effect in words: `+0.060 [+0.020, +0.100] at 3 seeds (p = 0.01): synthetic images helped` when the interval
    excludes zero, `indistinguishable from zero at 3 seeds: [-0.030, +0.050] (difference +0.010, p = 0.4)` when it
    contains it, and the row's note when there is no interval."""
    effect, low, high, p_value = _finite(effect), _finite(low), _finite(high), _finite(p_value)
    note = note if isinstance(note, str) and note.strip() else ""
    count = int(repeats) if _finite(repeats) is not None else None
    seeds = f" at {count} seed{'s' * (count != 1)}" if count is not None else ""
    if effect is None:
        return f"not measured: {note or 'no value'}"
    if low is None or high is None:
        return f"{effect:+.3f}, no interval: {note or coverage_note(count or 1)}"
    p_words = f"p = {_p(p_value)}" if p_value is not None else ""
    extra = f"; {note}" if note else ""
    if low <= 0 <= high:
        return (f"indistinguishable from zero{seeds}: [{low:+.3f}, {high:+.3f}] "
                f"({', '.join(['difference ' + format(effect, '+.3f'), *[p_words] * bool(p_words)])}){extra}")
    helped = effect > 0 if higher_is_better else effect < 0
    verdict = "synthetic images helped" if helped else "synthetic images hurt"
    p_words = f" ({p_words})" if p_words else ""
    return f"{effect:+.3f} [{low:+.3f}, {high:+.3f}]{seeds}{p_words}: {verdict}{extra}"


# Image quality -----------------------------------------------------------------------------------------------------


def _quality_item(context: ReportContext, config: Mapping[str, Any]) -> str:
    label = "<strong>Quality of the synthetic images</strong>"
    quality = context.csv(QUALITY_FILE)
    reason = context.record.not_computed.get("quality")
    synthetic = uses_synthetic(config)
    if quality is None or quality.empty or "class" not in quality:
        if reason:
            return f"{label}: not computed: {escape(reason)}."
        return f"{label}: no {QUALITY_FILE} in the report folder." if synthetic else ""
    overall = quality[quality["class"].astype(str) == ALL_CLASSES]
    generator = config.get("synthetic.generator")
    if synthetic and "generator" in overall and (overall["generator"] == generator).any():
        overall, whose = overall[overall["generator"] == generator], f"of {generator}, the best configuration's generator"
    else:
        whose = "of every generator in the pool" + (" (the best configuration uses none)" * (not synthetic))
    sentences = [_quality_words(row, quality) for row in overall.to_dict("records")]
    return f"{label} {escape(whose)}: " + escape(" ".join(sentences) or "no row over all classes.")


def _quality_words(row: Mapping[str, Any], quality: pd.DataFrame) -> str:
    settings = str(row.get("settings_hash", ""))[:8]
    name = f"{row.get('generator', '')} {settings}".strip()
    images = _finite(row.get("images"))
    count = f", {int(images)} images measured" if images is not None else ""
    share, fidelity = _finite(row.get("memorized_share")), _finite(row.get("label_fidelity"))
    if share is None:
        copies = "memorized share not measured"
    elif share == 0:
        copies = "none is a memorized near-copy of a training image"
    else:
        copies = (f"{share:.0%} are memorized near-copies of a training image (nearer one than training images are "
                  "to each other)")
    if fidelity is None:
        labels = "label fidelity not measured (no real-only classifier)"
    else:
        labels = f"the real-only classifier gives {fidelity:.0%} of them their own label (label fidelity)"
        same_key = quality["pool_key"] == row["pool_key"] if "pool_key" in quality else quality.index >= 0
        per_class = quality[same_key & (quality["class"].astype(str) != ALL_CLASSES)].dropna(subset=["label_fidelity"])
        if len(per_class) > 1:
            lowest = per_class.loc[per_class["label_fidelity"].idxmin()]
            labels += f", lowest for class {lowest['class']} ({lowest['label_fidelity']:.0%})"
    return f"{name}{count}: {copies}; {labels}."


# Small helpers ---------------------------------------------------------------------------------------------------


def _finite(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _present(value: Any) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def _positive(value: Any) -> bool:
    if isinstance(value, Mapping):
        return any(_positive(share) for share in value.values())
    number = _finite(value)
    if number is not None or not isinstance(value, str):
        return bool(number and number > 0)
    try:  # a per-class mapping read back from a CSV as text
        parsed = ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return bool(value.strip())
    return _positive(parsed) if isinstance(parsed, Mapping) else bool(parsed)


def _plain(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, Mapping):
        return ", ".join(f"{key}: {_plain(share)}" for key, share in value.items())
    return str(value)


def _p(value: float) -> str:
    return f"{value:.2g}" if value < 0.001 else f"{value:.3f}"


def _metric_name(name: str) -> str:
    named = {"balanced_accuracy": "balanced accuracy", "auroc": "AUROC", "f1_macro": "macro F1", "accuracy": "accuracy"}
    if name in named:
        return named[name]
    for prefix, words in (("f1_", "F1"), ("recall_", "recall")):
        if name.startswith(prefix):
            return f"{words} of class {name.removeprefix(prefix)}"
    return name.replace("_", " ")
