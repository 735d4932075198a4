"""The runner of an exported file (ONNX, TorchScript): it runs whole, in fp32, in its own runtime.

An exported graph has no layers to tile, cast or compile and takes one style-weight
vector for the whole image, so :func:`check_deployed` refuses ``precision`` other than
auto/fp32, ``compile`` and a mask in one line each, and an image above ``pixel_budget``
pixels is refused with :class:`~fast_style.inference.runners.base.HugeImageError`
(``pixel_budget=0`` runs it whatever its size).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from fast_style.inference.mixing import StyleChoice
from fast_style.inference.options import StylizeOptions
from fast_style.inference.runners.base import HugeImageError, InferenceOptionError, Run, run_on_cpu


@dataclass
class DeployedRunner:
    """An exported model behind the :class:`~fast_style.inference.runners.base.Runner` call.
    ``label``: its kind's name in messages (ONNX, TorchScript); ``weights``: the style
    weights (S,) fed to a multi-style export (None: one style)."""

    run: Run
    label: str
    pixel_budget: int = 0
    weights: torch.Tensor | None = None

    def needs_tiling(self, height: int, width: int) -> bool:
        """True above the budget (such a batch is flushed alone, then refused by ``__call__``)."""
        return bool(self.pixel_budget) and height * width > self.pixel_budget

    def __call__(self, batch: torch.Tensor, *, progress: Callable[[], None] | None = None) -> torch.Tensor:
        if batch.dim() == 3:
            batch = batch[None]
        height, width = batch.shape[-2:]
        if self.needs_tiling(height, width):
            raise HugeImageError(
                f"{width}x{height} px is above pixel_budget={self.pixel_budget}, and an exported "
                f"{self.label} model cannot be tiled: use a PyTorch "
                "checkpoint (.safetensors/.ckpt/.pth) for huge images, or pass pixel_budget=0 to run it untiled"
            )
        return run_on_cpu(self.run, batch, self.weights)


def check_deployed(options: StylizeOptions, styles: StyleChoice, *, label: str) -> None:
    """One-line errors for the options an exported ``label`` model cannot apply."""
    if str(options.precision) not in ("auto", "fp32"):
        raise InferenceOptionError(
            f"precision={options.precision}: exported {label} models run in fp32; use precision=auto or fp32")
    if options.compile:
        raise InferenceOptionError(f"compile=true does not apply to an exported {label} model; drop it")
    if styles.per_pixel:
        raise InferenceOptionError(
            f"mask={options.mask}: an exported {label} model takes one style-weight vector for the whole image, "
            "not a per-pixel map; use the PyTorch model file (.safetensors/.ckpt) for masks")
