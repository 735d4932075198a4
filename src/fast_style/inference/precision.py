"""How close a reduced-precision output is to fp32, and which precision ``auto`` picks.

The accuracy bound judges whole images, not the worst single pixel: a reduced
precision is acceptable for a model when its output, against the same model's fp32
output on the same photo (both clamped to [0, 1]), has

    PSNR = 10 * log10(1 / mean((a - b)^2)) >= 40 dB   and   mean |a - b| <= 1/255.

40 dB is an RMS difference of 2.55/255; the mean bound keeps a uniform shift out.

``precision=auto`` tries the candidates of the device, fastest first
(:func:`auto_candidates`), on the run's first photo and keeps the first that meets the
bound; fp32 is always the last candidate and needs no check. A flat image (pixel
standard deviation below :data:`FLAT_STD`: a black or faded video frame, a blank page)
says nothing about a precision, so until an image with detail comes the run stays in
fp32 and decides on that one (:func:`is_flat`). The choice is per model
and device because the error depends on both: a random paper-sized network moves
pixels in bf16 by a mean of ~2/255, a trained one by less (docs/results.md, "Precision").
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import torch

from fast_style.devices import native_bf16

log = logging.getLogger(__name__)

MIN_PSNR_DB = 40.0
MAX_MEAN_DIFF = 1.0 / 255.0
# the calibration photo is cropped to this many pixels around its centre (a 4K frame
# would otherwise cost a second fp32 pass of the whole image)
CALIBRATION_PIXELS = 512 * 512
# the standard deviation of a calibration crop's pixels below which it is too flat to judge by
FLAT_STD = 4.0 / 255.0


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """Peak signal-to-noise ratio in dB of two images in [0, 1] (clamped first), any shape;
    ``inf`` when they are identical."""
    mse = (a.float().clamp(0, 1) - b.float().clamp(0, 1)).square().mean().item()
    return math.inf if mse == 0 else 10.0 * math.log10(1.0 / mse)


@dataclass(frozen=True)
class Agreement:
    """PSNR (dB) and mean absolute difference (0..1) of an output against fp32."""

    psnr_db: float
    mean_diff: float

    @classmethod
    def of(cls, output: torch.Tensor, fp32: torch.Tensor) -> Agreement:
        a, b = output.float().clamp(0, 1), fp32.float().clamp(0, 1)
        finite = bool(torch.isfinite(output).all())
        return cls(psnr(a, b) if finite else -math.inf, (a - b).abs().mean().item() if finite else math.inf)

    @property
    def within_bound(self) -> bool:
        return self.psnr_db >= MIN_PSNR_DB and self.mean_diff <= MAX_MEAN_DIFF

    def line(self) -> str:
        return f"PSNR {self.psnr_db:.1f} dB, mean difference {self.mean_diff * 255:.2f}/255 against fp32"


def auto_candidates(device: torch.device) -> list[torch.dtype]:
    """Precisions ``auto`` tries on ``device``, fastest first; always ends with fp32.

    CUDA: fp16 (tensor cores, 10 mantissa bits: the more accurate 16-bit format), then
    bf16. MPS: fp16. CPU: bf16 only where oneDNN runs it natively (AVX512-BF16, AMX);
    emulated bf16 is slower than fp32.
    """
    if device.type == "cuda":
        return [torch.float16, *([torch.bfloat16] if native_bf16(device) else []), torch.float32]
    if device.type == "mps":
        return [torch.float16, torch.float32]
    return [torch.bfloat16, torch.float32] if native_bf16(device) else [torch.float32]


def calibration_crop(batch: torch.Tensor, pixels: int = CALIBRATION_PIXELS) -> torch.Tensor:
    """The centre crop of about ``pixels`` of the image of ``batch`` whose crop has the
    most detail (largest pixel standard deviation; the first on a tie), as (1, 3, h, w)."""
    height, width = batch.shape[-2:]
    if height * width > pixels:
        side = int(math.sqrt(pixels))
        h, w = min(height, side), min(width, max(side, pixels // max(1, min(height, side))))
        top, left = (height - h) // 2, (width - w) // 2
        batch = batch[..., top:top + h, left:left + w]
    if batch.shape[0] == 1:
        return batch
    spread = batch.float().flatten(1).std(dim=1)
    best = int(spread.argmax())
    return batch[best:best + 1]


def is_flat(image: torch.Tensor) -> bool:
    """Whether ``image``'s pixels (all channels) vary by less than :data:`FLAT_STD`."""
    return image.numel() < 2 or image.float().std().item() < FLAT_STD
