"""Real local Ray sweeps through `python -m search.run`: leaderboard, best config, W&B files, test split untouched."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from search.run import main
from search.tuning.schedulers import asha_rungs
from trainables.datasets import DatasetError, load_dataset

pytestmark = pytest.mark.slow

TINY_SPACE = {
    "fixed": {"training.epochs": 2, "training.batch_size": 32, "model.backbone": "basic_cnn"},
    "parameters": {
        "augmentation.policy": {"choice": ["none", "hflip", "randaugment"]},
        "augmentation.magnitude": {"integer": [2, 12], "when": {"augmentation.policy": "randaugment"}, "mutable": True},
        "real_fraction": {"choice": [0.5, 1.0]},
        "optimizer.lr": {"loguniform": [0.0005, 0.005], "mutable": True},
    },
}


def write_space(folder: Path, space: dict = TINY_SPACE) -> str:
    path = folder / "tiny_space.yaml"
    path.write_text(yaml.safe_dump(space))
    return str(path)


def run_sweep(tmp_path: Path, *flags: str) -> int:
    return main([
        "--storage", str(tmp_path / "results"), "--space", write_space(tmp_path), "--max-concurrent", "2", *flags,
    ])


def test_phantom_sweep_writes_leaderboard_best_config_and_wandb_runs(
    tmp_path: Path, ray_cluster: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "sk-test-secret-never-logged-0123456789"
    monkeypatch.setenv("WANDB_API_KEY", secret)
    code = run_sweep(
        tmp_path, "--data", "phantom", "--phantom-count", "300", "--image-size", "24", "--num-samples", "4",
        "--repeats", "2", "--name", "phantom", "--wandb-mode", "offline", "--finalists", "1",
    )
    assert code == 0
    report = tmp_path / "results" / "phantom"
    leaderboard = pd.read_csv(report / "leaderboard.csv")
    assert len(leaderboard) == 4 and set(leaderboard["status"]) == {"ok"}
    scores = leaderboard["val_balanced_accuracy"].tolist()
    assert scores == sorted(scores, reverse=True) and leaderboard["rank"].tolist() == [1, 2, 3, 4]
    for column in ("val_auroc", "val_loss", "val_kappa", "val_balanced_accuracy_std", "val_recall_moderate_demented",
                   "real_images", "real_count_non_demented", "augmentation.policy", "real_fraction", "optimizer.lr"):
        assert column in leaderboard, column
    # Two seeds per configuration: a spread is reported, and subsets follow the fraction.
    assert (leaderboard["val_balanced_accuracy_std"] >= 0).all()
    full = leaderboard[leaderboard["real_fraction"] == 1.0]["real_images"]
    half = leaderboard[leaderboard["real_fraction"] == 0.5]["real_images"]
    if len(full) and len(half):
        assert full.iloc[0] > half.iloc[0]

    best = yaml.safe_load((report / "best_config.yaml").read_text())
    assert best["num_samples"] == 1 and best["space"]["parameters"] == {}
    assert best["space"]["fixed"]["augmentation.policy"] == leaderboard.iloc[0]["augmentation.policy"]

    test_metrics = json.loads((report / "test_metrics.json").read_text())
    assert 0.0 <= test_metrics["test_balanced_accuracy"] <= 1.0 and test_metrics["trial_id"] == leaderboard.iloc[0]["trial_id"]
    # The best configuration, retrained on three fresh seeds, is the one finalist (it is the best real-only one too).
    assert [(f["role"], f["seeds"]) for f in test_metrics["finalists"]] == [("top 1, best real-only", [1000, 1001, 1002])]
    assert list((report / "plots").glob("*.png"))

    # A new best epoch is checkpointed only where ASHA may stop the trial (its rungs) and at the trial's end.
    for progress_file in report.glob("search_trial_*/progress.csv"):
        progress = pd.read_csv(progress_file)
        scores = progress["val_balanced_accuracy"]
        best_epoch = progress["epoch"].where(scores > scores.cummax().shift(fill_value=-1.0)).ffill()
        rungs = set(asha_rungs(int(progress["epochs_planned"].max())))
        expected, written = [], None
        for epoch, best, planned in zip(progress["epoch"], best_epoch, progress["epochs_planned"], strict=True):
            wanted = best != written and (epoch in rungs or epoch == planned)
            expected.append(wanted)
            written = best if wanted else written
        assert (progress["checkpoint_dir_name"].notna() == pd.Series(expected)).all(), progress_file
        assert ((progress["checkpoint_bytes"] > 0) == pd.Series(expected)).all(), progress_file
    # Each trial keeps one checkpoint, its best weights without optimizer state; the sweep says what it wrote.
    kept = [list(folder.glob("checkpoint_*")) for folder in report.glob("search_trial_*")]
    assert len(kept) == 4 and all(len(checkpoints) == 1 for checkpoints in kept)
    assert all(sorted(path.name for path in checkpoints[0].iterdir()) == ["replicas.pt"] for checkpoints in kept)
    storage = json.loads((report / "storage.json").read_text())
    kept_bytes = sum(path.stat().st_size for checkpoints in kept for path in checkpoints[0].iterdir())
    assert storage["checkpoint_bytes_written"] >= kept_bytes > 0
    assert storage["experiment_bytes"] > kept_bytes
    # What every Tune run of the sweep (search, twins, finalists) wrote; the leaderboard has the search's share.
    every_run = sum(pd.read_csv(path)["checkpoint_bytes"].fillna(0).sum() for path in report.rglob("progress.csv"))
    assert every_run == pytest.approx(storage["checkpoint_bytes_written"], abs=1)
    assert 0 < leaderboard["checkpoint_mb_written"].sum() * 1e6 < storage["checkpoint_bytes_written"]

    # Written after the sweep: one run per trial and a summary run.
    runs = sorted((report / "wandb").glob("offline-run-*"))
    assert len(runs) == 4 + 1
    assert all(list(run.glob("*.wandb")) for run in runs)
    for path in (report / "wandb").rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path

    # The best configuration runs again from its file alone.
    code = main(["--config", str(report / "best_config.yaml"), "--storage", str(tmp_path / "results"), "--name", "rerun",
                 "--wandb-mode", "disabled", "--no-final-test"])
    assert code == 0
    rerun = pd.read_csv(tmp_path / "results" / "rerun" / "leaderboard.csv")
    assert len(rerun) == 1
    assert rerun.iloc[0]["val_balanced_accuracy"] == pytest.approx(leaderboard.iloc[0]["val_balanced_accuracy"], abs=1e-6)


def npz_with_unreadable_test_split(path: Path) -> Path:
    """Train and val are real arrays; test needs pickle to load, so any read of it fails loudly."""
    generator = np.random.default_rng(0)
    labels = np.array([0, 1] * 60)
    images = (generator.random((120, 28, 28)) * 60).astype(np.uint8)
    images[labels == 1, 8:20, 8:20] += 150
    test_trap = np.empty(10, dtype=object)
    np.savez(
        path, train_images=images[:100], train_labels=labels[:100, None], val_images=images[100:],
        val_labels=labels[100:, None], test_images=test_trap, test_labels=labels[:10, None],
    )
    return path


def test_search_never_reads_the_test_split(tmp_path: Path, ray_cluster: None) -> None:
    data = npz_with_unreadable_test_split(tmp_path / "trap.npz")
    with pytest.raises(DatasetError):
        load_dataset(str(data)).load_test()
    code = run_sweep(
        tmp_path, "--data", str(data), "--num-samples", "4", "--name", "trap", "--wandb-mode", "disabled", "--no-final-test"
    )
    assert code == 0
    assert len(pd.read_csv(tmp_path / "results" / "trap" / "leaderboard.csv")) == 4


def test_population_based_training_mutates_and_restores_from_checkpoints(tmp_path: Path, ray_cluster: None) -> None:
    space = {**TINY_SPACE, "fixed": {**TINY_SPACE["fixed"], "training.epochs": 4}}
    (tmp_path / "tiny_space.yaml").write_text(yaml.safe_dump(space))
    code = main([
        "--storage", str(tmp_path / "results"), "--space", str(tmp_path / "tiny_space.yaml"), "--data", "phantom",
        "--phantom-count", "200", "--image-size", "24", "--num-samples", "4", "--searcher", "random", "--scheduler", "pbt",
        "--name", "pbt", "--wandb-mode", "disabled", "--no-final-test",
    ])
    assert code == 0
    leaderboard = pd.read_csv(tmp_path / "results" / "pbt" / "leaderboard.csv")
    assert len(leaderboard) == 4 and (leaderboard["epochs_run"] == 4).all()
    # Ray writes one line per exploit (a trial cloned from a better one's checkpoint, then mutated).
    exploits = (tmp_path / "results" / "pbt" / "pbt_global.txt").read_text().splitlines()
    assert exploits
    # PBT clones the latest checkpoint of a better trial, so under PBT every epoch is checkpointed.
    for progress_file in (tmp_path / "results" / "pbt").glob("search_trial_*/progress.csv"):
        assert pd.read_csv(progress_file)["checkpoint_dir_name"].notna().all(), progress_file


def test_resume_of_a_finished_sweep_keeps_its_trials(tmp_path: Path, ray_cluster: None) -> None:
    flags = ["--data", "phantom", "--phantom-count", "200", "--image-size", "24", "--num-samples", "2", "--name", "again",
             "--wandb-mode", "disabled", "--no-final-test", "--searcher", "random"]
    assert run_sweep(tmp_path, *flags) == 0
    first = pd.read_csv(tmp_path / "results" / "again" / "leaderboard.csv")
    assert run_sweep(tmp_path, *flags, "--resume") == 0
    second = pd.read_csv(tmp_path / "results" / "again" / "leaderboard.csv")
    assert sorted(first["trial_id"]) == sorted(second["trial_id"])


def test_resume_of_an_unknown_sweep_is_refused(tmp_path: Path, ray_cluster: None, capsys: pytest.CaptureFixture) -> None:
    assert run_sweep(tmp_path, "--name", "never-ran", "--resume", "--wandb-mode", "disabled") == 2
    assert "no sweep to resume" in capsys.readouterr().err


def test_pneumoniamnist_sweep(tmp_path: Path, ray_cluster: None, shared_data: Path) -> None:
    code = run_sweep(
        tmp_path, "--data", str(shared_data / "pneumoniamnist.npz"), "--num-samples", "4", "--name", "pneumonia",
        "--metric", "val_auroc", "--wandb-mode", "disabled", "--finalists", "1",
    )
    assert code == 0
    leaderboard = pd.read_csv(tmp_path / "results" / "pneumonia" / "leaderboard.csv")
    assert len(leaderboard) == 4
    # Two epochs of a small CNN on 28 px chest X-rays separate pneumonia well above chance.
    assert leaderboard.iloc[0]["val_auroc"] > 0.85
    test_metrics = json.loads((tmp_path / "results" / "pneumonia" / "test_metrics.json").read_text())
    assert test_metrics["test_auroc"] > 0.8


def test_a_failed_trial_is_summed_up_by_the_error_it_died_of(ray_cluster: None) -> None:
    import ray

    from generators.errors import GeneratorError
    from search.tuning.results import last_error_line, trial_id_of

    @ray.remote(max_retries=0)
    def trial() -> None:
        raise GeneratorError("openai_images could not make images of class 0 from source image ['train/002']: refused")

    with pytest.raises(ray.exceptions.RayTaskError) as raised:
        ray.get(trial.remote(), timeout=60)
    assert last_error_line(raised.value) == (
        "generators.errors.GeneratorError: openai_images could not make images of class 0 from source image "
        "['train/002']: refused"
    )
    # An actor lost with its node says why in words, under Ray's header lines.
    died = RuntimeError("Failure # 1 (occurred at 2026-11-30_00-54-14)\nThe actor died unexpectedly before finishing this "
                        "task.\n\tclass_name: ImplicitFunc\n\tip: 192.0.2.2")
    assert last_error_line(died) == "The actor died unexpectedly before finishing this task."
    assert trial_id_of("/r/node-lost/search_trial_09b221bf_2_optimizer_lr=0.0030_2026-11-30_00-54-11") == "09b221bf"
