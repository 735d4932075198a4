"""Every benchmark option and its default: ``python scripts/benchmark.py part=<part> key=value``.

Which keys each part reads (``part=all`` runs every part in turn):

    every part   quick (a smoke test), json (None: benchmark-<part>.json), sizes, precision
    inference    ckpt, channels_last (auto: with compile), compile (None: on, off with quick),
                 tile, budget (pixels above which the 8K image is tiled), big (8K peak RSS), tiling
    training     channels_last (auto: loss_net on CPU, true on CUDA; or loss_net), compile,
                 steps, warmup, batched, device, seed; sizes are SIZExBATCH (``[256x4,128x8]``)
    onnx         ckpt, threads (onnxruntime intra-op threads; None: its own choice)
    video        ckpt, seed, seconds (clip lengths, default [5, 10, 20]); sizes are WIDTHxHEIGHT
    precision    ckpt (besides the random paper-sized net); accuracy of bf16 / fp16 against fp32
    stylize      ckpt, seed, photos (how many), repeats, per_photo, device (the reference loop's;
                 auto: CUDA where there is one); sizes[0] is the photos' longer side
    data         images (generated 640x480 photos), rounds, seed; sizes are crop = data.resize sizes
    trainers     steps, repeats, seed, device, sample_photos, project_dir (its train.py); sizes[0]
                 is SIZExBATCH; train.py's default trainer against the explicit choices
    gpu          (``make gpu-check``, :mod:`benchmarks.gpu`; docs/gpu.md) device (auto: the CUDA GPU,
                 or one line and exit 0 without one; cpu: a smoke run), quick, seed, json
                 (default gpu-check.json), markdown (default gpu-check.md), time_budget_s and the
                 train_*, data_*, feeds, num_workers, loader_batches, stylize_* and tiled_steps
                 keys below; it does not read sizes, steps or warmup

    live         ckpt, styles, seconds (the clip's length, default [10]), quick; sizes[0] is the clip's
                 WIDTHxHEIGHT (default 640x480); live.py realtime=false and true (benchmarks.live)
    web          ckpt (None: checkpoints/demo_swirls.safetensors of project_dir, else a random paper-sized
                 net), seconds (the webcam's measuring time, default [10]), quick; sizes are the photos'
                 sides (the webcam is 640x480); headless Chromium, onnxruntime-web (benchmarks.web);
                 screenshot=PATH: only the docs' picture of the page with a scikit-image photo
    executorch   ckpt, seed, quick; sizes[0] is the frame's WIDTHxHEIGHT (default 640x480); export time,
                 .pte size, memory added by loading and ms/frame against PyTorch fp32 (benchmarks.executorch)

``sample_photos``: the folder of photos the data and stylize parts cut their images from
(None: scikit-image's samples; scripts/benchmark.py passes the checkout's
``../shared/data/content``); ``project_dir``: the checkout whose ``stylize.py`` the stylize
part runs (scripts/benchmark.py passes its own).

``styles``: which style of a multi-style ``ckpt`` the parts that run it (inference, onnx,
video, precision, stylize) measure, one name or index (None: its first); it needs ``ckpt``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from fast_style.errors import FastStyleError
from fast_style.inference.runners.pytorch import DEFAULT_PIXEL_BUDGET

PARTS = ("inference", "training", "onnx", "video", "data", "stylize", "precision", "trainers", "gpu", "web", "live",
         "executorch")
# part=all: the side-by-side ratios (data takes ~30 s on 2 cores); video, stylize and precision (minutes) only when named
ALL_PARTS = ("inference", "training", "onnx", "data")
DEFAULT_SIZES = {"inference": [256, 512, 1024, 2048], "training": ["256x4", "128x8"], "onnx": [256, 512, 1024],
                 "video": ["1280x720"], "data": [256], "stylize": [1024], "precision": [1024], "trainers": ["128x4"],
                 "gpu": [], "web": [1024], "live": ["640x480"],
                 "executorch": ["640x480"]}
DEFAULT_JSON = {"gpu": "gpu-check.json"}  # the others: benchmark-<part>.json


class BenchOptionError(FastStyleError):
    """A benchmark option that cannot be used."""


@dataclass
class BenchmarkConfig:
    """The options of every part, flat (see the module docstring for who reads what)."""

    part: str = "all"
    quick: bool = False
    json: str | None = None
    sizes: list[Any] | None = None
    precision: str = "auto"
    ckpt: str | None = None
    styles: str | None = None
    channels_last: str = "auto"
    compile: bool | None = None
    tile: int = 512
    budget: int = DEFAULT_PIXEL_BUDGET
    big: bool = True
    tiling: bool = True
    steps: int = 20
    warmup: int = 2
    batched: bool = False
    device: str = "auto"
    seed: int = 0
    threads: int | None = None
    seconds: list[float] | None = None
    images: int = 256
    rounds: int = 5
    photos: int = 8
    repeats: int = 2
    per_photo: bool = True
    sample_photos: str | None = None
    project_dir: str | None = None
    # part=gpu (benchmarks.gpu): training variants x feeds, then stylize variants x sizes
    markdown: str | None = None  # None: gpu-check.md
    time_budget_s: float = 480.0  # measurements that would start later are listed as skipped
    train_size: int = 256
    train_batch: int = 4
    train_variants: list[str] = field(default_factory=lambda: ["fp32", "bf16", "bf16+cudnn", "bf16+compile", "fp16"])
    train_warmup: int = 10
    train_steps: int = 50
    data_root: str | None = None  # a photo folder; None: draw data_images 640x480 JPEGs in a temp folder
    data_images: int = 200
    num_workers: int = 4  # the DataModule's workers (configs/data/coco.yaml)
    feeds: list[str] = field(default_factory=lambda: ["folder", "shards"])  # besides synthetic; shards: made in a temp folder
    loader_batches: int = 100  # batches timed for the loader alone
    stylize_sizes: list[str] = field(default_factory=lambda: ["1024x1024", "3840x2160"])
    stylize_batch: int = 1
    stylize_variants: list[str] = field(default_factory=lambda: [
        "fp32", "bf16", "fp16", "fp32+compile", "bf16+compile", "bf16+cudagraphs", "fp32+tiled"])
    stylize_warmup: int = 3
    stylize_steps: int = 20
    tiled_steps: int = 1
    screenshot: str | None = None  # part=web: only write this screenshot of the page (docs/images/web_demo.jpg)

    def for_part(self, part: str) -> BenchmarkConfig:
        """These options for one ``part``: its default ``sizes`` and ``json`` where unset."""
        if part not in PARTS:
            raise BenchOptionError(f"unknown part {part!r}; choose {', '.join(PARTS)} or all")
        if self.styles not in (None, "") and not self.ckpt:
            raise BenchOptionError(f"styles={self.styles} picks a style of a multi-style model; give it with ckpt=<model>")
        sizes = list(self.sizes) if self.sizes else DEFAULT_SIZES[part]
        return dataclasses.replace(self, part=part, sizes=sizes,
                                   json=self.json or DEFAULT_JSON.get(part, f"benchmark-{part}.json"),
                                   markdown=self.markdown or "gpu-check.md")

    def parts(self) -> list[BenchmarkConfig]:
        """One config per part to run (``all``: every part, each writing its own JSON)."""
        if self.part == "all" and self.json:
            raise BenchOptionError("json= names one file, but part=all writes benchmark-<part>.json for each part")
        return [self.for_part(part) for part in (ALL_PARTS if self.part == "all" else [self.part])]
