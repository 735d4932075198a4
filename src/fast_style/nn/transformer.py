"""The image transform network of Johnson et al. (2016), with the later fixes.

Layout for ``width=w`` (paper: w=32) and ``num_residual=r`` (paper: 5)::

    c9s1-w  ->  d2w  ->  d4w  ->  r x R4w  ->  u2w  ->  uw  ->  c9s1-3

``cKsS-C`` is a KxK convolution with stride S and C filters, ``dC`` a 3x3 stride-2
convolution, ``RC`` a residual block of two 3x3 convolutions, ``uC`` a x2 upsampling
followed by a 3x3 convolution. Every convolution pads by reflection; every one but the
last is followed by normalisation and ReLU (the second convolution of a residual block
by normalisation and the residual sum).

Variants (``norm``, ``upsample``):

- ``instance`` + ``nearest`` (default): instance norm and nearest-neighbour upsampling
  followed by a convolution, which avoids the checkerboard artefacts of transposed
  convolutions (Ulyanov et al. 2016; Odena et al. 2016).
- ``batch`` + ``transposed``: the paper's original choices.

Input and output are RGB in [0, 1], shape (N, 3, H, W). The output is not clamped
(training needs the gradient everywhere); clamp it when turning it into an image.
Upsampling targets the exact size of the matching encoder stage, so the output has
the input's H and W for every size, odd ones included.

``input_skip=True`` adds the photo to the output, y = head(h) + g * x with a learnt
per-channel gain g (tensor ``input_skip``, shape (3,), starts at 1), and starts the
head at zero, so that a new network passes the photo through exactly and training only
has to learn the change (global residual learning, as in Kim et al. 2016, VDSR). Files
without the ``input_skip`` tensor are networks without it (every model written before it
existed), and load as such.

The network is described once, as data: :meth:`TransformerNet.steps` lists every
convolution with what follows it (:class:`Step`). ``forward``, the tiled inference
(``fast_style.inference.tiling``) and the ONNX/TorchScript export all run that list
with :func:`step_conv` and :func:`step_post`, so they cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

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


class ConvNorm(nn.Module):
    """A ReflectConv and the norm that follows it (parameters ``conv.*``, ``norm.*``)."""

    def __init__(self, in_channels: int, out_channels: int, *, kernel_size: int, stride: int = 1, norm: str):
        super().__init__()
        self.conv = ReflectConv(in_channels, out_channels, kernel_size=kernel_size, stride=stride)
        self.norm = make_norm(norm, out_channels)


class ResidualBlock(nn.Module):
    """x + norm2(conv2(relu(norm1(conv1(x))))), both convolutions 3x3 with C channels."""

    def __init__(self, channels: int, *, norm: str):
        super().__init__()
        self.conv1 = ReflectConv(channels, channels, kernel_size=3)
        self.norm1 = make_norm(norm, channels)
        self.conv2 = ReflectConv(channels, channels, kernel_size=3)
        self.norm2 = make_norm(norm, channels)


class UpConv(nn.Module):
    """About x2 upsampling to an exact ``size`` and a 3x3 convolution, then a norm.

    ``nearest``: nearest-neighbour resize to ``size``, then a 3x3 ReflectConv.
    ``transposed``: a 3x3 stride-2 transposed convolution with output padding 1 (2h
    rows), cropped to ``size`` (2h - 1 or 2h). Output padding only appends a row and a
    column, so the crop equals the transposed convolution of exactly that size; its
    bounds come from a tensor's shape, which keeps them dynamic in exported graphs.
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

    def resize_conv(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        if self.upsample == "nearest":
            return self.conv(F.interpolate(x, size=size, mode="nearest"))
        conv = self.conv
        y = F.conv_transpose2d(x, conv.weight, conv.bias, stride=2, padding=1, output_padding=1)
        return y[..., : size[0], : size[1]]


class Step(NamedTuple):
    """One convolution of the network and what follows it.

    ``conv`` maps the running activation h to the pre-norm activation z (for
    ``resize="up"`` it also takes the target size); ``norm`` normalises z (None for
    the output layer); ``post`` is ``"relu"``, ``"add"`` (z's norm plus the residual
    input) or ``""`` (the output). ``resize`` is ``"down"`` (stride 2: the input's size
    is remembered), ``"up"`` (resize to the last remembered size) or ``""``;
    ``opens_residual`` marks the first convolution of a residual block (its input is
    the skip); ``level`` is z's resolution: 0 full, 1 half, 2 quarter.
    """

    conv: Callable[..., torch.Tensor]
    norm: nn.Module | None
    post: str
    resize: str = ""
    opens_residual: bool = False
    level: int = 0


def step_conv(step: Step, h: torch.Tensor, sizes: list) -> torch.Tensor:
    """The pre-norm activation z of ``step`` on h; keeps the stack of encoder sizes."""
    if step.resize == "up":
        return step.conv(h, sizes.pop())
    if step.resize == "down":
        sizes.append(tuple(h.shape[-2:]))
    return step.conv(h)


def step_post(step: Step, y: torch.Tensor, skip: torch.Tensor | None) -> torch.Tensor:
    """What follows the norm: ReLU, the residual sum, or nothing (the output)."""
    if step.post == "relu":
        return F.relu(y)
    if step.post == "add":
        return skip + y
    return y


class TransformerNet(nn.Module):
    """Feed-forward style network: (N, 3, H, W) in [0, 1] -> (N, 3, H, W), unclamped.

    Keyword arguments mirror ``configs/model/*.yaml``: ``width`` (channels of the first
    layer; the encoder uses w, 2w, 4w), ``num_residual`` blocks, ``norm`` (instance |
    batch) and ``upsample`` (nearest | transposed). Parameter names (``conv1.conv.conv``,
    ``residuals.0.norm1``, ``up1.conv``, ``head.conv``, ...) are those of every style
    model this project has written.
    """

    def __init__(
        self,
        *,
        width: int = 32,
        num_residual: int = 5,
        norm: str = "instance",
        upsample: str = "nearest",
        input_skip: bool = False,
    ):
        super().__init__()
        if norm not in NORMS:
            raise ValueError(f"unknown norm {norm!r}; choose one of {NORMS}")
        self.config = {"width": width, "num_residual": num_residual, "norm": norm, "upsample": upsample,
                       "input_skip": input_skip}
        w = width
        self.conv1 = ConvNorm(3, w, kernel_size=9, norm=norm)
        self.down1 = ConvNorm(w, 2 * w, kernel_size=3, stride=2, norm=norm)
        self.down2 = ConvNorm(2 * w, 4 * w, kernel_size=3, stride=2, norm=norm)
        self.residuals = nn.ModuleList([ResidualBlock(4 * w, norm=norm) for _ in range(num_residual)])
        self.up1 = UpConv(4 * w, 2 * w, norm=norm, upsample=upsample)
        self.up2 = UpConv(2 * w, w, norm=norm, upsample=upsample)
        self.head = ReflectConv(w, 3, kernel_size=9)
        self.register_parameter("input_skip", nn.Parameter(torch.ones(3)) if input_skip else None)
        if input_skip:
            nn.init.zeros_(self.head.conv.weight)
            nn.init.zeros_(self.head.conv.bias)

    def steps(self) -> list[Step]:
        """The network as data, in order (see :class:`Step`)."""
        steps = [
            Step(self.conv1.conv, self.conv1.norm, "relu"),
            Step(self.down1.conv, self.down1.norm, "relu", resize="down", level=1),
            Step(self.down2.conv, self.down2.norm, "relu", resize="down", level=2),
        ]
        for block in self.residuals:
            steps.append(Step(block.conv1, block.norm1, "relu", opens_residual=True, level=2))
            steps.append(Step(block.conv2, block.norm2, "add", level=2))
        steps.append(Step(self.up1.resize_conv, self.up1.norm, "relu", resize="up", level=1))
        steps.append(Step(self.up2.resize_conv, self.up2.norm, "relu", resize="up", level=0))
        steps.append(Step(self.head, None, ""))
        return steps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, skip, sizes = x, None, []
        for step in self.steps():
            if step.opens_residual:
                skip = h
            z = step_conv(step, h, sizes)
            h = step_post(step, z if step.norm is None else step.norm(z), skip)
        return self.add_input(h, x)

    def add_input(self, head_output: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """The network's output from its head's output and its input (see ``input_skip``)."""
        if self.input_skip is None:
            return head_output
        return head_output + self.input_skip.view(1, 3, 1, 1).to(head_output.dtype) * x


def build_transformer(config: dict) -> TransformerNet:
    """TransformerNet from a plain config dict (as stored in checkpoints)."""
    known = {"width", "num_residual", "norm", "upsample", "input_skip"}
    return TransformerNet(**{k: v for k, v in dict(config).items() if k in known})
