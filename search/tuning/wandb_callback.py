"""W&B during a sweep: online mode streams each trial live through Ray's WandbLoggerCallback. Offline (the
default) writes every run after the sweep from Tune's results instead (search.report.wandb_runs), so trials pay
nothing for it."""

from __future__ import annotations

import os
from pathlib import Path

from ray.air.integrations.wandb import WandbLoggerCallback

from search.settings.sweep_config import SweepConfig
from search.tuning._ray_compat import FinishingWandbLoggerCallback
from spaces import ConfigError

# How long the end of a sweep waits for W&B runs to finish. An offline run finishes in about a second
# and an online one uploads a few metrics, so this bound only matters when W&B is stuck (an unreachable
# server); a run stopped by it keeps its local files, which `wandb sync` uploads later.
RUN_FINISH_TIMEOUT_S = 30


def has_wandb_credentials() -> bool:
    netrc = Path.home() / ".netrc"
    return bool(os.environ.get("WANDB_API_KEY")) or (netrc.exists() and "api.wandb.ai" in netrc.read_text())


def check_wandb_settings(sweep: SweepConfig) -> None:
    if sweep.wandb.mode == "online" and not has_wandb_credentials():
        raise ConfigError(
            "wandb.mode",
            "online",
            "online logging needs a W&B API key: set WANDB_API_KEY (or run `wandb login`), or use mode 'offline'",
        )


def create_wandb_callback(sweep: SweepConfig, sweep_name: str, run_directory: Path) -> WandbLoggerCallback | None:
    """Live logging during the sweep, online mode only: offline runs are written afterwards (write_wandb_runs)."""
    check_wandb_settings(sweep)
    if sweep.wandb.mode != "online":
        return None
    run_directory.mkdir(parents=True, exist_ok=True)
    # Ray's callback asks for an API key at setup unless W&B's own mode variable says offline.
    os.environ["WANDB_MODE"] = sweep.wandb.mode
    # The key is read by wandb from the environment on each logging actor; it is never passed in a
    # config, so it cannot be logged with one.
    return FinishingWandbLoggerCallback(
        project=sweep.wandb.project,
        entity=sweep.wandb.entity,
        group=sweep_name,
        mode=sweep.wandb.mode,
        dir=str(run_directory),
        log_config=False,
        excludes=["time_this_iter_s", "pid", "hostname", "node_ip"],
        upload_timeout=RUN_FINISH_TIMEOUT_S,
        # What Ray's reinit=True means (one run per actor process), without W&B's deprecation warning per run.
        reinit="finish_previous",
    )
