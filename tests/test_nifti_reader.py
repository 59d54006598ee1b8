"""The NIfTI reader on real files shipped with nibabel: slice selection, orientation, contrast and refusals."""

from __future__ import annotations

import gzip
import math
import warnings
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from nibabel.testing import data_path

from trainables.datasets.errors import DatasetError
from trainables.datasets.nifti import (
    DEFAULT_SLICES,
    NIFTI_SUFFIXES,
    SliceSelection,
    VolumeSlices,
    is_nifti_file,
    parse_slices,
    read_nifti_slices,
)

ANATOMICAL = Path(data_path) / "anatomical.nii"
SERIES = Path(data_path) / "example4d.nii.gz"
# anatomical.nii is stored LAS, shape (33, 41, 25): 33 sagittal, 41 coronal and 25 axial slices.
AXIS_LENGTHS = {"sagittal": 33, "coronal": 41, "axial": 25}


def _anatomical() -> tuple[np.ndarray, np.ndarray]:
    image = nib.load(ANATOMICAL)
    return np.asarray(image.dataobj).astype(np.float32), image.affine


def _save(directory: Path, file_name: str, voxels: np.ndarray, affine: np.ndarray) -> Path:
    path = directory / file_name
    nib.save(nib.Nifti1Image(voxels, affine), path)
    return path


def _read(path: Path, text: str, percentiles: tuple[float, float] = (0.5, 99.5)) -> VolumeSlices:
    return read_nifti_slices(path, path.name, parse_slices(text), percentiles)


@pytest.mark.parametrize(
    ("file_name", "expected"),
    [
        ("brain.nii", True),
        ("brain.nii.gz", True),
        ("BRAIN.NII.GZ", True),
        ("brain.gz", False),
        ("brain.nii.bak", False),
        ("brain.png", False),
    ],
)
def test_nifti_files_are_recognised_by_their_whole_suffix(file_name: str, expected: bool) -> None:
    assert is_nifti_file(Path("scans") / file_name) is expected
    assert NIFTI_SUFFIXES == (".nii", ".nii.gz")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("axial:middle:16", SliceSelection("axial", "middle", 16)),
        ("coronal:every:4", SliceSelection("coronal", "every", 4)),
        ("axial:foreground:0.2", SliceSelection("axial", "foreground", 0.2)),
        (" Sagittal : Middle : 3 ", SliceSelection("sagittal", "middle", 3)),
    ],
)
def test_slice_selections_parse_from_their_written_form(text: str, expected: SliceSelection) -> None:
    selection = parse_slices(text)
    assert selection == expected
    assert parse_slices(str(selection)) == selection


def test_default_selection_is_the_middle_axial_slice() -> None:
    assert DEFAULT_SLICES == parse_slices("axial:middle:1")
    assert str(DEFAULT_SLICES) == "axial:middle:1"


@pytest.mark.parametrize(
    "text",
    [
        "axial",
        "axial:middle",
        "axial:middle:1:2",
        "front:middle:1",
        "axial:top:1",
        "axial:middle:0",
        "axial:middle:2.5",
        "axial:every:-1",
        "axial:middle:nan",
        "axial:every:inf",
        "axial:middle:many",
        "axial:foreground:0",
        "axial:foreground:1",
        "axial:foreground:1.5",
    ],
)
def test_malformed_slice_selections_name_the_text_and_the_allowed_forms(text: str) -> None:
    with pytest.raises(DatasetError) as error:
        parse_slices(text)
    assert f"'{text}'" in str(error.value)
    assert "allowed forms are 'AXIS:middle:N'" in str(error.value)


@pytest.mark.parametrize(
    ("axis", "which", "amount"),
    [
        ("axial", "middle", 0),
        ("axial", "every", 1.5),
        ("axial", "foreground", 0.0),
        ("oblique", "middle", 1),
        ("axial", "first", 1),
        ("axial", "middle", True),
    ],
)
def test_slice_selections_are_checked_when_built(axis: str, which: str, amount: float) -> None:
    with pytest.raises(DatasetError):
        SliceSelection(axis, which, amount)  # type: ignore[arg-type]


@pytest.mark.parametrize("axis", list(AXIS_LENGTHS))
@pytest.mark.parametrize("count", [1, 2, 5, 24])
def test_middle_gives_consecutive_slices_centred_on_the_middle(axis: str, count: int) -> None:
    slices = _read(ANATOMICAL, f"{axis}:middle:{count}")
    indices = slices.slice_indices
    assert len(indices) == count == len(slices.pixels)
    assert list(indices) == list(range(indices[0], indices[0] + count))
    before, after = indices[0], AXIS_LENGTHS[axis] - 1 - indices[-1]
    assert abs(before - after) <= 1


def test_middle_slice_pixels_are_the_slice_at_that_index() -> None:
    every_slice = _read(ANATOMICAL, "axial:every:1")
    middle = _read(ANATOMICAL, "axial:middle:3")
    assert every_slice.slice_indices == tuple(range(25))
    np.testing.assert_array_equal(middle.pixels, every_slice.pixels[list(middle.slice_indices)])


def test_more_middle_slices_than_the_axis_has_is_refused_naming_both_numbers() -> None:
    with pytest.raises(DatasetError) as error:
        _read(ANATOMICAL, "axial:middle:26")
    message = str(error.value)
    assert "26" in message and "25" in message and "anatomical.nii" in message


@pytest.mark.parametrize(("axis", "step"), [("axial", 4), ("coronal", 10), ("sagittal", 1), ("axial", 100)])
def test_every_kth_slice_starts_at_zero(axis: str, step: int) -> None:
    slices = _read(ANATOMICAL, f"{axis}:every:{step}")
    assert slices.slice_indices == tuple(range(0, AXIS_LENGTHS[axis], step))
    assert len(slices.pixels) == math.ceil(AXIS_LENGTHS[axis] / step)


def test_foreground_keeps_slices_with_tissue_and_drops_empty_slabs(tmp_path: Path) -> None:
    voxels, affine = _anatomical()
    # Empty slabs below and above the head, as in a scan whose field of view is larger than the anatomy.
    voxels[:, :, :6] = 0
    voxels[:, :, 19:] = 0
    path = _save(tmp_path, "slabs.nii.gz", voxels, affine)
    slices = _read(path, "axial:foreground:0.2")
    assert slices.slice_indices == tuple(range(6, 19))
    # Every kept slice does show tissue.
    assert all(image.mean() > 20 for image in slices.pixels)


def test_foreground_with_no_slice_above_the_share_names_the_file_and_the_best_share(tmp_path: Path) -> None:
    voxels = np.zeros((20, 20, 20), dtype=np.float32)
    voxels[9:11, 9:11, 9:11] = 500.0
    path = _save(tmp_path, "speck.nii", voxels, np.eye(4))
    with pytest.raises(DatasetError) as error:
        _read(path, "axial:foreground:0.5")
    message = str(error.value)
    assert "speck.nii" in message and "0.010" in message  # 4 of the 400 voxels of slices 9 and 10


def _flipped_left_right(voxels: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    # Voxel i of the flipped array is voxel (n - 1 - i) of the original: same anatomy, the other storage order.
    length = voxels.shape[0]
    flip = np.eye(4)
    flip[0, 0], flip[0, 3] = -1, length - 1
    return voxels[::-1].copy(), affine @ flip


def _axes_permuted(voxels: np.ndarray, affine: np.ndarray, order: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    permute = np.eye(4)
    permute[:3, :3] = np.eye(3)[:, order]
    return np.transpose(voxels, order).copy(), affine @ permute


@pytest.mark.parametrize("axis", list(AXIS_LENGTHS))
def test_the_same_anatomy_stored_in_another_orientation_gives_the_same_slices(tmp_path: Path, axis: str) -> None:
    voxels, affine = _anatomical()
    assert nib.aff2axcodes(affine) == ("L", "A", "S")
    flipped_voxels, flipped_affine = _flipped_left_right(voxels, affine)
    assert nib.aff2axcodes(flipped_affine) == ("R", "A", "S")
    # Stored superior-first, as some scanners write slices: axis codes ('S', 'L', 'A').
    permuted_voxels, permuted_affine = _axes_permuted(voxels, affine, (2, 0, 1))
    assert nib.aff2axcodes(permuted_affine) == ("S", "L", "A")
    original = _read(ANATOMICAL, f"{axis}:middle:5")
    for stored, file_name in [
        ((flipped_voxels, flipped_affine), "ras.nii"),
        ((permuted_voxels, permuted_affine), "sla.nii.gz"),
    ]:
        other = _read(_save(tmp_path, file_name, *stored), f"{axis}:middle:5")
        assert other.slice_indices == original.slice_indices
        np.testing.assert_array_equal(other.pixels, original.pixels)


@pytest.mark.parametrize(
    ("axis", "corner"),
    # The marked voxel is at the far end of both in-plane axes, so it must land at the top right.
    [("axial", (8, 8, 4)), ("coronal", (8, 4, 8)), ("sagittal", (4, 8, 8))],
)
def test_slices_are_shown_with_anterior_or_superior_up(tmp_path: Path, axis: str, corner: tuple[int, ...]) -> None:
    voxels = np.zeros((9, 9, 9), dtype=np.float32)
    voxels[corner] = 100.0
    slices = _read(_save(tmp_path, "marker.nii", voxels, np.eye(4)), f"{axis}:middle:1")
    assert slices.slice_indices == (4,)
    expected = np.zeros((9, 9), dtype=np.uint8)
    expected[0, 8] = 255
    np.testing.assert_array_equal(slices.pixels[0], expected)


def test_a_single_hot_voxel_does_not_squash_the_contrast(tmp_path: Path) -> None:
    voxels, affine = _anatomical()
    voxels[0, 0, 0] = 1e6
    path = _save(tmp_path, "hot.nii", voxels, affine)
    clean = _read(ANATOMICAL, "axial:middle:1").pixels[0].astype(np.float64)
    hot = _read(path, "axial:middle:1").pixels[0].astype(np.float64)
    assert np.abs(hot - clean).mean() < 1.0
    assert hot.std() > 0.95 * clean.std() > 20
    # Without clipping the hot voxel takes 255 and the anatomy is pressed into a few grey levels.
    unclipped = _read(path, "axial:middle:1", percentiles=(0, 100)).pixels[0]
    assert unclipped.std() < 0.1 * clean.std()


def test_slices_are_square_uint8_padded_at_the_centre() -> None:
    axial = _read(ANATOMICAL, "axial:middle:4")
    assert axial.pixels.dtype == np.uint8 and axial.pixels.shape == (4, 41, 41)
    # Coronal slices are 33 (R) wide and 25 (S) high: 8 rows of padding, 4 above and 4 below.
    coronal = _read(ANATOMICAL, "coronal:middle:2").pixels
    assert coronal.shape == (2, 33, 33)
    assert not coronal[:, :4].any() and not coronal[:, -4:].any()
    assert coronal[:, 4].any() and coronal[:, -5].any()
    assert coronal.min() == 0 and coronal.max() == 255


def test_a_constant_volume_gives_black_slices(tmp_path: Path) -> None:
    path = _save(tmp_path, "constant.nii", np.full((6, 7, 8), 42.0, dtype=np.float32), np.eye(4))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        slices = _read(path, "axial:every:2")
    assert slices.pixels.shape == (4, 7, 7) and not slices.pixels.any()


def test_nan_voxels_are_shown_as_the_minimum(tmp_path: Path) -> None:
    voxels, affine = _anatomical()
    voxels[10:20, 10:20, :] = np.nan
    path = _save(tmp_path, "nan.nii", voxels, affine)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        image = _read(path, "axial:middle:1").pixels[0]
    # The file is LAS, so stored voxel i is R index 32 - i; the display rotation puts (R index, j) at
    # row 40 - j, column R index, and the 33 columns are padded by 4 on the left to make 41.
    assert not image[21:31, 17:27].any()
    assert image.std() > 20


def test_a_four_dimensional_series_is_refused_with_its_shape() -> None:
    with pytest.raises(DatasetError) as error:
        _read(SERIES, "axial:middle:1")
    message = str(error.value)
    assert "example4d.nii.gz" in message and "(128, 96, 24, 2)" in message
    assert "fslsplit" in message


def test_a_single_volume_stored_in_four_dimensions_is_read_as_three(tmp_path: Path) -> None:
    voxels, affine = _anatomical()
    path = _save(tmp_path, "one_volume.nii.gz", voxels[..., np.newaxis], affine)
    np.testing.assert_array_equal(_read(path, "axial:middle:3").pixels, _read(ANATOMICAL, "axial:middle:3").pixels)


def test_a_two_dimensional_image_is_refused(tmp_path: Path) -> None:
    path = _save(tmp_path, "flat.nii", np.ones((5, 6), dtype=np.float32), np.eye(4))
    with pytest.raises(DatasetError, match=r"flat.nii.*\(5, 6\).*3-D volume"):
        _read(path, "axial:middle:1")


@pytest.mark.parametrize("compressed", [False, True])
def test_a_truncated_file_is_refused_naming_it(tmp_path: Path, compressed: bool) -> None:
    whole = ANATOMICAL.read_bytes()
    if compressed:
        whole = gzip.compress(whole)
    path = tmp_path / ("half.nii.gz" if compressed else "half.nii")
    path.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(DatasetError, match="cannot read NIfTI file 'half.nii"):
        _read(path, "axial:middle:1")


def test_a_corrupt_gzip_stream_is_refused_naming_the_file(tmp_path: Path) -> None:
    compressed = bytearray(gzip.compress(ANATOMICAL.read_bytes()))
    compressed[200:260] = b"x" * 60
    path = tmp_path / "corrupt.nii.gz"
    path.write_bytes(bytes(compressed))
    with pytest.raises(DatasetError, match="cannot read NIfTI file 'corrupt.nii.gz'"):
        _read(path, "axial:middle:1")


def test_files_that_are_not_nifti_are_refused_naming_them(tmp_path: Path) -> None:
    text = tmp_path / "notes.nii"
    text.write_text("not a volume")
    with pytest.raises(DatasetError, match="cannot read NIfTI file 'notes.nii'"):
        _read(text, "axial:middle:1")
    gzipped = tmp_path / "gzipped.nii"
    gzipped.write_bytes(gzip.compress(ANATOMICAL.read_bytes()))
    with pytest.raises(DatasetError, match="gzipped.nii.*must end in .nii.gz"):
        _read(gzipped, "axial:middle:1")
    with pytest.raises(DatasetError, match="NIfTI file 'missing.nii' does not exist"):
        _read(tmp_path / "missing.nii", "axial:middle:1")


def test_errors_use_the_name_given_for_the_file() -> None:
    with pytest.raises(DatasetError, match="patient-7/scan.nii.gz"):
        read_nifti_slices(SERIES, "patient-7/scan.nii.gz", DEFAULT_SLICES)


@pytest.mark.parametrize("percentiles", [(50.0, 50.0), (-1.0, 99.0), (1.0, 101.0)])
def test_impossible_percentiles_are_refused(percentiles: tuple[float, float]) -> None:
    with pytest.raises(DatasetError, match="percentiles"):
        read_nifti_slices(ANATOMICAL, "anatomical.nii", DEFAULT_SLICES, percentiles)
