"""Which device to run on, what it computes natively, and the cluster it runs in: shared by
training and inference."""

from __future__ import annotations

import platform
from dataclasses import dataclass
from typing import Any

import torch

from fast_style.errors import FastStyleError


class DeviceError(FastStyleError):
    """A device name that does not exist or is not available here."""


def resolve_device(name: str | None = "auto") -> torch.device:
    """``auto`` -> cuda, else mps, else cpu; otherwise the named device, checked."""
    if name in (None, "", "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise DeviceError(f"device={name}: not a device name (use auto, cpu, cuda, cuda:1, mps)") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DeviceError(f"device={name}: CUDA is not available on this machine; use device=cpu or auto")
    if device.type == "mps" and not _mps_available():
        raise DeviceError(f"device={name}: MPS is not available on this machine; use device=cpu or auto")
    return device


def device_name(device: torch.device) -> str:
    """What a report calls ``device``: the GPU's name on CUDA, else the processor's."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return platform.processor() or platform.machine()


def _mps_available() -> bool:
    return getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()


def cpu_has_native_bf16() -> bool:
    """True when oneDNN runs bf16 convolutions natively (AVX512-BF16 or AMX)."""
    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def native_bf16(device: torch.device) -> bool:
    """True on CUDA GPUs with bf16 and on CPUs whose oneDNN has native bf16 (AVX512-BF16, AMX)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return cpu_has_native_bf16()


def cluster_plugins() -> list[Any]:
    """Lightning Trainer plugins for the cluster this process runs in.

    Under SLURM, Lightning's own auto-requeue (on SIGUSR1) is switched off: submitit,
    which submitted the job (``hydra/launcher=slurm``), owns requeueing, so a time limit
    requeues the job once, not twice. SIGTERM (pre-emption, ``scontrol requeue``) still
    stops training after the current step, and the exception checkpoint saves ``last.ckpt``.
    """
    from pytorch_lightning.plugins.environments import SLURMEnvironment

    return [SLURMEnvironment(auto_requeue=False)] if SLURMEnvironment.detect() else []


@dataclass(frozen=True)
class TrainingPath:
    """What ``trainer=auto`` trains with on a device: Lightning's ``precision``, the
    ``channels_last`` switch of :class:`~fast_style.training.module.StyleTransferModule`,
    and why (one line for the log)."""

    precision: str
    channels_last: bool | str
    reason: str


def training_path(device: torch.device) -> TrainingPath:
    """The fastest training set-up known for ``device`` (measured: docs/results.md, "Training speed").

    - CUDA with bf16 (Ampere and later): bf16 autocast, NHWC for both networks (tensor cores);
    - CUDA without bf16: fp16 autocast with Lightning's gradient scaler (``16-mixed``), NHWC;
    - CPU with native bf16 (AVX512-BF16, AMX): bf16 autocast, NHWC for VGG only (the
      transform net's instance norms copy NHWC tensors back to NCHW on CPUs);
    - other CPUs: fp32 (emulated bf16 is several times slower), NHWC for VGG only;
    - MPS and anything else: fp32, NCHW.
    Grams and losses stay fp32 under autocast (:mod:`fast_style.nn.losses`).
    """
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return TrainingPath("bf16-mixed", True, "CUDA GPU with bf16")
        return TrainingPath("16-mixed", True, "CUDA GPU without bf16: fp16 autocast with gradient scaling")
    if device.type == "cpu":
        if cpu_has_native_bf16():
            return TrainingPath("bf16-mixed", "loss_net", "CPU with native bf16 (AVX512-BF16 or AMX)")
        return TrainingPath("32-true", "loss_net", "CPU without native bf16 (bf16 would be emulated, and slower)")
    return TrainingPath("32-true", False, f"{device.type.upper()}: fp32")


def accelerator_device(accelerator: str) -> torch.device:
    """The device type Lightning's ``Trainer(accelerator=...)`` will train on."""
    name = str(accelerator).lower()
    if name in ("gpu", "cuda"):
        return torch.device("cuda")
    if name in ("cpu", "mps"):
        return torch.device(name)
    return resolve_device("auto")
