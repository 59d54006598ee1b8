"""Sweep settings: flags, --config YAML and the space's suggestions merge in order; bad values fail early."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from search.settings.cli import build_parser, flags_to_settings
from search.settings.sweep_config import SweepConfig, build_sweep_config, read_config_file
from search.tuning.schedulers import SCHEDULERS
from search.tuning.searchers import SEARCHERS, SearchGoal
from spaces import ConfigError, SearchSpace, load_space


def settings_from(argv: list[str]) -> dict:
    return flags_to_settings(build_parser("sources", ["quick"]).parse_args(argv))


def test_every_sweep_field_is_a_flag() -> None:
    help_text = build_parser("sources", ["quick"]).format_help()
    for flag in ("--data", "--space", "--config", "--num-samples", "--searcher", "--scheduler", "--metric", "--mode",
                 "--repeats", "--storage", "--name", "--resume", "--resources-cpus", "--resources-gpus", "--wandb-mode",
                 "--time-budget-s", "--max-concurrent", "--image-size", "--final-test", "--no-final-test"):
        assert flag in help_text, flag


def test_only_given_flags_are_settings_and_nested_ones_nest() -> None:
    assert settings_from([]) == {}
    assert settings_from(["--num-samples", "4", "--resources-gpus", "0.25", "--no-resume"]) == {
        "num_samples": 4, "resources": {"gpus": 0.25}, "resume": False,
    }


def test_precedence_defaults_space_config_file_flags() -> None:
    # kwon2024 suggests repeats 5 and metric val_loss; the file overrides repeats, a flag overrides it again.
    sweep = build_sweep_config({"space": "kwon2024"}, {})
    assert sweep.repeats == 5 and sweep.metric == "val_loss" and sweep.mode == "min"
    sweep = build_sweep_config({"space": "kwon2024", "repeats": 3}, {})
    assert sweep.repeats == 3
    sweep = build_sweep_config({"space": "kwon2024", "repeats": 3}, {"repeats": 2, "resources": {"gpus": 1}})
    assert sweep.repeats == 2 and sweep.resources.gpus == 1 and sweep.resources.cpus == 1


def test_config_file_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump({"data": "phantom", "num_samples": 3, "wandb": {"mode": "disabled"}}))
    sweep = build_sweep_config(read_config_file(str(path)), {}, str(path))
    assert sweep.num_samples == 3 and sweep.wandb.mode == "disabled"


@pytest.mark.parametrize(
    ("settings", "field", "message"),
    [
        ({"searcher": "hyperopt"}, "searcher", "'optuna', 'random' or 'grid'"),
        ({"num_samples": 0}, "num_samples", "greater than or equal to 1"),
        ({"resources": {"gpus": -1}}, "resources.gpus", "greater than or equal to 0"),
        ({"wandb": {"mode": "cloud"}}, "wandb.mode", "offline"),
        ({"numsamples": 3}, "numsamples", "unknown field"),
        ({"scheduler": "pbt"}, r"\(top level\)", "use searcher 'random'"),
        ({"metric": "val_loss", "mode": "max"}, r"\(top level\)", "set mode 'min'"),
        ({"split_fractions": [0.5, 0.5, 0.5]}, r"\(top level\)", "summing to 1"),
    ],
)
def test_invalid_settings_name_the_field(settings: dict, field: str, message: str) -> None:
    with pytest.raises(ConfigError, match=rf"^{field}.*{message}"):
        build_sweep_config(settings, {})


def test_mode_follows_the_metric_when_not_given() -> None:
    assert build_sweep_config({}, {"metric": "val_loss"}).mode == "min"
    assert build_sweep_config({}, {"metric": "val_auroc"}).mode == "max"


def test_unreadable_config_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="missing.yaml.*cannot be read"):
        read_config_file(str(tmp_path / "missing.yaml"))
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        read_config_file(str(bad))


def test_grid_enumerates_active_combinations_once() -> None:
    space = SearchSpace(parameters={
        "augmentation.policy": {"choice": ["none", "randaugment"]},
        "augmentation.magnitude": {"choice": [5, 10], "when": {"augmentation.policy": "randaugment"}},
        "real_fraction": {"choice": [0.5, 1.0]},
    })
    plan = SEARCHERS.get("grid")(space, SearchGoal("val_auroc", "max", num_samples=7, seed=0))
    suggested = [plan.search_algorithm.suggest(f"trial-{index}") for index in range(plan.num_samples + 1)]
    points, finished = suggested[:-1], suggested[-1]
    # none x 2 fractions + randaugment x 2 magnitudes x 2 fractions; no duplicate "none" points per magnitude.
    assert len(points) == 6 and plan.num_samples == 6 and plan.param_space == {} and finished == "FINISHED"
    # A point holds the searched keys themselves, active ones only: what trials, reports and W&B see.
    assert {"augmentation.policy": "none", "real_fraction": 0.5} in points
    assert {"augmentation.policy": "randaugment", "augmentation.magnitude": 10, "real_fraction": 1.0} in points


def test_grid_refuses_ranges() -> None:
    with pytest.raises(ConfigError, match=r"augmentation.magnitude.*needs `choice`"):
        SEARCHERS.get("grid")(load_space("quick"), SearchGoal("val_auroc", "max", num_samples=1, seed=0))


def test_pbt_needs_mutable_parameters() -> None:
    space = SearchSpace(parameters={"real_fraction": {"choice": [0.5, 1.0]}})
    with pytest.raises(ConfigError, match="no parameter `mutable: true`"):
        SCHEDULERS.get("pbt")(space, 4)
    scheduler = SCHEDULERS.get("pbt")(load_space("quick"), 8)
    assert set(scheduler._hyperparam_mutations) == {
        "augmentation.magnitude",
        "augmentation.rotation_magnitude",
        "augmentation.brightness_magnitude",
        "optimizer.lr",
    }


def test_default_sweep_is_the_quick_preset_on_phantom() -> None:
    sweep = build_sweep_config({}, {})
    assert isinstance(sweep, SweepConfig)
    assert sweep.data == "phantom" and sweep.space == "quick" and sweep.searcher == "optuna" and sweep.scheduler == "asha"
    assert sweep.num_samples >= 8 and sweep.time_budget_s is not None
