"""report.html is one self-contained file with a placeholder where data is absent; W&B offline runs written after
the sweep are real run files that `wandb sync` reads."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest

from search.answer.trial_history import TrialHistory
from search.report.figures import plt
from search.report.page import ReportContext, ReportSection, render
from search.report.sections import SECTIONS
from search.report.wandb_runs import write_wandb_runs
from search.settings.sweep_config import SweepConfig
from search.settings.sweep_record import SweepRecord, new_record
from spaces import load_space


class Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.links += [value or "" for name, value in attrs if name in ("src", "href", "srcset", "data")]


def report_folder(folder: Path) -> SweepRecord:
    record = new_record(SweepConfig(repeats=1), load_space("quick"), "demo", str(folder), "phantom: 4 classes")
    record.seconds = {"search": 12.5, "twins": 3.0}
    record.write(folder)
    pd.DataFrame({"rank": [1, 2], "val_balanced_accuracy": [0.7, 0.6], "time_total_s": [4.0, 5.0], "trial_id": ["a", "b"],
                  "real_fraction": [1.0, 0.3]}).to_csv(folder / "leaderboard.csv", index=False)
    pd.DataFrame([{"trial_id": "a", "twin_trial_id": "t", "synthetic": "ddpm x0.5 add", "real_fraction": 1.0,
                   "epochs_compared": 8, "with_synthetic": 0.7, "real_only": 0.65, "effect": 0.05, "ci_low": None,
                   "ci_high": None, "p_value": None, "p_holm": None, "repeats": 1,
                   "note": "1 repeat: no interval or test (needs --repeats 2 or more)"}]).to_csv(folder / "synthetic_effect.csv",
                                                                                         index=False)
    (folder / "plots").mkdir()
    figure, axes = plt.subplots(figsize=(2, 2))
    axes.plot([0, 1], [0, 1])
    figure.savefig(folder / "plots" / "value_of_synthetic_data.png")
    plt.close(figure)
    return record


def test_report_is_self_contained_and_marks_what_is_not_computed(tmp_path: Path) -> None:
    record = report_folder(tmp_path)
    extra = ReportSection("A later part", lambda context: "<p>added later</p>")
    page = render(ReportContext(tmp_path, SweepRecord.read(tmp_path)), [*SECTIONS, extra])
    parser = Links()
    parser.feed(page)
    assert parser.links and all(link.startswith("data:image/png;base64,") for link in parser.links)
    assert "link" not in parser.tags and "script" not in parser.tags
    assert "cannot be computed" in page and "1 repeat" in page
    # Absent data (no Grad-CAM maps, no quality table) is said, not left out.
    for title in ("Grad-CAM, real vs synthetic", "Synthetic images: samples and quality",
                  "Finalists on fresh seeds, on the test split"):
        section = page.split(title, 1)[1].split("</section>", 1)[0]
        assert "Not computed" in section, title
    assert "<p>added later</p>" in page and page.index("A later part") > page.index("Cost of the sweep")
    assert record.name in page and "page-break-inside: avoid" in page


def test_an_optional_part_that_fails_prints_one_line_and_the_report_says_why(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from search.diagnostics.optional_parts import GRADCAM, _attempt

    record = report_folder(tmp_path)

    def failing() -> str:
        raise RuntimeError("the best model has no feature map larger than 1x1\nsecond line")

    _attempt(record, GRADCAM, "Grad-CAM of the best model", failing)
    printed = capsys.readouterr().out.strip().splitlines()
    reason = "RuntimeError: the best model has no feature map larger than 1x1"
    assert printed == [f"Grad-CAM of the best model not computed: {reason}"]
    record.write(tmp_path)
    page = render(ReportContext(tmp_path, SweepRecord.read(tmp_path)), SECTIONS)
    section = page.split("Grad-CAM, real vs synthetic", 1)[1].split("</section>", 1)[0]
    assert f"Not computed: {reason}." in section
    _attempt(record, GRADCAM, "Grad-CAM of the best model", lambda: "4 maps")
    assert GRADCAM not in record.not_computed


def wandb_records(path: Path) -> list:
    """The records of a W&B run file: LevelDB log blocks of 32 KiB after a 7-byte W&B header, each a protobuf Record."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B", path
    position, block, pending, records = 7, 32768, b"", []
    while position + 7 <= len(data):
        if block - position % block < 7:
            position += block - position % block
            continue
        _, length, kind = struct.unpack("<IHB", data[position:position + 7])
        payload = data[position + 7:position + 7 + length]
        position += 7 + length
        pending = payload if kind in (1, 2) else pending + payload
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            records.append(record)
    return records


def test_offline_runs_are_written_after_the_sweep_and_readable_by_wandb_sync(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("WANDB_MODE", raising=False)
    sweep = SweepConfig(wandb={"mode": "offline"})
    histories = [
        TrialHistory(f"trial_{index}", {"optimizer.lr": 0.001 * (index + 1), "model.backbone": "basic_cnn"},
                     pd.DataFrame({"epoch": [1, 2, 3], "val_loss": [1.0, 0.8, 0.7 + index], "trial_id": f"trial_{index}",
                                   "hostname": "here"}), "search" if index else "twin")
        for index in range(2)
    ]
    plot = tmp_path / "curve.png"
    figure, axes = plt.subplots(figsize=(2, 2))
    figure.savefig(plot)
    plt.close(figure)
    tables = {"leaderboard": pd.DataFrame({"trial_id": ["trial_0", "trial_1"], "val_loss": [0.7, 1.7],
                                           "model.backbone": ["basic_cnn", None]})}
    written = write_wandb_runs(sweep, "demo", tmp_path, histories, tables, [plot])
    assert written == 3
    runs = sorted((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 3
    by_name = {}
    for run in runs:
        (run_file,) = run.glob("*.wandb")
        records = wandb_records(run_file)
        (start,) = [record.run for record in records if record.WhichOneof("record_type") == "run"]
        assert start.run_group == "demo"
        by_name[start.display_name] = (start.job_type, records)
        assert any(record.WhichOneof("record_type") == "exit" for record in records), run
    assert set(by_name) == {"trial_0", "trial_1", "demo-summary"}
    job_type, records = by_name["trial_1"]
    history = [record.history for record in records if record.WhichOneof("record_type") == "history"]
    assert job_type == "search" and len(history) == 3
    keys = {item.key or "/".join(item.nested_key) for item in history[0].item}
    assert "val_loss" in keys and "hostname" not in keys and "trial_id" not in keys
    assert by_name["trial_0"][0] == "twin"
    summary_files = list((runs[0].parent).glob("*/files/media/images/curve*.png"))
    assert summary_files

    listing = subprocess.run(
        [str(Path(sys.executable).parent / "wandb"), "sync", "--dry-run", *map(str, runs)],
        capture_output=True, text=True, timeout=120, cwd=tmp_path, env={**os.environ, "WANDB_SILENT": "false"},
    )
    assert listing.returncode == 0, listing.stderr
    for run in runs:
        assert run.name in listing.stdout + listing.stderr


def test_disabled_writes_nothing(tmp_path: Path) -> None:
    assert write_wandb_runs(SweepConfig(wandb={"mode": "disabled"}), "demo", tmp_path, [], {}, []) == 0
    assert not (tmp_path / "wandb").exists()


def test_the_terminal_effect_lines_say_once_why_one_repeat_has_no_interval() -> None:
    from search.report.terminal import printable_effects

    row = {"synthetic": "ddpm x0.5 add", "real_fraction": 1.0, "epochs_compared": 8, "effect": 0.05, "ci_low": None,
           "ci_high": None, "p_value": None, "p_holm": None, "repeats": 1,
           "note": "1 repeat: no interval or test (needs --repeats 2 or more)"}
    tested = {**row, "effect": -0.02, "ci_low": -0.05, "ci_high": 0.01, "p_value": 0.2, "p_holm": 0.4, "repeats": 3,
              "note": ""}
    lines = printable_effects(pd.DataFrame([row, tested])).splitlines()
    assert lines[0].split(": ", 1)[1] == "effect +0.0500, 8 epochs (1 repeat: no interval or test (needs --repeats 2 or more))"
    assert lines[1].split(": ", 1)[1] == "effect -0.0200 [-0.0500, +0.0100], p 0.2, Holm 0.4, 3 repeats, 8 epochs"
