"""Evaluate a trial's saved models on images the search never saw (the final test evaluation)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from torch.nn import functional

from spaces import TrialConfig
from trainables.datasets import ImageSet, SearchData
from trainables.metrics import compute_metrics
from trainables.replicas import build_model, image_tensors, load_saved_trial, normalization_of
from trainables.training import predict_logits, resolve_device
from trainables.trial import aggregate_over_repeats


@dataclass(frozen=True)
class RepeatEvaluation:
    """One repeat model of a checkpoint on a set of images: its metrics, and its predicted class per image."""

    seed: int | None
    metrics: dict[str, float]
    predictions: np.ndarray  # int64 [N]


def evaluate_repeats(
    checkpoint_directory: Path, trial: TrialConfig, data: SearchData, images: ImageSet, device: str = "auto"
) -> list[RepeatEvaluation]:
    """Every metric of each of the checkpoint's repeat models on `images`, with its predictions."""
    target = resolve_device(device)
    saved = load_saved_trial(checkpoint_directory)
    normalization = normalization_of(trial, data)
    image_tensor, label_tensor = image_tensors(images)
    evaluations = []
    for repeat, state in enumerate(saved.replica_states):
        model = build_model(trial, data).to(target)
        model.load_state_dict(saved.weights(repeat))
        logits = predict_logits(model, image_tensor, normalization=normalization, device=target)
        metrics = compute_metrics(
            logits, label_tensor, num_classes=data.num_classes, ordinal=data.ordinal, class_names=data.class_names,
            loss=float(functional.cross_entropy(logits, label_tensor)), minority_class=data.minority_class,
        )
        evaluations.append(RepeatEvaluation(state.get("seed"), metrics, logits.argmax(dim=1).numpy().astype(np.int64)))
    return evaluations


def evaluate_checkpoint(
    checkpoint_directory: Path, trial: TrialConfig, data: SearchData, images: ImageSet, device: str = "auto"
) -> dict[str, float]:
    """Median (and spread) over the checkpoint's repeat models of every metric on `images`."""
    evaluations = evaluate_repeats(checkpoint_directory, trial, data, images, device)
    return aggregate_over_repeats([evaluation.metrics for evaluation in evaluations])
