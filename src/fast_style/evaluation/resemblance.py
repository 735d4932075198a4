"""Does a stylized image still show the photo, and does it take the painting's colours?

Two numbers that need no loss network, so that they mean the same with random and
with ImageNet VGG weights:

- :func:`luminance_ssim` (photo, stylized): the structural similarity (Wang et al.
  2004) of the two images' luminance Y = 0.299 R + 0.587 G + 0.114 B, with an 11x11
  Gaussian window (sigma 1.5), C1 = (0.01 L)^2, C2 = (0.03 L)^2 and L = 1; the mean of
  the SSIM map over the positions where the window fits. 1 means the same structure;
  a recognisable photo scores about 0.5 and more, noise or flat colour near 0.
- :func:`colour_distance` (image, painting): the sliced Wasserstein-1 distance between
  the two images' RGB pixel distributions. For each of ``projections`` random unit
  directions u (seeded, the same for every call), project every pixel onto u and take
  the mean absolute difference of the two projections' ``quantiles`` evenly spaced
  quantiles; the result is the mean over directions, in [0, 1]-RGB units. 0 means the
  same palette in the same proportions; the spatial layout does not matter.

Images are (3, H, W) or (1, 3, H, W) tensors in [0, 1]; both images of a pair for SSIM
must have the same size, a colour distance compares any sizes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

LUMA = (0.299, 0.587, 0.114)


def _chw(image: torch.Tensor) -> torch.Tensor:
    if image.dim() == 4 and image.shape[0] == 1:
        image = image[0]
    if image.dim() != 3 or image.shape[0] != 3:
        raise ValueError(f"expected an RGB image of shape (3, H, W) or (1, 3, H, W), got {tuple(image.shape)}")
    return image.detach().to(torch.float64).clamp(0, 1)


def luminance(image: torch.Tensor) -> torch.Tensor:
    """Y of an RGB image, (3, H, W) -> (H, W)."""
    rgb = _chw(image)
    return sum(weight * channel for weight, channel in zip(LUMA, rgb, strict=True))


def _gaussian_window(size: int, sigma: float) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :])[None, None]


def luminance_ssim(photo: torch.Tensor, stylized: torch.Tensor, *, window: int = 11, sigma: float = 1.5) -> float:
    """Mean SSIM of the luminance of two same-size images (see the module docstring)."""
    a, b = luminance(photo), luminance(stylized)
    if a.shape != b.shape:
        raise ValueError(f"SSIM needs images of one size, got {tuple(a.shape)} and {tuple(b.shape)}")
    if min(a.shape) < window:
        raise ValueError(f"SSIM needs images of at least {window}x{window} px, got {tuple(a.shape)}")
    kernel = _gaussian_window(window, sigma)

    def blur(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(t[None, None], kernel)[0, 0]

    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a**2
    var_b = blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    c1, c2 = 0.01**2, 0.03**2
    ssim_map = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return float(ssim_map.mean())


def colour_distance(image: torch.Tensor, painting: torch.Tensor, *, projections: int = 128,
                    quantiles: int = 256, seed: int = 0) -> float:
    """Sliced Wasserstein-1 distance of two images' RGB pixels (see the module docstring)."""
    generator = torch.Generator().manual_seed(seed)
    directions = torch.randn(projections, 3, generator=generator, dtype=torch.float64)
    directions = directions / directions.norm(dim=1, keepdim=True)
    levels = (torch.arange(quantiles, dtype=torch.float64) + 0.5) / quantiles

    def projected_quantiles(rgb: torch.Tensor) -> torch.Tensor:
        pixels = _chw(rgb).reshape(3, -1)  # (3, P)
        return torch.quantile(directions @ pixels, levels, dim=1)  # (quantiles, projections)

    return float((projected_quantiles(image) - projected_quantiles(painting)).abs().mean())
