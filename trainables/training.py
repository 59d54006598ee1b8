"""One epoch of training and one evaluation of a classifier on in-memory uint8 images, on CPU or CUDA."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as functional
import torchvision.transforms.v2.functional as image_functional
from torch import Tensor, nn

from spaces.schema import ImbalanceStrategy, LearningRateSchedule, OptimizerName
from trainables.errors import TrainableInputError
from trainables.metrics import compute_metrics

Normalization = tuple[Sequence[float], Sequence[float]]


def resolve_device(preferred: Literal["auto", "cpu", "cuda"] = "auto") -> torch.device:
    """"auto" is CUDA when available, else CPU. Checked where the trial runs: on a cluster the driver may have
    no GPU while the workers do."""
    if preferred == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if preferred == "cuda" and not torch.cuda.is_available():
        raise TrainableInputError("device 'cuda' was asked for but CUDA is not available here; use 'auto' or 'cpu'")
    return torch.device(preferred)


def create_optimizer(
    name: OptimizerName, parameters: Iterable[nn.Parameter], *, lr: float, weight_decay: float, momentum: float = 0.9
) -> torch.optim.Optimizer:
    """adam (L2 weight decay), adamw (decoupled weight decay) or sgd (Nesterov momentum; plain when momentum is 0)."""
    if name == "sgd":
        return torch.optim.SGD(parameters, lr=lr, weight_decay=weight_decay, momentum=momentum, nesterov=momentum > 0)
    optimizer_class = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[name]
    return optimizer_class(parameters, lr=lr, weight_decay=weight_decay)


@dataclass(frozen=True)
class LearningRateFactor:
    """The factor on the base learning rate for epoch `epoch` (0-based) of `epochs`: (e + 1) / (warmup + 1) for the
    first `warmup_epochs`, then 1 (constant) or 0.5 (1 + cos(pi (e - warmup) / (epochs - warmup))) (cosine: from 1
    down towards 0, never 0 for an epoch that trains). A class, not a closure, so schedulers pickle."""

    schedule: LearningRateSchedule
    warmup_epochs: int
    epochs: int

    def __call__(self, epoch: int) -> float:
        if epoch < self.warmup_epochs:
            return (epoch + 1) / (self.warmup_epochs + 1)
        if self.schedule == "constant":
            return 1.0
        return 0.5 * (1.0 + math.cos(math.pi * (epoch - self.warmup_epochs) / (self.epochs - self.warmup_epochs)))


def create_lr_scheduler(
    optimizer: torch.optim.Optimizer, factor: LearningRateFactor, *, base_lr: float, epochs_done: int = 0
) -> torch.optim.lr_scheduler.LambdaLR:
    """A scheduler stepped once per epoch, after it, that sets every group's lr to base_lr x factor(epoch).

    Per epoch because epochs are the unit everything else counts in (warmup, patience, PBT's perturbation
    interval). The schedule is a function of (base_lr, epoch) alone, so a resumed trial rebuilds it at
    `epochs_done` from the configured lr instead of restoring scheduler state: an lr that Population Based
    Training has just mutated becomes the new base and the schedule continues from it at the right epoch.
    """
    for group in optimizer.param_groups:
        group["initial_lr"] = base_lr
    # last_epoch is the epoch before the next one: the scheduler's first step (in its constructor) sets its lr.
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor, last_epoch=epochs_done - 1)


def class_weights(labels: Tensor, num_classes: int) -> Tensor:
    """Inverse class frequency, scaled so the mean weight over the samples of `labels` is 1.

    A class absent from `labels` gets weight 0: it contributes no loss term anyway, and a finite weight
    keeps the loss module valid. float32 [num_classes].
    """
    counts = torch.bincount(labels, minlength=num_classes).float()
    present_classes = int((counts > 0).sum())
    weights = torch.zeros(num_classes)
    weights[counts > 0] = len(labels) / (present_classes * counts[counts > 0])
    return weights


def create_loss(*, label_smoothing: float, weights: Tensor | None) -> nn.Module:
    """Cross-entropy on logits; move it to the training device with the model (`weights` is a buffer)."""
    return nn.CrossEntropyLoss(weight=weights, label_smoothing=label_smoothing)


def epoch_batches(labels: Tensor, *, batch_size: int, imbalance: ImbalanceStrategy, generator: torch.Generator) -> list[Tensor]:
    """Index batches (int64) for one epoch, drawn from `generator` alone so an epoch can be replayed.

    "none" and "class_weighted_loss" shuffle every sample once. "balanced_sampler" draws len(labels) indices
    with replacement, each class equally likely, as torch's WeightedRandomSampler does. A last batch of a single
    sample is dropped: BatchNorm cannot compute batch statistics from one sample.
    """
    if imbalance == "balanced_sampler":
        counts = torch.bincount(labels)
        sample_weights = 1.0 / counts[labels].double()
        order = torch.multinomial(sample_weights, len(labels), replacement=True, generator=generator)
    else:
        order = torch.randperm(len(labels), generator=generator)
    batches = list(torch.split(order, batch_size))
    if len(batches[-1]) == 1:
        batches.pop()
    return batches


def to_model_input(images: Tensor, mean: Sequence[float], std: Sequence[float]) -> Tensor:
    """uint8 [B, C, H, W] -> float32 in [0, 1] normalised per channel, on the images' device."""
    scaled = image_functional.to_dtype(images, torch.float32, scale=True)
    return image_functional.normalize(scaled, mean=list(mean), std=list(std))


def mixed_precision_dtype(device: torch.device) -> torch.dtype | None:
    """bfloat16 on GPUs that support it (no loss scaling needed), else float16; None on CPU (full precision)."""
    if device.type != "cuda":
        return None
    # Emulated bfloat16 (pre-Ampere GPUs such as the T4) is slower than float16 with loss scaling.
    return torch.bfloat16 if torch.cuda.is_bf16_supported(including_emulation=False) else torch.float16


def train_one_epoch(
    model: nn.Module,
    images: Tensor,
    labels: Tensor,
    *,
    batches: Sequence[Tensor],
    optimizer: torch.optim.Optimizer,
    loss_function: nn.Module,
    normalization: Normalization,
    device: torch.device,
    augment: Callable[[Tensor], Tensor] | None = None,
    grad_scaler: torch.amp.GradScaler | None = None,
) -> float:
    """Train on `batches` of the CPU-resident uint8 `images`; returns the mean training loss over samples.

    Each batch is augmented on the CPU as uint8, then moved to `device` and normalised there, so only
    uint8 bytes cross the bus. Under float16 autocast, pass a `grad_scaler` kept across epochs; without one
    a fresh scaler is made for this epoch (its scale then re-calibrates every epoch).
    """
    mean, std = normalization
    autocast_dtype = mixed_precision_dtype(device)
    if autocast_dtype == torch.float16 and grad_scaler is None:
        grad_scaler = torch.amp.GradScaler(device.type)
    loss_function.to(device)
    model.train()
    loss_sum = torch.zeros((), device=device)
    sample_count = 0
    for batch_indices in batches:
        batch_images = images[batch_indices]
        if augment is not None:
            batch_images = augment(batch_images)
        inputs = to_model_input(batch_images.to(device, non_blocking=True), mean, std)
        targets = labels[batch_indices].to(device, non_blocking=True)
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            loss = loss_function(model(inputs), targets)
        if grad_scaler is not None:
            grad_scaler.scale(loss).backward()
            grad_scaler.step(optimizer)
            grad_scaler.update()
        else:
            loss.backward()
            optimizer.step()
        # Accumulated on the device: reading each loss with .item() would wait for the GPU every batch.
        loss_sum += loss.detach().float() * len(batch_indices)
        sample_count += len(batch_indices)
    return float(loss_sum) / sample_count


@torch.no_grad()
def predict_logits(
    model: nn.Module,
    images: Tensor,
    *,
    normalization: Normalization,
    device: torch.device,
    batch_size: int = 512,
) -> Tensor:
    """float32 logits [N, num_classes] on the CPU, in the order of `images`; leaves the model in eval mode."""
    mean, std = normalization
    autocast_dtype = mixed_precision_dtype(device)
    model.eval()
    logits: list[Tensor] = []
    for batch_images in torch.split(images, batch_size):
        inputs = to_model_input(batch_images.to(device, non_blocking=True), mean, std)
        with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            logits.append(model(inputs).float().cpu())
    return torch.cat(logits)


def evaluate(
    model: nn.Module,
    images: Tensor,
    labels: Tensor,
    *,
    normalization: Normalization,
    device: torch.device,
    num_classes: int,
    ordinal: bool,
    class_names: Sequence[str],
    minority_class: int | None = None,
) -> dict[str, float]:
    """compute_metrics of the model on these images; the loss is plain cross-entropy (no class weights, no smoothing)
    so that it compares across configurations whatever loss they trained with."""
    logits = predict_logits(model, images, normalization=normalization, device=device)
    loss = functional.cross_entropy(logits, labels)
    return compute_metrics(
        logits, labels, num_classes=num_classes, ordinal=ordinal, class_names=class_names, loss=float(loss),
        minority_class=minority_class,
    )
