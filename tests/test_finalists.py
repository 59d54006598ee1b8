"""Finalists: fresh seeds, the finalists chosen, the statistics of their test results against hand computations."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from search.answer.finalists import Finalist, choose_finalists, finalist_seeds, search_seeds, training_order
from search.answer.statistics import mcnemar_exact, seed_interval
from search.answer.trial_history import TrialHistory


@pytest.mark.parametrize("seed", [0, 7, 123_456])
@pytest.mark.parametrize("repeats", [1, 2, 3, 20, 1000])
def test_finalists_never_reuse_a_search_seed(seed: int, repeats: int) -> None:
    fresh = finalist_seeds(seed, repeats)
    assert not set(fresh) & set(search_seeds(seed, repeats))
    assert len(fresh) == max(repeats, 3) and len(set(fresh)) == len(fresh)


def test_mcnemar_exact_matches_a_hand_computation() -> None:
    # 9 images only A gets right, 1 only B, 30 both, 5 neither: p = 2 * P(X >= 9 | n=10, 1/2) = 2 * 11 / 1024.
    correct_a = np.array([True] * 9 + [False] * 1 + [True] * 30 + [False] * 5)
    correct_b = np.array([False] * 9 + [True] * 1 + [True] * 30 + [False] * 5)
    result = mcnemar_exact(correct_a, correct_b)
    assert (result["a_only"], result["b_only"], result["both_correct"], result["both_wrong"]) == (9, 1, 30, 5)
    assert result["p_value"] == pytest.approx(22 / 1024)
    # The test is symmetric, and without discordant images there is nothing against the null.
    assert mcnemar_exact(correct_b, correct_a)["p_value"] == pytest.approx(22 / 1024)
    assert mcnemar_exact(correct_a, correct_a)["p_value"] == 1.0


def test_seed_interval_is_the_t_interval() -> None:
    # mean 2, sd 1, n 3: half width t(0.975, 2) / sqrt(3) = 4.302652729911275 / 1.7320508075688772.
    mean, low, high = seed_interval([1.0, 2.0, 3.0])
    half = 4.302652729911275 / math.sqrt(3)
    assert (mean, low, high) == pytest.approx((2.0, 2.0 - half, 2.0 + half))
    assert math.isnan(seed_interval([0.5])[1]) and seed_interval([0.5, math.nan])[0] == 0.5
    # A bounded metric's interval stays in its range.
    assert seed_interval([0.0, 1.0, 1.0], bounds=(0.0, 1.0))[1:] == (0.0, 1.0)


def _history(trial_id: str, proportion: float, lr: float) -> TrialHistory:
    values = {"optimizer.lr": lr, "synthetic.proportion": proportion}
    return TrialHistory(trial_id, values, pd.DataFrame({"epoch": [1]}), "search")


def test_finalists_are_the_top_distinct_configurations_and_the_best_real_only_one() -> None:
    histories = [_history("a", 0.5, 0.1), _history("b", 0.5, 0.1), _history("c", 1.0, 0.2), _history("d", 0.5, 0.3),
                 _history("e", 0.0, 0.1), _history("twin", 0.0, 0.2)]
    leaderboard = pd.DataFrame({"trial_id": ["a", "b", "c", "d", "e"], "status": "ok"})
    finalists = choose_finalists(leaderboard, histories, 3)
    # "b" repeats "a"'s configuration; the best real-only one ("e") joins the top 3, the best synthetic one is "a".
    assert [(f.source_trial_id, f.rank, f.best_real_only, f.best_synthetic) for f in finalists] == [
        ("a", 1, False, True), ("c", 2, False, False), ("d", 3, False, False), ("e", None, True, False)
    ]
    # A twin ranked above "e" is the best real-only configuration; one among the top is a single finalist; "e",
    # the best synthetic configuration "a" without synthetic images, joins as a's twin.
    with_twins = pd.DataFrame({"trial_id": ["a", "twin", "b", "c", "d", "e"], "status": "ok"})
    assert [(f.source_trial_id, f.role) for f in choose_finalists(leaderboard, histories, 1, with_twins)] == [
        ("a", "top 1"), ("twin", "best real-only"), ("e", "twin of the best synthetic")
    ]
    top_real = pd.DataFrame({"trial_id": ["e", "a"], "status": "ok"})
    # "e" is also "a"'s real-only twin (the same configuration without synthetic images).
    assert [(f.source_trial_id, f.role) for f in choose_finalists(top_real, histories, 2)] == [
        ("e", "top 1, best real-only, twin of the best synthetic"), ("a", "top 2")
    ]
    # The best synthetic configuration is a finalist even when the top holds none, so McNemar's test has its pair.
    assert [(f.source_trial_id, f.role) for f in choose_finalists(top_real, histories, 1)] == [
        ("e", "top 1, best real-only, twin of the best synthetic"), ("a", "best synthetic")
    ]
    assert choose_finalists(leaderboard, histories, 0) == [
        Finalist("a", dict(histories[0].values), None, False, True),
        Finalist("e", dict(histories[4].values), None, True, False, True),
    ]


def test_a_finalist_the_budget_stopped_before_any_checkpoint_is_not_trained_not_a_crash(tmp_path) -> None:
    """Tune's get_best_checkpoint raises for a trial that wrote no checkpoint; the sweep then said so with a
    traceback after the whole search (seen on the quick preset with pneumoniamnist)."""
    from ray.tune import Checkpoint, Result

    from search.tuning.results import best_checkpoint

    frame = pd.DataFrame({"trial_id": ["t1"], "epoch": [1], "val_balanced_accuracy": [0.6]})
    cut = Result(metrics={"trial_id": "t1"}, checkpoint=None, error=None, path=str(tmp_path), metrics_dataframe=frame,
                 best_checkpoints=[])
    assert best_checkpoint(cut, "val_balanced_accuracy", "max") is None and best_checkpoint(None, "m", "max") is None
    kept = Checkpoint.from_directory(str(tmp_path))
    finished = Result(metrics={"trial_id": "t2", "val_balanced_accuracy": 0.7}, checkpoint=kept, error=None,
                      path=str(tmp_path), metrics_dataframe=frame, best_checkpoints=[(kept, {"val_balanced_accuracy": 0.7})])
    assert best_checkpoint(finished, "val_balanced_accuracy", "max").path == kept.path


def test_a_checkpoint_whose_result_arrived_as_the_budget_ended_is_still_the_finalists(tmp_path) -> None:
    """Tune logs a result that arrives as the time budget stops the run, but never registers its checkpoint, which
    the trial had written before reporting (seen: a real-only finalist's first epoch ending with the budget)."""
    from ray.tune import Result

    from search.tuning.results import best_checkpoint

    (tmp_path / "checkpoint_000000").mkdir()
    frame = pd.DataFrame({"trial_id": ["t1"], "epoch": [1], "val_balanced_accuracy": [0.6]})

    def unregistered(name: str | None) -> Result:
        return Result(metrics={"trial_id": "t1", "checkpoint_dir_name": name}, checkpoint=None, error=None,
                      path=str(tmp_path), metrics_dataframe=frame, best_checkpoints=[])

    found = best_checkpoint(unregistered("checkpoint_000000"), "val_balanced_accuracy", "max")
    assert found is not None and found.path == str(tmp_path / "checkpoint_000000")
    # A result naming no checkpoint, or one that is not there, has none.
    assert best_checkpoint(unregistered(None), "val_balanced_accuracy", "max") is None
    assert best_checkpoint(unregistered("checkpoint_000001"), "val_balanced_accuracy", "max") is None


def test_finalists_train_what_the_report_needs_most_first() -> None:
    """Under a budget too short for every finalist, the best, the best real-only and the best synthetic start first."""
    finalists = [
        Finalist("a", {}, 1, False, True), Finalist("b", {}, 2, False), Finalist("c", {}, 3, False),
        Finalist("e", {}, None, True),
    ]
    assert [finalist.source_trial_id for finalist in training_order(finalists)] == ["a", "e", "b", "c"]
    real_only_third = [Finalist("a", {}, 1, False), Finalist("b", {}, 2, False, True), Finalist("c", {}, 3, True)]
    assert [finalist.source_trial_id for finalist in training_order(real_only_third)] == ["a", "b", "c"]
    real_only_top = [Finalist("a", {}, 1, True), Finalist("b", {}, 2, False), Finalist("s", {}, None, False, True)]
    assert [finalist.source_trial_id for finalist in training_order(real_only_top)] == ["a", "s", "b"]


def test_rays_warning_about_trials_without_results_is_hidden_and_its_other_warnings_are_not(caplog) -> None:
    import logging

    from search.tuning._ray_compat import hide_trials_without_results_warning

    logger = logging.getLogger("ray.tune.analysis.experiment_analysis")
    hide_trials_without_results_warning()
    hide_trials_without_results_warning()
    assert len(logger.filters) == len({type(existing) for existing in logger.filters})
    with caplog.at_level(logging.WARNING, logger=logger.name):
        logger.warning("Failed to fetch metrics for 1 trial(s):\n- t1: FileNotFoundError('...')")
        logger.warning("Could not find best trial. Did you pass the correct `metric` parameter?")
    assert [record.getMessage() for record in caplog.records] == [
        "Could not find best trial. Did you pass the correct `metric` parameter?"
    ]
