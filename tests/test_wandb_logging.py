"""W&B offline logging through a real local Ray sweep: the sweep ends promptly and every run's files are complete."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from search.run import main

pytestmark = pytest.mark.slow

PLANNED_EPOCHS = 10_000

# Far more epochs than the time budget allows (an epoch takes about 0.05 s on a 2-core CPU), and no
# early-stopping scheduler, so the budget is what stops every trial while it is still training: the path
# on which Ray never calls on_trial_complete.
LONG_TRIALS_SPACE = {
    "fixed": {"training.epochs": PLANNED_EPOCHS, "training.batch_size": 32, "model.backbone": "basic_cnn"},
    "parameters": {
        "augmentation.policy": {"choice": ["none", "hflip"]},
        "optimizer.lr": {"loguniform": [0.0005, 0.005]},
    },
}


# Ray's own callback waits 1800 s for logging actors that never got END; a finished sweep here takes about a minute.
# The thread method, because the hang is inside ray.wait, which SIGALRM does not interrupt; it ends the
# whole pytest process, which is what a hang deserves.
@pytest.mark.timeout(180, method="thread")
def test_sweep_stopped_by_time_budget_ends_and_finishes_every_offline_run(tmp_path: Path, ray_cluster: None) -> None:
    space_path = tmp_path / "long_trials.yaml"
    space_path.write_text(yaml.safe_dump(LONG_TRIALS_SPACE))
    code = main([
        "--storage", str(tmp_path / "results"), "--space", str(space_path), "--name", "budget",
        "--data", "phantom", "--phantom-count", "300", "--image-size", "16",
        "--num-samples", "2", "--max-concurrent", "2", "--scheduler", "none", "--searcher", "random",
        "--time-budget-s", "45", "--wandb-mode", "offline", "--no-final-test",
    ])
    assert code == 0
    report = tmp_path / "results" / "budget"
    leaderboard = pd.read_csv(report / "leaderboard.csv")
    assert len(leaderboard) == 2
    # Each trial reported some epochs and was stopped by the budget long before its planned epochs.
    assert ((leaderboard["epochs_run"] >= 1) & (leaderboard["epochs_run"] < PLANNED_EPOCHS)).all()

    # One run per trial, written after the sweep from Tune's results, and the summary run.
    runs = sorted((report / "wandb").glob("offline-run-*"))
    assert len(runs) == 2 + 1
    for run in runs:
        assert list(run.glob("*.wandb")), run
        # wandb-core writes this once the run's exit record is on disk and its stream is closed: the run
        # finished rather than being killed, so `wandb sync` uploads it whole.
        assert "stream: all finished" in (run / "logs" / "debug-internal.log").read_text(), run
