"""Temporal stability without optical flow: a second view made by a known warp.

After Gupta et al. (2017), "Characterizing and Improving Stability in Neural Style
Transfer", and ReCoNet's output-level temporal loss, with the flow between two
"frames" known by construction instead of estimated. For a content batch
``x`` (N, 3, H, W) in [0, 1]:

- Motion ``W``: per image, a shift ``t`` (px, uniform in ``[-MAX_SHIFT_PX, MAX_SHIFT_PX]``
  per axis), a rotation ``phi`` (uniform in ``+-MAX_ROTATION_DEG``) and a zoom ``z``
  (uniform in ``1 +- MAX_ZOOM``) about the image centre: a point ``p`` of the image
  moves to ``q = z R(phi) p + t``. Applied by sampling, ``W(x)(q) = x(A q + b)`` with
  ``A = R(-phi) / z`` and ``b = -A t`` (pixel coordinates from the centre, y down), via
  ``affine_grid`` + ``grid_sample`` (bilinear, ``align_corners=False``).
- Validity mask ``M`` (N, 1, H, W): 1 where the sampled point lies inside the frame,
  i.e. where the warp of a ones image (zero padding) is at least ``1 - MASK_TOLERANCE``;
  0 where any bilinear tap falls outside. Images themselves are warped with border
  padding, so the second view has no black edges.
- Second view ("next frame"): ``x2 = clip(W(x) + beta + sigma * eps, 0, 1)``, with a
  per-image brightness offset ``beta`` uniform in ``+-MAX_BRIGHTNESS`` and camera noise
  ``eps ~ N(0, 1)`` per pixel and channel, ``sigma = NOISE_STD``.
- Temporal loss on the stylized views ``y1 = T(x)``, ``y2 = T(x2)`` (N, C, H, W)::

      L_t = w_t * sum(M * (y2 - W(y1))^2) / (C * sum(M))

  the mean squared difference over the pixels valid in both (the output of the
  second view at ``q`` and the moved output of the first are both defined exactly
  where ``M = 1``), over the whole batch, computed in at least fp32 (also under autocast).

Precision: the motion and ``theta`` are fp32 and computed with autocast off (its matmul
would otherwise round the shift to bf16 under ``bf16-mixed``); warps, noise and the loss
run in at least fp32 (fp64 for fp64 images: ``fast_style.nn.precision``).

A network that commutes with the warp (the identity, any pointwise colour map) has
``L_t = 0`` without noise; one that paints a pattern fixed to the frame does not.
Random draws take an optional ``torch.Generator`` on the batch's device; without
one they use torch's global RNG, which ``seed_everything`` seeds.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
import torch.nn.functional as F

from fast_style.nn.precision import at_least_fp32, full_dtype, full_precision

MAX_SHIFT_PX = 3.0  # per axis, sub-pixel (uniform)
MAX_ROTATION_DEG = 1.0
MAX_ZOOM = 0.03  # z in [0.97, 1.03]
NOISE_STD = 2.0 / 255  # Gaussian camera noise, per pixel and channel
MAX_BRIGHTNESS = 2.0 / 255  # per-image brightness offset (exposure flicker)
MASK_TOLERANCE = 1e-3  # valid: at least 99.9 % of the bilinear weight inside the frame


class Motion(NamedTuple):
    """Per-image motion: ``shift`` (N, 2) px as (x right, y down), ``angle`` (N,) degrees
    (positive turns clockwise on screen), ``zoom`` (N,) scale factor."""

    shift: torch.Tensor
    angle: torch.Tensor
    zoom: torch.Tensor

    @classmethod
    def still(cls, n: int, device: torch.device | str = "cpu") -> Motion:
        """No motion: shift 0, angle 0, zoom 1."""
        return cls(torch.zeros(n, 2, device=device), torch.zeros(n, device=device), torch.ones(n, device=device))


class View(NamedTuple):
    """The second view of a batch: ``images`` (N, 3, H, W) in [0, 1], ``theta`` (N, 2, 3)
    the warp for ``affine_grid``, ``mask`` (N, 1, H, W) with 1 where the warp is valid."""

    images: torch.Tensor
    theta: torch.Tensor
    mask: torch.Tensor


def _uniform(shape: tuple[int, ...], bound: float, *, device, generator, dtype=torch.float32) -> torch.Tensor:
    """Uniform in [-bound, bound]."""
    return (torch.rand(shape, device=device, dtype=dtype, generator=generator) * 2 - 1) * bound


def sample_motion(
    n: int,
    *,
    device: torch.device | str = "cpu",
    generator: torch.Generator | None = None,
    max_shift_px: float = MAX_SHIFT_PX,
    max_rotation_deg: float = MAX_ROTATION_DEG,
    max_zoom: float = MAX_ZOOM,
) -> Motion:
    """N independent motions, each parameter uniform in its range (see the module docstring)."""
    shift = _uniform((n, 2), max_shift_px, device=device, generator=generator)
    angle = _uniform((n,), max_rotation_deg, device=device, generator=generator)
    zoom = 1 + _uniform((n,), max_zoom, device=device, generator=generator)
    return Motion(shift, angle, zoom)


def affine_theta(motion: Motion, size: tuple[int, int]) -> torch.Tensor:
    """(N, 2, 3) fp32 ``theta`` for ``affine_grid`` (align_corners=False) of ``motion`` on (H, W) images.

    In pixel coordinates from the centre the sampling map is ``p = A q + b``, ``A = R(-phi) / z``,
    ``b = -A t``; ``affine_grid`` works in coordinates normalised by ``D = diag(2 / W, 2 / H)``,
    so ``theta = [D A D^-1 | D b]``.
    """
    h, w = size
    with full_precision(motion.angle.device):  # the matmul below would run in bf16 under autocast
        rad = torch.deg2rad(motion.angle.float())
        cos, sin = torch.cos(rad), torch.sin(rad)
        inv_zoom = 1 / motion.zoom.float()
        # A = R(-phi) / z, with R(phi) = [[cos, -sin], [sin, cos]]
        a = torch.stack([torch.stack([cos, sin], -1), torch.stack([-sin, cos], -1)], -2) * inv_zoom[:, None, None]
        b = -(a @ motion.shift.float()[:, :, None])  # (N, 2, 1)
        d = torch.tensor([2 / w, 2 / h], device=a.device, dtype=a.dtype)
        linear = a * d[None, :, None] / d[None, None, :]  # D A D^-1
        return torch.cat([linear, b * d[None, :, None]], dim=2)


def warp(images: torch.Tensor, theta: torch.Tensor, *, padding_mode: str = "border") -> torch.Tensor:
    """(N, C, H, W) -> (N, C, H, W) in at least fp32: ``W(x)(q) = x(A q + b)``, bilinear, align_corners=False.

    The grid is fp32 in normalised coordinates (fp64 for fp64 images): a still motion
    reproduces the image to about ``max(H, W) * 2^-24`` per unit of local contrast
    (exactly at 32 px, 1.5e-5 at 256).
    """
    dtype = full_dtype(images)
    with full_precision(images.device):
        grid = F.affine_grid(theta.to(dtype), list(images.shape), align_corners=False)
        return F.grid_sample(images.to(dtype), grid, mode="bilinear", padding_mode=padding_mode, align_corners=False)


def valid_mask(theta: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(N, 1, H, W) mask in theta's dtype (fp32): 1 where every bilinear tap of the warp lies inside the frame."""
    ones = torch.ones(theta.shape[0], 1, *size, device=theta.device, dtype=full_dtype(theta))
    return (warp(ones, theta, padding_mode="zeros") >= 1 - MASK_TOLERANCE).to(ones.dtype)


def camera_noise(
    images: torch.Tensor,
    *,
    generator: torch.Generator | None = None,
    noise_std: float = NOISE_STD,
    max_brightness: float = MAX_BRIGHTNESS,
) -> torch.Tensor:
    """``clip(x + beta + sigma * eps, 0, 1)``: per-image offset beta, per-pixel eps ~ N(0, 1),
    drawn in at least fp32 on the images' device."""
    n, dtype = images.shape[0], full_dtype(images)
    beta = _uniform((n, 1, 1, 1), max_brightness, device=images.device, generator=generator, dtype=dtype)
    eps = torch.randn(images.shape, device=images.device, dtype=dtype, generator=generator)
    return (images + beta + noise_std * eps).clamp(0, 1)


def second_view(
    images: torch.Tensor,
    *,
    generator: torch.Generator | None = None,
    motion: Motion | None = None,
    noise_std: float = NOISE_STD,
    max_brightness: float = MAX_BRIGHTNESS,
) -> View:
    """The "next frame" of a batch (N, 3, H, W) in [0, 1]: a random (or the given) motion,
    then camera noise. Draws, in order: the motion, then the brightness and noise."""
    n, _, h, w = images.shape
    if motion is None:
        motion = sample_motion(n, device=images.device, generator=generator)
    theta = affine_theta(motion, (h, w))
    moved = warp(images, theta)
    if noise_std or max_brightness:
        moved = camera_noise(moved, generator=generator, noise_std=noise_std, max_brightness=max_brightness)
    return View(moved, theta, valid_mask(theta, (h, w)))


def temporal_loss(second: torch.Tensor, first: torch.Tensor, theta: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``sum(M * (y2 - W(y1))^2) / (C * sum(M))``, a scalar in at least fp32 (unweighted).

    ``second`` = y2 = T(x2) and ``first`` = y1 = T(x), both (N, C, H, W); ``theta`` (N, 2, 3)
    the warp that made x2 from x; ``mask`` (N, 1, H, W) its validity. Gradients flow into
    both outputs.
    """
    with full_precision(second.device):
        diff = at_least_fp32(second) - warp(first, theta)
        weights = mask.to(diff.dtype)
        valid = weights.sum() * diff.shape[1]
        return (diff.pow(2) * weights).sum() / valid.clamp_min(1)


def flicker(transform: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor, view: View) -> torch.Tensor:
    """``temporal_loss`` of a network on a batch and its second view (weight 1), no graph."""
    with torch.no_grad():
        return temporal_loss(transform(view.images), transform(images), view.theta, view.mask)

