"""A real local Ray sweep searching classifier fine-tuning modes, a multi-layer head, the lr schedule and early stopping.

Apart from tests/test_fine_tuning.py because the pre-Ray tests (test_run_validation) check that Ray is not yet running,
and the session's Ray instance starts with the first sweep test.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from search.run import main
from spaces import SearchSpace
from trainables.backbones import create_backbone
from trainables.checkpoint_evaluation import evaluate_checkpoint
from trainables.datasets import load_dataset
from trainables.replicas import load_saved_trial

pytestmark = pytest.mark.slow

IMAGE_SIZE = 16


def test_a_sweep_searches_fine_tuning_modes_heads_schedules_and_early_stopping(
    tmp_path: Path, ray_cluster: None
) -> None:
    weights_file = tmp_path / "basic_cnn.pth"
    torch.manual_seed(0)
    torch.save(create_backbone("basic_cnn", num_classes=4, in_channels=1, image_size=IMAGE_SIZE).state_dict(), weights_file)
    space = {
        "fixed": {
            "model.backbone": "basic_cnn", "model.pretrained_path": str(weights_file), "training.epochs": 5,
            "training.batch_size": 16, "training.early_stopping_patience": 1, "optimizer.schedule": "cosine",
            "optimizer.warmup_epochs": 1, "optimizer.lr": 0.01,
        },
        "parameters": {
            "model.finetune": {"choice": ["full", "frozen", "lora"]},
            "model.head_hidden_layers": {"choice": [[16]]},
        },
    }
    (tmp_path / "space.yaml").write_text(yaml.safe_dump(space))
    code = main([
        "--storage", str(tmp_path / "results"), "--space", str(tmp_path / "space.yaml"), "--data", "phantom",
        "--phantom-count", "200", "--image-size", str(IMAGE_SIZE), "--searcher", "grid", "--scheduler", "none",
        "--name", "modes", "--wandb-mode", "disabled", "--max-concurrent", "2", "--metric", "val_auroc", "--finalists", "3",
    ])
    assert code == 0
    report = tmp_path / "results" / "modes"
    leaderboard = pd.read_csv(report / "leaderboard.csv")
    assert sorted(leaderboard["model.finetune"]) == ["frozen", "full", "lora"] and set(leaderboard["status"]) == {"ok"}
    assert "stopped_early" not in leaderboard
    data = load_dataset("phantom", image_size=IMAGE_SIZE, phantom_count=200).for_search()
    for trial_folder in report.glob("search_trial_*"):
        progress = pd.read_csv(trial_folder / "progress.csv")
        scores = progress["val_auroc"].tolist()
        # Training ran until patience (1) epochs passed without improvement, or all 5 epochs.
        best_so_far = pd.Series(scores).cummax().shift(fill_value=-1.0)
        stalled = [epoch for epoch, (score, best) in enumerate(zip(scores, best_so_far), start=1) if score <= best]
        assert len(scores) == (stalled[0] if stalled else 5), trial_folder
        # Tune's progress.csv keeps the first result's columns; result.json has every reported key.
        last = json.loads((trial_folder / "result.json").read_text().splitlines()[-1])
        assert last.get("stopped_early") == (1.0 if len(scores) < 5 else None)
        # The leaderboard row is the trial's best epoch, and the one checkpoint Tune kept, written when the trial
        # ended (no scheduler stops it earlier), holds that epoch, without weights: the finalists retrain.
        row = leaderboard[leaderboard["trial_id"] == progress["trial_id"].iloc[0]].iloc[0]
        assert row["val_auroc"] == max(scores) and row["epoch"] == scores.index(max(scores)) + 1
        assert progress["checkpoint_dir_name"].notna().tolist() == [False] * (len(scores) - 1) + [True]
        saved = load_saved_trial(trial_folder / progress["checkpoint_dir_name"].iloc[-1])
        assert saved.best_epoch == row["epoch"] and not saved.has_weights
    # Every mode is a finalist (three seeds each): its one checkpoint, written when it ended, holds the weights
    # (LoRA's adapters, a frozen backbone's head) of its best epoch, which evaluate to what it reported.
    finalists = sorted((report / "finalists").glob("search_trial_*"))
    assert len(finalists) == 3
    for trial_folder in finalists:
        progress = pd.read_csv(trial_folder / "progress.csv")
        assert progress["checkpoint_dir_name"].notna().tolist() == [False] * (len(progress) - 1) + [True]
        config = SearchSpace.model_validate(space).resolve(json.loads((trial_folder / "params.json").read_text()))
        checkpoint = trial_folder / progress["checkpoint_dir_name"].iloc[-1]
        metrics = evaluate_checkpoint(checkpoint, config, data, data.val, device="cpu")
        assert metrics["auroc"] == pytest.approx(progress["val_auroc"].max())
    tested = json.loads((report / "test_metrics.json").read_text())
    assert tested["config"]["model.finetune"] in {"full", "frozen", "lora"}
