"""Pool amortization: images the shared pool generates for a sweep versus what generating per trial would cost.

    .venv/bin/python bench/pool_amortization.py [--trials 8] [--training-steps 300]

A sweep of K trials with mixed synthetic demands (proportion 0.25 / 0.5 / 1.0, add and
balance modes, two real fractions) draws ddpm images from a fresh pool. Then the same fitted
model generates every trial's demand separately, as a per-trial generator would have to.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import ray
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from generators.base import create_generator  # noqa: E402
from generators.pool import PoolKey, SyntheticPool  # noqa: E402
from search.run import main as run_search  # noqa: E402


def amortization_space(epochs: int, training_steps: int) -> dict:
    return {
        "fixed": {
            "training.epochs": epochs, "model.backbone": "basic_cnn", "synthetic.generator": "ddpm",
            "synthetic.settings.training_steps": training_steps,
            # CPU-sized, like the quick preset: the comparison is about how many images are made, not their quality.
            "synthetic.settings.block_out_channels": [16, 32], "synthetic.settings.sampling_steps": 10,
        },
        "parameters": {
            "real_fraction": {"choice": [0.5, 1.0]},
            "synthetic.proportion": {"choice": [0.25, 0.5, 1.0]},
            "synthetic.mode": {"choice": ["add", "balance"]},
        },
    }


def per_trial_generation_seconds(pool: SyntheticPool, key: PoolKey, demands: pd.DataFrame, class_columns: list[str]) -> float:
    """Time to make every trial's images separately with the same fitted model (seeds differ per trial)."""
    info = pool.generator_info(key)
    shape = info.get("image_shape") or pool.images_of(key, pool.records(key, 0)[:1]).shape[1:]
    generator = create_generator(
        "ddpm", settings=info["settings"], num_classes=len(class_columns), channels=int(shape[0]), image_size=int(shape[-1]),
    )
    pool.load_generator(key, generator)
    started = time.perf_counter()
    for trial_index, row in enumerate(demands[class_columns].itertuples(index=False)):
        for class_index, count in enumerate(row):
            if count > 0:
                seeds = [trial_index * 1_000_000 + class_index * 10_000 + image for image in range(int(count))]
                for start in range(0, len(seeds), 64):
                    generator.generate(class_index, seeds[start:start + 64])
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--training-steps", type=int, default=300)
    parser.add_argument("--image-size", type=int, default=32)
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        space = Path(folder, "amortization.yaml")
        space.write_text(yaml.safe_dump(amortization_space(arguments.epochs, arguments.training_steps)))
        started = time.perf_counter()
        code = run_search([
            "--space", str(space), "--image-size", str(arguments.image_size), "--num-samples", str(arguments.trials),
            "--searcher", "random", "--scheduler", "none", "--storage", str(Path(folder, "results")), "--name", "amortization",
            "--wandb-mode", "disabled", "--no-final-test",
        ])
        sweep_seconds = time.perf_counter() - started
        if code != 0:
            raise SystemExit(f"search.run failed with exit code {code}")
        ray.shutdown()
        leaderboard = pd.read_csv(Path(folder, "results", "amortization", "leaderboard.csv"))
        class_columns = [column for column in leaderboard if column.startswith("synthetic_count_")]
        pool = SyntheticPool(str(Path(folder, "results", "synthetic_pool")))
        generated = sum(row["count"] for row in pool.summary())
        demanded = int(leaderboard["synthetic_images"].sum())
        key = PoolKey.from_dict(pool.summary()[0])
        per_trial_seconds = per_trial_generation_seconds(pool, key, leaderboard, class_columns)
        pool_seconds = per_trial_seconds * generated / max(demanded, 1)
    print(f"\n{len(leaderboard)} trials on phantom at {arguments.image_size} px, ddpm with {arguments.training_steps} training steps")
    print(f"images the pool generated:            {generated:6d}")
    print(f"sum of per-trial demands:             {demanded:6d}   ({demanded / max(generated, 1):.1f}x)")
    print(f"whole sweep through the pool:         {sweep_seconds:6.1f} s (fit, generation, training, report)")
    print(f"generating every trial's demand:      {per_trial_seconds:6.1f} s of sampling alone")
    print(f"the pool's sampling, at the same rate: {pool_seconds:6.1f} s")
    print(f"per-class demands per trial:\n{leaderboard[class_columns].astype(np.int64).to_string(index=False)}")


if __name__ == "__main__":
    main()
