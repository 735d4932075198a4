"""What a live run did (fast_style.inference.live): its summary, resident memory and the
frames/s line on stderr."""

from __future__ import annotations

import resource
import sys
import time
from dataclasses import dataclass, field

PROGRESS_EVERY = 1.0  # seconds between progress lines (a terminal: one line rewritten)


@dataclass
class LiveSummary:
    """What a live run did (see the module docstring for the rates); ``ended``: source-end |
    max_frames | duration | window-closed | interrupted | terminated | stalled | failed."""

    source: str
    output: str | None
    runner: str
    realtime: bool
    frames_read: int = 0
    stylized: int = 0
    dropped: int = 0
    fps: float = 0.0
    source_fps: float = 0.0
    source_nominal_fps: float | None = None
    startup_s: float = 0.0
    seconds: float = 0.0
    ended: str = "source-end"
    why: str = ""
    buffer_capacity: int = 1
    buffer_max_held: int = 0
    rss_start_mb: float = 0.0
    rss_warm_mb: float = 0.0
    rss_end_mb: float = 0.0
    peak_rss_mb: float = 0.0
    size: list[int] = field(default_factory=list)

    def line(self) -> str:
        share = f" ({self.dropped / self.frames_read:.0%})" if self.frames_read else ""
        where = f"; wrote {self.output}" if self.output and self.stylized else ""
        return (f"live: read {self.frames_read} frames, stylized {self.stylized}, dropped {self.dropped}{share}; "
                f"{self.fps:.1f} frames/s stylized, source {self.source_fps:.1f} frames/s, start-up "
                f"{self.startup_s:.1f} s, {self.seconds:.1f} s in all ({self.ended}){where}")

    def failed(self) -> bool:
        return self.ended in ("stalled", "failed")


def rss_mb() -> float:
    """This process' resident memory now, MB (0 where /proc is missing)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * resource.getpagesize() / 2**20
    except OSError:
        return 0.0


def peak_mb() -> float:
    """This process' own peak resident memory, MB: /proc's VmHWM where there is one. Not
    ``ru_maxrss`` first: Linux carries that over from the parent across fork + exec, so a
    live.py started by a bigger process (a benchmark) would report the parent's peak."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024


class Progress:
    """The frames/s line on stderr: rewritten in place on a terminal, a line every ``every`` s otherwise."""

    def __init__(self, enabled: bool, every: float = PROGRESS_EVERY) -> None:
        self.enabled, self.every, self.last = enabled, every, time.monotonic()
        self.tty = sys.stderr.isatty()

    def show(self, text: str, *, force: bool = False) -> None:
        now = time.monotonic()
        if not self.enabled or (not force and now - self.last < (self.every if self.tty else 5 * self.every)):
            return
        self.last = now
        print(("\r" + text + "\x1b[K") if self.tty else text, end="" if self.tty else "\n", file=sys.stderr,
              flush=True)

    def done(self) -> None:
        if self.enabled and self.tty and self.last:
            print(file=sys.stderr, flush=True)
