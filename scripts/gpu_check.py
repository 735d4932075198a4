"""``make gpu-check`` under its older name: ``scripts/benchmark.py part=gpu`` with the same keys.

    python scripts/gpu_check.py [quick=true] [device=cpu] [key=value ...]
    # the same as: python scripts/benchmark.py part=gpu [quick=true] [device=cpu] [key=value ...]

The part, its keys and how to read its tables: benchmarks.gpu and docs/gpu.md.
"""

import runpy
import sys
from pathlib import Path

if __name__ == "__main__":
    if any(arg.lstrip("+~").startswith("part=") for arg in sys.argv[1:]):
        sys.exit("error: scripts/gpu_check.py always runs part=gpu; other parts: python scripts/benchmark.py part=<part>")
    sys.argv.insert(1, "part=gpu")
    runpy.run_path(str(Path(__file__).with_name("benchmark.py")), run_name="__main__")
