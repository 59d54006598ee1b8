"""A real multi-node Ray cluster on this machine, for tests: `ray start --head` plus `ray start --address` nodes,
each with its own temp dir and resources, all sharing one test-local authentication token (never ~/.ray).

Ray advertises the machine's routable IP, not 127.0.0.1, and its gRPC servers listen on every interface; the
token is what keeps other machines out, so every node and every driver gets RAY_AUTH_MODE=token and the token.
Nodes are stopped by killing exactly the processes that name their temp dir (never a bare `ray stop`, which
would stop every Ray instance on the machine).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

START_TIMEOUT_S = 120.0
STOP_GRACE_S = 10.0
RAY = str(Path(sys.executable).with_name("ray"))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class RayNode:
    name: str
    temp_dir: Path
    resources: dict[str, float]

    def session_logs(self) -> Path:
        return self.temp_dir / "session_latest" / "logs"

    def worker_pids(self) -> set[int]:
        """Pids of every worker process this node ever started: Ray names worker logs worker-<id>-<job>-<pid>.out."""
        return {int(path.stem.rsplit("-", 1)[1]) for path in self.session_logs().glob("worker-*.out")}

    def actor_pids(self, actor_class: str) -> set[int]:
        """Pids of this node's workers that ran an actor of this class (Ray writes `:actor_name:<class>` into the
        actor's stdout log)."""
        return {
            int(path.stem.rsplit("-", 1)[1])
            for path in self.session_logs().glob("worker-*.out")
            if f":actor_name:{actor_class}" in path.read_text(errors="replace")
        }


@dataclass
class LoopbackCluster:
    token: str = field(default_factory=lambda: secrets.token_hex(24))
    nodes: list[RayNode] = field(default_factory=list)
    address: str | None = None

    def env(self, **extra: str) -> dict[str, str]:
        """The environment of a node or driver of this cluster: token mode, the test's token, and no path to
        another cluster or to the user's token file."""
        environment = {key: value for key, value in os.environ.items() if not key.startswith("RAY_AUTH")}
        environment.pop("RAY_ADDRESS", None)
        environment.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=self.token, RAY_USAGE_STATS_ENABLED="0", **extra)
        return environment

    def start_node(self, name: str, num_cpus: int, resources: dict[str, float] | None = None) -> RayNode:
        # Short paths: Ray's unix socket paths under the temp dir must stay under 107 characters.
        node = RayNode(name, Path(tempfile.mkdtemp(prefix=f"sa-{name}-", dir="/tmp")), dict(resources or {}))
        self.nodes.append(node)
        command = [
            RAY, "start", "--num-cpus", str(num_cpus), "--temp-dir", str(node.temp_dir),
            "--object-store-memory", str(200 * 1024**2), "--disable-usage-stats",
        ]
        if node.resources:
            command += ["--resources", json.dumps(node.resources)]
        if self.address is None:
            port = free_port()
            # Without ray[client] no client server starts, so its default port 10001 is no conflict.
            command += ["--head", "--port", str(port), "--include-dashboard", "false"]
        else:
            command += ["--address", self.address]
        result = subprocess.run(command, env=self.env(), capture_output=True, text=True, timeout=START_TIMEOUT_S)
        if result.returncode != 0:
            raise RuntimeError(f"`{' '.join(command)}` failed:\n{result.stdout}\n{result.stderr}")
        if self.address is None:
            # The head advertises the machine's IP; the address file in its temp dir says which.
            self.address = f"{self._advertised_ip(result.stdout + result.stderr)}:{port}"
        return node

    @staticmethod
    def _advertised_ip(output: str) -> str:
        marker = "ray start --address='"
        if marker in output:
            return output.split(marker, 1)[1].split("'", 1)[0].rsplit(":", 1)[0]
        return "127.0.0.1"

    def processes(self) -> list[int]:
        """Pids of every live process whose command line names one of this cluster's temp dirs."""
        dirs = [str(node.temp_dir).encode() for node in self.nodes]
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                command_line = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if any(temp_dir in command_line for temp_dir in dirs):
                found.append(int(entry.name))
        return found

    def stop(self) -> None:
        """SIGTERM to every process of this cluster, SIGKILL to what is left after a grace period, then the temp
        dirs go."""
        for sig, wait in ((signal.SIGTERM, STOP_GRACE_S), (signal.SIGKILL, STOP_GRACE_S)):
            pids = self.processes()
            for pid in pids:
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + wait
            while pids and self.processes() and time.monotonic() < deadline:
                time.sleep(0.2)
        left = self.processes()
        for node in self.nodes:
            shutil.rmtree(node.temp_dir, ignore_errors=True)
        if left:
            raise RuntimeError(f"Ray processes of the test cluster survived SIGKILL: {left}")
