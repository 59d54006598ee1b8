"""How DICOM files are recognised and how a DICOM file becomes an image (window, frame): the settings side of
`trainables.datasets.dicom`, without pydicom, so options can be checked where they enter before anything is read."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from trainables.datasets.errors import DatasetError

DICOM_SUFFIXES: tuple[str, ...] = (".dcm", ".dicom")

# (center, width) in the modality's units (Hounsfield units for CT), as in Radiopaedia's "Windowing (CT)" table.
WINDOW_PRESETS: dict[str, tuple[float, float]] = {
    "lung": (-600.0, 1500.0),
    "mediastinum": (50.0, 350.0),
    "bone": (400.0, 1800.0),
    "brain": (40.0, 80.0),
    "subdural": (75.0, 215.0),
    "stroke": (32.0, 8.0),
    "abdomen": (50.0, 400.0),
    "liver": (30.0, 150.0),
    # Radiopaedia gives W 350-400, L 20-60 for soft tissue; W 400 / L 40 is the usual single choice.
    "soft_tissue": (40.0, 400.0),
}

WINDOW_FORMS_HELP = (
    "allowed are a preset name ("
    + ", ".join(f"{name} = {center:g},{width:g}" for name, (center, width) in WINDOW_PRESETS.items())
    + ") or 'center,width' in the modality's units (Hounsfield units for CT) with width > 0, e.g. '-600,1500'"
)

_DICM_OFFSET = 128
_DICM_MARKER = b"DICM"


@dataclass(frozen=True)
class DicomSettings:
    """How a DICOM file becomes an image.

    window: (center, width) for grayscale images, in the modality's units after the rescale (Hounsfield units for
    CT); None uses the file's own VOI LUT or Window Center/Width (the first when several), else the image's
    min..max. Colour images are shown as stored.
    frame: which frame (0-based) of a multi-frame file becomes the image; None refuses multi-frame files.
    Single-frame files have one image whatever the frame."""

    window: tuple[float, float] | None = None
    frame: int | None = None

    def __post_init__(self) -> None:
        if self.window is not None:
            object.__setattr__(self, "window", _checked_window(self.window))
        frame = self.frame
        if frame is not None and (isinstance(frame, bool) or not isinstance(frame, int | np.integer) or frame < 0):
            raise DatasetError(f"DICOM frame must be a whole number >= 0 (0 is the first frame) or None, got {frame!r}")
        if frame is not None:
            object.__setattr__(self, "frame", int(frame))


def _checked_window(window: object) -> tuple[float, float]:
    message = f"DICOM window must be (center, width), two finite numbers with width > 0, got {window!r}"
    if isinstance(window, str) or not isinstance(window, tuple | list) or len(window) != 2:
        raise DatasetError(message)
    if any(isinstance(value, bool) or not isinstance(value, int | float | np.number) for value in window):
        raise DatasetError(message)
    center, width = float(window[0]), float(window[1])
    if not (math.isfinite(center) and math.isfinite(width)) or width <= 0:
        raise DatasetError(message)
    return center, width


def parse_window(text: str) -> tuple[float, float]:
    """'lung' (any preset name, case-insensitive) or 'center,width' (two numbers, width > 0) -> (center, width);
    DatasetError listing the presets and the numeric form otherwise."""
    preset = WINDOW_PRESETS.get(text.strip().lower().replace("-", "_").replace(" ", "_"))
    if preset is not None:
        return preset
    parts = text.split(",")
    try:
        if len(parts) != 2:
            raise ValueError(text)
        return _checked_window((float(parts[0]), float(parts[1])))
    except (ValueError, DatasetError):
        raise DatasetError(f"DICOM window '{text}' is neither a preset nor 'center,width'; {WINDOW_FORMS_HELP}") from None


def is_dicom_file(path: Path) -> bool:
    """True for a DICOM_SUFFIXES suffix, or a file whose bytes 128..131 are b'DICM' (PACS exports often have no
    extension); never raises for unreadable/short files (False)."""
    if path.suffix.lower() in DICOM_SUFFIXES:
        return True
    try:
        with path.open("rb") as file:
            header = file.read(_DICM_OFFSET + len(_DICM_MARKER))
    except OSError:
        return False
    return header[_DICM_OFFSET:] == _DICM_MARKER
