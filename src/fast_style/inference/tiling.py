"""Seamless tiled inference for images too big to stylize in one pass.

Plain tiles show seams: each instance norm would use its tile's mean and variance
instead of the whole image's. Here every norm uses whole-image statistics, gathered
tile by tile (the algorithm in full: docs/stylizing.md, "Tiling"):

1. The network's steps (``TransformerNet.steps()``) are cut at its norms.
2. Core tiles of ``tile`` px start on multiples of 4 (the stride-2 grid of the whole
   image) and carry ``context`` px of surroundings, more than the receptive radius
   17 + 8 r, so a core's activations are exact (:mod:`fast_style.inference.tile_grid`).
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

import tempfile
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from fast_style.inference.tile_grid import (
    accumulate,
    core,
    level_sizes,
    make_tiles,
    receptive_radius,
)
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
                    accumulate(out, y, t, height, width, half)
                else:
                    rows, cols = core(t, steps[b].level)
                    moments.add(state["h"][..., rows, cols])
                    if steps[b].level >= 1:
                        cache.put(index, state, b + 1)
                if progress is not None:
                    progress()
            if not final:
                runner.affine[b] = moments.affine(steps[b].norm.eps, *runner.norm_affine(steps[b].norm))
    return out


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

