"""Where the tiles of a tiled image lie and how their outputs blend (the geometry of
:mod:`fast_style.inference.tiling`).

Core tiles of ``tile`` px start on multiples of 4 (the stride-2 grid of the whole image)
and carry ``context`` px of surroundings, more than the receptive radius 17 + 8 r
(:func:`receptive_radius`), so a core's activations are exact. Each tile's output is
blended over ``blend`` px with the ramp ``sin^2(pi/2 (t + 1/2) / blend)``; neighbouring
ramps sum to one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from fast_style.nn.transformer import TransformerNet


def min_tile_size(model: TransformerNet) -> int:
    """The smallest accepted ``tile``: the receptive radius rounded up to a multiple of 4
    (60 px for the paper's network). Smaller cores would spend nearly all their work on
    context, and a 3 px tile makes tens of thousands of tiles."""
    return -(-receptive_radius(model) // 4) * 4


def receptive_radius(model: TransformerNet) -> int:
    """How far (input px) a change can travel: 4 (9x9) + 1 + 2 (3x3 s2 convs) + 8 r
    (3x3 convs at quarter scale) + 2 + 2 (3x3 convs after x2 upsampling, with nearest
    rounding) + 4 (9x9 head) = 17 + 8 r, rounded up to a multiple of 4 by callers."""
    return 17 + 8 * len(model.residuals)


@dataclass(frozen=True)
class Tile:
    """Core ``[y0, y1) x [x0, x1)`` and crop ``[cy0, cy1) x [cx0, cx1)`` in image px."""

    y0: int
    y1: int
    x0: int
    x1: int
    cy0: int
    cy1: int
    cx0: int
    cx1: int


def bounds(size: int, tile: int) -> list[int]:
    """Evenly spread core boundaries 0 = b0 < b1 < ... = size, inner ones multiples of 4,
    with ceil(size / tile) cores."""
    n = max(1, -(-size // tile))
    inner = sorted({4 * round(i * size / n / 4) for i in range(1, n)} - {0, size})
    return [0, *[b for b in inner if 0 < b < size], size]


def make_tiles(height: int, width: int, *, tile: int, context: int) -> list[Tile]:
    """Cores of at most about ``tile`` px (boundaries on multiples of 4) covering the
    image, each with ``context`` px (rounded up to a multiple of 4) of surroundings."""
    tile = max(4, -(-tile // 4) * 4)
    context = -(-context // 4) * 4
    ys, xs = bounds(height, tile), bounds(width, tile)
    tiles = []
    for y0, y1 in zip(ys[:-1], ys[1:], strict=True):
        for x0, x1 in zip(xs[:-1], xs[1:], strict=True):
            tiles.append(
                Tile(y0, y1, x0, x1, max(0, y0 - context), min(height, y1 + context), max(0, x0 - context), min(width, x1 + context))
            )
    return tiles


def core(tile: Tile, level: int) -> tuple[slice, slice]:
    """The core of ``tile`` in the coordinates of its crop at resolution ``level``."""
    f = 2**level
    return (
        slice((tile.y0 - tile.cy0) // f, -(-(tile.y1 - tile.cy0) // f)),
        slice((tile.x0 - tile.cx0) // f, -(-(tile.x1 - tile.cx0) // f)),
    )


def level_sizes(height: int, width: int, levels: int = 3) -> list[tuple[int, int]]:
    """(H, W) of the whole image's activations at full, half and quarter resolution: a
    stride-2 3x3 convolution padded by 1 maps a side n to ceil(n / 2)."""
    sizes = [(height, width)]
    while len(sizes) < levels:
        h, w = sizes[-1]
        sizes.append((-(-h // 2), -(-w // 2)))
    return sizes


def ramp(length: int, lo_blend: int, hi_blend: int) -> torch.Tensor:
    """1D weights: sin^2 rising over the first ``lo_blend`` samples, cos^2 falling over
    the last ``hi_blend``, 1 in between."""
    w = torch.ones(length)
    if lo_blend:
        t = (torch.arange(lo_blend) + 0.5) / lo_blend
        w[:lo_blend] = torch.sin(t * math.pi / 2).square()
    if hi_blend:
        t = (torch.arange(hi_blend) + 0.5) / hi_blend
        w[length - hi_blend:] = torch.cos(t * math.pi / 2).square()
    return w


def blend_spans(lo: int, hi: int, size: int, half: int) -> tuple[int, int, int, int]:
    """Output span [a, b) of a core [lo, hi) grown by ``half`` on inner edges, and the
    blend lengths at each end."""
    a = lo - half if lo > 0 else lo
    b = hi + half if hi < size else hi
    return a, b, (2 * half if lo > 0 else 0), (2 * half if hi < size else 0)


def accumulate(out: torch.Tensor, y: torch.Tensor, t: Tile, height: int, width: int, half: int) -> None:
    """Add a tile's output, weighted by its blend window, into ``out``."""
    ya, yb, ylo, yhi = blend_spans(t.y0, t.y1, height, half)
    xa, xb, xlo, xhi = blend_spans(t.x0, t.x1, width, half)
    w = ramp(yb - ya, ylo, yhi)[:, None] * ramp(xb - xa, xlo, xhi)[None, :]
    part = y[0, :, ya - t.cy0:yb - t.cy0, xa - t.cx0:xb - t.cx0].float().cpu().clamp_(0, 1)
    out[:, ya:yb, xa:xb] += part * w
