"""Side-by-side speed measurements: reference path vs fast path, in one run.

    python scripts/benchmark.py part=inference [key=value ...]   # stylizing (fast_style.bench.inference)
    python scripts/benchmark.py part=training [key=value ...]    # training steps (fast_style.bench.training)
    python scripts/benchmark.py part=onnx [key=value ...]        # PyTorch vs onnxruntime (fast_style.bench.onnx)
    python scripts/benchmark.py part=video [key=value ...]       # clips: frames/s and peak memory (fast_style.bench.video)
    python scripts/benchmark.py part=data [key=value ...]        # photo folder vs shards, images/s (fast_style.bench.data)
    python scripts/benchmark.py part=stylize [key=value ...]     # stylize.py end to end vs an eager loop (fast_style.bench.stylize)
    python scripts/benchmark.py part=precision [key=value ...]   # bf16 / fp16 against fp32: PSNR (fast_style.bench.precision)
    python scripts/benchmark.py [part=all] [quick=true]          # inference, training, onnx and data in turn

    e.g. part=inference sizes=[1024,2048] big=false tiling=false
         part=training sizes=[256x4] steps=30 compile=true warmup=5
         part=onnx quick=true json=/tmp/onnx.json

Each part prints a markdown table of ratios measured in the same process and writes
JSON (``json=PATH``; default benchmark-<part>.json). Every key, its default and which
part reads it: fast_style.bench.options (``--cfg job`` prints them as composed).
Machines are shared and noisy: compare the ratios, not absolute times across runs.
"""

import sys
from pathlib import Path

import hydra
from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

from fast_style.bench.options import BenchmarkConfig
from fast_style.cli import report_user_errors, run

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"
ConfigStore.instance().store(name="benchmark_schema", node=BenchmarkConfig)


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="benchmark")
def main(cfg: DictConfig) -> None:
    from fast_style.bench import run

    with report_user_errors():
        status = run(OmegaConf.to_object(cfg))
    if status:
        sys.exit(status)


if __name__ == "__main__":
    run(main)
