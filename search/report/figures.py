"""Matplotlib for every figure the project draws: its non-interactive backend chosen once, here, and a figure
saved whole into the report folder (or wherever a command puts it)."""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from search.report.files import write_bytes  # noqa: E402

__all__ = ["plt", "save_figure"]


def save_figure(figure: plt.Figure, path: Path, dpi: int = 120) -> Path:
    """Writes the figure as a PNG (whole: a reader never sees half of it) and closes it."""
    buffer = io.BytesIO()
    try:
        figure.savefig(buffer, format="png", dpi=dpi)
    finally:
        plt.close(figure)
    return write_bytes(path, buffer.getvalue())
