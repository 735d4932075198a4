"""Stylizing speed: the reference path against the fast path, side by side in one run.

    python scripts/benchmark.py part=inference [sizes=[256,512,1024,2048]] [quick=true] [compile=false]

Reference path: what a plain PyTorch user runs, ``with torch.no_grad(): model(x)`` on
an fp32 NCHW tensor in eager mode. Fast path: :class:`fast_style.inference.Stylizer`
with the chosen precision (default ``auto``), memory format and optional
``torch.compile``. For each size it reports ms per image, megapixels/s, the speed-up
and the max / mean absolute difference of the clamped outputs in 1/255 units. It also
measures the peak RSS of an 8K (7680x4320) tiled run in a child process (``big``) and
tiled vs untiled (fp32) at 2048x2048 with 512 px tiles (``tiling``). Without ``ckpt``
the model is a seeded, randomly initialised paper-sized TransformerNet. A multi-style
``ckpt`` runs one of its styles, on every path alike: ``styles=<name or index>``, else its
first (:func:`bench_style`). Options: :class:`benchmarks.options.BenchmarkConfig`.
"""

from __future__ import annotations

import copy
import json
import platform
import resource
import statistics
import subprocess
import sys
from pathlib import Path

import torch

from benchmarks.options import BenchmarkConfig
from benchmarks.timing import time_once
from fast_style.devices import cpu_has_native_bf16, resolve_device
from fast_style.evaluation.one_style import one_style
from fast_style.inference.mixing import StyleChoice
from fast_style.inference.precision import psnr
from fast_style.inference.runners.pytorch import DTYPES, Stylizer, resolve_precision
from fast_style.io.model_files import StyleModel, open_model
from fast_style.nn.transformer import TransformerNet


def synthetic_photo(height: int, width: int, *, seed: int = 0) -> torch.Tensor:
    """(1, 3, H, W) in [0, 1]: smooth random colour waves plus a little noise.

    Built one channel at a time in place, so an 8K image costs its own 400 MB plus one
    channel-sized temporary, not several full-size ones."""
    g = torch.Generator().manual_seed(seed)
    yy = torch.linspace(0, 1, height)[:, None]
    xx = torch.linspace(0, 1, width)[None, :]
    params = [(torch.rand(3, generator=g) * torch.tensor([12.0, 12.0, 6.0])).tolist() for _ in range(3)]
    image = torch.empty(1, 3, height, width)
    for channel, (fy, fx, phase) in zip(image[0], params, strict=True):
        torch.add(yy * fy + phase, xx * fx, out=channel)
        channel.sin_().mul_(0.45).add_(0.5)
        channel.add_(torch.randn(height, width, generator=g), alpha=0.03).clamp_(0, 1)
    return image


def bench_style(model: StyleModel, styles: str | None) -> StyleChoice:
    """The style a benchmark runs ``model`` with: ``styles=`` (one name or index), else the
    first of a multi-style model's styles (said on stderr)."""
    choice = one_style(model, styles, first_by_default=True)
    if choice.num_styles > 1 and styles in (None, ""):
        print(f"{model.path.name} holds {choice.num_styles} styles: benchmarking {choice.label} (styles= picks another)",
              file=sys.stderr, flush=True)
    return choice


def style_argument(ckpt: str | Path, styles: str | None) -> str:
    """The ``styles=`` value that makes ``stylize.py`` run the style :func:`bench_style`
    picks of the model file ``ckpt`` (its index), or "" for a one-style model."""
    choice = bench_style(open_model(ckpt), styles)
    return "" if choice.weights is None else str(int(choice.weights.argmax()))


def model_or_random(ckpt: str | None, styles: str | None = None) -> tuple[TransformerNet, StyleChoice]:
    """The network of the model file ``ckpt`` and its style (:func:`bench_style`), or without
    one a seeded random paper-sized net (one style)."""
    if ckpt:
        model = open_model(ckpt)
        return model.require_network("benchmarking"), bench_style(model, styles)
    torch.manual_seed(0)
    return TransformerNet().eval(), StyleChoice()


def diff255(a: torch.Tensor, b: torch.Tensor) -> tuple[float, float]:
    d = (a.float().clamp(0, 1) - b.float().clamp(0, 1)).abs() * 255
    return d.max().item(), d.mean().item()


def reference(model: TransformerNet, x: torch.Tensor, style: torch.Tensor | None = None) -> torch.Tensor:
    """The reference path: what a plain PyTorch user runs (eager fp32 NCHW, no_grad), with
    the style weights of a multi-style model."""
    with torch.no_grad():
        return model(x, style)


def interleaved(fns: list, repeats: int) -> tuple[list[float], list[torch.Tensor]]:
    """Median seconds per call of each of ``fns``, called in turn ``repeats`` times after
    one warm-up call each, so that load from other jobs hits all of them alike; also
    each one's last output."""
    outs = [fn() for fn in fns]
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            seconds, outs[i] = time_once(fn)
            times[i].append(seconds)
    return [statistics.median(t) for t in times], outs


def compare_sizes(model: TransformerNet, stylizer: Stylizer, sizes: list[int]) -> list[dict]:
    rows = []
    for size in sizes:
        x = synthetic_photo(size, size, seed=size)
        repeats = 5 if size <= 512 else (3 if size <= 1024 else 2)
        style = stylizer.style_for(x)
        (t_ref, t_fast), (ref, fast) = interleaved(
            [lambda x=x, style=style: reference(model, x, style), lambda x=x: stylizer(x)], repeats)
        mp = size * size / 1e6
        worst, mean = diff255(ref, fast)
        rows.append({
            "size": size, "ref_ms": t_ref * 1e3, "fast_ms": t_fast * 1e3, "ref_mps": mp / t_ref,
            "fast_mps": mp / t_fast, "speedup": t_ref / t_fast, "max_diff_255": worst, "mean_diff_255": mean,
            "psnr_db": psnr(ref, fast),
            "repeats": repeats,
        })
        print(f"  {size}px: ref {t_ref * 1e3:.0f} ms, fast {t_fast * 1e3:.0f} ms, x{t_ref / t_fast:.2f}, max diff {worst:.2f}/255", file=sys.stderr, flush=True)
    return rows


def tiled_vs_untiled(model: TransformerNet, *, size: int, tile: int, styles: StyleChoice | None = None) -> dict:
    """fp32 eager, whole image vs tiles with whole-image statistics."""
    x = synthetic_photo(size, size, seed=7)
    whole = Stylizer(model, pixel_budget=0, styles=styles)
    tiled = Stylizer(model, pixel_budget=1, tile_size=tile, styles=styles)
    t_whole, a = time_once(lambda: whole(x))
    t_tiled, b = time_once(lambda: tiled(x))
    worst, mean = diff255(a, b)
    return {"size": size, "tile": tile, "untiled_s": t_whole, "tiled_s": t_tiled, "max_diff_255": worst, "mean_diff_255": mean}


def peak_rss_kb() -> int:
    """This process's own peak resident set (VmHWM, kB). Not ``ru_maxrss``: Linux carries
    that over from the parent across fork + exec, so a child started by a big benchmark
    process would report the parent's size, not its own."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def child_run(height: int, width: int, precision: str, ckpt: str | None, tile: int, budget: int,
              styles: str | None = None) -> None:
    """In a fresh process: stylize one synthetic image of the given size; print JSON."""
    model, choice = model_or_random(ckpt, styles)
    device = resolve_device("cpu")
    stylizer = Stylizer(model, device=device, dtype=resolve_precision(precision, device), tile_size=tile,
                        pixel_budget=budget, styles=choice)
    x = synthetic_photo(height, width, seed=1)
    seconds, out = time_once(lambda: stylizer(x), device=device)
    peak_kb = peak_rss_kb()
    print(json.dumps({"height": height, "width": width, "tiled": stylizer.needs_tiling(height, width), "seconds": seconds,
                      "peak_rss_mb": peak_kb / 1024, "output_shape": list(out.shape)}))


def measure_rss(height: int, width: int, *, precision: str, ckpt: str | None, tile: int, budget: int,
                styles: str | None = None) -> dict:
    """:func:`child_run` in a fresh Python process (so its peak RSS is the run's own)."""
    call = f"child_run({height!r}, {width!r}, {precision!r}, {ckpt!r}, {tile!r}, {budget!r}, {styles!r})"
    cmd = [sys.executable, "-c", f"from benchmarks.inference import child_run; {call}"]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return {"height": height, "width": width, "error": done.stderr.strip().splitlines()[-1:]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def markdown(result: dict) -> str:
    lines = [
        f"Device: {result['device']} ({result['cpu_capability']}, {result['threads']} threads), fast path: "
        f"{result['fast_path']}" + (f"; style {result['style']} of a multi-style model" if "style" in result else ""),
        "",
        "| size | reference ms | fast ms | reference MP/s | fast MP/s | speed-up | max diff (/255) | mean diff (/255) | PSNR dB |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result["sizes"]:
        lines.append(
            f"| {r['size']} | {r['ref_ms']:.0f} | {r['fast_ms']:.0f} | {r['ref_mps']:.3f} | {r['fast_mps']:.3f} | "
            f"{r['speedup']:.2f}x | {r['max_diff_255']:.2f} | {r['mean_diff_255']:.3f} | {r['psnr_db']:.1f} |"
        )
    if result.get("tiling"):
        t = result["tiling"]
        lines += ["", f"Tiled vs untiled, {t['size']}x{t['size']}, {t['tile']} px tiles (fp32): untiled {t['untiled_s']:.1f} s, "
                      f"tiled {t['tiled_s']:.1f} s, max diff {t['max_diff_255']:.3f}/255, mean {t['mean_diff_255']:.4f}/255"]
    if result.get("big"):
        b = result["big"]
        if "error" in b:
            lines += ["", f"{b['width']}x{b['height']} tiled run failed: {b['error']}"]
        else:
            lines += ["", f"{b['width']}x{b['height']} tiled run: peak RSS {b['peak_rss_mb']:.0f} MB, {b['seconds']:.0f} s"]
    return "\n".join(lines)


def main(options: BenchmarkConfig) -> int:
    """Run the benchmark, print the table, write ``options.json``; 0."""
    sizes = [64, 128] if options.quick else list(options.sizes)
    compile_ = (not options.quick) if options.compile is None else options.compile
    model, choice = model_or_random(options.ckpt, options.styles)
    device = torch.device("cpu")
    # fp16 on the CPU too: stylize.py refuses it there (slow), but its accuracy is what CUDA's fp16 gives
    dtype = DTYPES["fp16"] if options.precision == "fp16" else resolve_precision(options.precision, device)
    channels_last = str(options.channels_last).lower()
    channels_last = compile_ if channels_last == "auto" else channels_last in ("true", "on")
    stylizer = Stylizer(copy.deepcopy(model), device=device, dtype=dtype, channels_last=channels_last, compile=compile_,
                        pixel_budget=0, styles=choice)
    fast_path = f"{str(dtype).removeprefix('torch.')}, {'channels_last' if channels_last else 'NCHW'}, " + (
        "torch.compile, no_grad" if compile_ else "eager, inference_mode")
    result = {
        "device": platform.processor() or platform.machine(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "native_bf16": cpu_has_native_bf16(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "fast_path": fast_path,
        "sizes": compare_sizes(model, stylizer, sizes),
    }
    if choice.num_styles > 1:
        result["style"] = choice.label
    if options.tiling:
        size, tile = (256, 64) if options.quick else (2048, options.tile)
        result["tiling"] = tiled_vs_untiled(model, size=size, tile=tile, styles=choice)
    if options.big:
        height, width, tile, budget = (288, 512, 128, 65536) if options.quick else (4320, 7680, options.tile, options.budget)
        result["big"] = measure_rss(height, width, precision=options.precision, ckpt=options.ckpt, tile=tile, budget=budget,
                                    styles=options.styles)
    Path(options.json).write_text(json.dumps(result, indent=2))
    print(markdown(result))
    print(f"\n(JSON: {options.json})")
    return 0
