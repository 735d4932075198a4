"""The image transform network of Johnson et al. (2016), with the later fixes.

Layout for ``width=w`` (paper: w=32) and ``num_residual=r`` (paper: 5)::

    c9s1-w  ->  d2w  ->  d4w  ->  r x R4w  ->  u2w  ->  uw  ->  c9s1-3

``cKsS-C`` is a KxK convolution with stride S and C filters, ``dC`` a 3x3 stride-2
convolution, ``RC`` a residual block of two 3x3 convolutions, ``uC`` a x2 upsampling
followed by a 3x3 convolution. Every convolution pads by reflection; every one but the
last is followed by normalisation and ReLU.

Variants (``norm``, ``upsample``):

- ``instance`` + ``nearest`` (default): instance norm and nearest-neighbour upsampling
  followed by a convolution, which avoids the checkerboard artefacts of transposed
  convolutions (Ulyanov et al. 2016; Odena et al. 2016).
- ``batch`` + ``transposed``: the paper's original choices.

Input and output are RGB in [0, 1], shape (N, 3, H, W). The output is not clamped
(training needs the gradient everywhere); clamp it when turning it into an image.
Upsampling targets the exact size of the matching encoder stage, so the output has
the input's H and W for every size, odd ones included.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

NORMS = ("instance", "batch")
UPSAMPLES = ("nearest", "transposed")


def make_norm(kind: str, channels: int) -> nn.Module:
    """Instance norm (affine, no running statistics) or batch norm over ``channels``."""
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=True, track_running_stats=False)
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    raise ValueError(f"unknown norm {kind!r}; choose one of {NORMS}")


class ReflectConv(nn.Module):
    """Reflection padding by ``kernel_size // 2`` then a convolution."""

    def __init__(self, in_channels: int, out_channels: int, *, kernel_size: int, stride: int = 1):
        super().__init__()
        self.pad = nn.ReflectionPad2d(kernel_size // 2)
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.pad(x))


class ConvNormReLU(nn.Module):
    """ReflectConv -> norm -> ReLU."""

    def __init__(self, in_channels: int, out_channels: int, *, kernel_size: int, stride: int = 1, norm: str):
        super().__init__()
        self.conv = ReflectConv(in_channels, out_channels, kernel_size=kernel_size, stride=stride)
        self.norm = make_norm(norm, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.norm(self.conv(x)))


class ResidualBlock(nn.Module):
    """x + norm(conv(relu(norm(conv(x))))), both convolutions 3x3 with C channels."""

    def __init__(self, channels: int, *, norm: str):
        super().__init__()
        self.conv1 = ReflectConv(channels, channels, kernel_size=3)
        self.norm1 = make_norm(norm, channels)
        self.conv2 = ReflectConv(channels, channels, kernel_size=3)
        self.norm2 = make_norm(norm, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.norm1(self.conv1(x)))
        return x + self.norm2(self.conv2(y))


class UpConvNormReLU(nn.Module):
    """Upsample to an exact ``size`` (about x2) -> norm -> ReLU.

    ``nearest``: nearest-neighbour resize, then a 3x3 ReflectConv.
    ``transposed``: a 3x3 stride-2 transposed convolution whose output padding is
    chosen so that the result has exactly ``size``.
    """

    def __init__(self, in_channels: int, out_channels: int, *, norm: str, upsample: str):
        super().__init__()
        if upsample not in UPSAMPLES:
            raise ValueError(f"unknown upsample {upsample!r}; choose one of {UPSAMPLES}")
        self.upsample = upsample
        if upsample == "nearest":
            self.conv = ReflectConv(in_channels, out_channels, kernel_size=3)
        else:
            self.conv = nn.ConvTranspose2d(in_channels, out_channels, 3, stride=2, padding=1)
        self.norm = make_norm(norm, out_channels)

    def forward(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        if self.upsample == "nearest":
            y = self.conv(F.interpolate(x, size=size, mode="nearest"))
        else:
            y = self.conv(x, output_size=list(size))
        return F.relu(self.norm(y))


class TransformerNet(nn.Module):
    """Feed-forward style network: (N, 3, H, W) in [0, 1] -> (N, 3, H, W), unclamped.

    Keyword arguments mirror ``configs/model/*.yaml``: ``width`` (channels of the first
    layer; the encoder uses w, 2w, 4w), ``num_residual`` blocks, ``norm`` (instance |
    batch) and ``upsample`` (nearest | transposed).
    """

    def __init__(
        self,
        *,
        width: int = 32,
        num_residual: int = 5,
        norm: str = "instance",
        upsample: str = "nearest",
    ):
        super().__init__()
        if norm not in NORMS:
            raise ValueError(f"unknown norm {norm!r}; choose one of {NORMS}")
        self.config = {"width": width, "num_residual": num_residual, "norm": norm, "upsample": upsample}
        w = width
        self.conv1 = ConvNormReLU(3, w, kernel_size=9, norm=norm)
        self.down1 = ConvNormReLU(w, 2 * w, kernel_size=3, stride=2, norm=norm)
        self.down2 = ConvNormReLU(2 * w, 4 * w, kernel_size=3, stride=2, norm=norm)
        self.residuals = nn.Sequential(*[ResidualBlock(4 * w, norm=norm) for _ in range(num_residual)])
        self.up1 = UpConvNormReLU(4 * w, 2 * w, norm=norm, upsample=upsample)
        self.up2 = UpConvNormReLU(2 * w, w, norm=norm, upsample=upsample)
        self.head = ReflectConv(w, 3, kernel_size=9)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.conv1(x)
        x2 = self.down1(x1)
        y = self.residuals(self.down2(x2))
        y = self.up1(y, size=tuple(x2.shape[-2:]))
        y = self.up2(y, size=tuple(x1.shape[-2:]))
        return self.head(y)


def build_transformer(config: dict) -> TransformerNet:
    """TransformerNet from a plain config dict (as stored in checkpoints)."""
    known = {"width", "num_residual", "norm", "upsample"}
    return TransformerNet(**{k: v for k, v in dict(config).items() if k in known})
