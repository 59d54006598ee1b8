"""sweep.json in the report folder: what a finished sweep's report is rebuilt from (`python -m search.report`)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from search.config import SweepConfig, validate_sweep_config
from spaces import ConfigError, SearchSpace

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
        path = report_dir / RECORD_FILE
        temporary = path.with_name(f".{path.name}.tmp")
        temporary.write_text(json.dumps(asdict(self), indent=2, default=str))
        temporary.replace(path)
        return path

    @classmethod
    def read(cls, report_dir: Path) -> SweepRecord:
        path = Path(report_dir) / RECORD_FILE
        if not path.is_file():
            raise ConfigError(
                "sweep folder", str(report_dir), f"give a sweep's report folder: the one holding the {RECORD_FILE} "
                "that `python -m search.run` writes (and its leaderboard.csv)"
            )
        return cls(**json.loads(path.read_text()))


def new_record(sweep: SweepConfig, space: SearchSpace, name: str, experiment_path: str, dataset: str) -> SweepRecord:
    return SweepRecord(
        name=name, experiment_path=experiment_path, settings=sweep.model_dump(mode="json"),
        space=space.model_dump(mode="json"), dataset=dataset,
    )
