"""Storage primitives of a pool root on a pyarrow filesystem (a local folder or a URI): paths, atomic writes,
reads, listing, deletion, and the `pool.json` marker that tells a pool's folder from any other.

Local writes go to a `.tmp-` name and are renamed; object stores write whole objects, so a reader never sees half
a file. A write the storage refuses or cannot take (an S3 server that stopped answering, after the S3 client's own
bounded retries; a full disk) is a PoolError naming the file: nothing of it is visible, and a batch of images only
exists once its manifest, written last, does, so a later request or sweep makes whatever is missing.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pyarrow.fs

from generators.errors import PoolError
from generators.pool.keys import examples

TEMPORARY_PREFIX = ".tmp-"
POOL_MARKER = "pool.json"
POOL_FORMAT = 1
POOL_LAYOUT = (
    f"a pool's folder holds {POOL_MARKER}, datasets/ and one <generator>--<settings hash>--<dataset> folder per "
    f"generator; sweeps put theirs at <storage>/synthetic_pool, or where their --pool option says"
)


def open_pool_root(root: str) -> tuple[str, pyarrow.fs.FileSystem, str]:
    """(canonical root, filesystem, base path): local paths (and file:// URIs) become absolute paths, so every
    spelling of one folder names one pool."""
    if not isinstance(root, str) or not root.strip():
        raise PoolError(f"pool root must be a folder path or a URI such as s3://bucket/pool, got {root!r}")
    if "://" not in root:
        root = str(Path(root).expanduser().resolve())
    try:
        filesystem, base = pyarrow.fs.FileSystem.from_uri(root)
    except (pyarrow.ArrowInvalid, OSError) as error:
        raise PoolError(f"pool root {root!r} cannot be opened: {error}") from error
    base = base.rstrip("/")
    if isinstance(filesystem, pyarrow.fs.LocalFileSystem):
        return base, filesystem, base
    return root.rstrip("/"), filesystem, base


def write_whole(filesystem: pyarrow.fs.FileSystem, path: str, data: bytes) -> None:
    """Writes a file into an existing folder so that readers see either nothing or all of it: an object store
    publishes an object whole on close (a temporary copy would only double the upload); elsewhere a temporary file
    is moved over it."""
    if not isinstance(filesystem, pyarrow.fs.LocalFileSystem):
        with filesystem.open_output_stream(path) as stream:
            stream.write(data)
        return
    folder, name = path.rsplit("/", 1)
    temporary = f"{folder}/{TEMPORARY_PREFIX}{uuid.uuid4().hex}-{name}"
    with filesystem.open_output_stream(temporary) as stream:
        stream.write(data)
    filesystem.move(temporary, path)


def write_whole_file(location: str | Path, data: bytes | str) -> None:
    """The project's one whole-file write, for any file at a local path or a URI (the report folder, a sweep's
    record, the pool's files): its folder is made, then the file is written whole (write_whole)."""
    location = str(location)
    filesystem, path = pyarrow.fs.FileSystem.from_uri(location if "://" in location else str(Path(location).resolve()))
    if isinstance(filesystem, pyarrow.fs.LocalFileSystem):  # object stores have no folders to make
        filesystem.create_dir(path.rpartition("/")[0], recursive=True)
    write_whole(filesystem, path, data.encode("utf-8") if isinstance(data, str) else data)


class PoolStorage:
    """The files under one pool root. Holds no facts of its own, only what this process already made (folders, the
    marker)."""

    def __init__(self, root: str) -> None:
        self.root, self.filesystem, self.base = open_pool_root(root)
        self.is_local = isinstance(self.filesystem, pyarrow.fs.LocalFileSystem)
        self._created_folders: set[str] = set()
        self._marked = False

    def path(self, *parts: str) -> str:
        return "/".join([self.base, *parts])

    def make_folder(self, path: str) -> None:
        if path not in self._created_folders:
            self.filesystem.create_dir(path, recursive=True)
            self._created_folders.add(path)

    def forget_folders(self, folders: list[str]) -> None:
        """Forgets that folders under these key folders were made, once they are deleted."""
        removed = [self.path(folder) for folder in folders]
        self._created_folders = {
            path for path in self._created_folders if not any(path.startswith(prefix) for prefix in removed)
        }

    def write(self, path: str, data: bytes) -> None:
        """Writes a whole file so that readers see either nothing or all of it; PoolError, naming the file, if the
        storage does not take it."""
        try:
            self.mark_as_pool()
            self._write_whole(path, data)
        except OSError as error:
            raise PoolError(
                f"could not write {path} to the pool at {self.root}: {error}. Nothing of it is visible to readers; "
                "once the storage answers again, the next request or sweep (or --resume) makes what is missing"
            ) from error

    def mark_as_pool(self) -> None:
        """Writes the marker before this process first writes to the root, so commands can tell the folder is a
        pool. Pools written before the marker existed get theirs here too."""
        if self._marked:
            return
        marker = self.path(POOL_MARKER)
        if not self.exists(marker):
            # Fixed content: writers that race to mark a new pool write the same bytes.
            description = {"format": POOL_FORMAT, "content": "synthaug-search synthetic image pool"}
            self._write_whole(marker, json.dumps(description).encode("utf-8"))
        self._marked = True

    def check_is_pool(self) -> None:
        """Refuses a root that holds no pool, before a command reads it. A pool is a folder with the marker, or
        one written before the marker existed: datasets/ and key folders only."""
        found = self.filesystem.get_file_info(self.base).type
        if found == pyarrow.fs.FileType.NotFound:
            raise PoolError(f"there is no synthetic pool at {self.root}: nothing exists there; {POOL_LAYOUT}")
        if found != pyarrow.fs.FileType.Directory:
            raise PoolError(f"{self.root} is not a synthetic pool: it is a file, not a folder; {POOL_LAYOUT}")
        entries = [info for info in self.list(self.base) if not info.base_name.startswith(TEMPORARY_PREFIX)]
        names = {info.base_name for info in entries}
        if POOL_MARKER in names:
            self._check_marker()
            return
        if not entries:
            raise PoolError(f"there is no synthetic pool at {self.root}: the folder is empty; {POOL_LAYOUT}")
        written_before_the_marker = "datasets" in names and all(
            info.type == pyarrow.fs.FileType.Directory and (info.base_name == "datasets" or "--" in info.base_name)
            for info in entries
        )
        if not written_before_the_marker:
            raise PoolError(
                f"{self.root} is not a synthetic pool: it has no {POOL_MARKER} and holds {examples(names)}; {POOL_LAYOUT}"
            )

    def _check_marker(self) -> None:
        marker = self.path(POOL_MARKER)
        try:
            pool_format = json.loads(self.read_bytes(marker))["format"]
        except (ValueError, KeyError, TypeError) as error:
            raise PoolError(f"{marker} is not a readable pool marker ({error!r}); {POOL_LAYOUT}") from None
        if pool_format != POOL_FORMAT:
            raise PoolError(f"{self.root} is a pool of format {pool_format!r}; this code reads format {POOL_FORMAT}")

    def _write_whole(self, path: str, data: bytes) -> None:
        self.make_folder(path.rsplit("/", 1)[0])
        write_whole(self.filesystem, path, data)

    def read_bytes(self, path: str) -> bytes:
        with self.filesystem.open_input_file(path) as stream:
            return stream.read()

    def exists(self, path: str) -> bool:
        return self.filesystem.get_file_info(path).type != pyarrow.fs.FileType.NotFound

    def list(self, path: str) -> list[pyarrow.fs.FileInfo]:
        return self.filesystem.get_file_info(pyarrow.fs.FileSelector(path, allow_not_found=True))

    def delete_file(self, path: str) -> None:
        self.filesystem.delete_file(path)

    def delete_folder(self, path: str) -> None:
        self.filesystem.delete_dir(path)

    def key_folders(self) -> list[str]:
        """Names of the folders under the root that hold one pool key's images and model."""
        return sorted(
            info.base_name
            for info in self.list(self.base)
            if info.type == pyarrow.fs.FileType.Directory and "--" in info.base_name
        )
