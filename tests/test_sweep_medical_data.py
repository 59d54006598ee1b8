"""Whole sweeps on medical data as it comes: a DICOM class folder whose files carry a planted patient name, ID and
birth date (no file the sweep writes and no line it prints holds them), and a manifest with patient ids."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from search.run import main
from tests.medical_files import PLANTED_BIRTH_DATE, PLANTED_ID, PLANTED_NAME, write_dicom_class_folder, write_manifest

pytestmark = pytest.mark.slow
pytest.importorskip("pydicom")

SPACE = {
    "fixed": {
        "training.epochs": 1,
        "training.batch_size": 16,
        "model.backbone": "basic_cnn",
        "augmentation.policy": "none",
        "synthetic.generator": "oversample",
    },
    "parameters": {"synthetic.proportion": {"choice": [0.0, 0.5]}},
}


def _sweep(tmp_path: Path, name: str, *flags: str) -> int:
    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump(SPACE))
    return main(
        [
            "--space",
            str(space),
            "--searcher",
            "grid",
            "--scheduler",
            "none",
            "--image-size",
            "16",
            "--storage",
            str(tmp_path / "results"),
            "--name",
            name,
            "--wandb-mode",
            "offline",
            "--finalists",
            "1",
            "--max-concurrent",
            "2",
            *flags,
        ]
    )


def test_a_dicom_sweep_never_writes_or_prints_a_patient_attribute(
    tmp_path: Path, ray_cluster: None, capfd: pytest.CaptureFixture
) -> None:
    write_dicom_class_folder(tmp_path / "scans", patients_per_class=6)
    assert _sweep(tmp_path, "dicom", "--data", str(tmp_path / "scans"), "--window", "brain") == 0
    report = tmp_path / "results" / "dicom"
    leaderboard = pd.read_csv(report / "leaderboard.csv")
    assert len(leaderboard) == 2 and set(leaderboard["status"]) == {"ok"}
    assert (report / "test_metrics.json").is_file()

    output = capfd.readouterr()
    assert "images of" in output.out and "patients" in output.out  # the dataset summary counts patients
    planted = (PLANTED_NAME, PLANTED_ID, PLANTED_BIRTH_DATE, "PLANTED")
    assert [text for text in planted if text in output.out + output.err] == []
    written = [path for path in (tmp_path / "results").rglob("*") if path.is_file()]
    assert len(written) > 20
    leaking = [str(path) for path in written for text in planted if text.encode() in path.read_bytes()]
    assert leaking == []


def test_a_manifest_sweep_with_patient_ids_keeps_each_patient_in_one_split(
    tmp_path: Path, ray_cluster: None, capfd: pytest.CaptureFixture
) -> None:
    patients = write_dicom_class_folder(tmp_path / "scans", patients_per_class=6)
    rows = [
        {
            "path": f"scans/{file}",
            "label": "computed_tomography" if file.startswith("ct") else "magnetic_resonance",
            "patient_id": patient,
        }
        for patient, files in patients.items()
        for file in files
    ]
    manifest = write_manifest(tmp_path / "labels.csv", rows)
    assert _sweep(tmp_path, "manifest", "--data", str(manifest)) == 0
    report = tmp_path / "results" / "manifest"
    assert set(pd.read_csv(report / "leaderboard.csv")["status"]) == {"ok"}
    output = capfd.readouterr().out
    assert "computed_tomography" in output and "patients:" in output
    leaking = [
        str(path) for path in (tmp_path / "results").rglob("*") if path.is_file() and PLANTED_ID.encode() in path.read_bytes()
    ]
    assert leaking == []
