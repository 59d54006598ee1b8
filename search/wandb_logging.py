"""W&B logging through Ray's WandbLoggerCallback: offline run files by default, online only when asked and keyed."""

from __future__ import annotations

import os
from pathlib import Path

from ray.air.integrations.wandb import WandbLoggerCallback

from search.config import SweepConfig
from spaces import ConfigError


def has_wandb_credentials() -> bool:
    netrc = Path.home() / ".netrc"
    return bool(os.environ.get("WANDB_API_KEY")) or (netrc.exists() and "api.wandb.ai" in netrc.read_text())


def create_wandb_callback(sweep: SweepConfig, sweep_name: str, run_directory: Path) -> WandbLoggerCallback | None:
    if sweep.wandb.mode == "disabled":
        return None
    if sweep.wandb.mode == "online" and not has_wandb_credentials():
        raise ConfigError(
            "wandb.mode", "online", "online logging needs a W&B API key: set WANDB_API_KEY (or run `wandb login`), or use mode 'offline'"
        )
    run_directory.mkdir(parents=True, exist_ok=True)
    # Ray's callback asks for an API key at setup unless W&B's own mode variable says offline.
    os.environ["WANDB_MODE"] = sweep.wandb.mode
    # The key is read by wandb from the environment on each logging actor; it is never passed in a
    # config, so it cannot be logged with one.
    return WandbLoggerCallback(
        project=sweep.wandb.project,
        entity=sweep.wandb.entity,
        group=sweep_name,
        mode=sweep.wandb.mode,
        dir=str(run_directory),
        log_config=False,
        excludes=["time_this_iter_s", "pid", "hostname", "node_ip"],
    )
