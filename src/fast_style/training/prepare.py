"""One-time preparation of a photo folder into shards (``scripts/prepare_data.py``,
``data.cache=true``); the shard layout is described in :mod:`fast_style.training.shards`.

The run: list the folder (the cached header scan of :mod:`~fast_style.training.index`),
write ``plan.json`` (settings + the sorted source list, cut into shards of
``shard_size``), then decode, resize and encode every photo in ``workers`` processes and
write each shard as soon as its photos are in, in order, with a progress bar.

Resuming: a run that finds a ``plan.json`` with the same settings continues it: whole
shards already on disk are kept, temporary files left by a killed run are swept, the
rest is written. A finished set (``manifest.json``) with the same settings is left as
it is; one with other settings is refused unless ``overwrite=true`` (then rebuilt).
Unreadable photos are skipped with one warning each and counted in the manifest.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from fast_style.errors import first_line
from fast_style.io.files import atomic_write_text, sweep_stale
from fast_style.io.images import ImageReadError, open_rgb
from fast_style.progress import progress
from fast_style.training.crops import resize_shorter
from fast_style.training.index import NoImagesError, scan_images
from fast_style.training.shards import (
    MANIFEST,
    PLAN,
    ShardError,
    ShardSettings,
    default_folder,
    encode,
    read_manifest,
    read_shard_index,
    write_manifest,
    write_shard,
)

log = logging.getLogger(__name__)


def load_photo(path: str | os.PathLike, *, settings: ShardSettings):
    """``path`` as stored in a shard: (H, W, 3) uint8 RGB, shorter side ``settings.resize``
    (or at most ``settings.cap`` when resize is None), decoded as the folder dataset does."""
    import numpy as np

    target = settings.resize or settings.cap
    image = open_rgb(path, draft_size=(target, target))
    if settings.resize or min(image.size) > settings.cap:
        image = resize_shorter(image, target)
    return np.asarray(image, dtype=np.uint8)


def _encode_one(job: tuple[str, str, ShardSettings]) -> tuple[str, tuple[bytes, int, int] | str]:
    """(source, (stored bytes, height, width) or why it was skipped): one worker task."""
    path, source, settings = job
    try:
        array = load_photo(path, settings=settings)
    except ImageReadError as exc:
        return source, first_line(exc)
    except Exception as exc:  # noqa: BLE001 - a run never dies for one photo
        return source, f"{path}: {first_line(exc)}"
    return source, (encode(array, settings=settings), int(array.shape[0]), int(array.shape[1]))


def prepare(cfg: Any) -> Prepared:
    """``scripts/prepare_data.py`` with a composed :class:`PrepareDataConfig`; prints a summary."""
    resize = cfg.data.get("resize")
    settings = ShardSettings(resize=int(resize) if resize else None, format=str(cfg.format), quality=int(cfg.quality),
                             cap=int(cfg.cap), shard_size=int(cfg.shard_size))
    done = prepare_shards(root=str(cfg.data.root), settings=settings, output=cfg.output, workers=cfg.workers,
                          overwrite=bool(cfg.overwrite), show_progress=bool(cfg.progress))
    manifest = done.manifest
    state = "up to date" if not done.written else f"{done.written} shard(s) written, {done.reused} reused"
    print(f"shards: {done.folder} ({manifest['num_images']} images, {len(manifest['shards'])} shards, "
          f"{manifest['data_bytes'] / 1e6:.1f} MB, {settings.describe()}; {manifest['num_skipped']} photos skipped; "
          f"{state})", flush=True)
    return done


@dataclass
class Prepared:
    """What a preparation left: the folder, its manifest, and what this run did."""

    folder: Path
    manifest: dict[str, Any]
    written: int
    reused: int


def _clear(folder: Path) -> None:
    for path in folder.iterdir():
        if path.name in (MANIFEST, PLAN) or (path.name.startswith("shard-") and path.suffix in (".data", ".json")):
            path.unlink()


def _check_settings(found: dict, settings: ShardSettings, where: Path, *, overwrite: bool) -> bool:
    """True if ``found`` (a plan or manifest) has ``settings``; False if it does not and
    ``overwrite`` allows rebuilding; a :class:`ShardError` otherwise."""
    theirs = ShardSettings.from_dict(found["settings"]) if "settings" in found else None
    if theirs == settings:
        return True
    if overwrite:
        return False
    made = theirs.describe() if theirs else "unknown settings"
    raise ShardError(f"{where} holds shards made with {made}, not {settings.describe()}; "
                     "pass overwrite=true to rebuild them, or output=<another folder>")


def _inside(source: Any) -> bool:
    """A plan's source: a relative path that stays below the root (no ``..``, not absolute)."""
    return isinstance(source, str) and bool(source) and not PurePosixPath(source).is_absolute() \
        and ".." not in PurePosixPath(source).parts


def _read_plan(path: Path, root: Path) -> dict | None:
    """The plan of an interrupted preparation of ``root``, or None (and a warning) when it
    is damaged, made for another root or names a file outside the root: then it is made again."""
    try:
        plan = json.loads(path.read_text())
        if (isinstance(plan, dict) and plan.get("source_root") == str(root.resolve())
                and isinstance(plan.get("settings"), dict) and isinstance(plan.get("bad"), list)
                and isinstance(plan.get("sources"), list) and all(_inside(s) for s in plan["sources"])):
            ShardSettings.from_dict(plan["settings"])
            return plan
        why = "not a plan of this folder's photos"
    except (OSError, ValueError, KeyError, TypeError, ShardError) as exc:
        why = first_line(exc)
    log.warning("ignoring %s (%s); planning the preparation again", path, why)
    return None


def _plan(folder: Path, root: Path, settings: ShardSettings, *, overwrite: bool, show_progress: bool) -> dict:
    plan_path = folder / PLAN
    plan = _read_plan(plan_path, root) if plan_path.is_file() else None
    if plan is not None and _check_settings(plan, settings, plan_path, overwrite=overwrite):
        return plan
    if plan_path.is_file():
        _clear(folder)
    files, bad = scan_images(root, show_progress=show_progress)
    plan = {"settings": asdict(settings), "source_root": str(root.resolve()),
            "sources": [p.relative_to(root).as_posix() if p != root else p.name for p in files],
            "bad": [[p.relative_to(root).as_posix() if p != root else p.name, why] for p, why in bad]}
    atomic_write_text(plan_path, json.dumps(plan, separators=(",", ":")))
    return plan


def prepare_shards(*, root: str | os.PathLike, settings: ShardSettings, output: str | os.PathLike | None = None,
                   workers: int | None = None, overwrite: bool = False, show_progress: bool = True) -> Prepared:
    """Prepare (or resume, or confirm) the shard set of ``root`` in ``output``
    (default :func:`~fast_style.training.shards.default_folder`); see the module docstring."""
    root = Path(root)
    if not root.exists():
        raise NoImagesError(f"data.root={root}: folder does not exist; point data.root at the folder of photos to prepare")
    folder = Path(output) if output else default_folder(root, settings.resize)
    folder.mkdir(parents=True, exist_ok=True)
    sweep_stale(folder)
    manifest = read_manifest(folder)
    if manifest is not None:
        if _check_settings(manifest, settings, folder / MANIFEST, overwrite=overwrite) and not overwrite:
            log.info("shards up to date: %s (%d images, %s)", folder, manifest["num_images"], settings.describe())
            return Prepared(folder=folder, manifest=manifest, written=0, reused=len(manifest["shards"]))
        _clear(folder)
    elif overwrite:
        _clear(folder)
    plan = _plan(folder, root, settings, overwrite=overwrite, show_progress=show_progress)
    base = root if root.is_dir() else root.parent
    sources = plan["sources"]
    count = (len(sources) + settings.shard_size - 1) // settings.shard_size
    records: list[dict | None] = [read_shard_index(folder, i, settings.format) for i in range(count)]
    todo = [i for i, record in enumerate(records) if record is None]
    reused = count - len(todo)
    if reused:
        log.info("resuming the preparation in %s: %d of %d shards already done", folder, reused, count)
    jobs = [(str(base / sources[j]), sources[j], settings)
            for i in todo for j in range(i * settings.shard_size, min((i + 1) * settings.shard_size, len(sources)))]
    workers = max(1, min(workers or len(os.sched_getaffinity(0)), len(jobs) or 1))
    label = f"preparing {len(jobs)} photos ({settings.describe()})"
    log.info("%s into %s with %d worker(s)", label, folder, workers)
    with progress(len(jobs), label="preparing shards", enabled=show_progress, logger=log) as advance, _mapper(workers) as imap:
        results = imap(_encode_one, jobs)
        for i in todo:
            size = min(settings.shard_size, len(sources) - i * settings.shard_size)
            items = []
            for _ in range(size):
                source, item = next(results)
                if isinstance(item, str):
                    log.warning("skipping %s", item)
                items.append((source, item))
                advance(1)
            records[i] = write_shard(folder, i, items, settings=settings)
    manifest = write_manifest(folder, settings=settings, source_root=plan["source_root"], records=records,
                              skipped_in_scan=len(plan["bad"]))
    log.info("shards ready: %s (%d images in %d shards, %.1f MB, %d photos skipped)", folder, manifest["num_images"],
             count, manifest["data_bytes"] / 1e6, manifest["num_skipped"])
    return Prepared(folder=folder, manifest=manifest, written=len(todo), reused=reused)


class _mapper:
    """``with _mapper(workers) as imap``: an ordered, lazy map; in this process for one
    worker, else over a process pool (closed on exit)."""

    def __init__(self, workers: int):
        self.workers, self.pool = workers, None

    def __enter__(self):
        if self.workers == 1:
            return map
        # forkserver: workers forked from a clean server process, not from this one, whose
        # threads (a loader's queue feeders, thread pools) may hold locks at fork time and
        # leave a forked worker waiting forever; the server imports this module once
        method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
        context = multiprocessing.get_context(method)
        if method == "forkserver":
            context.set_forkserver_preload([__name__])
        self.pool = context.Pool(self.workers)
        return lambda fn, jobs: self.pool.imap(fn, jobs, chunksize=4)

    def __exit__(self, *exc: object) -> None:
        if self.pool is not None:
            self.pool.terminate()
            self.pool.join()
