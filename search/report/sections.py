"""The sections of report.html, in order; each reads its own files from the report folder (see search.report.page)."""

from __future__ import annotations

import pandas as pd

from search.answer.effect import COMPARISON_NOTE
from search.answer.finalists import FINALIST_SEED_OFFSET
from search.answer.pareto import COST_DEFINITION
from search.answer.statistics import coverage_note
from search.answer.value_curve import EQUIVALENT_METHOD, FRACTION
from search.report.answer_section import answer_section
from search.report.files import (
    CURVE_PLOT,
    EFFECT_FILE,
    EQUIVALENT_FILE,
    FINALISTS_FILE,
    GRADCAM_PREFIX,
    LEADERBOARD_FILE,
    NEAR_COPIES_FILE,
    PARETO_FILE,
    PARETO_PLOT,
    PLOTS_FOLDER,
    QUALITY_FILE,
    SAMPLES_FOLDER,
    TEST_METRICS_FILE,
    TWINS_FILE,
)
from search.report.page import ReportContext, ReportSection, escape, image, table

LEADERBOARD_ROWS = 20
QUESTION = (
    "Which mix of traditional augmentation, synthetic images (how many, for which classes, from which generator), "
    "real-data fraction and backbone settings gives the best classifier, and how much does synthetic data really help?"
)


def question_and_dataset(context: ReportContext) -> str:
    sweep = context.record.sweep
    space = context.record.search_space
    settings = pd.DataFrame(
        [
            ("search space", f"{space.name}: {space.description}".strip(": ")),
            ("searcher / scheduler", f"{sweep.searcher} / {sweep.scheduler}"),
            ("searched metric", f"{sweep.metric} ({sweep.mode})" + (" and cost_seconds (min)" * (sweep.objective == "multi"))),
            ("configurations asked for", sweep.num_samples),
            ("repeat seeds per configuration", f"{sweep.repeats} (seeds {sweep.seed} to {sweep.seed + sweep.repeats - 1})"),
            ("time budget", f"{sweep.time_budget_s:g} s" if sweep.time_budget_s else "none"),
            ("real-only twins", "on" if sweep.twins else "off"),
        ],
        columns=["setting", "value"],
    ).astype(str)
    return (
        f"<p>{escape(QUESTION)}</p>{table(settings)}<h3>Dataset</h3><pre>{escape(context.record.dataset)}</pre>"
    )


def leaderboard_section(context: ReportContext) -> str | None:
    leaderboard = context.csv(LEADERBOARD_FILE)
    if leaderboard is None or leaderboard.empty:
        return None
    sweep = context.record.sweep
    space = context.record.search_space
    metrics = [sweep.metric, f"{sweep.metric}_std"] + [
        name for name in ("val_auroc", "val_balanced_accuracy", "val_f1_macro", "val_loss") if name != sweep.metric
    ]
    searched = [key for key, parameter in space.parameters.items() if key in leaderboard and not parameter.when]
    columns = ["rank", *[c for c in metrics if c in leaderboard], *searched]
    columns += [c for c in ("real_images", "synthetic_images", "epochs_run", "cost_seconds", "trial_id") if c in leaderboard]
    shown = leaderboard[columns].head(LEADERBOARD_ROWS)
    more = len(leaderboard) - len(shown)
    note = f'<p class="note">{more} more rows in leaderboard.csv, with every metric.</p>' if more > 0 else ""
    cost = f'<p class="note">{escape(COST_DEFINITION)}</p>' if "cost_seconds" in leaderboard else ""
    return f"<p>One row per trial at its best epoch, ranked by {escape(sweep.metric)} (median over repeats).</p>" + table(
        shown
    ) + note + cost


def pareto_section(context: ReportContext) -> str | None:
    front = context.csv(PARETO_FILE)
    if front is None or front.empty:
        return None
    sweep = context.record.sweep
    searched = (
        "The search was multi-objective (objective: multi): Optuna's sampler aimed at this front, minimising "
        "cost_seconds while it optimised the metric. ASHA, twins and finalists still follow the metric alone."
        if sweep.objective == "multi" else
        "The search optimised the metric alone (objective: single); the front is read from the trials it ran. "
        "--objective multi makes the searcher aim for it."
    )
    parts = [
        f"<p>The configurations no other trial beats on both {escape(sweep.metric)} and cost_seconds, cheapest first. "
        "With a compute budget, pick from this front: the last row whose cost_seconds fits the budget is the best "
        "configuration it buys, and each row below it shows what the extra seconds buy. Every other trial is "
        f"matched or beaten by one of these at no more cost.</p><p>{escape(searched)}</p>",
    ]
    plot = context.path(PARETO_PLOT)
    if plot.is_file():
        parts.append(image(plot, f"{sweep.metric} against cost_seconds; red: the Pareto front, labelled by leaderboard rank"))
    parts.append(table(front))
    parts.append(f'<p class="note">{escape(COST_DEFINITION)} Listed in {PARETO_FILE}.</p>')
    return "".join(parts)


def effect_section(context: ReportContext) -> str | None:
    effects = context.csv(EFFECT_FILE)
    if effects is None or effects.empty:
        return None
    sweep = context.record.sweep
    shown = effects[["synthetic", "real_fraction", "epochs_compared", "with_synthetic", "real_only", "effect"]].copy()
    shown["interval"] = [
        f"[{row.ci_low:.4g}, {row.ci_high:.4g}]" if pd.notna(row.ci_low) else "cannot be computed" if pd.notna(row.effect) else ""
        for row in effects.itertuples()
    ]
    shown["p_value"], shown["p_holm"], shown["repeats"] = effects["p_value"], effects["p_holm"], effects["repeats"]
    shown["note"] = effects["note"].fillna("")
    twin_ids = effects["twin_trial_id"].astype(object).fillna("none").astype(str)
    shown["trial / twin"] = effects["trial_id"].astype(str) + " / " + twin_ids
    better = "higher" if sweep.mode == "max" else "lower"
    twins_note = f"<p class=\"note\">{escape(context.record.twins_note)}</p>" if context.record.twins_note else ""
    return (
        f"<p>{escape(sweep.metric)} with synthetic images minus the same configuration without them ({better} is "
        f"better for this metric, so a {'positive' if better == 'higher' else 'negative'} effect means synthetic "
        f"images helped).</p>" + table(shown) + f'<p class="note">{escape(COMPARISON_NOTE)} '
        f"{escape(coverage_note(sweep.repeats).capitalize())}.</p>" + twins_note
    )


def curve_section(context: ReportContext) -> str | None:
    curve = context.path(CURVE_PLOT)
    if not curve.is_file():
        return None
    parts = [image(curve, "metric against real fraction, one line per synthetic setting")]
    equivalents = context.csv(EQUIVALENT_FILE)
    if equivalents is not None and not equivalents.empty:
        parts.append("<h3>Real-data equivalent</h3>" + table(equivalents))
    else:
        parts.append('<p class="missing">Real-data equivalent not computed (needs real-only points at two or more real '
                     "fractions and a synthetic setting).</p>")
    parts.append(f'<p class="note">{escape(EQUIVALENT_METHOD)}</p>')
    return "".join(parts)


def _not_computed(context: ReportContext, part: str) -> str | None:
    reason = context.record.not_computed.get(part)
    return f'<p class="missing">Not computed: {escape(reason)}.</p>' if reason else None


def finalists_section(context: ReportContext) -> str | None:
    finalists = context.csv(FINALISTS_FILE)
    metrics = context.json(TEST_METRICS_FILE)
    if finalists is None or finalists.empty:
        return _not_computed(context, "finalists")
    sweep = context.record.sweep
    rows = []
    for row in finalists.to_dict("records"):
        shown = {"role": row["role"], "synthetic": "yes" if row["synthetic"] else "no",
                 "search trial": row["search_trial_id"], "finalist trial": row["finalist_trial_id"], "seeds": row["seeds"]}
        for name in ("balanced_accuracy", "auroc", "f1_macro"):
            mean, low, high = row.get(f"test_{name}"), row.get(f"test_{name}_ci_low"), row.get(f"test_{name}_ci_high")
            shown[name] = "" if pd.isna(mean) else f"{mean:.4f}" + ("" if pd.isna(low) else f" [{low:.4f}, {high:.4f}]")
        shown["note"] = row.get("note") if isinstance(row.get("note"), str) else ""
        rows.append(shown)
    per_class = [column for column in finalists if column.startswith(("test_recall_", "test_f1_"))
                 and not column.endswith(("_ci_low", "_ci_high")) and column != "test_f1_macro"]
    parts = [
        f"<p>The top {sweep.finalists} configurations and the best real-only one, retrained on fresh repeat seeds "
        f"(seed + {FINALIST_SEED_OFFSET} + r, never used by the search), each at its best epoch by "
        f"{escape(sweep.metric)}, then evaluated once on the test split. Mean over seeds [95% interval].</p>",
        table(pd.DataFrame(rows).astype(str)),
    ]
    if per_class:
        parts.append("<h3>Per class (mean over seeds)</h3>"
                     + table(finalists[["role", *per_class]].rename(columns=lambda c: c.removeprefix("test_"))))
    if metrics is not None:
        mcnemar = metrics.get("mcnemar", {})
        if "p_value" in mcnemar:
            parts.append(
                "<h3>McNemar's exact test: best synthetic vs best real-only finalist</h3>"
                + table(pd.DataFrame([{key: mcnemar[key] for key in (
                    "synthetic_trial_id", "real_only_trial_id", "seed", "synthetic_only_correct", "real_only_only_correct",
                    "both_correct", "both_wrong", "p_value")}]))
                + f'<p class="note">{escape(mcnemar["method"])}</p>'
            )
        else:
            parts.append(f'<p class="missing">McNemar\'s test {escape(mcnemar.get("note", "not computed"))}.</p>')
        parts.append(f'<p class="note">{escape(metrics.get("interval_method", ""))}</p>')
    return "".join(parts) + (_not_computed(context, "finalists") or "")


def quality_section(context: ReportContext) -> str | None:
    quality = context.csv(QUALITY_FILE)
    grids = sorted(context.report_dir.glob(f"{SAMPLES_FOLDER}/samples_*.png"))
    if quality is None and not grids:
        return _not_computed(context, "quality")
    parts = []
    if quality is not None:
        parts.append("<p>Per generator, settings and class, in the feature space of the encoder named below: Fréchet "
                     "distance and KID (lower: closer to the real training images), precision / recall, density / "
                     "coverage, the share memorized (nearer a training image than training images are to each other), "
                     "label fidelity (the real-only classifier agrees with the label) and the classification accuracy "
                     "score (a classifier trained on synthetic images alone, tested on real validation images).</p>")
        parts.append(table(quality))
    copies = context.csv(NEAR_COPIES_FILE)
    if copies is not None and not copies.empty:
        parts.append(f"<h3>Near-copies of training images ({len(copies)})</h3>" + table(copies.head(LEADERBOARD_ROWS)))
    parts += [image(path, f"{path.stem}: synthetic samples, each over its nearest real training image") for path in grids]
    return "".join(parts)


def gradcam_section(context: ReportContext) -> str | None:
    maps = sorted(context.report_dir.glob(f"{GRADCAM_PREFIX}*.png"))
    if not maps:
        return _not_computed(context, "gradcam")
    return "<p>Where the best model looks, per class: real validation images and synthetic images it trained on.</p>" + "".join(
        image(path, f"class {path.stem.removeprefix(GRADCAM_PREFIX)}") for path in maps
    )


def plots_section(context: ReportContext) -> str | None:
    drawn_elsewhere = {context.path(CURVE_PLOT), context.path(PARETO_PLOT)}
    plots = sorted(path for path in context.report_dir.glob(f"{PLOTS_FOLDER}/*.png") if path not in drawn_elsewhere)
    if not plots:
        return None
    return "".join(image(path, path.stem.replace("_", " ")) for path in plots)


def cost_section(context: ReportContext) -> str | None:
    rows = []
    for label, name in (("search trials", LEADERBOARD_FILE), ("real-only twins", TWINS_FILE)):
        frame = context.csv(name)
        if frame is not None and "time_total_s" in frame and not frame.empty:
            seconds = frame["time_total_s"].dropna()
            rows.append((f"{label}: {len(seconds)} trials, seconds summed over trials", seconds.sum()))
            rows.append((f"{label}: median seconds per trial", seconds.median()))
        if frame is not None and "cost_seconds" in frame and not frame.empty:
            rows.append((f"{label}: cost_seconds summed (each trial's standalone cost, fits and images included)",
                         frame["cost_seconds"].dropna().sum()))
    labels = {"generators": "generator fits and images made before trials (wall seconds)",
              "search": "search (wall seconds)", "twins": "real-only twins after the search (wall seconds)",
              "finalists": "finalists on fresh seeds, with their test evaluation (wall seconds)",
              "quality": "synthetic-image quality (wall seconds)", "gradcam": "Grad-CAM maps (wall seconds)"}
    rows += [(labels.get(key, key), value) for key, value in context.record.seconds.items()]
    if not rows:
        return None
    explanation = "Trial seconds are Tune's time_total_s per trial; trials run in parallel, so their sum exceeds the wall time."
    return f"<p>{explanation}</p>" + table(pd.DataFrame(rows, columns=["what", "seconds"]))


SECTIONS: list[ReportSection] = [
    ReportSection("The answer", answer_section),
    ReportSection("The question and the dataset", question_and_dataset),
    ReportSection("Leaderboard", leaderboard_section, "no trial reported a result"),
    ReportSection(
        "Metric against cost: the Pareto front", pareto_section, "no trial with a result reported cost_seconds"
    ),
    ReportSection("Synthetic effect against real-only twins", effect_section, "no configuration had synthetic images"),
    ReportSection("Value of synthetic data", curve_section, f"no trial reported {FRACTION}"),
    ReportSection("Finalists on fresh seeds, on the test split", finalists_section, "no finalists.csv in the report folder"),
    ReportSection(
        "Synthetic images: samples and quality", quality_section,
        "no synthetic_quality.csv or sample grid (samples/samples_*.png) in the report folder",
    ),
    ReportSection("Grad-CAM, real vs synthetic", gradcam_section, "no gradcam_<class>.png in the report folder"),
    ReportSection("Other plots", plots_section, "no plots"),
    ReportSection("Cost of the sweep", cost_section),
]
