"""Evaluate a trial's saved models on images the search never saw (the final test evaluation)."""

from __future__ import annotations

from pathlib import Path

from spaces import TrialConfig
from trainables.datasets import ImageSet, SearchData
from trainables.replicas import build_model, image_tensors, load_saved_trial, normalization_of
from trainables.training import evaluate, resolve_device
from trainables.trial import aggregate_over_repeats


def evaluate_checkpoint(
    checkpoint_directory: Path, trial: TrialConfig, data: SearchData, images: ImageSet, device: str = "auto"
) -> dict[str, float]:
    """Median (and spread) over the checkpoint's repeat models of every metric on `images`."""
    target = resolve_device(device)
    states = load_saved_trial(checkpoint_directory).replica_states
    normalization = normalization_of(trial, data)
    image_tensor, label_tensor = image_tensors(images)
    per_repeat = []
    for state in states:
        model = build_model(trial, data).to(target)
        model.load_state_dict(state["model"])
        metrics = evaluate(
            model, image_tensor, label_tensor, normalization=normalization, device=target,
            num_classes=data.num_classes, ordinal=data.ordinal, class_names=data.class_names,
            minority_class=data.minority_class,
        )
        per_repeat.append(metrics)
    return aggregate_over_repeats(per_repeat)
