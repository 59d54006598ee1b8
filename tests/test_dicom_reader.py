"""The DICOM reader on real files shipped with pydicom: windows, rescale, MONOCHROME1, colour, encodings, frames,
damaged files, and that no patient attribute ever reaches an error, a warning or a log line."""

from __future__ import annotations

import logging
import shutil
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.pixels import apply_color_lut, apply_modality_lut, get_decoder
from pydicom.sequence import Sequence

from trainables.datasets.dicom import dicom_patient_identifier, read_dicom
from trainables.datasets.dicom_settings import DICOM_SUFFIXES, WINDOW_PRESETS, DicomSettings, is_dicom_file, parse_window
from trainables.datasets.errors import DatasetError

PLANTED = {"PatientName": "PLANTED^PATIENT", "PatientID": "PLANTED-ID-7731", "PatientBirthDate": "19121212"}


def shipped(name: str) -> Path:
    return Path(get_testdata_file(name))


def read(name: str, **settings: object) -> np.ndarray:
    return read_dicom(shipped(name), name, DicomSettings(**settings))


def modified_copy(tmp_path: Path, name: str, change: Callable[[Dataset], None], filename: str | None = None) -> Path:
    dataset = pydicom.dcmread(shipped(name))
    change(dataset)
    path = tmp_path / (filename or name)
    dataset.save_as(path)
    return path


def plant_patient(dataset: Dataset) -> None:
    for keyword, value in PLANTED.items():
        setattr(dataset, keyword, value)


def assert_no_patient_attribute(text: str) -> None:
    for value in (*PLANTED.values(), "PLANTED", "Patient^", "19121212"):
        assert value not in text


def stored_values(name: str, frame: int | None = None) -> np.ndarray:
    """The modality values (Hounsfield units for CT) as pydicom computes them."""
    dataset = pydicom.dcmread(shipped(name))
    pixels = dataset.pixel_array if frame is None else dataset.pixel_array[frame]
    return apply_modality_lut(pixels, dataset)


def dicom_linear_window(values: np.ndarray, center: float, width: float) -> np.ndarray:
    """PS3.3 C.11.2.1.2.1, written out here so the reader is checked against the standard, not against itself."""
    scaled = ((np.asarray(values, dtype=np.float64) - (center - 0.5)) / (width - 1) + 0.5) * 255
    return np.rint(np.clip(scaled, 0, 255))


def assert_close_to(image: np.ndarray, expected: np.ndarray) -> None:
    difference = np.abs(image.astype(np.int64) - expected.astype(np.int64))
    # Rounding at exactly .5 may differ by one grey level between two float paths.
    assert difference.max() <= 1
    assert (difference == 0).mean() > 0.99


# --- parse_window and DicomSettings


def test_presets_cover_the_usual_ct_windows() -> None:
    for name in ("lung", "mediastinum", "bone", "brain", "abdomen", "liver", "soft_tissue"):
        center, width = WINDOW_PRESETS[name]
        assert width >= 1 and -1500 < center < 1500
    assert WINDOW_PRESETS["lung"] == (-600.0, 1500.0) and WINDOW_PRESETS["brain"] == (40.0, 80.0)


@pytest.mark.parametrize(
    ("text", "window"),
    [("lung", (-600.0, 1500.0)), (" BONE ", (400.0, 1800.0)), ("Soft-Tissue", (40.0, 400.0)), ("-600,1500", (-600.0, 1500.0)),
     (" 40 , 80.5 ", (40.0, 80.5)), ("1e2,3e2", (100.0, 300.0))],
)  # fmt: skip
def test_parse_window_accepts_presets_and_numbers(text: str, window: tuple[float, float]) -> None:
    assert parse_window(text) == window


@pytest.mark.parametrize("text", ["lungs", "", "40", "40,80,3", "40,0", "40,-5", "a,b", "nan,80", "40,inf"])
def test_parse_window_errors_list_presets_and_numeric_form(text: str) -> None:
    with pytest.raises(DatasetError) as raised:
        parse_window(text)
    message = str(raised.value)
    assert f"'{text}'" in message and "center,width" in message and "width > 0" in message
    assert all(name in message for name in WINDOW_PRESETS)


@pytest.mark.parametrize(
    "settings",
    [{"window": (40, 0)}, {"window": (40, -1)}, {"window": (float("nan"), 80)}, {"window": (40,)}, {"window": "lung"},
     {"window": (True, 80)}, {"frame": -1}, {"frame": 1.5}, {"frame": True}, {"frame": "2"}],
)  # fmt: skip
def test_settings_refuse_invalid_values(settings: dict) -> None:
    with pytest.raises(DatasetError, match="DICOM (window|frame)"):
        DicomSettings(**settings)


def test_settings_normalise_valid_values() -> None:
    settings = DicomSettings(window=[40, 80], frame=np.int64(2))
    assert settings.window == (40.0, 80.0) and type(settings.frame) is int


# --- is_dicom_file


def test_is_dicom_file_by_suffix_or_marker(tmp_path: Path) -> None:
    assert all(is_dicom_file(tmp_path / f"missing{suffix.upper()}") for suffix in DICOM_SUFFIXES)
    no_extension = tmp_path / "IM000001"
    shutil.copy(shipped("CT_small.dcm"), no_extension)
    assert is_dicom_file(no_extension)
    (tmp_path / "notes").write_text("x" * 200)
    (tmp_path / "short").write_bytes(b"DICM")
    (tmp_path / "folder").mkdir()
    for path in (tmp_path / "notes", tmp_path / "short", tmp_path / "folder", tmp_path / "missing"):
        assert not is_dicom_file(path)
    # A file without the preamble (old ACR-NEMA style) is not recognised without its suffix: dcmread refuses it too.
    shutil.copy(shipped("no_meta.dcm"), tmp_path / "no_meta")
    assert not is_dicom_file(tmp_path / "no_meta")


# --- grayscale: rescale, windows, MONOCHROME1


def test_ct_lung_and_bone_windows_follow_the_dicom_formula_on_hounsfield_units() -> None:
    hounsfield = stored_values("CT_small.dcm")
    lung, bone = read("CT_small.dcm", window=parse_window("lung")), read("CT_small.dcm", window=parse_window("bone"))
    assert lung.dtype == np.uint8 and lung.shape == (128, 128)
    assert_close_to(lung, dicom_linear_window(hounsfield, *WINDOW_PRESETS["lung"]))
    assert_close_to(bone, dicom_linear_window(hounsfield, *WINDOW_PRESETS["bone"]))
    assert np.abs(lung.astype(int) - bone.astype(int)).mean() > 20


def test_rescale_slope_and_intercept_are_applied(tmp_path: Path) -> None:
    def rescale(dataset: Dataset) -> None:
        dataset.RescaleSlope, dataset.RescaleIntercept = 2, -500

    path = modified_copy(tmp_path, "CT_small.dcm", rescale)
    raw = pydicom.dcmread(path).pixel_array.astype(np.float64)
    np.testing.assert_array_equal(apply_modality_lut(raw, pydicom.dcmread(path)), raw * 2 - 500)
    image = read_dicom(path, path.name, DicomSettings(window=(0, 2000)))
    assert_close_to(image, dicom_linear_window(raw * 2 - 500, 0, 2000))


def test_the_files_own_window_is_used_and_the_first_of_several() -> None:
    mr = pydicom.dcmread(shipped("MR_small.dcm"))
    assert_close_to(read("MR_small.dcm"), dicom_linear_window(mr.pixel_array, float(mr.WindowCenter), float(mr.WindowWidth)))
    overlay = pydicom.dcmread(shipped("examples_overlay.dcm"))
    first = (float(overlay.WindowCenter[0]), float(overlay.WindowWidth[0]))
    np.testing.assert_array_equal(read("examples_overlay.dcm"), read("examples_overlay.dcm", window=first))


def test_without_a_window_the_image_spans_its_min_to_max(tmp_path: Path) -> None:
    path = modified_copy(
        tmp_path, "MR_small.dcm", lambda dataset: (delattr(dataset, "WindowCenter"), delattr(dataset, "WindowWidth"))
    )
    values = pydicom.dcmread(path).pixel_array.astype(np.float64)
    expected = np.rint((values - values.min()) * 255 / (values.max() - values.min()))
    image = read_dicom(path, path.name, DicomSettings())
    assert image.min() == 0 and image.max() == 255
    assert_close_to(image, expected)


def test_a_voi_lut_sequence_takes_precedence_over_the_window(tmp_path: Path) -> None:
    def add_reversed_lut(dataset: Dataset) -> None:
        item = Dataset()
        item.add_new(0x00283002, "US", [4096, 0, 12])  # LUT Descriptor: 4096 entries from 0, 12-bit output
        item.add_new(0x00283006, "US", list(range(4095, -1, -1)))  # LUT Data: a reversed ramp
        dataset.VOILUTSequence = Sequence([item])

    path = modified_copy(tmp_path, "MR_small.dcm", add_reversed_lut)
    values = np.clip(pydicom.dcmread(path).pixel_array.astype(np.int64), 0, 4095)
    assert_close_to(read_dicom(path, path.name, DicomSettings()), np.rint((4095 - values) * 255 / 4095))


def test_monochrome1_is_inverted_after_windowing(tmp_path: Path) -> None:
    path = modified_copy(tmp_path, "MR_small.dcm", lambda dataset: setattr(dataset, "PhotometricInterpretation", "MONOCHROME1"))
    for window in (None, (600.0, 1600.0), (100.0, 50.0)):
        np.testing.assert_array_equal(
            read_dicom(path, path.name, DicomSettings(window=window)), 255 - read("MR_small.dcm", window=window)
        )


def test_a_constant_image_is_black_without_dividing_by_zero(tmp_path: Path) -> None:
    def make_constant(dataset: Dataset) -> None:
        dataset.PixelData = np.full((64, 64), 100, dtype=np.int16).tobytes()
        del dataset.WindowCenter, dataset.WindowWidth

    path = modified_copy(tmp_path, "MR_small.dcm", make_constant)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        image = read_dicom(path, path.name, DicomSettings())
    assert image.shape == (64, 64) and not image.any()
    assert (read_dicom(path, path.name, DicomSettings(window=(100.0, 200.0))) == 128).all()


def test_unusual_explicit_windows_work() -> None:
    narrow = read("CT_small.dcm", window=(0.0, 0.5))
    assert set(np.unique(narrow)) <= set(range(256)) and narrow.max() == 255
    read("CT_small.dcm", window=(1 / 3, 1000 / 3))  # more digits than a DICOM decimal string holds


def test_a_broken_window_in_the_file_names_it_and_an_explicit_window_replaces_it(tmp_path: Path) -> None:
    path = modified_copy(tmp_path, "MR_small.dcm", lambda dataset: setattr(dataset, "WindowWidth", 0), "broken_window.dcm")
    with pytest.raises(DatasetError, match=r"broken_window\.dcm.*explicit window"):
        read_dicom(path, path.name, DicomSettings())
    assert read_dicom(path, path.name, DicomSettings(window=(600.0, 1600.0))).shape == (64, 64)


def test_enhanced_multi_frame_rescale_in_functional_groups_is_applied(tmp_path: Path) -> None:
    def move_rescale_to_shared_groups(dataset: Dataset) -> None:
        transformation = Dataset()
        transformation.RescaleSlope, transformation.RescaleIntercept = dataset.RescaleSlope, dataset.RescaleIntercept
        shared = Dataset()
        shared.PixelValueTransformationSequence = Sequence([transformation])
        dataset.SharedFunctionalGroupsSequence = Sequence([shared])
        del dataset.RescaleSlope, dataset.RescaleIntercept

    path = modified_copy(tmp_path, "CT_small.dcm", move_rescale_to_shared_groups)
    np.testing.assert_array_equal(
        read_dicom(path, path.name, DicomSettings(window=(-600, 1500))), read("CT_small.dcm", window=(-600, 1500))
    )

    def per_frame_slopes(dataset: Dataset) -> None:
        frames = []
        for index in range(int(dataset.NumberOfFrames)):
            transformation = Dataset()
            transformation.RescaleSlope, transformation.RescaleIntercept = index + 1, 0
            frame = Dataset()
            frame.PixelValueTransformationSequence = Sequence([transformation])
            frames.append(frame)
        dataset.PerFrameFunctionalGroupsSequence = Sequence(frames)

    path = modified_copy(tmp_path, "rtdose.dcm", per_frame_slopes)
    raw = pydicom.dcmread(path).pixel_array[2].astype(np.float64)
    image = read_dicom(path, path.name, DicomSettings(window=(raw.mean() * 3, raw.std() * 3 * 4), frame=2))
    assert_close_to(image, dicom_linear_window(raw * 3, raw.mean() * 3, raw.std() * 3 * 4))


# --- colour


def test_rgb_at_8_16_and_32_bits_gives_the_same_image() -> None:
    eight_bit = read("SC_rgb_rle.dcm")
    assert eight_bit.shape == (100, 100, 3) and eight_bit.dtype == np.uint8
    for name in ("SC_rgb_rle_16bit.dcm", "SC_rgb_rle_32bit.dcm", "SC_rgb_gdcm_KY.dcm", "ExplVR_BigEnd.dcm"):
        image = read(name)
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[-1] == 3
        if image.shape == eight_bit.shape:
            np.testing.assert_array_equal(image, eight_bit)


@pytest.mark.parametrize("name", ["SC_ybr_full_422_uncompressed.dcm", "SC_rgb_jpeg_dcmtk.dcm", "SC_rgb_dcmtk_+eb+cy+s2.dcm"])
def test_ycbcr_is_converted_to_rgb(name: str) -> None:
    difference = np.abs(read(name).astype(int) - read("SC_rgb_rle.dcm").astype(int))
    # YCbCr rounding and JPEG loss move a few grey levels; unconverted YCbCr would be off by about a hundred.
    assert difference.mean() < 3


def test_palette_colour_goes_through_the_colour_lut() -> None:
    dataset = pydicom.dcmread(shipped("examples_palette.dcm"))
    expected = apply_color_lut(dataset.pixel_array, dataset).astype(np.float64) * 255 / 65535
    image = read("examples_palette.dcm")
    assert image.shape == (*dataset.pixel_array.shape, 3)
    assert_close_to(image, np.rint(expected))


def test_an_explicit_window_leaves_colour_images_as_stored() -> None:
    np.testing.assert_array_equal(read("SC_rgb_rle.dcm", window=(-600, 1500)), read("SC_rgb_rle.dcm"))


# --- encodings: each decodes where a plugin that can decode it is installed, else names the package to install

NATIVE = frozenset()  # pydicom's own reader; always decodes
RLE = frozenset({"pydicom", "pylibjpeg"})
JPEG_2000 = frozenset({"pylibjpeg", "pillow", "gdcm"})
JPEG_BASELINE = frozenset({"pillow", "gdcm", "pylibjpeg"})
# Pillow and pydicom's GDCM plugin refuse 12-bit JPEG; pylibjpeg with pylibjpeg-libjpeg decodes it.
JPEG_TWELVE_BIT = frozenset({"pylibjpeg"})
JPEG_LOSSLESS = frozenset({"gdcm", "pylibjpeg"})
JPEG_LS = frozenset({"gdcm", "pylibjpeg", "pyjpegls"})

ENCODINGS = [
    ("CT_small.dcm", NATIVE, None), ("MR_small_implicit.dcm", NATIVE, None), ("MR_small_bigendian.dcm", NATIVE, None),
    ("ExplVR_BigEnd.dcm", NATIVE, None), ("image_dfl.dcm", NATIVE, None), ("liver_1frame.dcm", NATIVE, None),
    ("MR_small_RLE.dcm", RLE, None), ("SC_rgb_rle_16bit.dcm", RLE, None), ("rtdose_rle.dcm", RLE, 3),
    ("MR_small_jp2klossless.dcm", JPEG_2000, None), ("JPEG2000.dcm", JPEG_2000, None), ("693_J2KI.dcm", JPEG_2000, None),
    ("GDCMJ2K_TextGBR.dcm", JPEG_2000, None), ("examples_jpeg2k.dcm", JPEG_2000, None),
    ("SC_rgb_jpeg_dcmtk.dcm", JPEG_BASELINE, None), ("SC_rgb_dcmtk_+eb+cy+np.dcm", JPEG_BASELINE, None),
    ("examples_ybr_color.dcm", JPEG_BASELINE, 0),
    ("JPGExtended.dcm", JPEG_TWELVE_BIT, None),
    ("SC_rgb_jpeg_gdcm.dcm", JPEG_LOSSLESS, None),
    ("MR_small_jpeg_ls_lossless.dcm", JPEG_LS, None), ("JPEGLSNearLossless_16.dcm", JPEG_LS, None),
    ("SC_rgb_jls_lossy_line.dcm", JPEG_LS, None),
]  # fmt: skip


def decodes_here(path: Path, plugins: frozenset[str]) -> bool:
    """Whether a plugin that decodes this file is installed, by pydicom's own account of available plugins."""
    decoder = get_decoder(pydicom.dcmread(path, stop_before_pixels=True).file_meta.TransferSyntaxUID)
    return plugins is NATIVE or bool(plugins & set(decoder.available_plugins))


def read_or_missing_package(path: Path, plugins: frozenset[str], frame: int | None = None) -> np.ndarray | None:
    """The image where it decodes here, else None after checking the error names the file, the transfer syntax and
    a package to install."""
    syntax = pydicom.dcmread(path, stop_before_pixels=True).file_meta.TransferSyntaxUID
    if decodes_here(path, plugins):
        return read_dicom(path, path.name, DicomSettings(frame=frame))
    with pytest.raises(DatasetError) as raised:
        read_dicom(path, path.name, DicomSettings(frame=frame))
    message = str(raised.value)
    assert path.name in message and syntax.name in message and "pip install" in message
    assert any(package in message for package in ("python-gdcm", "pyjpegls", "pylibjpeg-libjpeg"))
    return None


@pytest.mark.parametrize(("name", "plugins", "frame"), ENCODINGS, ids=[row[0] for row in ENCODINGS])
def test_each_shipped_encoding_decodes_or_names_the_missing_package(
    name: str, plugins: frozenset[str], frame: int | None
) -> None:
    image = read_or_missing_package(shipped(name), plugins, frame)
    if image is not None:
        dataset = pydicom.dcmread(shipped(name), stop_before_pixels=True)
        colour = () if dataset.SamplesPerPixel == 1 and dataset.PhotometricInterpretation != "PALETTE COLOR" else (3,)
        assert image.dtype == np.uint8 and image.shape == (dataset.Rows, dataset.Columns, *colour)
        assert image.max() > image.min()


@pytest.mark.parametrize(
    ("name", "plugins"),
    [("MR_small_implicit.dcm", NATIVE), ("MR_small_bigendian.dcm", NATIVE), ("MR_small_expb.dcm", NATIVE),
     ("MR_small_padded.dcm", NATIVE), ("MR_small_RLE.dcm", RLE), ("MR_small_jp2klossless.dcm", JPEG_2000),
     ("MR_small_jpeg_ls_lossless.dcm", JPEG_LS)],
)  # fmt: skip
def test_encoded_variants_of_mr_small_give_its_pixels(name: str, plugins: frozenset[str]) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MR_small_padded: pydicom warns about the padding it drops
        image = read_or_missing_package(shipped(name), plugins)
    if image is not None:
        np.testing.assert_array_equal(image, read("MR_small.dcm"))


# --- frames


def test_multi_frame_files_are_refused_without_a_frame_and_read_with_one() -> None:
    with pytest.raises(DatasetError) as raised:
        read("rtdose.dcm")
    assert "'rtdose.dcm'" in str(raised.value) and "15 frames" in str(raised.value) and "frame=" in str(raised.value)
    values = stored_values("rtdose.dcm", frame=1)
    image = read("rtdose.dcm", frame=1)
    assert image.shape == (10, 10)
    assert_close_to(image, np.rint((values - values.min()) * 255 / (values.max() - values.min())))
    assert not np.array_equal(image, read("rtdose.dcm", frame=0))
    with pytest.raises(DatasetError, match=r"frame 15 .*'rtdose\.dcm' holds 15 frames.*0 to 14"):
        read("rtdose.dcm", frame=15)


def test_a_frame_leaves_single_frame_files_alone() -> None:
    np.testing.assert_array_equal(read("CT_small.dcm", frame=4), read("CT_small.dcm"))


def test_one_frame_of_a_colour_multi_frame_file() -> None:
    if decodes_here(shipped("examples_ybr_color.dcm"), JPEG_BASELINE):
        assert read("examples_ybr_color.dcm", frame=29).shape == (240, 320, 3)


# --- files that are not images, not DICOM, or damaged


def test_a_truncated_file_is_refused_naming_it() -> None:
    with pytest.raises(DatasetError, match=r"'MR_truncated\.dcm'.*truncated or corrupt"):
        read("MR_truncated.dcm")


@pytest.mark.parametrize(("name", "message"), [("no_meta.dcm", "not a DICOM Part 10 file"), ("rtplan.dcm", "holds no image"),
                                               ("test-SR.dcm", "holds no image")])  # fmt: skip
def test_files_without_an_image_are_refused_naming_them(name: str, message: str) -> None:
    with pytest.raises(DatasetError, match=rf"'{name}'.*{message}|{message}.*'{name}'"):
        read(name)


def test_other_files_named_dcm_are_refused(tmp_path: Path) -> None:
    (tmp_path / "notes.dcm").write_text("not an image")
    (tmp_path / "empty.dcm").write_bytes(b"")
    for path in (tmp_path / "notes.dcm", tmp_path / "empty.dcm", tmp_path / "missing.dcm", tmp_path):
        with pytest.raises(DatasetError, match=path.name):
            read_dicom(path, path.name, DicomSettings())


# --- patient attributes never leave the file


@pytest.fixture
def captured_output(caplog: pytest.LogCaptureFixture) -> Callable[[], str]:
    caplog.set_level(logging.DEBUG)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield lambda: "\n".join([record.getMessage() for record in caplog.records] + [str(item.message) for item in caught])


def error_text(error: BaseException) -> str:
    texts = []
    while error is not None:
        texts.append(str(error))
        error = error.__cause__ or error.__context__
    return "\n".join(texts)


def test_no_patient_attribute_in_errors_warnings_or_logs_for_cut_files(
    tmp_path: Path, captured_output: Callable[[], str]
) -> None:
    source = modified_copy(tmp_path, "CT_small.dcm", plant_patient, "planted.dcm")
    data = source.read_bytes()
    # CT_small ends with the pixel data (128 x 128 x 16 bits) then a trailing padding element, which may be cut.
    pixels_end = data.rindex(b"\xfc\xff\xfc\xff")
    pixels_start = pixels_end - 128 * 128 * 2
    cut = tmp_path / "cut.dcm"
    # Every few bytes through the header (inside the planted elements too), then through the pixel data.
    for length in [*range(0, pixels_start + 16, 3), *range(pixels_start + 16, pixels_end, 4093)]:
        cut.write_bytes(data[:length])
        with pytest.raises(DatasetError) as raised:
            read_dicom(cut, "cut.dcm", DicomSettings())
        assert "cut.dcm" in str(raised.value)
        assert_no_patient_attribute(error_text(raised.value))
        try:
            dicom_patient_identifier(cut)
        except DatasetError as error:
            assert_no_patient_attribute(error_text(error))
    assert_no_patient_attribute(captured_output())


@pytest.mark.parametrize(
    ("name", "change", "settings"),
    [("rtdose.dcm", None, {}), ("rtdose.dcm", None, {"frame": 99}), ("MR_small_jpeg_ls_lossless.dcm", None, {}),
     ("JPEG-lossy.dcm", None, {}), ("MR_small.dcm", "PhotometricInterpretation", {}), ("MR_small.dcm", "WindowWidth", {})],
)  # fmt: skip
def test_no_patient_attribute_in_other_errors(
    tmp_path: Path, captured_output: Callable[[], str], name: str, change: str | None, settings: dict
) -> None:
    def plant_and_break(dataset: Dataset) -> None:
        plant_patient(dataset)
        if change == "PhotometricInterpretation":
            dataset.PhotometricInterpretation = "CMYK"
        elif change == "WindowWidth":
            dataset.WindowWidth = 0

    path = modified_copy(tmp_path, name, plant_and_break)
    try:
        read_dicom(path, path.name, DicomSettings(**settings))
    except DatasetError as error:
        assert path.name in str(error)
        assert_no_patient_attribute(error_text(error))
    assert_no_patient_attribute(captured_output())


def test_the_patient_identifier_is_read_without_the_pixels(tmp_path: Path) -> None:
    planted = modified_copy(tmp_path, "CT_small.dcm", plant_patient, "planted.dcm")
    assert dicom_patient_identifier(planted) == PLANTED["PatientID"]
    # Pixel data cut short does not matter: reading stops before it.
    assert dicom_patient_identifier(shipped("MR_truncated.dcm")) == str(pydicom.dcmread(shipped("MR_small.dcm")).PatientID)
    assert (
        dicom_patient_identifier(
            modified_copy(tmp_path, "CT_small.dcm", lambda dataset: delattr(dataset, "PatientID"), "none.dcm")
        )
        is None
    )
    blank = modified_copy(tmp_path, "CT_small.dcm", lambda dataset: setattr(dataset, "PatientID", "  "), "blank.dcm")
    assert dicom_patient_identifier(blank) is None
    with pytest.raises(DatasetError, match="no_meta.dcm"):
        dicom_patient_identifier(shipped("no_meta.dcm"))
