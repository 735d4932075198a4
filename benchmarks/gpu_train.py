"""gpu-check, training: steps per second of the training step, fed two ways.

One step is ``StyleTransferModule.step_losses`` (transform net, VGG-16 taps, content +
style + TV losses) under the precision's autocast, then backward and Adam: the step of
``benchmarks.training`` (:class:`FastStep`), plus :class:`ScaledStep` for fp16,
which adds the gradient scaler of Lightning's ``precision=16-mixed``. The networks are
seeded random ones: a paper-sized TransformerNet and VGG-16 (``loss_net.pretrained=false``).

Each variant is timed twice on the same module:

- ``synthetic``: a few random batches already on the device, reused in turn (no loader);
- ``folder``: batches of the real ``ContentDataModule`` reading the photo folder (its
  workers decode, resize and crop JPEGs; pinned memory on CUDA), copied with
  ``non_blocking=True`` as Lightning does;
- ``shards``: the same DataModule reading the folder's prepared shards (raw uint8 at the
  crop size, ``scripts/prepare_data.py``): its workers only crop.

    images/s = batch * steps/s;  vs synthetic = loader steps/s / synthetic steps/s

``vs synthetic`` near 1 means the loader keeps up; well below 1, training waits for data.
``loader wait`` is the share of the timed region the host spent waiting for the next batch.
Each loader alone (no step) is timed too, in images/s and images/s per worker.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from benchmarks.timing import Timing, time_calls, time_once
from benchmarks.training import LOSS, FastStep
from benchmarks.variants import LIGHTNING_PRECISION, Variant
from fast_style.training.data import ContentDataModule
from fast_style.training.module import StyleTransferModule

SYNTHETIC_BATCHES = 4  # distinct random batches cycled through in the synthetic feed


class ScaledStep:
    """Lightning's ``precision=16-mixed`` around the module's step: the forward under
    ``autocast(float16)``; ``scaler.scale(total).backward()``; ``scaler.step`` (unscales,
    skips the step when a gradient is inf/NaN); ``scaler.update()`` (halves the scale
    after a skip, doubles it after 2000 good steps). ``skipped`` counts skipped steps."""

    def __init__(self, *, module: StyleTransferModule, device: torch.device, lr: float):
        self.module, self.device = module, device
        self.optimizer = torch.optim.Adam(module.transformer.parameters(), lr=lr)
        self.scaler = torch.amp.GradScaler(device.type)

    def __call__(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        with torch.autocast(self.device.type, dtype=torch.float16, cache_enabled=False):
            losses = self.module.step_losses(x)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(losses["total"]).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return {k: v.detach() for k, v in losses.items()}


def build_step(
    variant: Variant, *, model: dict, size: int, device: torch.device, seed: int, lr: float = 1e-3
) -> FastStep | ScaledStep:
    """A seeded module on ``device`` with the fast switches (channels_last on CUDA, the
    loss network only on a CPU, as the trainer configs) and its step for ``variant``."""
    gen = torch.Generator().manual_seed(seed)
    style_image = torch.rand(1, 3, size, size, generator=gen)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        module = StyleTransferModule(
            model=model, loss={**LOSS, "batched": False}, loss_net={"arch": "vgg16", "pretrained": False, "seed": seed},
            style={"name": "gpu-check"}, style_image=style_image, lr=lr,
            channels_last=True if device.type == "cuda" else "loss_net", compile=variant.compile,
        ).to(device)
    if variant.precision == "fp16":
        return ScaledStep(module=module, device=device, lr=lr)
    return FastStep(module=module, precision=LIGHTNING_PRECISION[variant.precision], device=device, lr=lr)


class BatchFeed:
    """Batches on ``device`` from an iterator, with the time spent waiting for each one."""

    def __init__(self, batches: Iterator[torch.Tensor], *, device: torch.device):
        self.batches, self.device = batches, device
        self.waits: list[float] = []

    def __next__(self) -> torch.Tensor:
        seconds, batch = time_once(lambda: next(self.batches).to(self.device, non_blocking=True))
        self.waits.append(seconds)
        return batch


def synthetic_feed(*, size: int, batch: int, device: torch.device, seed: int) -> BatchFeed:
    """:data:`SYNTHETIC_BATCHES` random batches (batch, 3, size, size), made on ``device`` once."""
    gen = torch.Generator().manual_seed(seed + 1)
    batches = [torch.rand(batch, 3, size, size, generator=gen).to(device) for _ in range(SYNTHETIC_BATCHES)]
    return BatchFeed(itertools.cycle(batches), device=device)


def endless(loader) -> Iterator[torch.Tensor]:
    """The loader's batches, epoch after epoch."""
    while True:
        yield from loader


def loader_feed(datamodule: ContentDataModule, *, device: torch.device) -> BatchFeed:
    return BatchFeed(endless(datamodule.train_dataloader()), device=device)


DATA_KINDS = ("folder", "shards")


def make_datamodule(root: str | Path, *, size: int, batch: int, num_workers: int,
                    data: str = "folder", shard_folder: Path | None = None) -> ContentDataModule:
    """The training DataModule on ``root`` as ``configs/data/coco.yaml`` sets it up (shorter
    side resized to the crop size, random crops, pinned memory where CUDA is), reading
    ``data``: ``folder`` (decode and resize every JPEG) or ``shards``: prepared here into
    ``shard_folder`` (not into ``root``), as ``scripts/prepare_data.py`` does, at
    ``resize`` = the crop size, raw uint8."""
    if data not in DATA_KINDS:
        raise ValueError(f"data={data!r}: one of {DATA_KINDS}")
    shards: str | bool = False
    if data == "shards":
        from fast_style.training.prepare import prepare_shards
        from fast_style.training.shards import ShardSettings

        if shard_folder is None:
            raise ValueError("data=shards needs a shard_folder to prepare them in")
        prepare_shards(root=root, settings=ShardSettings(resize=size), output=shard_folder, show_progress=False)
        shards = str(shard_folder)
    datamodule = ContentDataModule(root=str(root), image_size=size, resize=size, batch_size=batch,
                                   num_workers=num_workers, pin_memory="auto", shards=shards)
    datamodule.setup("fit")
    if (datamodule.shard_set is not None) != (data == "shards"):
        raise RuntimeError(f"the {data} DataModule read {'shards' if datamodule.shard_set else 'the folder'}")
    return datamodule


def write_photos(folder: Path, *, count: int, size: tuple[int, int] = (640, 480), seed: int = 0) -> Path:
    """``count`` COCO-like JPEGs (``size`` = (width, height), quality 90) drawn here: smooth
    colour fields, a few soft blobs and film grain, so decoding costs what a photo costs."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    width, height = size
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32) / max(width, height)
    for index in range(count):
        field = np.stack([np.sin(xx * rng.uniform(2, 12) + yy * rng.uniform(2, 12) + rng.uniform(0, 6))
                          for _ in range(3)], axis=-1)
        for _ in range(4):
            cx, cy, r = rng.uniform(0, 1), rng.uniform(0, 0.75), rng.uniform(0.05, 0.2)
            blob = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * r * r))[..., None]
            field = field * (1 - blob) + rng.uniform(-1, 1, size=3) * blob
        grain = rng.normal(0, 0.06, size=field.shape)
        pixels = np.clip((field * 0.5 + 0.5 + grain) * 255, 0, 255).astype(np.uint8)
        Image.fromarray(pixels, "RGB").save(folder / f"photo_{index:05d}.jpg", quality=90)
    return folder


def time_loader(datamodule: ContentDataModule, *, data: str, warmup: int, batches: int) -> dict[str, Any]:
    """The loader alone: batches/s and images/s over ``batches`` batches after ``warmup``;
    ``data`` names what it reads (folder or shards), for the table."""
    feed = endless(datamodule.train_dataloader())
    timing = time_calls(lambda: next(feed), device=torch.device("cpu"), warmup=warmup, steps=batches)
    workers = max(datamodule.num_workers, 1)
    return {"data": data, "batches": batches, "workers": datamodule.num_workers, "batches_per_s": timing.calls_per_s,
            "images_per_s": timing.calls_per_s * datamodule.batch_size,
            "images_per_s_per_worker": timing.calls_per_s * datamodule.batch_size / workers}


@contextlib.contextmanager
def cudnn_benchmark(enabled: bool) -> Iterator[None]:
    """``torch.backends.cudnn.benchmark = enabled`` for the block, restored after."""
    before = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = enabled
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = before


def row(variant: Variant, data: str, timing: Timing, *, batch: int, feed: BatchFeed) -> dict[str, Any]:
    """One table row; ``loader_wait`` from the feed's last ``timing.steps`` waits."""
    waits = feed.waits[-timing.steps:]
    return {"variant": variant.name, "data": data, "steps": timing.steps, "steps_per_s": timing.calls_per_s,
            "images_per_s": timing.calls_per_s * batch, "ms_per_step": 1e3 * timing.per_call_s,
            "peak_mb": timing.peak_mb, "loader_wait": sum(waits) / timing.seconds}


def measure_variant(
    variant: Variant, *, model: dict, size: int, batch: int, device: torch.device, seed: int,
    warmup: int, steps: int, datamodules: dict[str, ContentDataModule],
) -> list[dict[str, Any]]:
    """Rows for ``variant``: synthetic batches, then batches of each DataModule (by the
    name of what it reads: folder, shards), all through the same step (a compiled step is
    compiled once, in the first warm-up)."""
    with cudnn_benchmark(variant.cudnn_benchmark or torch.backends.cudnn.benchmark):
        step = build_step(variant, model=model, size=size, device=device, seed=seed)
        feed = synthetic_feed(size=size, batch=batch, device=device, seed=seed)
        rows = [row(variant, "synthetic", time_calls(lambda: step(next(feed)), device=device, warmup=warmup,
                                                     steps=steps), batch=batch, feed=feed)]
        for data, datamodule in datamodules.items():
            feed = loader_feed(datamodule, device=device)
            timing = time_calls(lambda: step(next(feed)), device=device, warmup=warmup, steps=steps)  # noqa: B023
            rows.append(row(variant, data, timing, batch=batch, feed=feed))
            rows[-1]["vs_synthetic"] = rows[-1]["steps_per_s"] / rows[0]["steps_per_s"]
    return rows
