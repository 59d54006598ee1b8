"""What a sweep stores: each finished trial keeps no training state, and the sweep says how many bytes it wrote
(storage.json, written by search.report)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pyarrow.fs
from ray import tune
from ray.tune import ResultGrid

from trainables.replicas import drop_training_state
from trainables.tune_reporting import CHECKPOINT_BYTES


def keep_only_best_weights(results: ResultGrid, experiment_path: str) -> int:
    """Deletes the optimizer state from the kept checkpoints of every trial that will not train again.

    A trial that finishes by itself writes its last checkpoint without it; one that a scheduler or the time budget
    stopped kept the state it last wrote to continue. Only trials Tune has marked TERMINATED lose it: failed ones
    and those an interrupted sweep left running are what `--resume` continues. Returns how many checkpoints lost
    their training state."""
    terminated = {trial.trial_id for trial in tune.ExperimentAnalysis(experiment_path).trials if trial.status == "TERMINATED"}
    dropped = 0
    for result in results:
        if result.error is not None or (result.metrics or {}).get("trial_id") not in terminated:
            continue
        for checkpoint, _ in result.best_checkpoints or []:
            dropped += drop_training_state(checkpoint)
    return dropped


def stored_bytes(location: str) -> int:
    """Bytes of every file under a folder or URI (s3://...) at this moment; 0 where nothing is."""
    filesystem, path = pyarrow.fs.FileSystem.from_uri(location if "://" in location else str(Path(location).resolve()))
    selector = pyarrow.fs.FileSelector(path, recursive=True, allow_not_found=True)
    return sum(info.size or 0 for info in filesystem.get_file_info(selector) if info.type == pyarrow.fs.FileType.File)


@dataclass(frozen=True)
class StorageUsage:
    # Every checkpoint the trials saved, including those Tune deleted later: what went over the wire to storage.
    checkpoint_bytes_written: int
    # What the sweep's folder (results, checkpoints) and the shared pool hold once the sweep has ended; None
    # where the storage could not be listed (`unlisted` says why).
    experiment_bytes: int | None
    pool_bytes: int | None
    unlisted: str | None = None

    def describe(self) -> str:
        stored = (
            f"now stored: sweep {self.experiment_bytes / 1e6:.1f} MB, synthetic pool {self.pool_bytes / 1e6:.1f} MB"
            if self.experiment_bytes is not None and self.pool_bytes is not None
            else f"what is stored now could not be listed: {self.unlisted}"
        )
        return f"Storage: checkpoints written {self.checkpoint_bytes_written / 1e6:.1f} MB; {stored}"


def measure_storage(results: ResultGrid, experiment_path: str, pool_root: str | None) -> StorageUsage:
    written = 0.0
    for result in results:
        frame = result.metrics_dataframe
        if frame is not None and CHECKPOINT_BYTES in frame:
            written += float(frame[CHECKPOINT_BYTES].fillna(0).sum())
    try:
        # The sweep's results are complete by now: a storage that cannot be listed costs the figures, not the report.
        return StorageUsage(int(written), stored_bytes(experiment_path), stored_bytes(pool_root) if pool_root else 0)
    except (OSError, ValueError) as error:
        return StorageUsage(int(written), None, None, f"{type(error).__name__}: {error}")
