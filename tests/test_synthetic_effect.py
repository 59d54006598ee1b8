"""Paired statistics against known answers, twin pairing, the effect table and the real-data equivalent."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from search.answer.effect import effect_table, synthetic_label
from search.answer.statistics import coverage_note, holm, paired_effect
from search.answer.trial_history import TrialHistory, has_synthetic_images
from search.answer.twins import configuration_key, pair_with_twins, twin_points, twin_space
from search.answer.value_curve import curve_points, real_data_equivalent
from spaces import SearchSpace

METRIC = "val_balanced_accuracy"


def test_a_planted_effect_is_found_with_its_sign_and_an_interval_covering_it() -> None:
    generator = np.random.default_rng(3)
    real_only = generator.normal(0.70, 0.04, 12)
    with_synthetic = real_only + 0.05 + generator.normal(0, 0.01, 12)
    estimate = paired_effect(with_synthetic, real_only)
    assert estimate.effect > 0 and estimate.ci_low < 0.05 < estimate.ci_high and estimate.ci_low > 0
    assert estimate.p_value < 0.01 and estimate.repeats == 12
    negative = paired_effect(real_only, with_synthetic)
    assert negative.effect < 0 and negative.ci_high < 0


def test_no_effect_gives_an_interval_covering_zero_and_a_large_p() -> None:
    generator = np.random.default_rng(5)
    real_only = generator.normal(0.70, 0.04, 12)
    with_synthetic = real_only + generator.normal(0, 0.01, 12)
    estimate = paired_effect(with_synthetic, real_only)
    assert estimate.ci_low < 0 < estimate.ci_high
    assert estimate.p_value > 0.05


def test_one_repeat_has_no_interval_and_says_so() -> None:
    estimate = paired_effect([0.8], [0.7])
    assert estimate.effect == pytest.approx(0.1)
    assert estimate.ci_low is None and estimate.ci_high is None and estimate.p_value is None
    assert "1 repeat" in estimate.note


def test_no_spread_has_no_test_and_equal_scores_are_no_effect() -> None:
    constant = paired_effect([0.8, 0.7, 0.6], [0.7, 0.6, 0.5])
    assert constant.effect == pytest.approx(0.1)
    assert constant.p_value is None and constant.ci_low is None and "no spread" in constant.note
    same = paired_effect([0.8, 0.7, 0.6], [0.8, 0.7, 0.6])
    assert same.effect == 0 and same.p_value == 1 and same.ci_low == same.ci_high == 0


def test_the_effect_is_the_mean_paired_difference_with_the_paired_t_interval() -> None:
    with_synthetic, real_only = [0.82, 0.75, 0.71, 0.80], [0.78, 0.74, 0.65, 0.77]
    estimate = paired_effect(with_synthetic, real_only)
    differences = np.subtract(with_synthetic, real_only)
    assert estimate.effect == pytest.approx(differences.mean())
    # By hand: differences 0.04, 0.01, 0.06, 0.03; mean 0.035, sd 0.020817; t = 0.035 / (sd / 2) = 3.3627 on 3 df.
    half = 3.182446305284263 * differences.std(ddof=1) / 2
    assert (estimate.ci_low, estimate.ci_high) == pytest.approx((differences.mean() - half, differences.mean() + half))
    assert estimate.p_value == pytest.approx(0.04365, abs=1e-4)


def test_the_interval_excludes_zero_exactly_when_p_is_below_005() -> None:
    """The defect of the bootstrap it replaced: [+0.0958, +0.3817] beside p 0.25 at 3 pairs."""
    generator = np.random.default_rng(11)
    for _ in range(400):
        repeats = int(generator.integers(2, 21))
        real_only = generator.normal(0.7, 0.05, repeats)
        with_synthetic = real_only + generator.normal(generator.normal(0, 0.03), 0.03, repeats)
        estimate = paired_effect(with_synthetic, real_only)
        excludes_zero = estimate.ci_low > 0 or estimate.ci_high < 0
        assert excludes_zero == (estimate.p_value < 0.05), (repeats, estimate)


@pytest.mark.parametrize("pairs", [3, 5, 10])
def test_the_interval_keeps_its_95_percent_promise_at_the_repeats_people_run(pairs: int) -> None:
    """A guard on the coverage bench/interval_coverage.py measured: 600 simulated sweeps with a known effect, normal
    and heavy-tailed (Student t, 3 df) differences. A change that narrows the interval fails here."""
    generator = np.random.default_rng(pairs)
    simulations, effect = 600, 0.3
    for noise in (generator.standard_normal((simulations, pairs)), generator.standard_t(3, (simulations, pairs))):
        covered = 0
        for row in noise:
            estimate = paired_effect(row + effect, np.zeros(pairs))
            covered += estimate.ci_low <= effect <= estimate.ci_high
        # 600 draws of a 95% coverage: 0.93 is 2.2 standard errors below it.
        assert covered / simulations >= 0.93


def test_the_coverage_note_quotes_the_nearest_measured_pair_count() -> None:
    assert "with 4 pairs" in coverage_note(4) and "sweeps of 3 pairs" in coverage_note(4)
    assert "sweeps of 20 pairs" in coverage_note(50)
    assert "1 repeat" in coverage_note(1) and "below the 3" in coverage_note(2)


def test_holm_matches_a_hand_computation() -> None:
    # Sorted 0.01, 0.03, 0.04 of m = 3 tests: 3 x 0.01 = 0.03, 2 x 0.03 = 0.06, max(0.06, 1 x 0.04) = 0.06.
    assert holm([0.04, None, 0.01, 0.03]) == pytest.approx([0.06, None, 0.03, 0.06])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])


SPACE = SearchSpace.model_validate({
    "fixed": {"training.epochs": 4, "model.backbone": "basic_cnn"},
    "parameters": {
        "real_fraction": {"choice": [0.5, 1.0]},
        "optimizer.lr": {"loguniform": [0.001, 0.01]},
        "synthetic.proportion": {"uniform": [0.2, 1.0]},
        "synthetic.generator": {"choice": ["ddpm", "oversample"]},
        "synthetic.settings.training_steps": {"choice": [10], "when": {"synthetic.generator": "ddpm"}},
        # A non-synthetic value that exists only with one generator: the twin keeps it, without the condition.
        "model.dropout": {"choice": [0.2], "when": {"synthetic.generator": "ddpm"}},
    },
})


def test_the_twin_is_the_same_configuration_without_synthetic_images() -> None:
    twins = twin_space(SPACE)
    sample = {"real_fraction": 0.5, "optimizer.lr": 0.004, "synthetic.proportion": 0.6, "synthetic.generator": "ddpm",
              "synthetic.settings.training_steps": 10, "model.dropout": 0.2}
    values = SPACE.active_values(sample)
    (point,) = twin_points([TrialHistory("a", values, pd.DataFrame({"epoch": [1]}), "search")], twins)
    twin = twins.resolve(point)
    partner = SPACE.resolve(sample)
    assert not twin.synthetic.is_active and partner.synthetic.is_active
    assert twin.model_dump(exclude={"synthetic"}) == partner.model_dump(exclude={"synthetic"})
    assert configuration_key(twins.active_values(point)) == configuration_key(values)
    assert has_synthetic_images(values) and not has_synthetic_images(twins.active_values(point))


def history(epochs: int, medians: list[float], repeats: list[list[float]]) -> pd.DataFrame:
    frame = pd.DataFrame({"epoch": range(1, epochs + 1), METRIC: medians[:epochs]})
    for repeat in range(len(repeats[0])):
        frame[f"{METRIC}_repeat_{repeat}"] = [values[repeat] for values in repeats[:epochs]]
    return frame


def test_pairs_are_compared_over_the_epochs_both_trained() -> None:
    base = {"real_fraction": 0.5, "optimizer.lr": 0.004, "training.epochs": 4}
    synthetic = {**base, "synthetic.proportion": 0.5, "synthetic.generator": "oversample"}
    # The synthetic trial was stopped after 2 epochs; its twin trained 4 and was best at epoch 4.
    stopped = TrialHistory("s", synthetic, history(2, [0.6, 0.7], [[0.6, 0.6], [0.7, 0.7]]), "search")
    twin_repeats = [[0.5, 0.5], [0.62, 0.64], [0.8, 0.8], [0.9, 0.9]]
    full = TrialHistory("t", {**base, "synthetic.proportion": 0.0}, history(4, [0.5, 0.63, 0.8, 0.9], twin_repeats), "twin")
    shorter = TrialHistory("u", {**base, "synthetic.proportion": 0.0}, history(1, [0.1], [[0.1, 0.1]]), "search")
    other = TrialHistory("o", {**synthetic, "optimizer.lr": 0.002}, history(1, [0.3], [[0.3, 0.3]]), "search")
    pairs = pair_with_twins([stopped, shorter, full, other])
    assert [(pair.with_synthetic.trial_id, pair.real_only and pair.real_only.trial_id) for pair in pairs] == [
        ("s", "t"), ("o", None)
    ]
    table = effect_table(pairs, METRIC, "max", repeats=2, missing_twin_reason="twins are off")
    compared = table.set_index("trial_id")
    assert compared.loc["s", "epochs_compared"] == 2
    assert compared.loc["s", "with_synthetic"] == pytest.approx(0.7) and compared.loc["s", "real_only"] == pytest.approx(0.63)
    assert compared.loc["s", "effect"] == pytest.approx(0.7 - 0.63)
    assert compared.loc["s", "synthetic"] == "oversample x0.5 add" == synthetic_label(synthetic)
    assert compared.loc["o", "note"] == "twins are off" and pd.isna(compared.loc["o", "effect"])
    assert list(table["trial_id"]) == ["s", "o"]


def curve_trials(points: dict[str, dict[float, float]]) -> pd.DataFrame:
    rows = []
    for setting, values in points.items():
        for fraction, metric in values.items():
            proportion = 0.0 if setting == "real" else 0.5
            rows.append({"trial_id": f"{setting}-{fraction}", "real_fraction_of_train": fraction, METRIC: metric,
                         f"{METRIC}_repeat_0": metric - 0.01, f"{METRIC}_repeat_1": metric + 0.01,
                         "synthetic.proportion": proportion, "synthetic.generator": "ddpm"})
    return pd.DataFrame(rows)


def test_real_data_equivalent_interpolates_on_the_monotone_real_only_curve() -> None:
    trials = curve_trials({"real": {0.25: 0.6, 0.5: 0.7, 0.75: 0.68, 1.0: 0.8}, "synthetic": {0.25: 0.75, 0.5: 0.9, 1.0: 0.5}})
    points = curve_points(trials, METRIC, "max", repeats=2)
    assert set(points["setting"]) == {"real only", "ddpm x0.5 add"}
    assert points[["band_low", "band_high"]].notna().all().all()
    equivalent = real_data_equivalent(points, METRIC, "max").set_index("real_fraction_of_train")
    # 0.75 lies between 0.7 (at 0.5) and the running best 0.7 at 0.75, reached only at 1.0 (0.8): 0.75 + 0.5 x 0.25.
    assert equivalent.loc[0.25, "relation"] == "=" and equivalent.loc[0.25, "equivalent_real_fraction"] == pytest.approx(0.875)
    assert equivalent.loc[0.25, "worth"] == pytest.approx(3.5)
    assert equivalent.loc[0.5, "relation"] == ">" and equivalent.loc[0.5, "equivalent_real_fraction"] == 1.0
    assert equivalent.loc[1.0, "relation"] == "<=" and equivalent.loc[1.0, "equivalent_real_fraction"] == 0.25
    # A loss is minimised: the same curve, negated, gives the same answers.
    losses = trials.assign(**{column: -trials[column] for column in trials if column.startswith(METRIC)})
    flipped = real_data_equivalent(curve_points(losses, METRIC, "min", 2), METRIC, "min")
    assert flipped["equivalent_real_fraction"].tolist() == equivalent["equivalent_real_fraction"].tolist()


def test_a_trial_its_own_patience_stopped_counts_as_finished() -> None:
    base = {"real_fraction": 0.5, "optimizer.lr": 0.004}
    synthetic = TrialHistory("s", {**base, "synthetic.proportion": 0.5},
                             history(4, [0.5, 0.6, 0.7, 0.8], [[v, v] for v in (0.5, 0.6, 0.7, 0.8)]), "search")
    # The twin stopped itself after epoch 2 (no improvement for its patience), planned for 4.
    twin_history = history(2, [0.65, 0.6], [[0.65, 0.65], [0.6, 0.6]]).assign(epochs_planned=4, stopped_early=[0.0, 1.0])
    twin = TrialHistory("t", {**base, "synthetic.proportion": 0.0}, twin_history, "twin")
    (row,) = effect_table(pair_with_twins([synthetic, twin]), METRIC, "max", repeats=2).to_dict("records")
    assert row["epochs_compared"] == 4 and row["effect"] == pytest.approx(0.8 - 0.65)


def test_the_label_of_a_synthetic_setting_names_the_generator_settings_the_space_searched() -> None:
    values = {"synthetic.generator": "stable_diffusion", "synthetic.proportion": 0.5, "synthetic.settings.mode": "img2img",
              "synthetic.settings.strength": 0.75, "synthetic.filter": "label_fidelity"}
    assert synthetic_label(values) == "stable_diffusion x0.5 add filter=label_fidelity mode=img2img strength=0.75"
    assert synthetic_label({**values, "synthetic.proportion": 0.0}) == "real only"
