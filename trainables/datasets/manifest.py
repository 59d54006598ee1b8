"""Loading a CSV / TSV manifest that maps image paths (any format `file_images` reads, DICOM and NIfTI included) to
labels, with an optional split column and patient column, the way CheXpert, ISIC and most PhysioNet releases come."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from trainables.datasets.file_images import ListedFile, splits_of_listed_files
from trainables.datasets.image_set import DatasetError, DatasetSplits
from trainables.datasets.load_options import LoadOptions, ManifestColumns
from trainables.datasets.sources import DATA_SOURCES

MANIFEST_SUFFIXES = (".csv", ".tsv")
DEFAULT_PATIENT_COLUMN = "patient_id"
# Values of the split column -> split; anything else is an error naming the row.
SPLIT_VALUES = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}
# A label cell holding several labels: "Atelectasis|Effusion", "1;0", "[0, 1]", "a,b".
_SEVERAL_LABELS = re.compile(r"[|;,\[\]]")


@dataclass(frozen=True)
class _Row:
    line: int  # the row's line in the file (the header is line 1), for errors
    path: Path
    label: str
    split: str | None
    patient: str | None


def _read_table(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise DatasetError(f"manifest '{path}' does not exist")
    separator = "\t" if path.suffix.lower() == ".tsv" else ","
    try:
        # Everything as text: patient ids such as 007 and labels such as 1.0 keep what they say.
        return pd.read_csv(path, sep=separator, dtype=str, keep_default_na=False, skipinitialspace=True)
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        raise DatasetError(f"cannot read manifest '{path}': {error}") from error


def _column(table: pd.DataFrame, path: Path, flag: str, name: str) -> None:
    if name not in table.columns:
        raise DatasetError(f"manifest '{path}' has no column {name!r} (--{flag}); its columns are {list(table.columns)}")


def _rows(table: pd.DataFrame, path: Path, columns: ManifestColumns, image_root: Path) -> list[_Row]:
    _column(table, path, "path-column", columns.path)
    _column(table, path, "label-column", columns.label)
    patient_column = columns.patient or (DEFAULT_PATIENT_COLUMN if DEFAULT_PATIENT_COLUMN in table.columns else None)
    if patient_column is not None:
        _column(table, path, "patient-column", patient_column)
    has_split = columns.split in table.columns
    rows = []
    for offset, record in enumerate(table.to_dict("records")):
        line = offset + 2
        where = f"row {line} of manifest '{path}'"
        relative = str(record[columns.path]).strip()
        if not relative:
            raise DatasetError(f"{where} has an empty {columns.path!r} (the image path)")
        file = (image_root / relative) if not Path(relative).is_absolute() else Path(relative)
        if not file.is_file():
            raise DatasetError(f"{where}: image '{relative}' does not exist under '{image_root}' (--image-root)")
        label = str(record[columns.label]).strip()
        if not label:
            raise DatasetError(f"{where} has no label in column {columns.label!r}")
        if _SEVERAL_LABELS.search(label):
            raise DatasetError(
                f"{where}: label {label!r} holds several labels; this tool trains single-label classifiers, one "
                f"label per row (for a multi-label dataset, make one manifest per finding with its own 0/1 label)"
            )
        split = None
        if has_split:
            value = str(record[columns.split]).strip().lower()
            if value not in SPLIT_VALUES:
                raise DatasetError(
                    f"{where}: split {record[columns.split]!r} in column {columns.split!r} is not one of "
                    f"{', '.join(SPLIT_VALUES)}"
                )
            split = SPLIT_VALUES[value]
        patient = None
        if patient_column is not None:
            patient = str(record[patient_column]).strip()
            if not patient:
                # Without it the row's patient is unknown, and guessing could put one patient on both sides.
                raise DatasetError(f"{where} has an empty patient column {patient_column!r}; every row needs its patient")
        rows.append(_Row(line, file, label, split, patient))
    if not rows:
        raise DatasetError(f"manifest '{path}' has a header but no rows")
    return rows


def _class_names_and_labels(rows: list[_Row], columns: ManifestColumns, path: Path) -> tuple[tuple[str, ...], list[int]]:
    """Integer labels 0..K-1 (named by --class-names, else by their digits) or labels written as names (sorted)."""
    values = [row.label for row in rows]
    if all(value.lstrip("-").isdigit() for value in values):
        integers = [int(value) for value in values]
        if columns.class_names is not None:
            allowed = len(columns.class_names)
            for row, label in zip(rows, integers):
                if not 0 <= label < allowed:
                    raise DatasetError(
                        f"row {row.line} of manifest '{path}': label {label} has no name in --class-names "
                        f"{','.join(columns.class_names)} (labels 0..{allowed - 1})"
                    )
            return columns.class_names, integers
        if min(integers) < 0:
            raise DatasetError(f"manifest '{path}' has negative labels; integer labels run 0, 1, ...")
        return tuple(str(index) for index in range(max(integers) + 1)), integers
    if columns.class_names is not None:
        unknown = sorted(set(values) - set(columns.class_names))
        if unknown:
            raise DatasetError(
                f"manifest '{path}' has labels {unknown} that are not in --class-names {','.join(columns.class_names)}"
            )
        names = columns.class_names
    else:
        names = tuple(sorted(set(values)))
    return names, [names.index(value) for value in values]


@DATA_SOURCES.register("manifest")
def load_manifest(location: str, options: LoadOptions) -> DatasetSplits:
    """The manifest at `location`: columns path, label, optional split (train / val / test) and patient
    (`patient_id` by default), names settable in `options.manifest`. Paths are relative to --image-root (default:
    the manifest's folder). A split the manifest lacks is carved by patient."""
    path = Path(location)
    columns = options.manifest
    image_root = Path(columns.image_root).expanduser() if columns.image_root else path.parent
    if not image_root.is_dir():
        raise DatasetError(f"image root '{image_root}' (--image-root) of manifest '{path}' is not a folder")
    rows = _rows(_read_table(path), path, columns, image_root)
    class_names, labels = _class_names_and_labels(rows, columns, path)
    listed = {"train": [], "val": [], "test": []}
    for row, label in zip(rows, labels):
        listed[row.split or "train"].append(ListedFile(row.path, label, row.patient))
    if not listed["train"]:
        raise DatasetError(f"manifest '{path}' has no rows in the train split (column {columns.split!r})")
    return splits_of_listed_files(
        options,
        name=path.stem,
        class_names=class_names,
        root=image_root,
        train=listed["train"],
        val=listed["val"],
        test=listed["test"],
    )
