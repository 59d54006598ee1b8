"""Checks a sweep against the dataset before any Ray work starts: what a trial configuration alone cannot know
(class names, image sizes a backbone or generator can take, reachable weights, the searched metric)."""

from __future__ import annotations

import difflib

from generators import GeneratorError, generator_class
from search.config import SweepConfig
from spaces import ConfigError, GeneratorSettings, SearchSpace, TrialConfig
from trainables.backbones import BackboneError, check_backbone
from trainables.datasets import DatasetError, SearchData
from trainables.metrics import METRIC_NAMES, sanitize_class_name


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


def _check_class_keys(trial: TrialConfig, data: SearchData, source: str) -> None:
    """Per-class keys name classes of this dataset, by name or index."""
    named = [(f"real_fraction.{key}", key) for key in trial.real_fraction] if isinstance(trial.real_fraction, dict) else []
    if isinstance(trial.synthetic.proportion, dict):
        named += [(f"synthetic.proportion.{key}", key) for key in trial.synthetic.proportion]
    if isinstance(trial.synthetic.classes, list):
        named += [("synthetic.classes", key) for key in trial.synthetic.classes]
    for field, key in named:
        try:
            data.class_index(key)
        except DatasetError as error:
            raise ConfigError(field, key, str(error), source) from None


def check_space(space: SearchSpace, data: SearchData) -> list[TrialConfig]:
    """Every choice and range end of the space must make a valid trial on this dataset."""
    source = f"space {space.name!r}"
    trials = space.validate_samples(source)
    for trial in trials:
        _check_class_keys(trial, data, source)
    # Building each distinct model once (and running two blank images through it) catches sizes a backbone
    # cannot take and unreachable pretrained weights now, not in every trial.
    models = {(trial.model.backbone, trial.model.pretrained, trial.model.pretrained_path) for trial in trials}
    for backbone, pretrained, pretrained_path in sorted(models, key=str):
        try:
            check_backbone(
                backbone, num_classes=data.num_classes, in_channels=data.channels, image_size=data.image_size,
                pretrained=pretrained, pretrained_path=pretrained_path,
            )
        except BackboneError as error:
            raise ConfigError("model.backbone", backbone, str(error), source) from None
    return trials


def check_generators(settings: list[GeneratorSettings], data: SearchData, source: str) -> None:
    """Each generator the space can draw must be able to make images of this dataset's shape and classes."""
    for generator_settings in settings:
        try:
            generator_class(generator_settings).check_data_shape(
                generator_settings, channels=data.channels, image_size=data.image_size, class_names=data.class_names
            )
        except GeneratorError as error:
            raise ConfigError("synthetic.settings", generator_settings.generator, str(error), source) from None


def max_epochs(space: SearchSpace) -> int:
    if "training.epochs" in space.parameters:
        return max(int(value) for value in space.parameters["training.epochs"].corner_values())
    return int(space.fixed.get("training.epochs", TrialConfig().training.epochs))
