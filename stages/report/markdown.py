"""Markdown tables for the generated reports."""

from __future__ import annotations

import pandas as pd

MISSING = "–"


def markdown_table(frame: pd.DataFrame) -> str:
    """``frame`` as a markdown table; a missing number (None or NaN) shows as `–`."""
    return frame.astype(object).where(frame.notna(), None).to_markdown(index=False, missingval=MISSING)
