"""The models of one trial, one per repeat seed, each with its own real subset, optimizer and RNG state."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.fs
import torch
from ray.tune import Checkpoint
from torch import nn

from spaces import TrialConfig
from trainables.backbones import input_normalization
from trainables.datasets import ImageSet, SearchData
from trainables.fine_tuning import create_classifier, trainable_parameters
from trainables.real_subset import real_subset_indices
from trainables.synthetic_mixing import SyntheticDraw, SyntheticSource, fetch_synthetic_images, mix_real_and_synthetic
from trainables.training import (
    LearningRateFactor,
    class_weights,
    create_loss,
    create_lr_scheduler,
    create_optimizer,
    mixed_precision_dtype,
)

CHECKPOINT_FILE = "replicas.pt"
TRAINING_STATE_FILE = "training_state.pt"


@dataclass
class Replica:
    """One seed's model and everything needed to continue training it."""

    seed: int
    real_indices: np.ndarray
    images: torch.Tensor  # uint8 [N, C, H, W], CPU: the trial's real and synthetic training images for this seed
    labels: torch.Tensor  # int64 [N]
    is_synthetic: torch.Tensor  # bool [N]
    synthetic_draws: tuple[SyntheticDraw, ...]  # which pool images the synthetic samples are
    model: nn.Module
    optimizer: torch.optim.Optimizer
    # Stepped after every epoch; rebuilt rather than saved (see create_lr_scheduler).
    scheduler: torch.optim.lr_scheduler.LambdaLR
    loss_function: nn.Module
    grad_scaler: torch.amp.GradScaler | None

    def evaluation_state(self, weights: dict[str, torch.Tensor] | None) -> dict[str, Any]:
        """What evaluating this seed's model needs: the given weights (None: a checkpoint kept without them) and the
        synthetic images it trained on."""
        return {
            "seed": self.seed,
            # Which synthetic images this model trained on, with its weights: the trial's provenance (DESIGN step 5).
            "synthetic_draws": [dataclasses.asdict(draw) for draw in self.synthetic_draws],
            "model": weights,
        }

    def training_state(self) -> dict[str, Any]:
        """What continuing to train this seed needs: the exact current weights, the optimizer's state (Adam's two
        moments are twice the weights) and the loss scaler's."""
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "grad_scaler": self.grad_scaler.state_dict() if self.grad_scaler is not None else None,
        }

    def load_state(self, training: dict[str, Any], learning_rate: float, epochs_done: int) -> None:
        """Continue from a `training_state` saved after `epochs_done` epochs."""
        self.model.load_state_dict(training["model"])
        self.optimizer.load_state_dict(training["optimizer"])
        # A restored optimizer brings back its old learning rate; PBT may have just mutated it. The schedule
        # starts again from the configured rate at the epoch reached.
        self.scheduler = create_lr_scheduler(
            self.optimizer, self.scheduler.lr_lambdas[0], base_lr=learning_rate, epochs_done=epochs_done
        )
        if self.grad_scaler is not None and training.get("grad_scaler") is not None:
            self.grad_scaler.load_state_dict(training["grad_scaler"])


def image_tensors(images: ImageSet) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 images and int64 labels as tensors; arrays from Ray's object store are read-only, so copy those."""
    pixels = images.images if images.images.flags.writeable else images.images.copy()
    return torch.from_numpy(np.ascontiguousarray(pixels)), torch.from_numpy(images.labels.astype(np.int64))


def fractions_by_class_index(real_fraction: float | dict[str, float], data: SearchData) -> float | dict[int, float]:
    """Per-class fractions are keyed by class name or index in configs; subsets need indices."""
    if not isinstance(real_fraction, dict):
        return float(real_fraction)
    return {data.class_index(key): float(fraction) for key, fraction in real_fraction.items()}


def build_model(trial: TrialConfig, data: SearchData) -> nn.Module:
    return create_classifier(trial.model, num_classes=data.num_classes, in_channels=data.channels, image_size=data.image_size)


def normalization_of(trial: TrialConfig, data: SearchData) -> tuple[tuple[float, ...], tuple[float, ...]]:
    # Weights from a local file are pretrained weights too, with their own expected input statistics.
    pretrained = trial.model.pretrained or trial.model.pretrained_path is not None
    return input_normalization(trial.model.backbone, data.channels, pretrained)


def build_replica(
    trial: TrialConfig, data: SearchData, seed: int, device: torch.device, synthetic_source: SyntheticSource | None = None
) -> Replica:
    real_indices = real_subset_indices(
        data.train.labels, fractions_by_class_index(trial.real_fraction, data), seed, data.train.groups
    )
    real_images = torch.from_numpy(data.train.images[real_indices])  # fancy indexing copies: writable
    real_labels = torch.from_numpy(data.train.labels[real_indices])
    synthetic = (
        fetch_synthetic_images(trial.synthetic, synthetic_source, data, real_indices, seed) if trial.synthetic.is_active else []
    )
    mixed = mix_real_and_synthetic(real_images, real_labels, synthetic)
    images, labels = mixed.images, mixed.labels
    # The seed fixes the initial weights, so repeat r of two configurations starts alike.
    torch.manual_seed(seed)
    model = build_model(trial, data).to(device)
    optimizer = create_optimizer(
        trial.optimizer.name,
        trainable_parameters(model),
        lr=trial.optimizer.lr,
        weight_decay=trial.optimizer.weight_decay,
        momentum=trial.optimizer.momentum,
    )
    factor = LearningRateFactor(trial.optimizer.schedule, trial.optimizer.warmup_epochs, trial.training.epochs)
    scheduler = create_lr_scheduler(optimizer, factor, base_lr=trial.optimizer.lr)
    weights = class_weights(labels, data.num_classes) if trial.training.imbalance == "class_weighted_loss" else None
    loss_function = create_loss(label_smoothing=trial.training.label_smoothing, weights=weights).to(device)
    # Only float16 autocast needs loss scaling; bfloat16 has float32's range.
    grad_scaler = torch.amp.GradScaler(device.type) if mixed_precision_dtype(device) == torch.float16 else None
    return Replica(
        seed,
        real_indices,
        images,
        labels,
        mixed.is_synthetic,
        mixed.draws,
        model,
        optimizer,
        scheduler,
        loss_function,
        grad_scaler,
    )


# float16 keeps 11 significant bits (a relative error of at most 1/2048), enough to evaluate a model; it halves
# what every trial's best weights take in storage. Training goes on from exact float32 weights (training_state).
STORED_WEIGHTS_DTYPE = torch.float16


def stored_weights(replicas: list[Replica]) -> list[dict[str, torch.Tensor]]:
    """A CPU copy of every repeat's weights as checkpoints store them for evaluation: float32 tensors in float16
    (a tensor with values beyond float16's range stays float32), everything else as it is."""
    return [{name: _stored(tensor) for name, tensor in replica.model.state_dict().items()} for replica in replicas]


def _stored(tensor: torch.Tensor) -> torch.Tensor:
    tensor = tensor.detach().to("cpu", copy=True)
    if tensor.dtype != torch.float32:
        return tensor
    narrowed = tensor.to(STORED_WEIGHTS_DTYPE)
    return narrowed if bool(torch.isfinite(narrowed).all()) or not bool(torch.isfinite(tensor).all()) else tensor


@dataclass(frozen=True)
class BestEpoch:
    """Every repeat's weights (stored_weights) at the epoch whose searched metric, the median over repeats, was the
    best so far; None where the trial keeps no weights (TrialSettings.keep_weights)."""

    epoch: int
    metrics: dict[str, float]
    weights: list[dict[str, torch.Tensor]] | None


class MissingWeightsError(ValueError):
    """A checkpoint written without model weights was asked for them."""


@dataclass(frozen=True)
class SavedTrial:
    epoch: int  # epochs trained when the checkpoint was written
    metrics: dict[str, float]  # reported at that epoch
    best_epoch: int
    best_metrics: dict[str, float]
    # Per repeat: seed, synthetic draws and the best epoch's weights ("model", stored_weights; None in a checkpoint
    # kept without weights): what evaluation reads.
    replica_states: list[dict[str, Any]]
    # What continuing training exactly needs (Replica.training_state per repeat); None where the checkpoint
    # holds only the best weights (a finished trial's, or between CheckpointSchedule's training-state epochs).
    training: dict[str, Any] | None
    # Early stopping's counters when the checkpoint was written; empty in checkpoints that predate them here.
    progress: dict[str, Any]

    directory: Path | None = None

    @property
    def has_weights(self) -> bool:
        return all(state.get("model") is not None for state in self.replica_states)

    @property
    def best(self) -> BestEpoch:
        weights = [state["model"] for state in self.replica_states] if self.has_weights else None
        return BestEpoch(self.best_epoch, self.best_metrics, weights)

    def weights(self, repeat: int) -> dict[str, torch.Tensor]:
        """Repeat `repeat`'s best weights; MissingWeightsError names the checkpoint when it was kept without them."""
        weights = self.replica_states[repeat].get("model")
        if weights is None:
            raise MissingWeightsError(
                f"the checkpoint {self.directory} holds no model weights: when the finalists retrain on fresh seeds, "
                "the search's and the twins' checkpoints keep none (the finalists' do; --finalists 0 keeps the search's)"
            )
        return weights


def save_replicas(
    directory: Path,
    replicas: list[Replica],
    epoch: int,
    metrics: dict[str, float],
    *,
    best: BestEpoch | None = None,
    with_weights: bool = True,
    with_training_state: bool = False,
    progress: dict[str, Any] | None = None,
) -> None:
    """A trial checkpoint. CHECKPOINT_FILE holds what evaluation reads, the best epoch's weights (`best`; None: the
    current weights are the best) in float16 unless `with_weights` is False, and the trial's `progress` (early
    stopping's counters). `with_training_state`: TRAINING_STATE_FILE holds what continuing exactly needs: the
    current float32 weights, optimizer and loss-scaler state."""
    if best is None:
        best = BestEpoch(epoch, metrics, stored_weights(replicas) if with_weights else None)
    weights = best.weights if with_weights and best.weights is not None else [None] * len(replicas)
    state = {
        "epoch": epoch,
        "metrics": metrics,
        "best_epoch": best.epoch,
        "best_metrics": best.metrics,
        "progress": progress or {},
        "replicas": [replica.evaluation_state(each) for replica, each in zip(replicas, weights, strict=True)],
    }
    torch.save(state, directory / CHECKPOINT_FILE)
    if with_training_state:
        training = {"replicas": [replica.training_state() for replica in replicas]}
        torch.save(training, directory / TRAINING_STATE_FILE)


def load_saved_trial(directory: Path) -> SavedTrial:
    directory = Path(directory)
    saved = torch.load(directory / CHECKPOINT_FILE, map_location="cpu", weights_only=False)
    training_file = directory / TRAINING_STATE_FILE
    training = torch.load(training_file, map_location="cpu", weights_only=False) if training_file.exists() else None
    # Checkpoints written before the progress moved out of the training state kept it there.
    progress = saved.get("progress") or (training or {}).get("progress") or {}
    return SavedTrial(
        saved["epoch"],
        saved["metrics"],
        saved["best_epoch"],
        saved["best_metrics"],
        saved["replicas"],
        training,
        progress,
        directory,
    )


def drop_training_state(checkpoint: Checkpoint) -> bool:
    """Deletes what only continuing training needs from a Tune checkpoint of a trial that will not train again,
    wherever the checkpoint lives (a folder, S3); True if there was something to delete."""
    path = f"{checkpoint.path.rstrip('/')}/{TRAINING_STATE_FILE}"
    if checkpoint.filesystem.get_file_info(path).type == pyarrow.fs.FileType.NotFound:
        return False
    checkpoint.filesystem.delete_file(path)
    return True
