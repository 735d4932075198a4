"""After the network: check its output, then colour preservation and the strength blend.

:func:`finish` takes the run's :class:`~fast_style.inference.options.StylizeOptions`
whole, so an option that changes the finish is read here and nowhere else:

    y = blend(preserve_color(s, x) if preserve_color else s, x, strength=pixel_strength)

on (3, H, W) tensors in [0, 1], clamped to [0, 1], where ``blend`` is
``strength * s + (1 - strength) * x`` (:mod:`fast_style.inference.colour`) and
``pixel_strength`` is 1 when the runner already applied the strength in the network.
"""

from __future__ import annotations

import torch

from fast_style.errors import FastStyleError
from fast_style.inference.colour import blend, preserve_color
from fast_style.inference.options import StylizeOptions


class ModelOutputError(FastStyleError):
    """A model whose output is not an image of the input's size, or not finite."""


def check_output(outputs: torch.Tensor, batch: torch.Tensor) -> torch.Tensor:
    """``outputs`` if it is a finite (N, 3, H, W) batch like ``batch``, else :class:`ModelOutputError`
    (an exported model can return anything; NaN weights give NaN images)."""
    if tuple(outputs.shape) != tuple(batch.shape):
        raise ModelOutputError(f"the model returned shape {tuple(outputs.shape)} for input {tuple(batch.shape)}, "
                               "not an image of the same size; the model file is not a working style model")
    # checked a band of rows at a time: a bool (or float64) copy of an 8K batch is 100 (800) MB
    rows = max(1, (1 << 20) // max(1, outputs.shape[-1]))
    if not all(bool(torch.isfinite(band).all()) for band in outputs.split(rows, dim=-2)):
        raise ModelOutputError("the model's output has NaN or infinite values; its weights are broken "
                               "(a diverged training run?) or the precision overflowed (try precision=fp32)")
    return outputs


def finish(stylized: torch.Tensor, photo: torch.Tensor, options: StylizeOptions) -> torch.Tensor:
    """The finished (3, H, W) image of ``stylized`` and its ``photo`` (see the module docstring)."""
    if options.preserve_color:
        stylized = preserve_color(stylized, photo)
    finished = blend(stylized, photo, strength=options.pixel_strength)
    if finished is photo:
        return finished.clamp(0, 1)
    # the runner's output is this run's own: clamped in place (an 8K float image is 400 MB);
    # inference mode, since the runners' outputs may be inference tensors
    with torch.inference_mode():
        return finished.clamp_(0, 1)
