"""The stylize pipeline: planning (inputs -> jobs) and one job's way (read, resize, run,
finish, write), returning an :class:`Outcome`. Executors (:mod:`fast_style.inference.executors`)
only schedule it.

Planning (:func:`plan_jobs`) turns ``input``/``output`` into (source, target) pairs:

- ``input`` a file: one job; a folder: every image below it (recursive, hidden files
  and earlier outputs ``*_<style>.<ext>`` left out); anything else: a glob pattern
  (``**`` recurses).
- ``output`` unset: beside each input as ``<name>_<style>.<ext>``. For a single input,
  ``output`` is the file to write (its folder must exist) or an existing folder; for
  several, a folder (created) in which the input tree is mirrored under the same names.
  ``format=png`` (etc.) replaces the extension; otherwise it is the input's.
- An existing target is skipped unless ``overwrite=true``; an input is never written over.

Images: EXIF rotation is applied and every mode becomes RGB (see
:mod:`fast_style.io.images`). Alpha is kept: the RGB, composited over white, is
stylized and the original alpha is re-attached when the output format can store it
(PNG, WebP, TIFF); formats without alpha (JPEG, BMP) get the composited RGB.
"""

from __future__ import annotations

import glob
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from PIL import Image

from fast_style.errors import FastStyleError, first_line
from fast_style.inference.colour import blend, preserve_color
from fast_style.inference.options import StylizeOptions
from fast_style.io.files import sweep_stale
from fast_style.io.images import (
    IMAGE_EXTENSIONS,
    image_header,
    images_below,
    open_rgb_alpha,
    pil_to_tensor,
    save_image,
    tensor_to_pil,
)
from fast_style.io.video import VIDEO_EXTENSIONS, is_video

ALPHA_FORMATS = ("PNG", "WEBP", "TIFF")
MEDIA_EXTENSIONS = tuple(dict.fromkeys(IMAGE_EXTENSIONS + VIDEO_EXTENSIONS))
GLOB_CHARS = set("*?[")
log = logging.getLogger(__name__)
Runner = Callable[[torch.Tensor], torch.Tensor]  # (N, 3, H, W) in [0, 1] -> clamped float32 CPU


class InputError(FastStyleError):
    """Missing or empty inputs, unusable outputs."""


class ImageTooLargeError(FastStyleError):
    """An image above ``max_pixels``, as read or as it would be stylized."""


@dataclass(frozen=True)
class Job:
    source: Path
    target: Path


@dataclass
class Outcome:
    """What became of one job: ``status`` is done, skipped or failed; ``detail`` says why."""

    job: Job
    status: str
    detail: str = ""
    error: Exception | None = field(default=None, repr=False, compare=False)

    def raise_error(self) -> None:
        """Raise this outcome as a one-line user error (single-input runs stop on it)."""
        if self.status == "skipped" or not isinstance(self.error, FastStyleError):
            raise InputError(self.detail) from self.error
        raise type(self.error)(self.detail) from self.error


@dataclass
class Summary:
    """Counts of a run and, from a single process, the outcomes themselves."""

    outcomes: list[Outcome] = field(default_factory=list)
    # multi-process runs (devices > 1) report summed counts instead of per-file outcomes
    totals: tuple[int, int, int] | None = None

    def of(self, status: str) -> list[Outcome]:
        return [o for o in self.outcomes if o.status == status]

    @property
    def done(self) -> list[Path]:
        return [o.job.target for o in self.of("done")]

    @property
    def skipped(self) -> list[tuple[Path, str]]:
        return [(o.job.source, o.detail) for o in self.of("skipped")]

    @property
    def failed(self) -> list[tuple[Path, str]]:
        return [(o.job.source, o.detail) for o in self.of("failed")]

    def counts(self) -> tuple[int, int, int]:
        """(done, skipped, failed)."""
        return self.totals or (len(self.of("done")), len(self.of("skipped")), len(self.of("failed")))

    def add(self, outcomes: list[Outcome]) -> Summary:
        """This summary with ``outcomes`` (e.g. jobs refused by planning) counted too."""
        self.outcomes.extend(outcomes)
        if self.totals is not None:
            extra = (0, len([o for o in outcomes if o.status == "skipped"]), len([o for o in outcomes if o.status == "failed"]))
            self.totals = tuple(a + b for a, b in zip(self.totals, extra, strict=True))
        return self

    def line(self, seconds: float) -> str:
        done, skipped, failed = self.counts()
        return f"done {done}, skipped {skipped}, failed {failed} ({seconds:.1f} s)"


# ---------------------------------------------------------------------------- planning


def check_format(fmt: str) -> None:
    """``format=``: an image format Pillow writes, or a video container."""
    name = f".{str(fmt).lstrip('.').lower()}"
    if name not in VIDEO_EXTENSIONS:
        output_format(Path(f"x{name}"))


def target_suffix(source: Path, fmt: str | None) -> str:
    """The output's extension: ``format`` when it is of the source's kind (an image
    format for photos, a video one for videos and GIFs), else the source's own; so one
    ``format`` serves a folder that mixes photos and videos."""
    if not fmt:
        return source.suffix
    wanted = f".{str(fmt).lstrip('.').lower()}"
    return wanted if (wanted in VIDEO_EXTENSIONS) == is_video(source) else source.suffix


def output_format(path: Path) -> str:
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None or fmt not in Image.SAVE:
        raise InputError(f"{path}: cannot write images with extension {path.suffix!r}; use .png, .jpg, .webp or .tif")
    return fmt


def _is_our_output(path: Path, style: str) -> bool:
    return path.stem.endswith(f"_{style}")


def find_inputs(pattern: str, *, style: str) -> tuple[list[Path], Path | None, bool]:
    """(files, root to mirror from, several?) for an ``input`` value."""
    path = Path(pattern).expanduser()
    if path.is_file():
        return [path], None, False
    if path.is_dir():
        files = [p for p in images_below(path, extensions=MEDIA_EXTENSIONS) if not _is_our_output(p, style)]
        if not files:
            raise InputError(f"{path}: folder contains no images or videos ({', '.join(MEDIA_EXTENSIONS)})")
        return files, path, True
    if GLOB_CHARS & set(pattern):
        files = sorted(Path(p) for p in glob.glob(os.path.expanduser(pattern), recursive=True) if Path(p).is_file())
        if not files:
            raise InputError(f"{pattern}: no files match this pattern")
        magic = next(i for i, part in enumerate(Path(pattern).parts) if GLOB_CHARS & set(part))
        root = Path(*Path(pattern).expanduser().parts[:magic]) if magic else Path(".")
        return files, root, True
    raise InputError(f"{pattern}: no such file or folder")


def plan_jobs(
    sources: list[Path], *, root: Path | None, several: bool, output: str | None, style: str, fmt: str | None
) -> list[Job]:
    """(source, target) pairs; see the module docstring for the rules."""

    def suffix(src: Path) -> str:
        return target_suffix(src, fmt)

    if output is None:
        return [Job(s, s.with_name(f"{s.stem}_{style}{suffix(s)}")) for s in sources]
    out = Path(output).expanduser()
    if not several:
        src = sources[0]
        if out.is_dir() or str(output).endswith(("/", os.sep)):
            if not out.is_dir():
                raise InputError(f"{out}: output folder does not exist; create it first")
            target = out / f"{src.stem}_{style}{suffix(src)}"
        else:
            target = out.with_suffix(target_suffix(src, fmt)) if fmt else out
            if not target.parent.is_dir():
                raise InputError(f"{target}: folder {target.parent} does not exist; create it or choose another output")
        return [Job(src, target)]
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: is a file; with several inputs, output must be a folder")
    if out.suffix.lower() in MEDIA_EXTENSIONS:
        raise InputError(f"{out}: looks like a file name; with several inputs, output must be a folder")
    jobs = []
    for src in sources:
        rel = src.relative_to(root) if root is not None and src.is_relative_to(root) else Path(src.name)
        jobs.append(Job(src, (out / rel).with_suffix(suffix(src))))
    return jobs


def plan(input: str, options: StylizeOptions, *, style: str) -> tuple[list[Job], bool, list[Outcome]]:
    """(jobs to run, several?, outcomes of jobs refused by planning) for an ``input`` and
    the options' ``output``/``format``; creates the output folder of a multi-file run."""
    if options.format is not None:
        check_format(options.format)
    sources, root, several = find_inputs(str(input), style=style)
    if several and options.output is not None and root is not None:
        sources = without_earlier_outputs(sources, root=root, output=Path(options.output).expanduser())
        if not sources:
            raise InputError(f"{input}: every image in it is inside output={options.output}; nothing to stylize")
    jobs = plan_jobs(sources, root=root, several=several, output=options.output, style=style, fmt=options.format)
    if several and options.output is not None:
        folder = Path(options.output).expanduser()
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError(f"output={folder}: cannot create this folder ({first_line(exc)}); choose a writable output") from exc
    jobs, refused = check_plan(jobs, sources=sources)
    for folder in {job.target.parent for job in jobs}:
        if folder.is_dir():
            sweep_stale(folder)  # temporary outputs of an earlier run that was killed (SIGKILL)
    return jobs, several, refused


def without_earlier_outputs(sources: list[Path], *, root: Path, output: Path) -> list[Path]:
    """``sources`` minus files inside ``output`` when that is a folder below the input
    folder ``root`` (it holds this command's earlier results, which must not be
    stylized again, one level deeper each run)."""
    top, out = os.path.realpath(root), os.path.realpath(output)
    if not out.startswith(top + os.sep):
        return sources
    return [s for s in sources if not os.path.realpath(s).startswith(out + os.sep)]


def check_plan(jobs: list[Job], *, sources: list[Path]) -> tuple[list[Job], list[Outcome]]:
    """Look at every target of a run at once, before anything is written: a target that
    is (or links to) any input of the run is refused, and of several jobs with the same
    target the first keeps it and the others fail (their results would replace each
    other). Returns (jobs that may run, outcomes of the refused ones)."""
    inputs = {os.path.realpath(s): s for s in sources}
    first_of: dict[str, Job] = {}
    keep, refused = [], []
    for job in jobs:
        target = os.path.realpath(job.target)
        if target in inputs:
            refused.append(Outcome(job, "skipped", f"{job.target} is an input of this run; refusing to write over it "
                                                    "(choose output= or format= so that names differ)"))
        elif target in first_of:
            refused.append(Outcome(job, "failed", f"{job.source}: its output {job.target} is also the output of "
                                                   f"{first_of[target].source}; pass format= or output= so names differ"))
        else:
            first_of[target] = job
            keep.append(job)
    return keep, refused


# ------------------------------------------------------------------------- one job


@dataclass
class Loaded:
    """A job whose photo was read: (3, H, W) in [0, 1], and its alpha channel if any."""

    job: Job
    photo: torch.Tensor
    alpha: Image.Image | None


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


def finish(stylized: torch.Tensor, photo: torch.Tensor, *, keep_colour: bool, strength: float) -> torch.Tensor:
    """Colour preservation, then the strength blend, on (3, H, W) tensors in [0, 1]."""
    if keep_colour:
        stylized = preserve_color(stylized, photo)
    return blend(stylized, photo, strength=strength).clamp(0, 1)


def write_output(image: torch.Tensor, alpha: Image.Image | None, target: Path, *, quality: int,
                 png_compression: int) -> Path:
    """Save (3, H, W) in [0, 1], re-attaching ``alpha`` when the format stores it."""
    pil = tensor_to_pil(image)
    if alpha is not None and output_format(target) in ALPHA_FORMATS:
        pil.putalpha(alpha.resize(pil.size, Image.Resampling.LANCZOS) if alpha.size != pil.size else alpha)
    return save_image(pil, target, quality=quality, png_compression=png_compression)


def precheck(job: Job, *, overwrite: bool) -> Outcome | None:
    """A ``skipped`` outcome when ``job`` must not run, else None (a link, even a
    dangling one, counts as an existing target)."""
    if job.target.exists() and job.source.exists() and os.path.samefile(job.target, job.source):
        return Outcome(job, "skipped", f"{job.target} is the input; refusing to write over it")
    if os.path.lexists(job.target) and not overwrite:
        return Outcome(job, "skipped", f"{job.target} exists (pass overwrite=true to replace it)")
    return None


def failure(job: Job, exc: Exception) -> Outcome:
    """A ``failed`` outcome whose detail is one line naming the file."""
    if isinstance(exc, FastStyleError):
        text = str(exc)
        return Outcome(job, "failed", text if str(job.source) in text else f"{job.source}: {text}", exc)
    return Outcome(job, "failed", f"{job.source}: {type(exc).__name__}: {exc}", exc)


def read(job: Job, options: StylizeOptions) -> Loaded | Outcome:
    """Step 1 of a job: check the target, decode and resize the photo; or the outcome that ends it."""
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


class ModelOutputError(FastStyleError):
    """A model whose output is not an image of the input's size, or not finite."""


def check_output(outputs: torch.Tensor, batch: torch.Tensor) -> torch.Tensor:
    """``outputs`` if it is a finite (N, 3, H, W) batch like ``batch``, else :class:`ModelOutputError`
    (an exported model can return anything; NaN weights give NaN images)."""
    if tuple(outputs.shape) != tuple(batch.shape):
        raise ModelOutputError(f"the model returned shape {tuple(outputs.shape)} for input {tuple(batch.shape)}, "
                               "not an image of the same size; the model file is not a working style model")
    if not torch.isfinite(outputs).all():
        raise ModelOutputError("the model's output has NaN or infinite values; its weights are broken "
                               "(a diverged training run?) or the precision overflowed (try precision=fp32)")
    return outputs


def run_batch(runner: Runner, items: Sequence[Loaded], options: StylizeOptions) -> list[Outcome]:
    """Steps 2-4 of same-size jobs: run the network once, finish and write each result."""
    batch = torch.stack([item.photo for item in items])
    try:
        outputs = check_output(runner(batch), batch)
    except Exception as exc:  # noqa: BLE001 - one bad batch must not stop a folder run
        return [failure(item.job, exc) for item in items]
    outcomes = []
    for item, out in zip(items, outputs, strict=True):
        try:
            result = finish(out, item.photo, keep_colour=bool(options.preserve_color), strength=options.pixel_strength)
            write_output(result, item.alpha, item.job.target, quality=int(options.quality),
                         png_compression=int(options.png_compression))
            outcomes.append(Outcome(item.job, "done"))
        except Exception as exc:  # noqa: BLE001
            outcomes.append(failure(item.job, exc))
    return outcomes
