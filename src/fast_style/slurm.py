"""What a run asks SLURM for, read from the run's own config.

Used by the ``hydra/launcher=slurm`` launcher (``hydra_plugins/fast_style_slurm``). A
``hydra.launcher.*`` value the user sets always wins; the ones left ``null`` follow the
job's config, so that a plain CPU job asks for no GPU and a DDP job gets the one task
per device that Lightning's SLURM support expects:

* ``nodes``          = ``trainer.num_nodes`` (1 when absent)
* ``tasks_per_node`` = number of devices (``trainer.devices``, or ``devices`` for stylize.py)
* ``gpus_per_node``  = number of devices when the accelerator is ``gpu``/``cuda``, or when it
  is ``auto`` and the partition's nodes have GPUs (``sinfo``); otherwise none is asked
* ``cpus_per_task``  = ``data.num_workers + 1`` (the loader workers and the training
  process), 1 for stylize.py

Memory (``mem_gb``) is left to the cluster's default unless set.
"""

from __future__ import annotations

import functools
import logging
import shutil
import subprocess
from collections.abc import Callable, Mapping
from typing import Any

from fast_style.errors import FastStyleError

log = logging.getLogger(__name__)

DERIVED = ("nodes", "tasks_per_node", "gpus_per_node", "cpus_per_task")
GPU_ACCELERATORS = ("gpu", "cuda")


def _section(cfg: Mapping[str, Any]) -> tuple[Mapping[str, Any], str]:
    """The mapping that holds accelerator/devices, and the key prefix to name in messages."""
    trainer = cfg.get("trainer")
    return (trainer, "trainer.") if isinstance(trainer, Mapping) else (cfg, "")


def device_count(devices: Any, *, accelerator: str, key: str) -> int:
    """Lightning's ``devices`` value as a number of processes per node.

    An int or a digit string is that many; a list (or a comma-separated string) of
    device ids counts its entries; ``auto``/-1 is 1 on a CPU and an error elsewhere,
    because SLURM needs the number of tasks before the job sees its node.
    """
    if isinstance(devices, str) and devices.strip().lstrip("-").isdigit():
        devices = int(devices)
    if isinstance(devices, str) and "," in devices:
        devices = [d for d in devices.split(",") if d.strip()]
    if isinstance(devices, int) and devices > 0:
        return devices
    if isinstance(devices, (list, tuple)) or (hasattr(devices, "__len__") and not isinstance(devices, str)):
        return max(len(devices), 1)
    if accelerator == "cpu":
        return 1
    raise FastStyleError(f"{key}devices={devices}: a SLURM job needs a number of devices per node; "
                         f"set {key}devices=N (or hydra.launcher.tasks_per_node=N)")


@functools.cache
def partition_has_gpus(partition: str | None) -> bool:
    """Whether the nodes of ``partition`` (the default partition when None) list a GPU
    generic resource in ``sinfo``; False when sinfo is missing or fails."""
    if shutil.which("sinfo") is None:
        return False
    command = ["sinfo", "-h", "-o", "%G"] + (["-p", partition] if partition else [])
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0 and "gpu" in done.stdout.lower()


def slurm_resources(cfg: Mapping[str, Any], *, launcher: Mapping[str, Any],
                    gpus_available: Callable[[], bool]) -> dict[str, int | None]:
    """``nodes``, ``tasks_per_node``, ``gpus_per_node`` and ``cpus_per_task`` for a job.

    ``cfg`` is the job's composed config, ``launcher`` the ``hydra.launcher`` values (a
    non-null one is kept as given), ``gpus_available`` answers for ``accelerator=auto``.
    ``gpus_per_node`` None means "ask for no GPU".
    """
    section, key = _section(cfg)
    accelerator = str(section.get("accelerator", "auto")).lower()
    resources: dict[str, int | None] = {name: launcher.get(name) for name in DERIVED}
    if resources["nodes"] is None:
        resources["nodes"] = int(section.get("num_nodes", 1) or 1)
    if resources["tasks_per_node"] is None:
        resources["tasks_per_node"] = device_count(section.get("devices", 1), accelerator=accelerator, key=key)
    if resources["gpus_per_node"] is None:
        uses_gpu = accelerator in GPU_ACCELERATORS
        if accelerator == "auto":
            uses_gpu = gpus_available()
            log.info("%saccelerator=auto: the partition %s GPUs, so the job asks for %s", key,
                     "offers" if uses_gpu else "offers no", "them" if uses_gpu else "none")
        resources["gpus_per_node"] = resources["tasks_per_node"] if uses_gpu else None
    if resources["cpus_per_task"] is None:
        data = cfg.get("data")
        workers = int(data.get("num_workers", 0) or 0) if isinstance(data, Mapping) else 0
        resources["cpus_per_task"] = workers + 1
    return resources


def submission_error(exc: BaseException, *, resources: Mapping[str, Any]) -> str:
    """sbatch's refusal as one line, with the resources asked and the keys that change them."""
    lines = [line.strip() for line in str(exc).splitlines() if "error" in line.lower() and line.strip()]
    reason = lines[-1] if lines else (str(exc).strip().splitlines() or [type(exc).__name__])[-1]
    asked = ", ".join(f"{k}={v}" for k, v in resources.items() if v is not None)
    return (f"SLURM refused the job ({reason}); asked for {asked}: change them with "
            f"hydra.launcher.<key>=... (partition, timeout_min, mem_gb, cpus_per_task, ...)")
