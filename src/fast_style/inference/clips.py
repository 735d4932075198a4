"""One video job's way: a clip (or animated GIF) stylized frame by frame into a new file.

Frames stream through :func:`fast_style.io.video.map_video` in batches of
``batch_size``: each batch is resized (``size``/``scale``, the same rule as photos),
run through the same runner as photos (precision, tiling), checked, finished
(``preserve_color``, ``strength``) and encoded; the audio is copied. The limits of
photos apply to each frame (``max_pixels``). The clip's header is read once
(:func:`~fast_style.io.video.probe_video`): for the frames' size and the progress bar's
length. A clip that is damaged or truncated fails with one line and leaves no output.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from fast_style.inference.finishing import check_output, finish
from fast_style.inference.options import StylizeOptions
from fast_style.inference.outcome import Job, Outcome, failure
from fast_style.inference.reading import precheck, stylized_size
from fast_style.inference.runners.base import Runner
from fast_style.io.files import OutputExistsError
from fast_style.io.video import VideoInfo, map_video, probe_video
from fast_style.progress import progress


def frame_size(job: Job, info: VideoInfo, options: StylizeOptions) -> tuple[int, int]:
    """(width, height) of the output frames; ``ImageTooLargeError`` above ``max_pixels``."""
    return stylized_size(job.source, (info.width, info.height), options, what="has frames of")


def stylize_frames(runner: Runner, frames: np.ndarray, size: tuple[int, int], options: StylizeOptions) -> np.ndarray:
    """(N, H, W, 3) uint8 -> stylized (N, h, w, 3) uint8 at ``size`` = (w, h)."""
    photos = torch.from_numpy(frames).permute(0, 3, 1, 2).float().div_(255.0)
    if tuple(photos.shape[-2:]) != (size[1], size[0]):
        photos = F.interpolate(photos, size=(size[1], size[0]), mode="bicubic", antialias=True,
                               align_corners=False).clamp_(0, 1)
    outputs = check_output(runner(photos), photos)
    finished = torch.stack([finish(y, x, options) for y, x in zip(outputs, photos, strict=True)])
    return finished.mul(255).round_().to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()


def run_video(job: Job, runner: Runner, options: StylizeOptions) -> Outcome:
    """Stylize one clip, with a progress bar over its frames (``progress``); the
    :class:`Outcome` says done (with the frame count), skipped or failed."""
    ended = precheck(job, overwrite=bool(options.overwrite))
    if ended is not None:
        return ended
    try:
        info = probe_video(job.source)
        size = frame_size(job, info, options)
        job.target.parent.mkdir(parents=True, exist_ok=True)
        with progress(info.frames, enabled=bool(options.progress), label=job.source.name, unit="frames") as advance:
            frames = map_video(
                job.source, job.target, lambda batch: stylize_frames(runner, batch, size, options),
                out_size=size, batch_size=int(options.batch_size), codec=str(options.codec), crf=int(options.crf),
                advance=advance, overwrite=bool(options.overwrite),
            )
    except OutputExistsError as exc:  # another process wrote it since the job started
        return Outcome(job, "skipped", str(exc))
    except Exception as exc:  # noqa: BLE001 - one bad clip must not stop a folder run
        return failure(job, exc)
    return Outcome(job, "done", f"{frames} frames")
