"""`python -m search.run`: one command for the whole study, as a Ray Tune sweep, ending with its leaderboard."""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ray import tune
from ray.tune.schedulers import TrialScheduler

from generators import GeneratorError
from search import interrupt
from search.cli import build_parser, flags_to_settings
from search.config import SweepConfig, build_sweep_config, merge, read_config_file, validate_sweep_config
from search.finalists_run import train_and_test_finalists
from search.ray_connection import connect_to_ray
from search.report import printable_leaderboard
from search.report_extras import write_optional_parts
from search.report_upload import upload_report
from search.schedulers import SCHEDULERS, stopping_epochs
from search.searchers import SEARCHERS, SearchGoal, SearchPlan
from search.storage_usage import keep_only_best_weights, measure_storage, write_storage_usage
from search.sweep_record import RECORD_FILE, new_record, recorded_settings
from search.sweep_report import analyse_sweep, printable_effects, report_images, write_html_report
from search.synthetic_demand import GeneratorDemand, generator_demands, generator_uses, smallest_fractions
from search.synthetic_filter_setup import attach_label_filters, space_uses_label_filter
from search.synthetic_setup import pool_root_of, prepare_generators
from search.trainable import search_trial
from search.tune_results import hide_trials_without_results_warning, last_error_line, trial_id_of
from search.tune_runs import finalists_on, ranked_with_twins, search_budget_s, train_twins, tune_run_config
from search.validation import check_generators, check_image_upload, check_metric, check_space, max_epochs
from search.wandb_logging import create_wandb_callback, write_wandb_runs
from spaces import ConfigError, SearchSpace, list_presets
from trainables.datasets import DatasetSplits, describe_sources, load_dataset
from trainables.errors import TrainableInputError
from trainables.trial import TrialSettings


@dataclass(frozen=True)
class SweepOutputs:
    name: str
    experiment_path: str
    report_dir: Path
    leaderboard_path: Path | None
    best_config_path: Path | None
    test_metrics_path: Path | None
    plot_paths: tuple[Path, ...]
    report_path: Path | None
    trials_finished: int
    trials_errored: int


def is_uri(storage: str) -> bool:
    return "://" in storage


def storage_root(sweep: SweepConfig) -> str:
    return sweep.storage if is_uri(sweep.storage) else str(Path(sweep.storage).expanduser().resolve())


def report_directory(sweep: SweepConfig, name: str) -> Path:
    if sweep.report_dir:
        return Path(sweep.report_dir).expanduser().resolve()
    if is_uri(sweep.storage):
        return Path("sweeps", name).resolve()
    return Path(storage_root(sweep), name)


@dataclass(frozen=True)
class PreparedSweep:
    sweep: SweepConfig
    space: SearchSpace
    dataset: DatasetSplits
    search_plan: SearchPlan
    scheduler: TrialScheduler
    # Generators some trial may ask images from, each with the most images per class a trial may ask of it
    # (zero when the sweep does not generate before trials), and the real fractions generators are fit on.
    generator_demands: list[GeneratorDemand]
    fit_fractions: dict[int, float]


def prepare(argv: Sequence[str] | None) -> PreparedSweep:
    """Everything that can be wrong with the input, found before Ray starts."""
    parser = build_parser(describe_sources(), list_presets())
    arguments = parser.parse_args(argv)
    config_file = read_config_file(arguments.config) if arguments.config else {}
    flags = flags_to_settings(arguments)
    sweep = build_sweep_config(config_file, flags, arguments.config)
    if sweep.resume and not sweep.name:
        raise ConfigError("resume", True, "resuming needs --name of the interrupted sweep")
    if sweep.resume:
        sweep = resumed_settings(sweep, merge(config_file, flags), arguments.config)
    space = sweep.search_space()
    image_size = sweep.image_size if sweep.image_size is not None else (32 if sweep.data == "phantom" else None)
    dataset = load_dataset(
        sweep.data, image_size=image_size, channels=sweep.channels, seed=sweep.seed,
        split_fractions=sweep.split_fractions, phantom_count=sweep.phantom_count, ordinal=sweep.ordinal,
    )
    search_data = dataset.for_search()
    check_metric(sweep, search_data)
    trials = check_space(space, search_data)
    uses = generator_uses(space)
    check_generators(uses, search_data, f"space {space.name!r}")
    if sweep.pregenerate:
        demands = generator_demands(space, search_data)
    else:
        demands = [GeneratorDemand(settings, np.zeros(search_data.num_classes, np.int64)) for settings in uses]
    # Every generator that will be prepared counts, however it was found.
    check_image_upload(sweep, [*uses, *(demand.settings for demand in demands)], search_data, f"space {space.name!r}")
    goal = SearchGoal(
        metric=sweep.metric, mode=sweep.mode, num_samples=sweep.num_samples, seed=sweep.seed, objective=sweep.objective
    )
    search_plan = SEARCHERS[sweep.searcher](space, goal)
    scheduler = SCHEDULERS[sweep.scheduler](space, max_epochs(space))
    return PreparedSweep(sweep, space, dataset, search_plan, scheduler, demands, smallest_fractions(trials, search_data))


def resumed_settings(sweep: SweepConfig, given: dict, source: str | None) -> SweepConfig:
    """--resume continues the sweep as it was started: its recorded settings and its space as it was then (a
    preset or file changed since does not change it), under what this command gives (--ray-address on a new
    cluster, say). The record is the report folder's, else (storage at a URI) the copy beside the sweep there."""
    assert sweep.name is not None
    report_dir = report_directory(sweep, sweep.name)
    experiment_uri = f"{storage_root(sweep).rstrip('/')}/{sweep.name}" if is_uri(sweep.storage) else None
    recorded = recorded_settings(report_dir, experiment_uri)
    if recorded is None:
        elsewhere = f" or {experiment_uri}/{RECORD_FILE}" if experiment_uri else ""
        print(f"No record of sweep {sweep.name!r} at {report_dir / RECORD_FILE}{elsewhere}: resuming with the settings "
              "given", file=sys.stderr, flush=True)
        return sweep
    return validate_sweep_config(merge(recorded, given), source)


def run_sweep(prepared: PreparedSweep) -> SweepOutputs:
    sweep, space, dataset = prepared.sweep, prepared.space, prepared.dataset
    name = sweep.sweep_name(time.strftime("%Y%m%d-%H%M%S"))
    root = storage_root(sweep)
    experiment_path = f"{root.rstrip('/')}/{name}"
    interrupt.STATE.resume = interrupt.resume_command(name, root, sweep.report_dir)
    interrupt.STATE.experiment_path = experiment_path
    report_dir = report_directory(sweep, name)
    report_dir.mkdir(parents=True, exist_ok=True)
    callbacks = [interrupt.StopOnInterrupt(), *(c for c in [create_wandb_callback(sweep, name, report_dir)] if c is not None)]
    record = new_record(sweep, space, name, experiment_path, dataset.describe())
    record.write(report_dir)

    connect_to_ray(sweep.ray_address, sweep.num_cpus)
    # Only train and validation go to the object store, once; trials get a reference, never a copy on disk.
    search_data = dataset.for_search()
    generators = None
    synthetic_source = None
    if prepared.generator_demands:
        started = time.monotonic()
        generators = prepare_generators(
            prepared.generator_demands, prepared.fit_fractions, search_data, sweep, pool_root_of(sweep, root)
        )
        synthetic_source = generators.source
        if space_uses_label_filter(space):
            seeds = [sweep.seed + repeat for repeat in range(sweep.repeats)]
            synthetic_source = attach_label_filters(synthetic_source, search_data, seeds)
        record.seconds["generators"] = time.monotonic() - started
    settings = TrialSettings(
        repeats=sweep.repeats, seed=sweep.seed, device=sweep.device, synthetic_source=synthetic_source,
        metric=sweep.metric, mode=sweep.mode, checkpoint_every_epoch=sweep.scheduler == "pbt",
        stopping_epochs=stopping_epochs(sweep.scheduler, max_epochs(space)), training_state_every=sweep.checkpoint_every,
        # Finalists retrain on fresh seeds and only their weights are evaluated: the search's and twins' keep none.
        keep_weights=not finalists_on(sweep),
    )
    # With one checkpoint kept per trial, Tune saves its experiment state with every checkpoint (so it never names
    # a deleted one) and warns each time that happens within 5 s; that is the intended cost, not news.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    hide_trials_without_results_warning()

    def trainable_of(trial_space: SearchSpace, trial_settings: TrialSettings = settings) -> object:
        return tune.with_resources(
            tune.with_parameters(search_trial, data=search_data, space=trial_space, settings=trial_settings),
            {"cpu": sweep.resources.cpus, "gpu": sweep.resources.gpus},
        )

    trainable = trainable_of(space)
    if sweep.resume:
        if not tune.Tuner.can_restore(experiment_path):
            raise ConfigError("name", sweep.name, f"there is no sweep to resume at {experiment_path}")
        tuner = tune.Tuner.restore(experiment_path, trainable=trainable, resume_errored=True)
    else:
        plan = prepared.search_plan
        tuner = tune.Tuner(
            trainable,
            param_space=plan.param_space,
            tune_config=tune.TuneConfig(
                metric=sweep.metric, mode=sweep.mode, search_alg=plan.search_algorithm,
                scheduler=prepared.scheduler,
                num_samples=plan.num_samples, max_concurrent_trials=sweep.max_concurrent,
                time_budget_s=search_budget_s(sweep),
                # Starting a worker process (torch, timm, Ray imports) costs seconds; trials reuse them.
                reuse_actors=True,
            ),
            run_config=tune_run_config(sweep, name, root, callbacks),
        )
    search_started = time.monotonic()
    # The search gets time_budget_s x (1 - answer_budget_share); twins and finalists share the rest, to the deadline.
    deadline = search_started + sweep.time_budget_s if sweep.time_budget_s is not None else None
    with interrupt.tune_run():
        results = tuner.fit()
    record.seconds["search"] = time.monotonic() - search_started

    def fresh_callbacks() -> list:
        # A fresh W&B callback (online mode) per extra Tune run: Ray's callback keeps per-experiment state.
        wandb = create_wandb_callback(sweep, name, report_dir)
        return [interrupt.StopOnInterrupt(), *([wandb] if wandb is not None else [])]

    twin_budget_s = None if deadline is None else (deadline - time.monotonic()) * (0.5 if finalists_on(sweep) else 1.0)
    with interrupt.tune_run():
        twin_results = train_twins(record, results, trainable_of, fresh_callbacks(), twin_budget_s)
    record.write(report_dir)
    keep_only_best_weights(results, experiment_path)
    if twin_results is not None and record.twins_path is not None:
        keep_only_best_weights(twin_results, record.twins_path)

    analysis = analyse_sweep(record, results, twin_results, report_dir)
    leaderboard = analysis.leaderboard
    finished = int((leaderboard["status"] == "ok").sum()) if "status" in leaderboard else 0
    errored = sum(1 for result in results if result.error)
    leaderboard_path = report_dir / "leaderboard.csv"
    print(
        f"\nLeaderboard of sweep {name!r} ({finished} trials with results, {errored} failed), by {sweep.metric} ({sweep.mode}):"
    )
    if finished == 0:
        for result in results:
            if result.error:
                print(f"  trial failed: {result.error}")
        return SweepOutputs(name, experiment_path, report_dir, leaderboard_path, None, None, (), None, 0, errored)
    print(printable_leaderboard(leaderboard, space, sweep))
    for result in results:
        if result.error:
            # The leaderboard says `error`; the reason is the error's last line (the whole trace is in error.txt).
            print(f"  trial {trial_id_of(result.path)} failed: {last_error_line(result.error)} "
                  f"({result.path}/error.txt)")
    if not analysis.effects.empty:
        print(f"\nEffect of synthetic images on {sweep.metric} against each configuration's real-only twin:")
        print(printable_effects(analysis.effects))

    best_config_path = analysis.best_config_path
    plots = tuple(analysis.plots)
    finalists = None
    if finalists_on(sweep):
        with interrupt.tune_run():
            finalists = train_and_test_finalists(
                record, leaderboard, analysis.histories,
                real_only_ranking=ranked_with_twins(leaderboard, analysis.twins_leaderboard, sweep),
                settings=settings, trainable_of=trainable_of,
                run_config_of=lambda run_name: tune_run_config(sweep, run_name, experiment_path, fresh_callbacks()),
                dataset=dataset, demands=prepared.generator_demands, fit_fractions=prepared.fit_fractions,
                pool_root=pool_root_of(sweep, root), deadline=deadline, report_dir=report_dir,
            )
    else:
        record.not_computed["finalists"] = "finalists are off (finalists: 0 or --no-final-test): the test split was not read"
    test_metrics_path = finalists.test_metrics_path if finalists is not None else None
    write_optional_parts(record, report_dir, results, leaderboard, search_data, pool_root_of(sweep, root), finalists)
    record.write(report_dir)
    report_path = write_html_report(record, report_dir)
    started = time.monotonic()
    runs = write_wandb_runs(sweep, name, report_dir, analysis.histories, analysis.tables, report_images(report_dir))
    wandb_seconds = time.monotonic() - started
    print(f"\nReport: {report_path}\n  leaderboard: {leaderboard_path}\n  best config: {best_config_path}")
    if not analysis.effects.empty:
        print(f"  synthetic effect: {report_dir / 'synthetic_effect.csv'}")
    for path in plots:
        print(f"  plot: {path}")
    if test_metrics_path:
        print(f"  finalists on fresh seeds, tested once: {report_dir / 'finalists.csv'}, {test_metrics_path}")
    if (report_dir / "synthetic_quality.csv").is_file():
        print(f"  synthetic-image quality: {report_dir / 'synthetic_quality.csv'} (sample grids in {report_dir / 'samples'})")
    print(f"  Ray Tune results: {experiment_path}")
    trained = [*results, *(twin_results or []), *(finalists.results or [] if finalists is not None else [])]
    storage = measure_storage(trained, experiment_path, pool_root_of(sweep, root) if prepared.generator_demands else None)
    write_storage_usage(report_dir / "storage.json", storage)
    print(f"  {storage.describe()} ({report_dir / 'storage.json'})")
    # The logging actors are quiet, so W&B's own per-run pointers are no longer printed: one line here instead.
    if sweep.wandb.mode == "offline":
        print(f"  W&B offline runs ({runs}, written after the sweep in {wandb_seconds:.1f} s): {report_dir / 'wandb'} "
              f"(upload with `wandb sync {report_dir / 'wandb'}/offline-run-*`)")
    elif sweep.wandb.mode == "online":
        print(f"  W&B runs: project {sweep.wandb.project!r}, group {name!r}")
    return SweepOutputs(
        name, experiment_path, report_dir, leaderboard_path, best_config_path, test_metrics_path, plots, report_path,
        finished, errored,
    )


# Every error a user can cause with their input or their files: one clean line and exit code 2.
EXPECTED_ERRORS = (ConfigError, GeneratorError, TrainableInputError)


def error_message(error: BaseException) -> str:
    # An error raised inside a Ray actor or task arrives wrapped with the remote traceback; the cause says it all.
    return str(getattr(error, "cause", None) or error)


# How long an interrupted driver waits for Ray to shut down before it exits anyway (its local processes end with it).
RAY_SHUTDOWN_TIMEOUT_S = 20.0


def shut_down_ray() -> None:
    import ray

    if ray.is_initialized():
        stopping = threading.Thread(target=ray.shutdown, daemon=True)
        stopping.start()
        stopping.join(RAY_SHUTDOWN_TIMEOUT_S)


def main(argv: Sequence[str] | None = None) -> int:
    if threading.current_thread() is not threading.main_thread():
        return run_main(argv)
    with interrupt.handling():
        return run_main(argv)


def run_main(argv: Sequence[str] | None) -> int:
    try:
        prepared = prepare(argv)
        print(prepared.dataset.describe())
        outputs = run_sweep(prepared)
        if is_uri(prepared.sweep.storage):
            print(f"  report copied to {upload_report(outputs.report_dir, outputs.experiment_path)}")
    except EXPECTED_ERRORS as error:
        print(f"error: {error_message(error)}", file=sys.stderr)
        return 2
    except (interrupt.SweepInterrupted, KeyboardInterrupt):
        interrupt.print_interrupted(interrupt.resumable())
        shut_down_ray()
        return interrupt.INTERRUPTED_EXIT_CODE
    return 0 if outputs.trials_finished > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
