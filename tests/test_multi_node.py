"""A real two-node Ray cluster on this machine (token authentication on, as Ray >= 2.59 starts it), and the sweep
run against it the way a user does: `python -m search.run --ray-address <head>` in its own process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import yaml
from loopback_cluster import LoopbackCluster

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
SWEEP_TIMEOUT_S = 300
# Two trials, both drawing oversampled images, run at once, one per node (each node has one CPU). Tune hands a
# waiting trial to a finished trial's process rather than wait for a new one to start, so the first trial lasts
# longer than the second trial process takes to start after the first (seconds, more on a busy machine).
SPACE = {
    "fixed": {
        "training.epochs": 20, "real_fraction": 1.0, "training.batch_size": 16, "model.backbone": "basic_cnn",
        "synthetic.generator": "oversample",
    },
    "parameters": {"synthetic.proportion": {"choice": [0.5, 1.0]}},
}


@pytest.fixture(scope="module")
def cluster() -> Iterator[LoopbackCluster]:
    """A head without generator_gpu and one node advertising it, as cluster.yaml's head and GPU workers do."""
    cluster = LoopbackCluster()
    try:
        cluster.start_node("head", num_cpus=1)
        cluster.start_node("gpu", num_cpus=1, resources={"generator_gpu": 1})
        yield cluster
    finally:
        cluster.stop()


def sweep_command(cluster: LoopbackCluster, tmp_path: Path, name: str, *extra: str) -> list[str]:
    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump(SPACE))
    return [
        sys.executable, "-m", "search.run", "--ray-address", str(cluster.address),
        "--space", str(space), "--data", "phantom", "--phantom-count", "600", "--image-size", "64",
        "--searcher", "grid", "--scheduler", "none", "--storage", str(tmp_path / "results"), "--name", name,
        "--wandb-mode", "disabled", "--no-final-test", "--generator-resources-custom", "{generator_gpu: 1}", *extra,
    ]


def driver_env(cluster: LoopbackCluster, without_token_home: Path | None = None) -> dict[str, str]:
    # Workers import this checkout's packages, like a cluster node's own copy.
    environment = cluster.env(PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    if without_token_home is not None:
        del environment["RAY_AUTH_MODE"], environment["RAY_AUTH_TOKEN"]
        # No token file either: a HOME without ~/.ray.
        without_token_home.mkdir(exist_ok=True)
        environment["HOME"] = str(without_token_home)
    return environment


def trial_results(experiment: Path) -> pd.DataFrame:
    """The last result line of every trial Tune wrote: pid of the process that trained it, synthetic images."""
    rows = []
    for result_file in sorted(experiment.glob("*/result.json")):
        lines = [line for line in result_file.read_text().splitlines() if line.strip()]
        rows.append(json.loads(lines[-1]))
    return pd.DataFrame(rows)


def test_a_sweep_spreads_over_two_nodes_and_generators_stay_on_the_generator_node(
    cluster: LoopbackCluster, tmp_path: Path
) -> None:
    started = time.monotonic()
    finished = subprocess.run(
        sweep_command(cluster, tmp_path, "two-nodes"), cwd=REPO, env=driver_env(cluster),
        capture_output=True, text=True, timeout=SWEEP_TIMEOUT_S,
    )
    assert finished.returncode == 0, finished.stdout[-4000:] + finished.stderr[-4000:]
    assert time.monotonic() - started < SWEEP_TIMEOUT_S

    leaderboard = pd.read_csv(tmp_path / "results" / "two-nodes" / "leaderboard.csv")
    assert len(leaderboard) == 2 and set(leaderboard["status"]) == {"ok"}
    results = trial_results(tmp_path / "results" / "two-nodes")
    assert len(results) == 2
    head, gpu = cluster.nodes
    node_of = {pid: node.name for node in cluster.nodes for pid in node.worker_pids()}
    results["node"] = [node_of.get(int(pid)) for pid in results["pid"]]
    # Each trial ran in a worker of one of the two nodes, and both nodes trained trials.
    assert set(results["node"]) == {"head", "gpu"}, results[["trial_id", "pid", "node"]]
    # Generator actors only where generator_gpu is: none ever started on the head.
    assert gpu.actor_pids("GeneratorActor") and not head.actor_pids("GeneratorActor")
    # Trials on the head received images the generator on the other node made, through the pool.
    on_head = results[results["node"] == "head"]
    assert (on_head["synthetic_images"] > 0).all(), on_head[["trial_id", "synthetic_images"]]


def test_a_driver_without_the_token_gets_one_line_saying_what_to_set(cluster: LoopbackCluster, tmp_path: Path) -> None:
    refused = subprocess.run(
        sweep_command(cluster, tmp_path, "no-token"), cwd=REPO, env=driver_env(cluster, tmp_path / "home"),
        capture_output=True, text=True, timeout=SWEEP_TIMEOUT_S,
    )
    assert refused.returncode == 2, refused.stderr[-4000:]
    errors = [line for line in refused.stderr.splitlines() if line.strip()]
    assert errors[-1].startswith("error: ray_address"), refused.stderr[-4000:]
    assert "token authentication" in errors[-1] and "RAY_AUTH_MODE=token" in errors[-1] and "RAY_AUTH_TOKEN" in errors[-1]
    # No gRPC retries or tracebacks around it.
    assert not any("InvalidAuthToken" in line or "Traceback" in line for line in errors), refused.stderr[-4000:]
