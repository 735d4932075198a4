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
  decode midway, is a :class:`VideoError`, never passed off as complete;
- **streams**: the first video stream that is not a cover picture is stylized; others
  are left out with one warning naming them; a file with none (sound only, or no frames
  at all) is a :class:`VideoError`;
- **sizes**: the frame size is read from the header before anything is decoded (a GIF's
  from its logical screen when FFmpeg refuses it, e.g. 60000x60000), so callers can
  refuse huge ones first; a frame of another size than the header's (a stream that
  changes size midway) is a :class:`VideoError` before it is converted;
- **GIF memory**: a GIF being written holds its frames as palette images (one byte a
  pixel) until the end, at most :data:`fast_style.io.gif.GIF_MAX_PIXELS` pixels in all
  (:mod:`fast_style.io.gif`); longer clips are refused with one line that says to write a
  video instead.
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
from fast_style.io.gif import GifSink, check_gif_budget

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
    the container's, which audio may lengthen), audio codec names; ``index`` of the video
    stream read and ``others``, the video streams left out."""

    width: int
    height: int
    fps: Fraction | None
    frames: int | None
    duration: float | None
    audio: list[str] = field(default_factory=list)
    stream_duration: bool = False
    index: int = 0
    others: list[tuple[int, int, int]] = field(default_factory=list)  # (index, width, height) left out


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
    if _video_streams(container):
        return container
    cover = require_av().stream.Disposition.attached_pic
    kinds = ", ".join(f"cover picture {stream.codec_context.name}" if stream.disposition & cover
                      else f"{stream.type} {stream.codec_context.name}" for stream in container.streams)
    container.close()
    raise VideoError(f"{path}: has no video stream to stylize ("
                     + (f"its streams: {kinds})" if kinds else "it holds no stream at all: no frame, no sound)"))


def _video_streams(container) -> list:
    """The container's video streams that hold a clip: cover pictures (attached_pic) left out."""
    av = require_av()
    cover = av.stream.Disposition.attached_pic
    return [stream for stream in container.streams.video if not stream.disposition & cover]


def _declared_size(path: Path, stream) -> tuple[int, int]:
    """(width, height) from the header. FFmpeg reports 0x0 for a size it refuses to
    allocate; a GIF's logical screen is then read by Pillow (no pixels decoded)."""
    width, height = stream.codec_context.width, stream.codec_context.height
    if width and height:
        return width, height
    if path.suffix.lower() == ".gif":
        from fast_style.io.images import image_header

        (width, height), _ = image_header(path)
        if width and height:
            return width, height
    raise VideoError(f"{path}: its header declares no usable frame size; the file is damaged or its frames are "
                     "larger than FFmpeg decodes")


def probe_video(path: str | os.PathLike) -> VideoInfo:
    """The clip's :class:`VideoInfo`, from its header (nothing is decoded)."""
    path = Path(path)
    with _open_input(path) as container:
        stream, *others = _video_streams(container)
        own = _stream_duration(stream)
        duration = own if own is not None else (container.duration / 1e6 if container.duration else None)
        width, height = _declared_size(path, stream)
        return VideoInfo(
            width=width, height=height,
            fps=stream.average_rate, frames=stream.frames or None, duration=duration,
            audio=[a.codec_context.name for a in container.streams.audio], stream_duration=own is not None,
            index=stream.index,
            others=[(o.index, o.codec_context.width, o.codec_context.height) for o in others],
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


def _decoded(container, path: Path, info: VideoInfo, advance: Callable[[], None]) -> Iterator[tuple[str, object]]:
    """("video", _Frame) and ("audio", packet) in file order; VideoError if decoding fails
    or a frame is not of the header's size (checked before it is converted to RGB)."""
    video = container.streams[info.index]
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
                if (frame.width, frame.height) != (info.width, info.height):
                    raise VideoError(f"{path}: frame {count} is {frame.width}x{frame.height} px, unlike the "
                                     f"{info.width}x{info.height} of its header; clips that change size midway "
                                     "are not supported (nothing was written)")
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
    overwrite: bool = True,
) -> int:
    """Write ``target`` with every frame of ``source`` passed through ``transform``
    (batches of up to ``batch_size`` frames, (N, H, W, 3) uint8 -> (N, h, w, 3) uint8 with
    (w, h) = ``out_size``); audio copied. Returns the number of frames written.
    ``advance`` is called once per decoded frame (a progress bar). ``overwrite=False``:
    a ``target`` that appears meanwhile is kept (:class:`~fast_style.io.files.OutputExistsError`)."""
    source, target = Path(source), Path(target)
    info = probe_video(source)
    codec = choose_codec(target, codec)
    if info.others:
        left_out = ", ".join(f"#{i} ({w}x{h})" for i, w, h in info.others)
        log.warning("%s: has %d video streams; the first (#%d, %dx%d) is stylized, %s %s left out", source,
                    len(info.others) + 1, info.index, info.width, info.height, left_out,
                    "is" if len(info.others) == 1 else "are")
    if codec == "gif" and info.frames:
        check_gif_budget(target, info.frames, out_size)  # refused before any work when the header counts frames
    with _open_input(source) as container, atomic_output(target, replace=overwrite) as tmp:
        time_base = container.streams[info.index].time_base
        sink = (GifSink(tmp, time_base, container, name=target.name, size=out_size) if codec == "gif"
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
            for kind, item in _decoded(container, source, info, advance):
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
        in_video = source.streams[info.index]
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
