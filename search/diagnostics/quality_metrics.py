"""How close synthetic images are to real ones, on the features of an image encoder: Fréchet distance, KID and
MiFID through torchmetrics (given the encoder as their feature module), improved precision / recall (Kynkäänniemi
et al. 2019), density / coverage (Naeem et al. 2020), and memorization (nearest training image closer than
training images are to each other)."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as functional
from torch import Tensor, nn
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.kid import KernelInceptionDistance
from torchmetrics.image.mifid import MemorizationInformedFrechetInceptionDistance

from trainables.training import Normalization, to_model_input

FEATURE_BATCH_SIZE = 256


class ImageFeatures(nn.Module):
    """uint8 images [N, C, H, W] -> float features [N, D]: normalised per channel, resized to `image_size` when
    given (an extractor trained at another size), through `encoder`. What torchmetrics' FID and KID take as
    `feature` (they read `num_features` and pass the uint8 images as they are)."""

    def __init__(self, encoder: nn.Module, normalization: Normalization, *, channels: int, image_size: int,
                 resize_to: int | None = None) -> None:
        super().__init__()
        self.encoder = encoder.eval()
        self.mean, self.std = normalization
        self.resize_to = resize_to
        with torch.no_grad():
            self.num_features = int(self(torch.zeros(2, channels, image_size, image_size, dtype=torch.uint8)).shape[1])

    def train(self, mode: bool = True) -> ImageFeatures:
        return super().train(False)  # an encoder measured with, never trained

    def forward(self, images: Tensor) -> Tensor:
        inputs = to_model_input(images, self.mean, self.std)
        if self.resize_to is not None and inputs.shape[-1] != self.resize_to:
            inputs = functional.interpolate(inputs, size=(self.resize_to, self.resize_to), mode="bilinear", antialias=True)
        return self.encoder(inputs).flatten(1).float()


@torch.no_grad()
def features_of(module: ImageFeatures, images: np.ndarray) -> Tensor:
    """float64 features [N, D] of uint8 images [N, C, H, W], in batches."""
    if len(images) == 0:
        return torch.zeros(0, module.num_features, dtype=torch.float64)
    pixels = torch.from_numpy(np.array(images))
    return torch.cat([module(batch).double() for batch in torch.split(pixels, FEATURE_BATCH_SIZE)])


def distribution_distances(
    module: ImageFeatures, real: np.ndarray, synthetic: np.ndarray, *, kid_subset_size: int = 50, kid_subsets: int = 100
) -> dict[str, float]:
    """frechet_distance, kid_mean, kid_std and mifid of synthetic against real uint8 images, torchmetrics' own
    implementations on `module`'s features. NaN where a set is too small (fewer than 2 images)."""
    nan = {"frechet_distance": math.nan, "kid_mean": math.nan, "kid_std": math.nan, "mifid": math.nan}
    if min(len(real), len(synthetic)) < 2:
        return nan
    real_pixels = torch.from_numpy(np.array(real))
    synthetic_pixels = torch.from_numpy(np.array(synthetic))
    subset_size = min(kid_subset_size, len(real), len(synthetic))
    with warnings.catch_warnings():
        # KID keeps every feature in memory, which it warns about; the sets measured here are capped per class.
        warnings.filterwarnings("ignore", message=".*will save all extracted features in buffer.*")
        metrics = {
            "frechet_distance": FrechetInceptionDistance(feature=module),
            "kid": KernelInceptionDistance(feature=module, subset_size=subset_size, subsets=kid_subsets),
            "mifid": MemorizationInformedFrechetInceptionDistance(feature=module),
        }
    values: dict[str, float] = {}
    torch.manual_seed(0)  # KID draws its subsets with torch's generator: the same numbers every run
    for name, metric in metrics.items():
        for batch in torch.split(real_pixels, FEATURE_BATCH_SIZE):
            metric.update(batch, real=True)
        for batch in torch.split(synthetic_pixels, FEATURE_BATCH_SIZE):
            metric.update(batch, real=False)
        with torch.no_grad():
            result = metric.compute()
        if name == "kid":
            values["kid_mean"], values["kid_std"] = float(result[0]), float(result[1])
        else:
            # Round-off can leave a distance of two equal sets a hair below zero.
            values[name] = max(0.0, float(result))
    return values


def nearest_neighbours(queries: Tensor, references: Tensor, *, exclude_self: bool = False,
                       chunk: int = 1024) -> tuple[Tensor, Tensor]:
    """(distance, index) of each query's nearest reference (Euclidean), in chunks; `exclude_self` when queries
    are the references (then an image is not its own neighbour)."""
    distances, indices = [], []
    for start in range(0, len(queries), chunk):
        block = torch.cdist(queries[start:start + chunk], references)
        if exclude_self:
            rows = torch.arange(block.shape[0])
            block[rows, rows + start] = math.inf
        distance, index = block.min(dim=1)
        distances.append(distance)
        indices.append(index)
    return torch.cat(distances), torch.cat(indices)


def kth_neighbour_radii(features: Tensor, k: int) -> Tensor:
    """Each sample's distance to its k-th nearest other sample: the radius of its k-NN ball."""
    distances = torch.cdist(features, features)
    distances.fill_diagonal_(math.inf)
    return distances.kthvalue(k, dim=1).values


def precision_recall(real: Tensor, synthetic: Tensor, k: int = 3) -> tuple[float, float]:
    """Improved precision and recall (Kynkäänniemi et al. 2019): precision is the share of synthetic samples inside
    the real manifold (some real sample's k-NN ball); recall the share of real samples inside the synthetic one.
    NaN when a set has no more than k samples."""
    if len(real) <= k or len(synthetic) <= k:
        return math.nan, math.nan
    real_radii, synthetic_radii = kth_neighbour_radii(real, k), kth_neighbour_radii(synthetic, k)
    distances = torch.cdist(synthetic, real)  # [synthetic, real]
    precision = (distances <= real_radii[None, :]).any(dim=1).double().mean()
    recall = (distances <= synthetic_radii[:, None]).any(dim=0).double().mean()
    return float(precision), float(recall)


def density_coverage(real: Tensor, synthetic: Tensor, k: int = 5) -> tuple[float, float]:
    """Density and coverage (Naeem et al. 2020), both from real k-NN balls only (robust to synthetic outliers):
    density counts how many real balls hold each synthetic sample, over k (about 1 for matching distributions,
    above 1 when samples crowd where real ones are dense); coverage is the share of real balls holding at least one
    synthetic sample. NaN when the real set has no more than k samples or there are no synthetic ones."""
    if len(real) <= k or len(synthetic) == 0:
        return math.nan, math.nan
    radii = kth_neighbour_radii(real, k)
    inside = torch.cdist(synthetic, real) <= radii[None, :]  # [synthetic, real]
    density = inside.double().sum() / (k * len(synthetic))
    coverage = inside.any(dim=0).double().mean()
    return float(density), float(coverage)


@dataclass(frozen=True)
class Memorization:
    """Which synthetic samples are near-copies of a training image.

    threshold: the `percentile`-th percentile of the training images' distances to their nearest other training
    image; a synthetic sample whose nearest training image is at most that far is as close to it as only the
    closest `percentile`% of training pairs are to each other, and is flagged. A fresh image from the real
    distribution is flagged with probability about percentile / 100; an exact copy always is."""

    threshold: float
    nearest_index: np.ndarray     # int64 [synthetic]: the nearest training sample
    nearest_distance: np.ndarray  # float64 [synthetic]
    flagged: np.ndarray           # bool [synthetic]

    @property
    def share(self) -> float:
        return float(self.flagged.mean()) if len(self.flagged) else math.nan


def training_neighbour_threshold(train: Tensor, percentile: float) -> float:
    if len(train) < 2:
        return math.nan
    distances, _ = nearest_neighbours(train, train, exclude_self=True)
    return float(np.percentile(distances.numpy(), percentile))


def memorization(train: Tensor, synthetic: Tensor, threshold: float) -> Memorization:
    """Flags synthetic samples whose nearest training sample lies within `threshold` (training_neighbour_threshold)."""
    if len(synthetic) == 0 or len(train) == 0:
        empty = np.zeros(0)
        return Memorization(threshold, empty.astype(np.int64), empty, empty.astype(bool))
    distances, indices = nearest_neighbours(synthetic, train)
    distance = distances.numpy()
    flagged = distance <= threshold if not math.isnan(threshold) else np.zeros(len(distance), bool)
    return Memorization(threshold, indices.numpy().astype(np.int64), distance, flagged)
