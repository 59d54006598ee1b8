"""The Pareto front of metric against cost_seconds, and `--objective multi`: a real sweep whose Optuna study has two
objectives and whose report draws the front."""

from __future__ import annotations

import math
from pathlib import Path

import optuna
import pandas as pd
import pytest
import yaml

from search.answer.pareto import pareto_front, sweep_front
from search.report.files import PARETO_FILE, PARETO_PLOT
from search.report.page import ReportContext, render
from search.report.sections import SECTIONS
from search.report.sweep_files import write_pareto_front
from search.run import main
from search.settings.sweep_config import SweepConfig, validate_sweep_config
from search.settings.sweep_record import SweepRecord, new_record
from search.tuning.searchers import SEARCHERS, SearchGoal
from spaces import ConfigError, load_space


def trials(points: list[tuple[str, float, float]], metric: str = "val_balanced_accuracy") -> pd.DataFrame:
    return pd.DataFrame(
        [{"rank": rank, "trial_id": name, "status": "ok", metric: value, "cost_seconds": cost}
         for rank, (name, value, cost) in enumerate(points, start=1)]
    )


def test_the_front_keeps_what_no_other_trial_beats_on_both_metric_and_cost() -> None:
    frame = trials([
        ("best", 0.90, 100.0), ("dominated", 0.80, 120.0), ("cheap", 0.70, 10.0), ("middle", 0.85, 50.0),
        ("as_costly_worse", 0.84, 50.0), ("tie_a", 0.60, 5.0), ("tie_b", 0.60, 5.0), ("no_metric", math.nan, 1.0),
        ("no_cost", 0.99, math.nan),
    ])
    front = pareto_front(frame, "val_balanced_accuracy", "max")
    # Cheapest first; ties on both are both kept; rows without a finite metric or cost are never on it.
    assert list(front["trial_id"]) == ["tie_a", "tie_b", "cheap", "middle", "best"]
    # A loss is minimised: the cheap trial with the lowest loss dominates every other.
    losses = trials([("a", 0.5, 10.0), ("b", 0.4, 20.0), ("c", 0.6, 30.0), ("d", 0.3, 5.0)], "val_loss")
    assert list(pareto_front(losses, "val_loss", "min")["trial_id"]) == ["d"]
    assert pareto_front(frame.drop(columns="cost_seconds"), "val_balanced_accuracy", "max").empty


def test_the_report_section_draws_the_front_and_says_how_to_pick_from_it(tmp_path: Path) -> None:
    space = load_space("quick")
    record = new_record(SweepConfig(objective="multi"), space, "demo", str(tmp_path), "phantom: 4 classes")
    record.write(tmp_path)
    leaderboard = trials([("a", 0.9, 100.0), ("b", 0.8, 120.0), ("c", 0.7, 10.0)])
    leaderboard["optimizer.lr"] = [0.01, 0.001, 0.003]
    leaderboard.loc[3] = {"rank": 4, "trial_id": "e", "status": "error"}
    leaderboard.to_csv(tmp_path / "leaderboard.csv", index=False)
    written = write_pareto_front(*sweep_front(leaderboard, "val_balanced_accuracy", "max"), space, "val_balanced_accuracy",
                                 "max", tmp_path)
    assert written == tmp_path / PARETO_PLOT
    front = pd.read_csv(tmp_path / PARETO_FILE)
    assert list(front["trial_id"]) == ["c", "a"] and list(front["optimizer.lr"]) == [0.003, 0.01]
    page = render(ReportContext(tmp_path, SweepRecord.read(tmp_path)), SECTIONS)
    section = page.split("Metric against cost: the Pareto front", 1)[1].split("</section>", 1)[0]
    assert "budget" in section and "objective: multi" in section and "data:image/png;base64," in section
    assert "Not computed" not in section
    # The leaderboard's table shows cost, and says what it is.
    leaderboard_section = page.split("Leaderboard", 1)[1].split("</section>", 1)[0]
    assert "cost_seconds" in leaderboard_section and "share of synthetic images" in leaderboard_section


def test_a_sweep_without_cost_figures_has_no_front(tmp_path: Path) -> None:
    leaderboard = trials([("a", 0.9, 1.0)]).drop(columns="cost_seconds")
    front = sweep_front(leaderboard, "val_balanced_accuracy", "max")
    assert write_pareto_front(*front, load_space("quick"), "val_balanced_accuracy", "max", tmp_path) is None
    assert not (tmp_path / PARETO_FILE).exists()


@pytest.mark.parametrize("searcher", ["random", "grid"])
def test_multi_objective_needs_the_optuna_searcher(searcher: str) -> None:
    with pytest.raises(ConfigError, match=rf"^objective: 'multi'.*searcher '{searcher}' has one objective"):
        validate_sweep_config({"objective": "multi", "searcher": searcher})
    with pytest.raises(ConfigError, match="objective"):
        validate_sweep_config({"objective": "both"})


def test_the_multi_objective_searcher_minimises_cost_beside_the_metric() -> None:
    goal = SearchGoal(metric="val_loss", mode="min", num_samples=3, seed=0, objective="multi")
    searcher = SEARCHERS.get("optuna")(load_space("quick"), goal).search_algorithm
    assert (searcher.metric, searcher.mode) == (["val_loss", "cost_seconds"], ["min", "min"])
    single = SEARCHERS.get("optuna")(load_space("quick"), SearchGoal("val_auroc", "max", 3, 0)).search_algorithm
    assert (single.metric, single.mode) == ("val_auroc", "max")


MULTI_SPACE = {
    "fixed": {"training.epochs": 2, "training.batch_size": 32, "model.backbone": "basic_cnn", "real_fraction": 0.5,
              "synthetic.generator": "ddpm", "synthetic.settings.training_steps": 4,
              "synthetic.settings.block_out_channels": [8, 16], "synthetic.settings.sampling_steps": 2},
    "parameters": {
        "synthetic.proportion": {"choice": [0.0, 0.5, 1.0]},
        "optimizer.lr": {"loguniform": [0.0005, 0.01]},
    },
}


@pytest.mark.slow
def test_a_multi_objective_sweep_tells_optuna_both_objectives_and_reports_the_front(
    tmp_path: Path, module_ray: None
) -> None:
    from generators.pool import SyntheticPool

    space = tmp_path / "multi.yaml"
    space.write_text(yaml.safe_dump(MULTI_SPACE))
    results = tmp_path / "results"
    assert main([
        "--space", str(space), "--data", "phantom", "--phantom-count", "300", "--image-size", "16",
        "--objective", "multi", "--num-samples", "4", "--storage", str(results), "--name", "multi",
        "--wandb-mode", "disabled", "--no-final-test", "--no-twins",
    ]) == 0
    report = results / "multi"
    leaderboard = pd.read_csv(report / "leaderboard.csv")
    ok = leaderboard[leaderboard["status"] == "ok"]
    assert len(ok) == 4
    assert (ok["cost_train_seconds"] > 0).all() and (ok["cost_gpu_seconds"] == 0).all()
    assert ok["cost_seconds"].to_numpy() == pytest.approx((ok["cost_train_seconds"] + ok["cost_synthetic_seconds"]).to_numpy())
    # The synthetic share: the ddpm fit plus its measured seconds per image times the images each trial used.
    pool = SyntheticPool(str(results / "synthetic_pool"))
    key_folders = [path.name for path in (results / "synthetic_pool").iterdir() if path.name.startswith("ddpm--")]
    (key_folder,) = key_folders
    cost = pool.generation_cost(key_folder)
    assert cost.fit_seconds > 0 and cost.seconds_per_image > 0
    expected = [cost.fit_seconds + cost.seconds_per_image * images if images else 0.0 for images in ok["synthetic_images"]]
    assert ok["cost_synthetic_seconds"].to_numpy() == pytest.approx(expected)

    # Optuna's study had two objectives and was told each finished trial's metric and cost.
    from ray.tune.search.optuna import OptunaSearch

    searcher = OptunaSearch()
    searcher.restore_from_dir(str(report))
    study = searcher._ot_study
    assert study.directions == [optuna.study.StudyDirection.MAXIMIZE, optuna.study.StudyDirection.MINIMIZE]
    told = {trial_id: ot_trial for trial_id, ot_trial in searcher._ot_trials.items()}
    completed = [trial for trial in study.trials if trial.state == optuna.trial.TrialState.COMPLETE]
    assert len(completed) == 4 and all(len(trial.values) == 2 for trial in completed)
    for row in ok.itertuples():
        values = study.trials[told[row.trial_id].number].values
        assert values[1] == pytest.approx(row.cost_seconds)

    # The report draws the front and lists it; ASHA and the leaderboard keep to the metric.
    front = pd.read_csv(report / PARETO_FILE)
    assert (report / PARETO_PLOT).is_file() and not front.empty
    assert set(front["trial_id"]) <= set(ok["trial_id"])
    assert set(pareto_front(ok, "val_balanced_accuracy", "max")["trial_id"]) == set(front["trial_id"])
    page = (report / "report.html").read_text()
    assert "Metric against cost: the Pareto front" in page and "budget" in page
    ranked = list(leaderboard["val_balanced_accuracy"].dropna())
    assert ranked == sorted(ranked, reverse=True)
