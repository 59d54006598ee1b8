"""Reading Tune's results: a finished run's from its folder, a trial's best checkpoint where it may have none, and
what a failed trial died of."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pyarrow.fs
from ray import tune

from search.tuning._ray_compat import hide_trials_without_results_warning


def best_checkpoint(result: Any, metric: str, mode: str) -> tune.Checkpoint | None:
    """A trial's checkpoint with the best `metric`, or its latest; None when it wrote none (Tune's
    get_best_checkpoint raises then). A trial checkpoints where a scheduler may stop it and at its end
    (trainables.tune_reporting.CheckpointSchedule), so one the time budget stopped before either has none."""
    if result is None:
        return None
    if not result.best_checkpoints:
        return reported_checkpoint(result)
    return result.get_best_checkpoint(metric, mode) or result.checkpoint


def reported_checkpoint(result: Any) -> tune.Checkpoint | None:
    """The checkpoint the trial's last result names, when Tune did not register it: a trial persists its checkpoint
    before the result reaches the driver, and a result that arrives as the time budget stops the run is logged
    (result.json names its checkpoint) while the checkpoint is never registered (Ray 2.60; seen on a finalist whose
    first epoch ended with the budget). None when the result names none or the folder is not there."""
    name = (result.metrics or {}).get("checkpoint_dir_name")
    if not name or not result.path:
        return None
    path = f"{str(result.path).rstrip('/')}/{name}"
    if result.filesystem.get_file_info(path).type != pyarrow.fs.FileType.Directory:
        return None
    return tune.Checkpoint(path, filesystem=result.filesystem)


def last_error_line(error: BaseException) -> str:
    """What a trial died of, out of Ray's wrapped trace: the last `SomeError: message` line, else the first line
    that is not Ray's header (an actor's death says why in words); at most 300 characters."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    named = [line for line in lines if re.match(r"^([A-Za-z_]\w*\.)*[A-Za-z_]\w*(Error|Exception|Exit|Interrupt)\w*: ", line)]
    plain = [line for line in lines if not line.startswith(("ray::", "Failure #"))]
    line = named[-1] if named else (plain or lines or [type(error).__name__])[0]
    return line if len(line) <= 300 else line[:297] + "..."


def trial_id_of(result_path: str) -> str:
    """The trial id in a Tune trial folder's name (`search_trial_<id>_<n>_<params>_<time>`)."""
    found = re.search(r"_([0-9a-f]{5,})_\d+_", Path(result_path).name)
    return found.group(1) if found else Path(result_path).name


def stored_results(path: str | None) -> Any | None:
    """A finished Tune run's ResultGrid from its folder, without running anything."""
    if not path:
        return None
    hide_trials_without_results_warning()
    return tune.ResultGrid(tune.ExperimentAnalysis(path))
