"""Small class datasets built from real files that ship in pydicom and nibabel: DICOM copies with patients (and a
planted patient name), NIfTI volumes, Kermany-style file names and manifests, for the loader and sweep tests."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from PIL import Image

PLANTED_NAME = "PLANTED^PATIENT^NAME"
PLANTED_ID = "MRN-PLANTED-0042"
PLANTED_BIRTH_DATE = "19230417"


def _dicom_source(name: str):
    import pydicom
    from pydicom.data import get_testdata_file

    return pydicom.dcmread(get_testdata_file(name))


def write_dicom_class_folder(
    root: Path, patients_per_class: int = 6, images_per_patient: int = 3, without_suffix_every: int = 4, seed: int = 0
) -> dict[str, list[str]]:
    """root/<ct|mr>/<file> : CT_small copies for class 'ct', MR_small copies for 'mr', each with its own noise, a
    PatientID per patient (P<class><n>; patient 0 of 'ct' has PLANTED_ID) and the planted name and birth date in
    every copy. Every `without_suffix_every`-th file has no suffix (found by its DICM preamble). Returns the raw
    patient id of each written file (by id relative to root)."""
    generator = np.random.default_rng(seed)
    patient_of: dict[str, list[str]] = {}
    for class_name, source_name in (("ct", "CT_small.dcm"), ("mr", "MR_small.dcm")):
        folder = root / class_name
        folder.mkdir(parents=True, exist_ok=True)
        for patient in range(patients_per_class):
            patient_id = PLANTED_ID if (class_name, patient) == ("ct", 0) else f"P{class_name}{patient}"
            for image in range(images_per_patient):
                dataset = _dicom_source(source_name)
                stored = dataset.pixel_array
                noise = generator.integers(-40, 41, size=stored.shape)
                dataset.PixelData = np.clip(stored.astype(np.int32) + noise, 0, 4000).astype(stored.dtype).tobytes()
                dataset.PatientName = PLANTED_NAME
                dataset.PatientID = patient_id
                dataset.PatientBirthDate = PLANTED_BIRTH_DATE
                number = patient * images_per_patient + image
                file_name = f"image{number:03d}" + ("" if number % without_suffix_every == 3 else ".dcm")
                dataset.save_as(folder / file_name)
                patient_of.setdefault(patient_id, []).append(f"{class_name}/{file_name}")
    return patient_of


def write_nifti_class_folder(root: Path, volumes_per_class: int = 3, seed: int = 0) -> None:
    """root/<bright|dark>/<subject>.nii(.gz): copies of nibabel's anatomical.nii, one class scaled up in intensity
    and the other down, each with its own noise."""
    import nibabel
    from nibabel.testing import data_path

    source = nibabel.load(Path(data_path) / "anatomical.nii")
    volume = np.asarray(source.dataobj, dtype=np.float32)
    generator = np.random.default_rng(seed)
    for class_name, scale in (("bright", 1.0), ("dark", 0.4)):
        folder = root / class_name
        folder.mkdir(parents=True, exist_ok=True)
        for subject in range(volumes_per_class):
            noisy = volume * scale + generator.normal(0, 2, volume.shape).astype(np.float32)
            suffix = ".nii.gz" if subject % 2 else ".nii"
            nibabel.save(nibabel.Nifti1Image(noisy, source.affine), folder / f"subject{subject}{suffix}")


def write_kermany_folder(root: Path, patients: int = 12, seed: int = 0) -> None:
    """Kermany-style chest X-ray names: root/<NORMAL|PNEUMONIA>/person<n>_<kind>_<k>.png, several per person."""
    generator = np.random.default_rng(seed)
    for class_name in ("NORMAL", "PNEUMONIA"):
        folder = root / class_name
        folder.mkdir(parents=True, exist_ok=True)
        for person in range(patients):
            for image in range(1 + person % 4):
                base = 90 if class_name == "NORMAL" else 160
                pixels = np.clip(generator.normal(base, 30, (16, 16)), 0, 255).astype(np.uint8)
                kind = "normal" if class_name == "NORMAL" else "virus"
                Image.fromarray(pixels).save(folder / f"person{person}_{kind}_{image}.png")


def write_manifest(path: Path, rows: list[dict[str, str]], delimiter: str = ",") -> Path:
    with open(path, "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]), delimiter=delimiter)
        writer.writeheader()
        writer.writerows(rows)
    return path
