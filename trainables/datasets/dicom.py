"""Reading one DICOM file as a uint8 image the way a radiology viewer shows it (modality LUT, window, MONOCHROME1
inversion, colour conversion), and its PatientID for grouping images by patient, through pydicom's own functions."""

from __future__ import annotations

import importlib.metadata
import re
import struct
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import BytesLengthException, InvalidDicomError
from pydicom.multival import MultiValue
from pydicom.pixels import (
    apply_color_lut,
    apply_modality_lut,
    apply_voi,
    apply_windowing,
    as_pixel_options,
    convert_color_space,
    get_decoder,
)
from pydicom.pixels.decoders.base import Decoder
from pydicom.pixels.utils import get_nr_frames
from pydicom.uid import JPEGExtended12Bit
from pydicom.valuerep import DSfloat

from trainables.datasets.dicom_settings import DicomSettings
from trainables.datasets.errors import DatasetError

_MONOCHROME = ("MONOCHROME1", "MONOCHROME2")
_PALETTE = "PALETTE COLOR"
# What pydicom's decoders leave after their own conversion (YBR_ICT and YBR_RCT come out of every JPEG 2000
# decoder as RGB; YBR_FULL and YBR_FULL_422 are converted unless raw=True), and what convert_color_space can turn
# into RGB should a decoder leave it.
_COLOUR_CONVERTIBLE = ("YBR_FULL", "YBR_FULL_422")
_SUPPORTED_PHOTOMETRIC = (*_MONOCHROME, _PALETTE, "RGB", *_COLOUR_CONVERTIBLE, "YBR_ICT", "YBR_RCT")
_MAXIMUM_PIXEL = 255
# What pydicom raises for bytes that are not what their elements declare (a cut file, a wrong length), while reading
# or when an element's value is first used.
_MALFORMED_FILE_ERRORS = (
    OSError, EOFError, ValueError, KeyError, IndexError, TypeError, AttributeError, OverflowError, struct.error,
    BytesLengthException,
)  # fmt: skip

# pydicom names a plugin's requirements by import name; pip needs the distribution name, and the licence decides
# whether a project may ship it.
_PIP_NAMES = {"gdcm": "python-gdcm"}
_LICENCES = {"python-gdcm": "BSD", "pyjpegls": "MIT", "pylibjpeg-libjpeg": "GPL-3.0"}
# Of pydicom's plugins only pylibjpeg (with pylibjpeg-libjpeg) decodes 12-bit JPEG Extended: its Pillow and GDCM
# plugins refuse it, so suggesting python-gdcm there would send the user round in a circle.
_TWELVE_BIT_JPEG_PLUGINS = ("pylibjpeg",)


def _one_line(error: BaseException) -> str:
    # pydicom's messages span lines (one per plugin); an error in a list of load failures reads better on one.
    return " ".join(str(error).split())


def _read_dataset(path: Path, name: str, stop_before_pixels: bool = False) -> Dataset:
    try:
        return pydicom.dcmread(path, force=False, stop_before_pixels=stop_before_pixels)
    except InvalidDicomError as error:
        # pydicom's message advises force=True, which is for programmers; a file without the marker is refused.
        raise DatasetError(
            f"'{name}' is not a DICOM Part 10 file (no 'DICM' marker after a 128-byte preamble, or no file meta "
            f"information); allowed are DICOM Part 10 files; rewrite older ones with e.g. `dcmconv` (dcmtk) or "
            f"`gdcmconv`"
        ) from error
    except (*_MALFORMED_FILE_ERRORS, NotImplementedError) as error:
        raise DatasetError(
            f"cannot read DICOM file '{name}' (is it truncated or corrupt?): {type(error).__name__}: {_one_line(error)}"
        ) from error


def _install_hint(decoder: Decoder, plugins: tuple[str, ...] | None = None) -> str:
    """'`pip install python-gdcm` (BSD) or ...' for the plugins (all, else those labelled in `plugins`) that pydicom
    knows for this transfer syntax but cannot use, leaving out distributions already installed; empty if none."""
    commands = []
    for description in decoder.missing_dependencies:
        label, _, requirements = description.partition(" - requires ")
        if plugins is not None and label not in plugins:
            continue
        names = [re.split(r"[<>=!~ ]", requirement)[0] for requirement in re.split(r", | and ", requirements)]
        missing = [_PIP_NAMES.get(name, name) for name in names if name]
        missing = [name for name in missing if not _is_installed(name)]
        if missing:
            licences = "".join(f" ({_LICENCES[name]})" for name in missing if name in _LICENCES)
            commands.append(f"`pip install {' '.join(missing)}`{licences}")
    return " or ".join(commands)


def _is_installed(distribution: str) -> bool:
    try:
        importlib.metadata.distribution(distribution)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def _frame_index(dataset: Dataset, name: str, frame: int | None) -> int | None:
    """The index to decode: None (the only frame) for single-frame files, the chosen frame for multi-frame ones."""
    frame_count = int(get_nr_frames(dataset, warn=False))
    if frame_count == 1:
        return None
    if frame is None:
        raise DatasetError(
            f"DICOM file '{name}' holds {frame_count} frames; choose which becomes the image with the DICOM frame "
            f"setting (frame=K, 0-based, K from 0 to {frame_count - 1}), or split the file into single frames"
        )
    if frame >= frame_count:
        raise DatasetError(
            f"DICOM frame {frame} was chosen but '{name}' holds {frame_count} frames; allowed are 0 to {frame_count - 1}"
        )
    return frame


def _decode(dataset: Dataset, name: str, frame: int | None) -> tuple[np.ndarray, str]:
    """The pixels of one frame and their photometric interpretation after decoding (JPEG 2000 and JPEG decoders
    hand back RGB for YCbCr data, and pydicom converts YBR_FULL and YBR_FULL_422 itself)."""
    syntax = dataset.file_meta.get("TransferSyntaxUID")
    if syntax is None:
        raise DatasetError(f"DICOM file '{name}' has no Transfer Syntax UID (0002,0010) in its file meta information")
    try:
        decoder = get_decoder(syntax)
    except NotImplementedError:
        raise DatasetError(
            f"DICOM file '{name}' uses transfer syntax '{syntax.name}' ({syntax}), which pydicom cannot decode; "
            f"convert it to an uncompressed transfer syntax first, e.g. with `gdcmconv --raw` or `dcmdjpeg` (dcmtk)"
        ) from None
    twelve_bit_jpeg = syntax == JPEGExtended12Bit and dataset.get("BitsStored", 8) != 8
    hint = _install_hint(decoder, _TWELVE_BIT_JPEG_PLUGINS if twelve_bit_jpeg else None)
    convert = "convert it to an uncompressed transfer syntax, e.g. with `gdcmconv --raw` or `dcmdjpeg` (dcmtk)"
    if not decoder.is_available:
        raise DatasetError(
            f"DICOM file '{name}' uses transfer syntax '{syntax.name}' ({syntax}), and no installed package decodes "
            f"it; " + (f"install one: {hint}" if hint else convert)
        )
    try:
        pixels, metadata = decoder.as_array(dataset, index=frame, **as_pixel_options(dataset))
    except RuntimeError as error:
        # All installed plugins failed: either the data is damaged or they lack a feature (Pillow has no 12-bit
        # JPEG) that a plugin not installed yet may have.
        raise DatasetError(
            f"cannot decode the '{syntax.name}' pixel data of DICOM file '{name}' with the installed decoders "
            f"({', '.join(decoder.available_plugins)}): {_one_line(error)}; "
            + (f"a decoder not installed yet may read it: {hint}" if hint else f"if the file is intact, {convert}")
        ) from error
    return pixels, str(metadata.get("photometric_interpretation", dataset.get("PhotometricInterpretation", "")))


def _lift_functional_groups(dataset: Dataset, frame: int | None) -> None:
    """Enhanced multi-frame files (enhanced CT/MR) keep rescale and window in functional groups, where pydicom's
    LUT functions do not look: copy the chosen frame's values (else the shared ones) to the top level."""
    for sequence_name in ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence"):
        groups = dataset.get(sequence_name)
        if not groups:
            continue
        index = 0 if sequence_name.startswith("Shared") else (frame or 0)
        if index >= len(groups):
            continue
        for macro, keywords in (
            ("PixelValueTransformationSequence", ("RescaleSlope", "RescaleIntercept")),
            ("FrameVOILUTSequence", ("WindowCenter", "WindowWidth", "VOILUTFunction")),
        ):
            items = groups[index].get(macro)
            if items:
                for keyword in keywords:
                    if keyword in items[0]:
                        setattr(dataset, keyword, items[0][keyword].value)


def _window_dataset(center: object, width: object, function: object) -> Dataset:
    """What apply_windowing reads, declaring 8-bit unsigned output: it maps the window onto 0..255 in one step."""
    window = Dataset()
    window.PhotometricInterpretation = "MONOCHROME2"
    window.BitsStored = 8
    window.PixelRepresentation = 0
    # auto_format: a center such as 1/3 has more digits than a DS value may hold (16 characters).
    window.WindowCenter = center if isinstance(center, DSfloat | MultiValue) else DSfloat(center, auto_format=True)
    window.WindowWidth = width if isinstance(width, DSfloat | MultiValue) else DSfloat(width, auto_format=True)
    window.VOILUTFunction = function
    return window


def _eight_bit(values: np.ndarray, low: float, high: float) -> np.ndarray:
    if not high > low:
        # A constant image has no contrast to show; black, not a division by zero.
        return np.zeros(values.shape, dtype=np.uint8)
    scaled = (np.asarray(values, dtype=np.float64) - low) * (_MAXIMUM_PIXEL / (high - low))
    return np.rint(np.clip(scaled, 0, _MAXIMUM_PIXEL)).astype(np.uint8)


def _grayscale(pixels: np.ndarray, dataset: Dataset, window: tuple[float, float] | None) -> np.ndarray:
    values = apply_modality_lut(pixels, dataset)
    if window is not None:
        center, width = window
        # DICOM's LINEAR function needs width >= 1; LINEAR_EXACT is the same line without the half-unit offsets.
        windowed = apply_windowing(values, _window_dataset(center, width, "LINEAR" if width >= 1 else "LINEAR_EXACT"))
        image = _eight_bit(windowed, 0, _MAXIMUM_PIXEL)
    elif dataset.get("VOILUTSequence") and "LUTData" in dataset.VOILUTSequence[0]:
        # A VOI LUT maps integer stored values; its output spans the bit depth its descriptor declares.
        integer_values = np.rint(values).astype(np.int64) if values.dtype.kind == "f" else values
        depth = int(dataset.VOILUTSequence[0].LUTDescriptor[2])
        image = _eight_bit(apply_voi(integer_values, dataset, index=0), 0, 2**depth - 1)
    elif dataset.get("WindowCenter") is not None and dataset.get("WindowWidth") is not None:
        function = dataset.get("VOILUTFunction", "LINEAR") or "LINEAR"
        window_dataset = _window_dataset(dataset.WindowCenter, dataset.WindowWidth, function)
        image = _eight_bit(apply_windowing(values, window_dataset, index=0), 0, _MAXIMUM_PIXEL)
    else:
        image = _eight_bit(values, float(np.min(values)), float(np.max(values)))
    if dataset.PhotometricInterpretation == "MONOCHROME1":
        # MONOCHROME1 shows low values bright; inverting after the window gives the usual 'dense is bright' display.
        image = _MAXIMUM_PIXEL - image
    return image


def _colour(pixels: np.ndarray, dataset: Dataset, name: str, photometric: str) -> np.ndarray:
    if photometric == _PALETTE:
        pixels = apply_color_lut(pixels, dataset)
        # The palette's entries are 8- or 16-bit, which apply_color_lut returns as uint8 or uint16.
        return _eight_bit(pixels, 0, np.iinfo(pixels.dtype).max)
    if photometric not in ("RGB", *_COLOUR_CONVERTIBLE) or pixels.ndim != 3 or pixels.shape[-1] != 3:
        raise DatasetError(
            f"DICOM file '{name}' decodes to {photometric} pixels shaped {pixels.shape}; colour images must decode to "
            f"RGB or YBR_FULL with 3 samples per pixel"
        )
    if photometric in _COLOUR_CONVERTIBLE:
        pixels = convert_color_space(pixels, photometric, "RGB")
    if pixels.dtype == np.uint8:
        return pixels
    # 16- and 32-bit colour (RLE allows both): scale the stored range, not the image's own, so colours stay true.
    return _eight_bit(pixels, 0, 2 ** int(dataset.get("BitsStored", pixels.dtype.itemsize * 8)) - 1)


def _pixels(dataset: Dataset, name: str, frame: int | None) -> tuple[np.ndarray, str, int | None]:
    """The decoded pixels of the image (one frame), their photometric interpretation and the frame's index."""
    if "PixelData" not in dataset and "FloatPixelData" not in dataset and "DoubleFloatPixelData" not in dataset:
        sop_class = getattr(dataset.get("SOPClassUID"), "name", None) or "not given"
        raise DatasetError(
            f"DICOM file '{name}' holds no image (no Pixel Data element; SOP class: {sop_class}); only image "
            f"files can be loaded, so move it out of the image folder"
        )
    photometric = str(dataset.get("PhotometricInterpretation", ""))
    if photometric not in _SUPPORTED_PHOTOMETRIC:
        raise DatasetError(
            f"DICOM file '{name}' has photometric interpretation '{photometric or 'none'}'; allowed are "
            f"{', '.join(_SUPPORTED_PHOTOMETRIC)}"
        )
    index = _frame_index(dataset, name, frame)
    pixels, decoded_photometric = _decode(dataset, name, index)
    return pixels, decoded_photometric, index


def read_dicom(path: Path, name: str, settings: DicomSettings) -> np.ndarray:
    """The image of one DICOM file as uint8, shaped [H, W] (grayscale) or [H, W, 3] (RGB), at its native size.
    `name` is how errors name the file."""
    dataset = _read_dataset(path, name)
    try:
        pixels, photometric, frame = _pixels(dataset, name, settings.frame)
    except DatasetError:
        raise
    except _MALFORMED_FILE_ERRORS as error:
        raise DatasetError(
            f"cannot read the image of DICOM file '{name}' (is it truncated or corrupt?): {type(error).__name__}: "
            f"{_one_line(error)}"
        ) from error
    try:
        if photometric in _MONOCHROME:
            _lift_functional_groups(dataset, frame)
            return _grayscale(pixels, dataset, settings.window)
        return _colour(pixels, dataset, name, photometric)
    except DatasetError:
        raise
    except (*_MALFORMED_FILE_ERRORS, NotImplementedError) as error:
        # Broken LUT or window elements (a width of 0, a LUT shorter than its descriptor).
        raise DatasetError(
            f"cannot apply the lookup tables or window of DICOM file '{name}': {type(error).__name__}: "
            f"{_one_line(error)}; an explicit window (a preset such as 'lung', or 'center,width') replaces the file's own"
        ) from error


def dicom_patient_identifier(path: Path) -> str | None:
    """The file's PatientID (0010,0020) as a string, read without pixel data (stop_before_pixels); None when absent
    or empty. The caller turns it into a salted key at once; never log or put it in an error message."""
    dataset = _read_dataset(path, path.name, stop_before_pixels=True)
    try:
        identifier = dataset.get("PatientID")
        text = "" if identifier is None else str(identifier).strip()
    except _MALFORMED_FILE_ERRORS:
        # The error's text could quote the identifier's bytes, so neither it nor the chained error is kept.
        raise DatasetError(f"DICOM file '{path.name}' has a malformed PatientID (0010,0020) element") from None
    return text or None
