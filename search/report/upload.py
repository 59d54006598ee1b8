"""A sweep on object storage (--storage s3://...) keeps its report there too: the report folder written on the
driver's disk (./sweeps/<name> unless --report-dir says otherwise) is copied to <storage>/<name>/, beside Ray
Tune's results, the same layout a local --storage folder has. The bucket outlives the machine (`ray down`)."""

from __future__ import annotations

from pathlib import Path

import pyarrow.fs

from spaces import ConfigError


def upload_report(report_dir: Path, experiment_path: str) -> str:
    """Copies every file under report_dir to the experiment's folder in the store; returns where it went."""
    try:
        filesystem, base = pyarrow.fs.FileSystem.from_uri(experiment_path)
        pyarrow.fs.copy_files(
            str(report_dir), base.rstrip("/"),
            source_filesystem=pyarrow.fs.LocalFileSystem(), destination_filesystem=filesystem,
        )
    except (OSError, pyarrow.ArrowException) as error:
        raise ConfigError(
            "storage", experiment_path, f"the report could not be copied there ({error}); it is still in {report_dir}"
        ) from None
    return experiment_path
