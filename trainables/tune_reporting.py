"""What a trial reports and checkpoints to Tune: when it checkpoints, what a checkpoint holds, and what every report
carries; `tune_trial` is the one function a Tune trial runs."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from ray import tune

from spaces import TrialConfig
from trainables.datasets import SearchData
from trainables.replicas import Replica, save_replicas
from trainables.trial import TrialProgress, TrialSettings, train_classifier

# Reported with every result: the bytes of the checkpoint saved with it.
CHECKPOINT_BYTES = "checkpoint_bytes"


@dataclass
class CheckpointSchedule:
    """Which epochs a trial checkpoints, and which checkpoints hold the training state.

    Every checkpoint holds the best epoch's weights in float16 (unless TrialSettings.keep_weights is False); what
    costs storage is how often they are written. A trial checkpoints a new best epoch only where its scheduler may
    stop it next (`stopping_epochs`) and when it ends (trial_finished: its planned epochs, early stopping, or its
    deadline), so an ASHA-stopped or finished trial keeps its best weights. Every `state_every` epochs (0: never) the
    checkpoint also holds the exact training state (float32 weights and the optimizer's moments, 3.5 times the
    stored weights for Adam) so a retried or resumed trial continues from there; from a checkpoint without it,
    the trial retrains its epochs from the start with the same seeds, which costs compute but no storage.
    PBT (`every_epoch`) clones other trials' latest checkpoints: every epoch, with the training state.

    A trial the time budget stops between these epochs keeps the best weights of its last checkpoint; its
    leaderboard row comes from its reported metrics and the finalists are retrained, so neither depends on it. The
    finalists end themselves before the time budget would (TrialSettings.deadline) and so write their best weights
    once. Saving every best epoch with the training state wrote 4 GB per default sweep, of which 0.19 GB stayed.
    """

    every_epoch: bool
    planned_epochs: int
    stopping_epochs: frozenset[int] = frozenset()
    state_every: int = 0
    written_best_epoch: int | None = None  # the best epoch held by the last checkpoint written
    last_held_state: bool = False

    def holds_state(self, epochs_done: int, finished: bool) -> bool:
        if finished:
            return False
        return self.every_epoch or (self.state_every > 0 and epochs_done % self.state_every == 0)

    def wants(self, epochs_done: int, best_epoch: int | None, finished: bool) -> bool:
        if self.every_epoch or self.holds_state(epochs_done, finished):
            return True
        new_best = best_epoch is not None and best_epoch != self.written_best_epoch
        if finished:
            # A finished trial's last checkpoint must hold its best weights and no training state to carry.
            return new_best or self.last_held_state or self.written_best_epoch is None
        return new_best and epochs_done in self.stopping_epochs

    def wrote(self, best_epoch: int | None, epochs_done: int, held_state: bool) -> None:
        self.written_best_epoch = best_epoch if best_epoch is not None else epochs_done
        self.last_held_state = held_state


def write_checkpoint(
    directory: Path, metrics: dict[str, float], replicas: list[Replica], epochs_done: int, progress: TrialProgress,
    with_training_state: bool, with_weights: bool = True,
) -> int:
    """A trial checkpoint in `directory` (trainables.replicas.save_replicas); returns the bytes it took."""
    save_replicas(
        directory, replicas, epochs_done, metrics, best=progress.best, with_weights=with_weights,
        with_training_state=with_training_state, progress=progress.early_stopping.state(),
    )
    return sum(path.stat().st_size for path in directory.iterdir())


def trial_finished(metrics: dict[str, float], epochs_done: int, planned_epochs: int) -> bool:
    """A trial that has trained its planned epochs, stopped early or reached its deadline will not train again."""
    return epochs_done >= planned_epochs or bool(metrics.get("stopped_early") or metrics.get("stopped_at_deadline"))


def tune_trial(trial: TrialConfig, data: SearchData, settings: TrialSettings) -> None:
    """The Tune side: resume from Tune's checkpoint, report every epoch, checkpoint all repeats on schedule.

    Each checkpoint holds the best epoch's weights (or none, `keep_weights`), so Tune keeps only a trial's latest
    one. Every report says how many bytes its checkpoint took (`checkpoint_bytes`, 0 without one).
    """
    schedule = CheckpointSchedule(
        settings.checkpoint_every_epoch, trial.training.epochs, frozenset(settings.stopping_epochs),
        settings.training_state_every,
    )

    def report_to_tune(metrics: dict[str, float], replicas: list[Replica], epochs_done: int, progress: TrialProgress) -> None:
        best_epoch = progress.best.epoch if progress.best is not None else None
        finished = trial_finished(metrics, epochs_done, trial.training.epochs)
        if not schedule.wants(epochs_done, best_epoch, finished):
            tune.report({**metrics, CHECKPOINT_BYTES: 0.0})
            return
        with_state = schedule.holds_state(epochs_done, finished)
        with tempfile.TemporaryDirectory() as directory:
            written = write_checkpoint(
                Path(directory), metrics, replicas, epochs_done, progress, with_state, with_weights=settings.keep_weights
            )
            tune.report({**metrics, CHECKPOINT_BYTES: float(written)}, checkpoint=tune.Checkpoint.from_directory(directory))
        schedule.wrote(best_epoch, epochs_done, with_state)

    checkpoint = tune.get_checkpoint()
    if checkpoint is None:
        train_classifier(trial, data, settings, on_epoch=report_to_tune)
        return
    with checkpoint.as_directory() as directory:
        train_classifier(trial, data, settings, on_epoch=report_to_tune, resume_from=Path(directory))
