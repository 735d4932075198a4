"""Side-by-side speed measurements: reference path vs fast path, in one run.

    python scripts/benchmark.py part=inference [key=value ...]   # stylizing (benchmarks.inference)
    python scripts/benchmark.py part=training [key=value ...]    # training steps (benchmarks.training)
    python scripts/benchmark.py part=onnx [key=value ...]        # PyTorch vs onnxruntime (benchmarks.onnx)
    python scripts/benchmark.py part=video [key=value ...]       # clips: frames/s and peak memory (benchmarks.video)
    python scripts/benchmark.py part=data [key=value ...]        # photo folder vs shards, images/s (benchmarks.data)
    python scripts/benchmark.py part=stylize [key=value ...]     # stylize.py end to end vs an eager loop (benchmarks.stylize)
    python scripts/benchmark.py part=precision [key=value ...]   # bf16 / fp16 against fp32: PSNR (benchmarks.precision)
    python scripts/benchmark.py part=trainers [key=value ...]    # train.py: trainer=auto vs the explicit ones (benchmarks.trainers)
    python scripts/benchmark.py part=gpu [key=value ...]         # make gpu-check: one CUDA GPU (benchmarks.gpu, docs/gpu.md)
    python scripts/benchmark.py part=live [key=value ...]        # live.py at 640x480: throughput and real time (benchmarks.live)
    python scripts/benchmark.py part=web [key=value ...]         # the format=web page in headless Chromium (benchmarks.web)
    python scripts/benchmark.py part=executorch [key=value ...]  # the .pte: export, memory, ms/frame (benchmarks.executorch)
    python scripts/benchmark.py [part=all] [quick=true]          # inference, training, onnx and data in turn

    e.g. part=inference sizes=[1024,2048] big=false tiling=false
         part=training sizes=[256x4] steps=30 compile=true warmup=5
         part=onnx quick=true json=/tmp/onnx.json

Each part prints a markdown table of ratios measured in the same process and writes
JSON (``json=PATH``; default benchmark-<part>.json). Every key, its default and which
part reads it: benchmarks.options (``--cfg job`` prints them as composed).
Machines are shared and noisy: compare the ratios, not absolute times across runs.
"""

import os
import sys
from pathlib import Path

# The checkout is decided here, once: its root makes ``benchmarks`` importable (also in child
# processes, through PYTHONPATH) and is passed down as an explicit option.
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))

import dataclasses  # noqa: E402

import hydra  # noqa: E402
from omegaconf import DictConfig, OmegaConf  # noqa: E402

from benchmarks.options import BenchmarkConfig  # noqa: E402
from benchmarks.schemas import CONFIG_DIR, register_schemas  # noqa: E402
from fast_style.cli import report_user_errors, run  # noqa: E402

register_schemas()
SAMPLE_PHOTOS = ROOT.parent / "shared" / "data" / "content"  # the checkout's sample photos, where present


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="benchmark")
def main(cfg: DictConfig) -> None:
    from benchmarks import run as run_benchmarks

    with report_user_errors():
        config = OmegaConf.to_object(cfg)
        config = dataclasses.replace(config, sample_photos=config.sample_photos or str(SAMPLE_PHOTOS),
                                     project_dir=config.project_dir or str(ROOT))
        status = run_benchmarks(config)
    if status:
        sys.exit(status)


if __name__ == "__main__":
    run(main, schema=BenchmarkConfig)
