"""Side-by-side speed measurements: reference path vs fast path, in one run.

    python scripts/benchmark.py inference [options]   # stylizing (fast_style.bench.inference)
    python scripts/benchmark.py training [options]    # training steps (fast_style.bench.training)
    python scripts/benchmark.py onnx [options]        # PyTorch vs onnxruntime (fast_style.bench.onnx)
    python scripts/benchmark.py all                   # every part, default options

Each part prints a markdown table of ratios measured in the same process and writes
JSON; ``python scripts/benchmark.py <part> --help`` lists its options. Machines are
shared and noisy: compare the ratios, not absolute times across runs.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys

PARTS = ("inference", "training", "onnx")


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    part, rest = argv[0], argv[1:]
    if part == "all":
        parts = [p for p in PARTS if p != "onnx" or importlib.util.find_spec("onnxruntime")]
        if len(parts) < len(PARTS):
            print("onnx part skipped: onnxruntime is not installed (pip install -e \".[export]\")")
        return max(importlib.import_module(f"fast_style.bench.{p}").main(rest) or 0 for p in parts)
    if part not in PARTS:
        print(f"error: unknown part {part!r}; choose {', '.join(PARTS)} or all", file=sys.stderr)
        return 2
    return importlib.import_module(f"fast_style.bench.{part}").main(rest) or 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
