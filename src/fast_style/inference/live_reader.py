"""The reader side of the live loop (fast_style.inference.live): a bounded buffer of the
newest frames and the thread that fills it from a frame source, in real time for files."""

from __future__ import annotations

import collections
import threading
import time
from typing import Any

from fast_style.io.frame_sources import FrameSource


class FrameBuffer:
    """At most ``capacity`` frames between the reader and the stylizer.

    ``drop=True``: :meth:`put` never waits; a full buffer loses its oldest frame (counted in
    ``dropped``). ``drop=False``: :meth:`put` waits for a free slot (or ``stop``).
    ``max_held``: the most frames it ever held at once (never above ``capacity``)."""

    def __init__(self, capacity: int = 1, *, drop: bool = True) -> None:
        self.capacity, self.drop = int(capacity), drop
        self.items: collections.deque = collections.deque()
        self.cond = threading.Condition()
        self.dropped = self.put_count = self.max_held = 0
        self.last_put = 0.0  # time.monotonic() of the latest put
        self.ended = False
        self.error: BaseException | None = None
        self.stop = threading.Event()

    def put(self, item: Any) -> bool:
        """Add ``item``; False when the buffer was stopped (the reader should end)."""
        with self.cond:
            while not self.drop and len(self.items) >= self.capacity and not self.stop.is_set():
                self.cond.wait(0.1)
            if self.stop.is_set():
                return False
            if len(self.items) >= self.capacity:
                self.items.popleft()
                self.dropped += 1
            self.items.append(item)
            self.put_count += 1
            self.last_put = time.monotonic()
            self.max_held = max(self.max_held, len(self.items))
            self.cond.notify_all()
            return True

    def end(self, error: BaseException | None = None) -> None:
        """The reader is done (``error``: why it stopped early)."""
        with self.cond:
            self.ended, self.error = True, error
            self.cond.notify_all()

    def get(self, timeout: float) -> Any | None:
        """The newest frame (older ones are dropped), waiting up to ``timeout`` s; None when
        the reader has ended and nothing is left, or on timeout (check :attr:`ended`)."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while not self.items and not self.ended:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.cond.wait(min(left, 0.1))  # short waits: Ctrl-C and SIGTERM get through
            if not self.items:
                return None
            item = self.items.pop()
            self.dropped += len(self.items) if self.drop else 0
            if not self.drop and self.items:  # no-drop mode: oldest first, nothing lost
                self.items.append(item)
                item = self.items.popleft()
            elif self.drop:
                self.items.clear()
            self.cond.notify_all()
            return item

    def close(self) -> None:
        self.stop.set()
        with self.cond:
            self.cond.notify_all()


def read_frames(source: FrameSource, buffer: FrameBuffer, *, realtime: bool, ready: threading.Event) -> None:
    """The reader thread (see the module docstring)."""
    error = None
    try:
        start = first_t = None
        for frame in source.frames():
            if buffer.stop.is_set():
                break
            if realtime and not source.live:
                if first_t is None:
                    first_t = frame.t
                else:
                    if start is None:  # the clip's clock starts once the runner is warm
                        while not ready.wait(0.1) and not buffer.stop.is_set():
                            pass
                        start = time.monotonic() - (frame.t - first_t) + _frame_period(source)
                    wait = start + (frame.t - first_t) - time.monotonic()
                    if wait > 0 and buffer.stop.wait(wait):
                        break
            if not buffer.put(frame):
                break
    except BaseException as exc:  # noqa: BLE001 - handed to the stylizer, which reports it
        error = exc
    buffer.end(error)


def _frame_period(source: FrameSource) -> float:
    return float(1 / source.fps) if source.fps else 1 / 30
