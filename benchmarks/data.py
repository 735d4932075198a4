"""Training data throughput: the plain photo folder against prepared shards, side by side.

    python scripts/benchmark.py part=data [sizes=[256]] [images=256] [rounds=5] [quick=true]

``images`` COCO-like photos are generated into a temporary folder from the sample
photos of ``sample_photos`` (scripts/benchmark.py passes the checkout's
``../shared/data/content``; scikit-image's when that is missing or not given): random 4:3 crops (every fourth one portrait), resized to 640x480, saved as
JPEG quality 90, about COCO's size and compression. For each size S (crop S, data.resize
S) the folder is prepared into raw and jpeg shards, then one process (what one
DataLoader worker does, torch at one thread) loads every image once per round for each
source in turn, in a shuffled order, the sources' order rotating between rounds.
Images/s per worker = images / median round time; the speed-up is the median of the
per-round time ratios against the folder. Also reported: bytes per stored image and
the preparation's images/s (one process). Prints a markdown table, writes JSON.
"""

from __future__ import annotations

import json
import os
import platform
import random
import statistics
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from benchmarks.options import BenchmarkConfig, BenchOptionError
from benchmarks.timing import time_once
from fast_style.training.data import ContentImages, ShardImages
from fast_style.training.index import scan_images
from fast_style.training.prepare import prepare_shards
from fast_style.training.shards import ShardSet, ShardSettings

COCO_SIZE = (640, 480)
COCO_QUALITY = 90


def source_photos(folder: str | Path | None) -> list[Image.Image]:
    """The sample photos to cut the benchmark's images from, as RGB: the JPEGs and PNGs of
    ``folder``, else (None, missing or empty) scikit-image's four samples."""
    folder = Path(folder) if folder else None
    paths = sorted(p for p in folder.glob("*") if p.suffix.lower() in (".jpg", ".png")) \
        if folder is not None and folder.is_dir() else []
    if paths:
        return [Image.open(p).convert("RGB") for p in paths]
    try:
        from skimage import data as samples
    except ImportError as exc:
        raise BenchOptionError(f"no sample photos: {folder or 'sample_photos'} is missing and scikit-image is not installed "
                               "(pip install scikit-image)") from exc
    return [Image.fromarray(getattr(samples, name)()).convert("RGB") for name in ("astronaut", "chelsea", "coffee",
                                                                                   "rocket")]


def make_photos(folder: Path, count: int, *, seed: int, sample_photos: str | Path | None) -> list[Path]:
    """``count`` COCO-like JPEGs (640x480, every fourth 480x640) in ``folder``, cut from
    :func:`source_photos` of ``sample_photos``."""
    rng = random.Random(seed)
    photos = source_photos(sample_photos)
    paths = []
    for i in range(count):
        photo = photos[i % len(photos)]
        width, height = COCO_SIZE if i % 4 else COCO_SIZE[::-1]
        w, h = photo.size
        scale = rng.uniform(0.6, 1.0) * min(w / width, h / height)
        cw, ch = round(width * scale), round(height * scale)
        left, top = rng.randint(0, w - cw), rng.randint(0, h - ch)
        image = photo.crop((left, top, left + cw, top + ch)).resize((width, height), Image.Resampling.BILINEAR)
        if rng.random() < 0.5:
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        path = folder / f"{i:06d}.jpg"
        image.save(path, quality=COCO_QUALITY)
        paths.append(path)
    return paths


def time_round(dataset, order: list[int]) -> float:
    """Seconds to load ``dataset[i]`` for each i of ``order`` (each image dropped once loaded)."""

    def load() -> None:
        for index in order:
            dataset[index]

    return time_once(load)[0]


def measure(folder: Path, *, size: int, rounds: int, seed: int) -> dict[str, Any]:
    """Prepare raw and jpeg shards of ``folder`` at ``size`` and time the three sources."""
    files, _ = scan_images(folder, show_progress=False)
    sources: dict[str, Any] = {"folder": ContentImages(files, image_size=size, resize=size)}
    stored: dict[str, dict] = {"folder": {"bytes_per_image": sum(p.stat().st_size for p in files) / len(files)}}
    for fmt in ("jpeg", "raw"):
        settings = ShardSettings(resize=size, format=fmt, shard_size=64)
        output = folder.parent / f"shards-{fmt}-{size}"
        seconds, done = time_once(lambda settings=settings, output=output: prepare_shards(
            root=folder, settings=settings, output=output, workers=1, show_progress=False))
        sources[fmt] = ShardImages(ShardSet(done.folder), image_size=size)
        stored[fmt] = {"bytes_per_image": done.manifest["data_bytes"] / done.manifest["num_images"],
                       "prepare_images_per_s": len(files) / seconds}
    names = list(sources)
    rng = random.Random(seed)
    times: dict[str, list[float]] = {name: [] for name in names}
    for name in names:  # warm-up: page cache, lazy opens
        time_round(sources[name], list(range(min(8, len(files)))))
    for r in range(rounds):
        order = list(range(len(files)))
        rng.shuffle(order)
        for name in names[r % len(names):] + names[:r % len(names)]:
            times[name].append(time_round(sources[name], order))
    result = {"size": size, "images": len(files), "rounds": rounds, "times_s": times, "sources": {}}
    for name in names:
        ratios = [f / t for f, t in zip(times["folder"], times[name], strict=True)]
        result["sources"][name] = {**stored[name], "images_per_s": len(files) / statistics.median(times[name]),
                                   "speedup": statistics.median(ratios)}
    return result


def markdown(results: list[dict]) -> str:
    lines = ["| size | source | images/s per worker | vs folder | stored per image | preparation images/s |",
             "|---|---|---|---|---|---|"]
    for r in results:
        for name, s in r["sources"].items():
            label = {"folder": "folder (640x480 JPEG q90)", "jpeg": "shards, jpeg q95", "raw": "shards, raw uint8"}[name]
            prep = f"{s['prepare_images_per_s']:.0f}" if "prepare_images_per_s" in s else "-"
            lines.append(f"| {r['size']} px | {label} | {s['images_per_s']:.0f} | **{s['speedup']:.2f}x** "
                         f"| {s['bytes_per_image'] / 1e3:.0f} kB | {prep} |")
    lines.append("")
    lines.append(f"One process at one torch thread (one DataLoader worker's work: decode or read, resize, random crop, "
                 f"tensor); {results[0]['images']} generated photos, {results[0]['rounds']} shuffled rounds per source, "
                 "interleaved; images/s from the median round, speed-up = median of per-round ratios.")
    return "\n".join(lines)


def main(options: BenchmarkConfig) -> int:
    """Run the data benchmark, print the table, write ``options.json``; 0, or 1 when the
    raw shards are not at least 3x the folder's images/s (the target)."""
    count, rounds = (16, 2) if options.quick else (options.images, options.rounds)
    sizes = [64] if options.quick else [int(s) for s in options.sizes]
    if count < 1 or rounds < 1:
        raise BenchOptionError(f"images={count}, rounds={rounds}: give positive numbers")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    results = []
    try:
        with tempfile.TemporaryDirectory(prefix="fast-style-bench-data-") as tmp:
            folder = Path(tmp) / "photos"
            folder.mkdir()
            print(f"generating {count} COCO-like 640x480 JPEGs ...", flush=True)
            make_photos(folder, count, seed=options.seed, sample_photos=options.sample_photos)
            for size in sizes:
                print(f"data at {size} px: folder vs jpeg and raw shards, {rounds} rounds ...", flush=True)
                results.append(measure(folder, size=size, rounds=rounds, seed=options.seed))
    finally:
        torch.set_num_threads(threads)
    table = markdown(results)
    print(table)
    report = {"benchmark": "data", "machine": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
              "load_average": list(os.getloadavg()), "torch": torch.__version__, "numpy": np.__version__,
              "results": results, "table": table}
    Path(options.json).write_text(json.dumps(report, indent=2))
    print(f"wrote {options.json}")
    return 0 if all(r["sources"]["raw"]["speedup"] >= 3.0 for r in results) or options.quick else 1
