"""A node removed mid-sweep: a loopback Ray cluster (a head that trains nothing and two 1-CPU worker nodes), the
sweep run against it with --ray-address, and the node training a trial killed (its raylet, then every process it
started). The trial reruns on the other node from its last checkpoint and the leaderboard is complete."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from loopback_cluster import LoopbackCluster, RayNode
from sweep_process import REPO, leaderboard, result_rows, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.faults]

EPOCHS = 20
MARGIN_EPOCHS = 8
SPACE = {
    "fixed": {"training.batch_size": 32, "model.backbone": "basic_cnn", "real_fraction": 1.0, "training.epochs": EPOCHS},
    "parameters": {"optimizer.lr": {"choice": [0.001, 0.003]}},
}
SWEEP_TIMEOUT_S = 300
# The head notices a silent node after health checks fail this often (Ray's defaults take about half a minute).
HEALTH_CHECKS = {
    "RAY_health_check_initial_delay_ms": "1000", "RAY_health_check_period_ms": "1000",
    "RAY_health_check_timeout_ms": "1000", "RAY_health_check_failure_threshold": "3",
}


class FastFailureCluster(LoopbackCluster):
    def env(self, **extra: str) -> dict[str, str]:
        return super().env(**HEALTH_CHECKS, **extra)


@pytest.fixture
def cluster() -> Iterator[FastFailureCluster]:
    cluster = FastFailureCluster()
    try:
        # No CPU on the head: every trial runs on a worker node, so losing one leaves the other to rerun it.
        cluster.start_node("head", num_cpus=0)
        cluster.start_node("w1", num_cpus=1)
        cluster.start_node("w2", num_cpus=1)
        yield cluster
    finally:
        cluster.stop()


def processes_of(cluster: LoopbackCluster, node: RayNode) -> dict[int, bytes]:
    """This node's live processes (those naming its temp dir) and their command lines."""
    found = {}
    for pid in cluster.processes():
        try:
            command_line = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if str(node.temp_dir).encode() in command_line:
            found[pid] = command_line
    return found


def remove_node(cluster: LoopbackCluster, node: RayNode, trial_pid: int) -> None:
    """Every process of the node, SIGKILLed: the trial's worker, then the raylet and the rest, as when its machine
    goes away.

    The trial's worker first: with the raylet killed first, Ray reported the trial's actor lost twice (once per pending
    call), and Tune took the second report for a failure of the retry it had just queued and gave the trial up,
    whatever --max-failures said (Tune 2.60's tune_controller._process_trial_failure)."""
    processes = processes_of(cluster, node)
    raylets = [pid for pid, command_line in processes.items() if b"/raylet" in command_line.split(b"\0")[0]]
    assert raylets, processes
    for pid in [trial_pid, *raylets, *(pid for pid in processes if pid not in raylets)]:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    wait_for(lambda: not processes_of(cluster, node), 30, f"node {node.name}'s processes to end")


def test_a_node_removed_mid_sweep_has_its_trial_rerun_on_another_node(cluster: FastFailureCluster, tmp_path: Path) -> None:
    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump(SPACE))
    report = tmp_path / "results" / "node-lost"
    command = [
        sys.executable, "-m", "search.run", "--ray-address", str(cluster.address), "--space", str(space),
        "--data", "phantom", "--phantom-count", "400", "--image-size", "24", "--searcher", "grid", "--scheduler", "none",
        "--checkpoint-every", "2", "--storage", str(tmp_path / "results"), "--name", "node-lost",
        "--wandb-mode", "disabled", "--no-final-test", "--no-twins",
        # A trial retried before Ray has marked its node dead can land there again and fail a second time.
        "--max-failures", "3",
    ]
    environment = cluster.env(PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    log = tmp_path / "driver.log"
    with open(log, "wb") as output:
        process = subprocess.Popen(command, cwd=REPO, env=environment, stdout=output, stderr=subprocess.STDOUT)
    try:
        workers = cluster.nodes[1:]

        def a_trial_mid_way_on_a_worker_node() -> tuple[str, RayNode, dict] | None:
            for trial, rows in result_rows(report).items():
                if rows and any(row.get("checkpoint_dir_name") for row in rows) and rows[-1]["epoch"] <= EPOCHS - MARGIN_EPOCHS:
                    for node in workers:
                        if int(rows[-1]["pid"]) in node.worker_pids():
                            return trial, node, rows[-1]
            return None

        trial, lost, last = wait_for(a_trial_mid_way_on_a_worker_node, SWEEP_TIMEOUT_S, "a trial mid-way", process)
        removed_at = time.monotonic()
        remove_node(cluster, lost, int(last["pid"]))
        process.wait(timeout=SWEEP_TIMEOUT_S)
        output = log.read_text(errors="replace")
        assert process.returncode == 0, output[-4000:]
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

    board = leaderboard(report)
    assert len(board) == 2 and board["trial_id"].is_unique, board
    assert set(board["status"]) == {"ok"} and (board["epochs_run"] == EPOCHS).all(), board
    rows = result_rows(report)[trial]
    survivor = next(node for node in workers if node is not lost)
    restart = next(index for index, row in enumerate(rows) if int(row["pid"]) != int(last["pid"]))
    # The lost node's trial went on on the other node, from a checkpoint written before the node went away.
    assert all(int(row["pid"]) in survivor.worker_pids() for row in rows[restart:]), rows[restart:]
    epochs = [row["epoch"] for row in rows]
    checkpointed = [row["epoch"] for row in rows[:restart] if row.get("checkpoint_dir_name")]
    assert rows[restart]["epoch"] - 1 in checkpointed and epochs.count(1) == 1, (epochs, checkpointed)
    assert epochs[restart:] == list(range(epochs[restart], EPOCHS + 1)), epochs
    assert time.monotonic() - removed_at < SWEEP_TIMEOUT_S
