"""Synthetic-image quality on planted cases: copies of training images are flagged as memorized and listed with the
image they copy, noise images are far from the real ones (large FD / KID, no precision), identical sets are at
distance 0, and the whole report (CSV, near-copies, grids) from a real pool on disk."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import timm
import torch
from PIL import Image
from safetensors.torch import save_file
from torch import nn

from generators.pool import PoolKey, SyntheticPool, derive_seed
from search.diagnostics.quality_encoders import RealOnlyModel, real_only_model_from_checkpoint, user_feature_extractor
from search.diagnostics.quality_metrics import (
    ImageFeatures,
    density_coverage,
    distribution_distances,
    features_of,
    memorization,
    precision_recall,
    training_neighbour_threshold,
)
from search.diagnostics.synthetic_quality import write_synthetic_quality
from search.settings.quality_settings import FeatureExtractorSettings, QualitySettings
from spaces import TrialConfig
from trainables.datasets import load_dataset
from trainables.replicas import build_replica, save_replicas
from trainables.synthetic_filter import SmallClassifierRecipe, fit_small_classifier, small_classifier_normalization
from trainables.synthetic_mixing import pool_dataset_name

DATA = load_dataset("phantom", image_size=16, phantom_count=160).for_search()
RNG = np.random.default_rng(0)
NOISE = RNG.integers(0, 256, size=(60, 1, 16, 16), dtype=np.uint8)


@pytest.fixture(scope="module")
def real_only() -> RealOnlyModel:
    """A small classifier trained on the real training images only: the domain encoder."""
    model = fit_small_classifier(DATA.train.images, DATA.train.labels, num_classes=DATA.num_classes, seed=0,
                                 recipe=SmallClassifierRecipe(epochs=8))
    return RealOnlyModel(model, small_classifier_normalization(DATA.channels), "test classifier")


@pytest.fixture(scope="module")
def features(real_only: RealOnlyModel) -> ImageFeatures:
    return real_only.encoder().image_features(DATA)


def test_identical_sets_are_at_distance_zero_and_noise_is_far(features: ImageFeatures) -> None:
    real = DATA.train.images[:60]
    same = distribution_distances(features, real, real, kid_subset_size=20)
    assert same["frechet_distance"] == pytest.approx(0.0, abs=1e-6)
    assert abs(same["kid_mean"]) < 1e-3
    noise = distribution_distances(features, real, NOISE, kid_subset_size=20)
    other_real = distribution_distances(features, real, DATA.train.images[60:120], kid_subset_size=20)
    assert noise["frechet_distance"] > 5 * other_real["frechet_distance"] > 0
    assert noise["kid_mean"] > 5 * max(other_real["kid_mean"], 1e-4)
    # Too few images for a covariance: no number rather than a wrong one.
    assert np.isnan(distribution_distances(features, real, NOISE[:1])["frechet_distance"])


def test_noise_lies_outside_the_real_manifold_and_real_images_inside(features: ImageFeatures) -> None:
    real, other_real, noise = (features_of(features, images) for images in (DATA.train.images[:80], DATA.val.images, NOISE))
    noise_precision, noise_recall = precision_recall(real, noise)
    real_precision, real_recall = precision_recall(real, other_real)
    assert noise_precision < 0.1 and noise_recall < 0.1
    assert real_precision > 0.5 and real_recall > 0.5
    noise_density, noise_coverage = density_coverage(real, noise)
    real_density, real_coverage = density_coverage(real, other_real)
    assert noise_density < 0.1 and noise_coverage < 0.1 and real_density > 0.5 and real_coverage > 0.3


def test_copies_of_training_images_are_memorized_and_fresh_real_images_rarely(features: ImageFeatures) -> None:
    train = features_of(features, DATA.train.images)
    threshold = training_neighbour_threshold(train, percentile=5.0)
    planted = np.array([3, 17, 40])
    synthetic = torch.cat([train[planted], features_of(features, DATA.val.images), features_of(features, NOISE)])
    result = memorization(train, synthetic, threshold)
    assert result.flagged[:3].all() and (result.nearest_index[:3] == planted).all()
    assert result.flagged[3:3 + len(DATA.val)].mean() < 0.3  # fresh real images: about the percentile
    assert not result.flagged[3 + len(DATA.val):].any()       # noise is nobody's copy


def _pool_with(root: Path, keys_and_images: dict[str, dict[int, np.ndarray]]) -> dict[str, PoolKey]:
    pool = SyntheticPool(str(root))
    dataset = pool_dataset_name(DATA)
    pool.register_dataset(dataset, [str(image_id) for image_id in DATA.train.ids], image_shape=DATA.train.images.shape[1:])
    keys = {}
    for generator, per_class in keys_and_images.items():
        key = PoolKey(generator=generator, settings_hash="abc123", dataset=dataset)
        for class_index, images in per_class.items():
            slots = [(None, slot) for slot in range(len(images))]
            seeds = [derive_seed(key, class_index, None, slot) for slot in range(len(images))]
            pool.add(key, class_index, slots, seeds, images)
        keys[generator] = key
    return keys


def test_the_quality_report_ranks_copies_above_noise_and_lists_the_copies(
    tmp_path: Path, real_only: RealOnlyModel
) -> None:
    copies = {index: DATA.train.images[DATA.train.labels == index][:6] for index in range(DATA.num_classes)}
    noise = {index: NOISE[index * 10:(index + 1) * 10] for index in range(DATA.num_classes)}
    keys = _pool_with(tmp_path / "pool", {"copies": copies, "noise": noise})
    settings = QualitySettings(max_images_per_class=30, cas_epochs=2, grid_samples=4)
    outputs = write_synthetic_quality(tmp_path / "report", str(tmp_path / "pool"), DATA, real_only, settings)

    table = pd.read_csv(outputs.csv_path)
    assert set(table["class"]) == {"all", *DATA.class_names}
    overall = table[table["class"] == "all"].set_index("generator")
    assert overall.loc["copies", "memorized_share"] == 1.0 and overall.loc["noise", "memorized_share"] == 0.0
    assert overall.loc["noise", "frechet_distance"] > overall.loc["copies", "frechet_distance"]
    assert overall.loc["noise", "precision"] < overall.loc["copies", "precision"]
    assert overall.loc["copies", "label_fidelity"] > overall.loc["noise", "label_fidelity"] - 1e-9
    for column in ("kid_mean", "mifid", "recall", "density", "coverage", "cas_accuracy", "cas_balanced_accuracy"):
        assert np.isfinite(overall[column]).all(), column
    assert (table.loc[table["class"] != "all", "images"] > 0).all()

    near = pd.read_csv(outputs.near_copies_path)
    assert set(near["pool_key"]) == {keys["copies"].folder_name}
    assert len(near) == sum(len(images) for images in copies.values())
    # Each copy names the training image it copies.
    expected = {str(image_id) for index in copies for image_id in DATA.train.ids[DATA.train.labels == index][:6]}
    assert set(near["nearest_train_id"]) == expected and (near["distance"] <= near["threshold"]).all()

    assert set(outputs.grid_paths) == {key.folder_name for key in keys.values()}
    for path in outputs.grid_paths.values():
        with Image.open(path) as image:
            assert image.format == "PNG"


def test_the_domain_encoder_comes_from_a_trial_checkpoint(tmp_path: Path) -> None:
    trial = TrialConfig.from_mapping({"model": {"backbone": "basic_cnn"}, "training": {"epochs": 1}})
    replica = build_replica(trial, DATA, 0, torch.device("cpu"))
    save_replicas(tmp_path, [replica], 1, {})
    model = real_only_model_from_checkpoint(tmp_path, trial, DATA)
    encoder = model.encoder()
    images = torch.zeros(2, 1, 16, 16)
    # The penultimate layer: basic_cnn's last hidden layer, 64 wide, in front of the classifier.
    assert encoder.module(images).shape == (2, 64)
    assert isinstance(model.classifier.get_classifier(), nn.Linear)  # the classifier itself keeps its head


def test_a_users_own_extractor_is_a_timm_model_with_local_weights(tmp_path: Path) -> None:
    weights = tmp_path / "resnet18_rgb.safetensors"
    save_file(timm.create_model("resnet18", num_classes=10).state_dict(), str(weights))  # an RGB checkpoint
    encoder = user_feature_extractor(FeatureExtractorSettings(backbone="resnet18", weights=str(weights), image_size=32), DATA)
    features = features_of(encoder.image_features(DATA), DATA.val.images[:5])  # grayscale 16 px in, resized to 32
    assert features.shape == (5, 512) and torch.isfinite(features).all()
