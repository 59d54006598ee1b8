"""The image encoders synthetic-image quality is measured with: by default the penultimate layer of the best
real-only classifier of the sweep (a domain encoder: ImageNet weights cannot be downloaded here), or a user's own
extractor, a timm model with a local weights file (e.g. a SwAV or Inception checkpoint, which Woodland et al. 2024
found to track expert judgment of medical generators)."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from ray.tune import ResultGrid
from torch import nn

from search.diagnostics.quality_metrics import ImageFeatures, Normalization
from search.settings.quality_settings import FeatureExtractorSettings
from search.tuning.results import best_checkpoint
from spaces import SearchSpace, TrialConfig
from trainables.backbones import create_backbone, input_normalization
from trainables.datasets import SearchData
from trainables.fine_tuning import ClassifierWithHead
from trainables.replicas import build_model, load_saved_trial, normalization_of


@dataclass(frozen=True)
class FeatureEncoder:
    """float images (normalised with `normalization`) -> features [N, D]; `name` says which encoder in reports."""

    module: nn.Module
    normalization: Normalization
    name: str
    resize_to: int | None = None

    def image_features(self, data: SearchData) -> ImageFeatures:
        return ImageFeatures(self.module, self.normalization, channels=data.channels, image_size=data.image_size,
                             resize_to=self.resize_to)


@dataclass(frozen=True)
class RealOnlyModel:
    """A classifier trained on real images only (logits from normalised float images), and where it came from."""

    classifier: nn.Module
    normalization: Normalization
    name: str

    def encoder(self) -> FeatureEncoder:
        """Its penultimate layer: the pooled features in front of the classifier (timm's `reset_classifier(0)`; a
        ClassifierWithHead's backbone, whose classifier is reset already)."""
        model = copy.deepcopy(self.classifier).eval()
        if isinstance(model, ClassifierWithHead):
            module = model.backbone
        else:
            model.reset_classifier(0)
            module = model
        return FeatureEncoder(module, self.normalization, f"penultimate layer of {self.name}")


def real_only_model_from_checkpoint(
    checkpoint_directory: Path, trial: TrialConfig, data: SearchData, *, repeat: int = 0, name: str = "checkpoint"
) -> RealOnlyModel:
    """Repeat `repeat`'s model of a trial checkpoint (trainables.replicas.save_replicas), on the CPU, in eval mode."""
    model = build_model(trial, data)
    model.load_state_dict(load_saved_trial(checkpoint_directory).weights(repeat))
    return RealOnlyModel(model.eval(), normalization_of(trial, data), name)


def best_real_only_model(
    results: ResultGrid, leaderboard: pd.DataFrame, space: SearchSpace, metric: str, mode: str, data: SearchData
) -> RealOnlyModel | None:
    """The best-ranked leaderboard trial that trained on no synthetic image, from its best-scoring checkpoint;
    None when the sweep had no such trial with a checkpoint."""
    if "synthetic_images" not in leaderboard:
        return None
    for trial_id in leaderboard.loc[leaderboard["synthetic_images"].fillna(0) == 0, "trial_id"]:
        result = next((result for result in results if (result.metrics or {}).get("trial_id") == trial_id), None)
        if result is None:
            continue
        checkpoint = best_checkpoint(result, metric, mode)
        if checkpoint is None:
            continue
        with checkpoint.as_directory() as directory:
            return real_only_model_from_checkpoint(
                Path(directory), space.resolve(result.config), data, name=f"real-only trial {trial_id}"
            )
    return None


def user_feature_extractor(settings: FeatureExtractorSettings, data: SearchData) -> FeatureEncoder:
    """The user's extractor: timm's model with the local weights, its classifier removed, in eval mode."""
    image_size = settings.image_size or data.image_size
    module = create_backbone(
        settings.backbone, num_classes=0, in_channels=data.channels, image_size=image_size,
        pretrained_path=settings.weights,
    )
    normalization = input_normalization(settings.backbone, data.channels, pretrained=True)
    return FeatureEncoder(module.eval(), normalization, f"{settings.backbone} ({Path(settings.weights).name})",
                          resize_to=settings.image_size)
