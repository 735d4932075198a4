"""The calibrated runner of ``precision=auto``: the fastest precision that is accurate enough.

Where reduced precisions may be faster (CUDA, MPS, CPUs with native bf16;
:func:`~fast_style.inference.precision.auto_candidates`), each candidate, fastest first,
is compared with fp32 on a crop of the first batch's most detailed image, and the first
one within the accuracy bound of :mod:`fast_style.inference.precision` (PSNR >= 40 dB,
mean <= 1/255) runs the whole run; fp32 if none does (on a CPU, onnxruntime's fp32 when
it is available). A batch whose crop is flat (a clip that opens on black) runs in fp32
and leaves the choice to the first with detail.

The choice is kept in the start-up cache (:mod:`.startup_cache`): the next run of the same
network on the same device, with the same style weights and strength, takes it without
judging again (and without the two passes over the crop that judging costs).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from fast_style.inference.precision import Agreement, calibration_crop, is_flat
from fast_style.inference.runners.base import Runner, notice
from fast_style.inference.runners.pytorch import Stylizer, dtype_name
from fast_style.inference.runners.startup_cache import Decision, StartupCache


@dataclass
class CalibratedStylizer:
    """See the module docstring. ``make(dtype)``: the PyTorch runner in ``dtype``;
    ``candidates``: dtypes fastest first, ending with fp32; ``fp32_runner``: what runs the
    fp32 reference when no candidate meets the bound (None: itself, PyTorch eager);
    ``cache``: where the choice is looked up first and kept (None: judged on every run)."""

    make: Callable[[torch.dtype], Stylizer]
    candidates: list[torch.dtype]
    pixel_budget: int = 0
    fp32_runner: Callable[[Stylizer], Runner] | None = None
    cache: StartupCache | None = None
    chosen: Runner | None = field(default=None, init=False)
    agreement: Agreement | None = field(default=None, init=False)
    _fp32: Stylizer | None = field(default=None, init=False, repr=False)
    label = "precision=auto"

    def needs_tiling(self, height: int, width: int) -> bool:
        return bool(self.pixel_budget) and height * width > self.pixel_budget

    def __call__(self, batch: torch.Tensor, *, progress: Callable[[], None] | None = None) -> torch.Tensor:
        if self.chosen is None and self.cache is not None:
            decision = self.cache.decision()
            self.chosen = self.reuse(decision) if decision is not None else None
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
                self._remember(Decision(dtype, agreement.psnr_db, agreement.mean_diff))
                return stylizer
            notice(f"precision=auto: not {name} ({agreement.line()}: below the bound); trying the next")
        self._remember(Decision(torch.float32))
        return self.fp32_fallback()

    def fp32_fallback(self, why: str = "") -> Runner:
        """The fp32 runner of the run when no reduced precision meets the bound."""
        fp32 = self.fp32()
        fallback = fp32 if self.fp32_runner is None else self.fp32_runner(fp32)
        engine = "" if fallback is fp32 else f" ({fallback.label})"
        notice(f"precision=auto: fp32 on {fp32.device.type}{engine}{why}")
        return fallback

    def reuse(self, decision: Decision) -> Runner:
        """The runner of a cached decision (no calibration)."""
        cached = "; cached for this model and device (startup_cache=false judges again)"
        if decision.dtype == torch.float32:
            return self.fp32_fallback(f": {decision.line()}{cached}")
        stylizer = self.make(decision.dtype)
        if decision.psnr_db is not None and decision.mean_diff is not None:
            self.agreement = Agreement(decision.psnr_db, decision.mean_diff)
        notice(f"precision=auto: {dtype_name(decision.dtype)} on {stylizer.device.type} ({decision.line()}){cached}")
        return stylizer

    def _remember(self, decision: Decision) -> None:
        if self.cache is not None:
            self.cache.remember(decision)
