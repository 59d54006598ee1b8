"""What a finished sweep left in storage, per Tune run (search, twins, finalists) and backbone: trials, checkpoints
saved and kept, and their bytes.

Run a sweep first (the default `make run` is `python -m search.run`), then point this at its folder:

    python -m search.run --storage /tmp/storage_bench/results --name m
    python bench/storage_size.py /tmp/storage_bench/results/m

Checkpoints saved is counted from each trial's progress.csv (one per report that carried a checkpoint); bytes
written comes from the reports' `checkpoint_bytes` where the sweep recorded them, else it is estimated as
checkpoints saved times the size of one kept checkpoint. A trial the time budget stopped before its first report has
no progress.csv (nor params.json, when it never started): it counts as a trial of 0 epochs.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

from search.tuning.storage_usage import stored_bytes

RUNS = {"search": ".", "twins": "twins", "finalists": "finalists"}


def trial_row(folder: Path, run: str) -> dict[str, object]:
    progress_file = folder / "progress.csv"
    progress = pd.read_csv(progress_file) if progress_file.exists() else pd.DataFrame({"checkpoint_dir_name": []})
    params_file = folder / "params.json"
    params = json.loads(params_file.read_text()) if params_file.exists() else {}
    kept = sorted(folder.glob("checkpoint_*"))
    kept_bytes = [sum(path.stat().st_size for path in checkpoint.rglob("*") if path.is_file()) for checkpoint in kept]
    saved = int(progress["checkpoint_dir_name"].notna().sum())
    if "checkpoint_bytes" in progress:
        written = float(progress["checkpoint_bytes"].fillna(0).sum())
    else:
        written = saved * (max(kept_bytes) if kept_bytes else 0)
    return {
        "run": run, "backbone": params.get("model.backbone", "?"), "epochs": len(progress), "checkpoints_saved": saved,
        "checkpoints_kept": len(kept), "kept_mb": sum(kept_bytes) / 1e6, "written_mb": written / 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sweep", type=Path, help="the sweep's folder, <storage>/<name>")
    parser.add_argument("--pool", type=Path, help="the pool folder; default: <storage>/synthetic_pool")
    arguments = parser.parse_args()
    trials = pd.DataFrame([
        trial_row(folder, run) for run, sub in RUNS.items() for folder in sorted((arguments.sweep / sub).glob("search_trial_*"))
    ])
    by_backbone = trials.groupby(["run", "backbone"]).agg(
        trials=("epochs", "size"), epochs=("epochs", "sum"), checkpoints_saved=("checkpoints_saved", "sum"),
        checkpoints_kept=("checkpoints_kept", "sum"), kept_mb=("kept_mb", "sum"), written_mb=("written_mb", "sum"),
    )
    print(by_backbone.to_string(float_format=lambda value: f"{value:.1f}"))
    pool = arguments.pool or arguments.sweep.parent / "synthetic_pool"
    print(f"\nsweep folder: {stored_bytes(str(arguments.sweep)) / 1e6:.1f} MB, pool: {stored_bytes(str(pool)) / 1e6:.1f} MB, "
          f"checkpoints written: {trials['written_mb'].sum():.1f} MB")


if __name__ == "__main__":
    main()
