"""Wall time of N configurations through `search.run` versus a plain loop over the same training function.

    .venv/bin/python bench/sweep_overhead.py [--epochs 20] [--wandb-modes disabled offline]

Both sides load the dataset, train the same grid of configurations for the same epochs on the
same seeds, and evaluate on validation every epoch. The sweep adds Ray start-up, the object
store, checkpoints, Tune's bookkeeping, the report (report.html included) and, with W&B offline, the
runs written after the sweep; the target is a ratio <= 1.10 at 20 epochs with the default W&B mode (offline).
"""

from __future__ import annotations

import argparse
import itertools
import sys
import tempfile
import time
from pathlib import Path

import ray
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from search.run import main as run_search  # noqa: E402
from spaces import load_space  # noqa: E402
from trainables.datasets import load_dataset  # noqa: E402
from trainables.trial import TrialSettings, train_classifier  # noqa: E402


def benchmark_space(epochs: int) -> dict:
    return {
        "fixed": {"training.epochs": epochs, "training.batch_size": 64, "model.backbone": "basic_cnn", "optimizer.lr": 0.001},
        "parameters": {
            "augmentation.policy": {"choice": ["none", "hflip", "randaugment", "custom"]},
            "real_fraction": {"choice": [0.5, 1.0]},
        },
    }


def plain_loop(space_path: Path, data_source: str, image_size: int, repeats: int) -> tuple[float, int]:
    started = time.perf_counter()
    space = load_space(str(space_path))
    data = load_dataset(data_source, image_size=image_size).for_search()
    keys = list(space.parameters)
    configurations = [dict(zip(keys, values)) for values in itertools.product(*(space.parameters[k].choice for k in keys))]
    for sample in configurations:
        train_classifier(space.resolve(sample), data, TrialSettings(repeats=repeats), on_epoch=lambda *_: None)
    return time.perf_counter() - started, len(configurations)


def through_search(space_path: Path, data_source: str, image_size: int, repeats: int, wandb_mode: str, storage: Path) -> float:
    started = time.perf_counter()
    code = run_search([
        "--data", data_source, "--image-size", str(image_size), "--space", str(space_path), "--searcher", "grid",
        "--scheduler", "none", "--repeats", str(repeats), "--storage", str(storage), "--name", f"overhead-{wandb_mode}",
        "--wandb-mode", wandb_mode, "--no-final-test",
    ])
    # Each measured sweep starts its own Ray instance, as a user's command does.
    ray.shutdown()
    if code != 0:
        raise SystemExit(f"search.run failed with exit code {code}")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--data", default="phantom")
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--wandb-modes", nargs="+", default=["disabled", "offline"], choices=["disabled", "offline"])
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        space_path = Path(folder, "overhead_space.yaml")
        space_path.write_text(yaml.safe_dump(benchmark_space(arguments.epochs)))
        loop_seconds, count = plain_loop(space_path, arguments.data, arguments.image_size, arguments.repeats)
        search_seconds = {
            mode: through_search(
                space_path, arguments.data, arguments.image_size, arguments.repeats, mode, Path(folder, "results")
            )
            for mode in arguments.wandb_modes
        }
    print(
        f"\n{count} configurations x {arguments.epochs} epochs x {arguments.repeats} repeats "
        f"on {arguments.data} at {arguments.image_size} px"
    )
    print(f"plain loop:                  {loop_seconds:7.1f} s")
    for mode, seconds in search_seconds.items():
        print(f"search.run, W&B {mode:9s}:  {seconds:7.1f} s   ratio {seconds / loop_seconds:5.2f}  (target <= 1.10)")


if __name__ == "__main__":
    main()
