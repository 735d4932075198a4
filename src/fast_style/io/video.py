"""Video and animated GIF in and out, frame by frame, through PyAV (FFmpeg's libraries).

:func:`map_video` decodes a clip's first video stream, hands its frames to a function in
batches of (N, H, W, 3) uint8 RGB arrays, and encodes what comes back into a new file,
so memory stays flat whatever the clip's length:

- **timing**: every output frame keeps its input frame's timestamp (pts, in the input
  stream's time base), so frame count, frame rate (variable ones too) and duration match;
- **audio**: every audio stream is copied packet by packet, unchanged (no re-encoding),
  when the output container can hold its codec; otherwise it is dropped with a warning;
- **codecs**: ``codec=auto`` is H.264 (libx264) for .mp4/.m4v/.mov/.mkv/.avi and VP9
  (libvpx-vp9) for .webm, at constant quality ``crf`` (x264 and VP9 scales: lower is
  better; 18 is visually lossless for x264). Frames of odd width or height, which 4:2:0
  chroma cannot hold, are encoded 4:4:4 (yuv444p), the others yuv420p;
- **GIF**: read frame by frame with each frame's own duration; written by Pillow with an
  adaptive palette per frame and the input's durations and loop count (a GIF's frames
  are kept in memory until it is written: GIFs are short);
- **atomic**: the file is written under a temporary name beside the target
  (:func:`fast_style.io.files.atomic_output`) and renamed at the end; a failure or an
  interruption leaves no output;
- **truncation**: a clip that ends before its header says (fewer frames than the stream
  declares, or the last frame well before the container's duration), or that fails to
  decode midway, is a :class:`VideoError`, never passed off as complete.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from fast_style.errors import FastStyleError, first_line
from fast_style.io.files import atomic_output

log = logging.getLogger(__name__)

VIDEO_EXTENSIONS = (".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".gif")
AUTO_CODECS = {".mp4": "libx264", ".m4v": "libx264", ".mov": "libx264", ".mkv": "libx264", ".avi": "libx264",
               ".webm": "libvpx-vp9"}
DEFAULT_CRF = 18
FrameBatch = np.ndarray  # (N, H, W, 3) uint8 RGB


class VideoError(FastStyleError):
    """A video that cannot be read or written as asked."""


def require_av():
    try:
        import av
    except ImportError as exc:  # pragma: no cover - av is a dependency; this guards broken installs
        raise VideoError("video needs PyAV: pip install av") from exc
    return av


def is_video(path: str | os.PathLike) -> bool:
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


@dataclass
class VideoInfo:
    """What the header says: size, average frame rate, frame count (None: not stored),
    duration in seconds (None: unknown) and whether it is the video stream's own (else
    the container's, which audio may lengthen), audio codec names."""

    width: int
    height: int
    fps: Fraction | None
    frames: int | None
    duration: float | None
    audio: list[str] = field(default_factory=list)
    stream_duration: bool = False


def _stream_duration(stream) -> float | None:
    """The video stream's duration in seconds: its header field (MP4, MOV) or the
    ``DURATION`` tag FFmpeg writes per stream in Matroska/WebM; None if neither."""
    if stream.duration:
        return float(stream.duration * stream.time_base)
    tag = stream.metadata.get("DURATION") or stream.metadata.get("duration")
    try:
        hours, minutes, seconds = str(tag).split(":")
        return int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    except ValueError:
        return None


def _open_input(path: Path):
    av = require_av()
    try:
        container = av.open(str(path))
    except FileNotFoundError as exc:
        raise VideoError(f"{path}: no such file") from exc
    except Exception as exc:  # noqa: BLE001 - FFmpeg's many error types: one line
        raise VideoError(f"{path}: not a readable video ({first_line(exc)})") from exc
    if not container.streams.video:
        container.close()
        raise VideoError(f"{path}: has no video stream")
    return container


def probe_video(path: str | os.PathLike) -> VideoInfo:
    """The clip's :class:`VideoInfo`, from its header (nothing is decoded)."""
    path = Path(path)
    with _open_input(path) as container:
        stream = container.streams.video[0]
        own = _stream_duration(stream)
        duration = own if own is not None else (container.duration / 1e6 if container.duration else None)
        return VideoInfo(
            width=stream.codec_context.width, height=stream.codec_context.height,
            fps=stream.average_rate, frames=stream.frames or None, duration=duration,
            audio=[a.codec_context.name for a in container.streams.audio], stream_duration=own is not None,
        )


def choose_codec(target: Path, codec: str) -> str:
    """The encoder for ``target``'s extension (``codec=auto``) or the one asked for, if FFmpeg has it."""
    av = require_av()
    suffix = target.suffix.lower()
    if suffix == ".gif":
        return "gif"
    name = AUTO_CODECS.get(suffix) if codec in ("auto", "", None) else str(codec)
    if name is None:
        raise VideoError(f"{target}: cannot write video with extension {suffix!r}; use one of "
                         f"{', '.join(VIDEO_EXTENSIONS)}")
    if name not in av.codecs_available:
        raise VideoError(f"codec={name}: not an encoder this FFmpeg build has; use codec=auto")
    return name


def _encoder_options(codec: str, crf: int) -> dict[str, str]:
    if codec in ("libx264", "libx265"):
        return {"crf": str(crf), "preset": "medium"}
    if codec == "libvpx-vp9":
        return {"crf": str(crf), "b": "0", "row-mt": "1", "deadline": "good", "cpu-used": "4"}
    return {}


@dataclass
class _Frame:
    rgb: np.ndarray  # (H, W, 3) uint8
    pts: int | None
    duration: int | None


def _decoded(container, path: Path, advance: Callable[[], None]) -> Iterator[tuple[str, object]]:
    """("video", _Frame) and ("audio", packet) in file order; VideoError if decoding fails."""
    video = container.streams.video[0]
    video.thread_type = "AUTO"
    count = 0
    try:
        for packet in container.demux(video, *container.streams.audio):
            if packet.stream.type == "audio":
                if packet.dts is not None:  # the demuxer's final empty packet has none
                    yield "audio", packet
                continue
            for frame in packet.decode():
                count += 1
                advance()
                yield "video", _Frame(frame.to_ndarray(format="rgb24"), frame.pts, frame.duration)
    except VideoError:
        raise
    except Exception as exc:  # noqa: BLE001 - corrupt data mid-stream
        raise VideoError(f"{path}: cannot be decoded after frame {count} ({first_line(exc)}); "
                         "the file is damaged") from exc


def _check_complete(path: Path, info: VideoInfo, decoded: int, last_end: float | None) -> None:
    """VideoError when fewer frames were decoded than the header promises."""
    if decoded == 0:
        raise VideoError(f"{path}: no frame could be decoded; the file is damaged or empty")
    if info.frames and decoded < info.frames:
        raise VideoError(f"{path}: only {decoded} of its {info.frames} frames could be decoded; the file is "
                         "truncated or damaged (nothing was written)")
    period = float(1 / info.fps) if info.fps else 0.1
    # the stream's own duration ends where its last frame does: any frame missing is a cut;
    # the container's may be longer by the audio (a few hundred ms in phone clips)
    slack = 0.5 * period if info.stream_duration else max(2 * period, 0.5)
    if info.duration and last_end is not None and info.duration - last_end > slack:
        raise VideoError(f"{path}: frames end at {last_end:.2f} s of its {info.duration:.2f} s; the file is "
                         "truncated or damaged (nothing was written)")


def map_video(
    source: str | os.PathLike,
    target: str | os.PathLike,
    transform: Callable[[FrameBatch], FrameBatch],
    *,
    out_size: tuple[int, int],
    batch_size: int = 4,
    codec: str = "auto",
    crf: int = DEFAULT_CRF,
    advance: Callable[[], None] = lambda: None,
) -> int:
    """Write ``target`` with every frame of ``source`` passed through ``transform``
    (batches of up to ``batch_size`` frames, (N, H, W, 3) uint8 -> (N, h, w, 3) uint8 with
    (w, h) = ``out_size``); audio copied. Returns the number of frames written.
    ``advance`` is called once per decoded frame (a progress bar)."""
    source, target = Path(source), Path(target)
    info = probe_video(source)
    codec = choose_codec(target, codec)
    with _open_input(source) as container, atomic_output(target) as tmp:
        time_base = container.streams.video[0].time_base
        sink = (_GifSink(tmp, time_base, container, name=target.name) if codec == "gif"
                else _VideoSink(tmp, codec, crf, out_size, container, info, name=target.name))
        written, last_end, pending = 0, None, []

        def flush() -> None:
            nonlocal written
            outputs = transform(np.stack([f.rgb for f in pending]))
            if outputs.shape[0] != len(pending) or tuple(outputs.shape[1:3]) != (out_size[1], out_size[0]):
                raise VideoError(f"{source}: frames came back as {tuple(outputs.shape)}, expected "
                                 f"({len(pending)}, {out_size[1]}, {out_size[0]}, 3)")
            for frame, rgb in zip(pending, outputs, strict=True):
                sink.frame(rgb, frame)
            written += len(pending)
            pending.clear()

        with sink:
            for kind, item in _decoded(container, source, advance):
                if kind == "audio":
                    sink.audio(item)
                    continue
                pending.append(item)
                if item.pts is not None:
                    length = float(item.duration * time_base) if item.duration else float(1 / (info.fps or 25))
                    last_end = float(item.pts * time_base) + length
                if len(pending) >= batch_size:
                    flush()
            if pending:
                flush()
            _check_complete(source, info, written, last_end)
    return written


class _VideoSink:
    """An output container: one encoded video stream and the input's audio streams, copied."""

    def __init__(self, path: Path, codec: str, crf: int, size: tuple[int, int], source, info: VideoInfo, *, name: str):
        av = require_av()
        self.output = av.open(str(path), "w")
        in_video = source.streams.video[0]
        rate = in_video.average_rate or info.fps or Fraction(25)
        self.video = self.output.add_stream(codec, rate=rate, options=_encoder_options(codec, crf))
        self.video.width, self.video.height = size
        self.video.pix_fmt = "yuv420p" if size[0] % 2 == 0 and size[1] % 2 == 0 else "yuv444p"
        self.video.time_base = in_video.time_base
        self.video.codec_context.time_base = in_video.time_base  # keep every pts exactly (variable rates too)
        self.time_base = in_video.time_base
        self.audio_map = {}
        for stream in source.streams.audio:
            try:
                self.audio_map[stream.index] = self.output.add_stream_from_template(stream)
            except Exception as exc:  # noqa: BLE001 - e.g. AAC into WebM
                log.warning("%s: audio stream %d (%s) cannot be stored in a %s file and is left out (%s)",
                            name, stream.index, stream.codec_context.name, path.suffix, first_line(exc))
        self.index = 0

    def __enter__(self) -> _VideoSink:
        return self

    def frame(self, rgb: np.ndarray, source: _Frame) -> None:
        av = require_av()
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        frame.pts = source.pts if source.pts is not None else self.index
        frame.time_base = self.time_base
        self.index += 1
        for packet in self.video.encode(frame):
            self.output.mux(packet)

    def audio(self, packet) -> None:
        stream = self.audio_map.get(packet.stream.index)
        if stream is not None:
            packet.stream = stream
            self.output.mux(packet)

    def __exit__(self, kind, *exc: object) -> None:
        try:
            if kind is None:
                for packet in self.video.encode():
                    self.output.mux(packet)
        finally:
            self.output.close()


class _GifSink:
    """An animated GIF written by Pillow at the end; each frame lasts until the next
    frame's timestamp (the last one its own duration), in whole milliseconds."""

    def __init__(self, path: Path, time_base: Fraction, source, *, name: str):
        self.path, self.time_base = path, time_base
        self.frames: list = []
        self.starts: list[float] = []
        self.last_duration: float | None = None
        if source.streams.audio:
            log.warning("%s: a GIF has no sound; the audio is left out", name)

    def __enter__(self) -> _GifSink:
        return self

    def frame(self, rgb: np.ndarray, source: _Frame) -> None:
        from PIL import Image

        self.frames.append(Image.fromarray(np.ascontiguousarray(rgb), "RGB"))
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
