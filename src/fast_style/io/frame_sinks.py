"""Where live frames go: a video file, an image sequence, a window, or nowhere.

Every sink takes ``write(rgb, t, status)`` ((H, W, 3) uint8, the frame's source time in
seconds, a one-line status such as ``12.3 frames/s``) and ``close(publish)``:

- :class:`VideoFileSink` (``output=<file>.mp4``, .mkv, .mov, .webm, .avi): encoded as it
  goes under a temporary name (:func:`fast_style.io.files.owned_prefix`) and renamed to
  ``<file>`` by ``close(publish=True)``, which the live loop calls at the end of the
  source, at a limit, on Ctrl-C, SIGTERM and a stall, so the file is complete and
  playable; a failure removes the temporary file (after SIGKILL the next run into the
  folder sweeps it). Each frame keeps its source timestamp, relative to the first
  stylized one (time base 1/90000): dropped frames lengthen the frame before them, so
  the video plays at the pace the viewer saw, not at a fixed rate;
- :class:`SequenceSink` (``output=<folder>/``): ``frame_000001.jpg``, ... (or png), each
  written under a temporary name and renamed, numbered in the order stylized;
- :class:`WindowSink`: a tkinter window (standard library, with Pillow's ImageTk) with
  the status line under the frame; closing it or pressing q / Escape ends the run.
  :func:`window_problem` says why none can open (no ``$DISPLAY`` on Linux, no tkinter);
- :class:`DiscardSink` (``output=discard``): nothing, for measuring.
"""

from __future__ import annotations

import os
import sys
import tempfile
from fractions import Fraction
from pathlib import Path

import numpy as np

from fast_style.errors import FastStyleError, first_line
from fast_style.io.files import atomic_output, owned_prefix, sweep_stale
from fast_style.io.files import publish as publish_file
from fast_style.io.video import VideoError, choose_codec, require_av

LIVE_VIDEO_EXTENSIONS = (".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi")
TIME_BASE = Fraction(1, 90000)


class SinkError(FastStyleError):
    """An output that cannot be written as asked."""


class WindowClosed(Exception):  # noqa: N818 - not an error: the viewer ended the run
    """The viewer closed the window (or pressed q / Escape)."""


class DiscardSink:
    """Writes nothing."""

    target = None
    written = 0

    def write(self, rgb: np.ndarray, t: float, status: str = "") -> None:
        self.written += 1

    def close(self, publish: bool) -> None:
        pass


class VideoFileSink:
    """See the module docstring; ``fps``: the stream's nominal rate (the source's)."""

    def __init__(self, target: Path, *, size: tuple[int, int], fps: Fraction | None, codec: str = "auto",
                 crf: int = 18, overwrite: bool = False) -> None:
        from fast_style.io.video import _encoder_options

        av = require_av()
        self.target, self.overwrite, self.written = target, overwrite, 0
        self.codec = choose_codec(target, codec)
        target.parent.mkdir(parents=True, exist_ok=True)
        sweep_stale(target.parent)
        fd, tmp = tempfile.mkstemp(prefix=owned_prefix(f".{target.stem}"), suffix=target.suffix, dir=target.parent)
        os.close(fd)
        self.tmp = Path(tmp)
        try:
            self.output = av.open(str(self.tmp), "w")
            rate = Fraction(fps).limit_denominator(1001) if fps else Fraction(30)
            self.stream = self.output.add_stream(self.codec, rate=rate, options=_encoder_options(self.codec, crf))
            self.stream.width, self.stream.height = size
            self.stream.pix_fmt = "yuv420p" if size[0] % 2 == 0 and size[1] % 2 == 0 else "yuv444p"
            self.stream.time_base = TIME_BASE
            self.stream.codec_context.time_base = TIME_BASE
        except Exception as exc:
            self.tmp.unlink(missing_ok=True)
            raise VideoError(f"{target}: cannot be written ({first_line(exc)})") from exc
        self.first: float | None = None
        self.last_pts = -1

    def write(self, rgb: np.ndarray, t: float, status: str = "") -> None:
        av = require_av()
        if self.first is None:
            self.first = t
        pts = max(round((t - self.first) / TIME_BASE), self.last_pts + 1)  # strictly increasing
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        frame.pts, frame.time_base = pts, TIME_BASE
        self.last_pts = pts
        for packet in self.stream.encode(frame):
            self.output.mux(packet)
        self.written += 1

    def close(self, publish: bool) -> None:
        """Flush and close; with ``publish`` and at least one frame, rename into place, else remove."""
        try:
            try:
                if publish and self.written:
                    for packet in self.stream.encode():
                        self.output.mux(packet)
            finally:
                self.output.close()
            if publish and self.written:
                publish_file(self.tmp, self.target, replace=self.overwrite)
        finally:
            self.tmp.unlink(missing_ok=True)


class SequenceSink:
    """See the module docstring: ``folder``/frame_000001.<ext>, ... (``ext`` jpg or png)."""

    def __init__(self, folder: Path, *, ext: str = "jpg", quality: int = 95, overwrite: bool = False) -> None:
        self.folder, self.ext, self.quality, self.written = folder, ext, quality, 0
        self.target = folder
        if folder.exists() and not folder.is_dir():
            raise SinkError(f"output={folder}: a file, not a folder; end the name with / for an image sequence")
        folder.mkdir(parents=True, exist_ok=True)
        sweep_stale(folder)
        if not overwrite and any(folder.glob("frame_*.*")):
            raise SinkError(f"output={folder}/ already holds frame_*.* files; choose an empty folder or pass "
                            "overwrite=true")

    def write(self, rgb: np.ndarray, t: float, status: str = "") -> None:
        from PIL import Image

        self.written += 1
        options = {"quality": self.quality} if self.ext == "jpg" else {"compress_level": 1}
        with atomic_output(self.folder / f"frame_{self.written:06d}.{self.ext}") as tmp:
            Image.fromarray(rgb).save(tmp, format="JPEG" if self.ext == "jpg" else "PNG", **options)

    def close(self, publish: bool) -> None:
        pass


def window_problem() -> str | None:
    """Why no window can be opened here (None: one can)."""
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return "no display here ($DISPLAY is not set)"
    try:
        import tkinter  # noqa: F401

        from PIL import ImageTk  # noqa: F401
    except ImportError as exc:
        return f"no GUI toolkit: tkinter with Pillow's ImageTk is not installed ({first_line(exc)})"
    return None


class WindowSink:
    """See the module docstring; runs in the main thread (tkinter's rule), pumped on each frame."""

    target = None

    def __init__(self, title: str) -> None:
        import tkinter

        self.written = 0
        try:
            self.root = tkinter.Tk()
        except tkinter.TclError as exc:
            raise SinkError(f"cannot open a window ({first_line(exc)}); pass output=<file.mp4> or "
                            "output=<folder>/") from exc
        self.root.title(title)
        self.closed = False
        self.root.protocol("WM_DELETE_WINDOW", self._close)
        for key in ("<Escape>", "q"):
            self.root.bind(key, lambda _event: self._close())
        self.image = tkinter.Label(self.root)
        self.image.pack()
        self.status = tkinter.Label(self.root, anchor="w", font=("TkFixedFont", 10))
        self.status.pack(fill="x")
        self.photo = None

    def _close(self) -> None:
        self.closed = True

    def write(self, rgb: np.ndarray, t: float, status: str = "") -> None:
        from PIL import Image, ImageTk

        self.photo = ImageTk.PhotoImage(Image.fromarray(rgb))
        self.image.configure(image=self.photo)
        self.status.configure(text=status)
        self.written += 1
        self.pump()

    def pump(self) -> None:
        """Handle the window's events; :class:`WindowClosed` once the viewer closed it."""
        if not self.closed:
            self.root.update()
        if self.closed:
            raise WindowClosed

    def close(self, publish: bool) -> None:
        try:
            self.root.destroy()
        except Exception:  # noqa: BLE001, S110 - already gone
            pass


class Fanout:
    """Several sinks as one (a window and a file)."""

    def __init__(self, sinks: list) -> None:
        self.sinks = sinks
        self.target = next((s.target for s in sinks if s.target is not None), None)

    @property
    def written(self) -> int:
        return max(s.written for s in self.sinks)

    def write(self, rgb: np.ndarray, t: float, status: str = "") -> None:
        for sink in self.sinks:
            sink.write(rgb, t, status)

    def close(self, publish: bool) -> None:
        errors = []
        for sink in self.sinks:
            try:
                sink.close(publish)
            except Exception as exc:  # noqa: BLE001 - close every sink, then report the first problem
                errors.append(exc)
        if errors:
            raise errors[0]


def output_kind(output: str) -> str:
    """discard | folder | video of an ``output`` value; :class:`SinkError` for anything else."""
    text = str(output)
    if text == "discard":
        return "discard"
    path = Path(text)
    if text.endswith(("/", os.sep)) or path.is_dir():
        return "folder"
    suffix = path.suffix.lower()
    if suffix in LIVE_VIDEO_EXTENSIONS:
        return "video"
    if suffix == ".gif":
        raise SinkError(f"output={text}: a GIF holds every frame in memory until the end; write .mp4 (or a folder/)")
    raise SinkError(f"output={text}: write a video ({', '.join(LIVE_VIDEO_EXTENSIONS)}), a folder/ for an image "
                    "sequence, or discard")
