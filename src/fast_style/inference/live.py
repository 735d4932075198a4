"""The live loop: stylize frames as they come from a camera, a file or a stream.

    from fast_style.inference.live import run_live
    summary = run_live("checkpoints/demo_swirls.safetensors", "clip.mp4", output="out.mp4", size=480)

Two threads. The *reader* (:func:`read_frames`) decodes frames from the
:class:`~fast_style.io.frame_sources.FrameSource` as they come and puts each into a
:class:`FrameBuffer` of ``buffer`` slots (default 1). The *stylizer* (the calling thread)
takes the newest frame, runs it through the same runner as ``stylize.py``
(:func:`fast_style.inference.runners.make_runner`: runtime, precision=auto and its
start-up cache, ``size``, ``strength``, ``preserve_color``, a multi-style model's
``style=`` mix; :func:`fast_style.inference.clips.stylize_frames` for resize, check and
finish) and hands the result to the sink (:mod:`fast_style.io.frame_sinks`).

Pace and drops. A frame put into a full buffer pushes out the oldest one, which is
counted as dropped: the runner always gets the newest frame and memory holds at most
``buffer`` decoded frames, whatever the source's rate. A file source plays in real time
(``realtime=true``): frame i is released at ``t0 + (pts_i - pts_0)``, where ``t0`` is when
the first frame has been stylized (the runner's start-up, e.g. precision=auto's
calibration, is not counted against the clip); ``realtime=false`` stylizes every frame of
a file (the reader waits for a free slot instead of dropping). Cameras and streams
always come in real time.

Rates (:class:`LiveSummary`): ``fps`` = (stylized - 1) / (time from the first stylized
frame to the last), the steady rate after start-up; ``source_fps`` = the rate frames
were read at from the first stylized frame to the last frame read (a file's own rate when
played in real time);
``dropped`` = frames read but never stylized; ``startup_s`` = time to the first
stylized frame.

Ends: the end of the source, ``max_frames`` stylized, ``duration`` seconds of source
time, a closed window: ``ended`` says which, the output is finalised. Ctrl-C and SIGTERM
finalise the output and the summary, then propagate (exit 130 / 143 in ``live.py``). No
frame within ``stall_timeout`` s: before the first frame a :class:`LiveError` (nothing
written); midway ``ended="stalled"`` (``live.py`` exits 1) with what was written kept.
A source that fails midway (a camera unplugged, a damaged file) ends as ``failed``
(exit 1), likewise.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from pathlib import Path
from typing import Any

from fast_style.errors import FastStyleError, first_line
from fast_style.inference.clips import stylize_frames
from fast_style.inference.live_options import LiveOptions
from fast_style.inference.live_reader import FrameBuffer, read_frames
from fast_style.inference.live_summary import LiveSummary, Progress, peak_mb, rss_mb
from fast_style.inference.mixing import choose_styles
from fast_style.inference.options import with_aliases
from fast_style.inference.reading import stylized_size
from fast_style.inference.runners.base import notice
from fast_style.inference.runners.rules import make_runner
from fast_style.inference.runners.settings import resolve_strength_space
from fast_style.io.files import atomic_write_text
from fast_style.io.frame_sinks import (
    DiscardSink,
    Fanout,
    SequenceSink,
    SinkError,
    VideoFileSink,
    WindowClosed,
    WindowSink,
    output_kind,
    window_problem,
)
from fast_style.io.frame_sources import FrameSource, LiveFrame, SourceError, open_source
from fast_style.io.model_files import StyleModel, open_model


class LiveError(FastStyleError):
    """A live run that cannot start: a source that sends nothing, an output that cannot be written."""


def _sink(options: LiveOptions, size: tuple[int, int], source: FrameSource, title: str):
    """The run's sink from ``output`` and ``window`` (see :class:`LiveOptions`)."""
    sinks = []
    output = options.output
    want_window = options.window == "true" or (options.window == "auto" and output in (None, ""))
    if want_window:
        problem = window_problem()
        if problem:
            raise SinkError(f"cannot show a window: {problem}; pass output=<file.mp4>, output=<folder>/ or "
                            "output=discard")
    if output not in (None, ""):
        kind = output_kind(str(output))
        target = Path(str(output))
        if kind == "video":
            if target.exists() and not options.overwrite:
                raise SinkError(f"output={target} exists (pass overwrite=true to replace it)")
            sinks.append(VideoFileSink(target, size=size, fps=source.fps, codec=str(options.codec),
                                       crf=int(options.crf), overwrite=bool(options.overwrite)))
        elif kind == "folder":
            ext = "png" if str(options.format or "jpg").lower() == "png" else "jpg"
            sinks.append(SequenceSink(target, ext=ext, quality=int(options.quality), overwrite=bool(options.overwrite)))
        else:
            sinks.append(DiscardSink())
    if want_window:
        sinks.append(WindowSink(title))
    return sinks[0] if len(sinks) == 1 else Fanout(sinks)


def run_live(model: StyleModel | str, source: str, *, options: LiveOptions | None = None,
             **values: Any) -> LiveSummary:
    """Stylize ``source`` live (see the module docstring); returns the :class:`LiveSummary`
    (also written to ``summary`` when set). One-line :class:`FastStyleError` s for a model,
    style, option, source or output that cannot be used."""
    opts = dataclasses.replace(options, **with_aliases(values)) if options else LiveOptions.of(values)
    opts.check()
    if not isinstance(model, StyleModel):
        model = open_model(model, device=str(opts.device), allow_torchscript=bool(opts.allow_torchscript))
    styles = choose_styles(model, opts)
    opts = dataclasses.replace(opts, strength_space=resolve_strength_space(model, opts))
    if styles.line:
        notice(styles.line)
    runner = make_runner(model, opts, styles)
    frames = open_source(source, stall_timeout=float(opts.stall_timeout), source_format=opts.source_format,
                         source_options=opts.source_options)
    try:
        size = stylized_size(frames.label, (frames.width, frames.height), opts, what="has frames of")
        realtime = bool(opts.realtime) or frames.live
        summary = LiveSummary(source=str(source), output=None if opts.output in (None, "") else str(opts.output),
                              runner=runner.label, realtime=realtime, buffer_capacity=int(opts.buffer),
                              source_nominal_fps=float(frames.fps) if frames.fps else None, size=list(size))
        sink = _sink(opts, size, frames, title=f"fast-style live: {model.style_name}")
        _loop(frames, runner, sink, opts, size, summary, realtime=realtime)
    finally:
        frames.close()
    return summary


def _loop(source: FrameSource, runner, sink, opts: LiveOptions, size: tuple[int, int], summary: LiveSummary,
          *, realtime: bool) -> None:
    buffer = FrameBuffer(int(opts.buffer), drop=realtime)
    ready = threading.Event()
    reader = threading.Thread(target=read_frames, args=(source, buffer), kwargs={"realtime": realtime, "ready": ready},
                              name="fast-style-live-reader", daemon=True)
    progress = Progress(bool(opts.progress))
    start = time.monotonic()
    summary.rss_start_mb = rss_mb()
    first_at = first_t = last_at = None
    read_at_first = 0
    publish, interrupt = True, None

    def status() -> str:
        span = (last_at - first_at) if first_at is not None and last_at is not None else 0
        fps = (summary.stylized - 1) / span if span > 0 else 0.0
        read_span = buffer.last_put - first_at if first_at is not None else 0
        src = (buffer.put_count - read_at_first) / read_span if read_span > 0 else 0.0
        summary.fps, summary.source_fps = fps, src
        return (f"live: {fps:.1f} frames/s stylized, source {src:.1f} frames/s, read {buffer.put_count}, "
                f"dropped {buffer.dropped}")

    reader.start()
    try:
        while True:
            frame: LiveFrame | None = buffer.get(float(opts.stall_timeout))
            if frame is None:
                if buffer.ended:
                    if buffer.error is not None:
                        if isinstance(buffer.error, SourceError) and summary.stylized == 0:
                            raise buffer.error
                        summary.ended, summary.why = "failed", first_line(buffer.error)
                    break
                if summary.stylized == 0:
                    raise LiveError(f"source={summary.source}: no frame within stall_timeout="
                                    f"{float(opts.stall_timeout):g} s; the camera or stream sends nothing")
                summary.ended = "stalled"
                summary.why = (f"no frame for {float(opts.stall_timeout):g} s (stall_timeout) after "
                               f"{summary.stylized} stylized frames")
                break
            if opts.duration is not None and first_t is not None and frame.t - first_t >= float(opts.duration):
                summary.ended = "duration"
                break
            rgb = frame.rgb()
            if rgb.shape[:2] != (source.height, source.width):
                summary.ended = "failed"
                summary.why = (f"{source.label}: a frame of {rgb.shape[1]}x{rgb.shape[0]} px after "
                               f"{source.width}x{source.height}; sources that change size midway are not supported")
                break
            out = stylize_frames(runner, rgb[None], size, opts)[0]
            now = time.monotonic()
            summary.stylized += 1
            if first_at is None:
                first_at, first_t, read_at_first = now, frame.t, buffer.put_count
                summary.startup_s = now - start
                summary.rss_warm_mb = rss_mb()  # the runner's first call allocates its working memory
                notice(f"live: first frame stylized in {summary.startup_s:.1f} s ({runner.label}, "
                       f"{size[0]}x{size[1]}); {'playing in real time' if realtime else 'every frame'}")
                ready.set()
            last_at = now
            line = status()
            sink.write(out, frame.t, line)
            progress.show(line)
            if opts.max_frames is not None and summary.stylized >= int(opts.max_frames):
                summary.ended = "max_frames"
                break
    except WindowClosed:
        summary.ended = "window-closed"
    except KeyboardInterrupt as exc:
        summary.ended, interrupt = "interrupted", exc
    except SystemExit as exc:  # fast_style.cli's SIGTERM (Terminated)
        summary.ended, interrupt = "terminated", exc
    except BaseException:
        publish = False
        raise
    finally:
        buffer.close()
        try:
            status()
            progress.done()
            summary.frames_read, summary.dropped = buffer.put_count, buffer.put_count - summary.stylized
            summary.buffer_max_held = buffer.max_held
            summary.seconds = time.monotonic() - start
            summary.rss_end_mb, summary.peak_rss_mb = rss_mb(), peak_mb()
            sink.close(publish)
            if summary.stylized == 0:
                summary.output = None
        finally:
            reader.join(timeout=2.0)
            if opts.summary:
                atomic_write_text(opts.summary, json.dumps(dataclasses.asdict(summary), indent=2))
    if interrupt is not None:
        raise interrupt
