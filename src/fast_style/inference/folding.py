"""Inference-only rewrites of a TransformerNet that compute the same function faster.

Each replaces one layer of a frozen copy of the network by an equivalent one that oneDNN
and cuDNN run faster; the products are the same or sums of the same weights, so outputs
agree with the original up to float rounding (tests: ``tests/inference/test_inference.py``).
Training, export and the files never see them: :class:`~fast_style.inference.runners.pytorch.Stylizer`
applies :func:`fold_for_inference` to its own copy.

- :class:`FoldedHead`: the 9x9 output convolution (3 channels) as a stride-2 10x10 one
  with 12 channels and ``pixel_shuffle``.
- :class:`FoldedUpConv`: the nearest x2 upsampling + 3x3 convolution of the decoder
  computed on the low-resolution input (one convolution, 4x the channels, and
  ``pixel_shuffle``), so the upsampled, padded activation is never built.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from fast_style.nn.transformer import ReflectConv, TransformerNet, UpConv


class FoldedHead(nn.Module):
    """The last layer (reflection pad + k x k convolution to 3 channels) as a stride-2
    (k+1) x (k+1) convolution whose 4 x 3 output channels are the 2 x 2 output pixels,
    then ``pixel_shuffle``: the same products and sums, but 4x fuller vector lanes in
    oneDNN (speed: docs/results.md). Inference only (the weights are a frozen copy)."""

    def __init__(self, head: ReflectConv):
        super().__init__()
        conv = head.conv
        k = conv.kernel_size[0]
        w = conv.weight.detach()
        out_c, in_c = w.shape[:2]
        folded = w.new_zeros(out_c, 2, 2, in_c, k + 1, k + 1)
        for a in (0, 1):
            for b in (0, 1):
                folded[:, a, b, :, a:a + k, b:b + k] = w
        self.weight = nn.Parameter(folded.reshape(out_c * 4, in_c, k + 1, k + 1), requires_grad=False)
        bias = conv.bias.detach() if conv.bias is not None else w.new_zeros(out_c)
        self.bias = nn.Parameter(bias.repeat_interleave(4), requires_grad=False)
        self.pad = k // 2

    @staticmethod
    def fits(head: nn.Module) -> bool:
        conv = getattr(head, "conv", None)
        return (
            isinstance(head, ReflectConv) and isinstance(conv, nn.Conv2d) and conv.out_channels <= 4
            and conv.stride == (1, 1) and conv.dilation == (1, 1) and conv.groups == 1
            and conv.kernel_size[0] == conv.kernel_size[1] and conv.kernel_size[0] % 2 == 1
            and conv.padding == (0, 0)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        x = F.pad(x, (self.pad,) * 4, mode="reflect")
        if height % 2 or width % 2:
            x = F.pad(x, (0, width % 2, 0, height % 2))  # only feeds the rows/columns cropped below
        y = F.pixel_shuffle(F.conv2d(x, self.weight, self.bias, stride=2), 2)
        return y[..., :height, :width]


def phase_taps(weight: torch.Tensor, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The 3 taps (w0, w1, w2) of ``weight`` along ``dim`` as read through a nearest x2
    upsampling: output phase 0 reads the input at offsets (-1, 0) with (w0, w1 + w2),
    phase 1 at offsets (0, +1) with (w0 + w1, w2). Both: ``dim`` of size 2."""
    w0, w1, w2 = weight.unbind(dim)
    return torch.stack([w0, w1 + w2], dim), torch.stack([w0 + w1, w2], dim)


class FoldedUpConv(nn.Module):
    """A nearest-upsampling :class:`~fast_style.nn.transformer.UpConv` for inference:
    resize x2, reflection pad 1 and 3x3 convolution, computed on the input x (h, w).

    With U = x upsampled (U[i] = x[i // 2]) and padded by reflection, output row 2a + p
    reads U[2a+p-1 .. 2a+p+1]: x[a-1], x[a], x[a] for p = 0, x[a], x[a], x[a+1] for
    p = 1 (at the border the reflection of U is the replication of x). So each of the
    4 output phases (p, q) is a 2x2 convolution of x padded by replication
    (:func:`phase_taps` in rows, then in columns). The four sit in one 3x3 convolution
    (zeros where a phase reads no tap) with 4 C_out output channels, ``pixel_shuffle``
    interleaves them: (N, C_in, h, w) -> (N, C_out, 2h, 2w). The same multiply-adds as
    the original, at a quarter of the positions with 4x the channels, and without the
    (N, C_in, 2h+2, 2w+2) tensor; measured in docs/results.md.

    Targets other than exactly (2h, 2w) (odd encoder sizes: 2h - 1) run the original
    layer, kept as ``up``. ``norm`` is the original's (steps() reads it).
    """

    def __init__(self, up: UpConv):
        super().__init__()
        weight = up.conv.conv.weight.detach()
        out_c, in_c = weight.shape[:2]
        framed = weight.new_zeros(out_c, 2, 2, in_c, 3, 3)
        for p, rows in enumerate(phase_taps(weight, 2)):
            for q, taps in enumerate(phase_taps(rows, 3)):
                framed[:, p, q, :, p:p + 2, q:q + 2] = taps
        # channel o * 4 + p * 2 + q is output pixel (2a + p, 2b + q) of channel o, as pixel_shuffle reads it
        self.weight = nn.Parameter(framed.reshape(out_c * 4, in_c, 3, 3), requires_grad=False)
        bias = up.conv.conv.bias
        bias = bias.detach() if bias is not None else weight.new_zeros(out_c)
        self.bias = nn.Parameter(bias.repeat_interleave(4), requires_grad=False)
        self.up = up
        self.norm = up.norm

    @staticmethod
    def fits(up: nn.Module) -> bool:
        conv = getattr(getattr(up, "conv", None), "conv", None)
        return (
            isinstance(up, UpConv) and up.upsample == "nearest" and isinstance(conv, nn.Conv2d)
            and conv.kernel_size == (3, 3) and conv.stride == (1, 1) and conv.dilation == (1, 1)
            and conv.groups == 1 and conv.padding == (0, 0)
        )

    def resize_conv(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        height, width = x.shape[-2:]
        if tuple(size) != (2 * height, 2 * width):
            return self.up.resize_conv(x, size)
        return F.pixel_shuffle(F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), self.weight, self.bias), 2)


def fold_for_inference(model: TransformerNet, *, head: bool = True, upsample: bool = True) -> TransformerNet:
    """``model`` with the layers that fit replaced by :class:`FoldedHead` (``head``) and
    :class:`FoldedUpConv` (``upsample``), on a copy; ``model`` itself when nothing changes."""
    fold_head = head and FoldedHead.fits(model.head)
    ups = [name for name in ("up1", "up2") if upsample and FoldedUpConv.fits(getattr(model, name, None))]
    if not fold_head and not ups:
        return model
    model = copy.deepcopy(model)
    if fold_head:
        model.head = FoldedHead(model.head)
    for name in ups:
        setattr(model, name, FoldedUpConv(getattr(model, name)))
    return model
