"""The content folder's file index: which files are readable images, cached between runs.

:func:`scan_images` lists every image-named file under ``root`` (recursive, sorted by
path, hidden files and folders left out), checks each file's header once and skips
bad files with one warning each. The result is cached in an index file, so the next
start of a big folder (COCO: 83k files) stats the files but opens no headers:

- where: in the user's cache folder (:mod:`fast_style.cache`),
  ``<cache>/index/<sha1 of the resolved root>.json``, so the photo folder is only read
  (it may be read-only, or shared by every job of a sweep); ``index_cache=root`` keeps
  it in ``<root>/.fast-style-index.json`` instead (hidden, so never scanned as an image),
  one index for everyone who trains on a writable folder. An index found there is also
  read, never written, when the cache folder has none yet.
- format: JSON ``{"version": 1, "root": "<absolute root>", "files": {"<relative path>":
  [size_bytes, mtime_ns, null | "why it is not readable"]}}``.
- invalidation: per file. A file whose size or modification time differs from its
  entry, or that has no entry (added), is checked again; entries of removed files are
  dropped. The cache is rewritten (atomically: temporary file, then rename) only when
  something changed, so two jobs indexing one folder at once each write a whole index
  and both find the same files.
- trust: an entry is used only for a file found in today's listing under ``root`` (so an
  index cannot point a run outside the folder) and only when it has the shape above;
  an index that is not such JSON, or made for another root, is ignored and rebuilt.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from fast_style.cache import cache_file
from fast_style.errors import FastStyleError, first_line
from fast_style.io.files import atomic_write_text
from fast_style.io.images import IMAGE_EXTENSIONS
from fast_style.progress import progress

log = logging.getLogger(__name__)

INDEX_NAME = ".fast-style-index.json"
INDEX_VERSION = 1


class NoImagesError(FastStyleError):
    """A content folder without a single readable image."""


def readable_header(path: Path) -> str | None:
    """None if Pillow can identify ``path`` as an image, else the reason it cannot."""
    from PIL import Image

    try:
        if path.stat().st_size == 0:
            return "empty file"
        with Image.open(path) as image:
            image.size  # noqa: B018 - reading the size forces the header parse
        return None
    except Exception as exc:  # noqa: BLE001 - every failure means "skip this file"
        return first_line(exc)


def list_with_stats(root: Path) -> dict[str, tuple[int, int]]:
    """{relative posix path: (size, mtime_ns)} of every image-named file below ``root``
    (recursive, sorted as paths sort, hidden files and folders left out), one stat per
    file. Strings, not Paths: a listing of 83k files costs about a second less."""
    found: dict[str, tuple[int, int]] = {}
    stack = [("", str(root))]
    while stack:
        prefix, folder = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError as exc:
            log.warning("skipping folder %s: %s", folder, first_line(exc))
            continue
        for entry in entries:
            if entry.name.startswith("."):
                continue
            if entry.is_dir(follow_symlinks=False):
                stack.append((f"{prefix}{entry.name}/", entry.path))
            elif os.path.splitext(entry.name)[1].lower() in IMAGE_EXTENSIONS and entry.is_file():
                stat = entry.stat()
                found[prefix + entry.name] = (stat.st_size, stat.st_mtime_ns)
    return {key: found[key] for key in sorted(found, key=lambda key: key.split("/"))}


INDEX_PLACES = (True, False, "root")


def index_path(root: Path, where: bool | str = True) -> Path:
    """Where the index of ``root`` is kept: the cache folder (``where=True``) or the root
    itself (``where="root"``); see the module docstring."""
    if where == "root":
        return root / INDEX_NAME
    return cache_file("index", str(root.resolve()))


def _is_entry(entry: object) -> bool:
    """``[size, mtime_ns, None | reason]``, the only entry shape an index may hold."""
    return (isinstance(entry, list) and len(entry) == 3 and all(type(v) is int for v in entry[:2])
            and (entry[2] is None or isinstance(entry[2], str)))


def _read_index(path: Path, root: Path) -> dict[str, list]:
    try:
        data = json.loads(path.read_text())
        if data.get("version") == INDEX_VERSION and data.get("root") == str(root.resolve()):
            return {key: entry for key, entry in data["files"].items() if _is_entry(entry)}
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, KeyError, AttributeError, TypeError) as exc:
        log.warning("ignoring the unreadable index %s (%s); rescanning", path, first_line(exc))
    return {}


def _write_index(path: Path, root: Path, files: dict[str, list]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps({"version": INDEX_VERSION, "root": str(root.resolve()), "files": files},
                                           separators=(",", ":")))
    except OSError as exc:
        log.warning("could not cache the file index at %s (%s); the next start scans again", path, first_line(exc))


def check_headers(root: Path, listing: dict[str, tuple[int, int]], *, cache: bool | str,
                  show_progress: bool = True) -> dict[str, str | None]:
    """{relative path: None (readable) or the reason it is not}, from the cached index
    where a file's size and mtime match its entry, else from its header (then cached).
    ``cache``: one of :data:`INDEX_PLACES` (False: no index)."""
    where = index_path(root, cache) if cache is not False else None
    cached = _read_index(where, root) if where else {}
    seeded = False
    if where and not cached and cache != "root":
        cached = _read_index(root / INDEX_NAME, root)  # an index an older version left in the folder
        seeded = bool(cached)
    result: dict[str, str | None] = {}
    fresh: dict[str, list] = {}
    todo = []
    for key, (size, mtime) in listing.items():
        entry = cached.get(key)
        if entry is not None and entry[0] == size and entry[1] == mtime:
            result[key] = entry[2]
            fresh[key] = entry
        else:
            todo.append((key, size, mtime))
    if todo:
        if len(todo) >= 1000:
            log.info("checking %d image headers under %s%s", len(todo), root,
                     f" ({len(result)} known from {where})" if result else "")
        with progress(len(todo), label="checking image headers", enabled=show_progress and len(todo) >= 1000, logger=log) as advance:
            for key, size, mtime in todo:
                result[key] = readable_header(root / key)
                fresh[key] = [size, mtime, result[key]]
                advance(1)
    if where and (todo or seeded or len(fresh) != len(cached)):
        _write_index(where, root, fresh)
    return {key: result[key] for key in listing}


def scan_images(root: str | os.PathLike, *, cache: bool | str = True,
                show_progress: bool = True) -> tuple[list[Path], list[tuple[Path, str]]]:
    """(good files, [(bad file, reason)]) under ``root``; raises if no good file exists.

    ``cache``: reuse and update the index, in the cache folder (True) or in ``root``
    ("root"), or scan every file's header (False); see the module docstring. A single
    file as ``root`` is never indexed.
    """
    root = Path(root)
    if not root.exists():
        raise NoImagesError(
            f"data.root={root}: folder does not exist; point data.root at a folder of training photos "
            "(e.g. COCO train2014, see README)"
        )
    if root.is_file():
        reason = readable_header(root)
        if reason is not None:
            log.warning("skipping %s: not a readable image (%s)", root, reason)
            raise NoImagesError(f"data.root={root}: a file that is not a readable image ({reason}); "
                                "point data.root at a folder of photos")
        return [root], []
    listing = list_with_stats(root)
    checked = check_headers(root, listing, cache=cache, show_progress=show_progress)
    good = [root / key for key, reason in checked.items() if reason is None]
    bad = [(root / key, reason) for key, reason in checked.items() if reason is not None]
    for path, reason in bad:
        log.warning("skipping %s: not a readable image (%s)", path, reason)
    if not good:
        found = f"{len(listing)} image-named file(s), none readable" if listing else "no image files"
        raise NoImagesError(
            f"data.root={root}: {found} (extensions {', '.join(IMAGE_EXTENSIONS)}); "
            "point data.root at a folder of photos"
        )
    if bad:
        log.warning("skipped %d unreadable file(s) of %d under %s", len(bad), len(listing), root)
    return good, bad
