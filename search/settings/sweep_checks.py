"""Checks a sweep against the dataset before any Ray work starts: what a trial configuration alone cannot know
(class names, image sizes a backbone or generator can take, reachable weights, the searched metric)."""

from __future__ import annotations

import os

from generators import GeneratorError, generator_class
from generators.image_api.settings import ImageApiSettings
from search.settings.sweep_config import SweepConfig
from spaces import ConfigError, GeneratorSettings, SearchSpace, TrialConfig
from spaces.errors import did_you_mean
from trainables.backbones import BackboneError
from trainables.datasets import DatasetError, SearchData
from trainables.fine_tuning import check_classifier
from trainables.metrics import METRIC_NAMES, MINORITY, PER_CLASS_METRICS, sanitize_class_name


def searchable_metrics(data: SearchData) -> list[str]:
    names = [f"val_{name}" for name in METRIC_NAMES]
    names += [f"val_{prefix}_{sanitize_class_name(name)}" for prefix in PER_CLASS_METRICS for name in data.class_names]
    names += [f"val_{prefix}_{MINORITY}" for prefix in PER_CLASS_METRICS]
    return names + ["train_loss"]


def check_metric(sweep: SweepConfig, data: SearchData) -> None:
    allowed = searchable_metrics(data)
    if sweep.metric not in allowed:
        close = did_you_mean(sweep.metric, allowed)
        hint = f" ({close})" if close else ""
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
    # Building each distinct model once (with its head and fine-tuning mode, and running two blank images through
    # it) catches sizes a backbone cannot take and unreachable pretrained weights now, not in every trial.
    models = {trial.model.model_dump_json(exclude={"dropout"}): trial.model for trial in trials}
    for _, model in sorted(models.items()):
        try:
            check_classifier(model, num_classes=data.num_classes, in_channels=data.channels, image_size=data.image_size)
        except BackboneError as error:
            raise ConfigError("model.backbone", model.backbone, str(error), source) from None
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


def check_image_upload(sweep: SweepConfig, settings: list[GeneratorSettings], data: SearchData, source: str) -> None:
    """Real (patient) images leave the machine only when the sweep allows it, and an image API's key must be in
    the environment (only its name is ever read here, never its value)."""
    uploads = [generator_settings for generator_settings in settings if isinstance(generator_settings, ImageApiSettings)]
    if not uploads:
        return
    hosts = sorted({generator_settings.upload_host for generator_settings in uploads})
    generators = sorted({generator_settings.generator for generator_settings in uploads})
    if not sweep.allow_image_upload:
        raise ConfigError(
            "allow_image_upload", False,
            f"{source} can draw {', '.join(generators)}, which sends real training images (each trial's own real "
            f"subset of the classes that get synthetic images, up to all {len(data.train.ids)} training images of "
            f"{data.name!r}) to {', '.join(hosts)}; pass --allow-image-upload (YAML allow_image_upload: true) to allow it",
        )
    for variable in sorted({generator_settings.api_key_variable for generator_settings in uploads}):
        if not os.environ.get(variable):
            raise ConfigError(
                variable, "(not set)",
                f"{', '.join(generators)} reads its API key for {', '.join(hosts)} from the environment variable "
                f"{variable}; export it before the sweep (a server of your own that needs no key takes any value)",
            )
