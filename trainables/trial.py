"""What one Tune trial does: train the configured classifier on every repeat seed and report each epoch."""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from generators.augmentation import augment_batch, create_augmentation
from spaces import TrialConfig
from trainables.datasets import SearchData
from trainables.metrics import sanitize_class_name
from trainables.replicas import (
    BestEpoch,
    Replica,
    build_replica,
    image_tensors,
    load_saved_trial,
    normalization_of,
    stored_weights,
)
from trainables.synthetic_mixing import SyntheticSource, filtered_counts
from trainables.training import epoch_batches, evaluate, resolve_device, train_one_epoch
from trainables.trial_cost import TrialCost, synthetic_cost_of


@dataclass(frozen=True)
class TrialSettings:
    """Sweep-wide settings every trial shares."""

    repeats: int = 1
    seed: int = 0
    device: str = "auto"
    synthetic_source: SyntheticSource | None = None
    # The searched metric decides which epochs are checkpointed (see CheckpointSchedule).
    metric: str = "val_balanced_accuracy"
    mode: str = "max"
    # PBT clones other trials' latest checkpoints, so under it every epoch is checkpointed with its training state.
    checkpoint_every_epoch: bool = False
    # Epochs after which the scheduler may stop a trial (ASHA's rungs): a new best epoch is checkpointed there.
    stopping_epochs: tuple[int, ...] = ()
    # Every this many epochs a checkpoint holds the exact training state; 0: never (a resumed trial replays).
    training_state_every: int = 0
    # Checkpoints hold the best epoch's weights (float16). False where nothing reads them: the search and the twins
    # of a sweep whose finalists retrain on fresh seeds (a checkpoint is then a few kilobytes: metrics, progress,
    # synthetic draws); resuming never needed them, since it retrains from the training state or from the start.
    keep_weights: bool = True
    # A wall-clock time (time.time()) by which the trial ends itself when its next epoch would not fit, its last
    # report carrying `stopped_at_deadline` and its best weights: the finalists', whose weights the test split reads
    # and whose time budget would otherwise stop them wherever they are.
    deadline: float | None = None


# The next epoch fits before the deadline if the slowest epoch so far, this much longer, plus DEADLINE_SLACK_S for
# the checkpoint and the report, ends before it.
DEADLINE_EPOCH_FACTOR = 1.5
DEADLINE_SLACK_S = 5.0


def next_epoch_fits(deadline: float | None, slowest_epoch_s: float) -> bool:
    return deadline is None or time.time() + DEADLINE_EPOCH_FACTOR * slowest_epoch_s + DEADLINE_SLACK_S < deadline


def repeat_seeds(settings: TrialSettings) -> list[int]:
    return [settings.seed + repeat for repeat in range(settings.repeats)]


def aggregate_over_repeats(per_repeat: list[dict[str, float]]) -> dict[str, float]:
    """The median of each metric is what the searcher sees; `<name>_std` is the spread over seeds. A metric that is
    NaN for any seed (a diverged loss, a score undefined on the validation split) is NaN, as it is with one seed."""
    aggregated: dict[str, float] = {}
    for name in per_repeat[0]:
        values = [metrics[name] for metrics in per_repeat]
        if any(math.isnan(value) for value in values):
            aggregated[name] = aggregated[f"{name}_std"] = math.nan
            continue
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

    def state(self) -> dict[str, float | int | None]:
        return {"best": self.best, "epochs_without_improvement": self.epochs_without_improvement}

    def restore(self, state: dict[str, float | int | None]) -> None:
        self.best, self.epochs_without_improvement = state["best"], int(state["epochs_without_improvement"])

    def should_stop(self, metrics: dict[str, float]) -> bool:
        value = metrics.get(self.metric)
        if improves(value, self.best, self.mode):
            self.best, self.epochs_without_improvement = value, 0
        else:
            self.epochs_without_improvement += 1
        return bool(self.patience) and self.epochs_without_improvement >= self.patience


@dataclass
class TrialProgress:
    """What a trial knows beyond its replicas: the best epoch so far with its weights, and early stopping."""

    early_stopping: EarlyStopping
    best: BestEpoch | None = None


EpochCallback = Callable[[dict[str, float], list[Replica], int, TrialProgress], None]


def train_classifier(
    trial: TrialConfig,
    data: SearchData,
    settings: TrialSettings,
    *,
    on_epoch: EpochCallback,
    resume_from: Path | None = None,
) -> list[Replica]:
    """Train every repeat seed, interleaved epoch by epoch so a scheduler can stop a configuration on its median.

    `on_epoch(metrics, replicas, epochs_done, progress)` receives the aggregated metrics after each epoch, and the
    best epoch so far with its weights; the last metrics of a trial that early stopping ends carry
    `stopped_early: 1.0`. `resume_from` is a checkpoint folder written by `save_replicas`: training continues
    exactly as if it had not stopped, early stopping's count included (from a checkpoint without the training
    state, by retraining its epochs with the same seeds: exact on CPU, close on GPU); under PBT (`checkpoint_every_epoch`)
    patience counts from the checkpoint's own metrics instead, since after an exploit the cloned model trains
    with new hyperparameters.
    """
    device = resolve_device(settings.device)
    replicas = [build_replica(trial, data, seed, device, settings.synthetic_source) for seed in repeat_seeds(settings)]
    normalization = normalization_of(trial, data)
    augmentation = create_augmentation(trial.augmentation)
    validation_images, validation_labels = image_tensors(data.val)

    progress = TrialProgress(EarlyStopping(settings.metric, settings.mode, trial.training.early_stopping_patience))
    draws = [draw for replica in replicas for draw in replica.synthetic_draws]
    cost = TrialCost.here(synthetic_cost_of(draws, trial.synthetic.settings.image_to_image, settings.synthetic_source))
    start_epoch = replay_until = 0
    if resume_from is not None:
        saved = load_saved_trial(resume_from)
        start_epoch = saved.epoch
        # The checkpoint's metrics carry the training seconds so far: a resumed trial goes on counting.
        cost.resume_from(saved.metrics)
        progress.best = saved.best
        if saved.training is not None:
            for replica, training in zip(replicas, saved.training["replicas"], strict=True):
                replica.load_state(training, trial.optimizer.lr, start_epoch)
        elif start_epoch < trial.training.epochs:
            # The checkpoint holds the best weights but not the training state (CheckpointSchedule): retrain the
            # epochs it had done with their seeds, without reporting them again, and go on from there.
            replay_until, start_epoch = start_epoch, 0
            print(f"Trial resumed from a checkpoint without training state: retraining epochs 1-{replay_until}.")
        elif saved.has_weights:
            for repeat, replica in enumerate(replicas):
                replica.model.load_state_dict(saved.weights(repeat))
        if saved.progress and not settings.checkpoint_every_epoch:
            # Resuming after a failure or an interrupted sweep: patience goes on counting as it would have.
            progress.early_stopping.restore(saved.progress)
        else:
            # After a PBT exploit patience counts from the cloned model with its new hyperparameters.
            progress.early_stopping.start_from(saved.metrics)
        if saved.epoch >= trial.training.epochs:
            # PBT can clone a finished trial into another; report its final state once so the
            # clone ends with a result instead of being perturbed again.
            on_epoch(saved.metrics, replicas, saved.epoch, progress)

    def augment(images: torch.Tensor) -> torch.Tensor:
        return augment_batch(augmentation, images)

    slowest_epoch_s = 0.0
    for epoch in range(start_epoch, trial.training.epochs):
        epoch_started = time.perf_counter()
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
            if epoch < replay_until:
                continue
            metrics = evaluate(
                replica.model, validation_images, validation_labels, normalization=normalization, device=device,
                num_classes=data.num_classes, ordinal=data.ordinal, class_names=data.class_names,
                minority_class=data.minority_class,
            )
            replica.model.train()
            per_repeat.append({"train_loss": train_loss, **{f"val_{name}": value for name, value in metrics.items()}})
        if epoch < replay_until:
            # Retrained after a resume: its seconds are in the checkpoint's count already.
            continue
        epoch_s = time.perf_counter() - epoch_started
        cost.train_seconds += epoch_s
        slowest_epoch_s = max(slowest_epoch_s, epoch_s)
        reported = {
            **aggregate_over_repeats(per_repeat), **per_repeat_values(per_repeat, settings.metric),
            **subset_counts(replicas[0], data), **cost.figures(), "epoch": epoch + 1, "epochs_planned": trial.training.epochs,
        }
        best_value = progress.best.metrics.get(settings.metric) if progress.best is not None else None
        if improves(reported.get(settings.metric), best_value, settings.mode):
            progress.best = BestEpoch(epoch + 1, reported, stored_weights(replicas) if settings.keep_weights else None)
        more_epochs = epoch + 1 < trial.training.epochs
        ending = {}
        if progress.early_stopping.should_stop(reported) and more_epochs:
            ending = {"stopped_early": 1.0}
        elif more_epochs and not next_epoch_fits(settings.deadline, slowest_epoch_s):
            ending = {"stopped_at_deadline": 1.0}
        on_epoch({**reported, **ending}, replicas, epoch + 1, progress)
        if ending:
            break
    return replicas
