"""report.html: one self-contained page (images as data URIs, inline CSS) built from the report folder's files.

The page is a list of sections. A section is a title and a builder that reads what it needs from the report
folder and returns an HTML fragment, or None when its data is absent, which shows as "not computed". A new part
of the report is one builder function and one entry in SECTIONS.
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from search.report.files import REPORT_FILE, write_text
from search.settings.sweep_record import SweepRecord

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; color: #1d1d1f; max-width: 1100px;
       margin: 2em auto; padding: 0 1em; line-height: 1.45; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; } h2 { font-size: 1.25em; border-bottom: 1px solid #ccc; margin-top: 1.8em; }
h3 { font-size: 1.05em; }
table { border-collapse: collapse; font-size: 0.82em; margin: 0.6em 0; page-break-inside: avoid; }
.table-box { max-width: 100%; overflow-x: auto; margin: 0.6em 0; } .table-box table { margin: 0; }
p, li, figcaption, pre { overflow-wrap: anywhere; }
.answer { background: #f4f8fc; border-left: 3px solid #3b78b8; padding: 0.2em 1em 0.4em; }
.answer li { margin: 0.35em 0; }
th, td { border: 1px solid #d0d0d0; padding: 0.2em 0.45em; text-align: right; }
th { background: #f2f2f2; } td.text, th.text { text-align: left; }
figure { margin: 0.8em 0; page-break-inside: avoid; } figure img { max-width: 100%; height: auto; }
figcaption, .note { font-size: 0.85em; color: #555; }
.missing { color: #8a6d00; background: #fff8e1; padding: 0.4em 0.7em; border-left: 3px solid #e0b000; }
pre { background: #f7f7f7; padding: 0.6em; font-size: 0.85em; white-space: pre-wrap; }
section { page-break-inside: auto; }
@media print { body { max-width: none; margin: 0; } h2 { page-break-after: avoid; }
               .table-box { overflow-x: visible; } table { font-size: 0.7em; } }
"""


@dataclass(frozen=True)
class ReportContext:
    report_dir: Path
    record: SweepRecord

    def path(self, name: str) -> Path:
        return self.report_dir / name

    def csv(self, name: str) -> pd.DataFrame | None:
        path = self.path(name)
        return pd.read_csv(path) if path.is_file() else None

    def json(self, name: str) -> dict | None:
        path = self.path(name)
        return json.loads(path.read_text()) if path.is_file() else None


SectionBuilder = Callable[[ReportContext], str | None]


@dataclass(frozen=True)
class ReportSection:
    title: str
    build: SectionBuilder
    # Why the section may be absent, said after "Not computed: ".
    needs: str = ""


def escape(value: object) -> str:
    return html.escape(str(value))


def image(path: Path, caption: str = "") -> str:
    """An <img> whose source is the file itself, base64-encoded, so the page needs no other file."""
    encoded = base64.b64encode(path.read_bytes()).decode("ascii")
    mime = "image/png" if path.suffix.lower() == ".png" else "image/jpeg"
    figcaption = f"<figcaption>{escape(caption)}</figcaption>" if caption else ""
    return f'<figure><img alt="{escape(caption or path.stem)}" src="data:{mime};base64,{encoded}">{figcaption}</figure>'


def table(frame: pd.DataFrame, digits: int = 4) -> str:
    """A plain HTML table: numbers right-aligned to `digits` significant digits, text left-aligned, NaN blank. It sits
    in a box of the page's width that scrolls sideways when the table is wider (a leaderboard of many columns)."""
    head = "".join(f'<th class="{_kind(frame[column])}">{escape(column)}</th>' for column in frame.columns)
    body = []
    for _, row in frame.iterrows():
        cells = "".join(
            f'<td class="{_kind(frame[column])}">{escape(_format(row[column], digits))}</td>' for column in frame.columns
        )
        body.append(f"<tr>{cells}</tr>")
    return f'<div class="table-box"><table><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'


def _kind(column: pd.Series) -> str:
    return "number" if pd.api.types.is_numeric_dtype(column) else "text"


def _format(value: object, digits: int) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def render(context: ReportContext, sections: Sequence[ReportSection]) -> str:
    parts = []
    for number, section in enumerate(sections, start=1):
        fragment = section.build(context)
        if fragment is None:
            needs = f": {escape(section.needs)}" if section.needs else ""
            fragment = f'<p class="missing">Not computed{needs}.</p>'
        parts.append(f'<section id="section-{number}"><h2>{number}. {escape(section.title)}</h2>\n{fragment}\n</section>')
    title = f"Sweep {context.record.name}"
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
        f"<style>{STYLE}</style></head><body><h1>{escape(title)}</h1>\n" + "\n".join(parts) + "\n</body></html>\n"
    )


def write_report_html(context: ReportContext, sections: Sequence[ReportSection]) -> Path:
    return write_text(context.path(REPORT_FILE), render(context, sections))
