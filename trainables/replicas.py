"""The models of one trial, one per repeat seed, each with its own real subset, optimizer and RNG state."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from spaces import TrialConfig
from trainables.backbones import input_normalization
from trainables.datasets import ImageSet, SearchData
from trainables.fine_tuning import create_classifier, trainable_parameters
from trainables.real_subset import real_subset_indices
from trainables.synthetic import SyntheticDraw, SyntheticSource, fetch_synthetic_images, mix_real_and_synthetic
from trainables.training import (
    LearningRateFactor,
    class_weights,
    create_loss,
    create_lr_scheduler,
    create_optimizer,
    mixed_precision_dtype,
)

CHECKPOINT_FILE = "replicas.pt"


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

    def state(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            # Which synthetic images this model trained on, with its weights: the trial's provenance (DESIGN step 5).
            "synthetic_draws": [dataclasses.asdict(draw) for draw in self.synthetic_draws],
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "grad_scaler": self.grad_scaler.state_dict() if self.grad_scaler is not None else None,
        }

    def load_state(self, state: dict[str, Any], learning_rate: float, epochs_done: int) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        # A restored optimizer brings back its old learning rate; PBT may have just mutated it. The schedule
        # starts again from the configured rate at the epoch reached.
        self.scheduler = create_lr_scheduler(
            self.optimizer, self.scheduler.lr_lambdas[0], base_lr=learning_rate, epochs_done=epochs_done
        )
        if self.grad_scaler is not None and state.get("grad_scaler") is not None:
            self.grad_scaler.load_state_dict(state["grad_scaler"])


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
    real_indices = real_subset_indices(data.train.labels, fractions_by_class_index(trial.real_fraction, data), seed)
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
        trial.optimizer.name, trainable_parameters(model), lr=trial.optimizer.lr,
        weight_decay=trial.optimizer.weight_decay, momentum=trial.optimizer.momentum,
    )
    factor = LearningRateFactor(trial.optimizer.schedule, trial.optimizer.warmup_epochs, trial.training.epochs)
    scheduler = create_lr_scheduler(optimizer, factor, base_lr=trial.optimizer.lr)
    weights = class_weights(labels, data.num_classes) if trial.training.imbalance == "class_weighted_loss" else None
    loss_function = create_loss(label_smoothing=trial.training.label_smoothing, weights=weights).to(device)
    # Only float16 autocast needs loss scaling; bfloat16 has float32's range.
    grad_scaler = torch.amp.GradScaler(device.type) if mixed_precision_dtype(device) == torch.float16 else None
    return Replica(
        seed, real_indices, images, labels, mixed.is_synthetic, mixed.draws, model, optimizer, scheduler, loss_function,
        grad_scaler,
    )


@dataclass(frozen=True)
class SavedTrial:
    epoch: int
    metrics: dict[str, float]
    replica_states: list[dict[str, Any]]


def save_replicas(directory: Path, replicas: list[Replica], epoch: int, metrics: dict[str, float]) -> None:
    state = {"epoch": epoch, "metrics": metrics, "replicas": [replica.state() for replica in replicas]}
    torch.save(state, directory / CHECKPOINT_FILE)


def load_saved_trial(directory: Path) -> SavedTrial:
    saved = torch.load(Path(directory) / CHECKPOINT_FILE, map_location="cpu", weights_only=False)
    return SavedTrial(saved["epoch"], saved["metrics"], saved["replicas"])
