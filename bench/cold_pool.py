"""Cold pool: how long synthetic trials take when the pool starts empty, against their real-only twins.

    .venv/bin/python bench/cold_pool.py [--data phantom] [--repeats 3] [--epochs 5] [--training-steps 600]

A grid of real fraction 0.3 / 1.0 x synthetic proportion 0 / 0.7 (add mode, every class, ddpm sized
like the quick preset) with several repeat seeds, run through `python -m search.run` on a fresh
pool, W&B disabled, no scheduler. It prints each trial's own training time (Tune's time_total_s)
and the whole command's wall time, which includes Ray's start, the ddpm fits and, where the driver
does it, generating the images before trials start. The script only drives the CLI and reads the
leaderboard, so the same script measures any version of the project.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]


def cold_pool_space(epochs: int, training_steps: int) -> dict:
    return {
        "fixed": {
            "training.epochs": epochs, "training.batch_size": 32, "model.backbone": "basic_cnn",
            "synthetic.generator": "ddpm", "synthetic.mode": "add", "synthetic.classes": "all",
            "synthetic.settings.training_steps": training_steps,
            "synthetic.settings.block_out_channels": [16, 32], "synthetic.settings.sampling_steps": 10,
        },
        "parameters": {
            "real_fraction": {"choice": [0.3, 1.0]},
            "synthetic.proportion": {"choice": [0.0, 0.7]},
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="phantom")
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--training-steps", type=int, default=600)
    parser.add_argument("--log", default=None, help="also write the sweep's terminal output here")
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        space = Path(folder, "cold_pool.yaml")
        space.write_text(yaml.safe_dump(cold_pool_space(arguments.epochs, arguments.training_steps)))
        command = [
            sys.executable, "-m", "search.run", "--space", str(space), "--data", arguments.data,
            "--image-size", str(arguments.image_size), "--repeats", str(arguments.repeats),
            "--searcher", "grid", "--scheduler", "none", "--storage", str(Path(folder, "results")),
            "--name", "cold", "--wandb-mode", "disabled", "--no-final-test",
        ]
        started = time.perf_counter()
        completed = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
        wall = time.perf_counter() - started
        if arguments.log:
            Path(arguments.log).write_text(completed.stdout + completed.stderr)
        if completed.returncode != 0:
            sys.exit(f"the sweep failed (exit {completed.returncode}):\n{completed.stdout[-3000:]}\n{completed.stderr[-3000:]}")
        leaderboard = pd.read_csv(Path(folder, "results", "cold", "leaderboard.csv"))
    table = leaderboard[["real_fraction", "synthetic.proportion", "real_images", "synthetic_images", "time_total_s"]]
    table = table.sort_values(["synthetic.proportion", "real_fraction"])
    print(table.to_string(index=False, float_format=lambda value: f"{value:.1f}"))
    synthetic = table[table["synthetic.proportion"] > 0]["time_total_s"]
    real_only = table[table["synthetic.proportion"] == 0]["time_total_s"]
    print(f"\nsynthetic trials {synthetic.sum():.0f} s in all, real-only trials {real_only.sum():.0f} s in all; "
          f"whole command {wall:.0f} s ({arguments.repeats} repeats, {arguments.epochs} epochs, {arguments.data})")


if __name__ == "__main__":
    main()
