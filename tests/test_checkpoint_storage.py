"""What a trial's checkpoints hold: the best weights for the final evaluation (unless nothing will read them),
optimizer state only while the trial may still train, and enough to resume exactly as if it had never stopped."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from ray import tune

from search.tuning.storage_usage import measure_storage, stored_bytes
from spaces import TrialConfig
from trainables.checkpoint_evaluation import evaluate_checkpoint
from trainables.datasets import SearchData, load_dataset
from trainables.replicas import (
    CHECKPOINT_FILE,
    TRAINING_STATE_FILE,
    MissingWeightsError,
    drop_training_state,
    load_saved_trial,
    stored_weights,
)
from trainables.trial import DEADLINE_SLACK_S, TrialProgress, TrialSettings, train_classifier
from trainables.trial_cost import COST_COLUMNS, COST_TRAIN_SECONDS
from trainables.tune_reporting import trial_finished, write_checkpoint

EPOCHS = 4


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def phantom() -> SearchData:
    return load_dataset("phantom", image_size=16, phantom_count=200).for_search()


def trial_config(**training: object) -> TrialConfig:
    return TrialConfig.from_mapping({
        "model": {"backbone": "basic_cnn"},
        "optimizer": {"name": "adam", "lr": 0.003, "schedule": "cosine"},
        "augmentation": {"policy": "hflip"},
        "training": {"epochs": EPOCHS, "batch_size": 32, **training},
    })


class Recorder:
    """What tune_trial does each epoch, minus Tune: every report, and a checkpoint folder for every epoch."""

    def __init__(self, folder: Path, planned_epochs: int, with_training_state: bool = True, with_weights: bool = True) -> None:
        self.folder, self.planned_epochs, self.with_training_state = folder, planned_epochs, with_training_state
        self.with_weights = with_weights
        self.reports: list[dict[str, float]] = []
        self.weights: dict[int, list[dict[str, torch.Tensor]]] = {}
        self.stored: dict[int, list[dict[str, torch.Tensor]]] = {}

    def __call__(self, metrics: dict[str, float], replicas: list, epochs_done: int, progress: TrialProgress) -> None:
        self.reports.append(metrics)
        self.weights[epochs_done] = [{k: v.clone() for k, v in replica.model.state_dict().items()} for replica in replicas]
        self.stored[epochs_done] = stored_weights(replicas)
        directory = self.checkpoint(epochs_done)
        directory.mkdir(parents=True)
        finished = trial_finished(metrics, epochs_done, self.planned_epochs)
        write_checkpoint(
            directory, metrics, replicas, epochs_done, progress, self.with_training_state and not finished,
            with_weights=self.with_weights,
        )

    def checkpoint(self, epochs_done: int) -> Path:
        return self.folder / f"epoch_{epochs_done}"


def train(
    trial: TrialConfig, data: SearchData, settings: TrialSettings, folder: Path, resume_from: Path | None = None,
    with_training_state: bool = True,
) -> Recorder:
    recorder = Recorder(folder, trial.training.epochs, with_training_state, settings.keep_weights)
    train_classifier(trial, data, settings, on_epoch=recorder, resume_from=resume_from)
    return recorder


def without_cost(reports: list[dict[str, float]]) -> list[dict[str, float]]:
    """Reports without their cost, which is wall time and so differs between two runs of the same training."""
    return [{key: value for key, value in report.items() if key not in COST_COLUMNS} for report in reports]


def assert_same_weights(left: list[dict[str, torch.Tensor]], right: list[dict[str, torch.Tensor]]) -> None:
    for left_state, right_state in zip(left, right, strict=True):
        assert left_state.keys() == right_state.keys()
        for name in left_state:
            assert torch.equal(left_state[name], right_state[name]), name


# Searching train_loss for its maximum keeps epoch 1 the best while training goes on, so mid-trial checkpoints
# hold weights other than the best; the validation metric improves at epochs of its own choosing.
SETTINGS = {
    "best epoch behind": TrialSettings(repeats=2, metric="train_loss", mode="max"),
    "validation metric": TrialSettings(repeats=2),
}


@pytest.mark.parametrize("settings", SETTINGS.values(), ids=SETTINGS.keys())
def test_a_trial_resumed_from_any_mid_trial_checkpoint_ends_as_the_uninterrupted_one(
    phantom: SearchData, settings: TrialSettings, tmp_path: Path
) -> None:
    trial = trial_config()
    whole = train(trial, phantom, settings, tmp_path / "whole")
    for stopped_at in range(1, EPOCHS):
        checkpoint = whole.checkpoint(stopped_at)
        assert (checkpoint / TRAINING_STATE_FILE).exists()
        resumed = train(trial, phantom, settings, tmp_path / f"resumed_{stopped_at}", resume_from=checkpoint)
        assert without_cost(resumed.reports) == without_cost(whole.reports[stopped_at:])
        # The training seconds go on from the checkpoint's count.
        counted = whole.reports[stopped_at - 1][COST_TRAIN_SECONDS]
        assert [report[COST_TRAIN_SECONDS] > counted for report in resumed.reports] == [True] * (EPOCHS - stopped_at)
        assert_same_weights(resumed.weights[EPOCHS], whole.weights[EPOCHS])
        final = load_saved_trial(resumed.checkpoint(EPOCHS))
        assert final.best_epoch == load_saved_trial(whole.checkpoint(EPOCHS)).best_epoch
        assert_same_weights(final.best.weights, load_saved_trial(whole.checkpoint(EPOCHS)).best.weights)
    if settings.metric == "train_loss":
        # The best epoch stays behind: the mid-trial checkpoints carried the current weights beside the best.
        assert load_saved_trial(whole.checkpoint(EPOCHS)).best_epoch == 1
        assert_same_weights(load_saved_trial(whole.checkpoint(EPOCHS)).best.weights, whole.stored[1])


def test_early_stopping_resumes_counting_where_it_stopped(phantom: SearchData, tmp_path: Path) -> None:
    trial = trial_config(early_stopping_patience=2)
    settings = TrialSettings(metric="train_loss", mode="max")
    whole = train(trial, phantom, settings, tmp_path / "whole")
    assert [report["epoch"] for report in whole.reports] == [1, 2, 3] and whole.reports[-1]["stopped_early"] == 1.0
    resumed = train(trial, phantom, settings, tmp_path / "resumed", resume_from=whole.checkpoint(2))
    assert without_cost(resumed.reports) == without_cost(whole.reports[2:])


def test_a_finished_trial_keeps_its_best_weights_and_no_optimizer_state(phantom: SearchData, tmp_path: Path) -> None:
    trial = trial_config()
    settings = TrialSettings(repeats=2)
    whole = train(trial, phantom, settings, tmp_path / "whole")
    final = whole.checkpoint(EPOCHS)
    assert sorted(path.name for path in final.iterdir()) == [CHECKPOINT_FILE]
    saved = load_saved_trial(final)
    assert saved.training is None and saved.epoch == EPOCHS
    best_report = max(whole.reports, key=lambda report: report["val_balanced_accuracy"])
    assert saved.best_epoch == best_report["epoch"] and saved.best_metrics == best_report
    assert not any("state" in key or "exp_avg" in key for state in saved.replica_states for key in state)
    # The best epoch's weights, float32 ones in float16: within float16's rounding of the trained ones.
    assert_same_weights(saved.best.weights, whole.stored[saved.best_epoch])
    for stored, trained in zip(saved.best.weights, whole.weights[saved.best_epoch], strict=True):
        assert {name for name, tensor in stored.items() if tensor.dtype == torch.float16} == {
            name for name, tensor in trained.items() if tensor.dtype == torch.float32
        }
        for name, tensor in trained.items():
            torch.testing.assert_close(stored[name].to(tensor.dtype), tensor, rtol=2**-11, atol=1e-7)
    # The final evaluation's reading of the checkpoint gives the best epoch's validation metrics.
    metrics = evaluate_checkpoint(final, trial, phantom, phantom.val, device="cpu")
    assert metrics["balanced_accuracy"] == pytest.approx(best_report["val_balanced_accuracy"])
    assert metrics["loss"] == pytest.approx(best_report["val_loss"], rel=1e-3)
    # A running trial's checkpoint carries the float32 weights and Adam's two moments per weight besides.
    running = sum(path.stat().st_size for path in whole.checkpoint(1).iterdir())
    assert sum(path.stat().st_size for path in final.iterdir()) < running / 6

    # PBT may clone a finished trial: it reports the final metrics once and trains no further.
    clone = train(trial, phantom, settings, tmp_path / "clone", resume_from=final)
    assert clone.reports == [whole.reports[-1]]


@pytest.mark.parametrize("settings", SETTINGS.values(), ids=SETTINGS.keys())
def test_a_trial_resumed_from_a_checkpoint_without_training_state_retrains_to_the_same_end(
    phantom: SearchData, settings: TrialSettings, tmp_path: Path
) -> None:
    """The default checkpoints hold the best weights only: a retried or resumed trial retrains the epochs its
    checkpoint had done with their seeds, reports none of them again, and ends where the uninterrupted trial did."""
    trial = trial_config(early_stopping_patience=3)
    whole = train(trial, phantom, settings, tmp_path / "whole", with_training_state=False)
    assert not any((whole.checkpoint(epoch) / TRAINING_STATE_FILE).exists() for epoch in whole.weights)
    last = max(whole.weights)
    for stopped_at in (1, last - 1):
        resumed = train(trial, phantom, settings, tmp_path / f"resumed_{stopped_at}", resume_from=whole.checkpoint(stopped_at))
        assert without_cost(resumed.reports) == without_cost(whole.reports[stopped_at:])
        assert_same_weights(resumed.weights[last], whole.weights[last])
        assert load_saved_trial(resumed.checkpoint(last)).best_epoch == load_saved_trial(whole.checkpoint(last)).best_epoch
    # A checkpoint whose training state was dropped after the sweep (storage_usage.keep_only_best_weights) too.
    dropped = tune.Checkpoint.from_directory(str(train(trial, phantom, settings, tmp_path / "again").checkpoint(2)))
    assert drop_training_state(dropped) and not drop_training_state(dropped)
    resumed = train(trial, phantom, settings, tmp_path / "after_drop", resume_from=Path(dropped.path))
    assert without_cost(resumed.reports) == without_cost(whole.reports[2:])


def checkpoint_bytes(directory: Path) -> int:
    return sum(path.stat().st_size for path in directory.iterdir())


def test_a_trial_that_keeps_no_weights_checkpoints_kilobytes_and_still_resumes_exactly(
    phantom: SearchData, tmp_path: Path
) -> None:
    """The search of a sweep whose finalists retrain keeps no weights: its checkpoints hold metrics, progress and
    draws, a resumed trial retrains to the same end, and a reader of weights is told why there are none."""
    trial = trial_config(early_stopping_patience=3)
    settings = TrialSettings(repeats=2, keep_weights=False)
    weightless = train(trial, phantom, settings, tmp_path / "weightless", with_training_state=False)
    weighted = train(trial, phantom, TrialSettings(repeats=2), tmp_path / "weighted", with_training_state=False)
    assert without_cost(weightless.reports) == without_cost(weighted.reports)
    last = max(weightless.weights)
    for epoch in weightless.weights:
        assert checkpoint_bytes(weightless.checkpoint(epoch)) * 10 < checkpoint_bytes(weighted.checkpoint(epoch))
    saved = load_saved_trial(weightless.checkpoint(last))
    assert not saved.has_weights and saved.best.weights is None
    assert saved.best_epoch == load_saved_trial(weighted.checkpoint(last)).best_epoch
    with pytest.raises(MissingWeightsError, match=f"{weightless.checkpoint(last)} holds no model weights.*finalists"):
        evaluate_checkpoint(weightless.checkpoint(last), trial, phantom, phantom.val, device="cpu")

    resumed = train(trial, phantom, settings, tmp_path / "resumed", resume_from=weightless.checkpoint(2))
    assert without_cost(resumed.reports) == without_cost(weightless.reports[2:])
    assert_same_weights(resumed.weights[last], weighted.weights[last])


def test_a_trial_with_a_deadline_ends_itself_before_it_with_its_best_weights(phantom: SearchData, tmp_path: Path) -> None:
    """A finalist ends itself when its next epoch would not fit before the time budget's end, so its best weights
    are checkpointed once, at its end, and not lost to the budget stopping it mid-epoch."""
    trial = trial_config()
    # No epoch fits after the first: its duration and the slack for the checkpoint pass the deadline.
    short = train(trial, phantom, TrialSettings(deadline=time.time() + DEADLINE_SLACK_S), tmp_path / "short")
    assert [report["epoch"] for report in short.reports] == [1] and short.reports[-1]["stopped_at_deadline"] == 1.0
    assert trial_finished(short.reports[-1], 1, EPOCHS)
    assert sorted(path.name for path in short.checkpoint(1).iterdir()) == [CHECKPOINT_FILE]
    metrics = evaluate_checkpoint(short.checkpoint(1), trial, phantom, phantom.val, device="cpu")
    assert metrics["balanced_accuracy"] == pytest.approx(short.reports[0]["val_balanced_accuracy"])
    # A deadline an hour away changes nothing.
    roomy = train(trial, phantom, TrialSettings(deadline=time.time() + 3600), tmp_path / "roomy")
    assert len(roomy.reports) == EPOCHS and not any("stopped_at_deadline" in report for report in roomy.reports)


def test_stored_bytes_counts_every_file_below_a_folder(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "one.bin").write_bytes(b"x" * 10)
    (tmp_path / "a" / "b" / "two.bin").write_bytes(b"y" * 32)
    assert stored_bytes(str(tmp_path)) == 42
    assert stored_bytes(str(tmp_path / "missing")) == 0


def test_a_storage_that_cannot_be_listed_costs_the_figures_not_the_report(tmp_path: Path) -> None:
    usage = measure_storage([], "unknown-scheme://bucket/sweep", None)
    assert (usage.checkpoint_bytes_written, usage.experiment_bytes, usage.pool_bytes) == (0, None, None)
    assert "could not be listed" in usage.describe() and "unknown-scheme" in usage.describe()
    assert measure_storage([], str(tmp_path), None).describe().endswith("sweep 0.0 MB, synthetic pool 0.0 MB")
