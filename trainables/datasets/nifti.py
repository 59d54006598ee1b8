"""Reading a NIfTI volume (.nii, .nii.gz) as 2-D uint8 slices along one anatomical axis, chosen by a
`SliceSelection` such as 'axial:middle:16', with the same orientation and contrast rule for every file."""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

import nibabel as nib
import numpy as np
from nibabel.filebasedimages import ImageFileError

from trainables.datasets.errors import DatasetError

NIFTI_SUFFIXES: tuple[str, ...] = (".nii", ".nii.gz")

Axis = Literal["axial", "coronal", "sagittal"]
Which = Literal["middle", "every", "foreground"]
AXES: tuple[str, ...] = get_args(Axis)
WHICH_FORMS: tuple[str, ...] = get_args(Which)

# The array axis each slice direction cuts along, once the volume is in RAS+ order:
# sagittal slices step along R (axis 0), coronal along A (axis 1), axial along S (axis 2).
_ARRAY_AXIS: dict[str, int] = {"sagittal": 0, "coronal": 1, "axial": 2}

SLICES_FORMS_HELP = (
    "allowed forms are 'AXIS:middle:N' (the N slices around the centre, N >= 1), "
    "'AXIS:every:K' (slices 0, K, 2K, ..., K >= 1) and 'AXIS:foreground:F' (slices whose foreground share "
    f"exceeds F, 0 < F < 1), with AXIS one of {', '.join(AXES)}; e.g. 'axial:middle:16'"
)

_GZIP_MAGIC = b"\x1f\x8b"
_MAXIMUM_PIXEL = 255


def is_nifti_file(path: Path) -> bool:
    """Whether the name ends in .nii or .nii.gz, in any letter case."""
    return path.name.lower().endswith(NIFTI_SUFFIXES)


@dataclass(frozen=True)
class SliceSelection:
    """Which 2-D slices of a volume become images: along `axis`, the `which` rule with its `amount`
    (middle: how many slices, every: the step, foreground: the share of foreground a slice must exceed)."""

    axis: Axis
    which: Which
    amount: float

    def __post_init__(self) -> None:
        if self.axis not in AXES:
            raise DatasetError(f"slice axis '{self.axis}' is not known; allowed are {', '.join(AXES)}")
        if self.which not in WHICH_FORMS:
            raise DatasetError(f"slice rule '{self.which}' is not known; allowed are {', '.join(WHICH_FORMS)}")
        amount = self.amount
        if isinstance(amount, bool) or not isinstance(amount, int | float) or not math.isfinite(amount):
            raise DatasetError(f"slice amount {amount!r} for '{self.which}' must be a finite number")
        if self.which == "foreground":
            if not 0 < amount < 1:
                raise DatasetError(f"foreground share {amount} must be a fraction strictly between 0 and 1, e.g. 0.2")
        elif amount != int(amount) or amount < 1:
            noun = "slice count" if self.which == "middle" else "slice step"
            raise DatasetError(f"{noun} {amount} for '{self.which}' must be a whole number >= 1")
        else:
            # Whole numbers are kept as int so the selection prints as it was written ('axial:middle:16').
            object.__setattr__(self, "amount", int(amount))

    def __str__(self) -> str:
        return f"{self.axis}:{self.which}:{self.amount}"


DEFAULT_SLICES = SliceSelection("axial", "middle", 1)


def parse_slices(text: str) -> SliceSelection:
    """'AXIS:WHICH:N', e.g. 'axial:middle:16', 'coronal:every:4', 'axial:foreground:0.2'; DatasetError naming
    the text and the allowed forms otherwise."""
    parts = [part.strip().lower() for part in text.split(":")]
    if len(parts) != 3:
        raise DatasetError(f"slice selection '{text}' is not AXIS:WHICH:N; {SLICES_FORMS_HELP}")
    axis, which, amount_text = parts
    try:
        amount = float(amount_text)
    except ValueError:
        raise DatasetError(f"slice selection '{text}' has '{amount_text}' where a number belongs; {SLICES_FORMS_HELP}") from None
    try:
        return SliceSelection(axis, which, amount)  # type: ignore[arg-type]
    except DatasetError as error:
        raise DatasetError(f"slice selection '{text}': {error}; {SLICES_FORMS_HELP}") from None


@dataclass(frozen=True)
class VolumeSlices:
    """The chosen slices of one volume (uint8 [S, H, W], H == W) and, for each, its index along the chosen
    axis of the volume in RAS+ order (so the same index means the same place whatever the file's affine)."""

    pixels: np.ndarray
    slice_indices: tuple[int, ...]


def _load_volume(path: Path, name: str) -> np.ndarray:
    """The volume's voxels as float32 [R, A, S], after scaling by the header's slope and intercept."""
    if not path.is_file():
        raise DatasetError(f"NIfTI file '{name}' does not exist (looked for '{path}')")
    try:
        image = nib.load(path)
        if not isinstance(image, nib.Nifti1Image | nib.Nifti2Image):
            raise DatasetError(
                f"'{name}' is read by nibabel as {type(image).__name__}, not NIfTI; allowed are NIfTI-1 and "
                f"NIfTI-2 files named {' or '.join(NIFTI_SUFFIXES)}"
            )
        _check_three_dimensional(image.shape, name)
        _check_scalar(image.get_data_dtype(), name)
        # Reorder to RAS+ before slicing so 'axial' cuts the same anatomy in every file, whatever the order its
        # voxels are stored in; an oblique affine is snapped to its nearest axes (no resampling).
        canonical = nib.as_closest_canonical(image)
        voxels = canonical.get_fdata(dtype=np.float32)
    except DatasetError:
        # DatasetError is a ValueError; ours already names the file and what is wrong.
        raise
    except ImageFileError as error:
        raise DatasetError(f"cannot read NIfTI file '{name}': {_one_line(error)}{_gzip_hint(path)}") from error
    except (OSError, EOFError, zlib.error, ValueError) as error:
        raise DatasetError(
            f"cannot read NIfTI file '{name}' (is it truncated or corrupt?): {type(error).__name__}: {_one_line(error)}"
        ) from error
    return voxels.reshape(voxels.shape[:3])


def _one_line(error: BaseException) -> str:
    # nibabel's messages span lines ("... - could the file be damaged?"); a sweep's error summary is one line.
    return " ".join(str(error).split())


def _gzip_hint(path: Path) -> str:
    try:
        with path.open("rb") as file:
            compressed = file.read(2) == _GZIP_MAGIC
    except OSError:
        return ""
    if compressed and not path.name.lower().endswith(".gz"):
        return "; the file is gzip-compressed, so its name must end in .nii.gz"
    return ""


def _check_three_dimensional(shape: tuple[int, ...], name: str) -> None:
    # Trailing dimensions of length 1 (a 4-D file holding one volume) carry no data and are dropped.
    if len(shape) >= 3 and all(length == 1 for length in shape[3:]):
        return
    if len(shape) > 3:
        raise DatasetError(
            f"NIfTI file '{name}' has shape {shape}: a series of {math.prod(shape[3:])} volumes, but each file "
            "must hold one 3-D volume; split it into 3-D volumes first, e.g. with `fslsplit` or nibabel "
            "(nibabel.funcs.four_to_three)"
        )
    raise DatasetError(f"NIfTI file '{name}' has shape {shape}; a 3-D volume (X x Y x Z) is required")


def _check_scalar(dtype: np.dtype, name: str) -> None:
    if dtype.kind not in "biuf":
        raise DatasetError(
            f"NIfTI file '{name}' stores voxels as {dtype}; only real-valued scalar volumes (integer or float) "
            "can become grayscale images"
        )


def _to_eight_bit(voxels: np.ndarray, percentiles: tuple[float, float]) -> np.ndarray:
    """Clip at the volume's intensity percentiles and scale linearly to 0..255."""
    finite = np.isfinite(voxels)
    if not finite.any():
        return np.zeros(voxels.shape, dtype=np.uint8)
    finite_values = voxels[finite]
    minimum, maximum = float(finite_values.min()), float(finite_values.max())
    # NaN (and inf) voxels, e.g. outside a mask, are shown as the darkest value rather than poisoning the scale.
    voxels = np.where(finite, voxels, np.float32(minimum))
    # Percentiles are taken over the nonzero voxels: in MRI the background outside the head is exactly 0 and
    # often most of the volume, so counting it would pull the upper percentile down into the tissue and clip it.
    # Where zero is a real tissue value (CT in Hounsfield units) the few voxels exactly 0 barely move a percentile.
    nonzero = finite_values[finite_values != 0]
    low, high = minimum, maximum
    if nonzero.size:
        low, high = (float(value) for value in np.percentile(nonzero, percentiles))
    if high <= low:
        # One nonzero value (a binary mask): the percentiles coincide, so the full range is the only contrast.
        low, high = minimum, maximum
    if high <= low:
        return np.zeros(voxels.shape, dtype=np.uint8)
    scaled = (np.clip(voxels, low, high) - low) * np.float32(_MAXIMUM_PIXEL / (high - low))
    return np.rint(scaled).astype(np.uint8)


def _otsu_threshold(pixels: np.ndarray) -> int:
    """The uint8 level that maximises the between-class variance of the histogram (Otsu, 1979)."""
    counts = np.bincount(pixels.ravel(), minlength=_MAXIMUM_PIXEL + 1).astype(np.float64)
    levels = np.arange(counts.size, dtype=np.float64)
    weight_below = np.cumsum(counts)
    weight_above = weight_below[-1] - weight_below
    sum_below = np.cumsum(counts * levels)
    sum_above = sum_below[-1] - sum_below
    with np.errstate(divide="ignore", invalid="ignore"):
        mean_below = sum_below / weight_below
        mean_above = sum_above / weight_above
        between_variance = weight_below * weight_above * (mean_below - mean_above) ** 2
    # A level with every voxel on one side splits nothing; a constant volume then has no foreground.
    between_variance[~np.isfinite(between_variance)] = -1.0
    return int(np.argmax(between_variance))


def _foreground_shares(pixels: np.ndarray, array_axis: int) -> np.ndarray:
    """Per slice along `array_axis`, the share of its voxels above the whole volume's Otsu threshold."""
    if pixels.min() == pixels.max():
        return np.zeros(pixels.shape[array_axis])
    # Otsu rather than the mean: a large empty background drags the mean down into the noise, while Otsu
    # splits the two modes (background, tissue) wherever they are. It runs on the clipped 8-bit volume, so a
    # few hot voxels do not move it.
    foreground = pixels > _otsu_threshold(pixels)
    other_axes = tuple(axis for axis in range(3) if axis != array_axis)
    return foreground.mean(axis=other_axes)


def _select_indices(pixels: np.ndarray, selection: SliceSelection, name: str) -> list[int]:
    array_axis = _ARRAY_AXIS[selection.axis]
    length = pixels.shape[array_axis]
    if selection.which == "middle":
        count = int(selection.amount)
        if count > length:
            raise DatasetError(
                f"slice selection '{selection}' asks for {count} middle slices but '{name}' has only {length} "
                f"{selection.axis} slices (shape {pixels.shape} in RAS order); ask for at most {length}"
            )
        # Index length // 2 is the middle slice (the upper of the two middles of an even length), as
        # `shape // 2` is in most viewers; the others are split around it, the extra one of an even count below.
        start = length // 2 - count // 2
        return list(range(start, start + count))
    if selection.which == "every":
        return list(range(0, length, int(selection.amount)))
    shares = _foreground_shares(pixels, array_axis)
    chosen = [int(index) for index in np.flatnonzero(shares > selection.amount)]
    if not chosen:
        raise DatasetError(
            f"no {selection.axis} slice of '{name}' has a foreground share above {selection.amount} "
            f"(the best is {shares.max():.3f}); lower the share in '{selection}' or use a 'middle' selection"
        )
    return chosen


def _display_slices(pixels: np.ndarray, array_axis: int, indices: list[int]) -> np.ndarray:
    """The slices at `indices` along `array_axis`, as [S, H, W] images oriented for display."""
    # One fancy index on the slicing axis moved first: np.take per slice is tens of times slower on the
    # Fortran-ordered arrays nibabel returns.
    slices = np.moveaxis(pixels, array_axis, 0)[indices]
    # In RAS+ order each 2-D slice has its two remaining axes increasing to the right, anterior or superior.
    # Rotating 90 degrees counter-clockwise puts the second of them up: axial slices show anterior up with the
    # patient's right on the image's right (neurological convention), coronal superior up with right on the
    # right, sagittal superior up with anterior on the right.
    return np.rot90(slices, axes=(1, 2))


def _pad_to_square(images: np.ndarray) -> np.ndarray:
    # Centred zero padding (0 is the clipped minimum) keeps the anatomy's proportions when the image is later
    # resized to a square. Proportions are in voxels: anisotropic voxel spacing (e.g. 1 x 1 x 3 mm) is not
    # resampled, so slices through the thick axis look squashed.
    height, width = images.shape[1:]
    side = max(height, width)
    top, left = (side - height) // 2, (side - width) // 2
    return np.ascontiguousarray(np.pad(images, ((0, 0), (top, side - height - top), (left, side - width - left))))


def read_nifti_slices(
    path: Path,
    name: str,
    selection: SliceSelection,
    percentiles: tuple[float, float] = (0.5, 99.5),
) -> VolumeSlices:
    """The slices `selection` picks from the 3-D volume in `path`, as square uint8 images oriented for display;
    `name` is how errors refer to the file. Intensities are clipped at `percentiles` of the volume and scaled to
    0..255 once per volume, so slices of one volume share one contrast."""
    low_percentile, high_percentile = percentiles
    if not 0 <= low_percentile < high_percentile <= 100:
        raise DatasetError(
            f"intensity percentiles {percentiles} for '{name}' must satisfy 0 <= low < high <= 100, e.g. (0.5, 99.5)"
        )
    pixels = _to_eight_bit(_load_volume(path, name), percentiles)
    indices = _select_indices(pixels, selection, name)
    images = _pad_to_square(_display_slices(pixels, _ARRAY_AXIS[selection.axis], indices))
    return VolumeSlices(pixels=images, slice_indices=tuple(indices))
