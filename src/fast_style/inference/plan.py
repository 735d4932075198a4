"""Planning a stylize run: inputs -> :class:`~fast_style.inference.outcome.Job` s, before anything is read.

:func:`plan` turns ``input``/``output`` into jobs (source, target, kind), each kind
(photo, video, GIF) decided here once from the source's extension:

- ``input`` a file: one job; a folder: every image or clip below it (recursive, hidden
  files and earlier outputs ``*_<style>.<ext>`` left out); anything else: a glob pattern
  (``**`` recurses).
- ``output`` unset: beside each input as ``<name>_<style>.<ext>``. For a single input,
  ``output`` is the file to write (its folder must exist) or an existing folder; for
  several, a folder (created) in which the input tree is mirrored under the same names.
  ``format=png`` (etc.) replaces the extension when it is of the source's kind;
  otherwise the extension is the input's.
- Every target of the run is checked at once (:func:`check_plan`): one that is (or links
  to) an input is refused, and of several jobs with the same target the first keeps it.
  An existing target is skipped later, when its job starts, unless ``overwrite=true``.
"""

from __future__ import annotations

import glob
import os
from pathlib import Path

from fast_style.errors import first_line
from fast_style.inference.options import StylizeOptions
from fast_style.inference.outcome import GIF, PHOTO, VIDEO, InputError, Job, Outcome
from fast_style.inference.writing import output_format
from fast_style.io.files import sweep_stale
from fast_style.io.images import IMAGE_EXTENSIONS, images_below
from fast_style.io.video import VIDEO_EXTENSIONS, is_video

MEDIA_EXTENSIONS = tuple(dict.fromkeys(IMAGE_EXTENSIONS + VIDEO_EXTENSIONS))
GLOB_CHARS = set("*?[")


def job_kind(source: Path) -> str:
    """photo, video or gif, from the extension (a GIF, animated or not, is read as a clip)."""
    if not is_video(source):
        return PHOTO
    return GIF if source.suffix.lower() == ".gif" else VIDEO


def check_format(fmt: str) -> None:
    """``format=``: an image format Pillow writes, or a video container."""
    name = f".{str(fmt).lstrip('.').lower()}"
    if name not in VIDEO_EXTENSIONS:
        output_format(Path(f"x{name}"))


def target_suffix(source: Path, kind: str, fmt: str | None) -> str:
    """The output's extension: ``format`` when it is of the source's kind (an image
    format for photos, a video one for videos and GIFs), else the source's own; so one
    ``format`` serves a folder that mixes photos and videos."""
    if not fmt:
        return source.suffix
    wanted = f".{str(fmt).lstrip('.').lower()}"
    return wanted if (wanted in VIDEO_EXTENSIONS) == (kind != PHOTO) else source.suffix


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
    """Jobs (source, target, kind); see the module docstring for the rules."""

    def job(src: Path, target_of) -> Job:
        kind = job_kind(src)
        return Job(src, target_of(target_suffix(src, kind, fmt)), kind)

    if output is None:
        return [job(s, lambda suffix, s=s: s.with_name(f"{s.stem}_{style}{suffix}")) for s in sources]
    out = Path(output).expanduser()
    if not several:
        src = sources[0]
        if out.is_dir() or str(output).endswith(("/", os.sep)):
            if not out.is_dir():
                raise InputError(f"{out}: output folder does not exist; create it first")
            planned = job(src, lambda suffix: out / f"{src.stem}_{style}{suffix}")
        else:
            planned = job(src, lambda suffix: out.with_suffix(suffix) if fmt else out)
            if not planned.target.parent.is_dir():
                raise InputError(f"{planned.target}: folder {planned.target.parent} does not exist; "
                                 "create it or choose another output")
        return [planned]
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: is a file; with several inputs, output must be a folder")
    if out.suffix.lower() in MEDIA_EXTENSIONS:
        raise InputError(f"{out}: looks like a file name; with several inputs, output must be a folder")
    jobs = []
    for src in sources:
        rel = src.relative_to(root) if root is not None and src.is_relative_to(root) else Path(src.name)
        jobs.append(job(src, lambda suffix, rel=rel: (out / rel).with_suffix(suffix)))
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
