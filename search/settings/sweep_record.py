"""sweep.json in the report folder: what a finished sweep's report is rebuilt from (`python -m search.report`) and
what `--resume` continues a sweep with. A sweep whose storage is a URI (s3://, gs://) keeps a copy in its experiment
folder there too, so a sweep started on a machine that is gone can be resumed from another."""

from __future__ import annotations

import json
import sys
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import pyarrow
import pyarrow.fs

from generators.pool.storage import write_whole_file
from search.settings.sweep_config import SweepConfig, validate_sweep_config
from spaces import ConfigError, SearchSpace
from spaces.space import space_from_mapping

RECORD_FILE = "sweep.json"


@dataclass
class SweepRecord:
    name: str
    experiment_path: str
    settings: dict[str, Any]  # SweepConfig, as JSON
    space: dict[str, Any]  # the SearchSpace itself, so a preset or file changed later does not change the report
    dataset: str  # the dataset's description: classes and counts per split
    twins_path: str | None = None
    # Why some synthetic configurations have no twin ("twins: false", "time budget spent"), or "".
    twins_note: str = ""
    seconds: dict[str, float] = field(default_factory=dict)  # generator preparation, search, twins, finalists, ...
    finalists_path: str | None = None
    # Optional parts of the report that were not computed, by part ("finalists", "quality", "gradcam"): the reason.
    not_computed: dict[str, str] = field(default_factory=dict)

    @property
    def sweep(self) -> SweepConfig:
        return validate_sweep_config(self.settings, RECORD_FILE)

    @property
    def search_space(self) -> SearchSpace:
        return SearchSpace.model_validate(self.space)

    def write(self, report_dir: Path) -> Path:
        """Writes the record into the report folder and, when the experiment lives at a URI, beside it there."""
        path = report_dir / RECORD_FILE
        text = json.dumps(asdict(self), indent=2, default=str)
        write_whole_file(path, text)
        if "://" in self.experiment_path:
            stored = stored_record_uri(self.experiment_path)
            try:
                write_whole_file(stored, text)
            except (OSError, pyarrow.ArrowException) as error:
                # The sweep goes on: the local copy is written, and the report upload at the end copies it again.
                print(f"warning: the sweep's record could not be copied to {stored} ({error}); it is in {path}",
                      file=sys.stderr, flush=True)
        return path

    @classmethod
    def read(cls, report_dir: Path) -> SweepRecord:
        path = Path(report_dir) / RECORD_FILE
        if not path.is_file():
            raise ConfigError(
                "sweep folder", str(report_dir), f"give a sweep's report folder: the one holding the {RECORD_FILE} "
                "that `python -m search.run` writes (and its leaderboard.csv)"
            )
        return parse_record(path.read_bytes(), str(path))


def new_record(sweep: SweepConfig, space: SearchSpace, name: str, experiment_path: str, dataset: str) -> SweepRecord:
    return SweepRecord(
        name=name, experiment_path=experiment_path, settings=sweep.model_dump(mode="json"),
        space=space.model_dump(mode="json"), dataset=dataset,
    )


def parse_record(data: bytes | str, where: str) -> SweepRecord:
    """A record read from `where` (a file or URI), checked whole: its fields, its settings and its space."""

    def damaged(problem: str) -> ConfigError:
        return ConfigError(
            RECORD_FILE, where, f"{problem}; it must hold the record `python -m search.run` writes (restore it, or "
            "remove it and give the sweep's original flags)"
        )

    try:
        values = json.loads(data)
    except ValueError as error:
        raise damaged(f"it is not valid JSON ({error})") from None
    if not isinstance(values, dict):
        raise damaged(f"it holds a {type(values).__name__}, not an object")
    known = {item.name: item for item in fields(SweepRecord)}
    unknown = sorted(set(values) - set(known))
    missing = [name for name, item in known.items()
               if item.default is MISSING and item.default_factory is MISSING and name not in values]
    if unknown or missing:
        wrong = (("unknown", unknown), ("missing", missing))
        raise damaged(", ".join(f"{kind} fields {names}" for kind, names in wrong if names))
    if not isinstance(values["settings"], dict) or not isinstance(values["space"], dict):
        raise damaged("its settings and space must be objects")
    validate_sweep_config(values["settings"], where)
    space_from_mapping(values["space"], where)
    return SweepRecord(**values)


def stored_record_uri(experiment_path: str) -> str:
    return f"{experiment_path.rstrip('/')}/{RECORD_FILE}"


def read_from_storage(uri: str) -> bytes | None:
    """A file's bytes at a URI, or None where there is none."""
    filesystem, path = pyarrow.fs.FileSystem.from_uri(uri)
    if filesystem.get_file_info(path).type != pyarrow.fs.FileType.File:
        return None
    with filesystem.open_input_stream(path) as stream:
        return stream.read()


def recorded_settings(report_dir: Path, experiment_uri: str | None) -> dict[str, Any] | None:
    """A sweep's recorded settings with its space, for `--resume`: its report folder's record, else (a sweep on a
    URI) the copy in its experiment folder there; None where neither exists. The copy was written on another
    machine: its report folder is that machine's, so it is left to the command."""
    local = report_dir / RECORD_FILE
    if local.is_file():
        record = SweepRecord.read(report_dir)
        return {**record.settings, "space": record.space}
    if experiment_uri is None:
        return None
    stored = stored_record_uri(experiment_uri)
    try:
        data = read_from_storage(stored)
    except (OSError, pyarrow.ArrowException) as error:
        raise ConfigError(
            "storage", stored, f"the sweep's record could not be read there ({error}); check the storage and its "
            "credentials"
        ) from None
    if data is None:
        return None
    record = parse_record(data, stored)
    settings = {key: value for key, value in record.settings.items() if key != "report_dir"}
    return {**settings, "space": record.space}
