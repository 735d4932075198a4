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
existed), and load as such. Such a network can also be run part of the way:
:meth:`TransformerNet.scale_head` scales the head's part, s * head + g * x (stylizing's
``strength`` in the network's space).

``num_styles=S > 1`` makes one network hold S styles (Dumoulin, Shlens and Kudlur 2017,
"A Learned Representation for Artistic Style"): every instance norm becomes a
:class:`ConditionalInstanceNorm2d` whose scale and shift are rows of (S, C) tensors,
and ``forward(x, style)`` takes the style weights w: shape (N, S) (one mix per image)
or (N, S, H, W) (one mix per pixel, e.g. from a mask). The norm's affine is the
w-weighted sum of the rows, ``gamma = sum_s w_s gamma_s`` (likewise beta), so w = e_k is
style k alone and other w mix styles inside the network. Everything else is shared.
With S = 1 (the default) the network, its tensors and its files are exactly the
single-style model.

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


def make_norm(kind: str, channels: int, num_styles: int = 1) -> nn.Module:
    """Instance norm (affine, no running statistics) or batch norm over ``channels``;
    with ``num_styles`` > 1 a :class:`ConditionalInstanceNorm2d` (instance norm only)."""
    if kind == "instance" and num_styles > 1:
        return ConditionalInstanceNorm2d(channels, num_styles=num_styles)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=True, track_running_stats=False)
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    raise ValueError(f"unknown norm {kind!r}; choose one of {NORMS}")


class ConditionalInstanceNorm2d(nn.Module):
    """Instance norm whose scale and shift depend on the style (conditional instance norm).

    ``weight`` and ``bias`` are (S, C): row s is style s's gamma and beta. For
    z (N, C, H, W) and style weights w::

        z_hat = (z - mean_hw(z)) / sqrt(var_hw(z) + eps)        (biased variance, per image and channel)
        gamma = w @ weight,  beta = w @ bias                    w (N, S) -> (N, C)
        y     = z_hat * gamma + beta

    For w (N, S, h, w) (a mix per pixel, any resolution) the map is first resized to
    z's H x W (area average when shrinking, bilinear when growing), then
    ``gamma[n, c, i, j] = sum_s w[n, s, i, j] weight[s, c]``. The statistics are the whole
    image's whatever w is, so a region's style changes only the affine: borders between
    styles do not show a seam in the statistics.
    """

    def __init__(self, channels: int, *, num_styles: int, eps: float = 1e-5):
        super().__init__()
        self.num_features = channels
        self.num_styles = num_styles
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(num_styles, channels))
        self.bias = nn.Parameter(torch.zeros(num_styles, channels))

    def affine(self, style: torch.Tensor, size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        """(gamma, beta), each (N, C, 1, 1) for w (N, S) or (N, C, H, W) for a map w (N, S, h, w)."""
        return mix_rows(self.weight, style, size), mix_rows(self.bias, style, size)

    def forward(self, z: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        z_hat = F.instance_norm(z, eps=self.eps)
        gamma, beta = self.affine(style, tuple(z.shape[-2:]))
        return z_hat * gamma.to(z_hat.dtype) + beta.to(z_hat.dtype)

    def extra_repr(self) -> str:
        return f"{self.num_features}, num_styles={self.num_styles}, eps={self.eps}"


def mix_rows(rows: torch.Tensor, style: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``sum_s style[:, s] * rows[s]``: rows (S, C), style (N, S) -> (N, C, 1, 1), or a map
    (N, S, h, w) resized to ``size`` -> (N, C, *size)."""
    if style.dim() == 2:
        return (style.to(rows.dtype) @ rows)[:, :, None, None]
    if style.dim() != 4:
        raise ValueError(f"style weights must be (N, S) or (N, S, H, W), got shape {tuple(style.shape)}")
    style = resize_style_map(style.to(rows.dtype), size)
    return torch.einsum("nshw,sc->nchw", style, rows)


def resize_style_map(style: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """A per-pixel style map (N, S, h, w) at ``size``: area average when shrinking (a pixel of
    a coarse layer takes the mix of the pixels it covers), bilinear when growing."""
    if tuple(style.shape[-2:]) == tuple(size):
        return style
    if style.shape[-2] >= size[0] and style.shape[-1] >= size[1]:
        return F.adaptive_avg_pool2d(style, size)
    return F.interpolate(style, size=size, mode="bilinear", align_corners=False)


def apply_norm(norm: nn.Module, z: torch.Tensor, style: torch.Tensor | None) -> torch.Tensor:
    """``norm(z)``, passing the style weights to a conditional norm."""
    if isinstance(norm, ConditionalInstanceNorm2d):
        return norm(z, style)
    return norm(z)


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

    def __init__(self, in_channels: int, out_channels: int, *, kernel_size: int, stride: int = 1, norm: str,
                 num_styles: int = 1):
        super().__init__()
        self.conv = ReflectConv(in_channels, out_channels, kernel_size=kernel_size, stride=stride)
        self.norm = make_norm(norm, out_channels, num_styles)


class ResidualBlock(nn.Module):
    """x + norm2(conv2(relu(norm1(conv1(x))))), both convolutions 3x3 with C channels."""

    def __init__(self, channels: int, *, norm: str, num_styles: int = 1):
        super().__init__()
        self.conv1 = ReflectConv(channels, channels, kernel_size=3)
        self.norm1 = make_norm(norm, channels, num_styles)
        self.conv2 = ReflectConv(channels, channels, kernel_size=3)
        self.norm2 = make_norm(norm, channels, num_styles)


class UpConv(nn.Module):
    """About x2 upsampling to an exact ``size`` and a 3x3 convolution, then a norm.

    ``nearest``: nearest-neighbour resize to ``size``, then a 3x3 ReflectConv.
    ``transposed``: a 3x3 stride-2 transposed convolution with output padding 1 (2h
    rows), cropped to ``size`` (2h - 1 or 2h). Output padding only appends a row and a
    column, so the crop equals the transposed convolution of exactly that size; its
    bounds come from a tensor's shape, which keeps them dynamic in exported graphs.
    """

    def __init__(self, in_channels: int, out_channels: int, *, norm: str, upsample: str, num_styles: int = 1):
        super().__init__()
        if upsample not in UPSAMPLES:
            raise ValueError(f"unknown upsample {upsample!r}; choose one of {UPSAMPLES}")
        self.upsample = upsample
        if upsample == "nearest":
            self.conv = ReflectConv(in_channels, out_channels, kernel_size=3)
        else:
            self.conv = nn.ConvTranspose2d(in_channels, out_channels, 3, stride=2, padding=1)
        self.norm = make_norm(norm, out_channels, num_styles)

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
    batch), ``upsample`` (nearest | transposed), ``input_skip`` and ``num_styles`` (see the
    module docstring; the config lists ``num_styles`` only when it is above 1). Parameter names (``conv1.conv.conv``,
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
        num_styles: int = 1,
    ):
        super().__init__()
        if norm not in NORMS:
            raise ValueError(f"unknown norm {norm!r}; choose one of {NORMS}")
        if int(num_styles) < 1:
            raise ValueError(f"num_styles={num_styles}: a network holds at least one style")
        if num_styles > 1 and norm != "instance":
            raise ValueError(f"num_styles={num_styles} needs norm=instance (the styles live in the instance norms)")
        self.config = {"width": width, "num_residual": num_residual, "norm": norm, "upsample": upsample,
                       "input_skip": input_skip}
        if num_styles > 1:
            self.config["num_styles"] = int(num_styles)
        w, kw = width, {"norm": norm, "num_styles": int(num_styles)}
        self.conv1 = ConvNorm(3, w, kernel_size=9, **kw)
        self.down1 = ConvNorm(w, 2 * w, kernel_size=3, stride=2, **kw)
        self.down2 = ConvNorm(2 * w, 4 * w, kernel_size=3, stride=2, **kw)
        self.residuals = nn.ModuleList([ResidualBlock(4 * w, **kw) for _ in range(num_residual)])
        self.up1 = UpConv(4 * w, 2 * w, upsample=upsample, **kw)
        self.up2 = UpConv(2 * w, w, upsample=upsample, **kw)
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

    @property
    def num_styles(self) -> int:
        return int(self.config.get("num_styles", 1))

    def style_weights(self, style: torch.Tensor | None, batch: int) -> torch.Tensor | None:
        """The style weights forward uses: None for a one-style network; otherwise ``style``
        as (N, S) or (N, S, H, W), a (S,) vector broadcast to the batch. A multi-style
        network without ``style`` is an error: which style is meant cannot be guessed."""
        if self.num_styles == 1:
            return None
        if style is None:
            raise ValueError(f"this network holds {self.num_styles} styles: pass style weights (N, {self.num_styles})")
        if style.dim() == 1:
            style = style.unsqueeze(0).expand(batch, -1)
        if style.shape[1] != self.num_styles:
            raise ValueError(f"style weights have {style.shape[1]} entries, the network holds {self.num_styles} styles")
        return style

    def forward(self, x: torch.Tensor, style: torch.Tensor | None = None) -> torch.Tensor:
        """x (N, 3, H, W) in [0, 1] -> (N, 3, H, W); ``style``: weights over the network's
        styles, (S,), (N, S) or (N, S, H', W') (ignored by a one-style network)."""
        h, skip, sizes = x, None, []
        style = self.style_weights(style, x.shape[0])
        for step in self.steps():
            if step.opens_residual:
                skip = h
            z = step_conv(step, h, sizes)
            h = step_post(step, z if step.norm is None else apply_norm(step.norm, z, style), skip)
        return self.add_input(h, x)

    def add_input(self, head_output: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """The network's output from its head's output and its input (see ``input_skip``)."""
        if self.input_skip is None:
            return head_output
        return head_output + self.input_skip.view(1, 3, 1, 1).to(head_output.dtype) * x

    def scale_head(self, output: torch.Tensor, x: torch.Tensor, strength: float) -> torch.Tensor:
        """An ``input_skip`` network's output with its head's part scaled by s = ``strength``:
        for y = head + g * x, ``s * head + g * x = s * y + (1 - s) * g * x``, the photo (times the
        learnt gain g) at s = 0 and the style at s = 1. ``output`` y and ``x`` are (N, 3, H, W)."""
        if self.input_skip is None:
            raise ValueError("scale_head needs a network with input_skip (y = head + g * x)")
        if strength == 1:
            return output
        gain = self.input_skip.view(1, 3, 1, 1).to(output.device, output.dtype)
        return torch.lerp(gain * x.to(output.dtype), output, float(strength))


def build_transformer(config: dict) -> TransformerNet:
    """TransformerNet from a plain config dict (as stored in checkpoints)."""
    known = {"width", "num_residual", "norm", "upsample", "input_skip", "num_styles"}
    return TransformerNet(**{k: v for k, v in dict(config).items() if k in known})
