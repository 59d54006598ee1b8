"""How faithful a fitted ddpm's images are: fit time, sampling time, brightness per class, and the classification
accuracy score (train a classifier on synthetic images only, test it on real validation images; Ravuri & Vinyals
2019) against the same classifier trained on the real images.

    .venv/bin/python bench/generator_fidelity.py [--data phantom] [--max-per-class N] [--setting beta_schedule='"linear"' ...]

Each `--setting name=<JSON value>` overrides one ddpm setting (see `python -m search.run --help`).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from generators import create_generator  # noqa: E402
from spaces import TrialConfig  # noqa: E402
from trainables.datasets import ImageSet, SearchData, load_dataset  # noqa: E402
from trainables.trial import TrialSettings, train_classifier  # noqa: E402


def parse_settings(pairs: list[str]) -> dict:
    settings = {}
    for pair in pairs:
        name, separator, value = pair.partition("=")
        if not separator:
            raise SystemExit(f"--setting takes name=<JSON value>, got {pair!r}")
        settings[name] = json.loads(value)
    return settings


def validation_balanced_accuracy(train: ImageSet, data: SearchData, epochs: int) -> float:
    """Balanced accuracy on the real validation split of a basic CNN trained on `train` alone."""
    trial = TrialConfig.model_validate({
        "model": {"backbone": "basic_cnn"}, "training": {"epochs": epochs, "batch_size": 32, "imbalance": "balanced_sampler"},
    })
    results: list[float] = []
    training_data = SearchData(name=data.name, class_names=data.class_names, ordinal=data.ordinal, train=train, val=data.val)
    train_classifier(
        trial, training_data, TrialSettings(), on_epoch=lambda metrics, *_: results.append(metrics["val_balanced_accuracy"])
    )
    return results[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="phantom")
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=15, help="classifier epochs, for real and for synthetic training")
    parser.add_argument("--setting", action="append", default=[], metavar="NAME=JSON")
    parser.add_argument("--max-per-class", type=int, help="train both classifiers on at most this many images per class")
    arguments = parser.parse_args()
    data = load_dataset(arguments.data, image_size=arguments.image_size).for_search()
    if arguments.max_per_class:
        # The first images of each class: the split is already shuffled.
        keep = np.concatenate(
            [np.flatnonzero(data.train.labels == index)[: arguments.max_per_class] for index in range(data.num_classes)]
        )
        data = SearchData(data.name, data.class_names, data.ordinal, data.train.subset(np.sort(keep)), data.val)
    settings = TrialConfig.from_mapping(
        {"synthetic": {"generator": "ddpm", "settings": parse_settings(arguments.setting)}}
    ).synthetic.settings
    generator = create_generator(settings, num_classes=data.num_classes, channels=data.channels, image_size=data.image_size)
    train_counts = data.train.class_counts(data.num_classes)
    started = time.perf_counter()
    generator.fit(data.train.images, data.train.labels, seed=0)
    fit_seconds = time.perf_counter() - started

    started = time.perf_counter()
    # As many synthetic images per class as real ones, with seeds no fit or pool uses.
    per_class = [generator.generate(index, list(range(10_000, 10_000 + int(count)))) for index, count in enumerate(train_counts)]
    sampling_seconds = time.perf_counter() - started
    synthetic = ImageSet(
        images=np.concatenate(per_class),
        labels=np.repeat(np.arange(data.num_classes), train_counts),
        ids=np.array([f"synthetic/{index}" for index in range(int(train_counts.sum()))]),
    )
    real_score = validation_balanced_accuracy(data.train, data, arguments.epochs)
    synthetic_score = validation_balanced_accuracy(synthetic, data, arguments.epochs)

    print(f"\nddpm on {data.name} at {data.image_size} px, {len(data.train)} training images; settings:")
    print(settings.model_dump_json())
    print(f"fit:                                 {fit_seconds:7.1f} s ({settings.training_steps} steps)")
    print(f"sampling:                            {sampling_seconds / len(synthetic):7.3f} s per image ({len(synthetic)} images)")
    for index, name in enumerate(data.class_names):
        real_mean = data.train.images[data.train.labels == index].mean()
        print(f"mean intensity {name:>22}: real {real_mean:6.1f}, synthetic {per_class[index].mean():6.1f}")
    print(f"val balanced accuracy, trained on real:      {real_score:.3f}")
    print(f"val balanced accuracy, trained on synthetic: {synthetic_score:.3f} (classification accuracy score)")


if __name__ == "__main__":
    main()
