"""Side-by-side speed measurements: reference path vs fast path, in one run.

    python scripts/benchmark.py inference [options]   # stylizing (fast_style.bench.inference)
    python scripts/benchmark.py training [options]    # training steps (fast_style.bench.training)
    python scripts/benchmark.py all                   # both, default options

Each part prints a markdown table of ratios measured in the same process and writes
JSON; ``python scripts/benchmark.py <part> --help`` lists its options. Machines are
shared and noisy: compare the ratios, not absolute times across runs.
"""

from __future__ import annotations

import importlib
import sys

PARTS = ("inference", "training")


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    part, rest = argv[0], argv[1:]
    if part == "all":
        return max(importlib.import_module(f"fast_style.bench.{p}").main(rest) or 0 for p in PARTS)
    if part not in PARTS:
        print(f"error: unknown part {part!r}; choose inference, training or all", file=sys.stderr)
        return 2
    return importlib.import_module(f"fast_style.bench.{part}").main(rest) or 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
