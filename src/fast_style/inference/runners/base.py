"""What every runner is, and what the runners share.

A runner maps a (N, 3, H, W) float batch in [0, 1] (any device; a (3, H, W) image is
taken as a batch of one) to a (N, 3, H, W) float32 CPU batch clamped to [0, 1]:
``runner(batch, progress=...)``, where ``progress`` is called once per tile of a tiled
image. ``runner.needs_tiling(h, w)`` tells the executors which images to run alone,
and ``runner.label`` names the engine that runs it in messages. Which runner a run gets:
:func:`fast_style.inference.runners.rules.make_runner`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Protocol

import torch
import torch.nn.functional as F

from fast_style.errors import FastStyleError

MIN_SIDE = 8  # the reflection pads need 5 px; a smaller side is padded to 8 px, then cropped back

Run = Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor]  # (batch, style weights) -> output


class Runner(Protocol):
    """The interface of every runner (see the module docstring)."""

    label: str

    def __call__(self, batch: torch.Tensor, *, progress: Callable[[], None] | None = None) -> torch.Tensor: ...

    def needs_tiling(self, height: int, width: int) -> bool: ...


class InferenceOptionError(FastStyleError):
    """An unusable device, runtime or precision option."""


class HugeImageError(FastStyleError):
    """An image above the pixel budget given to a model that cannot be tiled."""


def notice(message: str) -> None:
    """One line on stderr about a choice made for the user (the stylize CLI logs nothing else)."""
    print(message, file=sys.stderr, flush=True)


def padded_to_minimum(run: Run, batch: torch.Tensor, style: torch.Tensor | None = None) -> torch.Tensor:
    """``run(batch, style)``, for a batch with a side below :data:`MIN_SIDE` px (1x1, 3x2,
    3x100000) with the edge pixels repeated up to that size (a per-pixel style map
    (N, S, H, W) likewise) and the result cropped back to the input's size."""
    height, width = batch.shape[-2:]
    if min(height, width) >= MIN_SIDE:
        return run(batch, style)
    pad = (0, max(0, MIN_SIDE - width), 0, max(0, MIN_SIDE - height))
    if style is not None and style.dim() == 4:
        style = F.pad(style, pad, mode="replicate")
    out = run(F.pad(batch, pad, mode="replicate"), style)
    return out[..., :height, :width] if out.dim() == 4 else out


def run_on_cpu(run: Run, batch: torch.Tensor, style: torch.Tensor | None = None) -> torch.Tensor:
    """``run(batch, style)`` (a CPU runtime: onnxruntime, TorchScript) on a (N, 3, H, W) batch
    as a contiguous float32 CPU tensor, small sides padded (:func:`padded_to_minimum`); the
    output clamped to [0, 1], float32, on the CPU."""
    out = padded_to_minimum(run, batch.detach().to("cpu", torch.float32).contiguous(), style)
    return out.float().clamp_(0, 1).cpu().contiguous()
