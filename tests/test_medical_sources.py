"""Medical data as it comes, through `load_dataset`: class folders of DICOM files grouped by PatientID, NIfTI
volumes sliced and grouped by volume, CSV / TSV manifests with patients, and the errors each can give."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.medical_files import (
    PLANTED_BIRTH_DATE,
    PLANTED_ID,
    PLANTED_NAME,
    write_dicom_class_folder,
    write_manifest,
    write_nifti_class_folder,
)
from trainables.datasets import DatasetError, ManifestColumns, load_dataset

pydicom = pytest.importorskip("pydicom")


def _planted_anywhere(*texts: str) -> list[str]:
    return [text for text in (PLANTED_NAME, PLANTED_ID, PLANTED_BIRTH_DATE, "PLANTED") if any(text in t for t in texts)]


def test_a_dicom_class_folder_is_read_grouped_by_patient_and_holds_no_patient_attribute(tmp_path: Path) -> None:
    patients = write_dicom_class_folder(tmp_path / "scans")
    splits = load_dataset(tmp_path / "scans", image_size=28, window="-600,1500")
    assert splits.class_names == ("ct", "mr") and splits.channels == 1 and splits.image_size == 28
    test = splits.load_test()
    total = len(splits.train) + len(splits.val) + len(test)
    assert total == sum(len(files) for files in patients.values())  # extension-less files found by their preamble
    assert any("." not in image_id.rsplit("/", 1)[-1] for image_id in splits.train.ids)
    # One patient's images in one split.
    split_of = {}
    for split, image_set in (("train", splits.train), ("val", splits.val), ("test", test)):
        for image_id in image_set.ids:
            split_of[image_id] = split
    for files in patients.values():
        assert len({split_of[file] for file in files}) == 1
    # Keys are salted hashes: no PatientID, name or birth date in what the sweep holds.
    for image_set in (splits.train, splits.val, test):
        held = " ".join(image_set.groups.tolist() + image_set.ids.tolist())
        assert _planted_anywhere(held) == [] and all(key.startswith("patient-") for key in image_set.groups)
    assert _planted_anywhere(splits.describe(include_test=True), repr(splits)) == []


def test_forcing_dicom_reads_files_of_any_name_and_refuses_what_is_not_dicom(tmp_path: Path) -> None:
    write_dicom_class_folder(tmp_path / "scans", patients_per_class=3)
    (tmp_path / "scans" / "ct" / "notes.txt").write_text("not an image")
    with pytest.raises(DatasetError, match="notes.txt"):
        load_dataset(tmp_path / "scans", image_size=28, data_format="dicom")
    # auto leaves a text file out, as it leaves out anything that is not an image, DICOM or NIfTI file.
    assert len(load_dataset(tmp_path / "scans", image_size=28).train) > 0


def test_an_unreadable_dicom_file_is_named_or_skipped_and_counted(tmp_path: Path) -> None:
    from pydicom.data import get_testdata_file

    write_dicom_class_folder(tmp_path / "scans", patients_per_class=3)
    shutil.copy(get_testdata_file("MR_truncated.dcm"), tmp_path / "scans" / "mr" / "broken.dcm")
    with pytest.raises(DatasetError, match="broken.dcm"):
        load_dataset(tmp_path / "scans", image_size=28)
    splits = load_dataset(tmp_path / "scans", image_size=28, skip_unreadable=True)
    assert len(splits.skipped_files) == 1 and splits.skipped_files[0].startswith("mr/broken.dcm")
    assert "skipped 1 unreadable file" in splits.describe()


def test_a_window_that_is_neither_a_preset_nor_numbers_is_refused_before_reading(tmp_path: Path) -> None:
    write_dicom_class_folder(tmp_path / "scans", patients_per_class=2)
    with pytest.raises(DatasetError, match="lung"):
        load_dataset(tmp_path / "scans", window="lungs")


def test_a_nifti_folder_gives_slices_grouped_by_volume(tmp_path: Path) -> None:
    write_nifti_class_folder(tmp_path / "volumes", volumes_per_class=5)
    splits = load_dataset(tmp_path / "volumes", image_size=32, slices="axial:middle:4")
    assert splits.class_names == ("bright", "dark") and splits.image_size == 32
    test = splits.load_test()
    assert (len(splits.train) + len(splits.val) + len(test)) == 10 * 4
    assert all("#axial=" in image_id for image_id in splits.train.ids)
    volume_split = {}
    for split, image_set in (("train", splits.train), ("val", splits.val), ("test", test)):
        for image_id in image_set.ids:
            volume_split.setdefault(image_id.split("#")[0], set()).add(split)
    assert len(volume_split) == 10 and all(len(splits_of) == 1 for splits_of in volume_split.values())
    assert splits.train.patient_count() == len(splits.train) // 4


def _png(path: Path, value: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((12, 12), value, np.uint8)).save(path)


def _manifest_folder(root: Path, patients: int = 10) -> list[dict[str, str]]:
    rows = []
    for patient in range(patients):
        label = "effusion" if patient % 3 == 0 else "normal"
        for view in range(3):
            relative = f"images/p{patient}_{view}.png"
            _png(root / relative, 40 + 10 * patient + view)
            rows.append({"path": relative, "label": label, "patient_id": f"MRN{patient:05d}"})
    return rows


def test_a_manifest_with_patients_is_carved_by_patient(tmp_path: Path) -> None:
    rows = _manifest_folder(tmp_path, patients=20)
    manifest = write_manifest(tmp_path / "labels.csv", rows)
    splits = load_dataset(manifest)
    assert splits.class_names == ("effusion", "normal") and splits.name == "labels"
    patient_of = {row["path"]: row["patient_id"] for row in rows}
    seen = {}
    for split, image_set in (("train", splits.train), ("val", splits.val), ("test", splits.load_test())):
        for image_id in image_set.ids:
            seen.setdefault(patient_of[image_id], set()).add(split)
        assert not any("MRN" in key for key in image_set.groups)
    assert len(seen) == 20 and all(len(split_set) == 1 for split_set in seen.values())


def test_a_manifest_s_own_splits_are_kept_and_a_patient_in_two_of_them_is_refused(tmp_path: Path) -> None:
    rows = _manifest_folder(tmp_path, patients=9)
    for row in rows:
        patient = int(row["patient_id"][3:])
        row["split"] = "test" if patient in (0, 1, 2) else ("val" if patient in (3, 4) else "train")
    splits = load_dataset(write_manifest(tmp_path / "split.csv", rows))
    assert len(splits.val) == 6 and len(splits.load_test()) == 9 and len(splits.train) == 12
    rows[0]["split"] = "train"  # patient 0: one view in train, two in test
    with pytest.raises(DatasetError, match=r"1 patient\(s\) .* train and the test split"):
        load_dataset(write_manifest(tmp_path / "leaking.csv", rows))


def test_integer_labels_are_named_by_class_names_and_columns_can_be_renamed(tmp_path: Path) -> None:
    rows = _manifest_folder(tmp_path / "root", patients=8)
    renamed = [
        {"file": row["path"], "finding": str(int(row["label"] == "effusion")), "subject": row["patient_id"]} for row in rows
    ]
    manifest = write_manifest(tmp_path / "elsewhere.tsv", renamed, delimiter="\t")
    columns = ManifestColumns(
        image_root=str(tmp_path / "root"), path="file", label="finding", patient="subject", class_names="normal,effusion"
    )
    splits = load_dataset(manifest, manifest=columns)
    assert splits.class_names == ("normal", "effusion") and splits.train.groups is not None
    too_few = ManifestColumns(
        image_root=str(tmp_path / "root"), path="file", label="finding", patient="subject", class_names="normal,other"
    )
    renamed[0]["finding"] = "2"
    with pytest.raises(DatasetError, match="label 2 has no name in --class-names normal,other"):
        load_dataset(write_manifest(tmp_path / "three.tsv", renamed, delimiter="\t"), manifest=too_few)
    with pytest.raises(DatasetError, match="no column 'label'"):
        load_dataset(manifest, manifest=ManifestColumns(image_root=str(tmp_path / "root"), path="file"))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"path": "images/missing.png"}, r"row 3 .*image 'images/missing.png' does not exist"),
        ({"label": ""}, r"row 3 .*has no label"),
        ({"label": "effusion|normal"}, r"row 3 .*holds several labels"),
        ({"split": "holdout"}, r"row 3 .*split 'holdout' .* is not one of train, val"),
        ({"patient_id": ""}, r"row 3 .*empty patient column"),
    ],
)
def test_a_bad_manifest_row_is_one_error_naming_the_row(tmp_path: Path, change: dict[str, str], message: str) -> None:
    rows = _manifest_folder(tmp_path, patients=4)
    for row in rows:
        row["split"] = "train"
    rows[1].update(change)
    with pytest.raises(DatasetError, match=message):
        load_dataset(write_manifest(tmp_path / "bad.csv", rows))


def test_a_manifest_can_list_dicom_files(tmp_path: Path) -> None:
    patients = write_dicom_class_folder(tmp_path / "scans", patients_per_class=4)
    rows = [
        {"path": f"scans/{file}", "label": file.split("/")[0], "patient_id": patient}
        for patient, files in patients.items()
        for file in files
    ]
    splits = load_dataset(write_manifest(tmp_path / "dicom.csv", rows), image_size=28, window="brain")
    assert splits.class_names == ("ct", "mr") and splits.train.groups is not None
    assert len(splits.train) + len(splits.val) + len(splits.load_test()) == len(rows)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"patient_from_filename": r"(p\d+)"}, r"patient_from_filename applies to folders and manifests .* not to a phantom"),
        ({"window": "lung"}, "window applies to folders and manifests"),
        ({"manifest": ManifestColumns(patient="subject")}, "apply to a CSV / TSV manifest, not to a phantom source"),
    ],
)
def test_an_option_the_source_would_ignore_is_refused(options: dict, message: str) -> None:
    with pytest.raises(DatasetError, match=message):
        load_dataset("phantom", phantom_count=100, **options)
