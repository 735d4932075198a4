"""Running a TransformerNet on images: device, precision, memory format, tiling.

:class:`Stylizer` wraps a model for inference. ``stylizer(batch)`` maps a
(N, 3, H, W) float batch in [0, 1] (any device) to a (N, 3, H, W) float32 CPU batch,
clamped to [0, 1]. Images above ``pixel_budget`` pixels go through the tiled path
(:mod:`fast_style.tiling`), whose output equals the untiled one up to rounding.

Precision: ``fp32`` keeps the model as trained; ``bf16``/``fp16`` cast weights and
activations to that type (instance norm statistics are still accumulated in float32
by PyTorch's kernels). ``auto`` picks the fastest type the hardware runs natively:
CUDA bf16 where supported, else fp16; CPUs with native bf16 instructions
(AVX512-BF16 / AMX, reported by oneDNN) bf16; everything else fp32.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from fast_style.errors import FastStyleError
from fast_style.models.transformer import TransformerNet
from fast_style.tiling import tiled_forward

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
DEFAULT_PIXEL_BUDGET = 4096 * 4096 // 4  # ~4.2 MP untiled: ~1.2 GB of fp32 activations for width 32


class InferenceOptionError(FastStyleError):
    """An unusable device or precision option."""


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` -> cuda, else mps, else cpu; otherwise the named device, checked."""
    if name in (None, "", "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise InferenceOptionError(f"device={name}: not a device name (use auto, cpu, cuda, cuda:1, mps)") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InferenceOptionError(f"device={name}: CUDA is not available on this machine; use device=cpu or auto")
    if device.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise InferenceOptionError(f"device={name}: MPS is not available on this machine; use device=cpu or auto")
    return device


def cpu_has_native_bf16() -> bool:
    """True when oneDNN runs bf16 convolutions natively (AVX512-BF16 or AMX)."""
    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def resolve_precision(name: str, device: torch.device) -> torch.dtype:
    """``auto`` | ``fp32`` | ``bf16`` | ``fp16`` -> a torch dtype for ``device``."""
    if name in (None, "", "auto"):
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        if device.type == "mps":
            return torch.float16
        return torch.bfloat16 if cpu_has_native_bf16() else torch.float32
    if name not in DTYPES:
        raise InferenceOptionError(f"precision={name}: choose auto, fp32, bf16 or fp16")
    if name == "fp16" and device.type == "cpu":
        raise InferenceOptionError("precision=fp16: not supported on the CPU; use bf16 or fp32")
    return DTYPES[name]


@dataclass
class Stylizer:
    """A TransformerNet ready for inference (see the module docstring).

    ``tile_size``: core tile size (px) of the tiled path; ``tile_blend``: cross-fade
    width; ``pixel_budget``: images with more pixels than this are tiled (0: never).
    ``channels_last``: NHWC activations (fastest for oneDNN and tensor cores when the
    whole graph is compiled; in eager mode PyTorch's NHWC norms and pads are slower).
    ``compile``: ``torch.compile`` with weight freezing (first call compiles, ~1 min).
    """

    model: TransformerNet
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    dtype: torch.dtype = torch.float32
    channels_last: bool = False
    compile: bool = False
    tile_size: int = 512
    tile_blend: int = 16
    pixel_budget: int = DEFAULT_PIXEL_BUDGET
    tile_cache_dir: str | None = None
    _forward: Callable[[torch.Tensor], torch.Tensor] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        model = self.model.eval().requires_grad_(False).to(self.device, self.dtype)
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.model = model
        self._forward = model
        if self.compile:
            import torch._inductor.config as inductor_config

            inductor_config.freezing = True
            self._forward = torch.compile(model, dynamic=False)

    def prepare(self, batch: torch.Tensor) -> torch.Tensor:
        """Move a float batch to the model's device, dtype and memory format."""
        x = batch.to(self.device, self.dtype, non_blocking=True)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def needs_tiling(self, height: int, width: int) -> bool:
        return bool(self.pixel_budget) and height * width > self.pixel_budget

    def _context(self) -> contextlib.AbstractContextManager:
        return torch.inference_mode() if not self.compile else torch.no_grad()

    def __call__(self, batch: torch.Tensor, *, progress: Callable[[], None] | None = None) -> torch.Tensor:
        if batch.dim() == 3:
            batch = batch[None]
        height, width = batch.shape[-2:]
        with self._context():
            if self.needs_tiling(height, width):
                outputs = [
                    tiled_forward(
                        self.model,
                        image,
                        tile=self.tile_size,
                        blend=self.tile_blend,
                        prepare=self.prepare,
                        cache_dir=self.tile_cache_dir,
                        progress=progress,
                    )
                    for image in batch
                ]
                return torch.stack(outputs)
            out = self._forward(self.prepare(batch))
            return out.float().clamp_(0, 1).cpu().contiguous()
