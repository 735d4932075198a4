"""format=executorch: what the export costs, what the program reserves, and its speed on this CPU.

    python scripts/benchmark.py part=executorch [ckpt=...] [sizes=[640x480]] [quick=true]

For each ``max_size`` in (the frame's longer side, 1024) the model (``ckpt``, else a seeded
random paper-sized net) is exported with :func:`fast_style.io.export.export_model` (checked in
executorch's runtime, as the command does) and timed: export seconds and file size. Then a
fresh process per program opens it (``open_model``) and reports the resident memory the load
added (ExecuTorch plans every activation buffer for the largest input at load), and times
``frames`` frames of WIDTHxHEIGHT through it, side by side in the same process with the
PyTorch network in fp32 eager (``torch.no_grad``, torch's default threads) on the same frames.
``quick=true``: a 160x120 frame, max_size 160 only, 3 frames.
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from benchmarks.options import BenchmarkConfig, BenchOptionError
from benchmarks.video import _size, model_file_and_style


def measure(pte: Path, ckpt: Path, width: int, height: int, frames: int) -> dict:
    """In this (fresh) process: RSS added by opening ``pte``, then ms per frame of it and of
    ``ckpt``'s PyTorch network, alternating, on the same random frames."""
    from fast_style.inference.live_summary import peak_mb, rss_mb
    from fast_style.io.model_files import open_model

    before = rss_mb()
    program = open_model(pte).runtime
    loaded = rss_mb()
    network = open_model(ckpt).require_network("the benchmark").eval()
    style = None if program.num_styles == 1 else torch.eye(program.num_styles)[0]
    generator = torch.Generator().manual_seed(0)
    inputs = [torch.rand(1, 3, height, width, generator=generator) for _ in range(frames + 1)]
    with torch.no_grad():
        program(inputs[0], style)  # the first call sets up XNNPACK's kernels
        network(inputs[0], style)
        times = {"executorch": [], "torch": []}
        for x in inputs[1:]:
            for name, run in (("executorch", program), ("torch", network)):
                start = time.perf_counter()
                run(x, style)
                times[name].append(time.perf_counter() - start)
    return {"load_mb": loaded - before, "peak_rss_mb": peak_mb(),
            **{f"{name}_ms": 1000 * sorted(t)[len(t) // 2] for name, t in times.items()}}


def main(options: BenchmarkConfig) -> int:
    from fast_style.io.export import export_model

    width, height = (160, 120) if options.quick else _size(options.sizes[0])
    frames = 3 if options.quick else 10
    bounds = [max(width, height)] if options.quick else sorted({max(width, height), 1024})
    rows = []
    with tempfile.TemporaryDirectory(prefix="fast-style-bench-executorch-") as tmp:
        folder = Path(tmp)
        model, _ = model_file_and_style(options, folder)
        for max_size in bounds:
            start = time.perf_counter()
            result = export_model(model, "executorch", folder / f"model-{max_size}.pte", max_size=max_size)
            export_s = time.perf_counter() - start
            child = subprocess.run(
                [sys.executable, "-m", "benchmarks.executorch", str(result.path), str(model), str(width),
                 str(height), str(frames)], capture_output=True, text=True, check=False)
            if child.returncode != 0:
                raise BenchOptionError(f"measuring {result.path.name} failed: "
                                       f"{child.stderr.strip().splitlines()[-1:]}")
            got = json.loads(child.stdout.strip().splitlines()[-1])
            rows.append({"max_size": max_size, "export_s": export_s, "file_mb": result.path.stat().st_size / 2**20,
                         "max_diff": result.max_diff, **got})
            print(f"max_size={max_size}: export {export_s:.1f} s, {rows[-1]['file_mb']:.1f} MB, load +"
                  f"{got['load_mb']:.0f} MB, {got['executorch_ms']:.0f} ms/frame vs torch fp32 "
                  f"{got['torch_ms']:.0f} ms", flush=True)
    print(f"\n{Path(str(model)).name if options.ckpt else 'random paper net'}, {width}x{height} frames, "
          f"median of {frames}\n")
    print("| max_size | export | .pte | memory added by loading | ExecuTorch (XNNPACK) | PyTorch fp32 | ratio |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['max_size']} | {r['export_s']:.1f} s | {r['file_mb']:.1f} MB | {r['load_mb']:.0f} MB | "
              f"{r['executorch_ms']:.0f} ms | {r['torch_ms']:.0f} ms | {r['torch_ms'] / r['executorch_ms']:.2f}x |")
    report = {"part": "executorch", "machine": platform.processor() or platform.machine(),
              "torch": torch.__version__, "frame": f"{width}x{height}", "ckpt": options.ckpt, "rows": rows}
    Path(options.json).write_text(json.dumps(report, indent=2))
    print(f"\nwrote {options.json}")
    return 0


if __name__ == "__main__":
    pte_path, ckpt_path, w, h, n = sys.argv[1:]
    print(json.dumps(measure(Path(pte_path), Path(ckpt_path), int(w), int(h), int(n))))
