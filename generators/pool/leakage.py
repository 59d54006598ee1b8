"""The leakage rules of a pool, checked once at its door: synthetic images come from training images only, and a
trial uses only image-to-image sources and fitted generators inside its own real subset."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass

from generators.errors import LeakageError, PoolError
from generators.pool.dataset_registry import DatasetRegistry
from generators.pool.keys import PoolKey, SlotKey, check_ids, examples
from generators.pool.model_store import ModelStore


@dataclass(frozen=True)
class AdmittedRequest:
    """A request the leakage rules let through, made only by check_request: reading with it checks nothing again."""

    key: PoolKey
    allowed_source_ids: tuple[str, ...] | None


class LeakageRules:
    """Checks fits, requests and written batches against the registered training ids and stored fit subsets."""

    def __init__(self, datasets: DatasetRegistry, models: ModelStore) -> None:
        self._datasets = datasets
        self._models = models
        # A stored fit never changes, so its ids are read once per process.
        self._fit_subset_ids: dict[PoolKey, frozenset[str]] = {}
        self._lock = threading.Lock()

    def check_fit_subset(self, key: PoolKey, fit_subset_ids: Sequence[str]) -> None:
        """Refuses a fit subset that holds any id that is not a training image of the key's dataset."""
        ids = set(check_ids(fit_subset_ids, "fit_subset_ids"))
        if not ids:
            raise PoolError(f"fit_subset_ids of {key.folder_name} is empty: a fitted generator needs training images")
        outside = ids - self._datasets.get(key.dataset).train_ids
        if outside:
            raise LeakageError(
                f"rule 'generators are fit on training images only': the fit subset of {key.folder_name} holds "
                f"{len(outside)} ids that are not training ids of dataset {key.dataset!r} (validation, test or "
                f"unknown): {examples(outside)}"
            )

    def check_request(
        self, key: PoolKey, trial_subset_ids: Sequence[str], allowed_source_ids: Sequence[str] | None = None
    ) -> AdmittedRequest:
        """Refuses a request that would leak: a trial subset or image-to-image source that is not a training
        image, a source outside the trial's real subset, or a generator fit on images outside it."""
        trial_ids = set(check_ids(trial_subset_ids, "trial_subset_ids"))
        train_ids = self._datasets.get(key.dataset).train_ids
        outside_train = trial_ids - train_ids
        if outside_train:
            raise LeakageError(
                f"rule 'synthetic images come from training images only': trial_subset_ids holds {len(outside_train)} "
                f"ids that are not training ids of dataset {key.dataset!r}: {examples(outside_train)}"
            )
        sources: set[str] | None = None
        if allowed_source_ids is not None:
            sources = set(check_ids(allowed_source_ids, "allowed_source_ids"))
            not_training = sources - train_ids
            if not_training:
                raise LeakageError(
                    f"rule 'image-to-image sources are training images only': allowed_source_ids holds "
                    f"{len(not_training)} ids that are not training ids of dataset {key.dataset!r}: "
                    f"{examples(not_training)}"
                )
            outside_trial = sources - trial_ids
            if outside_trial:
                raise LeakageError(
                    f"rule 'image-to-image sources lie inside the trial's real subset': allowed_source_ids holds "
                    f"{len(outside_trial)} ids outside trial_subset_ids: {examples(outside_trial)}"
                )
        if key.fit_subset is not None:
            outside_trial = self._fit_ids(key) - trial_ids
            if outside_trial:
                raise LeakageError(
                    f"rule 'a trial only uses generators fit on a subset of its own real subset': {key.generator} "
                    f"was fit on subset {key.fit_subset!r}, of which {len(outside_trial)} images are not in the "
                    f"trial's real subset: {examples(outside_trial)}"
                )
        return AdmittedRequest(key, tuple(sorted(sources)) if sources is not None else None)

    def check_batch_sources(self, key: PoolKey, slots: Sequence[SlotKey]) -> None:
        """Refuses a batch about to be written whose image-to-image sources are not all training images."""
        sources = {source_id for source_id, _ in slots if source_id is not None}
        not_training = sources - self._datasets.get(key.dataset).train_ids
        if not_training:
            raise LeakageError(
                f"rule 'image-to-image sources are training images only': the batch has sources that are not "
                f"training ids of dataset {key.dataset!r}: {examples(not_training)}"
            )

    def forget_fits(self, folders: list[str]) -> None:
        """Forgets the fit subsets of these key folders, once their models are removed."""
        with self._lock:
            for key in [key for key in self._fit_subset_ids if key.folder_name in folders]:
                del self._fit_subset_ids[key]

    def _fit_ids(self, key: PoolKey) -> frozenset[str]:
        with self._lock:
            if key in self._fit_subset_ids:
                return self._fit_subset_ids[key]
        if not self._models.has(key):
            raise PoolError(
                f"{key.folder_name} names a fitted generator, but the pool holds no fitted model for it, so its "
                f"fit subset cannot be checked against the trial's real subset; fit it first (fit_or_load)"
            )
        ids = frozenset(self._models.fit_info(key)["fit_subset_ids"])
        with self._lock:
            self._fit_subset_ids[key] = ids
        return ids
