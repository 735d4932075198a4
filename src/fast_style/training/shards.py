"""Training-ready shards: photos decoded and resized once, stored compactly.

A shard set is one folder (by default ``<data.root>/.fast-style-shards/resize-<R>/``,
hidden so the folder scan never sees it; ``resize-full`` when ``data.resize`` is null):

    plan.json                 the settings and the source files (relative paths, sorted),
                              written first; a resumed preparation reuses it
    shard-00000.data          the images of shard 0, back to back (format below)
    shard-00000.json          its index, written after the data file: {"count": N,
                              "data_bytes": B, "images": [[offset, length, height, width], ...],
                              "sources": [...], "skipped": [[source, reason], ...]}
    manifest.json             written last: the settings, the shard names and the totals;
                              a set without it is incomplete and never read

Every file is written under a temporary name and renamed, so a killed preparation
leaves whole shards (reused by the next run) and temporary files (swept by it).
A shard counts as done when its index exists and its data file has ``data_bytes``.

Formats (``format``), both uint8 RGB with the shorter side resized to ``resize``
(null: the photo's own size, shorter side capped at ``cap``):

- ``raw``: each image as a C-contiguous (height, width, 3) uint8 array; read through
  a numpy memmap, so a crop copies only its own rows (no decode).
- ``jpeg``: each image JPEG-encoded (``quality``, 95 by default; no chroma subsampling,
  4:4:4, so colours stay sharp); decoded on read.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from fast_style.errors import FastStyleError
from fast_style.io.files import atomic_output, atomic_write_text

FORMATS = ("raw", "jpeg")
SHARDS_DIR = ".fast-style-shards"
MANIFEST = "manifest.json"
PLAN = "plan.json"
VERSION = 1
DEFAULT_CAP = 512


class ShardError(FastStyleError):
    """A shard set that cannot be used as it is (incomplete, damaged, other settings)."""


@dataclass(frozen=True)
class ShardSettings:
    """What decides a shard set's pixels: two sets with equal settings and sources are equal.

    ``resize``: shorter side in pixels, or None (keep the size, shorter side at most
    ``cap``); ``format``: raw or jpeg; ``quality``: JPEG quality (jpeg only);
    ``shard_size``: images per shard.
    """

    resize: int | None
    format: str = "raw"
    quality: int = 95
    cap: int = DEFAULT_CAP
    shard_size: int = 1024
    version: int = VERSION

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise ShardError(f"format={self.format!r}: choose {' or '.join(FORMATS)}")
        if self.resize is not None and self.resize < 1:
            raise ShardError(f"data.resize={self.resize}: give a positive size or null")
        if self.shard_size < 1:
            raise ShardError(f"shard_size={self.shard_size}: give a positive number of images per shard")

    def describe(self) -> str:
        size = f"resize={self.resize}" if self.resize else f"resize=null (shorter side capped at {self.cap})"
        return f"{size}, format={self.format}" + (f", quality={self.quality}" if self.format == "jpeg" else "")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ShardSettings:
        return cls(**{k: data[k] for k in ("resize", "format", "quality", "cap", "shard_size", "version")})


def default_folder(root: str | os.PathLike, resize: int | None) -> Path:
    """``<root>/.fast-style-shards/resize-<R>`` (``resize-full`` for resize=None)."""
    return Path(root) / SHARDS_DIR / f"resize-{resize if resize else 'full'}"


def shard_name(index: int) -> str:
    return f"shard-{index:05d}"


# ------------------------------------------------------------------ writing


def encode(array: np.ndarray, *, settings: ShardSettings) -> bytes:
    """(H, W, 3) uint8 -> the bytes stored for it in ``settings.format``."""
    if settings.format == "raw":
        return np.ascontiguousarray(array, dtype=np.uint8).tobytes()
    buffer = io.BytesIO()
    Image.fromarray(array, "RGB").save(buffer, format="JPEG", quality=settings.quality, subsampling=0)
    return buffer.getvalue()


def write_shard(folder: Path, index: int, items: list[tuple[str, tuple[bytes, int, int] | str]], *,
                settings: ShardSettings) -> dict[str, Any]:
    """Write shard ``index`` of ``items`` ([(source, (stored bytes from :func:`encode`,
    height, width) or the reason it could not be read)]): the data file, then the index
    file, each atomically. Returns the index record."""
    images, sources, skipped = [], [], []
    offset = 0
    name = shard_name(index)
    with atomic_output(folder / f"{name}.data") as tmp, open(tmp, "wb") as out:
        for source, item in items:
            if isinstance(item, str):
                skipped.append([source, item])
                continue
            blob, height, width = item
            out.write(blob)
            images.append([offset, len(blob), height, width])
            sources.append(source)
            offset += len(blob)
    record = {"count": len(images), "data_bytes": offset, "images": images, "sources": sources, "skipped": skipped}
    atomic_write_text(folder / f"{name}.json", json.dumps(record, separators=(",", ":")))
    return record


def _is_count(value: Any) -> bool:
    return type(value) is int and value >= 0


def _is_record(record: Any, fmt: str) -> bool:
    """A shard index of the documented shape whose images all lie inside its data file
    (raw: each exactly height x width x 3 bytes), so reading one can neither run past the
    file nor reshape wrongly."""
    if not isinstance(record, dict) or not _is_count(record.get("data_bytes")):
        return False
    images, sources, skipped = record.get("images"), record.get("sources"), record.get("skipped")
    if not (isinstance(images, list) and isinstance(sources, list) and isinstance(skipped, list)
            and record.get("count") == len(images) == len(sources) and all(isinstance(s, str) for s in sources)):
        return False
    for row in images:
        if not (isinstance(row, list) and len(row) == 4 and all(_is_count(v) for v in row)):
            return False
        offset, length, height, width = row
        if height < 1 or width < 1 or offset + length > record["data_bytes"] or (
                fmt == "raw" and length != height * width * 3):
            return False
    return True


def read_shard_index(folder: Path, index: int, fmt: str) -> dict[str, Any] | None:
    """Shard ``index``'s record if the shard is complete and whole (an index of the
    documented shape, a data file of the recorded size), else None: it is redone by a
    preparation and refused by :class:`ShardSet`."""
    name = shard_name(index)
    try:
        record = json.loads((folder / f"{name}.json").read_text())
        if _is_record(record, fmt) and (folder / f"{name}.data").stat().st_size == record["data_bytes"]:
            return record
    except (OSError, ValueError):
        pass
    return None


def write_manifest(folder: Path, *, settings: ShardSettings, source_root: str, records: list[dict],
                   skipped_in_scan: int = 0) -> dict:
    """Write ``manifest.json`` (atomically), which marks the set as complete; returns it."""
    manifest = {
        "settings": asdict(settings), "source_root": source_root, "shards": [shard_name(i) for i in range(len(records))],
        "num_images": sum(r["count"] for r in records), "num_skipped": skipped_in_scan + sum(len(r["skipped"]) for r in records),
        "data_bytes": sum(r["data_bytes"] for r in records),
    }
    atomic_write_text(folder / MANIFEST, json.dumps(manifest, indent=1))
    return manifest


def read_manifest(folder: Path) -> dict[str, Any] | None:
    """The manifest of a complete shard set in ``folder``, None if there is none; a
    :class:`ShardError` if it is not one of the documented shape (its settings valid, its
    shards named shard-00000, shard-00001, ... in order)."""
    path = folder / MANIFEST
    try:
        manifest = json.loads(path.read_text())
        if not isinstance(manifest, dict) or not isinstance(manifest.get("settings"), dict):
            raise ValueError("not a shard manifest")
        ShardSettings.from_dict(manifest["settings"])
        shards = manifest.get("shards")
        if not isinstance(shards, list) or shards != [shard_name(i) for i in range(len(shards))]:
            raise ValueError("its shard list is not shard-00000, shard-00001, ...")
        if not all(_is_count(manifest.get(key)) for key in ("num_images", "num_skipped", "data_bytes")):
            raise ValueError("its totals are not counts")
        return manifest
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError, ShardError) as exc:
        raise ShardError(f"{path}: unreadable or damaged ({str(exc)[:200]}); delete {folder} and prepare again "
                         "(python scripts/prepare_data.py ... overwrite=true)") from exc


# ------------------------------------------------------------------ reading


class ShardSet:
    """A complete shard set opened for reading: ``len()``, ``shape(i)`` and ``image(i)``
    ((H, W, 3) uint8, read-only for raw). Files are opened lazily in each process, so a
    ShardSet can be sent to DataLoader workers (fork or spawn)."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        manifest = read_manifest(self.folder)
        if manifest is None:
            raise ShardError(f"{self.folder}: no {MANIFEST}, so not a complete shard set; "
                             "run python scripts/prepare_data.py (it resumes an interrupted preparation)")
        self.manifest = manifest
        self.settings = ShardSettings.from_dict(manifest["settings"])
        rows, shard_of, self.sources = [], [], []
        for number, name in enumerate(manifest["shards"]):
            record = read_shard_index(self.folder, number, self.settings.format)
            if record is None:
                raise ShardError(f"{self.folder}: shard {name} is missing or damaged; "
                                 "prepare again with overwrite=true")
            rows.extend(record["images"])
            shard_of.extend([number] * record["count"])
            self.sources.extend(record["sources"])
        self.table = np.asarray(rows, dtype=np.int64).reshape(-1, 4)  # offset, length, height, width
        self.shard_of = np.asarray(shard_of, dtype=np.int32)
        self._open: dict[int, Any] = {}

    def __len__(self) -> int:
        return len(self.table)

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_open": {}}

    def shape(self, index: int) -> tuple[int, int]:
        """(height, width) of image ``index``."""
        return int(self.table[index, 2]), int(self.table[index, 3])

    def _file(self, shard: int) -> Any:
        handle = self._open.get(shard)
        if handle is None:
            path = self.folder / f"{self.manifest['shards'][shard]}.data"
            if self.settings.format == "raw":
                handle = np.memmap(path, dtype=np.uint8, mode="r") if path.stat().st_size else np.empty(0, np.uint8)
            else:
                handle = os.open(path, os.O_RDONLY)
            self._open[shard] = handle
        return handle

    def image(self, index: int) -> np.ndarray:
        """Image ``index`` as (H, W, 3) uint8 (a read-only view into the memmap for raw)."""
        offset, length, height, width = (int(v) for v in self.table[index])
        handle = self._file(int(self.shard_of[index]))
        if self.settings.format == "raw":
            return handle[offset:offset + length].reshape(height, width, 3)
        with Image.open(io.BytesIO(os.pread(handle, length, offset))) as image:
            image.load()
            return np.asarray(image if image.mode == "RGB" else image.convert("RGB"))

    def close(self) -> None:
        """Close the files this process opened (they are opened again when needed)."""
        for handle in self._open.values():
            if isinstance(handle, int):
                os.close(handle)
        self._open.clear()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()
