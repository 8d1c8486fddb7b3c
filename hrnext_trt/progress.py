"""Progress of long work that suits where the output goes.

On a terminal: a live tqdm bar. Anywhere else (a log file, a pipe, CI) a bar's carriage-return
redraws would pile up as thousands of lines, so the same calls give a sparse log line instead:
at most one every ``every_s`` seconds, and a closing line for work that lasted that long.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Iterable, TextIO

from tqdm import tqdm

log = logging.getLogger(__name__)

LOG_EVERY_S = 30.0  # seconds between two progress lines when the output is not a terminal


def progress_bar(iterable: Iterable | None = None, *, total: int | None = None, desc: str = "", unit: str = "it",
                 disable: bool = False, leave: bool = True, stream: TextIO | None = None,
                 every_s: float = LOG_EVERY_S):
    """A tqdm bar when ``stream`` (default stderr) is a terminal, else a :class:`SparseProgress`.

    Both offer iteration, ``update``, ``set_postfix``, ``close`` and ``with``.
    """
    stream = stream if stream is not None else sys.stderr
    if disable or is_terminal(stream):
        return tqdm(iterable, total=total, desc=desc, unit=unit, disable=disable, leave=leave, file=stream,
                    dynamic_ncols=True)
    return SparseProgress(iterable, total=total, desc=desc, unit=unit, every_s=every_s)


def is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


class SparseProgress:
    """Progress as log lines ``desc: n/total unit (p %), rate, postfix``, at most one per ``every_s``."""

    def __init__(self, iterable: Iterable | None = None, *, total: int | None = None, desc: str = "",
                 unit: str = "it", every_s: float = LOG_EVERY_S, clock=time.monotonic):
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)
        self.iterable, self.total, self.desc, self.unit = iterable, total, desc, unit
        self.every_s, self.clock = every_s, clock
        self.n, self.postfix, self.closed = 0, "", False
        self.start = self.last = clock()

    def __iter__(self):
        for item in self.iterable:
            yield item
            self.update()
        self.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def update(self, n: int = 1) -> None:
        self.n += n
        now = self.clock()
        if now - self.last >= self.every_s:
            self.last = now
            log.info(self._line(now))

    def set_postfix(self, **values) -> None:
        self.postfix = ", ".join(f"{k}={v}" for k, v in values.items())

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        now = self.clock()
        if now - self.start >= self.every_s:  # short work says nothing; long work says it ended
            log.info(self._line(now) + " (done)")

    def _line(self, now: float) -> str:
        elapsed = max(now - self.start, 1e-9)
        count = f"{self.n}/{self.total}" if self.total else f"{self.n}"
        share = f" ({100 * self.n / self.total:.0f} %)" if self.total else ""
        line = f"{self.desc}: {count} {self.unit}{share}, {self.n / elapsed:.3g} {self.unit}/s, {elapsed:.0f} s"
        return line + (f", {self.postfix}" if self.postfix else "")
