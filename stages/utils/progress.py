"""Progress bars that suit both a terminal and a log file.

On a terminal the bar redraws often; in a log (Snakemake, DVC, CI) it writes a line at most
once a minute instead of flooding the file with carriage-return redraws.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any, TypeVar

from tqdm import tqdm

T = TypeVar("T")
LOG_INTERVAL_S = 60.0
TTY_INTERVAL_S = 0.2


def progress(iterable: Iterable[T], *, desc: str, enabled: bool = True, **kwargs: Any) -> tqdm:
    tty = sys.stderr.isatty()
    return tqdm(
        iterable,
        desc=desc,
        disable=not enabled,
        mininterval=TTY_INTERVAL_S if tty else LOG_INTERVAL_S,
        leave=False,
        dynamic_ncols=tty,
        **kwargs,
    )
