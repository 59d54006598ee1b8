"""`python -m search.pool`: what a synthetic pool holds, a PNG grid of its images per class, removing a generator,
checking every stored batch against its checksums."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from generators.errors import GeneratorError
from generators.pool import PoolError, PoolKey, SyntheticPool
from search.report.figures import plt, save_figure
from spaces import GENERATORS

DEFAULT_POOL = "./ray_results/synthetic_pool"


def fit_description(pool: SyntheticPool, key: PoolKey) -> str:
    """What a stored fit was, from its fit record: the settings that shaped it (those a settings model names in
    `fit_summary`, and every other fit setting off its default), the seed and the seconds it took."""
    if key.fit_subset is None or not pool.has_generator(key):
        return ""
    record = pool.generator_info(key)
    values = record.get("settings", {})
    shown: dict[str, Any] = {}
    try:
        model = GENERATORS.entry(key.generator).settings
        defaults = model().model_dump(mode="json")
    except ValueError:  # a generator this process does not know: its whole record
        shown = dict(values)
    else:
        always = getattr(model, "fit_summary", ())
        for name, field in model.model_fields.items():
            extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
            if name in values and extra.get("affects") == "fit" and (name in always or values[name] != defaults.get(name)):
                shown[name] = values[name]
    parts = [f"{name}={value}" for name, value in shown.items()]
    parts += [f"seed={record['seed']}"] if "seed" in record else []
    parts += [f"fit_s={float(record['fit_seconds']):.0f}"] if "fit_seconds" in record else []
    return " ".join(parts)


def pool_table(pool: SyntheticPool) -> pd.DataFrame:
    """Per generator, settings and class: image count, the subset it was fit on, what the fit was (fit) and when
    images were made."""
    rows = pool.summary()
    if not rows:
        return pd.DataFrame()
    fits: dict[PoolKey, str] = {}
    for row in rows:
        key = PoolKey.from_dict(row)
        row["fit"] = fits[key] if key in fits else fits.setdefault(key, fit_description(pool, key))
    table = pd.DataFrame(rows)
    for column in ("first_created_at", "last_created_at"):
        table[column] = [time.strftime("%Y-%m-%d %H:%M", time.localtime(value)) for value in table[column]]
    return table


def spend_lines(pool: SyntheticPool) -> list[str]:
    """What the pool has spent on image APIs, per generator and settings, and the cap the last sweep set."""
    cap, rows = pool.spend.summary()
    if not rows:
        return []
    table = pd.DataFrame(rows)[["generator", "settings_hash", "dataset", "images", "calls", "usd"]]
    total = float(table["usd"].sum())
    cap_text = f"{cap:.2f} USD (the last sweep's --max-api-spend-usd)" if cap is not None else "not set"
    return [
        "",
        f"image API spend: {total:.4f} USD in total; cap {cap_text}",
        table.to_string(index=False, float_format=lambda usd: f"{usd:.4f}"),
    ]


def sample_grid(pool: SyntheticPool, path: Path, per_class: int, generator: str | None = None) -> Path:
    """One row per (generator settings, class) with its first images in canonical order."""
    rows = [row for row in pool.summary() if generator is None or row["generator"] == generator]
    if not rows:
        raise PoolError(f"the pool holds no images{f' of generator {generator!r}' if generator else ''}")
    figure, axes = plt.subplots(len(rows), per_class, figsize=(per_class * 1.1, len(rows) * 1.25), squeeze=False)
    for row_axes, row in zip(axes, rows):
        key = PoolKey.from_dict(row)
        records = pool.records(key, row["class_index"])[:per_class]
        images = pool.images_of(key, records)
        for column, axis in enumerate(row_axes):
            axis.axis("off")
            if column < len(images):
                image = np.transpose(images[column], (1, 2, 0))
                axis.imshow(image.squeeze(-1) if image.shape[-1] == 1 else image, cmap="gray", vmin=0, vmax=255)
        row_axes[0].set_title(f"{row['generator']} {row['settings_hash'][:6]} class {row['class_index']}", fontsize=7, loc="left")
    figure.tight_layout()
    return save_figure(figure, path, dpi=110)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m search.pool", description=__doc__)
    parser.add_argument("--pool", default=DEFAULT_POOL, help=f"pool folder or URI (default: {DEFAULT_POOL})")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser(
        "list", help="counts per generator, settings and class, with fit subset and creation times; image API spend"
    )
    grid = commands.add_parser("grid", help="write a PNG grid of samples per class")
    grid.add_argument("--output", default="pool_samples.png")
    grid.add_argument("--per-class", type=int, default=8)
    grid.add_argument("--generator", default=None, help="only this generator")
    remove = commands.add_parser("remove", help="remove a generator's images and fitted models")
    remove.add_argument("generator")
    remove.add_argument("--settings-hash", default=None, help="only these settings (see `list`)")
    verify = commands.add_parser(
        "verify", help="read every shard and manifest and check them against their checksums (exit 1 if any is corrupt)"
    )
    verify.add_argument(
        "--repair", action="store_true",
        help="set corrupt batches aside (manifest renamed to .json.corrupt) so the next sweep makes their images again",
    )
    return parser


def verify_lines(pool: SyntheticPool, repair: bool) -> tuple[list[str], bool]:
    """What `verify` prints, and whether the pool is sound now (nothing corrupt, or all of it set aside)."""
    report = pool.verify(repair=repair)
    total = report.verified + report.unverified + len(report.corrupt)
    lines = [
        f"{pool.root}: {total} batches: {report.verified} checked against their checksums, {report.unverified} written "
        f"before checksums (read back only), {len(report.corrupt)} corrupt; {report.images} sound images"
    ]
    lines += [f"corrupt: {error.damaged}: {error.reason}" for error in report.corrupt]
    lines += [f"set aside {path} as {target}" for path, target in report.set_aside.items()]
    if report.corrupt and not repair:
        lines.append("run again with --repair to set them aside; the next sweep makes their images again")
    return lines, not report.corrupt or repair


def main(argv: Sequence[str] | None = None) -> int:
    arguments = build_parser().parse_args(argv)
    try:
        pool = SyntheticPool.open_existing(arguments.pool)
        if arguments.command == "list":
            table = pool_table(pool)
            print(table.to_string(index=False) if not table.empty else f"the pool at {arguments.pool} is empty")
            for line in spend_lines(pool):
                print(line)
        elif arguments.command == "grid":
            print(sample_grid(pool, Path(arguments.output), arguments.per_class, arguments.generator))
        elif arguments.command == "verify":
            lines, sound = verify_lines(pool, arguments.repair)
            print("\n".join(lines))
            return 0 if sound else 1
        else:
            removed = pool.remove(arguments.generator, arguments.settings_hash)
            print(
                f"removed {removed} images of {arguments.generator}"
                + (f" ({arguments.settings_hash})" if arguments.settings_hash else "")
            )
    # Every error a person can cause (a wrong path or name, an unwritable output) is one line, never a traceback.
    except (GeneratorError, ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
