"""Animated GIF output: frames held as palette images until the file is written, within a bound.

Pillow writes a GIF in one go, so a GIF being written holds all of its frames: as palette
images (one byte a pixel; Pillow's own adaptive palette per frame, the one it would make
when saving RGB frames), at most :data:`GIF_MAX_PIXELS` pixels in all. A longer clip is a
:class:`GifTooLongError` (one line: write a video instead), refused before any work when
the input's header counts its frames (:func:`check_gif_budget`), else when the frame
past the bound arrives; the temporary output is then removed by its writer
(:func:`fast_style.io.files.atomic_output`).
"""

from __future__ import annotations

import logging
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from fast_style.errors import FastStyleError

log = logging.getLogger(__name__)

GIF_MAX_PIXELS = 1 << 29  # 512 M pixels: what a GIF being written may hold, one byte each (palette images)


class GifTooLongError(FastStyleError):
    """A clip with more frames than a GIF being written may hold."""


def check_gif_budget(target: Path, frames: int, size: tuple[int, int]) -> None:
    """:class:`GifTooLongError` when ``frames`` frames of ``size`` (width, height) are more
    than a GIF may hold (:data:`GIF_MAX_PIXELS`)."""
    if frames * size[0] * size[1] > GIF_MAX_PIXELS:
        raise GifTooLongError(f"{target.name}: a GIF holds every frame until it is written, and {frames} frames "
                              f"of {size[0]}x{size[1]} px are above GIF_MAX_PIXELS={GIF_MAX_PIXELS} pixels; write a "
                              "video instead (format=mp4)")


class GifSink:
    """An animated GIF written by Pillow at the end; each frame lasts until the next
    frame's timestamp (the last one its own duration), in whole milliseconds. Frames are
    held as palette images (Pillow's own adaptive palette per frame, as it would make
    when saving RGB), at most :data:`GIF_MAX_PIXELS` pixels in all."""

    def __init__(self, path: Path, time_base: Fraction, source, *, name: str, size: tuple[int, int]):
        self.path, self.time_base, self.name, self.size = path, time_base, name, size
        self.frames: list = []
        self.starts: list[float] = []
        self.last_duration: float | None = None
        if source.streams.audio:
            log.warning("%s: a GIF has no sound; the audio is left out", name)

    def __enter__(self) -> GifSink:
        return self

    def frame(self, rgb: np.ndarray, source: Any) -> None:
        """Keep ``rgb`` (H, W, 3) uint8 with the timing of ``source`` (a decoded frame's
        ``pts`` and ``duration`` in the input's time base)."""
        check_gif_budget(Path(self.name), len(self.frames) + 1, self.size)
        image = Image.fromarray(np.ascontiguousarray(rgb), "RGB")
        self.frames.append(image.convert("P", palette=Image.Palette.ADAPTIVE))
        start = float(source.pts * self.time_base) if source.pts is not None else len(self.starts) * 0.04
        self.starts.append(start)
        self.last_duration = float(source.duration * self.time_base) if source.duration else None

    def audio(self, packet) -> None:
        pass

    def durations_ms(self) -> list[int]:
        """GIF stores centiseconds: round the frames' start times (not each duration), so
        that a 24 fps clip keeps its total length (4, 4, 5, 4, 4, 4 ... cs)."""
        gaps = [b - a for a, b in zip(self.starts, self.starts[1:], strict=False)]
        end = self.starts[-1] + (self.last_duration or (gaps[-1] if gaps else 0.04))
        ticks = [round(100 * (t - self.starts[0])) for t in [*self.starts, end]]
        return [10 * max(1, b - a) for a, b in zip(ticks, ticks[1:], strict=False)]

    def __exit__(self, kind, *exc: object) -> None:
        if kind is None and self.frames:
            first, *rest = self.frames
            first.save(self.path, format="GIF", save_all=True, append_images=rest, duration=self.durations_ms(),
                       loop=0, optimize=False)
