"""Benchmarks behind scripts/benchmark.py, outside the ``fast_style`` package: one module per
part (inference, training, onnx, video, data, stylize, precision, trainers, gpu, live, web,
executorch), each with
``main(options: BenchmarkConfig) -> int``; ``part=gpu`` (``make gpu-check``,
:mod:`benchmarks.gpu`) times the training step and the stylize runner on a CUDA device. They import only ``fast_style``'s
documented modules; checkout paths come in as options (``sample_photos``, ``project_dir``)."""

from __future__ import annotations

import importlib
import importlib.util

from benchmarks.options import BenchmarkConfig


def run(config: BenchmarkConfig) -> int:
    """Run ``config.part`` (every part for ``all``, onnx only where onnxruntime is
    installed); the worst exit status of the parts."""
    chosen = config.parts()
    if len(chosen) > 1 and not importlib.util.find_spec("onnxruntime"):
        print('onnx part skipped: onnxruntime is not installed (pip install onnxruntime)')
        chosen = [c for c in chosen if c.part != "onnx"]
    return max(importlib.import_module(f"benchmarks.{c.part}").main(c) or 0 for c in chosen)
