"""The store of fitted generators in a pool: `<key folder>/model/` holds a generator's files, fit_info.json, and
COMPLETE, written last, so a model exists for readers only once all of it does."""

from __future__ import annotations

import dataclasses
import json
import re
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow.fs

from generators.errors import PoolError
from generators.pool.keys import PoolKey, check_ids
from generators.pool.storage import TEMPORARY_PREFIX, PoolStorage

HEX_DIGITS = re.compile(r"[0-9a-f]+")

if TYPE_CHECKING:
    from generators.base import Generator


class ModelStore:
    """Fitted models and their fit records, one per pool key; the first one stored for a key is the one kept."""

    def __init__(self, storage: PoolStorage) -> None:
        self._storage = storage

    def _model_path(self, key: PoolKey) -> str:
        return self._storage.path(key.folder_name, "model")

    def has(self, key: PoolKey) -> bool:
        return self._storage.exists(f"{self._model_path(key)}/COMPLETE")

    def find(self, key: PoolKey, fit_settings_hash: str) -> PoolKey | None:
        """The key whose stored model serves `key`: the key itself, or another key of the same generator, dataset
        and fit subset whose fit had the same fit settings (settings that differ only in how images are sampled,
        such as Stable Diffusion's strength or a DDPM's guidance, share one fit instead of fitting again)."""
        if self.has(key):
            return key
        # Key folders are <generator>--<settings hash><suffix>, the suffix naming the dataset and the fit subset.
        prefix, suffix = f"{key.generator}--", key.folder_name.removeprefix(f"{key.generator}--{key.settings_hash}")
        for folder in self._storage.key_folders():
            settings_hash = folder.removeprefix(prefix).removesuffix(suffix)
            if not folder.startswith(prefix) or not folder.endswith(suffix) or not HEX_DIGITS.fullmatch(settings_hash):
                continue
            candidate = dataclasses.replace(key, settings_hash=settings_hash)
            if candidate == key or not self.has(candidate):
                continue
            if self.fit_info(candidate).get("fit_settings_hash") == fit_settings_hash:
                return candidate
        return None

    @staticmethod
    def fit_subset_ids_of(key: PoolKey, fit_info: Mapping[str, Any]) -> list[str]:
        """The ids of the real images a generator was fit on, from a fit record about to be saved."""
        if key.fit_subset is None:
            raise PoolError(f"{key.folder_name} has no fit_subset: only fitted generators are saved in the pool")
        if "fit_subset_ids" not in fit_info:
            raise PoolError("fit_info must hold 'fit_subset_ids', the ids of the real images the generator was fit on")
        if fit_info.get("dataset", key.dataset) != key.dataset:
            raise PoolError(f"fit_info names dataset {fit_info['dataset']!r}, but the key's dataset is {key.dataset!r}")
        return check_ids(fit_info["fit_subset_ids"], "fit_info['fit_subset_ids']")

    def save(self, key: PoolKey, generator: Generator, fit_info: Mapping[str, Any], fit_subset_ids: list[str]) -> bool:
        """Stores a fitted generator with its fit record; returns False, storing nothing, when a model for the key
        is already stored (by this or another process)."""
        record = {**fit_info, **key.to_dict(), "fit_subset_ids": sorted(fit_subset_ids), "saved_at": time.time()}
        return self._store(key, generator.save, record)

    def share(self, source: PoolKey, key: PoolKey, settings: Mapping[str, Any]) -> bool:
        """Stores the model of `source` as `key`'s too: a copy of its files (an adapter or a small UNet: megabytes)
        and its fit record, with `key`'s settings and `fit_shared_from` naming the source. For keys whose settings
        share the fit settings (see `find`); False, storing nothing, when `key` has a model already."""
        record = {
            **self.fit_info(source), **key.to_dict(), "settings": dict(settings), "fit_shared_from": source.folder_name,
            "saved_at": time.time(),
        }
        return self._store(key, lambda folder: self._copy_model_files(source, folder), record)

    def _store(self, key: PoolKey, write_files: Callable[[Path], None], record: Mapping[str, Any]) -> bool:
        """Writes a model's files (write_files(folder)), then fit_info.json, then COMPLETE; atomically on a local
        pool (a folder renamed into place), last-marker-wins on object stores."""
        try:
            record_bytes = json.dumps(record, indent=1).encode("utf-8")
        except TypeError as error:
            raise PoolError(f"fit_info must hold only JSON values (str, numbers, lists, dicts): {error}") from error
        if self.has(key):
            return False
        self._storage.mark_as_pool()
        model = self._model_path(key)
        filesystem = self._storage.filesystem
        if self._storage.is_local:
            temporary = self._storage.path(key.folder_name, f"{TEMPORARY_PREFIX}model-{uuid.uuid4().hex}")
            filesystem.create_dir(temporary, recursive=True)
            write_files(Path(temporary))
            with filesystem.open_output_stream(f"{temporary}/fit_info.json") as stream:
                stream.write(record_bytes)
            with filesystem.open_output_stream(f"{temporary}/COMPLETE") as stream:
                stream.write(b"")
            try:
                filesystem.move(temporary, model)
            except OSError:
                # Another process stored its model first; theirs stays, so every replica loads the same one.
                filesystem.delete_dir(temporary)
                return False
            return True
        with tempfile.TemporaryDirectory() as local_folder:
            write_files(Path(local_folder))
            pyarrow.fs.copy_files(
                local_folder, model, source_filesystem=pyarrow.fs.LocalFileSystem(), destination_filesystem=filesystem
            )
        self._storage.write(f"{model}/fit_info.json", record_bytes)
        self._storage.write(f"{model}/COMPLETE", b"")
        return True

    def _copy_model_files(self, source: PoolKey, folder: Path) -> None:
        """The generator's own files of a stored model into a local folder (not its record and marker)."""
        pyarrow.fs.copy_files(
            self._model_path(source), str(folder),
            source_filesystem=self._storage.filesystem, destination_filesystem=pyarrow.fs.LocalFileSystem(),
        )
        for name in ("fit_info.json", "COMPLETE"):
            (folder / name).unlink()

    def load(self, key: PoolKey, generator: Generator) -> None:
        """Restores a fitted generator stored by save (the generator must read its files in load())."""
        self._require(key)
        model = self._model_path(key)
        if self._storage.is_local:
            generator.load(Path(model))
            return
        with tempfile.TemporaryDirectory() as local_folder:
            pyarrow.fs.copy_files(
                model,
                local_folder,
                source_filesystem=self._storage.filesystem,
                destination_filesystem=pyarrow.fs.LocalFileSystem(),
            )
            generator.load(Path(local_folder))

    def fit_info(self, key: PoolKey) -> dict[str, Any]:
        """The fit record of a stored fitted generator."""
        self._require(key)
        return json.loads(self._storage.read_bytes(f"{self._model_path(key)}/fit_info.json"))

    def _require(self, key: PoolKey) -> None:
        if not self.has(key):
            raise PoolError(f"the pool {self._storage.root} holds no fitted model for {key.folder_name}")
