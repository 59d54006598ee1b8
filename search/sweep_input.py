"""A sweep's input, read and checked before Ray starts: its settings (defaults, the space's suggestions, --config,
flags, or the record of the sweep --resume continues), the space, the dataset, the searcher's plan, the scheduler and
the synthetic images the space can ask for. Everything a user can get wrong is found here."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from ray.tune.schedulers import TrialScheduler

from search.settings.cli import build_parser, flags_to_settings
from search.settings.locations import is_uri, report_directory, storage_root
from search.settings.sweep_checks import check_generators, check_image_upload, check_metric, check_space, max_epochs
from search.settings.sweep_config import SweepConfig, build_sweep_config, merge, read_config_file, validate_sweep_config
from search.settings.sweep_record import RECORD_FILE, recorded_settings
from search.synthetic.demand import GeneratorDemand, generator_demands, generator_uses, smallest_fractions
from search.tuning.schedulers import SCHEDULERS
from search.tuning.searchers import SEARCHERS, SearchGoal, SearchPlan
from spaces import ConfigError, SearchSpace, list_presets
from trainables.datasets import DatasetSplits, ManifestColumns, describe_sources, load_dataset


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
        sweep.data,
        image_size=image_size,
        channels=sweep.channels,
        seed=sweep.seed,
        split_fractions=sweep.split_fractions,
        phantom_count=sweep.phantom_count,
        ordinal=sweep.ordinal,
        **reading_options(sweep),
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
    search_plan = SEARCHERS.get(sweep.searcher)(space, goal)
    scheduler = SCHEDULERS.get(sweep.scheduler)(space, max_epochs(space))
    return PreparedSweep(sweep, space, dataset, search_plan, scheduler, demands, smallest_fractions(trials, search_data))


def reading_options(sweep: SweepConfig) -> dict:
    """How the data's files are read, where its patients come from and a manifest's columns: `LoadOptions` fields."""
    manifest = ManifestColumns(
        image_root=sweep.image_root,
        path=sweep.path_column,
        label=sweep.label_column,
        split=sweep.split_column,
        patient=sweep.patient_column,
        class_names=sweep.class_names,
    )
    return {
        "data_format": sweep.data_format,
        "window": sweep.window,
        "dicom_frame": sweep.dicom_frame,
        "slices": sweep.slices,
        "skip_unreadable": sweep.skip_unreadable,
        "patient_from_filename": sweep.patient_from_filename,
        "manifest": manifest,
    }


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
        print(
            f"No record of sweep {sweep.name!r} at {report_dir / RECORD_FILE}{elsewhere}: resuming with the settings given",
            file=sys.stderr,
            flush=True,
        )
        return sweep
    return validate_sweep_config(merge(recorded, given), source)
