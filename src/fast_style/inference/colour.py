"""Colour preservation and style strength, on (N, 3, H, W) or (3, H, W) RGB in [0, 1].

Colour preservation (luminance-only transfer, Gatys et al. 2016): take the luma of
the stylized image and the chroma of the photo, in full-range YCbCr (ITU-R BT.601,
as JPEG uses)::

    Y  =  0.299 R + 0.587 G + 0.114 B
    Cb = -0.168736 R - 0.331264 G + 0.5 B
    Cr =  0.5 R - 0.418688 G - 0.081312 B

(Cb and Cr centred on 0 here). Strength blends linearly::

    out = strength * stylized + (1 - strength) * photo
"""

from __future__ import annotations

import torch

_RGB_TO_YCBCR = torch.tensor(
    [
        [0.299, 0.587, 0.114],
        [-0.168736, -0.331264, 0.5],
        [0.5, -0.418688, -0.081312],
    ],
    dtype=torch.float64,
)
_YCBCR_TO_RGB = torch.linalg.inv(_RGB_TO_YCBCR)


def _mix(matrix: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    """Apply a 3x3 colour matrix over the channel axis (dim -3)."""
    m = matrix.to(device=image.device, dtype=image.dtype)
    return torch.einsum("ij,...jhw->...ihw", m, image)


def rgb_to_ycbcr(image: torch.Tensor) -> torch.Tensor:
    """RGB -> (Y, Cb, Cr) with Cb, Cr centred on 0; same shape."""
    return _mix(_RGB_TO_YCBCR, image)


def ycbcr_to_rgb(image: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`rgb_to_ycbcr`."""
    return _mix(_YCBCR_TO_RGB, image)


def preserve_color(stylized: torch.Tensor, photo: torch.Tensor) -> torch.Tensor:
    """Luma of ``stylized`` with the chroma (Cb, Cr) of ``photo``, clamped to [0, 1]."""
    y = rgb_to_ycbcr(stylized)[..., :1, :, :]
    chroma = rgb_to_ycbcr(photo)[..., 1:, :, :]
    return ycbcr_to_rgb(torch.cat([y, chroma], dim=-3)).clamp_(0, 1)


def blend(stylized: torch.Tensor, photo: torch.Tensor, *, strength: float) -> torch.Tensor:
    """``strength * stylized + (1 - strength) * photo``; strength in [0, 1]."""
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"strength must be in [0, 1], got {strength}")
    if strength == 1.0:
        return stylized
    if strength == 0.0:
        return photo.clone()
    return torch.lerp(photo, stylized, strength)
