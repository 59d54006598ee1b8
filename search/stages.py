"""The stages of one sweep after its input is checked (search.sweep_input), in the order search.run calls them:
start, search, twins, answer, finalists, diagnostics, report. Each takes the sweep's one `SweepContext`, reads
what the stages before it left there and adds its own."""

from __future__ import annotations

import time

from search.answer.analysis import analyse_sweep
from search.answer.finalists import choose_finalists, finalist_seeds, finalists_table, test_metrics_document, training_order
from search.answer.leaderboard import ranked_with_twins
from search.diagnostics.optional_parts import write_optional_parts
from search.report import files
from search.report.rebuild import write_html_report
from search.report.sweep_files import write_analysis, write_finalist_results, write_storage_usage
from search.report.terminal import printable_effects, printable_finalists, printable_leaderboard
from search.report.wandb_runs import write_wandb_runs
from search.settings.locations import experiment_path, report_directory, storage_root
from search.settings.sweep_checks import max_epochs
from search.settings.sweep_record import new_record
from search.sweep_context import SweepContext, SweepOutputs
from search.sweep_input import PreparedSweep
from search.synthetic.fresh_seeds import fits_too_costly, fresh_seed_generators
from search.synthetic.label_filters import attach_label_filters, space_uses_label_filter
from search.synthetic.preparation import prepare_generators
from search.tuning import interrupt
from search.tuning.connection import connect_to_ray
from search.tuning.finalists_run import (
    FINALISTS_RUN_NAME,
    MINIMUM_FINALIST_BUDGET_S,
    FinalistsRun,
    evaluate_on_test,
    finalist_settings,
    finalists_path,
    pick_checkpoints,
)
from search.tuning.results import last_error_line, trial_id_of
from search.tuning.schedulers import stopping_epochs
from search.tuning.storage_usage import keep_only_best_weights, measure_storage
from search.tuning.tuner import can_restore, fit_points, fit_restored, fit_search, run_config
from search.tuning.twins_run import train_twins
from search.tuning.wandb_callback import create_wandb_callback
from spaces import ConfigError
from trainables.trial import TrialSettings


def start(prepared: PreparedSweep, interrupt_state: interrupt.InterruptState) -> SweepContext:
    """The sweep's name, folders and record; Ray; the generators fit and their images made; the trial settings."""
    sweep = prepared.sweep
    name = sweep.sweep_name(time.strftime("%Y%m%d-%H%M%S"))
    path = experiment_path(sweep, name)
    interrupt_state.name_sweep(name, storage_root(sweep), sweep.report_dir, path)
    report_dir = report_directory(sweep, name)
    report_dir.mkdir(parents=True, exist_ok=True)
    callbacks = [interrupt.StopOnInterrupt(), *(c for c in [create_wandb_callback(sweep, name, report_dir)] if c is not None)]
    record = new_record(sweep, prepared.space, name, path, prepared.dataset.describe())
    record.write(report_dir)
    context = SweepContext(prepared, interrupt_state, name, path, report_dir, record, callbacks)

    connect_to_ray(sweep.ray_address, sweep.num_cpus)
    synthetic_source = None
    if prepared.generator_demands:
        started = time.monotonic()
        context.generators = prepare_generators(
            prepared.generator_demands, prepared.fit_fractions, context.search_data, sweep, context.pool_root
        )
        synthetic_source = context.generators.source
        if space_uses_label_filter(prepared.space):
            seeds = [sweep.seed + repeat for repeat in range(sweep.repeats)]
            synthetic_source = attach_label_filters(synthetic_source, context.search_data, seeds)
        record.seconds["generators"] = time.monotonic() - started
    context.settings = TrialSettings(
        repeats=sweep.repeats, seed=sweep.seed, device=sweep.device, synthetic_source=synthetic_source,
        metric=sweep.metric, mode=sweep.mode, checkpoint_every_epoch=sweep.scheduler == "pbt",
        stopping_epochs=stopping_epochs(sweep.scheduler, max_epochs(prepared.space)),
        training_state_every=sweep.checkpoint_every,
        # Finalists retrain on fresh seeds and only their weights are evaluated: the search's and twins' keep none.
        keep_weights=not sweep.finalists_on,
    )
    return context


def search(context: SweepContext) -> None:
    """The search itself, or the interrupted one continued (--resume); the time budget starts here."""
    sweep = context.sweep
    trainable = context.trainable(context.space)
    started = time.monotonic()
    # The search gets time_budget_s x (1 - answer_budget_share); twins and finalists share the rest, to the deadline.
    context.deadline = started + sweep.time_budget_s if sweep.time_budget_s is not None else None
    with context.interrupt.tune_run():
        if sweep.resume:
            if not can_restore(context.experiment_path):
                raise ConfigError("name", sweep.name, f"there is no sweep to resume at {context.experiment_path}")
            context.results = fit_restored(context.experiment_path, trainable)
        else:
            context.results = fit_search(
                trainable, context.prepared.search_plan, context.prepared.scheduler, sweep,
                run_config(sweep, context.name, storage_root(sweep), context.search_callbacks),
            )
    context.record.seconds["search"] = time.monotonic() - started


def twins(context: SweepContext) -> None:
    """The real-only twins the searcher did not draw, within their share of what is left of the budget."""
    sweep, record, deadline = context.sweep, context.record, context.deadline
    budget_s = None if deadline is None else (deadline - time.monotonic()) * (0.5 if sweep.finalists_on else 1.0)
    with context.interrupt.tune_run():
        context.twin_results = train_twins(record, context.results, context.trainable, context.callbacks(), budget_s)
    record.write(context.report_dir)
    keep_only_best_weights(context.results, context.experiment_path)
    if context.twin_results is not None and record.twins_path is not None:
        keep_only_best_weights(context.twin_results, record.twins_path)


def answer(context: SweepContext) -> bool:
    """The leaderboard and the synthetic effect, written and printed; False when no trial reported a result."""
    sweep, results = context.sweep, context.results
    context.analysis = analysis = analyse_sweep(context.record, results, context.twin_results)
    context.files = write_analysis(context.record, analysis, context.report_dir)
    errored = sum(1 for result in results if result.error)
    print(f"\nLeaderboard of sweep {context.name!r} ({analysis.finished} trials with results, {errored} failed), "
          f"by {sweep.metric} ({sweep.mode}):")
    if analysis.finished == 0:
        for result in results:
            if result.error:
                print(f"  trial failed: {result.error}")
        return False
    print(printable_leaderboard(analysis.leaderboard, context.space, sweep))
    for result in results:
        if result.error:
            # The leaderboard says `error`; the reason is the error's last line (the whole trace is in error.txt).
            print(f"  trial {trial_id_of(result.path)} failed: {last_error_line(result.error)} "
                  f"({result.path}/error.txt)")
    if not analysis.effects.empty:
        print(f"\nEffect of synthetic images on {sweep.metric} against each configuration's real-only twin:")
        print(printable_effects(analysis.effects))
    return True


def finalists(context: SweepContext) -> None:
    """The finalists retrained on fresh seeds within what is left of the budget, then tested once on the test split
    (finalists.csv, test_metrics.json); when none runs, the record says why."""
    if not context.sweep.finalists_on:
        context.record.not_computed["finalists"] = (
            "finalists are off (finalists: 0 or --no-final-test): the test split was not read"
        )
        return
    with context.interrupt.tune_run():
        _train_and_test_finalists(context)


def _train_and_test_finalists(context: SweepContext) -> None:
    sweep, space, record, analysis = context.sweep, context.space, context.record, context.analysis
    prepared = context.prepared
    chosen = choose_finalists(analysis.leaderboard, analysis.histories, sweep.finalists,
                              ranked_with_twins(analysis.leaderboard, analysis.twins_leaderboard, sweep))
    if not chosen:
        record.not_computed["finalists"] = "no trial reported a result"
        return
    seeds = finalist_seeds(sweep.seed, sweep.repeats)
    path = finalists_path(record.experiment_path)
    started = time.monotonic()
    resuming = sweep.resume and can_restore(path)
    left_s = None if context.deadline is None or resuming else context.deadline - time.monotonic()
    too_costly, note = fits_too_costly(
        {finalist.generator_hash(space) for finalist in chosen}, record, prepared.generator_demands,
        context.search_data, prepared.fit_fractions, context.pool_root, seeds, left_s,
    )
    skipped = {finalist.source_trial_id: note for finalist in chosen if finalist.generator_hash(space) in too_costly}
    if skipped:
        print(f"\nA synthetic finalist is {note}")
    training = training_order([finalist for finalist in chosen if finalist.source_trial_id not in skipped])
    generators = fresh_seed_generators(
        {finalist.generator_hash(space) for finalist in training}, record, prepared.generator_demands,
        prepared.fit_fractions, prepared.dataset, context.pool_root, seeds,
    )
    source = generators.source if generators is not None else None
    results = None
    if resuming:
        results = fit_restored(path, context.trainable(space, finalist_settings(context.settings, seeds, source, None)))
    elif training:
        budget_s = None if context.deadline is None else context.deadline - time.monotonic()
        if budget_s is not None and budget_s < MINIMUM_FINALIST_BUDGET_S:
            record.not_computed["finalists"] = (
                f"the time budget ({sweep.time_budget_s:g} s) was spent before the finalists could train "
                "(raise --time-budget-s or --answer-budget-share)"
            )
            print(f"\nNo time left for the finalists: {record.not_computed['finalists']}")
            return
        print(f"\nTraining {len(training)} finalists on fresh seeds {seeds[0]}..{seeds[-1]} (never used by the search)"
              + (f", {budget_s:.0f} s of the time budget left" if budget_s is not None else ""))
        trainable = context.trainable(space, finalist_settings(context.settings, seeds, source, budget_s))
        results = fit_points(trainable, [finalist.point(space) for finalist in training], sweep,
                             context.run_config(FINALISTS_RUN_NAME), budget_s)
    del generators, source  # the fresh-seed generator actors end here
    record.seconds["finalists"] = time.monotonic() - started
    record.finalists_path = path
    outcomes = pick_checkpoints(chosen, results, space, sweep.metric, sweep.mode)
    for outcome in outcomes:
        outcome.note = skipped.get(outcome.finalist.source_trial_id, outcome.note)
    # The test split is read here, after the search, the twins and the finalists' training, and nowhere else.
    labels = evaluate_on_test(outcomes, prepared.dataset, sweep.device)
    context.finalists = FinalistsRun(outcomes, labels, results)
    class_names = prepared.dataset.class_names
    document = test_metrics_document(outcomes, labels, sweep.metric, sweep.mode, class_names)
    context.test_metrics_path = write_finalist_results(
        finalists_table(outcomes, sweep.metric, class_names), document, context.report_dir
    )
    if document is None:
        record.not_computed["finalists"] = "no finalist trained an epoch within the time budget"
        print(f"\nFinalists: {record.not_computed['finalists']}")
    else:
        print(f"\nFinalists on fresh seeds {seeds[0]}..{seeds[-1]}, on the test split (read once), mean [95% interval "
              "across seeds]:\n" + printable_finalists(document))


def diagnostics(context: SweepContext) -> None:
    """Synthetic-image quality and Grad-CAM, when the sweep drew synthetic images; never fails the sweep."""
    write_optional_parts(
        context.record, context.report_dir, context.results, context.analysis.leaderboard, context.search_data,
        context.pool_root, context.finalists,
    )


def report(context: SweepContext) -> SweepOutputs:
    """report.html, the W&B runs and what the sweep stored; the terminal's last lines say where everything is."""
    sweep, record, report_dir = context.sweep, context.record, context.report_dir
    record.write(report_dir)
    report_path = write_html_report(record, report_dir)
    started = time.monotonic()
    runs = write_wandb_runs(sweep, context.name, report_dir, context.analysis.histories, context.analysis.tables,
                            files.report_images(report_dir))
    wandb_seconds = time.monotonic() - started
    outputs = context.outputs(report_path)
    print(f"\nReport: {report_path}\n  leaderboard: {outputs.leaderboard_path}\n  best config: {outputs.best_config_path}")
    if not context.analysis.effects.empty:
        print(f"  synthetic effect: {report_dir / files.EFFECT_FILE}")
    for path in outputs.plot_paths:
        print(f"  plot: {path}")
    if outputs.test_metrics_path:
        print(f"  finalists on fresh seeds, tested once: {report_dir / files.FINALISTS_FILE}, {outputs.test_metrics_path}")
    if (report_dir / files.QUALITY_FILE).is_file():
        print(f"  synthetic-image quality: {report_dir / files.QUALITY_FILE} "
              f"(sample grids in {report_dir / files.SAMPLES_FOLDER})")
    print(f"  Ray Tune results: {context.experiment_path}")
    finalist_results = context.finalists.results if context.finalists is not None else None
    trained = [*context.results, *(context.twin_results or []), *(finalist_results or [])]
    pool_root = context.pool_root if context.prepared.generator_demands else None
    storage = measure_storage(trained, context.experiment_path, pool_root)
    write_storage_usage(report_dir, storage)
    print(f"  {storage.describe()} ({report_dir / files.STORAGE_FILE})")
    # The logging actors are quiet, so W&B's own per-run pointers are no longer printed: one line here instead.
    wandb_folder = report_dir / files.WANDB_FOLDER
    if sweep.wandb.mode == "offline":
        print(f"  W&B offline runs ({runs}, written after the sweep in {wandb_seconds:.1f} s): {wandb_folder} "
              f"(upload with `wandb sync {wandb_folder}/offline-run-*`)")
    elif sweep.wandb.mode == "online":
        print(f"  W&B runs: project {sweep.wandb.project!r}, group {context.name!r}")
    return outputs
