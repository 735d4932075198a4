"""onnxruntime beside PyTorch: reference path, fast path and ONNX, side by side in one run.

    python scripts/benchmark.py part=onnx [sizes=[256,512,1024]] [quick=true] [ckpt=MODEL] [threads=N]

Reference: ``with torch.no_grad(): model(x)``, eager fp32 NCHW. Fast: the
:class:`fast_style.inference.Stylizer` with ``precision`` (default ``auto``: fp32).
ONNX: the same model exported by :mod:`fast_style.io.export`
(dynamo exporter, verified) and run by onnxruntime's CPU provider in fp32 (all graph
optimisations on). For each size: ms per image (median of a few interleaved runs after a warm-up),
megapixels/s, speed ratio against the reference and the max absolute difference to
the reference in 1/255 units (clamped outputs). Without ``ckpt`` the model is a
seeded random paper-sized TransformerNet (width 32, 5 residual blocks). A multi-style
``ckpt`` is exported with its ``style_weights`` input and every path runs the same one of
its styles (``styles=``, else the first). Options: :class:`benchmarks.options.BenchmarkConfig`.
"""

from __future__ import annotations

import copy
import json
import platform
import sys
import tempfile
from pathlib import Path

import torch

from benchmarks.inference import (
    diff255,
    interleaved,
    model_or_random,
    reference,
    synthetic_photo,
)
from benchmarks.options import BenchmarkConfig
from fast_style.inference.mixing import StyleChoice
from fast_style.inference.runners.pytorch import Stylizer, resolve_precision
from fast_style.io.metadata import StyleModelMetadata
from fast_style.io.model_files import open_model, save_style_model
from fast_style.nn.transformer import TransformerNet


def _export(model, folder: Path) -> tuple[Path, float, str]:
    from fast_style.io.export import export_model

    ckpt = save_style_model(model, folder / "bench.safetensors", metadata=StyleModelMetadata(style_name="bench"))
    result = export_model(ckpt, "onnx", folder / "bench.onnx", overwrite=True)
    return result.path, result.max_diff, result.exporter


def measure(model, onnx_path: Path, sizes: list[int], *, precision: str, threads: int | None,
            styles: StyleChoice | None = None) -> list[dict]:
    run_onnx = open_model(onnx_path, device="cpu", threads=threads).runtime
    dtype = resolve_precision(precision, torch.device("cpu"))
    stylizer = Stylizer(copy.deepcopy(model), dtype=dtype, pixel_budget=0, styles=styles)
    style = None if styles is None else styles.weights
    rows = []
    for size in sizes:
        x = synthetic_photo(size, size, seed=size)
        repeats = 3 if size <= 512 else (2 if size <= 1024 else 1)
        (t_ref, t_fast, t_onnx), (ref, fast, out) = interleaved(
            [lambda x=x: reference(model, x, style), lambda x=x: stylizer(x), lambda x=x: run_onnx(x, style)], repeats)
        mp = size * size / 1e6
        row = {"size": size, "mp": mp}
        for name, seconds, result in (("reference", t_ref, ref), ("fast", t_fast, fast), ("onnxruntime", t_onnx, out)):
            worst, mean = diff255(ref, result)
            row[name] = {"ms": seconds * 1e3, "mps": mp / seconds, "ratio": t_ref / seconds, "max_diff_255": worst, "mean_diff_255": mean}
        row["onnx_raw_max_diff"] = (out.float() - ref.float()).abs().max().item()
        rows.append(row)
        print(f"  {size}px: ref {t_ref * 1e3:.0f} ms, fast {t_fast * 1e3:.0f} ms, onnxruntime {t_onnx * 1e3:.0f} ms",
              file=sys.stderr, flush=True)
    return rows


def markdown(result: dict) -> str:
    lines = [
        f"Device: {result['device']} ({result['threads']} torch threads, onnxruntime {result['onnxruntime']}, "
        f"torch {result['torch']}); fast path: {result['fast_dtype']}; ONNX: {result['exporter']} exporter, fp32, "
        f"export check max diff {result['export_max_diff']:.1e}"
        + (f"; style {result['style']} of a multi-style model" if "style" in result else ""),
        "",
        "| size | path | ms / image | MP/s | vs reference | max diff (/255) |",
        "|---:|---|---:|---:|---:|---:|",
    ]
    labels = {"reference": "PyTorch reference (fp32 eager)", "fast": f"PyTorch fast ({result['fast_dtype']})", "onnxruntime": "onnxruntime (fp32)"}
    for row in result["sizes"]:
        for name, label in labels.items():
            r = row[name]
            lines.append(f"| {row['size']} | {label} | {r['ms']:.0f} | {r['mps']:.3f} | {r['ratio']:.2f}x | {r['max_diff_255']:.4f} |")
    return "\n".join(lines)


def main(options: BenchmarkConfig) -> int:
    """Export, run the benchmark, print the table, write ``options.json``; 0, or 2
    when onnxruntime is not installed."""
    try:
        import onnxruntime
    except ImportError:
        print('error: onnxruntime is not installed; pip install onnxruntime', file=sys.stderr)
        return 2
    if options.quick and not options.ckpt:
        torch.manual_seed(0)
        model, choice = TransformerNet(width=8, num_residual=1).eval(), StyleChoice()
    else:
        model, choice = model_or_random(options.ckpt, options.styles)
    model = model.eval().requires_grad_(False)
    sizes = [64, 96] if options.quick else list(options.sizes)
    with tempfile.TemporaryDirectory(prefix="fast-style-onnx-") as tmp:
        onnx_path, export_diff, exporter = _export(model, Path(tmp))
        rows = measure(model, onnx_path, sizes, precision=options.precision, threads=options.threads, styles=choice)
    result = {
        "device": platform.processor() or platform.machine(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__,
        "fast_dtype": str(resolve_precision(options.precision, torch.device("cpu"))).removeprefix("torch."),
        "exporter": exporter,
        "export_max_diff": export_diff,
        "sizes": rows,
    }
    if choice.num_styles > 1:
        result["style"] = choice.label
    Path(options.json).write_text(json.dumps(result, indent=2))
    print(markdown(result))
    print(f"\n(JSON: {options.json})")
    return 0
