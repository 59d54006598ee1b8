"""Where a sweep's files live: Tune's storage (a folder or a URI), the sweep's experiment folder in it, the report
folder on this machine and the shared synthetic pool."""

from __future__ import annotations

from pathlib import Path

from search.settings.sweep_config import SweepConfig


def is_uri(storage: str) -> bool:
    return "://" in storage


def storage_root(sweep: SweepConfig) -> str:
    return sweep.storage if is_uri(sweep.storage) else str(Path(sweep.storage).expanduser().resolve())


def experiment_path(sweep: SweepConfig, name: str) -> str:
    """The sweep's folder under its storage: the search's Tune run, with the twins' and finalists' runs inside."""
    return f"{storage_root(sweep).rstrip('/')}/{name}"


def report_directory(sweep: SweepConfig, name: str) -> Path:
    if sweep.report_dir:
        return Path(sweep.report_dir).expanduser().resolve()
    if is_uri(sweep.storage):
        return Path("sweeps", name).resolve()
    return Path(storage_root(sweep), name)


def pool_root_of(sweep: SweepConfig) -> str:
    return sweep.pool or f"{storage_root(sweep).rstrip('/')}/synthetic_pool"
