"""How far bf16 and fp16 outputs are from fp32, judged by the accuracy bound of ``precision=auto``.

    python scripts/benchmark.py part=precision [sizes=[1024]] [ckpt=<model>] [quick=true]

For the seeded random paper-sized network and, with ``ckpt``, that model too: one fp32
forward and one forward per reduced precision on a synthetic photo of each size, and
their PSNR, mean and max difference (clamped outputs, 1/255 units), with whether they
meet the bound (PSNR >= 40 dB, mean <= 1/255; :mod:`fast_style.inference.precision`).
Accuracy only, no timing: on a CPU without native bf16 both formats are emulated and
slow, but their rounding is the format's, which is what a GPU's fp16/bf16 also does
(up to accumulation order). A multi-style ``ckpt`` runs one of its styles (``styles=``,
else the first), named in the model column.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from benchmarks.inference import model_or_random, synthetic_photo
from benchmarks.options import BenchmarkConfig
from fast_style.inference.mixing import StyleChoice
from fast_style.inference.precision import Agreement
from fast_style.inference.runners.pytorch import DTYPES, Stylizer


def agreement_rows(name: str, network: torch.nn.Module, sizes: list[int], styles: StyleChoice | None = None) -> list[dict]:
    rows = []
    for size in sizes:
        x = synthetic_photo(size, size, seed=size)
        fp32 = Stylizer(network, pixel_budget=0, styles=styles)(x)
        for precision in ("bf16", "fp16"):
            out = Stylizer(network, dtype=DTYPES[precision], pixel_budget=0, styles=styles)(x)
            agreement = Agreement.of(out, fp32)
            worst = (out - fp32).abs().max().item() * 255
            rows.append({"model": name, "size": size, "precision": precision, "psnr_db": agreement.psnr_db,
                         "mean_diff_255": agreement.mean_diff * 255, "max_diff_255": worst,
                         "within_bound": agreement.within_bound})
            print(f"  {name} {size}px {precision}: {agreement.line()}", file=sys.stderr, flush=True)
    return rows


def markdown(rows: list[dict]) -> str:
    lines = ["| model | size | precision | PSNR dB | mean diff (/255) | max diff (/255) | within bound |",
             "|---|---:|---|---:|---:|---:|---|"]
    lines += [f"| {r['model']} | {r['size']} | {r['precision']} | {r['psnr_db']:.1f} | {r['mean_diff_255']:.2f} | "
              f"{r['max_diff_255']:.1f} | {'yes' if r['within_bound'] else 'no'} |" for r in rows]
    return "\n".join(lines)


def main(options: BenchmarkConfig) -> int:
    """Measure, print the table, write ``options.json``; 0."""
    sizes = [64] if options.quick else [int(s) for s in options.sizes]
    models = [("random paper-sized", *model_or_random(None))]
    if options.ckpt:
        network, choice = model_or_random(options.ckpt, options.styles)
        name = Path(options.ckpt).name + (f" ({choice.label})" if choice.num_styles > 1 else "")
        models.append((name, network, choice))
    rows = [row for name, network, choice in models for row in agreement_rows(name, network, sizes, choice)]
    Path(options.json).write_text(json.dumps({"rows": rows, "torch": torch.__version__}, indent=2))
    print(markdown(rows))
    print(f"\n(JSON: {options.json})")
    return 0
