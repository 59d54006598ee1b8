"""Synthetic images in a trial: how many each class gets, fetched from the shared pool, mixed with the real subset."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import ray
import torch

from generators.actors.pool_actor import get_synthetic_pool
from generators.pool import PoolKey
from spaces import GeneratorSettings, SyntheticConfig
from trainables.datasets import SearchData
from trainables.errors import TrainableInputError
from trainables.real_subset import real_subset_identity, real_subset_indices
from trainables.synthetic_filter import LabelFilter

# A trial waits this long at most for its synthetic images; the driver generates the largest demand of the space
# before trials start, so a trial normally only reads. Generation left to a trial (a space whose demand could not
# be bounded) gets the same bound: a stuck generator fails the trial with a message instead of hanging the sweep.
SYNTHETIC_REQUEST_TIMEOUT_S = 3600.0


def minority_classes(train_counts: np.ndarray) -> list[int]:
    """Classes with fewer training images than the mean class: Kwon's "Mild and Moderate only"."""
    mean = float(np.mean(train_counts))
    return [index for index, count in enumerate(train_counts) if count < mean]


def chosen_classes(config: SyntheticConfig, data: SearchData) -> list[int]:
    if config.classes == "all":
        return list(range(data.num_classes))
    if config.classes == "minority":
        return minority_classes(data.train.class_counts(data.num_classes))
    return sorted({data.class_index(name) for name in config.classes})


def proportion_by_class(config: SyntheticConfig, data: SearchData) -> np.ndarray:
    if not isinstance(config.proportion, dict):
        return np.full(data.num_classes, float(config.proportion))
    proportions = np.zeros(data.num_classes)
    for key, value in config.proportion.items():
        proportions[data.class_index(key)] = float(value)
    return proportions


def synthetic_counts(config: SyntheticConfig, real_counts: np.ndarray, data: SearchData) -> np.ndarray:
    """Synthetic images per class for one trial; `real_counts` are the trial's real subset counts."""
    proportions = proportion_by_class(config, data)
    if config.mode == "add":
        wanted = proportions * real_counts
    else:
        wanted = proportions * (real_counts.max() - real_counts)
    mask = np.zeros(data.num_classes, dtype=bool)
    mask[chosen_classes(config, data)] = True
    return np.where(mask, np.rint(wanted), 0).astype(np.int64)


def generator_fit_subset(data: SearchData, fit_fractions: Mapping[int, float], seed: int) -> tuple[np.ndarray, str]:
    """The real subset a fitted generator is fit on for one seed, and its identity.

    It is the subset of the smallest fraction per class the space can draw; subsets are nested per
    seed, so it lies inside every trial's real subset for that seed and no trial sees a generator
    that learnt from images outside its own subset.
    """
    indices = real_subset_indices(data.train.labels, dict(fit_fractions), seed, data.train.groups)
    return indices, real_subset_identity(data.name, data.train.ids[indices])


def pool_dataset_name(data: SearchData) -> str:
    """The pool's name for this dataset as preprocessed: a readable label (the source's name, image size and
    channels) and the fingerprint of its training images, so two datasets never share synthetic images."""
    label = re.sub(r"[^A-Za-z0-9_.]+", "_", data.name).strip("_.") or "dataset"
    return f"{label}-{data.image_size}px-{data.channels}ch-{data.fingerprint}"


@dataclass(frozen=True)
class SyntheticSource:
    """Where a sweep's trials get synthetic images: the pool's storage root, and the smallest real fraction per
    class the sweep can draw, on which fitted generators are fit (so each seed's fit subset is known)."""

    pool_root: str
    fit_fractions: dict[int, float]
    # Per repeat seed, the label filter fit on that seed's fit subset (search/synthetic/label_filters.py); empty
    # when no trial of the sweep can draw `synthetic.filter: label_fidelity`.
    label_filters: dict[int, LabelFilter] = field(default_factory=dict)

    def pool_key(self, settings: GeneratorSettings, data: SearchData, seed: int) -> PoolKey:
        """The key of the images a trial of repeat `seed` may take from this generator."""
        fit_subset = generator_fit_subset(data, self.fit_fractions, seed)[1] if settings.needs_fit else None
        return PoolKey(
            generator=settings.generator,
            settings_hash=settings.settings_hash,
            dataset=pool_dataset_name(data),
            fit_subset=fit_subset,
        )


@dataclass(frozen=True)
class SyntheticDraw:
    """The provenance of a trial's synthetic images of one class: the first `count` of the pool key's canonical
    order, less the positions among them a label filter dropped, so every image is named (and reproducible)
    without carrying a record per image."""

    class_index: int
    count: int
    pool_key: str
    dropped: tuple[int, ...] = ()

    @property
    def kept_count(self) -> int:
        return self.count - len(self.dropped)


@dataclass(frozen=True)
class MixedTrainingSet:
    """Real and synthetic training images together; each sample knows whether it is synthetic."""

    images: torch.Tensor  # uint8 [N, C, H, W]
    labels: torch.Tensor  # int64 [N]
    is_synthetic: torch.Tensor  # bool [N]
    draws: tuple[SyntheticDraw, ...]  # where the synthetic samples, in order, came from


def mix_real_and_synthetic(
    real_images: torch.Tensor, real_labels: torch.Tensor, synthetic: list[tuple[SyntheticDraw, np.ndarray]]
) -> MixedTrainingSet:
    """Appends each class's synthetic images after the real ones; batches are shuffled per epoch anyway."""
    images = [real_images]
    labels = [real_labels]
    for draw, class_images in synthetic:
        # A copy: arrays from Ray's object store are read-only, and torch wants to own what it may write.
        images.append(torch.from_numpy(np.array(class_images)))
        labels.append(torch.full((len(class_images),), draw.class_index, dtype=torch.int64))
    synthetic_total = sum(len(class_images) for _, class_images in synthetic)
    is_synthetic = torch.cat([torch.zeros(len(real_labels), dtype=torch.bool), torch.ones(synthetic_total, dtype=torch.bool)])
    return MixedTrainingSet(torch.cat(images), torch.cat(labels), is_synthetic, tuple(draw for draw, _ in synthetic))


def fetch_synthetic_images(
    config: SyntheticConfig, source: SyntheticSource | None, data: SearchData, real_indices: np.ndarray, seed: int
) -> list[tuple[SyntheticDraw, np.ndarray]]:
    """Each class's synthetic images for one repeat seed's real subset, from the shared pool, which generates
    whatever is missing once for every trial."""
    real_counts = np.bincount(data.train.labels[real_indices], minlength=data.num_classes)
    counts = synthetic_counts(config, real_counts, data)
    if counts.sum() == 0:
        return []
    if source is None:
        raise TrainableInputError("synthetic images were asked for, but the sweep prepared no synthetic pool for this trial")
    pool = get_synthetic_pool(source.pool_root)
    key = source.pool_key(config.settings, data, seed)
    image_to_image = config.settings.image_to_image
    subset_ids = [str(image_id) for image_id in data.train.ids[real_indices]]
    requests = []
    for class_index, count in enumerate(counts):
        if count <= 0:
            continue
        allowed_sources = sources = None
        if image_to_image:
            # Image-to-image sources are the trial's own real images of that class, never others.
            in_class = real_indices[data.train.labels[real_indices] == class_index]
            allowed_sources = [str(image_id) for image_id in data.train.ids[in_class]]
            sources = {str(data.train.ids[index]): data.train.images[index] for index in in_class}
        reference = pool.request.remote(
            key, class_index, int(count), trial_subset_ids=subset_ids, allowed_source_ids=allowed_sources, sources=sources
        )
        requests.append((SyntheticDraw(class_index, int(count), key.folder_name), reference))
    drawn = [(draw, ray.get(reference, timeout=SYNTHETIC_REQUEST_TIMEOUT_S)[0]) for draw, reference in requests]
    if config.filter == "none":
        return drawn
    return [filter_draw(draw, images, label_filter_of(source, seed), config.filter_threshold) for draw, images in drawn]


def label_filter_of(source: SyntheticSource, seed: int) -> LabelFilter:
    if seed not in source.label_filters:
        raise TrainableInputError(
            f"synthetic.filter 'label_fidelity' was asked for, but the sweep fit no label filter for repeat seed {seed} "
            f"(filters for seeds {sorted(source.label_filters)}): the driver fits them before trials start"
        )
    return source.label_filters[seed]


def filter_draw(
    draw: SyntheticDraw, images: np.ndarray, label_filter: LabelFilter, threshold: float
) -> tuple[SyntheticDraw, np.ndarray]:
    """The drawn images the filter keeps, in canonical order, and the draw naming the positions it dropped.

    A trial drops from the n images it drew rather than drawing more until n are kept: the pool's images stay the
    first n of the canonical order (prepared before trials, nested between trials), and how many a filter drops
    is itself a measure of the generator, reported as `synthetic_filtered`."""
    kept = label_filter.kept(images, draw.class_index, threshold)
    dropped = tuple(int(position) for position in np.flatnonzero(~kept))
    return SyntheticDraw(draw.class_index, draw.count, draw.pool_key, dropped), images[kept]


def filtered_counts(draws: tuple[SyntheticDraw, ...], num_classes: int) -> np.ndarray:
    """Synthetic images per class a label filter dropped (int64 [num_classes])."""
    counts = np.zeros(num_classes, np.int64)
    for draw in draws:
        counts[draw.class_index] += len(draw.dropped)
    return counts
