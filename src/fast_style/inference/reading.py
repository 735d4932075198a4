"""The start of a photo job: check its target, decode the photo, resize it.

Images: EXIF rotation is applied and every mode becomes RGB (see
:mod:`fast_style.io.images`); the alpha channel, if any, is kept beside the RGB
(composited over white) for :mod:`fast_style.inference.writing` to re-attach. Sizes
(:func:`stylized_size`) are checked from the header alone, before any decoding: the
image as read and as it would be stylized (after ``size``/``scale``) must both be at most
``max_pixels``; clips (:mod:`fast_style.inference.clips`) use the same rule per frame.
"""

from __future__ import annotations

import logging
import os

import torch
from PIL import Image

from fast_style.errors import FastStyleError
from fast_style.inference.options import StylizeOptions
from fast_style.inference.outcome import Job, Loaded, Outcome, failure
from fast_style.inference.writing import output_format
from fast_style.io.images import image_header, open_rgb_alpha, pil_to_tensor

log = logging.getLogger(__name__)


class ImageTooLargeError(FastStyleError):
    """An image above ``max_pixels``, as read or as it would be stylized."""


def resized_size(width: int, height: int, *, size: int | None, scale: float | None) -> tuple[int, int]:
    """(width, height) after scaling the longer side to ``size`` px, or by ``scale``."""
    if size is None and scale is None:
        return width, height
    factor = size / max(width, height) if size is not None else float(scale)
    return max(1, round(width * factor)), max(1, round(height * factor))


def resized(image: Image.Image, *, size: int | None, scale: float | None) -> Image.Image:
    """Resize so the longer side is ``size`` px, or by ``scale``; unchanged if neither."""
    new = resized_size(image.width, image.height, size=size, scale=scale)
    return image if new == image.size else image.resize(new, Image.Resampling.LANCZOS)


def stylized_size(path: str | os.PathLike, size: tuple[int, int], options: StylizeOptions, *,
                  what: str = "is") -> tuple[int, int]:
    """(width, height) of ``path``'s image (or frames) of ``size`` after ``size``/``scale``;
    :class:`ImageTooLargeError` when either is above ``max_pixels``."""
    width, height = size
    out_w, out_h = resized_size(width, height, size=options.size, scale=options.scale)
    limit = int(options.max_pixels)
    for verb, (w, h) in ((what, (width, height)), ("would be stylized at", (out_w, out_h))):
        if w * h > limit:
            raise ImageTooLargeError(
                f"{path}: {verb} {w}x{h} px ({w * h / 1e6:.0f} MP), above max_pixels={limit} "
                f"({limit / 1e6:.0f} MP); pass a smaller size= or scale=, or raise max_pixels= if the memory is there")
    return out_w, out_h


def check_pixels(path: str | os.PathLike, options: StylizeOptions) -> None:
    """Refuse, from the header alone, an image whose decoded or stylized size is above
    ``max_pixels``; warn that only the first frame of an animation is stylized."""
    size, frames = image_header(path)
    stylized_size(path, size, options)
    if frames > 1:
        log.warning("%s: an animation of %d frames; only its first frame is stylized", path, frames)


def load_photo(path: str | os.PathLike, options: StylizeOptions) -> tuple[torch.Tensor, Image.Image | None]:
    """The photo as (3, H, W) in [0, 1] after ``size``/``scale``, and its alpha channel if any."""
    check_pixels(path, options)
    rgb, alpha = open_rgb_alpha(path, max_pixels=int(options.max_pixels))
    return pil_to_tensor(resized(rgb, size=options.size, scale=options.scale)), alpha


def precheck(job: Job, *, overwrite: bool) -> Outcome | None:
    """A ``skipped`` outcome when ``job`` must not run, else None (a link, even a
    dangling one, counts as an existing target)."""
    if job.target.exists() and job.source.exists() and os.path.samefile(job.target, job.source):
        return Outcome(job, "skipped", f"{job.target} is the input; refusing to write over it")
    if os.path.lexists(job.target) and not overwrite:
        return Outcome(job, "skipped", f"{job.target} exists (pass overwrite=true to replace it)")
    return None


def read(job: Job, options: StylizeOptions) -> Loaded | Outcome:
    """Step 1 of a photo job: check the target, decode and resize the photo; or the outcome that ends it."""
    ended = precheck(job, overwrite=bool(options.overwrite))
    if ended is not None:
        return ended
    try:
        output_format(job.target)
        job.target.parent.mkdir(parents=True, exist_ok=True)
        photo, alpha = load_photo(job.source, options)
    except Exception as exc:  # noqa: BLE001 - a bad file is reported, never fatal to a folder run
        return failure(job, exc)
    return Loaded(job, photo, alpha)
