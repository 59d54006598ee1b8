"""What Ray Tune prints on the sweep's terminal: its status table with the few columns a person follows a sweep by
(the searched metric and its spread, the synthetic proportion and generator, epochs), and no box of every metric
per finished trial, which made up most of a default `make run`'s ~230 KB. Failed trials still show."""

from __future__ import annotations

import time
import types
from pathlib import Path

import pytest
import yaml
from ray.tune import CLIReporter
from ray.tune.experiment import Trial
from ray.tune.experimental.output import get_air_verbosity
from ray.tune.progress_reporter import TrialProgressCallback
from ray.tune.utils.log import Verbosity, has_verbosity, set_verbosity

from search.settings.sweep_config import SweepConfig
from search.tuning import tuner
from search.tuning.tuner import run_config

# What a trial reports besides the table's columns: none of it belongs on the terminal.
OTHER_METRICS = {"val_auroc": 0.91, "val_loss": 0.42, "val_kappa": 0.5, "train_loss": 0.3, "real_images": 120.0,
                 "synthetic_images": 30.0, "cost_seconds": 12.5, "epochs_planned": 8}
OTHER_PARAMETERS = {"augmentation.policy": "randaugment", "optimizer.lr": 0.001, "model.backbone": "basic_cnn"}


def planted_trial(config: dict, result: dict | None, status: str = Trial.TERMINATED) -> Trial:
    storage = types.SimpleNamespace(experiment_driver_staging_path="/sweep/search", trial_driver_staging_path="/sweep/t")
    trial = Trial("search_trial", config=config, stub=True, storage=storage)
    if result is not None:
        trial.update_last_result({**OTHER_METRICS, **result, "config": config, "training_iteration": result["epoch"]})
    trial.set_status(status)
    return trial


def status_lines(sweep: SweepConfig, trials: list[Trial], capsys: pytest.CaptureFixture, tmp_path: Path) -> list[str]:
    """The status as Tune prints it during a run of the sweep's run configuration."""
    config = run_config(sweep, "search", str(tmp_path), [])
    set_verbosity(config.verbose)  # as Tune does, with the engine that takes a progress reporter
    config.progress_reporter.setup(start_time=time.time(), total_samples=len(trials), metric=sweep.metric, mode=sweep.mode)
    config.progress_reporter.report(trials, False, "Logical resource usage: 2.0/2 CPUs")
    return capsys.readouterr().out.splitlines()


def header_of(lines: list[str]) -> str:
    return next(line for line in lines if line.startswith("| Trial name"))


def test_the_status_table_shows_the_metric_its_spread_the_synthetic_columns_and_epochs(
    capsys: pytest.CaptureFixture, tmp_path: Path
) -> None:
    sweep = SweepConfig()
    metric = sweep.metric
    trials = [
        planted_trial({**OTHER_PARAMETERS, "synthetic.proportion": 0.25, "synthetic.generator": "ddpm"},
                      {metric: 0.8125, f"{metric}_std": 0.0311, "epoch": 8}),
        # Real-only: the conditional generator is not in its configuration.
        planted_trial({**OTHER_PARAMETERS, "synthetic.proportion": 0.0}, {metric: 0.6, f"{metric}_std": 0.02, "epoch": 4}),
        planted_trial({**OTHER_PARAMETERS, "synthetic.proportion": 0.5, "synthetic.generator": "oversample"}, None,
                      Trial.PENDING),
    ]
    lines = status_lines(sweep, trials, capsys, tmp_path)
    header = [column.strip() for column in header_of(lines).strip("|").split("|")]
    assert header == ["Trial name", "status", "loc", "synthetic.proportion", "synthetic.generator", "epoch", metric,
                      f"{metric}_std"]
    text = "\n".join(lines)
    for hidden in [*OTHER_METRICS, *OTHER_PARAMETERS, "randaugment"]:
        assert hidden not in text, hidden
    assert f"Current best trial: {trials[0]} with {metric}=0.8125 at its latest epoch" in text
    row = next(line for line in lines if str(trials[0]) in line and "TERMINATED" in line)
    assert [cell.strip() for cell in row.strip("|").split("|")][3:] == ["0.25", "ddpm", "8", "0.8125", "0.0311"]
    # A status while the run goes on, every minute: a few tables in a sweep of minutes, not one per trial.
    assert tuner.STATUS_EVERY_S >= 30 and tuner.STATUS_ROWS <= 20


def test_columns_no_trial_has_are_left_out(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    sweep = SweepConfig(metric="val_auroc")
    trials = [planted_trial({"augmentation.policy": "hflip"}, {"val_auroc": 0.7, "val_auroc_std": 0.01, "epoch": 2})]
    header = header_of(status_lines(sweep, trials, capsys, tmp_path))
    assert "synthetic" not in header and "val_auroc_std" in header and "augmentation" not in header


def test_tune_prints_no_result_per_trial(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    # Tune's default engine takes no progress reporter and prints a box of every metric for each finished trial.
    monkeypatch.setenv("RAY_AIR_NEW_OUTPUT", "1")
    sweep = SweepConfig()
    config = run_config(sweep, "search", "/tmp/unused", [])
    assert isinstance(config.progress_reporter, CLIReporter)
    tuner._quiet_tune()
    assert get_air_verbosity(config.verbose) is None, "Tune would ignore the progress reporter"
    # With that engine, Tune adds this callback for each trial's results; at the run's verbosity it prints none.
    set_verbosity(config.verbose)
    assert not has_verbosity(Verbosity.V2_TRIAL_NORM)
    callback = TrialProgressCallback(metric=sweep.metric)
    trial = planted_trial({**OTHER_PARAMETERS, "synthetic.proportion": 0.0},
                          {sweep.metric: 0.7, f"{sweep.metric}_std": 0.0, "epoch": 8, "done": True})
    callback.on_trial_result(iteration=1, trials=[trial], trial=trial, result=trial.last_result)
    callback.on_trial_complete(iteration=2, trials=[trial], trial=trial)
    assert capsys.readouterr().out == ""


TINY_SPACE = {
    "fixed": {"training.epochs": 2, "training.batch_size": 32, "model.backbone": "basic_cnn"},
    "parameters": {
        "augmentation.policy": {"choice": ["none", "hflip"]},
        "optimizer.lr": {"loguniform": [0.0005, 0.005]},
        "synthetic.proportion": {"choice": [0.0, 0.5]},
        "synthetic.generator": {"choice": ["oversample"], "when": {"synthetic.proportion": [0.5]}},
    },
}


@pytest.mark.slow
def test_a_small_sweep_prints_status_tables_and_no_result_boxes(
    tmp_path: Path, ray_cluster: None, capfd: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from search.run import main

    # Tune's default output engine, as on a user's terminal (the tests' conftest selects the other one).
    monkeypatch.setenv("RAY_AIR_NEW_OUTPUT", "1")

    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump(TINY_SPACE))
    code = main(["--data", "phantom", "--phantom-count", "300", "--image-size", "24", "--space", str(space),
                 "--num-samples", "4", "--max-concurrent", "2", "--finalists", "1", "--wandb-mode", "disabled",
                 "--no-final-test", "--storage", str(tmp_path / "results"), "--name", "terminal"])
    output = capfd.readouterr()
    printed = output.out + output.err
    assert code == 0, printed
    assert "completed after" not in printed and "Result for " not in printed
    assert "params={" not in printed and "parameters={" not in printed
    # A run's first status, before any result, has no metric columns yet.
    headers = [line for line in printed.splitlines() if line.startswith("| Trial name") and " epoch |" in line]
    assert headers and all("val_balanced_accuracy_std" in header for header in headers)
    assert any("synthetic.proportion" in header and "synthetic.generator" in header for header in headers)
    assert not any("val_auroc" in header or "augmentation.policy" in header for header in headers)
    # 4 trials, their twins and a finalist, with the sweep's own tables (trials' own output stays in their processes
    # here: log_to_driver=False): ~8 KB. Tune's default engine printed ~4 KB of boxes per trial on top.
    assert len(printed.encode()) < 20_000, len(printed.encode())


@pytest.mark.slow
def test_a_failed_trial_is_still_printed(
    tmp_path: Path, ray_cluster: None, capfd: pytest.CaptureFixture, caplog: pytest.LogCaptureFixture
) -> None:
    def failing_trial(config: dict) -> None:
        raise RuntimeError("planted failure of the trial")

    sweep = SweepConfig(max_failures=0)
    tuner.fit_points(failing_trial, [{"synthetic.proportion": 0.0}], sweep,
                     run_config(sweep, "failing", str(tmp_path), []), budget_s=None)
    output = capfd.readouterr()
    printed = output.out + output.err
    # Tune logs the trial's traceback (to stderr, through Ray's handler); its status names the error file.
    assert "planted failure of the trial" in caplog.text
    assert "Trial task failed for trial failing_trial" in caplog.text
    assert "Number of errored trials: 1" in printed and "error.txt" in printed


def test_the_ray_check_would_notice_either_setting_stop_working(monkeypatch: pytest.MonkeyPatch) -> None:
    from search.tuning import _ray_compat

    monkeypatch.setenv("RAY_AIR_NEW_OUTPUT", "1")
    monkeypatch.setattr(_ray_compat, "TUNE_OUTPUT_ENGINE_ENV", "NO_SUCH_VARIABLE")
    monkeypatch.setattr(_ray_compat.NoParameterColumns, "__bool__", lambda self: False)
    problems = _ray_compat.check_ray_internals()
    assert any("NO_SUCH_VARIABLE=0 no longer selects" in problem for problem in problems)
    assert any("shows parameter columns again" in problem for problem in problems)
