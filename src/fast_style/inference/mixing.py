"""Which of a multi-style model's styles a run applies: ``style=`` and ``mask=`` -> :class:`StyleChoice`.

A model of S styles (conditional instance norm, :mod:`fast_style.nn.transformer`) takes
style weights w over its styles, in the order of its metadata's ``styles`` list:

- ``style=the_scream`` (a name, or an index 0..S-1): w = e_k, that style alone;
- ``style='starry_night:0.7,udnie:0.3'``: a mix ``name[:weight],...`` (a missing weight
  is 1; each style named once, by name or index; no empty entry). Weights are finite,
  non-negative with a positive sum and are normalised to sum 1,
  ``w_s = v_s / sum(v)``; the network blends its norms' scales and shifts with them
  (``gamma = sum_s w_s gamma_s``), which is not the same as blending output images;
- ``mask=regions.png style=[the_scream,udnie]``: the mask's K most frequent colours
  (K = the number of entries), sorted from darkest to lightest (BT.601 luma
  ``0.299 R + 0.587 G + 0.114 B``, ties by RGB value), take the entries in order; every
  pixel belongs to the nearest of those K colours (RGB distance), so anti-aliased
  edges join a region. Each entry may itself be a mix. For each photo or frame the
  region map is resized to its size (nearest; a mask of another aspect ratio, more than
  5% off, is stretched with one warning per image size) and turned into per-pixel weights
  (N, S, H, W); the network's norms take their parameters per pixel, area-averaged at
  its coarser layers, so borders blend without a seam.

A one-style model takes no ``style=`` (or its own name) and no mask; a multi-style model
needs ``style=``. Every mistake is one line (:class:`StyleOptionError`).
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fast_style.errors import FastStyleError, first_line
from fast_style.io.images import image_header, open_rgb_alpha
from fast_style.io.model_files import StyleModel

LUMA = np.array([0.299, 0.587, 0.114])
MAX_REGIONS = 255  # region indices are stored as uint8
ASPECT_SLACK = 1.05  # a mask whose aspect ratio is further off an image's is stretched with a warning

log = logging.getLogger(__name__)


class StyleOptionError(FastStyleError):
    """A ``style=`` or ``mask=`` value that does not fit the model."""


def style_names(model: StyleModel) -> list[str]:
    """The model's style names in weight order: its metadata's ``styles``, the model's own
    name for a one-style model, else the indices "0" .. "S-1" (a file that does not name them)."""
    count = model.num_styles
    if len(model.metadata.styles) == count:
        return list(model.metadata.styles)
    return [model.style_name] if count == 1 else [str(i) for i in range(count)]


def _listing(names: list[str]) -> str:
    return ", ".join(names) + (f" (or their indices 0..{len(names) - 1})" if len(names) > 1 else "")


def parse_mix(spec: Any, names: list[str], *, model: StyleModel) -> torch.Tensor:
    """Style weights (S,) float32, summing to 1, of one ``style`` value: a name or index
    (w = e_k), or ``'name:weight,name:weight'`` (w_s = v_s / sum(v)).

    Every entry names a style once (by name or index: a repeat is refused, it is most
    likely a typo for another style); a weight is a finite number >= 0 and at least one
    is positive; an empty entry (``'a:0.5,'``) is refused. Weights are scaled by their
    largest before summing, so huge ones (``1e308``) cannot overflow the sum."""
    if isinstance(spec, bool) or not isinstance(spec, (str, int)):
        raise StyleOptionError(f"style={spec}: give a style name, an index or a mix such as 'a:0.7,b:0.3'")
    raw = torch.zeros(len(names), dtype=torch.float64)
    given: dict[int, str] = {}
    for position, part in enumerate(str(spec).split(","), start=1):
        name, weight = _entry(part, position, spec=spec, names=names)
        index = _index(name, names, spec=spec, model=model)
        if index in given:
            raise StyleOptionError(f"style={spec}: {names[index]} is given twice; name each style once")
        given[index] = name
        raw[index] = weight
    if raw.max() <= 0:
        raise StyleOptionError(f"style={spec}: the weights sum to 0; give at least one style a positive weight")
    raw = raw / raw.max()
    return (raw / raw.sum()).float()


def _entry(part: str, position: int, *, spec: Any, names: list[str]) -> tuple[str, float]:
    """(name, weight) of one ``name[:weight]`` entry of a mix (a missing weight is 1)."""
    if not part.strip():
        raise StyleOptionError(f"style={spec}: entry {position} is empty; write name:weight entries separated by "
                               f"commas (e.g. {names[0]}:0.7,{names[-1]}:0.3)")
    name, colon, number = part.strip().rpartition(":")
    name, number = (name.strip(), number.strip()) if colon else (number.strip(), "1")
    if not name or not number:
        raise StyleOptionError(f"style={spec}: {part.strip()!r} is not name:weight (e.g. {names[0]}:0.7)")
    try:
        weight = float(number)
    except ValueError:
        raise StyleOptionError(f"style={spec}: {part.strip()!r} is not name:weight (e.g. {names[0]}:0.7)") from None
    if not math.isfinite(weight):
        raise StyleOptionError(f"style={spec}: the weight {number!r} of {name} is not a finite number")
    if weight < 0:
        raise StyleOptionError(f"style={spec}: {name} has a negative weight; weights are non-negative and "
                               "normalised to sum 1")
    return name, weight


def _index(name: str, names: list[str], *, spec: Any, model: StyleModel) -> int:
    if name in names:
        return names.index(name)
    if name.isdigit() and int(name) < len(names) and len(names) > 1:
        return int(name)
    if len(names) == 1:
        raise StyleOptionError(f"style={spec}: {model.path.name} holds one style, {names[0]}; "
                               f"drop style= or pass style={names[0]}")
    raise StyleOptionError(f"style={spec}: no style {name!r} in {model.path.name}; its styles: {_listing(names)}")


def mix_label(weights: torch.Tensor, names: list[str], *, sep: str = "+", spaced: bool = False) -> str:
    """``starry_night0.7+udnie0.3`` (for file names) or ``starry_night 0.7 + udnie 0.3``
    (``spaced``) for weights (S,); a style alone is just its name."""
    used = [(names[s], float(w)) for s, w in enumerate(weights) if w > 0]
    if len(used) == 1:
        return used[0][0]
    parts = [f"{name} {w:.3g}" if spaced else f"{name}{w:.3g}" for name, w in used]
    return f" {sep} ".join(parts) if spaced else sep.join(parts)


@dataclass
class MaskRegions:
    """A mask read into K regions: ``labels`` (H, W) uint8, region k = the k-th darkest of
    the mask's K most frequent colours ``colours`` (K RGB triples, darkest first)."""

    path: Path
    labels: torch.Tensor
    colours: list[tuple[int, int, int]]

    def resized(self, height: int, width: int) -> torch.Tensor:
        """The labels at (height, width), nearest neighbour (pixel centres), as int64."""
        rows = _nearest(self.labels.shape[0], height)
        cols = _nearest(self.labels.shape[1], width)
        return self.labels.index_select(0, rows).index_select(1, cols).long()


def _nearest(size: int, new: int) -> torch.Tensor:
    """Source index of each of ``new`` samples over ``size``: floor((i + 1/2) size / new)."""
    return ((torch.arange(new, dtype=torch.float64) + 0.5) * size / new).floor().long().clamp_(max=size - 1)


def read_mask(path: str | os.PathLike, regions: int, *, max_pixels: int) -> MaskRegions:
    """The mask at ``path`` cut into its ``regions`` most frequent colours (see the module
    docstring); one line when it cannot be read or has fewer colours."""
    try:
        (width, height), _ = image_header(path)
    except (FastStyleError, OSError) as exc:
        raise StyleOptionError(f"mask={path}: cannot be read as an image ({first_line(exc)})") from exc
    if width * height > max_pixels:
        raise StyleOptionError(f"mask={path}: is {width}x{height} px, above max_pixels={max_pixels}; use a smaller "
                               "mask (it is resized to each photo anyway)")
    try:
        rgb, _ = open_rgb_alpha(path, max_pixels=max_pixels)
    except (FastStyleError, OSError) as exc:
        raise StyleOptionError(f"mask={path}: cannot be read as an image ({first_line(exc)})") from exc
    pixels = np.asarray(rgb, dtype=np.uint8).reshape(-1, 3).astype(np.int64)
    packed = (pixels[:, 0] << 16) | (pixels[:, 1] << 8) | pixels[:, 2]
    values, inverse, counts = np.unique(packed, return_inverse=True, return_counts=True)
    if len(values) < regions:
        raise StyleOptionError(f"mask={path}: has {len(values)} colour(s), fewer than the {regions} entries of style=; "
                               "paint one colour per entry")
    top = values[np.argsort(-counts, kind="stable")[:regions]]
    top = top[np.lexsort((top, _unpack(top) @ LUMA))]  # darkest first, ties by RGB value
    nearest = _nearest_colour(_unpack(values), _unpack(top))
    labels = torch.from_numpy(nearest[inverse].astype(np.uint8).reshape(rgb.height, rgb.width))
    return MaskRegions(Path(path), labels, [tuple(int(c) for c in rgb_) for rgb_ in _unpack(top)])


def _unpack(packed: np.ndarray) -> np.ndarray:
    return np.stack([(packed >> 16) & 255, (packed >> 8) & 255, packed & 255], axis=-1)


def _nearest_colour(colours: np.ndarray, palette: np.ndarray, chunk: int = 1 << 18) -> np.ndarray:
    """Index of the nearest ``palette`` row (squared RGB distance) for each of ``colours`` (M, 3)."""
    out = np.empty(len(colours), dtype=np.int64)
    for start in range(0, len(colours), chunk):
        part = colours[start:start + chunk, None, :] - palette[None, :, :]
        out[start:start + chunk] = np.square(part).sum(-1).argmin(1)
    return out


@dataclass
class StyleChoice:
    """What a run applies of its model's styles (see the module docstring).

    ``weights``: (S,) one mix for every pixel, or None (a one-style model, or a mask);
    ``regions`` and ``entries`` (K, S): a mask and the weights of each of its regions;
    ``label``: the choice in output file names; ``line``: the one line that states a
    mix or a mask (None for one style alone).
    """

    num_styles: int = 1
    weights: torch.Tensor | None = None
    regions: MaskRegions | None = None
    entries: torch.Tensor | None = None
    label: str = ""
    line: str | None = None
    _map: tuple[tuple[int, int], torch.Tensor] | None = field(default=None, init=False, repr=False)
    _warned: set[tuple[int, int]] = field(default_factory=set, init=False, repr=False)

    @property
    def per_pixel(self) -> bool:
        return self.regions is not None

    def for_batch(self, batch: int, height: int, width: int) -> torch.Tensor | None:
        """The network's ``style`` argument for a batch of ``batch`` images of height x width:
        None (one style), the weights (S,), or a per-pixel map (batch, S, height, width)."""
        if self.regions is None:
            return self.weights
        if self._map is None or self._map[0] != (height, width):
            self._warn_if_stretched(height, width)
            labels = self.regions.resized(height, width)
            self._map = ((height, width), self.entries[labels].permute(2, 0, 1).unsqueeze(0).contiguous())
        return self._map[1].expand(batch, -1, -1, -1)


    def _warn_if_stretched(self, height: int, width: int) -> None:
        """One warning per image shape whose aspect ratio is more than 5% off the mask's
        (the mask is stretched to fit: likely the wrong mask for these photos)."""
        mask_h, mask_w = self.regions.labels.shape
        ratio = (width / height) / (mask_w / mask_h)
        if max(ratio, 1 / ratio) > ASPECT_SLACK and (height, width) not in self._warned:
            self._warned.add((height, width))
            log.warning("mask %s is %dx%d px, the image %dx%d: the mask is stretched to fit (another aspect ratio)",
                        self.regions.path, mask_w, mask_h, width, height)


def choose_styles(model: StyleModel, options: Any) -> StyleChoice:
    """The :class:`StyleChoice` of ``options.styles`` and ``options.mask`` for ``model``."""
    names, spec, mask = style_names(model), options.styles, options.mask
    count = len(names)
    if mask not in (None, ""):
        return _masked(model, names, spec, str(mask), max_pixels=int(options.max_pixels))
    if isinstance(spec, (list, tuple)) and count == 1:
        raise StyleOptionError(f"style={list(spec)}: {model.path.name} holds one style, {names[0]}; "
                               f"drop style= or pass style={names[0]}")
    if isinstance(spec, (list, tuple)):
        entries = ", ".join(map(str, spec))
        raise StyleOptionError(f"style=[{entries}] is a list, which gives one style per colour of mask=...; "
                               f"to mix styles everywhere write style='{names[0]}:0.5,{names[-1]}:0.5'")
    if spec in (None, ""):
        if count > 1:
            raise StyleOptionError(
                f"{model.path.name} holds {count} styles ({', '.join(names)}): pick one with style={names[0]}, "
                f"or mix them with style='{names[0]}:0.7,{names[1]}:0.3'")
        return StyleChoice(label=model.style_name)
    weights = parse_mix(spec, names, model=model)
    if count == 1:
        return StyleChoice(label=model.style_name)
    line = None
    if int((weights > 0).sum()) > 1:
        line = (f"style: {mix_label(weights, names, spaced=True)} (weights normalised to sum 1, "
                "mixed in the network's instance norms)")
    return StyleChoice(count, weights, label=mix_label(weights, names), line=line)


def _masked(model: StyleModel, names: list[str], spec: Any, mask: str, *, max_pixels: int) -> StyleChoice:
    if len(names) == 1:
        raise StyleOptionError(f"mask={mask}: {model.path.name} holds one style; a mask chooses among the styles "
                               "of a multi-style model")
    if not isinstance(spec, (list, tuple)) or not spec:
        raise StyleOptionError(f"mask={mask} needs style=[...] with one entry per mask colour, darkest colour first "
                               f"(e.g. style=[{names[0]},{names[1]}]); its styles: {_listing(names)}")
    if len(spec) > MAX_REGIONS:
        raise StyleOptionError(f"style= has {len(spec)} entries; a mask holds at most {MAX_REGIONS} regions")
    entries = torch.stack([parse_mix(entry, names, model=model) for entry in spec])
    regions = read_mask(mask, len(spec), max_pixels=max_pixels)
    labels = [mix_label(w, names) for w in entries]
    pairs = ", ".join(f"#{r:02x}{g:02x}{b:02x} -> {mix_label(w, names, spaced=True)}"
                      for (r, g, b), w in zip(regions.colours, entries, strict=True))
    line = (f"mask {mask}: {pairs} ({len(spec)} most frequent colours, darkest first; each pixel takes the "
            "nearest of them)")
    return StyleChoice(len(names), None, regions, entries, label="-".join(labels), line=line)
