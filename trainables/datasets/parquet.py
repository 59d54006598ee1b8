"""Loading a `.parquet` file in the Hugging Face image layout: an `image` column (struct
{bytes, path} or raw PNG/JPEG bytes), an integer `label` column and an optional `split` column."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as parquet

from trainables.datasets.image_conversion import decode_images
from trainables.datasets.image_set import DatasetError, DatasetSplits, ImageSet
from trainables.datasets.load_options import LoadOptions
from trainables.datasets.sources import DATA_SOURCES
from trainables.datasets.splits import assemble_splits

IMAGE_COLUMN, LABEL_COLUMN, SPLIT_COLUMN = "image", "label", "split"
# Values of the split column -> split.
SPLIT_VALUES = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}


def _read_table(path: Path) -> pa.Table:
    if not path.is_file():
        raise DatasetError(f"parquet file '{path}' does not exist")
    try:
        table = parquet.read_table(path)
    except (OSError, pa.ArrowException) as error:
        raise DatasetError(f"cannot read parquet file '{path}': {error}") from error
    missing = [column for column in (IMAGE_COLUMN, LABEL_COLUMN) if column not in table.column_names]
    if missing:
        raise DatasetError(
            f"parquet file '{path}' has no column(s) {missing}; it has columns {table.column_names}; "
            f"expected '{IMAGE_COLUMN}' (image bytes or a struct with 'bytes') and '{LABEL_COLUMN}' (integer)"
        )
    return table


def _image_bytes(table: pa.Table, path: Path) -> list[bytes | None]:
    column_type = table.schema.field(IMAGE_COLUMN).type
    column = table.column(IMAGE_COLUMN).combine_chunks()
    if pa.types.is_struct(column_type) and column_type.get_field_index("bytes") >= 0:
        return column.field("bytes").to_pylist()
    if pa.types.is_binary(column_type) or pa.types.is_large_binary(column_type):
        return column.to_pylist()
    raise DatasetError(
        f"column '{IMAGE_COLUMN}' of '{path}' has type {column_type}; allowed are binary (encoded PNG/JPEG) "
        f"or a struct with a 'bytes' field"
    )


def _labels(table: pa.Table, path: Path) -> np.ndarray:
    column = table.column(LABEL_COLUMN)
    if not pa.types.is_integer(column.type):
        raise DatasetError(f"column '{LABEL_COLUMN}' of '{path}' has type {column.type}; labels must be integers")
    if column.null_count:
        raise DatasetError(f"column '{LABEL_COLUMN}' of '{path}' has {column.null_count} empty (null) labels")
    labels = column.to_numpy().astype(np.int64)
    if len(labels) and labels.min() < 0:
        raise DatasetError(f"column '{LABEL_COLUMN}' of '{path}' has label {int(labels.min())}; labels must be 0..K-1")
    return labels


def _splits(table: pa.Table, path: Path) -> np.ndarray | None:
    """The split of each row ("train", "val" or "test"), or None without a split column."""
    if SPLIT_COLUMN not in table.column_names:
        return None
    values = np.array([str(value).lower() for value in table.column(SPLIT_COLUMN).to_pylist()])
    unknown = sorted(set(values) - set(SPLIT_VALUES))
    if unknown:
        raise DatasetError(
            f"column '{SPLIT_COLUMN}' of '{path}' has values {unknown}; allowed are {sorted(SPLIT_VALUES)}"
        )
    return np.array([SPLIT_VALUES[value] for value in values])


def _class_names_from_metadata(table: pa.Table, path: Path) -> tuple[str, ...] | None:
    """Class names from the schema metadata: a `class_names` JSON list, or the label feature's
    names in the `huggingface` metadata the datasets library writes."""
    metadata = table.schema.metadata or {}
    try:
        if b"class_names" in metadata:
            return tuple(str(name) for name in json.loads(metadata[b"class_names"]))
        if b"huggingface" in metadata:
            features = json.loads(metadata[b"huggingface"]).get("info", {}).get("features", {})
            names = features.get(LABEL_COLUMN, {}).get("names")
            return tuple(str(name) for name in names) if names else None
    except (ValueError, TypeError, AttributeError) as error:
        raise DatasetError(f"cannot read class names from the schema metadata of '{path}': {error}") from error
    return None


def _decode_rows(
    table: pa.Table, rows: np.ndarray, path: Path, id_prefix: str, image_size: int | None, channels: int | None
) -> tuple[ImageSet, int]:
    image_bytes = _image_bytes(table, path)
    labels = _labels(table, path)
    sources: list[bytes] = []
    for row in rows:
        if image_bytes[row] is None:
            raise DatasetError(f"row {row} of '{path}' has no image bytes in column '{IMAGE_COLUMN}'")
        sources.append(image_bytes[row])
    names = [f"{path.name} row {row}" for row in rows]
    images, channels = decode_images(sources, names, channels, image_size)
    ids = np.array([f"{id_prefix}{row:06d}" for row in rows])
    return ImageSet(images=images, labels=labels[rows], ids=ids), channels


def _load_test_rows(path: Path, image_size: int | None, channels: int) -> ImageSet:
    table = _read_table(path)
    rows = np.flatnonzero(_splits(table, path) == "test")
    return _decode_rows(table, rows, path, "row/", image_size, channels)[0]


@DATA_SOURCES.register("parquet")
def load_parquet(location: str, options: LoadOptions) -> DatasetSplits:
    """The parquet file at `location`. Splits from the `split` column when there is one (test rows
    decoded only by `load_test`), else a stratified split of all rows. Ids are "row/<row number>"."""
    path = Path(location)
    table = _read_table(path)
    row_splits = _splits(table, path)
    if row_splits is None:
        row_splits = np.full(table.num_rows, "train")
    train_and_val_rows = np.flatnonzero(row_splits != "test")
    # Train and val are decoded together so that one colour image in either makes both RGB.
    train_and_val, channels = _decode_rows(table, train_and_val_rows, path, "row/", options.image_size, options.channels)
    is_val = row_splits[train_and_val_rows] == "val"
    train = train_and_val.subset(np.flatnonzero(~is_val))
    val = train_and_val.subset(np.flatnonzero(is_val)) if is_val.any() else None
    has_test = bool((row_splits == "test").any())
    test_loader = functools.partial(_load_test_rows, path, options.image_size, channels) if has_test else None
    class_names = _class_names_from_metadata(table, path)
    if class_names is None:
        class_count = int(train_and_val.labels.max()) + 1 if len(train_and_val) else 0
        class_names = tuple(str(index) for index in range(class_count))
    # Test labels (not images) are checked now, so a wrong test split fails before the sweep, not at its end.
    test_labels = _labels(table, path)[row_splits == "test"]
    if len(test_labels) and test_labels.max() >= len(class_names):
        raise DatasetError(
            f"a test row of '{path}' has label {int(test_labels.max())}; {len(class_names)} classes allow labels "
            f"0..{len(class_names) - 1}"
        )
    return assemble_splits(
        options, name=path.stem, class_names=class_names, train=train, val=val, test_loader=test_loader
    )
