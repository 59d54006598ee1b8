"""`python -m search.run` in its own process, for fault tests: its own Ray temp dir (RAY_TMPDIR), so the Ray
processes it starts can be found by that dir and always stopped (never a bare `ray stop`), and what it wrote
read back from the experiment folder while it runs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
from loopback_cluster import LoopbackCluster, RayNode

REPO = Path(__file__).resolve().parents[1]
POLL_S = 0.05


def wait_for(condition: Callable[[], object], timeout_s: float, what: str, process: subprocess.Popen | None = None) -> object:
    """Polls `condition` until it returns something true; fails after `timeout_s` or when `process` has exited."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        if process is not None and process.poll() is not None:
            raise AssertionError(f"the sweep exited ({process.returncode}) before {what}")
        time.sleep(POLL_S)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


def result_rows(experiment: Path) -> dict[str, list[dict]]:
    """Every result line Tune has written so far, by trial folder name (search_trial_<id>_...)."""
    rows: dict[str, list[dict]] = {}
    for result_file in sorted(experiment.glob("search_trial_*/result.json")):
        lines = []
        for line in result_file.read_text().splitlines():
            try:
                lines.append(json.loads(line))
            except json.JSONDecodeError:
                break  # a line being written
        rows[result_file.parent.name] = lines
    return rows


class SweepDriver:
    """One sweep's driver processes, all sharing one Ray temp dir (a local Ray instance the driver starts lives
    under it); stop() ends every process that names it."""

    def __init__(self, env: dict[str, str] | None = None) -> None:
        # Short: Ray's unix socket paths under the temp dir must stay under 107 characters.
        self.ray_dir = Path(tempfile.mkdtemp(prefix="sa-drv-", dir="/tmp"))
        self.env = dict(env if env is not None else os.environ)
        self.env.pop("RAY_ADDRESS", None)
        self.env.update(
            RAY_TMPDIR=str(self.ray_dir), RAY_USAGE_STATS_ENABLED="0", WANDB_SILENT="true",
            PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        )
        self.process: subprocess.Popen | None = None
        self.log: Path | None = None
        self._runs = 0

    def start(self, *arguments: str) -> subprocess.Popen:
        """The sweep in its own session, as a terminal runs it: SIGINT to its process group is a Ctrl-C."""
        self._runs += 1
        self.log = self.ray_dir.parent / f"{self.ray_dir.name}-driver-{self._runs}.log"
        with open(self.log, "wb") as output:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "search.run", *arguments], cwd=REPO, env=self.env,
                stdout=output, stderr=subprocess.STDOUT, start_new_session=True,
            )
        return self.process

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log is not None and self.log.exists() else ""

    def run(self, *arguments: str, timeout_s: float) -> subprocess.CompletedProcess:
        process = self.start(*arguments)
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            raise AssertionError(f"the sweep ran past {timeout_s} s:\n{self.output()[-4000:]}") from None
        return subprocess.CompletedProcess(process.args, process.returncode, self.output(), "")

    def ray_processes(self) -> list[int]:
        return self._as_cluster().processes()

    def _as_cluster(self) -> LoopbackCluster:
        return LoopbackCluster(nodes=[RayNode("driver", self.ray_dir, {})])

    def stop(self) -> None:
        """The driver (if still running), then every Ray process it started, then the temp dir."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)
        try:
            self._as_cluster().stop()
        finally:
            if self.log is not None:
                for log in self.ray_dir.parent.glob(f"{self.ray_dir.name}-driver-*.log"):
                    log.unlink(missing_ok=True)


def leaderboard(report: Path) -> pd.DataFrame:
    return pd.read_csv(report / "leaderboard.csv")
