"""Sweeps whose --storage is an S3 bucket (moto's server on 127.0.0.1, found through AWS_ENDPOINT_URL): Tune's
results, checkpoints, the synthetic pool and the report all land in the bucket; a sweep from another working
directory (another machine, as far as it can tell) reuses the pool's fitted generator and images; --resume reads
the sweep back from the bucket."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from loopback_cluster import free_port
from s3_server import S3Server, s3_server

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
SWEEP_TIMEOUT_S = 300
STORAGE = "s3://sweeps/results"
SPACE = {
    "fixed": {
        "training.epochs": 1, "training.batch_size": 32, "model.backbone": "basic_cnn", "real_fraction": 0.5,
        "synthetic.generator": "ddpm", "synthetic.settings.training_steps": 10,
        "synthetic.settings.block_out_channels": [8, 16], "synthetic.settings.sampling_steps": 2,
    },
    "parameters": {"synthetic.proportion": {"choice": [0.5, 1.0]}},
}


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    with s3_server(free_port()) as server:
        yield server


def sweep(s3: S3Server, machine: Path, *flags: str, space: bool = True) -> subprocess.CompletedProcess[str]:
    """`python -m search.run` in its own working directory, as on a fresh machine: only the bucket is shared.
    Without `space` no --space is given (a resumed sweep's space comes from its record)."""
    machine.mkdir(parents=True, exist_ok=True)
    space_file = machine / "space.yaml"
    space_file.write_text(yaml.safe_dump(SPACE))
    environment = {key: value for key, value in os.environ.items() if not key.startswith(("AWS_", "RAY_AUTH"))}
    environment.pop("RAY_ADDRESS", None)
    environment.update(s3.env())
    # The sweep's own local Ray instance, with a token of its own rather than one written to ~/.ray.
    environment.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(24))
    environment["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    command = [
        sys.executable, "-m", "search.run", *(["--space", str(space_file)] if space else []),
        "--data", "phantom", "--phantom-count", "200", "--image-size", "16", "--searcher", "grid", "--scheduler", "none",
        "--storage", STORAGE, "--wandb-mode", "disabled", "--num-cpus", "2", *flags,
    ]
    return subprocess.run(command, cwd=machine, env=environment, capture_output=True, text=True, timeout=SWEEP_TIMEOUT_S)


def pool_objects(s3: S3Server) -> dict[str, object]:
    client = s3.client()
    return {
        key: client.head_object(Bucket=s3.bucket, Key=key)["LastModified"]
        for key in s3.keys("results/synthetic_pool/")
    }


def test_results_checkpoints_pool_and_report_live_in_the_bucket_and_a_second_machine_reuses_the_pool(
    s3: S3Server, tmp_path: Path
) -> None:
    first = sweep(s3, tmp_path / "machine1", "--name", "first")
    assert first.returncode == 0, first.stdout[-4000:] + first.stderr[-4000:]
    keys = s3.keys("results/")
    # The report, beside Tune's results, in the bucket; nothing of Tune's or the pool's on the driver's disk.
    for report_file in ("leaderboard.csv", "best_config.yaml", "test_metrics.json"):
        assert f"results/first/{report_file}" in keys, keys
    assert any(key.startswith("results/first/experiment_state") for key in keys), keys
    assert any("/checkpoint_" in key and key.startswith("results/first/") for key in keys), keys
    assert "results/synthetic_pool/pool.json" in keys
    assert not (tmp_path / "machine1" / "ray_results").exists()
    leaderboard = s3.client().get_object(Bucket=s3.bucket, Key="results/first/leaderboard.csv")["Body"].read().decode()
    assert len(leaderboard.strip().splitlines()) == 3  # header and two trials

    pool_before = pool_objects(s3)
    # The fitted model and its images, under the generator's key folder.
    assert sum("/ddpm--" in key for key in pool_before) >= 2, sorted(pool_before)
    second = sweep(s3, tmp_path / "machine2", "--name", "second", "--no-final-test")
    assert second.returncode == 0, second.stdout[-4000:] + second.stderr[-4000:]
    assert "results/second/leaderboard.csv" in s3.keys("results/second/")
    # The fitted DDPM and its images came from the bucket: not one pool object written again.
    assert "Generator ddpm" in second.stdout and " loaded " in second.stdout, second.stdout[-4000:]
    assert pool_objects(s3) == pool_before


def test_resume_reads_the_sweep_back_from_the_bucket(s3: S3Server, tmp_path: Path) -> None:
    if not s3.keys("results/first/leaderboard.csv"):
        first = sweep(s3, tmp_path / "machine1", "--name", "first")
        assert first.returncode == 0, first.stdout[-4000:] + first.stderr[-4000:]
    trials_before = {key.split("/")[2] for key in s3.keys("results/first/") if key.endswith("/result.json")}
    assert "results/first/sweep.json" in s3.keys("results/first/")
    # No --space: the sweep's space comes from its record in the bucket (this machine has no report folder).
    resumed = sweep(s3, tmp_path / "machine3", "--name", "first", "--resume", "--no-final-test", space=False)
    assert resumed.returncode == 0, resumed.stdout[-4000:] + resumed.stderr[-4000:]
    assert "No record" not in resumed.stderr, resumed.stderr[-4000:]
    assert "Leaderboard of sweep 'first' (2 trials with results, 0 failed)" in resumed.stdout
    # Finished trials were not run again.
    assert {key.split("/")[2] for key in s3.keys("results/first/") if key.endswith("/result.json")} == trials_before
