"""What one CUDA GPU does with this project: training steps/s, loader, stylize throughput.

    python scripts/gpu_check.py                        # or: make gpu-check (~6-8 min on one H200)
    python scripts/gpu_check.py quick=true             # a short smoke run of every row
    python scripts/gpu_check.py device=cpu quick=true  # the same code on the CPU, tiny sizes
    python scripts/gpu_check.py data_root=/data/coco/train2014 train_variants=[bf16,bf16+compile]

Without a CUDA device it prints one line and exits 0. Writes gpu-check.json and
gpu-check.md (``json=``, ``markdown=``); every key and its default:
benchmarks.gpu_check.GpuCheckConfig (``--cfg job`` prints them as composed).
How to read the tables: docs/gpu.md.
"""

import os
import sys
from pathlib import Path

# The checkout is decided here, once: its root makes ``benchmarks`` importable (also in child
# processes, through PYTHONPATH) and is passed down as an explicit option.
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))

import hydra  # noqa: E402
from omegaconf import DictConfig, OmegaConf  # noqa: E402

from benchmarks.gpu_check import GpuCheckConfig  # noqa: E402
from benchmarks.schemas import CONFIG_DIR, register_schemas  # noqa: E402
from fast_style.cli import report_user_errors, run  # noqa: E402

register_schemas()


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="gpu_check")
def main(cfg: DictConfig) -> None:
    from benchmarks.gpu_check import main as gpu_check

    with report_user_errors():
        status = gpu_check(OmegaConf.to_object(cfg))
    if status:
        sys.exit(status)


if __name__ == "__main__":
    run(main, schema=GpuCheckConfig)
