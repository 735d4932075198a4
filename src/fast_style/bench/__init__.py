"""Benchmarks behind scripts/benchmark.py: one module per part (inference, training, onnx, video, data),
each with ``main(options: BenchmarkConfig) -> int``."""

from __future__ import annotations

import importlib
import importlib.util

from fast_style.bench.options import BenchmarkConfig


def run(config: BenchmarkConfig) -> int:
    """Run ``config.part`` (every part for ``all``, onnx only where onnxruntime is
    installed); the worst exit status of the parts."""
    chosen = config.parts()
    if len(chosen) > 1 and not importlib.util.find_spec("onnxruntime"):
        print('onnx part skipped: onnxruntime is not installed (pip install onnxruntime)')
        chosen = [c for c in chosen if c.part != "onnx"]
    return max(importlib.import_module(f"fast_style.bench.{c.part}").main(c) or 0 for c in chosen)
