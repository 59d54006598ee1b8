"""What one Tune trial does: train the configured classifier on every repeat seed and report each epoch."""

from __future__ import annotations

import math
import statistics
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from ray import tune

from generators.augmentation import augment_batch, create_augmentation
from spaces import TrialConfig
from trainables.datasets import SearchData
from trainables.metrics import sanitize_class_name
from trainables.replicas import Replica, build_replica, image_tensors, load_saved_trial, normalization_of, save_replicas
from trainables.synthetic import SyntheticSource, filtered_counts
from trainables.training import epoch_batches, evaluate, resolve_device, train_one_epoch


@dataclass(frozen=True)
class TrialSettings:
    """Sweep-wide settings every trial shares."""

    repeats: int = 1
    seed: int = 0
    device: str = "auto"
    synthetic_source: SyntheticSource | None = None
    # The searched metric decides which epochs are checkpointed (see tune_trial).
    metric: str = "val_balanced_accuracy"
    mode: str = "max"
    checkpoint_every_epoch: bool = False


def repeat_seeds(settings: TrialSettings) -> list[int]:
    return [settings.seed + repeat for repeat in range(settings.repeats)]


def aggregate_over_repeats(per_repeat: list[dict[str, float]]) -> dict[str, float]:
    """The median of each metric is what the searcher sees; `<name>_std` is the spread over seeds."""
    aggregated: dict[str, float] = {}
    for name in per_repeat[0]:
        values = [metrics[name] for metrics in per_repeat]
        aggregated[name] = float(statistics.median(values))
        aggregated[f"{name}_std"] = float(statistics.pstdev(values)) if len(values) > 1 else 0.0
    return aggregated


def per_repeat_values(per_repeat: list[dict[str, float]], name: str) -> dict[str, float]:
    """`<name>_repeat_<r>`: the searched metric of each seed, which paired comparisons across trials need."""
    return {f"{name}_repeat_{repeat}": metrics[name] for repeat, metrics in enumerate(per_repeat) if name in metrics}


def subset_counts(replica: Replica, data: SearchData) -> dict[str, float]:
    """Real and synthetic training images per class, for the leaderboard."""
    real = torch.bincount(replica.labels[~replica.is_synthetic], minlength=data.num_classes).tolist()
    synthetic = torch.bincount(replica.labels[replica.is_synthetic], minlength=data.num_classes).tolist()
    # Drawn synthetic images that `synthetic.filter` dropped (0 without a filter).
    filtered = filtered_counts(replica.synthetic_draws, data.num_classes).tolist()
    counts = {
        "real_images": float(sum(real)),
        "synthetic_images": float(sum(synthetic)),
        "synthetic_filtered": float(sum(filtered)),
        "real_fraction_of_train": sum(real) / len(data.train),
    }
    for name, real_count, synthetic_count, filtered_count in zip(data.class_names, real, synthetic, filtered):
        counts[f"real_count_{sanitize_class_name(name)}"] = float(real_count)
        counts[f"synthetic_count_{sanitize_class_name(name)}"] = float(synthetic_count)
        counts[f"synthetic_filtered_{sanitize_class_name(name)}"] = float(filtered_count)
    return counts


EpochCallback = Callable[[dict[str, float], list[Replica], int], None]


def improves(value: float | None, best: float | None, mode: str) -> bool:
    """A value beats the best so far (any value beats none; NaN and a missing value never do)."""
    if value is None or math.isnan(value):
        return False
    return best is None or (value > best if mode == "max" else value < best)


@dataclass
class EarlyStopping:
    """Stops a trial once its searched metric (the median over repeats, as reported) has not improved for
    `patience` epochs; None or 0 never stops. The best epoch was checkpointed when it happened (CheckpointSchedule),
    so the final evaluation and the leaderboard still see it."""

    metric: str
    mode: str
    patience: int | None
    best: float | None = None
    epochs_without_improvement: int = 0

    def start_from(self, metrics: dict[str, float]) -> None:
        value = metrics.get(self.metric)
        self.best = value if improves(value, None, self.mode) else None
        self.epochs_without_improvement = 0

    def should_stop(self, metrics: dict[str, float]) -> bool:
        value = metrics.get(self.metric)
        if improves(value, self.best, self.mode):
            self.best, self.epochs_without_improvement = value, 0
        else:
            self.epochs_without_improvement += 1
        return bool(self.patience) and self.epochs_without_improvement >= self.patience


def train_classifier(
    trial: TrialConfig,
    data: SearchData,
    settings: TrialSettings,
    *,
    on_epoch: EpochCallback,
    resume_from: Path | None = None,
) -> list[Replica]:
    """Train every repeat seed, interleaved epoch by epoch so a scheduler can stop a configuration on its median.

    `on_epoch(metrics, replicas, epochs_done)` receives the aggregated metrics after each epoch; the last ones of
    a trial that early stopping ends carry `stopped_early: 1.0`. `resume_from` is a checkpoint folder written by
    `save_replicas`; patience then counts from the checkpoint's own metrics (after a PBT exploit: from the cloned
    model with its new hyperparameters).
    """
    device = resolve_device(settings.device)
    replicas = [build_replica(trial, data, seed, device, settings.synthetic_source) for seed in repeat_seeds(settings)]
    normalization = normalization_of(trial, data)
    augmentation = create_augmentation(trial.augmentation)
    validation_images, validation_labels = image_tensors(data.val)

    early_stopping = EarlyStopping(settings.metric, settings.mode, trial.training.early_stopping_patience)
    start_epoch = 0
    if resume_from is not None:
        saved = load_saved_trial(resume_from)
        start_epoch = saved.epoch
        early_stopping.start_from(saved.metrics)
        for replica, state in zip(replicas, saved.replica_states, strict=True):
            replica.load_state(state, trial.optimizer.lr, start_epoch)
        if start_epoch >= trial.training.epochs:
            # PBT can clone a finished trial into another; report its final state once so the
            # clone ends with a result instead of being perturbed again.
            on_epoch(saved.metrics, replicas, start_epoch)

    def augment(images: torch.Tensor) -> torch.Tensor:
        return augment_batch(augmentation, images)

    for epoch in range(start_epoch, trial.training.epochs):
        per_repeat: list[dict[str, float]] = []
        for replica in replicas:
            # Seeded per (seed, epoch) so a resumed or PBT-restored trial draws what it would have drawn.
            torch.manual_seed(replica.seed * 1_000_003 + epoch)
            batch_generator = torch.Generator().manual_seed(replica.seed * 1_000_003 + epoch)
            batches = epoch_batches(
                replica.labels, batch_size=trial.training.batch_size,
                imbalance=trial.training.imbalance, generator=batch_generator,
            )
            train_loss = train_one_epoch(
                replica.model, replica.images, replica.labels, batches=batches, optimizer=replica.optimizer,
                loss_function=replica.loss_function, normalization=normalization, device=device,
                augment=augment if augmentation is not None else None, grad_scaler=replica.grad_scaler,
            )
            replica.scheduler.step()
            metrics = evaluate(
                replica.model, validation_images, validation_labels, normalization=normalization, device=device,
                num_classes=data.num_classes, ordinal=data.ordinal, class_names=data.class_names,
                minority_class=data.minority_class,
            )
            replica.model.train()
            per_repeat.append({"train_loss": train_loss, **{f"val_{name}": value for name, value in metrics.items()}})
        reported = {
            **aggregate_over_repeats(per_repeat), **per_repeat_values(per_repeat, settings.metric),
            **subset_counts(replicas[0], data), "epoch": epoch + 1, "epochs_planned": trial.training.epochs,
        }
        stop = early_stopping.should_stop(reported) and epoch + 1 < trial.training.epochs
        on_epoch({**reported, "stopped_early": 1.0} if stop else reported, replicas, epoch + 1)
        if stop:
            break
    return replicas


@dataclass
class CheckpointSchedule:
    """Which epochs a trial checkpoints: those where the searched metric improves, and the last planned one;
    every epoch for PBT, which clones other trials' latest checkpoints.

    Saving every epoch wrote every repeat's weights each epoch only for Tune to keep two, and made Tune force an
    experiment snapshot whenever a trial had checkpointed twice since the last one (dozens of warnings per CPU
    sweep); the best epoch, which the final test evaluation reads, is saved either way.
    """

    metric: str
    mode: str
    every_epoch: bool
    planned_epochs: int
    best: float | None = None

    def wants(self, metrics: dict[str, float], epochs_done: int) -> bool:
        value = metrics.get(self.metric)
        improved = improves(value, self.best, self.mode)
        if improved:
            self.best = value
        return improved or self.every_epoch or epochs_done >= self.planned_epochs


def tune_trial(trial: TrialConfig, data: SearchData, settings: TrialSettings) -> None:
    """The Tune side: resume from Tune's checkpoint, report every epoch, checkpoint all repeats on schedule."""
    schedule = CheckpointSchedule(settings.metric, settings.mode, settings.checkpoint_every_epoch, trial.training.epochs)

    def report_to_tune(metrics: dict[str, float], replicas: list[Replica], epochs_done: int) -> None:
        if not schedule.wants(metrics, epochs_done):
            tune.report(metrics)
            return
        with tempfile.TemporaryDirectory() as directory:
            save_replicas(Path(directory), replicas, epochs_done, metrics)
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(directory))

    checkpoint = tune.get_checkpoint()
    if checkpoint is None:
        train_classifier(trial, data, settings, on_epoch=report_to_tune)
        return
    with checkpoint.as_directory() as directory:
        train_classifier(trial, data, settings, on_epoch=report_to_tune, resume_from=Path(directory))
