"""Progress of long passes on stderr: files and frames being stylized, headers checked,
shards prepared.

``with progress(total, label=..., enabled=...) as advance: advance(n)``. On a terminal,
or always when no ``logger`` is given: a rich progress bar (``total`` None: a count
without an end; ``unit`` names what is counted). With a ``logger`` and no terminal (a
log file, a SLURM job): one log line every ``every`` seconds and one at the end, so a
long pass is never silent. ``enabled=False`` gives a no-op ``advance``.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable


class progress:
    """See the module docstring."""

    def __init__(self, total: int | None, *, label: str, enabled: bool = True, unit: str = "",
                 logger: logging.Logger | None = None, every: float = 15.0) -> None:
        self.total, self.label, self.enabled, self.unit = total, label, enabled, unit
        self.log, self.every = logger, every
        self.bar = None
        self.done = 0
        self.start = self.last = time.monotonic()

    def __enter__(self) -> Callable[..., None]:
        if not self.enabled:
            return lambda n=1: None
        if self.log is not None and not sys.stderr.isatty():
            return self._log_line
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        columns = [TextColumn(self.label), BarColumn(), MofNCompleteColumn(),
                   *([TextColumn(self.unit)] if self.unit else []), TimeRemainingColumn()]
        self.bar = Progress(*columns, console=Console(stderr=True), transient=False)
        self.bar.__enter__()
        task = self.bar.add_task(self.label, total=self.total)
        return lambda n=1: self.bar.advance(task, n)

    def _log_line(self, n: int = 1) -> None:
        self.done += n
        now = time.monotonic()
        if now - self.last >= self.every:
            self.last = now
            self.log.info("%s: %d/%s (%.0f s)", self.label, self.done, self.total, now - self.start)

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)
        elif self.enabled and self.log is not None and self.done and self.last != self.start:
            self.log.info("%s: %d/%s done (%.0f s)", self.label, self.done, self.total, time.monotonic() - self.start)
