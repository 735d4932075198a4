"""The local executor: it schedules the jobs (read, run, write; :mod:`.reading`, :mod:`.writing`, :mod:`.clips`), nothing else.

:func:`run_local` runs every job in this process: photos are read one by one and
grouped by size, a group is run when it holds ``batch_size`` photos (or one image that
needs tiling), failures are reported as they happen and a progress bar counts files.
Several processes (``devices=N``): :mod:`fast_style.inference.distributed`, imported only
then, so that a plain run does not pay for importing Lightning.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Iterator

from fast_style.inference.clips import run_video
from fast_style.inference.options import StylizeOptions
from fast_style.inference.outcome import Job, Loaded, Outcome, Summary
from fast_style.inference.reading import read
from fast_style.inference.runners.base import Runner
from fast_style.inference.writing import run_batch
from fast_style.progress import progress

STATUSES = ("done", "skipped", "failed")


def report(outcome: Outcome) -> None:
    """Print a failure as it happens (stderr), so a long folder run shows its bad files."""
    if outcome.status == "failed":
        print(f"failed: {outcome.detail}", file=sys.stderr, flush=True)


def size_groups(items: Iterable[Loaded | Outcome], *, batch_size: int, needs_tiling: Callable[[int, int], bool]
                ) -> Iterator[list[Loaded] | Outcome]:
    """Outcomes as they come, and read photos in same-size groups of at most ``batch_size``
    (an image that needs tiling alone); the rest are flushed at the end."""
    pending: dict[tuple[int, int], list[Loaded]] = {}
    for item in items:
        if isinstance(item, Outcome):
            yield item
            continue
        key = tuple(item.photo.shape[-2:])
        pending.setdefault(key, []).append(item)
        if len(pending[key]) >= batch_size or needs_tiling(*key):
            yield pending.pop(key)
    yield from pending.values()


def run_local(jobs: list[Job], runner: Runner, options: StylizeOptions, *, several: bool) -> Summary:
    """Every job in this process: photos first, then videos one by one (a progress bar
    over frames each). A single job's failure is raised as one line; with several,
    failures are reported and counted and the run goes on."""
    photos = [job for job in jobs if not job.is_clip]
    summary = run_photos(photos, runner, options, several=several) if photos else Summary()
    for job in jobs:
        if job.is_clip:
            outcome = run_video(job, runner, options)
            if not several and outcome.status != "done":
                outcome.raise_error()
            report(outcome)
            summary.outcomes.append(outcome)
    return summary


def run_photos(jobs: list[Job], runner: Runner, options: StylizeOptions, *, several: bool) -> Summary:
    """The photo jobs: read one by one, run in same-size groups (see the module docstring)."""
    summary = Summary()
    with progress(len(jobs), label="stylizing", enabled=several and bool(options.progress)) as advance:
        loaded = (read(job, options) for job in jobs)
        groups = size_groups(loaded, batch_size=int(options.batch_size), needs_tiling=runner.needs_tiling)
        for group in groups:
            for outcome in [group] if isinstance(group, Outcome) else run_batch(runner, group, options):
                if not several and outcome.status != "done":
                    outcome.raise_error()
                report(outcome)
                summary.outcomes.append(outcome)
                advance()
    return summary
