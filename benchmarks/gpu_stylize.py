"""gpu-check, stylizing: images/s and MP/s of the stylize runner, per variant and size.

The runner is the one ``stylize.py`` builds (:func:`fast_style.inference.runners.rules.make_runner`
with ``runtime=torch`` and the variant's ``precision``, ``compile`` and ``pixel_budget``;
channels_last as its ``auto`` picks: on CUDA) around a seeded random paper-sized TransformerNet. Two paths are timed:

- ``device``: the network alone on a batch already on the device in the runner's dtype
  and memory format (what the GPU can do);
- ``host``: ``runner(batch)`` from a float32 CPU batch to the clamped float32 CPU output,
  as ``stylize.py`` calls it (adds the host-device copies, the cast and the clamp).

    images/s = batch / seconds per call;  MP/s = images/s * W * H / 1e6

``+cudagraphs`` compiles the runner's network with ``mode="reduce-overhead"`` (one CUDA
graph per input shape, replayed: ``Stylizer.compile_mode``). ``+tiled`` sets the pixel
budget to the CPU default, 4.2 MP (on CUDA ``stylize.py``'s default grows with the free
memory, so a 4K frame runs whole there): images above it take the tiled path,
timed over ``tiled_steps`` calls with no warm-up (a tiled 4K image takes seconds).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch

from benchmarks.timing import Timing, time_calls
from benchmarks.variants import Variant
from fast_style.inference.options import StylizeOptions
from fast_style.inference.runners.pytorch import DTYPES, Stylizer, dtype_name
from fast_style.inference.runners.rules import make_runner
from fast_style.io.metadata import StyleModelMetadata
from fast_style.io.model_files import StyleModel
from fast_style.nn.transformer import TransformerNet


def parse_size(text: object) -> tuple[int, int]:
    """``"3840x2160"`` -> (3840, 2160) (width, height); ``1024`` -> (1024, 1024)."""
    from benchmarks.options import BenchOptionError

    width, _, height = str(text).lower().partition("x")
    height = height or width
    if not (width.isdigit() and height.isdigit()):
        raise BenchOptionError(f"stylize size {text!r}: give WIDTHxHEIGHT, e.g. 3840x2160")
    return int(width), int(height)


def seeded_network(model: dict, *, seed: int) -> TransformerNet:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return TransformerNet(**model).eval()


def build_runner(variant: Variant, network: TransformerNet, *, device: torch.device) -> Stylizer:
    """The runner stylize.py would build for ``variant`` on ``device``."""
    options = StylizeOptions(device=str(device), precision=variant.precision, compile=variant.compile,
                             runtime="torch", pixel_budget=StylizeOptions.pixel_budget if variant.tiled else 0)
    model = StyleModel(path=Path("gpu-check.safetensors"), kind="safetensors",
                       metadata=StyleModelMetadata(style_name="gpu-check"), network=network)
    runner = make_runner(model, options)
    if not isinstance(runner, Stylizer):
        raise TypeError(f"make_runner gave a {type(runner).__name__} for {variant.name}; gpu-check times a Stylizer")
    if variant.cudagraphs:
        runner = dataclasses.replace(runner, compile=True, compile_mode="reduce-overhead")
    if variant.tiled:
        runner = dataclasses.replace(runner, pixel_budget=StylizeOptions.pixel_budget)
    return runner


def network_call(runner: Stylizer, x: torch.Tensor):
    """The network alone on a prepared batch, as the runner runs it (its context, its
    compiled or eager forward)."""

    def call() -> torch.Tensor:
        with runner.context():
            return runner.forward(x)

    return call


def row(variant: Variant, path: str, size: tuple[int, int], batch: int, timing: Timing) -> dict[str, Any]:
    images_per_s = batch * timing.calls_per_s
    return {"variant": variant.name, "path": path, "size": f"{size[0]}x{size[1]}", "batch": batch,
            "steps": timing.steps, "images_per_s": images_per_s, "mp_per_s": images_per_s * size[0] * size[1] / 1e6,
            "ms_per_image": 1e3 / images_per_s, "peak_mb": timing.peak_mb}


def measure_variant(
    variant: Variant, *, network: TransformerNet, sizes: list[tuple[int, int]], batch: int,
    device: torch.device, seed: int, warmup: int, steps: int, tiled_steps: int,
) -> list[dict[str, Any]]:
    """Rows for ``variant`` at each size: the device path, then the host path (the tiled
    variant: the host path only, the way stylize.py runs it)."""
    runner = build_runner(variant, network, device=device)
    gen = torch.Generator().manual_seed(seed + 2)
    rows = []
    for width, height in sizes:
        host = torch.rand(batch, 3, height, width, generator=gen)
        if variant.tiled:
            timing = time_calls(lambda: runner(host), device=device, warmup=0, steps=tiled_steps)  # noqa: B023
            rows.append(row(variant, "host", (width, height), batch, timing))
            continue
        x = runner.prepare(host)
        timing = time_calls(network_call(runner, x), device=device,
                            warmup=warmup, steps=steps)
        rows.append(row(variant, "device", (width, height), batch, timing))
        del x
        timing = time_calls(lambda: runner(host), device=device, warmup=min(warmup, 1), steps=steps)  # noqa: B023
        rows.append(row(variant, "host", (width, height), batch, timing))
    return rows


def precision_agreement(network: TransformerNet, *, size: tuple[int, int], device: torch.device,
                        seed: int) -> dict[str, Any]:
    """Each reduced precision's output against fp32 on one photo-sized input (PSNR, mean
    difference; the bound of :mod:`fast_style.inference.precision`), and what
    ``precision=auto`` (the calibrated runner of ``stylize.py``) picks on ``device``."""
    from fast_style.inference.precision import Agreement
    from fast_style.inference.runners.calibrated import CalibratedStylizer

    width, height = size
    x = torch.rand(1, 3, height, width, generator=torch.Generator().manual_seed(seed + 3))
    fp32 = Stylizer(network, device=device, pixel_budget=0)(x)
    rows = []
    for name in ("bf16", "fp16") if device.type == "cuda" else ("bf16",):
        dtype = DTYPES[name]
        agreement = Agreement.of(Stylizer(network, device=device, dtype=dtype, pixel_budget=0)(x), fp32)
        rows.append({"precision": name, "psnr_db": agreement.psnr_db, "mean_diff_255": agreement.mean_diff * 255,
                     "within_bound": agreement.within_bound})
    options = StylizeOptions(device=str(device), runtime="torch", pixel_budget=0)
    model = StyleModel(path=Path("gpu-check.safetensors"), kind="safetensors",
                       metadata=StyleModelMetadata(style_name="gpu-check"), network=network)
    runner = make_runner(model, options)
    runner(x)
    chosen = runner.chosen.dtype if isinstance(runner, CalibratedStylizer) else runner.dtype
    return {"size": f"{width}x{height}", "rows": rows, "auto": dtype_name(chosen)}
