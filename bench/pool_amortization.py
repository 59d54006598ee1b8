"""Pool amortization: images the shared pool generates for a sweep versus what generating per trial would cost.

    .venv/bin/python bench/pool_amortization.py [--searcher grid | --searcher random --trials 8] [--training-steps 300]

A sweep of trials with mixed synthetic demands (proportion 0.25 / 0.5 / 1.0, add and balance
modes, two real fractions: 12 distinct configurations on the grid, or K random draws, which may
repeat a configuration as real searchers do) draws ddpm images from a fresh pool. Then the same fitted
model samples, in one process, first what the pool made and then every trial's demand on its own,
as a per-trial generator would have to; a per-trial generator would also refit for each trial.
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

from generators import DDPMSettings, Generator, create_generator  # noqa: E402
from generators.pool import PoolKey, SyntheticPool  # noqa: E402
from search.run import main as run_search  # noqa: E402

BATCH = 64


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


def load_fitted_ddpm(pool: SyntheticPool, key: PoolKey, settings: dict, num_classes: int, image_size: int) -> Generator:
    # The phantom data is grayscale.
    generator = create_generator(
        DDPMSettings.model_validate(settings), num_classes=num_classes, channels=1, image_size=image_size
    )
    pool.load_generator(key, generator)
    return generator


def sampling_seconds(generator: Generator, demands: list[list[int]]) -> float:
    """Time to sample demands[t][c] images of class c for every row t, each row with seeds of its own."""
    started = time.perf_counter()
    for row_index, row in enumerate(demands):
        for class_index, count in enumerate(row):
            seeds = [row_index * 1_000_000 + class_index * 10_000 + image for image in range(int(count))]
            for start in range(0, len(seeds), BATCH):
                generator.generate(class_index, seeds[start:start + BATCH])
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--searcher", choices=["grid", "random"], default="grid")
    parser.add_argument("--trials", type=int, default=8, help="random searcher: configurations drawn")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--training-steps", type=int, default=300)
    parser.add_argument("--image-size", type=int, default=32)
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        space = Path(folder, "amortization.yaml")
        space.write_text(yaml.safe_dump(amortization_space(arguments.epochs, arguments.training_steps)))
        started = time.perf_counter()
        code = run_search([
            "--space", str(space), "--image-size", str(arguments.image_size),
            "--num-samples", str(arguments.trials if arguments.searcher == "random" else 1), "--searcher", arguments.searcher,
            "--scheduler", "none", "--storage", str(Path(folder, "results")), "--name", "amortization",
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
        fit_record = pool.generator_info(key)
        fit_seconds = float(fit_record["fit_seconds"])
        generator = load_fitted_ddpm(pool, key, fit_record["settings"], len(class_columns), arguments.image_size)
        demands = leaderboard[class_columns].astype(np.int64)
        # The same fitted model, the same batches, the same process: once for what the pool made (the largest
        # demand per class), once for every trial's demand on its own, as a per-trial generator would make them.
        pool_sampling = sampling_seconds(generator, [demands.max().tolist()])
        per_trial_sampling = sampling_seconds(generator, demands.values.tolist())
    trials_with_synthetic = int((leaderboard["synthetic_images"] > 0).sum())
    print(
        f"\n{len(leaderboard)} trials on phantom at {arguments.image_size} px, "
        f"ddpm with {arguments.training_steps} training steps"
    )
    print(f"images the pool generated:              {generated:7d}")
    print(f"sum of per-trial demands:               {demanded:7d}   ({demanded / max(generated, 1):.1f}x)")
    print(f"sampling the pool's images:             {pool_sampling:7.1f} s")
    print(f"sampling every trial's demand:          {per_trial_sampling:7.1f} s   ({per_trial_sampling / pool_sampling:.1f}x)")
    print(f"ddpm fit (once, through the pool):      {fit_seconds:7.1f} s")
    print(
        f"ddpm fit per trial ({trials_with_synthetic} trials with synthetic): "
        f"{fit_seconds * trials_with_synthetic:7.1f} s (that fit, repeated)"
    )
    print(f"whole sweep through the pool:           {sweep_seconds:7.1f} s (fit, generation, training, report)")
    print(f"per-class demands per trial:\n{demands.to_string(index=False)}")


if __name__ == "__main__":
    main()
