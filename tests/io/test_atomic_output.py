"""Several processes writing the same output at once (issue 33 item 6): the file is at every
moment absent or one complete image, temporary names never collide, and without overwrite
exactly one writer wins. The writers are forked processes calling the real writing code."""

from __future__ import annotations

import multiprocessing
import os
import re
from pathlib import Path

import numpy as np
import pytest
from helpers import random_photo
from PIL import Image

from fast_style.inference.options import StylizeOptions
from fast_style.inference.outcome import Job, Loaded
from fast_style.inference.writing import run_batch
from fast_style.io.files import TEMP_MARK, OutputExistsError, atomic_output
from fast_style.io.images import pil_to_tensor, save_image

WRITERS = 4
fork = multiprocessing.get_context("fork")


def _write(target: str, seed: int, rounds: int, overwrite: bool, start, results) -> None:
    """A writer process: wait for the others, then write its own image ``rounds`` times."""
    image = random_photo(160, 120, seed=seed)
    start.wait()
    for _ in range(rounds):
        try:
            save_image(image, target, overwrite=overwrite)
            results.put((seed, "written"))
        except OutputExistsError:
            results.put((seed, "exists"))


def _race(target: Path, *, rounds: int, overwrite: bool, watch=lambda: None) -> list[tuple[int, str]]:
    """Start the writers at once; ``watch()`` is called again and again while they run."""
    start, results = fork.Barrier(WRITERS), fork.Queue()
    writers = [fork.Process(target=_write, args=(str(target), seed, rounds, overwrite, start, results))
               for seed in range(WRITERS)]
    for process in writers:
        process.start()
    outcomes = []
    while len(outcomes) < WRITERS * rounds:
        watch()
        while not results.empty():
            outcomes.append(results.get(timeout=60))
        assert all(p.is_alive() or p.exitcode == 0 for p in writers)
    for process in writers:
        process.join(timeout=60)
        assert process.exitcode == 0
    return outcomes


def _which(path: Path, images: list[np.ndarray]) -> int:
    """The index of the image ``path`` holds (it must decode completely and be one of them)."""
    with Image.open(path) as image:
        pixels = np.asarray(image.convert("RGB"))
    matches = [i for i, candidate in enumerate(images) if np.array_equal(pixels, candidate)]
    assert len(matches) == 1
    return matches[0]


def test_concurrent_writers_leave_one_whole_image_and_no_temporary_file(tmp_path):
    target = tmp_path / "out.png"
    images = [np.asarray(random_photo(160, 120, seed=seed)) for seed in range(WRITERS)]

    seen = []

    def watch() -> None:  # reading while they write: never a partial or foreign file
        if target.exists():
            seen.append(_which(target, images))

    outcomes = _race(target, rounds=15, overwrite=True, watch=watch)
    assert sorted(status for _, status in outcomes) == ["written"] * (WRITERS * 15)
    assert len(seen) > 5 and _which(target, images) in range(WRITERS)
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]


def test_without_overwrite_exactly_one_concurrent_writer_wins(tmp_path):
    for attempt in range(3):
        target = tmp_path / f"out{attempt}.png"
        outcomes = _race(target, rounds=1, overwrite=False)
        winners = [seed for seed, status in outcomes if status == "written"]
        assert len(winners) == 1 and sorted(s for _, s in outcomes) == ["exists"] * (WRITERS - 1) + ["written"]
        assert _which(target, [np.asarray(random_photo(160, 120, seed=s)) for s in range(WRITERS)]) == winners[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out0.png", "out1.png", "out2.png"]


def test_temporary_names_say_which_process_owns_them_and_never_repeat(tmp_path):
    names = []
    for _ in range(3):
        with atomic_output(tmp_path / "a.png") as tmp:
            names.append(tmp.name)
            tmp.write_bytes(b"x")
    assert len(set(names)) == 3
    assert all(re.fullmatch(rf"\.a\.{TEMP_MARK}-.+-{os.getpid()}-\w+\.png", name) for name in names), names


def test_an_output_written_meanwhile_by_another_process_is_kept_and_the_job_skipped(tmp_path):
    photo = random_photo(40, 30, seed=1)
    (tmp_path / "a.png").write_bytes(b"")
    job = Job(tmp_path / "a.png", tmp_path / "a_out.png", "photo")
    loaded = Loaded(job, pil_to_tensor(photo), None)
    random_photo(40, 30, seed=2).save(job.target)  # appears after the job checked its target
    before = job.target.read_bytes()
    identity = lambda batch: batch  # noqa: E731
    identity.needs_tiling = lambda h, w: False
    (outcome,) = run_batch(identity, [loaded], StylizeOptions(overwrite=False))
    assert outcome.status == "skipped" and "another process wrote it meanwhile" in outcome.detail
    assert job.target.read_bytes() == before
    (replaced,) = run_batch(identity, [loaded], StylizeOptions(overwrite=True))
    assert replaced.status == "done" and np.array_equal(np.asarray(Image.open(job.target)), np.asarray(photo))
    with pytest.raises(OutputExistsError):
        save_image(photo, job.target, overwrite=False)
