"""Checks a sweep against the registries and the dataset before any Ray work starts."""

from __future__ import annotations

import difflib

from search.config import SweepConfig
from spaces import ConfigError, SearchSpace, TrialConfig
from trainables.augmentation import create_augmentation
from trainables.backbones import create_backbone, is_known_backbone, list_backbones
from trainables.datasets import SearchData
from trainables.errors import TrainableInputError
from trainables.metrics import METRIC_NAMES, sanitize_class_name
from trainables.replicas import fractions_by_class_index


def searchable_metrics(data: SearchData) -> list[str]:
    names = [f"val_{name}" for name in METRIC_NAMES]
    names += [f"val_recall_{sanitize_class_name(name)}" for name in data.class_names]
    return names + ["train_loss"]


def check_metric(sweep: SweepConfig, data: SearchData) -> None:
    allowed = searchable_metrics(data)
    if sweep.metric not in allowed:
        close = difflib.get_close_matches(sweep.metric, allowed, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError("metric", sweep.metric, f"allowed: {', '.join(allowed)}{hint}")


def _check_trial(trial: TrialConfig, data: SearchData, source: str) -> None:
    if not is_known_backbone(trial.model.backbone):
        close = difflib.get_close_matches(trial.model.backbone, list_backbones(), n=3)
        raise ConfigError(
            "model.backbone", trial.model.backbone,
            f"allowed: {', '.join(list_backbones())} or any timm model name" + (f" (close: {', '.join(close)})" if close else ""),
            source,
        )
    try:
        create_augmentation(trial.augmentation.policy, **trial.augmentation.parameters)
        fractions_by_class_index(trial.real_fraction, data.class_names)
    except TrainableInputError as error:
        raise ConfigError("trial", trial.to_flat(), str(error), source) from None


def check_space(space: SearchSpace, data: SearchData) -> list[TrialConfig]:
    """Every choice and range end of the space must make a valid trial on this dataset."""
    source = f"space {space.name!r}"
    trials = space.validate_samples(source)
    for trial in trials:
        _check_trial(trial, data, source)
    # Building each distinct model once catches sizes a backbone cannot take and unreachable
    # pretrained weights now, not in every trial.
    models = {(trial.model.backbone, trial.model.pretrained, trial.model.pretrained_path) for trial in trials}
    for backbone, pretrained, pretrained_path in sorted(models, key=str):
        try:
            create_backbone(
                backbone, num_classes=data.num_classes, in_channels=data.channels, image_size=data.image_size,
                pretrained=pretrained, pretrained_path=pretrained_path,
            )
        # timm reports sizes a model cannot take as RuntimeError or AssertionError.
        except (ValueError, RuntimeError, AssertionError) as error:
            raise ConfigError("model.backbone", backbone, f"it cannot be built for {data.image_size} px, {data.channels}-channel images: {error}", source) from None
    return trials


def max_epochs(space: SearchSpace) -> int:
    if "training.epochs" in space.parameters:
        return max(int(value) for value in space.parameters["training.epochs"].corner_values())
    return int(space.fixed.get("training.epochs", TrialConfig().training.epochs))
