"""The calibrated runner of ``precision=auto``: the fastest precision that is accurate enough.

Where reduced precisions may be faster (CUDA, MPS, CPUs with native bf16;
:func:`~fast_style.inference.precision.auto_candidates`), each candidate, fastest first,
is compared with fp32 on a crop of the first batch's most detailed image, and the first
one within the accuracy bound of :mod:`fast_style.inference.precision` (PSNR >= 40 dB,
mean <= 1/255) runs the whole run; fp32 if none does (on a CPU, onnxruntime's fp32 when
it is available). A batch whose crop is flat (a clip that opens on black) runs in fp32
and leaves the choice to the first with detail.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from fast_style.inference.precision import Agreement, calibration_crop, is_flat
from fast_style.inference.runners.base import Runner, notice
from fast_style.inference.runners.pytorch import Stylizer, dtype_name


@dataclass
class CalibratedStylizer:
    """See the module docstring. ``make(dtype)``: the PyTorch runner in ``dtype``;
    ``candidates``: dtypes fastest first, ending with fp32; ``fp32_runner``: what runs the
    fp32 reference when no candidate meets the bound (None: itself, PyTorch eager)."""

    make: Callable[[torch.dtype], Stylizer]
    candidates: list[torch.dtype]
    pixel_budget: int = 0
    fp32_runner: Callable[[Stylizer], Runner] | None = None
    chosen: Runner | None = field(default=None, init=False)
    agreement: Agreement | None = field(default=None, init=False)
    _fp32: Stylizer | None = field(default=None, init=False, repr=False)
    label = "precision=auto"

    def needs_tiling(self, height: int, width: int) -> bool:
        return bool(self.pixel_budget) and height * width > self.pixel_budget

    def __call__(self, batch: torch.Tensor, *, progress: Callable[[], None] | None = None) -> torch.Tensor:
        if self.chosen is None:
            crop = calibration_crop(batch[None] if batch.dim() == 3 else batch)
            if is_flat(crop):
                if self._fp32 is None:
                    notice("precision=auto: the first image is flat (too little detail to judge a precision by); "
                           "fp32 until one with detail")
                return self.fp32()(batch, progress=progress)
            self.chosen = self.choose(crop)
        return self.chosen(batch, progress=progress)

    def fp32(self) -> Stylizer:
        """The fp32 PyTorch runner (the reference of the calibration), made once."""
        if self._fp32 is None:
            self._fp32 = self.make(torch.float32)
        return self._fp32

    def choose(self, crop: torch.Tensor) -> Runner:
        """The runner for the rest of the run, judged on ``crop`` (1, 3, h, w)."""
        fp32 = self.fp32()
        reference = fp32(crop)
        for dtype in self.candidates:
            if dtype == torch.float32:
                break
            stylizer = self.make(dtype)
            agreement = Agreement.of(stylizer(crop), reference)
            name = dtype_name(dtype)
            if agreement.within_bound:
                self.agreement = agreement
                notice(f"precision=auto: {name} on {fp32.device.type} ({agreement.line()} on the first photo)")
                return stylizer
            notice(f"precision=auto: not {name} ({agreement.line()}: below the bound); trying the next")
        fallback = fp32 if self.fp32_runner is None else self.fp32_runner(fp32)
        engine = "" if fallback is fp32 else f" ({fallback.label})"
        notice(f"precision=auto: fp32 on {fp32.device.type}{engine}")
        return fallback
