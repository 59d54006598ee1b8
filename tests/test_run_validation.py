"""`python -m search.run` refuses bad input with a named field before any Ray work starts."""

from __future__ import annotations

from pathlib import Path

import pytest
import ray
import yaml

from search.run import main
from spaces import list_presets

SPACE = {"fixed": {"training.epochs": 1}, "parameters": {"model.backbone": {"choice": ["basic_cnn"]}}}


def run(tmp_path: Path, space: dict, *flags: str) -> int:
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(space))
    return main(["--space", str(path), "--storage", str(tmp_path), "--phantom-count", "200", *flags])


@pytest.mark.parametrize(
    ("space", "flags", "expected"),
    [
        (SPACE, ["--metric", "val_aucroc"], ["metric", "did you mean 'val_auroc'"]),
        (
            {"parameters": {"model.backbone": {"choice": ["basic_cnn", "resnet19x"]}}},
            [],
            ["model.backbone", "resnet19x", "any timm model name"],
        ),
        (
            {"parameters": {"augmentation.policy": {"choice": ["randaugment"]}, "augmentation.magnitude": {"integer": [0, 99]}}},
            [],
            ["magnitude", "99"],
        ),
        ({"parameters": {"real_fraction.severe": {"choice": [0.5]}}}, [], ["real_fraction.severe", "non_demented"]),
        (SPACE, ["--data", "/no/such/folder"], ["/no/such/folder"]),
        (SPACE, ["--scheduler", "pbt"], ["use searcher 'random'"]),
        (SPACE, ["--resume"], ["resume", "--name"]),
        ({"parameters": {"optimizer.lr": {"uniform": [0.001, 0.01]}}}, ["--searcher", "grid"], ["optimizer.lr", "choice"]),
    ],
)
def test_bad_input_fails_before_ray_with_a_named_field(
    tmp_path: Path, capsys: pytest.CaptureFixture, space: dict, flags: list[str], expected: list[str]
) -> None:
    assert not ray.is_initialized()
    assert run(tmp_path, space, *flags) == 2
    error = capsys.readouterr().err
    for fragment in expected:
        assert fragment in error, (fragment, error)
    assert not ray.is_initialized()
    assert not list(tmp_path.glob("*/leaderboard.csv"))


def test_help_documents_sources_presets_and_outputs(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    help_text = capsys.readouterr().out
    for fragment in (
        "phantom",
        "medmnist:",
        ".npz",
        ".parquet",
        "quick",
        "kwon2024",
        "full",
        "leaderboard.csv",
        "best_config.yaml",
        "--repeats",
    ):
        assert fragment in help_text, fragment


@pytest.mark.parametrize("preset", list_presets())
def test_every_preset_passes_the_checks_before_ray(preset: str, preset_models: None) -> None:
    from search.sweep_input import prepare

    # The models a preset names from the hub are in the (test's) Hugging Face cache, as after a first download.
    prepared = prepare(["--space", preset, "--phantom-count", "200"])
    assert prepared.space.name == preset
    assert prepared.search_plan.num_samples >= 1
    assert not ray.is_initialized()
