"""`python -m search.report <report folder>`: a finished sweep's report (leaderboard, synthetic effect, curves,
report.html) rebuilt from its stored Tune results and sweep.json, training nothing and not reading the test split."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from search.answer.analysis import analyse_sweep
from search.report.page import ReportContext, write_report_html
from search.report.sections import SECTIONS
from search.report.sweep_files import write_analysis
from search.settings.sweep_record import SweepRecord
from search.tuning.results import stored_results
from spaces import ConfigError


def write_html_report(record: SweepRecord, report_dir: Path) -> Path:
    return write_report_html(ReportContext(report_dir, record), SECTIONS)


def regenerate_report(report_dir: Path) -> Path:
    record = SweepRecord.read(report_dir)
    analysis = analyse_sweep(record, stored_results(record.experiment_path), stored_results(record.twins_path))
    write_analysis(record, analysis, report_dir)
    return write_html_report(record, report_dir)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m search.report",
        description="Rebuild a finished sweep's report (leaderboard, synthetic effect, curves, report.html) from "
        "its stored Ray Tune results; trains nothing and does not read the test split.",
    )
    parser.add_argument("folder", help="the sweep's report folder (holds sweep.json; default <storage>/<name>)")
    arguments = parser.parse_args(argv)
    try:
        path = regenerate_report(Path(arguments.folder).expanduser().resolve())
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"Report: {path}")
    return 0
