"""How much cross-patient leakage a random image-level split makes, and what --patient-from-filename changes.

Writes a Kermany-style chest X-ray folder (NORMAL / PNEUMONIA, files person<n>_<kind>_<k>.png; pneumonia patients
have more images each, as in Kermany et al. 2018) and loads it twice: without patients (every image its own) and
with `--patient-from-filename '(person\\d+)_'`. Prints, for each, images and patients per split and how many
patients have images in more than one split.

    python bench/patient_split.py                         # 400 persons
    python bench/patient_split.py --persons 2000
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from trainables.datasets import load_dataset  # noqa: E402

PATTERN = r"(person\d+)_"


def write_folder(root: Path, persons: int, seed: int) -> int:
    generator = np.random.default_rng(seed)
    written = 0
    for person in range(persons):
        pneumonia = generator.random() < 0.6
        # Kermany's PNEUMONIA folder holds about 3 images per person, NORMAL about 1.
        images = int(generator.integers(1, 7)) if pneumonia else int(generator.integers(1, 3))
        class_name, kind = ("PNEUMONIA", "virus") if pneumonia else ("NORMAL", "normal")
        folder = root / class_name
        folder.mkdir(parents=True, exist_ok=True)
        for image in range(images):
            pixels = generator.integers(0, 256, (8, 8), dtype=np.uint8)
            Image.fromarray(pixels).save(folder / f"person{person}_{kind}_{image}.png")
            written += 1
    return written


def describe(label: str, splits) -> None:
    sides = defaultdict(set)
    rows = []
    for name, image_set in (("train", splits.train), ("val", splits.val), ("test", splits.load_test())):
        persons = {image_id.split("/")[1].split("_")[0] for image_id in image_set.ids}
        for person in persons:
            sides[person].add(name)
        rows.append(f"{name} {len(image_set)} images / {len(persons)} persons")
    crossing = sum(1 for found in sides.values() if len(found) > 1)
    print(f"{label:<28} {'; '.join(rows)}; persons in more than one split: {crossing} of {len(sides)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--persons", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0)
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder) / "chest_xray"
        images = write_folder(root, arguments.persons, arguments.seed)
        print(f"{images} images of {arguments.persons} persons; split 0.7 / 0.1 / 0.2, seed {arguments.seed}")
        describe("image-level (no patients)", load_dataset(root, seed=arguments.seed))
        describe("--patient-from-filename", load_dataset(root, seed=arguments.seed, patient_from_filename=PATTERN))


if __name__ == "__main__":
    main()
