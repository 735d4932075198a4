"""What a stylize run is made of and what becomes of it: :class:`Job`, :class:`Loaded`, :class:`Outcome`, :class:`Summary`.

A job is decided once, at planning (:mod:`fast_style.inference.plan`): its source, its
target and its ``kind`` (``photo``, ``video`` or ``gif``, from the source's extension);
reading, running and writing follow the kind and do not ask again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from PIL import Image

from fast_style.errors import FastStyleError

PHOTO, VIDEO, GIF = "photo", "video", "gif"
JOB_KINDS = (PHOTO, VIDEO, GIF)


class InputError(FastStyleError):
    """Missing or empty inputs, unusable outputs."""


@dataclass(frozen=True)
class Job:
    """One input and the file it becomes; ``kind`` is one of :data:`JOB_KINDS`."""

    source: Path
    target: Path
    kind: str

    @property
    def is_clip(self) -> bool:
        """A video or an animated GIF: stylized frame by frame (:mod:`fast_style.inference.clips`)."""
        return self.kind != PHOTO


@dataclass
class Loaded:
    """A photo job whose photo was read (:func:`fast_style.inference.reading.read`):
    (3, H, W) in [0, 1], and its alpha channel if any."""

    job: Job
    photo: torch.Tensor
    alpha: Image.Image | None


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


def failure(job: Job, exc: Exception) -> Outcome:
    """A ``failed`` outcome whose detail is one line naming the file."""
    if isinstance(exc, FastStyleError):
        text = str(exc)
        return Outcome(job, "failed", text if str(job.source) in text else f"{job.source}: {text}", exc)
    return Outcome(job, "failed", f"{job.source}: {type(exc).__name__}: {exc}", exc)


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
