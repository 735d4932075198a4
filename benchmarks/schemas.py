"""The Hydra schema of scripts/benchmark.py (and scripts/gpu_check.py, its ``part=gpu``), and its config folder.

``benchmarks/configs/benchmark.yaml`` only chooses the schema and sets Hydra's behaviour;
every key and its default is :class:`benchmarks.options.BenchmarkConfig`'s. The entry
script calls :func:`register_schemas` before ``hydra.main`` composes.
"""

from __future__ import annotations

from pathlib import Path

from hydra.core.config_store import ConfigStore

CONFIG_DIR = Path(__file__).resolve().parent / "configs"


def register_schemas() -> None:
    """Store ``benchmark_schema`` in Hydra's ConfigStore."""
    from benchmarks.options import BenchmarkConfig

    ConfigStore.instance().store(name="benchmark_schema", node=BenchmarkConfig)
