"""Seamless tiled inference for images too big to stylize in one pass.

Plain tiles show seams: each instance norm would use its tile's mean and variance
instead of the whole image's. Here every norm uses whole-image statistics, gathered
tile by tile (the algorithm in full: docs/stylizing.md, "Tiling"):

1. The network's steps (``TransformerNet.steps()``) are cut at its norms.
2. Core tiles of ``tile`` px start on multiples of 4 (the stride-2 grid of the whole
   image) and carry ``context`` px of surroundings, more than the receptive radius
   17 + 8 r (:func:`receptive_radius`), so a core's activations are exact.
3. One pass over the tiles per instance norm k: run each tile to the pre-norm
   activation z_k and accumulate per-channel count, mean and squared deviations over
   the core (float32 per tile, merged in float64); then
   ``norm_k(z) = (z - mean) * gamma / sqrt(var + eps) + beta`` (biased variance).
   A multi-style network's conditional norms take gamma and beta from the style
   weights: one mix for the image (folded into the per-channel affine), or a per-pixel
   map (N, S, h, w), which is resized once per resolution level to the whole image's
   activation size (as the untiled network does) and cropped to each tile's region.
   Half- and quarter-resolution tile states are cached on disk between passes.
4. The last pass blends each tile's output over ``blend`` px with the ramp
   ``sin^2(pi/2 (t + 1/2) / blend)``; neighbouring ramps sum to one.

Peak memory: one tile's activations (about ``(tile + 2 context)^2 * 4 w`` floats for
width w) plus the input and output images.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from fast_style.io.files import owned_prefix, sweep_stale
from fast_style.nn.transformer import (
    ConditionalInstanceNorm2d,
    Step,
    TransformerNet,
    mix_rows,
    resize_style_map,
    step_conv,
    step_post,
)

CACHE_NAME = "fast-style-tiles"  # the tile cache folder: <temp>/fast-style-tiles.fast-style-tmp-<host>-<pid>-*
State = dict  # "h": current activation, "skip": residual input, "sizes": encoder sizes (see step_conv)


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


def _bounds(size: int, tile: int) -> list[int]:
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
    ys, xs = _bounds(height, tile), _bounds(width, tile)
    tiles = []
    for y0, y1 in zip(ys[:-1], ys[1:], strict=True):
        for x0, x1 in zip(xs[:-1], xs[1:], strict=True):
            tiles.append(
                Tile(y0, y1, x0, x1, max(0, y0 - context), min(height, y1 + context), max(0, x0 - context), min(width, x1 + context))
            )
    return tiles


def _core(tile: Tile, level: int) -> tuple[slice, slice]:
    """The core of ``tile`` in the coordinates of its crop at resolution ``level``."""
    f = 2**level
    return (
        slice((tile.y0 - tile.cy0) // f, -(-(tile.y1 - tile.cy0) // f)),
        slice((tile.x0 - tile.cx0) // f, -(-(tile.x1 - tile.cx0) // f)),
    )


class _Moments:
    """Per-channel n, mean and sum of squared deviations, merged tile by tile in float64
    (Chan et al.'s parallel update) -> mean and biased variance. Each tile's own mean and
    variance come from ``torch.var_mean`` in the activation's precision (float32), which
    reads the tile once and allocates nothing of its size."""

    def __init__(self) -> None:
        self.n = 0
        self.mean: torch.Tensor | float = 0.0
        self.m2: torch.Tensor | float = 0.0

    def add(self, z: torch.Tensor) -> None:
        n = z.shape[0] * z.shape[-1] * z.shape[-2]
        if n == 0:
            return
        var, mean = torch.var_mean(z.float(), dim=(0, 2, 3), correction=0)
        # float64 on the activation's device: no host sync per tile (MPS has no float64)
        keep = torch.device("cpu") if z.device.type == "mps" else z.device
        var, mean = var.to(keep, torch.float64), mean.to(keep, torch.float64)
        total = self.n + n
        delta = mean - self.mean
        self.mean = self.mean + delta * (n / total)
        self.m2 = self.m2 + var * n + delta.square() * (self.n * n / total)
        self.n = total

    def affine(self, eps: float, gamma: torch.Tensor | None = None, beta: torch.Tensor | None = None
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """(a, c) with ``a z + c == gamma (z - mean) / sqrt(var + eps) + beta`` per channel, for
        the accumulated statistics (gamma, beta: (C,) or None for 1 and 0)."""
        mean = torch.as_tensor(self.mean, dtype=torch.float64)
        var = (torch.as_tensor(self.m2, dtype=torch.float64) / self.n).clamp_min(0)
        a = torch.rsqrt(var + eps)
        if gamma is not None:
            a = a * gamma.detach().to(a.device, torch.float64)
        c = -mean * a
        if beta is not None:
            c = c + beta.detach().to(c.device, torch.float64)
        return a.float(), c.float()


def is_instance_norm(norm: nn.Module | None) -> bool:
    """A norm with per-image statistics (plain or conditional instance norm)."""
    return isinstance(norm, (nn.InstanceNorm2d, ConditionalInstanceNorm2d))


def level_sizes(height: int, width: int, levels: int = 3) -> list[tuple[int, int]]:
    """(H, W) of the whole image's activations at full, half and quarter resolution: a
    stride-2 3x3 convolution padded by 1 maps a side n to ceil(n / 2)."""
    sizes = [(height, width)]
    while len(sizes) < levels:
        h, w = sizes[-1]
        sizes.append((-(-h // 2), -(-w // 2)))
    return sizes


class _Runner:
    """Runs steps on one tile's state, applying norms with known global statistics.

    ``style``: the network's style weights, None, (1, S) or a per-pixel map (1, S, h, w);
    a map is kept per level at the whole image's activation sizes (:func:`level_sizes`)."""

    def __init__(self, steps: list[Step], style: torch.Tensor | None = None, size: tuple[int, int] = (0, 0)) -> None:
        self.steps = steps
        self.style = style
        self.affine: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        per_pixel = style is not None and style.dim() == 4
        self.maps = {level: resize_style_map(style, shape) for level, shape in enumerate(level_sizes(*size))
                     } if per_pixel else {}

    def norm_affine(self, norm: nn.Module) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """(gamma, beta) per channel that fold into the norm's (a, c): the instance norm's own,
        a conditional one's for one mix, (None, None) for a per-pixel map (applied per tile)."""
        if not isinstance(norm, ConditionalInstanceNorm2d):
            return norm.weight, norm.bias
        if self.maps:
            return None, None
        style = self.style.to(norm.weight.device)
        return mix_rows(norm.weight, style, (1, 1)).flatten(), mix_rows(norm.bias, style, (1, 1)).flatten()

    def _normalise(self, k: int, h: torch.Tensor, origin: tuple[int, int]) -> torch.Tensor:
        step = self.steps[k]
        if k not in self.affine:  # batch norm: running statistics, as the untiled network
            return step.norm(h)
        a, c = (t.to(h.device, h.dtype).view(1, -1, 1, 1) for t in self.affine[k])
        y = h * a + c
        if self.maps and isinstance(step.norm, ConditionalInstanceNorm2d):
            top, left = origin[0] >> step.level, origin[1] >> step.level  # origins are multiples of 4
            crop = self.maps[step.level][..., top:top + h.shape[-2], left:left + h.shape[-1]]
            gamma, beta = step.norm.affine(crop.to(h.device), tuple(h.shape[-2:]))
            y = y * gamma.to(y.dtype) + beta.to(y.dtype)
        return y

    def advance(self, state: State, *, start: int, stop: int, origin: tuple[int, int] = (0, 0)) -> State:
        """Run steps ``start..stop`` (inclusive) on the tile whose crop starts at image px
        ``origin`` (row, column); ``start - 1``'s norm is still pending."""
        for k in range(start, stop + 1):
            if k > 0:
                prev = self.steps[k - 1]
                skip = state.pop("skip") if prev.post == "add" else None
                state["h"] = step_post(prev, self._normalise(k - 1, state["h"], origin), skip)
            step = self.steps[k]
            if step.opens_residual:
                state["skip"] = state["h"]
            state["h"] = step_conv(step, state["h"], state["sizes"])
        return state


def _ramp(length: int, lo_blend: int, hi_blend: int) -> torch.Tensor:
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


def _blend_spans(lo: int, hi: int, size: int, half: int) -> tuple[int, int, int, int]:
    """Output span [a, b) of a core [lo, hi) grown by ``half`` on inner edges, and the
    blend lengths at each end."""
    a = lo - half if lo > 0 else lo
    b = hi + half if hi < size else hi
    return a, b, (2 * half if lo > 0 else 0), (2 * half if hi < size else 0)


def tiled_forward(
    model: TransformerNet,
    image: torch.Tensor,
    *,
    tile: int,
    blend: int,
    context: int | None = None,
    prepare: Callable[[torch.Tensor], torch.Tensor] = lambda x: x,
    cache_dir: str | Path | None = None,
    progress: Callable[[], None] | None = None,
    style: torch.Tensor | None = None,
    strength: float = 1.0,
) -> torch.Tensor:
    """Stylize one (3, H, W) or (1, 3, H, W) float image in tiles; returns (3, H, W) float32 on CPU, clamped.

    ``tile``: core tile size in px (rounded up to a multiple of 4); ``blend``: width of
    the cross-fade between neighbours (even, <= tile); ``context``: px of surroundings
    per tile (default: receptive radius + blend / 2, rounded up to a multiple of 4);
    ``prepare`` moves a crop to the model's device, dtype and memory format.
    ``style``: the style weights of a multi-style network, (S,), (1, S) or a per-pixel map
    (1, S, h, w); ``strength``: :meth:`TransformerNet.scale_head`'s s (input_skip networks).
    The output equals the untiled ``model(image, style)`` up to float rounding.
    """
    x = image[0] if image.dim() == 4 else image
    _, height, width = x.shape
    tiles = make_tiles(height, width, tile=tile, context=0)
    smallest = min(min(t.y1 - t.y0 for t in tiles), min(t.x1 - t.x0 for t in tiles))
    half = min(blend, smallest) // 2
    if context is None:
        context = receptive_radius(model) + half
    tiles = make_tiles(height, width, tile=tile, context=context)
    steps = model.steps()
    runner = _Runner(steps, model.style_weights(style, 1), (height, width))
    barriers = [k for k, s in enumerate(steps) if is_instance_norm(s.norm)]
    out = torch.zeros(3, height, width)
    cache_parent = cache_dir or tempfile.gettempdir()
    sweep_stale(cache_parent, f"{CACHE_NAME}.*")  # caches of runs that were killed (SIGKILL)
    with tempfile.TemporaryDirectory(prefix=owned_prefix(CACHE_NAME), dir=cache_parent) as tmp:
        cache = _DiskCache(Path(tmp))
        for b in [*barriers, len(steps) - 1]:
            final = b == len(steps) - 1
            moments = _Moments()
            for index, t in enumerate(tiles):
                resume = cache.get(index)
                if resume is None:
                    state, start = {"h": prepare(x[None, :, t.cy0:t.cy1, t.cx0:t.cx1]), "sizes": []}, 0
                else:
                    state, start = resume
                state = runner.advance(state, start=start, stop=b, origin=(t.cy0, t.cx0))
                if final:
                    y = state["h"]
                    if model.input_skip is not None:  # the only step that needs the input again
                        photo = prepare(x[None, :, t.cy0:t.cy1, t.cx0:t.cx1])
                        y = model.scale_head(model.add_input(y, photo), photo, strength)
                    _accumulate(out, y, t, height, width, half)
                else:
                    rows, cols = _core(t, steps[b].level)
                    moments.add(state["h"][..., rows, cols])
                    if steps[b].level >= 1:
                        cache.put(index, state, b + 1)
                if progress is not None:
                    progress()
            if not final:
                runner.affine[b] = moments.affine(steps[b].norm.eps, *runner.norm_affine(steps[b].norm))
    return out


def _accumulate(out: torch.Tensor, y: torch.Tensor, t: Tile, height: int, width: int, half: int) -> None:
    """Add a tile's output, weighted by its blend window, into ``out``."""
    ya, yb, ylo, yhi = _blend_spans(t.y0, t.y1, height, half)
    xa, xb, xlo, xhi = _blend_spans(t.x0, t.x1, width, half)
    w = _ramp(yb - ya, ylo, yhi)[:, None] * _ramp(xb - xa, xlo, xhi)[None, :]
    part = y[0, :, ya - t.cy0:yb - t.cy0, xa - t.cx0:xb - t.cx0].float().cpu().clamp_(0, 1)
    out[:, ya:yb, xa:xb] += part * w


class _DiskCache:
    """Per-tile states saved as tensors in a folder (``torch.save``/``weights_only`` load)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.device: dict[int, torch.device] = {}

    def put(self, index: int, state: State, resume: int) -> None:
        tensors = {k: v.cpu() for k, v in state.items() if isinstance(v, torch.Tensor)}
        sizes = torch.tensor(state["sizes"], dtype=torch.long).reshape(-1, 2)
        self.device[index] = state["h"].device
        torch.save({"tensors": tensors, "sizes": sizes, "resume": torch.tensor(resume)}, self.root / f"{index}.pt")

    def get(self, index: int) -> tuple[State, int] | None:
        path = self.root / f"{index}.pt"
        if not path.exists():
            return None
        saved = torch.load(path, weights_only=True)
        device = self.device[index]
        state: State = {k: v.to(device) for k, v in saved["tensors"].items()}
        state["sizes"] = [tuple(int(i) for i in size) for size in saved["sizes"]]
        return state, int(saved["resume"])

