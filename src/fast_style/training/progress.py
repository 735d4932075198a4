"""Progress of long one-time passes (header scan, data preparation) on stderr.

On a terminal: a rich progress bar. Elsewhere (a log file, a SLURM job): one log
line every ``every`` seconds and one at the end, so a long pass is never silent.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable


class progress:
    """``with progress(total, label=..., enabled=...) as advance: advance(n)``.

    ``enabled=False`` gives a no-op ``advance``; ``total`` is the number of items.
    """

    def __init__(self, total: int, *, label: str, enabled: bool = True, every: float = 15.0,
                 logger: logging.Logger | None = None) -> None:
        self.total, self.label, self.enabled, self.every = total, label, enabled, every
        self.log = logger or logging.getLogger("fast_style")
        self.bar = None
        self.done = 0
        self.start = self.last = time.monotonic()

    def __enter__(self) -> Callable[[int], None]:
        if not self.enabled:
            return lambda n=1: None
        if sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
            )

            self.bar = Progress(TextColumn(self.label), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                                console=Console(stderr=True))
            self.bar.__enter__()
            task = self.bar.add_task(self.label, total=self.total)
            return lambda n=1: self.bar.advance(task, n)
        return self._log_line

    def _log_line(self, n: int = 1) -> None:
        self.done += n
        now = time.monotonic()
        if now - self.last >= self.every:
            self.last = now
            self.log.info("%s: %d/%d (%.0f s)", self.label, self.done, self.total, now - self.start)

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)
        elif self.enabled and self.done and self.last != self.start:
            self.log.info("%s: %d/%d done (%.0f s)", self.label, self.done, self.total, time.monotonic() - self.start)
