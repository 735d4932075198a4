"""The Hydra schemas of scripts/benchmark.py and scripts/gpu_check.py, and their config folder.

``benchmarks/configs/<name>.yaml`` only chooses the schema and sets Hydra's behaviour; every
key and its default is the dataclass's (:class:`benchmarks.options.BenchmarkConfig`,
:class:`benchmarks.gpu_check.GpuCheckConfig`). The entry scripts call
:func:`register_schemas` before ``hydra.main`` composes.
"""

from __future__ import annotations

from pathlib import Path

from hydra.core.config_store import ConfigStore

CONFIG_DIR = Path(__file__).resolve().parent / "configs"


def register_schemas() -> None:
    """Store ``benchmark_schema`` and ``gpu_check_schema`` in Hydra's ConfigStore."""
    from benchmarks.gpu_check import GpuCheckConfig
    from benchmarks.options import BenchmarkConfig

    store = ConfigStore.instance()
    store.store(name="benchmark_schema", node=BenchmarkConfig)
    store.store(name="gpu_check_schema", node=GpuCheckConfig)
