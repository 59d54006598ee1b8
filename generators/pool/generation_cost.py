"""What a pool key's images cost to make: the fit of its generator and the seconds per generated image, as
measured by the generator actors that made them. Trials read it to report their share of generation
(trainables/trial_cost.py); it is a rate per key, so it does not depend on which trial asked first.

Layout: `<key folder>/generation_times/<writer>.json` holds {"images", "seconds", "gpu_seconds"}, the running
totals of one generator actor instance for that key, rewritten whole after each batch. One file per writer, so
replicas never write the same file; a restarted replica starts a new one. The fit is in the model's fit record
(`fit_seconds`, `fit_gpus`).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

from generators.pool.storage import TEMPORARY_PREFIX, PoolStorage

logger = logging.getLogger(__name__)

GENERATION_TIMES = "generation_times"


@dataclass
class GenerationTotals:
    """One writer's running totals for one key."""

    images: int = 0
    seconds: float = 0.0
    gpu_seconds: float = 0.0

    def add(self, images: int, seconds: float, gpus: float) -> None:
        self.images += int(images)
        self.seconds += float(seconds)
        self.gpu_seconds += float(seconds) * float(gpus)


def write_generation_totals(storage: PoolStorage, folder: str, writer: str, totals: GenerationTotals) -> None:
    payload = {"images": totals.images, "seconds": totals.seconds, "gpu_seconds": totals.gpu_seconds}
    storage.write(storage.path(folder, GENERATION_TIMES, f"{writer}.json"), json.dumps(payload).encode("utf-8"))


@dataclass(frozen=True)
class KeyCost:
    """What reproducing a key's images costs on their own: its generator's fit (0 for generators that need none)
    and the measured seconds per image; `timed_images` 0 means no generation of this key was timed (images
    made before timing was recorded), so its per-image figures are 0."""

    fit_seconds: float
    fit_gpu_seconds: float
    seconds_per_image: float
    gpu_seconds_per_image: float
    timed_images: int

    def to_dict(self) -> dict[str, float]:
        return {
            "fit_seconds": self.fit_seconds, "fit_gpu_seconds": self.fit_gpu_seconds,
            "seconds_per_image": self.seconds_per_image, "gpu_seconds_per_image": self.gpu_seconds_per_image,
            "timed_images": float(self.timed_images),
        }


def key_cost(storage: PoolStorage, folder: str) -> KeyCost:
    """The fit and per-image generation figures of one key folder (unreadable timing files are skipped)."""
    images, seconds, gpu_seconds = 0, 0.0, 0.0
    for info in storage.list(storage.path(folder, GENERATION_TIMES)):
        if not info.base_name.endswith(".json") or info.base_name.startswith(TEMPORARY_PREFIX):
            continue
        try:
            totals = json.loads(storage.read_bytes(info.path))
            images, seconds = images + int(totals["images"]), seconds + float(totals["seconds"])
            gpu_seconds += float(totals["gpu_seconds"])
        except (FileNotFoundError, ValueError, KeyError, TypeError) as error:
            logger.warning("ignoring unreadable generation times %s: %s", info.path, error)
    fit_seconds = fit_gpu_seconds = 0.0
    fit_record = storage.path(folder, "model", "fit_info.json")
    if storage.exists(storage.path(folder, "model", "COMPLETE")):
        record = json.loads(storage.read_bytes(fit_record))
        fit_seconds = float(record.get("fit_seconds", 0.0))
        fit_gpu_seconds = fit_seconds * float(record.get("fit_gpus", 0.0))
    per_image = (seconds / images, gpu_seconds / images) if images else (0.0, 0.0)
    return KeyCost(fit_seconds, fit_gpu_seconds, per_image[0], per_image[1], images)
