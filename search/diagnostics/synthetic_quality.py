"""Synthetic-image quality per generator, settings and class, after a sweep: `synthetic_quality.csv`, the near-copies
of training images in `synthetic_near_copies.csv`, and a sample grid per pool key with each sample's nearest real
training image (`samples_<generator>_<settings>.png`)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from generators.pool import PoolKey, SyntheticPool
from search.diagnostics.quality_encoders import FeatureEncoder, RealOnlyModel
from search.diagnostics.quality_metrics import (
    density_coverage,
    distribution_distances,
    features_of,
    memorization,
    precision_recall,
    training_neighbour_threshold,
)
from search.report.figures import plt, save_figure
from search.report.files import NEAR_COPIES_FILE, QUALITY_FILE, sample_grid_file, write_csv
from search.settings.quality_settings import QualitySettings
from trainables.datasets import SearchData
from trainables.metrics import compute_metrics, sanitize_class_name
from trainables.synthetic_filter import (
    SmallClassifierRecipe,
    fit_small_classifier,
    small_classifier_normalization,
)
from trainables.synthetic_mixing import pool_dataset_name
from trainables.training import predict_logits

ALL_CLASSES = "all"


@dataclass(frozen=True)
class QualityOutputs:
    table: pd.DataFrame          # one row per (pool key, class) and one per pool key with class "all"
    csv_path: Path
    near_copies: pd.DataFrame    # pool_key, class, image_id, nearest_train_id, distance, threshold
    near_copies_path: Path
    grid_paths: dict[str, Path]  # pool key folder name -> sample grid PNG
    encoder_name: str


def first_per_class(labels: np.ndarray, limit: int, seed: int = 0) -> np.ndarray:
    """Indices of at most `limit` images per class, drawn with a fixed seed, sorted."""
    rng = np.random.default_rng(seed)
    chosen = [rng.permutation(np.flatnonzero(labels == label))[:limit] for label in np.unique(labels)]
    return np.sort(np.concatenate(chosen)) if chosen else np.zeros(0, np.int64)


@dataclass(frozen=True)
class _KeyImages:
    key: PoolKey
    images: np.ndarray   # uint8 [N, C, H, W]
    labels: np.ndarray   # int64 [N]
    ids: np.ndarray      # str [N]


def _pool_keys(pool: SyntheticPool, data: SearchData) -> list[PoolKey]:
    dataset = pool_dataset_name(data)
    keys = {PoolKey.from_dict(row) for row in pool.summary() if row["dataset"] == dataset}
    return sorted(keys, key=lambda key: key.folder_name)


def _read_key(pool: SyntheticPool, key: PoolKey, num_classes: int, limit: int) -> _KeyImages:
    images, labels, ids = [], [], []
    for class_index in range(num_classes):
        records = pool.records(key, class_index)[:limit]
        if records:
            images.append(pool.images_of(key, records))
            labels.append(np.full(len(records), class_index, np.int64))
            ids.append(np.array([record.image_id for record in records]))
    if not images:
        return _KeyImages(key, np.zeros((0, 1, 1, 1), np.uint8), np.zeros(0, np.int64), np.zeros(0, str))
    return _KeyImages(key, np.concatenate(images), np.concatenate(labels), np.concatenate(ids))


def _label_fidelity(model: RealOnlyModel | None, images: np.ndarray, labels: np.ndarray) -> np.ndarray | None:
    """bool [N]: whether the real-only classifier predicts each synthetic image's own label."""
    if model is None or len(images) == 0:
        return None
    logits = predict_logits(model.classifier, torch.from_numpy(np.array(images)),
                            normalization=model.normalization, device=torch.device("cpu"))
    return logits.argmax(dim=1).numpy() == labels


def classification_accuracy_score(synthetic: _KeyImages, data: SearchData, epochs: int) -> dict[str, float]:
    """accuracy, balanced_accuracy and recall_<class> on the real validation images of a classifier trained on the
    synthetic images alone (Ravuri & Vinyals 2019)."""
    model = fit_small_classifier(synthetic.images, synthetic.labels, num_classes=data.num_classes, seed=0,
                                 recipe=SmallClassifierRecipe(epochs=epochs))
    images, labels = torch.from_numpy(np.array(data.val.images)), torch.from_numpy(data.val.labels.astype(np.int64))
    normalization = small_classifier_normalization(data.channels)
    logits = predict_logits(model, images, normalization=normalization, device=torch.device("cpu"))
    return compute_metrics(logits, labels, num_classes=data.num_classes, ordinal=data.ordinal, class_names=data.class_names,
                           loss=float(torch.nn.functional.cross_entropy(logits, labels)))


def _row(key: PoolKey, class_name: str, images: int, real_images: int) -> dict:
    return {
        "generator": key.generator, "settings_hash": key.settings_hash, "fit_subset": key.fit_subset,
        "pool_key": key.folder_name, "class": class_name, "images": images, "real_images": real_images,
    }


def write_synthetic_quality(
    report_dir: Path,
    pool_root: str,
    data: SearchData,
    real_only: RealOnlyModel | None,
    settings: QualitySettings | None = None,
    encoder: FeatureEncoder | None = None,
) -> QualityOutputs:
    """Measures every pool key of this dataset and writes the CSVs and grids into `report_dir`.

    The encoder is `encoder` when given, else the real-only model's penultimate layer; label fidelity needs
    `real_only` (NaN without). Real references are training images only: validation images are read only by the
    classification accuracy score, and the test split never."""
    settings = settings or QualitySettings()
    if encoder is None:
        if real_only is None:
            raise ValueError("synthetic quality needs an encoder: a real-only model or a feature extractor")
        encoder = real_only.encoder()
    module = encoder.image_features(data)
    limit = settings.max_images_per_class
    real_indices = first_per_class(data.train.labels, limit)
    real_images, real_labels = data.train.images[real_indices], data.train.labels[real_indices]
    train_features = features_of(module, data.train.images)
    threshold = training_neighbour_threshold(train_features, settings.memorization_percentile)

    pool = SyntheticPool(pool_root)
    pool.refresh()
    rows, copies, grids = [], [], {}
    for key in _pool_keys(pool, data):
        synthetic = _read_key(pool, key, data.num_classes, limit)
        if len(synthetic.labels) == 0:
            continue
        features = features_of(module, synthetic.images)
        memorized = memorization(train_features, features, threshold)
        agrees = _label_fidelity(real_only, synthetic.images, synthetic.labels)
        cas = (
            classification_accuracy_score(synthetic, data, settings.cas_epochs)
            if settings.classification_accuracy_score else {}
        )
        groups = [(ALL_CLASSES, np.ones(len(synthetic.labels), bool), np.ones(len(real_labels), bool))]
        groups += [
            (data.class_names[index], synthetic.labels == index, real_labels == index)
            for index in np.unique(synthetic.labels)
        ]
        for class_name, chosen, real_chosen in groups:
            row = _row(key, class_name, int(chosen.sum()), int(real_chosen.sum()))
            row.update(distribution_distances(module, real_images[real_chosen], synthetic.images[chosen],
                                              kid_subset_size=settings.kid_subset_size))
            real_features = train_features[torch.from_numpy(real_indices[real_chosen])]
            row["precision"], row["recall"] = precision_recall(real_features, features[chosen], settings.precision_recall_k)
            row["density"], row["coverage"] = density_coverage(real_features, features[chosen], settings.density_coverage_k)
            row["memorized_share"] = float(memorized.flagged[chosen].mean())
            row["memorization_threshold"] = threshold
            row["label_fidelity"] = float(agrees[chosen].mean()) if agrees is not None else math.nan
            if cas:
                if class_name == ALL_CLASSES:
                    row["cas_accuracy"], row["cas_balanced_accuracy"] = cas["accuracy"], cas["balanced_accuracy"]
                else:
                    row["cas_recall"] = cas.get(f"recall_{sanitize_class_name(class_name)}", math.nan)
            rows.append(row)
        for position in np.flatnonzero(memorized.flagged):
            copies.append({
                "pool_key": key.folder_name, "class": data.class_names[synthetic.labels[position]],
                "image_id": synthetic.ids[position], "nearest_train_id": str(data.train.ids[memorized.nearest_index[position]]),
                "distance": float(memorized.nearest_distance[position]), "threshold": threshold,
            })
        grids[key.folder_name] = sample_grid(report_dir, synthetic, memorized.nearest_index, memorized.nearest_distance,
                                             data, settings.grid_samples)
    table = pd.DataFrame(rows)
    near_copies = pd.DataFrame(copies, columns=["pool_key", "class", "image_id", "nearest_train_id", "distance", "threshold"])
    csv_path = write_csv(report_dir / QUALITY_FILE, table)
    copies_path = write_csv(report_dir / NEAR_COPIES_FILE, near_copies)
    return QualityOutputs(table, csv_path, near_copies, copies_path, grids, encoder.name)


def _show(axis: plt.Axes, image: np.ndarray) -> None:
    pixels = np.transpose(image, (1, 2, 0))
    axis.imshow(pixels.squeeze(-1) if pixels.shape[-1] == 1 else pixels, cmap="gray", vmin=0, vmax=255)


def sample_grid(
    report_dir: Path, synthetic: _KeyImages, nearest_index: np.ndarray, nearest_distance: np.ndarray, data: SearchData,
    per_class: int,
) -> Path:
    """Two rows per class: its first synthetic images in canonical order, and under each the nearest training image
    in the encoder's feature space (its class and distance in the title): a copy shows as a twin."""
    classes = list(np.unique(synthetic.labels))
    figure, axes = plt.subplots(2 * len(classes), per_class, figsize=(per_class * 1.1, len(classes) * 2.5), squeeze=False)
    for row, class_index in enumerate(classes):
        positions = np.flatnonzero(synthetic.labels == class_index)[:per_class]
        for column in range(per_class):
            top, bottom = axes[2 * row, column], axes[2 * row + 1, column]
            top.axis("off")
            bottom.axis("off")
            if column >= len(positions):
                continue
            position = positions[column]
            _show(top, synthetic.images[position])
            neighbour = nearest_index[position]
            _show(bottom, data.train.images[neighbour])
            neighbour_class = data.class_names[data.train.labels[neighbour]][:10]
            bottom.set_title(f"{neighbour_class} {nearest_distance[position]:.2g}", fontsize=5)
        axes[2 * row, 0].set_title(f"{data.class_names[class_index]}: synthetic", fontsize=7, loc="left")
        axes[2 * row + 1, 0].text(0, -0.35, "nearest real", fontsize=6, transform=axes[2 * row + 1, 0].transAxes)
    key = synthetic.key
    fit = f"_fit-{key.fit_subset[:8]}" if key.fit_subset else ""
    figure.suptitle(f"{key.generator} {key.settings_hash[:8]}{fit.replace('_', ' ')}", fontsize=8)
    figure.tight_layout()
    return save_figure(figure, report_dir / sample_grid_file(key.generator, key.settings_hash, key.fit_subset), dpi=110)
