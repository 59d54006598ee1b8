"""Loading a folder with one subfolder per class, optionally inside train/, val/ (or validation/) and test/
folders, of images, DICOM files or NIfTI volumes (`file_images`); test files are opened only by `load_test`."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from torchvision.datasets.folder import make_dataset

from trainables.datasets.file_images import FORMAT_DESCRIPTIONS, ListedFile, file_kind, splits_of_listed_files
from trainables.datasets.image_conversion import IMAGE_SUFFIXES
from trainables.datasets.image_set import DatasetError, DatasetSplits
from trainables.datasets.load_options import LoadOptions
from trainables.datasets.sources import DATA_SOURCES

# Folder name -> split it holds.
SPLIT_FOLDERS = {"train": "train", "val": "val", "validation": "val", "test": "test"}
# A DICOM media index (PACS exports and CDs carry one) is DICOM but holds no image.
_NOT_IMAGES = frozenset({"dicomdir"})


def _visible_folders(folder: Path) -> list[Path]:
    # Hidden folders (.ipynb_checkpoints, .git) are tool clutter, not classes.
    return sorted(child for child in folder.iterdir() if child.is_dir() and not child.name.startswith("."))


def _split_folders(root: Path) -> dict[str, Path]:
    """{"train": path, ...} for the split folders under root; empty when root holds classes directly."""
    folders = _visible_folders(root)
    split_folders = [folder for folder in folders if folder.name.lower() in SPLIT_FOLDERS]
    if not split_folders:
        return {}
    others = [folder.name for folder in folders if folder not in split_folders]
    if others:
        raise DatasetError(
            f"'{root}' mixes split folders {[folder.name for folder in split_folders]} with other folders "
            f"{others}; put the class folders inside train/, val/ (or validation/) and test/"
        )
    by_split: dict[str, Path] = {}
    for folder in split_folders:
        split = SPLIT_FOLDERS[folder.name.lower()]
        if split in by_split:
            raise DatasetError(f"'{root}' has two folders for the {split} split: '{by_split[split].name}' and '{folder.name}'")
        by_split[split] = folder
    if "train" not in by_split:
        raise DatasetError(
            f"'{root}' has {sorted(folder.name for folder in split_folders)} folders but no train/ folder; "
            f"the training images must be in '{root / 'train'}'"
        )
    return by_split


def _find_class_names(class_root: Path) -> tuple[str, ...]:
    class_names = tuple(folder.name for folder in _visible_folders(class_root))
    if not class_names:
        loose_images = [path.name for path in class_root.iterdir() if path.suffix.lower() in IMAGE_SUFFIXES]
        raise DatasetError(
            f"'{class_root}' has no class subfolders (found {len(loose_images)} loose image files); "
            f"expected one subfolder per class, e.g. '{class_root / 'class_a' / 'image_001.png'}'"
        )
    if len(class_names) < 2:
        raise DatasetError(f"'{class_root}' has a single class folder {list(class_names)}; a classifier needs at least 2")
    return class_names


def _check_each_folder_once(split_root: Path, class_names: tuple[str, ...]) -> None:
    """Class folders may be symbolic links (to data elsewhere), but no folder may be reached twice: a link back to
    a folder above it would list its images again at every depth until the system's link limit, and one folder
    linked into two classes would give the same images two labels."""
    first_path: dict[str, str] = {}
    for class_name in class_names:
        for directory, _, _ in os.walk(split_root / class_name, followlinks=True):
            real = os.path.realpath(directory)
            relative = Path(directory).relative_to(split_root).as_posix()
            if real in first_path:
                raise DatasetError(
                    f"'{relative}' in '{split_root}' leads back to '{first_path[real]}' (a symbolic link to a folder "
                    f"already read: a loop, or one folder linked twice), so its images would be read again; remove "
                    f"the link (links to folders outside the class folders are allowed)"
                )
            first_path[real] = relative


def _readable_file(data_format: str):
    def is_readable(path: str) -> bool:
        file = Path(path)
        # Hidden files (.DS_Store, ._ resource forks) are clutter, even under --data-format dicom.
        if file.name.startswith(".") or file.name.lower() in _NOT_IMAGES:
            return False
        return file_kind(file, data_format) is not None

    return is_readable


def _list_files(split_root: Path, class_names: tuple[str, ...], require_every_class: bool, data_format: str) -> list[ListedFile]:
    unknown = [folder.name for folder in _visible_folders(split_root) if folder.name not in class_names]
    if unknown:
        raise DatasetError(
            f"'{split_root}' has folders {unknown} that are not classes of the training folder; classes are {list(class_names)}"
        )
    _check_each_folder_once(split_root, tuple(name for name in class_names if (split_root / name).is_dir()))
    class_to_index = {class_name: index for index, class_name in enumerate(class_names)}
    files = make_dataset(split_root, class_to_index, is_valid_file=_readable_file(data_format), allow_empty=True)
    counts = np.bincount([label for _, label in files], minlength=len(class_names))
    empty = [class_name for class_name, count in zip(class_names, counts) if count == 0]
    reads = FORMAT_DESCRIPTIONS.get(data_format, "; ".join(FORMAT_DESCRIPTIONS.values()))
    if require_every_class and empty:
        raise DatasetError(f"class folders {empty} in '{split_root}' hold no images (files read: {reads})")
    if not files:
        raise DatasetError(f"'{split_root}' holds no images (files read: {reads})")
    return [ListedFile(Path(path), label) for path, label in files]


@DATA_SOURCES.register("image_folder")
def load_image_folder(location: str, options: LoadOptions) -> DatasetSplits:
    """The folder at `location`. Class names are the training class folders' names, sorted. Files
    are found recursively inside each class folder; ids are paths relative to the folder (a NIfTI slice's adds
    `#axial=<index>`). With channels=None a folder of grayscale images stays grayscale and any colour image makes
    all RGB. Patients come from --patient-from-filename, else DICOM's PatientID, else each NIfTI volume."""
    root = Path(location)
    if not root.is_dir():
        raise DatasetError(f"image folder '{root}' does not exist")
    split_folders = _split_folders(root)
    data_format = options.data_format
    class_names = _find_class_names(split_folders.get("train", root))
    train_files = _list_files(split_folders.get("train", root), class_names, True, data_format)
    val_files = _list_files(split_folders["val"], class_names, False, data_format) if "val" in split_folders else []
    # The test folder is listed now (folder names, file types, links), so a wrong one fails before anything is
    # read; its pixels are read only by load_test.
    test_files = _list_files(split_folders["test"], class_names, False, data_format) if "test" in split_folders else []
    return splits_of_listed_files(
        options,
        name=root.resolve().name,
        class_names=class_names,
        root=root,
        train=train_files,
        val=val_files,
        test=test_files,
    )
