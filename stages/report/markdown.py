"""Markdown tables for the generated reports."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from stages.utils.io import atomic_open

MISSING = "–"


def markdown_table(frame: pd.DataFrame) -> str:
    """``frame`` as a markdown table; a missing number (None or NaN) shows as `–`."""
    return frame.astype(object).where(frame.notna(), None).to_markdown(index=False, missingval=MISSING)


def text_table(frame: pd.DataFrame, text_columns: int | None = None) -> str:
    """``frame`` with cells already formatted as a markdown table. Unlike markdown_table, cells
    are not parsed back into numbers, which would drop trailing zeros ("85.0" -> "85").
    ``text_columns``: left-align that many leading columns and right-align the rest (numbers)."""
    align = None
    if text_columns is not None:
        align = ["left"] * text_columns + ["right"] * (len(frame.columns) - text_columns)
    return str(frame.to_markdown(index=False, disable_numparse=True, colalign=align))


def write_table(out: Path, frame: pd.DataFrame, markdown: str) -> None:
    """``out``.csv (the frame) and ``out``.md (the rendered report), each written atomically."""
    with atomic_open(out.with_suffix(".csv")) as fh:
        frame.to_csv(fh, index=False, lineterminator="\n")
    with atomic_open(out.with_suffix(".md")) as fh:
        fh.write(markdown)
