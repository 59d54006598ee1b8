"""The search space and trial schema: presets load, conditions hold, wrong values fail with a named field."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from spaces import ConfigError, SearchSpace, TrialConfig, list_presets, load_space, nest


def test_every_preset_loads_and_its_corners_validate() -> None:
    assert {"quick", "kwon2024", "full"} <= set(list_presets())
    for name in list_presets():
        space = load_space(name)
        trials = space.validate_samples()
        assert trials, name
        assert all(isinstance(trial, TrialConfig) for trial in trials)


def test_kwon2024_searches_the_thesis_grid() -> None:
    space = load_space("kwon2024")
    assert space.parameters["real_fraction"].choice == [0.3, 0.5, 0.7, 1.0]
    assert space.parameters["augmentation.policy"].choice == ["none", "hflip", "autoaugment"]
    assert "basic_cnn" in space.parameters["model.backbone"].choice
    assert space.sweep["metric"] == "val_loss" and space.sweep["mode"] == "min" and space.sweep["repeats"] > 1


def test_conditional_parameter_is_dropped_when_its_condition_fails() -> None:
    space = load_space("quick")
    sample = {"augmentation.policy": "hflip", "augmentation.magnitude": 9, "real_fraction": 0.3}
    trial = space.resolve(sample)
    assert trial.augmentation.policy == "hflip"
    assert "magnitude" not in type(trial.augmentation).model_fields
    trial = space.resolve({**sample, "augmentation.policy": "randaugment"})
    assert trial.augmentation.magnitude == 9


def test_values_outside_a_range_are_clamped_for_pbt_mutations() -> None:
    space = load_space("quick")
    # PBT multiplies by 1.2 / 0.8 without bounds; the trial must stay inside the declared range.
    trial = space.resolve({"augmentation.policy": "randaugment", "augmentation.magnitude": 17.6, "optimizer.lr": 1.0})
    assert trial.augmentation.magnitude == 15
    assert trial.optimizer.lr == pytest.approx(0.003)


def test_fixed_values_apply_and_typed_fields_convert() -> None:
    space = SearchSpace(
        fixed={"training.epochs": 3, "optimizer.name": "sgd"}, parameters={"optimizer.lr": {"loguniform": [1e-4, 1e-2]}}
    )
    trial = space.resolve({"optimizer.lr": 0.001})
    assert trial.training.epochs == 3 and trial.optimizer.name == "sgd" and trial.optimizer.lr == 0.001


def test_per_class_real_fraction_nests_and_conflicts_with_a_global_one() -> None:
    trial = TrialConfig.from_mapping(nest({"real_fraction.mild": 0.3, "real_fraction.moderate": 0.5}))
    assert trial.real_fraction == {"mild": 0.3, "moderate": 0.5}
    with pytest.raises(ConfigError, match="real_fraction.*either 'real_fraction' or its sub-keys"):
        nest({"real_fraction": 0.5, "real_fraction.mild": 0.3})


@pytest.mark.parametrize(
    ("values", "field", "message"),
    [
        ({"optimizer": {"lr": -1}}, "optimizer.lr", "greater than 0"),
        ({"optimizer": {"name": "rmsprop"}}, "optimizer.name", "'adam', 'adamw' or 'sgd'"),
        ({"training": {"imbalance": "smote"}}, "training.imbalance", "balanced_sampler"),
        ({"real_fraction": 1.5}, "real_fraction", r"\(0, 1\]"),
        ({"real_fraction": {"mild": 0}}, "real_fraction", "class 'mild'"),
        ({"training": {"epoch": 3}}, "training.epoch", "unknown field"),
        ({"synthetic": {"mode": "oversample"}}, "synthetic.mode", "'add' or 'balance'"),
        ({"synthetic": {"proportion": -1}}, "synthetic.proportion", r"\[0, 100\]"),
    ],
)
def test_invalid_trial_values_name_field_and_allowed(values: dict, field: str, message: str) -> None:
    with pytest.raises(ConfigError, match=rf"^{field}.*{message}"):
        TrialConfig.from_mapping(values)


def test_space_errors_name_the_parameter(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump({"parameters": {"optimizer.lr": {"loguniform": [0, 0.1]}}}))
    with pytest.raises(ConfigError, match=r"parameters\['optimizer.lr'\].*positive low bound"):
        load_space(str(path))
    path.write_text(yaml.safe_dump({"parameters": {"optimizer.lr": {"uniform": [0.1, 0.2], "choice": [1]}}}))
    with pytest.raises(ConfigError, match="exactly one of"):
        load_space(str(path))
    path.write_text(
        yaml.safe_dump(
            {"parameters": {"augmentation.magnitude": {"integer": [1, 5], "when": {"augmentation.policy": "randaugment"}}}}
        )
    )
    with pytest.raises(
        ConfigError, match=r"parameters\['augmentation.magnitude'\].when .*'augmentation.policy' is not allowed; a condition"
    ) as raised:
        load_space(str(path))
    assert "integer" not in str(raised.value), "the error names the keys at fault, not the whole space"
    path.write_text(yaml.safe_dump({"fixed": {"optimizer.lr": 0.1}, "parameters": {"optimizer.lr": {"choice": [0.1, 0.2]}}}))
    with pytest.raises(ConfigError, match=r"parameters\['optimizer.lr'\].*either fixed or searched, not both$"):
        load_space(str(path))
    path.write_text(yaml.safe_dump({"parameters": {"optimizer.lrr": {"uniform": [0.1, 0.2]}}}))
    with pytest.raises(ConfigError, match="optimizer.lrr.*unknown field; allowed: name, lr, weight_decay, momentum"):
        load_space(str(path)).validate_samples()
    path.write_text(yaml.safe_dump({"parameters": {"optimiser.lr": {"uniform": [0.1, 0.2]}}}))
    with pytest.raises(
        ConfigError, match=r"^optimiser.lr: 0.1 is not allowed; unknown field; allowed: real_fraction, augmentation"
    ):
        load_space(str(path)).validate_samples()


def test_unknown_preset_lists_the_presets() -> None:
    with pytest.raises(ConfigError, match="quick"):
        load_space("quik")


def test_a_users_yaml_space_works_like_a_preset(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump({
        "fixed": {"training.epochs": 2},
        "parameters": {"model.backbone": {"choice": ["basic_cnn"]}, "real_fraction": {"choice": [0.5, 1.0]}},
    }))
    space = load_space(str(path))
    assert space.name == "mine"
    assert [trial.real_fraction for trial in space.validate_samples()] == [0.5, 1.0]


def test_representative_samples_reach_conditional_values() -> None:
    space = load_space("quick")
    magnitudes = {
        sample["augmentation.magnitude"]
        for sample in space.representative_samples()
        if sample["augmentation.policy"] == "randaugment"
    }
    assert magnitudes == {3, 15}


def test_fixed_at_gives_a_space_with_nothing_left_to_search() -> None:
    space = load_space("quick")
    best = space.fixed_at({"augmentation.policy": "hflip", "real_fraction": 0.6, "augmentation.magnitude": 4}, name="best")
    assert best.parameters == {}
    assert best.fixed["real_fraction"] == 0.6 and "augmentation.magnitude" not in best.fixed
    assert best.resolve({}).training.epochs == space.fixed["training.epochs"]


def test_a_parameter_guarded_by_an_inactive_one_is_inactive() -> None:
    space = SearchSpace(parameters={
        "synthetic.proportion": {"choice": [0.0, 1.0]},
        "synthetic.generator": {"choice": ["ddpm", "oversample"], "when": {"synthetic.proportion": [1.0]}},
        "synthetic.settings.rotation_probability": {"choice": [0.5], "when": {"synthetic.generator": "oversample"}},
    })
    sample = {"synthetic.proportion": 0.0, "synthetic.generator": "oversample", "synthetic.settings.rotation_probability": 0.5}
    assert space.active_values(sample) == {"synthetic.proportion": 0.0}
    assert space.active_values({**sample, "synthetic.proportion": 1.0}) == {**sample, "synthetic.proportion": 1.0}
