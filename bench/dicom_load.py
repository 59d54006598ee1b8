"""How long a class folder of DICOM files takes to load: copies pydicom's shipped CT_small.dcm and MR_small.dcm
(uncompressed 16-bit, 128 x 128 and 64 x 64) into two class folders, one distinct PatientID per file, and times
`load_dataset(folder, image_size=64)`, which reads every file twice over (PatientID without pixels for the split,
then pixels through the modality LUT, the window and the resize).

    python bench/dicom_load.py                    # 1,000 files, 3 repeats
    python bench/dicom_load.py --files 5000 --window lung
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pydicom
from pydicom.data import get_testdata_file

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from trainables.datasets import load_dataset  # noqa: E402

SOURCES = {"ct": "CT_small.dcm", "mr": "MR_small.dcm"}


def write_folder(root: Path, files: int) -> None:
    datasets = {name: pydicom.dcmread(get_testdata_file(file)) for name, file in SOURCES.items()}
    for index in range(files):
        class_name = "ct" if index % 2 == 0 else "mr"
        dataset = datasets[class_name]
        dataset.PatientID = f"BENCH{index:06d}"
        folder = root / class_name
        folder.mkdir(parents=True, exist_ok=True)
        dataset.save_as(folder / f"image{index:06d}.dcm")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--window", default=None, help="a preset such as lung, or center,width; default: the file's")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        started = time.perf_counter()
        write_folder(root, args.files)
        print(
            f"wrote {args.files} DICOM files ({sum(p.stat().st_size for p in root.rglob('*.dcm')) / 1e6:.1f} MB) "
            f"in {time.perf_counter() - started:.1f} s"
        )
        reading = {} if args.window is None else {"window": args.window}
        seconds = []
        for _ in range(args.repeats):
            started = time.perf_counter()
            splits = load_dataset(str(root), image_size=args.image_size, **reading)
            seconds.append(time.perf_counter() - started)
        loaded = len(splits.train) + len(splits.val) + len(splits.load_test())
        median = statistics.median(seconds)
        print(
            f"load_dataset: {loaded} images of {splits.train.patient_count()} + {splits.val.patient_count()} train/val "
            f"patients; median {median:.2f} s of {args.repeats} ({', '.join(f'{s:.2f}' for s in seconds)}), "
            f"{args.files / median:.0f} files/s"
        )


if __name__ == "__main__":
    main()
