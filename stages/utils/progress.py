"""Progress that suits both a terminal and a log file.

On a terminal: a tqdm bar that redraws often. In a log (Snakemake's job logs, DVC, CI), bars
show up as a lone "0%" and, with two jobs writing to one terminal, interleave; so there each
task writes whole lines through ``logging`` instead, each naming its task: one when it starts,
one at most every ``LOG_INTERVAL_S`` with count, share, rate and time left, and one when it
ends. ``BACKDROP_PROGRESS=lines|bar`` forces either form.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any, Generic, TypeVar

from tqdm import tqdm

T = TypeVar("T")
LOG_INTERVAL_S = 60.0
TTY_INTERVAL_S = 0.2
log = logging.getLogger("stages.progress")


def _as_lines() -> bool:
    forced = os.environ.get("BACKDROP_PROGRESS", "")
    if forced in ("lines", "bar"):
        return forced == "lines"
    return not sys.stderr.isatty()


class LineProgress(Generic[T]):
    """The subset of tqdm's interface the stages use (iterate, ``update``, ``set_postfix``,
    ``close``), written as log lines."""

    def __init__(
        self,
        iterable: Iterable[T] | None,
        *,
        desc: str,
        total: int | None = None,
        unit: str = "it",
        interval: float = LOG_INTERVAL_S,
        clock: Any = time.monotonic,
    ):
        self.iterable = iterable
        self.desc = desc
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)  # type: ignore[arg-type]
        self.total = total
        self.unit = unit
        self.n = 0
        self.postfix = ""
        self._interval = interval
        self._clock = clock
        self._start = clock()
        self._last = self._start
        self._closed = False
        log.info("%s: started (%s %s)", desc, "?" if total is None else total, unit)

    def __iter__(self) -> Iterator[T]:
        assert self.iterable is not None, "LineProgress without an iterable: call update()"
        try:
            for item in self.iterable:
                yield item
                self.update()
        finally:
            self.close()

    def _line(self, what: str) -> str:
        elapsed = self._clock() - self._start
        rate = self.n / elapsed if elapsed > 0 else 0.0
        done = (
            f"{self.n}"
            if self.total is None
            else f"{self.n}/{self.total} ({100 * self.n / max(self.total, 1):.0f} %)"
        )
        left = ""
        if self.total is not None and rate > 0 and what == "at":
            left = f", about {(self.total - self.n) / rate:.0f} s left"
        extra = f", {self.postfix}" if self.postfix else ""
        return (
            f"{self.desc}: {what} {done} {self.unit}, {rate:.3g} {self.unit}/s, {elapsed:.0f} s{left}{extra}"
        )

    def update(self, n: int = 1) -> None:
        self.n += n
        now = self._clock()
        if now - self._last >= self._interval:
            self._last = now
            log.info("%s", self._line("at"))

    def set_postfix(self, refresh: bool = True, **values: Any) -> None:
        self.postfix = ", ".join(f"{k} {v}" for k, v in values.items())

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            log.info("%s", self._line("done"))


def progress(iterable: Iterable[T] | None, *, desc: str, enabled: bool = True, **kwargs: Any) -> Any:
    """A progress bar on a terminal, progress lines in a log; ``enabled`` False shows nothing."""
    if enabled and _as_lines():
        return LineProgress(iterable, desc=desc, total=kwargs.get("total"), unit=kwargs.get("unit", "it"))
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
