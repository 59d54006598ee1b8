"""`medmnist:<flag>` sources: the official MedMNIST .npz files, downloaded once with the
`medmnist` package's URLs and checksums into MEDMNIST_ROOT (default ~/.medmnist)."""

from __future__ import annotations

import http.client
import os
import socket
import urllib.error
from pathlib import Path
from typing import Any

from torchvision.datasets.utils import download_url

from trainables.datasets.image_set import DatasetError, DatasetSplits
from trainables.datasets.load_options import LoadOptions
from trainables.datasets.npz import load_npz_file
from trainables.datasets.sources import DATA_SOURCES

MEDMNIST_PREFIX = "medmnist:"
ROOT_ENVIRONMENT_VARIABLE = "MEDMNIST_ROOT"
DEFAULT_ROOT = Path("~/.medmnist")
# Sizes MedMNIST+ publishes for 2D datasets besides the original 28 px.
NATIVE_SIZES = (64, 128, 224)
# Without it urllib waits forever on a network that silently drops packets.
DOWNLOAD_TIMEOUT_SECONDS = 30.0


def _medmnist_info() -> dict[str, dict[str, Any]]:
    # Imported here, not at the top: `import medmnist` also loads scikit-learn (for medmnist's evaluator,
    # unused here), measured at 0.5-0.9 s on top of an already imported `search.run`; every --help and
    # every sweep on another source would pay that for nothing.
    import medmnist

    return medmnist.INFO


def supported_flags() -> list[str]:
    """MedMNIST flags this project can train on: 2D images with one class per image."""
    return [
        flag
        for flag, info in _medmnist_info().items()
        if not flag.endswith("3d") and not info["task"].startswith("multi-label")
    ]


def medmnist_root() -> Path:
    return Path(os.environ.get(ROOT_ENVIRONMENT_VARIABLE, str(DEFAULT_ROOT))).expanduser()


def _info_for(flag: str) -> dict[str, Any]:
    info = _medmnist_info()
    if flag not in info:
        raise DatasetError(f"unknown MedMNIST dataset '{flag}'; known: {', '.join(supported_flags())}")
    if flag not in supported_flags():
        raise DatasetError(
            f"MedMNIST dataset '{flag}' ({info[flag]['task']}{', 3D' if flag.endswith('3d') else ''}) is not "
            f"supported: only 2D single-label datasets are; supported: {', '.join(supported_flags())}"
        )
    return info[flag]


def _download(url: str, md5: str, target: Path, flag: str) -> None:
    """Download to a temporary name and rename, so an interrupted download never looks complete."""
    partial = target.with_name(target.name + ".partial")
    previous_timeout = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_SECONDS)
    try:
        download_url(url, str(target.parent), filename=partial.name, md5=md5)
        os.replace(partial, target)
    except (urllib.error.URLError, OSError, http.client.HTTPException, RuntimeError) as error:
        raise DatasetError(
            f"cannot download MedMNIST '{flag}' from {url}: {error}. Downloading needs network access; "
            f"download the .npz once (from that URL, or with `python -m medmnist download`) and pass its path "
            f"with --data path/to/{target.name}, or put it in {target.parent} (set {ROOT_ENVIRONMENT_VARIABLE} "
            f"to use another folder)"
        ) from error
    finally:
        socket.setdefaulttimeout(previous_timeout)
        partial.unlink(missing_ok=True)


@DATA_SOURCES.register("medmnist")
def load_medmnist(location: str, options: LoadOptions) -> DatasetSplits:
    """The MedMNIST dataset whose flag is `location`, from the cache folder, downloaded first if it
    is not there. An image_size MedMNIST publishes natively (64, 128, 224) uses that file; any other
    size is resized from the 28 px file. Class names come from medmnist.INFO; ordinal from its task."""
    flag = location.lower()
    info = _info_for(flag)
    size_suffix = f"_{options.image_size}" if options.image_size in NATIVE_SIZES else ""
    root = medmnist_root()
    target = root / f"{flag}{size_suffix}.npz"
    if not target.is_file():
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise DatasetError(
                f"cannot create the MedMNIST folder '{root}' ({error}); set {ROOT_ENVIRONMENT_VARIABLE} "
                f"to a writable folder"
            ) from error
        _download(info[f"url{size_suffix}"], info[f"MD5{size_suffix}"], target, flag)
    labels = info["label"]
    return load_npz_file(
        target,
        options,
        name=flag,
        class_names=[labels[key] for key in sorted(labels, key=int)],
        ordinal_by_default=info["task"] == "ordinal-regression",
    )
