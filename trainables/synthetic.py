"""Synthetic images in a trial: how many each class gets, fetched from the shared pool, mixed with the real subset."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import ray
import torch

from generators.base import generator_class, settings_hash
from generators.pool import PoolKey
from generators.pool_actor import GeneratorAttachment, get_synthetic_pool
from spaces.schema import SyntheticConfig
from trainables.augmentation import create_augmentation
from trainables.datasets import SearchData
from trainables.errors import TrainableInputError
from trainables.real_subset import real_subset_identity, real_subset_indices


def minority_classes(train_counts: np.ndarray) -> list[int]:
    """Classes with fewer training images than the mean class: Kwon's "Mild and Moderate only"."""
    mean = float(np.mean(train_counts))
    return [index for index, count in enumerate(train_counts) if count < mean]


def class_index(key: str, class_names: tuple[str, ...], field: str) -> int:
    if key in class_names:
        return class_names.index(key)
    if str(key).isdigit() and int(key) < len(class_names):
        return int(key)
    raise TrainableInputError(f"{field}: {key!r} is not a class of this dataset; classes: {', '.join(class_names)} (or their indices)")


def chosen_classes(config: SyntheticConfig, class_names: tuple[str, ...], train_counts: np.ndarray) -> list[int]:
    if config.classes == "all":
        return list(range(len(class_names)))
    if config.classes == "minority":
        return minority_classes(train_counts)
    return sorted({class_index(name, class_names, "synthetic.classes") for name in config.classes})


def proportion_by_class(config: SyntheticConfig, class_names: tuple[str, ...]) -> np.ndarray:
    if not isinstance(config.proportion, dict):
        return np.full(len(class_names), float(config.proportion))
    proportions = np.zeros(len(class_names))
    for key, value in config.proportion.items():
        proportions[class_index(key, class_names, f"synthetic.proportion.{key}")] = float(value)
    return proportions


def synthetic_counts(config: SyntheticConfig, real_counts: np.ndarray, class_names: tuple[str, ...], train_counts: np.ndarray) -> np.ndarray:
    """Synthetic images per class for one trial; `real_counts` are the trial's real subset counts."""
    proportions = proportion_by_class(config, class_names)
    if config.mode == "add":
        wanted = proportions * real_counts
    else:
        wanted = proportions * (real_counts.max() - real_counts)
    mask = np.zeros(len(class_names), dtype=bool)
    mask[chosen_classes(config, class_names, train_counts)] = True
    return np.where(mask, np.rint(wanted), 0).astype(np.int64)


class OversampleAugmentation:
    """The `custom` augmentation as a picklable callable, for the oversample generator in its actor."""

    def __init__(self, parameters: Mapping[str, Any]) -> None:
        self.parameters = dict(parameters)
        self._transform = None

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        if self._transform is None:
            self._transform = create_augmentation("custom", **self.parameters)
        return self._transform(image)

    def __getstate__(self) -> dict[str, Any]:
        return {"parameters": self.parameters, "_transform": None}


def generator_fit_subset(data: SearchData, fit_fractions: Mapping[int, float], seed: int) -> tuple[np.ndarray, str]:
    """The real subset a fitted generator is fit on for one seed, and its identity.

    It is the subset of the smallest fraction per class the space can draw; subsets are nested per
    seed, so it lies inside every trial's real subset for that seed and no trial sees a generator
    that learnt from images outside its own subset.
    """
    indices = real_subset_indices(data.train.labels, dict(fit_fractions), seed)
    return indices, real_subset_identity(data.name, data.train.ids[indices])


@dataclass(frozen=True)
class SyntheticSource:
    """Where a sweep's trials get synthetic images: the pool's storage root, the fit subset rule, and the
    generator actors of each pool key, which trials hand to the pool actor should it have restarted."""

    pool_root: str
    # The smallest real fraction per class the sweep can draw; fitted generators are fit on that subset.
    fit_fractions: dict[int, float]
    generators: dict[PoolKey, GeneratorAttachment] = field(default_factory=dict)


def synthetic_images_for(
    config: SyntheticConfig, source: SyntheticSource | None, data: SearchData, real_indices: np.ndarray, seed: int
) -> tuple[np.ndarray, list[tuple[int, np.ndarray, list[dict[str, Any]]]]]:
    """(counts per class, fetched images per class) for one repeat seed's real subset."""
    real_counts = np.bincount(data.train.labels[real_indices], minlength=data.num_classes)
    counts = synthetic_counts(config, real_counts, data.class_names, data.train.class_counts(data.num_classes))
    if counts.sum() == 0:
        return counts, []
    if source is None:
        raise TrainableInputError("synthetic images were asked for, but this trial has no synthetic pool (pool_root)")
    fit_subset = None
    if generator_class(config.generator).needs_fit:
        fit_subset = generator_fit_subset(data, source.fit_fractions, seed)[1]
    return counts, fetch_synthetic_images(source, config, counts, data, real_indices, fit_subset)


def pool_dataset_name(data: SearchData) -> str:
    """The pool's name for this dataset as preprocessed: ids and image shapes only mean something within it."""
    base = re.sub(r"[^A-Za-z0-9_.]+", "_", data.name).strip("_.") or "dataset"
    return f"{base}-{data.image_size}px-{data.channels}ch"


def pool_key_for(config: SyntheticConfig, dataset: str, fit_subset: str | None) -> PoolKey:
    return PoolKey(
        generator=config.generator, settings_hash=settings_hash(config.generator, config.settings),
        dataset=dataset, fit_subset=fit_subset,
    )


@dataclass(frozen=True)
class MixedTrainingSet:
    """Real and synthetic training images together; each sample knows whether it is synthetic."""

    images: torch.Tensor        # uint8 [N, C, H, W]
    labels: torch.Tensor        # int64 [N]
    is_synthetic: torch.Tensor  # bool [N]
    provenance: list[dict[str, Any]]  # one record per synthetic image, in order


def mix_real_and_synthetic(
    real_images: torch.Tensor, real_labels: torch.Tensor, synthetic: list[tuple[int, np.ndarray, list[dict[str, Any]]]]
) -> MixedTrainingSet:
    """Appends each class's synthetic images after the real ones; batches are shuffled per epoch anyway."""
    images = [real_images]
    labels = [real_labels]
    provenance: list[dict[str, Any]] = []
    for class_index_value, class_images, records in synthetic:
        if len(class_images) == 0:
            continue
        images.append(torch.from_numpy(np.ascontiguousarray(class_images)))
        labels.append(torch.full((len(class_images),), class_index_value, dtype=torch.int64))
        provenance.extend(records)
    synthetic_total = sum(len(class_images) for _, class_images, _ in synthetic)
    is_synthetic = torch.cat([torch.zeros(len(real_labels), dtype=torch.bool), torch.ones(synthetic_total, dtype=torch.bool)])
    return MixedTrainingSet(torch.cat(images), torch.cat(labels), is_synthetic, provenance)


def fetch_synthetic_images(
    source: SyntheticSource,
    config: SyntheticConfig,
    counts: np.ndarray,
    data: SearchData,
    real_indices: np.ndarray,
    fit_subset: str | None,
) -> list[tuple[int, np.ndarray, list[dict[str, Any]]]]:
    """Asks the shared pool for each class's images; the pool generates what is missing, once, for every trial."""
    pool = get_synthetic_pool(source.pool_root)
    key = pool_key_for(config, pool_dataset_name(data), fit_subset)
    generators = source.generators.get(key)
    image_to_image = generator_class(config.generator).image_to_image
    subset_ids = [str(image_id) for image_id in data.train.ids[real_indices]]
    requests = []
    for class_index_value, count in enumerate(counts):
        if count <= 0:
            continue
        allowed_sources = sources = None
        if image_to_image:
            # Image-to-image sources are the trial's own real images of that class, never others.
            in_class = real_indices[data.train.labels[real_indices] == class_index_value]
            allowed_sources = [str(image_id) for image_id in data.train.ids[in_class]]
            sources = {str(data.train.ids[index]): data.train.images[index] for index in in_class}
        requests.append((class_index_value, pool.request.remote(
            key, class_index_value, int(count), trial_subset_ids=subset_ids,
            allowed_source_ids=allowed_sources, sources=sources, generators=generators,
        )))
    fetched = []
    for class_index_value, reference in requests:
        images, records = ray.get(reference)
        fetched.append((class_index_value, images, records))
    return fetched
