"""A trial's compute cost, reported with every result: what reproducing this configuration on its own costs.

- `cost_train_seconds`: wall seconds of the trial's own training and validation epochs, all repeats, counted
  across resumes and retries (a resumed trial continues from the count in its checkpoint's metrics; epochs
  lost after the last checkpoint are counted again when they are retrained).
- `cost_synthetic_seconds`: its standalone share of the synthetic images it uses, which does not depend on which
  trial happened to ask the pool first: for each pool key it draws, the fit seconds of that key's generator (from
  the pool's fit record; 0 for generators without a fit) plus the key's measured seconds per generated image
  times the images the trial draws from it (per class, the most any repeat draws, since repeats of one key draw
  prefixes of one canonical order; summed over repeats for image-to-image generators, whose sources are each
  repeat's own real images). Images a label filter drops count: they were made.
- `cost_seconds` = the two together; `cost_gpu_seconds` = training seconds x the trial's GPUs plus the same share
  of the generators' GPU-seconds (0 on CPUs).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import ray

from generators.actors.generator_actor import assigned_gpus
from generators.actors.pool_actor import get_synthetic_pool
from trainables.synthetic_mixing import SyntheticDraw, SyntheticSource

COST_SECONDS = "cost_seconds"
COST_GPU_SECONDS = "cost_gpu_seconds"
COST_TRAIN_SECONDS = "cost_train_seconds"
COST_SYNTHETIC_SECONDS = "cost_synthetic_seconds"
COST_COLUMNS = (COST_SECONDS, COST_GPU_SECONDS, COST_TRAIN_SECONDS, COST_SYNTHETIC_SECONDS)
# Reading a key's cost is a few small files; a stuck pool fails the trial with a message, not a hang.
KEY_COST_TIMEOUT_S = 300.0


@dataclass(frozen=True)
class SyntheticCost:
    seconds: float = 0.0
    gpu_seconds: float = 0.0


def images_per_key(draws: Iterable[SyntheticDraw], image_to_image: bool) -> dict[str, int]:
    """Pool images the trial's repeats use, per key folder (see the module's definition)."""
    per_class: dict[tuple[str, int], int] = {}
    for draw in draws:
        slot = (draw.pool_key, draw.class_index)
        before = per_class.get(slot, 0)
        per_class[slot] = before + draw.count if image_to_image else max(before, draw.count)
    totals: dict[str, int] = {}
    for (folder, _), count in per_class.items():
        totals[folder] = totals.get(folder, 0) + count
    return totals


def synthetic_cost(images: Mapping[str, int], key_costs: Mapping[str, Mapping[str, float]]) -> SyntheticCost:
    """Each key's fit plus its per-image seconds times the images used (key_costs: KeyCost.to_dict per folder)."""
    seconds = gpu_seconds = 0.0
    for folder, count in images.items():
        cost = key_costs[folder]
        seconds += cost["fit_seconds"] + cost["seconds_per_image"] * count
        gpu_seconds += cost["fit_gpu_seconds"] + cost["gpu_seconds_per_image"] * count
    return SyntheticCost(seconds, gpu_seconds)


def synthetic_cost_of(
    draws: Iterable[SyntheticDraw], image_to_image: bool, source: SyntheticSource | None
) -> SyntheticCost:
    """The trial's share of generation, from the pool actor's figures per key; nothing drawn costs nothing."""
    images = {folder: count for folder, count in images_per_key(draws, image_to_image).items() if count > 0}
    if not images or source is None:
        return SyntheticCost()
    pool = get_synthetic_pool(source.pool_root)
    folders = sorted(images)
    figures = ray.get([pool.generation_cost.remote(folder) for folder in folders], timeout=KEY_COST_TIMEOUT_S)
    return synthetic_cost(images, dict(zip(folders, figures)))


@dataclass
class TrialCost:
    """The running cost of one trial; `train_seconds` starts from a resumed checkpoint's count."""

    synthetic: SyntheticCost
    gpus: float
    train_seconds: float = 0.0

    @classmethod
    def here(cls, synthetic: SyntheticCost) -> TrialCost:
        return cls(synthetic, assigned_gpus())

    def resume_from(self, metrics: Mapping[str, float]) -> None:
        self.train_seconds = float(metrics.get(COST_TRAIN_SECONDS, 0.0))

    def figures(self) -> dict[str, float]:
        return {
            COST_SECONDS: self.train_seconds + self.synthetic.seconds,
            COST_GPU_SECONDS: self.train_seconds * self.gpus + self.synthetic.gpu_seconds,
            COST_TRAIN_SECONDS: self.train_seconds,
            COST_SYNTHETIC_SECONDS: self.synthetic.seconds,
        }
