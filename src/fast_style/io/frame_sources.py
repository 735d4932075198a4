"""Where live frames come from: a camera, a video file or a stream URL, opened by PyAV.

:func:`open_source` reads ``source`` as:

- a camera: a bare index (``0``, ``1``) or a device path (``/dev/video0``). Linux opens
  ``/dev/video<N>`` with FFmpeg's ``v4l2`` input, macOS device ``<N>`` with
  ``avfoundation``; Windows' ``dshow`` names cameras, not numbers: give
  ``source='video=<camera name>'``. A camera that does not exist is one line naming the
  ones that do;
- a stream: a URL (``rtsp://``, ``rtmp://``, ``http(s)://``, ``udp://``, ``tcp://``,
  ``srt://``), opened with a timeout, so a silent server is an error, not a hang;
- otherwise a video file, which must exist and hold a video stream (a text file or a
  still photo is one line).

A :class:`FrameSource` yields :class:`LiveFrame` s, (the decoded frame, its time in
seconds on the source's clock) in decoding order; it is read by one thread
(:mod:`fast_style.inference.live`). Decoded frames stay PyAV frames until
:meth:`LiveFrame.rgb` converts one to a (H, W, 3) uint8 array, so frames that are dropped
are never converted.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from glob import glob
from pathlib import Path

import numpy as np

from fast_style.errors import FastStyleError, first_line
from fast_style.io.video import require_av

STREAM_SCHEMES = ("rtsp", "rtsps", "rtmp", "rtmps", "http", "https", "udp", "tcp", "srt", "rtp", "mms")
STILL_FORMATS = ("image2", "png_pipe", "jpeg_pipe", "webp_pipe", "bmp_pipe", "tiff_pipe")


class SourceError(FastStyleError):
    """A source that cannot be opened or read as a video."""


@dataclass
class LiveFrame:
    """One decoded frame and its time ``t`` (seconds on the source's clock)."""

    frame: object  # av.VideoFrame
    t: float

    def rgb(self) -> np.ndarray:
        """(H, W, 3) uint8 RGB."""
        return self.frame.to_ndarray(format="rgb24")


@dataclass
class FrameSource:
    """An opened source: ``kind`` camera | stream | file, ``label`` (how messages name it),
    ``width`` x ``height``, ``fps`` (its nominal rate; None: unknown); iterate
    :meth:`frames`, then :meth:`close`."""

    container: object
    kind: str
    label: str
    width: int
    height: int
    fps: Fraction | None
    stream_index: int = 0
    decoded: int = field(default=0, init=False)

    @property
    def live(self) -> bool:
        """Whether frames come at their own pace (a camera or a stream), not when read (a file)."""
        return self.kind != "file"

    def frames(self) -> Iterator[LiveFrame]:
        """Every frame in order; :class:`SourceError` (one line) when decoding fails midway."""
        stream = self.container.streams[self.stream_index]
        stream.thread_type = "AUTO"
        base = stream.time_base
        count = 0
        try:
            for frame in self.container.decode(stream):
                if frame.pts is not None and base is not None:
                    t = float(frame.pts * base)
                else:
                    t = count / float(self.fps or 30)
                count += 1
                self.decoded = count
                yield LiveFrame(frame, t)
        except Exception as exc:  # noqa: BLE001 - FFmpeg's many error types: one line
            raise SourceError(f"{self.label}: cannot be read after frame {count} ({first_line(exc)})") from exc

    def close(self) -> None:
        try:
            self.container.close()
        except Exception:  # noqa: BLE001, S110 - closing a broken source must not hide why it broke
            pass


def classify(source: str) -> tuple[str, str, str | None]:
    """(kind, what FFmpeg opens, input format) of ``source`` (see the module docstring)."""
    text = str(source).strip()
    if re.fullmatch(r"\d+", text):
        index = int(text)
        if sys.platform == "darwin":
            return "camera", f"{index}:none", "avfoundation"
        if sys.platform.startswith("win"):
            raise SourceError(f"source={text}: on Windows cameras are opened by name: "
                              "source='video=<camera name>' (ffmpeg -list_devices true -f dshow -i dummy lists them)")
        return "camera", f"/dev/video{index}", "v4l2"
    if text.startswith("/dev/video"):
        return "camera", text, "v4l2"
    if text.startswith("video=") and sys.platform.startswith("win"):
        return "camera", text, "dshow"
    scheme = text.split("://", 1)[0].lower() if "://" in text else ""
    if scheme in STREAM_SCHEMES:
        return "stream", text, None
    if scheme and scheme != "file":
        raise SourceError(f"source={text}: {scheme}:// is not a stream this reads; use one of "
                          f"{', '.join(s + '://' for s in STREAM_SCHEMES)}, a camera index or a video file")
    return "file", text.removeprefix("file://"), None


def _cameras() -> str:
    found = sorted(glob("/dev/video*"))
    return ", ".join(found) if found else "none"


def open_source(source: str | os.PathLike, *, stall_timeout: float = 10.0, source_format: str | None = None,
                source_options: dict[str, str] | None = None) -> FrameSource:
    """The opened :class:`FrameSource` of ``source``; :class:`SourceError` (one line) when it
    cannot be: no such camera or file, no video stream, a still image, a silent server
    (nothing within ``stall_timeout`` seconds)."""
    av = require_av()
    kind, target, guessed = classify(str(source))
    fmt = source_format or guessed
    label = {"camera": f"camera {source}", "stream": str(source)}.get(kind, str(target))
    if kind == "camera" and fmt == "v4l2" and not os.path.exists(target):
        raise SourceError(f"source={source}: no camera {target} on this machine (cameras here: {_cameras()}); "
                          "give another index, a video file or a stream URL")
    if kind == "file":
        path = Path(target)
        if not path.exists():
            raise SourceError(f"source={source}: no such file (give a video file, a camera index or a stream URL)")
        if path.is_dir():
            raise SourceError(f"source={source}: a folder; live.py plays one video (stylize.py input=<folder> "
                              "stylizes a folder of photos and clips)")
    timeout = None if kind == "file" else (float(stall_timeout), float(stall_timeout))
    try:
        container = av.open(target, format=fmt, options=dict(source_options or {}), timeout=timeout)
    except Exception as exc:  # noqa: BLE001 - FFmpeg's many error types: one line
        why = first_line(exc)
        if "exit requested" in why.lower():
            why = f"nothing came within stall_timeout={stall_timeout:g} s"
        what = "a readable video" if kind == "file" else f"an open {kind}"
        raise SourceError(f"source={source}: not {what} ({why})") from exc
    streams = [s for s in container.streams.video if not s.disposition & av.stream.Disposition.attached_pic]
    if not streams:
        container.close()
        raise SourceError(f"source={source}: has no video stream (a sound file?); give a video, a camera or a stream")
    if kind == "file" and container.format.name in STILL_FORMATS:
        container.close()
        raise SourceError(f"source={source}: a still image, not a video; stylize.py input={source} stylizes a photo")
    stream = streams[0]
    rate = stream.average_rate or stream.base_rate or None
    return FrameSource(container, kind, label, stream.codec_context.width, stream.codec_context.height,
                       Fraction(rate) if rate else None, stream.index)
