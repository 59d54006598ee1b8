"""The same sweep on one Ray node and on two loopback nodes (each node 1 CPU): wall time, trials per minute, and the
pool's images made versus demanded across nodes.

    .venv/bin/python bench/scale_out.py [--trials 8] [--epochs 20] [--phantom-count 4000]

Each run starts its own cluster with `ray start` (token authentication on, as Ray 2.60 starts one) through
tests/loopback_cluster.py, runs `python -m search.run --ray-address <head>` in its own process exactly as a user
on a cluster does, then stops every process of that cluster. On one node the head also advertises
`generator_gpu`; on two nodes only the second does, as cluster.yaml's GPU workers. The generator is `oversample`
(augmented copies), so generation is cheap and the figure is about trials spreading, not about a diffusion
model's speed; the pool's counts still show whether an image was made once for every trial that read it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from loopback_cluster import LoopbackCluster  # noqa: E402

from generators.pool import SyntheticPool  # noqa: E402

SWEEP_TIMEOUT_S = 1800


def benchmark_space(trials: int, epochs: int) -> dict:
    """`trials` grid points, all drawing oversampled images from the shared pool."""
    learning_rates = [round(0.001 * (1.5**index), 6) for index in range(max(1, trials // 2))]
    return {
        "fixed": {
            "training.epochs": epochs, "training.batch_size": 32, "model.backbone": "basic_cnn", "real_fraction": 1.0,
            "synthetic.generator": "oversample",
        },
        "parameters": {
            "synthetic.proportion": {"choice": [0.5, 1.0]},
            "optimizer.lr": {"choice": learning_rates},
        },
    }


def run_on(nodes: int, work: Path, args: argparse.Namespace) -> dict:
    cluster = LoopbackCluster()
    try:
        if nodes == 1:
            cluster.start_node("head", num_cpus=1, resources={"generator_gpu": 1})
        else:
            cluster.start_node("head", num_cpus=1)
            cluster.start_node("gpu", num_cpus=1, resources={"generator_gpu": 1})
        space = work / "space.yaml"
        space.write_text(yaml.safe_dump(benchmark_space(args.trials, args.epochs)))
        results = work / "results"
        command = [
            sys.executable, "-m", "search.run", "--ray-address", str(cluster.address), "--space", str(space),
            "--data", "phantom", "--phantom-count", str(args.phantom_count), "--image-size", "32",
            "--searcher", "grid", "--scheduler", "none", "--storage", str(results), "--name", "scale",
            "--wandb-mode", "disabled", "--no-final-test", "--no-twins", "--no-quality-classification-accuracy-score",
            "--generator-resources-custom", "{generator_gpu: 1}",
        ]
        environment = cluster.env(PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
        started = time.monotonic()
        finished = subprocess.run(command, cwd=REPO, env=environment, capture_output=True, text=True, timeout=SWEEP_TIMEOUT_S)
        wall_s = time.monotonic() - started
        if finished.returncode != 0:
            raise RuntimeError(f"the sweep on {nodes} node(s) failed:\n{finished.stdout[-3000:]}\n{finished.stderr[-3000:]}")
        leaderboard = pd.read_csv(results / "scale" / "leaderboard.csv")
        pids = [json.loads(path.read_text().splitlines()[-1])["pid"] for path in (results / "scale").glob("*/result.json")]
        node_of = {pid: node.name for node in cluster.nodes for pid in node.worker_pids()}
        pool = SyntheticPool.open_existing(str(results / "synthetic_pool"))
        made = sum(int(row["count"]) for row in pool.summary())
        return {
            "nodes": nodes,
            "trials": len(leaderboard),
            "wall_s": wall_s,
            "trials_per_min": 60 * len(leaderboard) / wall_s,
            "trials_by_node": pd.Series([node_of.get(int(pid), "?") for pid in pids]).value_counts().to_dict(),
            "images_made": made,
            "images_demanded": int(leaderboard["synthetic_images"].sum()),
        }
    finally:
        cluster.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--phantom-count", type=int, default=4000)
    args = parser.parse_args()
    rows = []
    for nodes in (1, 2):
        with tempfile.TemporaryDirectory(prefix=f"scale-{nodes}-") as work:
            rows.append(run_on(nodes, Path(work), args))
            print(json.dumps(rows[-1]), flush=True)
    one, two = rows
    print(f"\nwall time, 1 node / 2 nodes: {one['wall_s']:.1f} s / {two['wall_s']:.1f} s = {one['wall_s'] / two['wall_s']:.2f}x")
    print(f"trials per minute: {one['trials_per_min']:.2f} -> {two['trials_per_min']:.2f}")
    for row in rows:
        print(f"{row['nodes']} node(s): trials by node {row['trials_by_node']}; pool images made {row['images_made']}, "
              f"demanded by trials {row['images_demanded']}")


if __name__ == "__main__":
    main()
