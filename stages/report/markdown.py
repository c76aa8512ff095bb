"""Markdown tables for the generated reports."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from stages.utils.io import atomic_open

MISSING = "–"


def markdown_table(frame: pd.DataFrame) -> str:
    """``frame`` as a markdown table; a missing number (None or NaN) shows as `–`."""
    return frame.astype(object).where(frame.notna(), None).to_markdown(index=False, missingval=MISSING)


def write_table(out: Path, frame: pd.DataFrame, markdown: str) -> None:
    """``out``.csv (the frame) and ``out``.md (the rendered report), each written atomically."""
    with atomic_open(out.with_suffix(".csv")) as fh:
        frame.to_csv(fh, index=False, lineterminator="\n")
    with atomic_open(out.with_suffix(".md")) as fh:
        fh.write(markdown)
