"""One sweep as its stages (search.stages) share it: what `start` sets up and what each stage adds, and the paths a
finished sweep hands back (SweepOutputs)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from ray import tune
from ray.tune import ResultGrid

from search.answer.analysis import SweepAnalysis
from search.report import files
from search.report.sweep_files import AnalysisFiles
from search.settings.locations import pool_root_of
from search.settings.sweep_config import SweepConfig
from search.settings.sweep_record import SweepRecord
from search.sweep_input import PreparedSweep
from search.synthetic.preparation import PreparedGenerators
from search.tuning import interrupt
from search.tuning.finalists_run import FinalistsRun
from search.tuning.trainable_factory import trainable_of
from search.tuning.tuner import run_config
from search.tuning.wandb_callback import create_wandb_callback
from spaces import SearchSpace
from trainables.datasets import SearchData
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


@dataclass
class SweepContext:
    """One sweep as its stages share it: what `start` sets up, then what each stage adds."""

    prepared: PreparedSweep
    interrupt: interrupt.InterruptState
    name: str
    experiment_path: str
    report_dir: Path
    record: SweepRecord
    search_callbacks: list
    settings: TrialSettings | None = None
    # The generator actors live as long as the context holds them.
    generators: PreparedGenerators | None = None
    # The end of the time budget (time.monotonic()); None without one.
    deadline: float | None = None
    results: ResultGrid | None = None
    twin_results: ResultGrid | None = None
    analysis: SweepAnalysis | None = None
    files: AnalysisFiles | None = None
    finalists: FinalistsRun | None = None
    test_metrics_path: Path | None = None

    @property
    def sweep(self) -> SweepConfig:
        return self.prepared.sweep

    @property
    def space(self) -> SearchSpace:
        return self.prepared.space

    @cached_property
    def search_data(self) -> SearchData:
        # Only train and validation go to the object store; the test split stays with the finalists' stage.
        return self.prepared.dataset.for_search()

    @property
    def pool_root(self) -> str:
        return pool_root_of(self.sweep)

    def trainable(self, space: SearchSpace, settings: TrialSettings | None = None) -> Any:
        assert self.settings is not None, "the trial settings are made by start()"
        return trainable_of(space, settings or self.settings, self.search_data, self.sweep.resources)

    def callbacks(self) -> list:
        """A fresh W&B callback (online mode) per Tune run after the search: Ray's keeps per-experiment state."""
        wandb = create_wandb_callback(self.sweep, self.name, self.report_dir)
        return [interrupt.StopOnInterrupt(), *([wandb] if wandb is not None else [])]

    def run_config(self, run_name: str) -> tune.RunConfig:
        """A Tune run inside the sweep's folder (the twins', the finalists')."""
        return run_config(self.sweep, run_name, self.experiment_path, self.callbacks())

    def outputs(self, report_path: Path | None = None) -> SweepOutputs:
        analysis, written = self.analysis, self.files or AnalysisFiles()
        errored = sum(1 for result in self.results or [] if result.error)
        return SweepOutputs(
            self.name, self.experiment_path, self.report_dir,
            self.report_dir / files.LEADERBOARD_FILE if analysis is not None else None, written.best_config_path,
            self.test_metrics_path, tuple(written.plots), report_path, analysis.finished if analysis else 0, errored,
        )
