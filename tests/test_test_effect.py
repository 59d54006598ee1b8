"""The paired effect of synthetic images on the test split: the best synthetic finalist against its real-only twin,
retrained on the same fresh seeds, compared seed by seed with the sweep's one paired procedure."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from search.answer import finalists as finalists_module
from search.answer.finalists import FinalistOutcome, choose_finalists, training_order
from search.answer.statistics import paired_effect
from search.answer.test_effect import minority_f1, paired_test_effect
from search.answer.trial_history import TrialHistory
from spaces import SearchSpace
from trainables.checkpoint_evaluation import RepeatEvaluation

CLASSES = ["normal", "pneumonia"]
LABELS = np.array([0, 0, 1, 1, 1, 1, 1])  # "normal" is the minority
SPACE = SearchSpace.model_validate({
    "name": "t", "fixed": {"training.epochs": 1, "model.backbone": "basic_cnn", "synthetic.generator": "oversample"},
    "parameters": {"optimizer.lr": {"choice": [0.1, 0.2]}, "synthetic.proportion": {"choice": [0.0, 0.5]}},
})


def _history(trial_id: str, proportion: float, lr: float) -> TrialHistory:
    values = {"optimizer.lr": lr, "synthetic.proportion": proportion}
    return TrialHistory(trial_id, values, pd.DataFrame({"epoch": [1]}), "search")


def test_the_best_synthetic_configurations_twin_is_a_finalist_and_trains_before_the_rest() -> None:
    histories = [_history("s1", 0.5, 0.1), _history("s2", 0.5, 0.2), _history("r2", 0.0, 0.2), _history("twin", 0.0, 0.1)]
    leaderboard = pd.DataFrame({"trial_id": ["s1", "s2", "r2"], "status": "ok"})
    with_twins = pd.DataFrame({"trial_id": ["s1", "s2", "r2", "twin"], "status": "ok"})
    finalists = choose_finalists(leaderboard, histories, 2, with_twins)
    # r2 is the best real-only configuration; "twin" is s1 without synthetic images, and joins as its own finalist.
    assert [(f.source_trial_id, f.role) for f in finalists] == [
        ("s1", "top 1"), ("s2", "top 2"), ("r2", "best real-only"), ("twin", "twin of the best synthetic")
    ]
    assert [f.source_trial_id for f in training_order(finalists)] == ["s1", "r2", "twin", "s2"]
    # A twin that never trained (--no-twins, or the budget ran out) trains as a finalist, from s1's values.
    untrained = choose_finalists(leaderboard, histories[:3], 2)
    assert [(f.source_trial_id, f.role) for f in untrained][-1] == ("", "twin of the best synthetic")
    assert untrained[-1].values == {"optimizer.lr": 0.1, "synthetic.proportion": 0.0}
    assert untrained[-1].trained_values(SPACE) == SPACE.active_values({"optimizer.lr": 0.1, "synthetic.proportion": 0.0})


def _outcome(finalist, trial_id: str, per_seed: dict[int, dict[str, float]]) -> FinalistOutcome:
    evaluations = [RepeatEvaluation(seed, metrics, np.zeros(len(LABELS), np.int64)) for seed, metrics in per_seed.items()]
    return FinalistOutcome(finalist, SPACE.resolve(finalist.point(SPACE)), trial_id, evaluations=evaluations)


def _metrics(balanced_accuracy: float, auroc: float, f1_minority: float) -> dict[str, float]:
    return {"balanced_accuracy": balanced_accuracy, "auroc": auroc, "f1_normal": f1_minority, "f1_pneumonia": 0.9,
            "f1_macro": 0.8, "accuracy": 0.8, "recall_normal": 0.7, "recall_pneumonia": 0.9}


def test_the_test_split_effect_pairs_seeds_and_uses_the_paired_t() -> None:
    histories = [_history("s1", 0.5, 0.1), _history("twin", 0.0, 0.1)]
    board = pd.DataFrame({"trial_id": ["s1", "twin"], "status": "ok"})
    synthetic, twin = choose_finalists(board, histories, 1)
    assert twin.twin_of_best_synthetic and twin.best_real_only
    with_synthetic = {1000: _metrics(0.80, 0.90, 0.70), 1001: _metrics(0.84, 0.92, 0.75), 1002: _metrics(0.79, 0.88, 0.66)}
    real_only = {1002: _metrics(0.74, 0.87, 0.60), 1000: _metrics(0.75, 0.86, 0.61), 1001: _metrics(0.80, 0.91, 0.70)}
    outcomes = [_outcome(synthetic, "f1", with_synthetic), _outcome(twin, "f2", real_only)]
    effect = paired_test_effect(outcomes, LABELS, CLASSES)
    assert effect["seeds"] == [1000, 1001, 1002] and (effect["synthetic_trial_id"], effect["twin_trial_id"]) == ("f1", "f2")
    assert set(effect["metrics"]) == {"balanced_accuracy", "auroc", "f1_normal"}
    expected = paired_effect([0.80, 0.84, 0.79], [0.75, 0.80, 0.74])  # paired by seed, not by list position
    balanced = effect["metrics"]["balanced_accuracy"]
    assert balanced["effect"] == pytest.approx(0.0466667) == pytest.approx(expected.effect)
    assert (balanced["ci_low"], balanced["ci_high"], balanced["p_value"]) == pytest.approx(
        (expected.ci_low, expected.ci_high, expected.p_value))
    assert "3 pairs" in effect["coverage"] and "paired t" in effect["method"]
    # test_metrics.json carries it beside McNemar's test.
    document = finalists_module.test_metrics_document(outcomes, LABELS, "val_balanced_accuracy", "max", CLASSES)
    assert document["synthetic_effect_on_test"] == effect


def test_without_an_evaluated_twin_the_effect_says_why() -> None:
    histories = [_history("s1", 0.5, 0.1), _history("r", 0.0, 0.2)]
    board = pd.DataFrame({"trial_id": ["s1", "r"], "status": "ok"})
    synthetic, real_only, twin = choose_finalists(board, histories, 1)
    outcomes = [_outcome(synthetic, "f1", {1000: _metrics(0.8, 0.9, 0.7)}),
                _outcome(real_only, "f2", {1000: _metrics(0.7, 0.8, 0.6)}), _outcome(twin, "f3", {})]
    assert paired_test_effect(outcomes, LABELS, CLASSES) == {"note": "not computed: its real-only twin was not evaluated"}


def test_the_minority_class_is_the_one_with_fewest_test_images() -> None:
    assert minority_f1(LABELS, CLASSES) == "f1_normal"
    assert minority_f1(np.array([0, 1, 1]), ["a b", "c"]) == "f1_a_b"
