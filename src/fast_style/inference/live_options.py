"""Every option of the live loop (``python live.py``) and its default, in one place.

:class:`LiveOptions` is :class:`~fast_style.inference.options.StylizeOptions` (size,
strength, preserve_color, styles, precision, runtime, device ... mean what they mean for
``stylize.py``: the frames go through the same runner) plus the options of a live run;
``python live.py`` reads it through the Hydra schema in :mod:`fast_style.config`,
``fast_style.inference.live.run_live(..., key=value)`` through :meth:`LiveOptions.of`.
This module imports no torch, so the schemas load fast.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from fast_style.inference.options import OptionError, StylizeOptions

WINDOW_CHOICES = ("auto", "true", "false")
DISCARD = "discard"  # output=discard: stylize and count, write nothing (benchmarks, dry runs)


@dataclass
class LiveOptions(StylizeOptions):
    """Options of the live loop, besides every :class:`StylizeOptions` field.

    Where frames go: ``output`` (None: a window; ``<file>.mp4`` (.mkv, .mov, .webm, .avi):
    a video written as it goes, under a temporary name renamed at the end; ``<folder>/``:
    an image sequence ``frame_000001.<format>``, ``format`` jpg (default) or png, each
    file written atomically; ``discard``: nothing, only the counts), ``window`` (auto: a
    window when ``output`` is unset; true: a window as well as ``output``; false: never).

    Pace: ``realtime`` (a file source plays at its own frame rate, so frames the runner
    cannot keep up with are dropped, as from a camera; false: every frame of a file is
    stylized, as fast as the runner goes; cameras and streams always come in real time),
    ``buffer`` (how many decoded frames may wait for the runner: the newest ``buffer``
    are kept, older ones dropped; with ``realtime=false`` the reader waits instead).

    Limits: ``max_frames`` (stop after this many stylized frames; None: no limit),
    ``duration`` (stop after this many seconds of the source's timeline; None: no
    limit), ``stall_timeout`` (seconds without a frame after which the source counts as
    stalled: before the first frame a user error, exit 2; midway the run ends with what
    it wrote, exit 1).

    Source: ``source_format`` (an FFmpeg input format, e.g. v4l2, avfoundation, dshow,
    mjpeg; None: chosen from the source), ``source_options`` (FFmpeg input options,
    e.g. ``+source_options.video_size=640x480 +source_options.framerate=30`` for a
    camera: the ``+`` because the keys are new to the dict).

    Reporting: ``progress`` (a frames/s line on stderr while it runs), ``summary`` (a JSON
    file with the run's counts, rates and memory, written at the end, also when
    interrupted).
    """

    window: str = "auto"
    realtime: bool = True
    buffer: int = 1
    max_frames: int | None = None
    duration: float | None = None
    stall_timeout: float = 10.0
    source_format: str | None = None
    source_options: dict[str, str] = field(default_factory=dict)
    summary: str | None = None

    def check(self) -> LiveOptions:
        """:meth:`StylizeOptions.check`, then the live options' ranges; returns self."""
        super().check()
        if str(self.window).lower() not in WINDOW_CHOICES:
            raise OptionError(f"window={self.window}: choose auto, true or false")
        self.window = str(self.window).lower()
        if int(self.buffer) < 1:
            raise OptionError(f"buffer={self.buffer}: must be at least 1 (frames waiting for the runner)")
        if self.max_frames is not None and int(self.max_frames) < 1:
            raise OptionError(f"max_frames={self.max_frames}: must be at least 1 (or null: no limit)")
        if self.duration is not None and not float(self.duration) > 0:
            raise OptionError(f"duration={self.duration}: must be a positive number of seconds (or null: no limit)")
        if not (math.isfinite(float(self.stall_timeout)) and float(self.stall_timeout) > 0):
            raise OptionError(f"stall_timeout={self.stall_timeout}: must be a positive number of seconds")
        if int(self.batch_size) != 1:
            raise OptionError(f"batch_size={self.batch_size}: the live loop stylizes the newest frame, one at a time; "
                              "drop batch_size (stylize.py input=<clip> batches a file's frames)")
        if int(self.devices) != 1:
            raise OptionError(f"devices={self.devices}: the live loop runs on one device; drop devices")
        if self.format is not None and str(self.format).lower() not in ("jpg", "jpeg", "png"):
            raise OptionError(f"format={self.format}: an image sequence is written as jpg or png")
        self.source_options = {str(k): str(v) for k, v in dict(self.source_options or {}).items()}
        return self
