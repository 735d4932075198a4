"""Every stylizing option and its default, in one place.

``python stylize.py key=value`` (through the Hydra schema in :mod:`fast_style.config`),
``fast_style.stylize(..., key=value)`` and the executors all read a
:class:`StylizeOptions`; nothing else holds a default of these options.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from fast_style.errors import FastStyleError
from fast_style.io.kinds import ONNX

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
RUNTIMES = ("auto", "torch", ONNX.name)  # a runner of fast_style.inference.runners each (torch: eager or compiled)
STRENGTH_SPACES = ("auto", "network", "pixel")
# 8192 x 8192: about 3 GB of float32 images (input, output) plus one tile's activations
MAX_PIXELS = 8192 * 8192


class OptionError(FastStyleError, ValueError):
    """An option value that cannot be used (to API callers also a ``ValueError``)."""


class OptionTypeError(OptionError, TypeError):
    """An option value of the wrong type, e.g. ``strength=None`` (also a ``TypeError``)."""


def _shown(value: Any) -> str:
    return repr(value) if isinstance(value, str) else str(value)


def number(name: str, value: Any, *, whole: bool = False) -> int | float:
    """``value`` as a float (``whole``: an int), from a number or its text (``'0.5'``);
    :class:`OptionTypeError` for anything else (None, a list, a bool), :class:`OptionError`
    for text that is no number and, when ``whole``, for a fraction, NaN or infinity."""
    what = "a whole number" if whole else "a number"
    if isinstance(value, bool) or not isinstance(value, str | int | float) and not hasattr(value, "__float__"):
        raise OptionTypeError(f"{name}={_shown(value)}: must be {what}")
    if whole and isinstance(value, int):
        return int(value)
    try:
        real = float(value)
    except (TypeError, ValueError) as exc:
        raise OptionError(f"{name}={_shown(value)}: must be {what}") from exc
    if whole:
        if not math.isfinite(real) or real != int(real):
            raise OptionError(f"{name}={_shown(value)}: must be {what}")
        return int(real)
    return real


def flag(name: str, value: Any) -> bool:
    """``value`` as a bool: True/False, 1/0 or the text true/false (any case); else
    :class:`OptionTypeError` (``overwrite='no'`` must not read as true)."""
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    if isinstance(value, bool) or type(value).__name__ == "bool_" or (isinstance(value, int) and value in (0, 1)):
        return bool(value)
    raise OptionTypeError(f"{name}={_shown(value)}: must be true or false")


def with_aliases(values: dict[str, Any]) -> dict[str, Any]:
    """``values`` with ``style`` renamed ``styles`` (see :class:`StylizeOptions`)."""
    if "style" not in values:
        return values
    if "styles" in values:
        raise OptionError("style= and styles= both set; they are one option, give it once")
    return {("styles" if key == "style" else key): value for key, value in values.items()}


@dataclass
class StylizeOptions:
    """Options of stylizing (``stylize.py`` keys), with their defaults.

    Outputs: ``output`` (file for one input, folder for several; None: beside each
    input as ``<name>_<style>.<ext>``), ``format`` (png, jpg, webp, tif; None: keep the
    extension), ``style_name`` (used in default output names; None: the model's),
    ``overwrite`` (replace existing outputs; an input is never written over),
    ``quality`` (JPEG / WebP), ``png_compression`` (PNG zlib level 0-9; the default
    1 writes the same pixels faster than Pillow's 6, in slightly larger files: figures in
    docs/results.md, "Stylizing end to end").

    Images: ``size`` (longer side in px) or ``scale`` (a factor), not both;
    ``preserve_color`` (luminance-only transfer); ``strength`` (1: stylized, 0: the
    photo) in ``strength_space``: ``pixel`` blends the images, ``strength * stylized +
    (1 - strength) * photo``; ``network`` scales the head of a model with ``input_skip``
    (y = head + g * x becomes strength * head + g * x); ``auto`` (default): network where
    the model has input_skip and runs in PyTorch (or the in-memory ONNX path), else pixel.

    Styles of a multi-style model (:mod:`fast_style.inference.mixing`): ``styles`` (a
    name or index; ``'a:0.7,b:0.3'`` mixes in the network, weights normalised to sum 1;
    a list with ``mask``: one entry per mask colour, darkest first), ``mask`` (an image
    whose colours mark the regions). ``style`` is accepted for ``styles`` (by
    :meth:`of` and ``stylize.py``: Hydra reads a bare ``style=`` as a choice in train.py's
    config group ``configs/style/``, so the field cannot be called that).

    Speed: ``device`` (auto: cuda, mps, cpu), ``precision`` (auto: the fastest of fp16,
    bf16, fp32 on this device whose output is within 40 dB PSNR / 1/255 mean of fp32 on
    the first photo; or fp32, bf16, fp16), ``runtime`` (auto: onnxruntime on a CPU in
    fp32 when installed and without torch-only options, else PyTorch; torch; onnx),
    ``channels_last`` (auto: with compile or on CUDA), ``compile``
    (torch.compile, which compiles once per image size: off by default, see docs/results.md,
    "Stylizing speed"), ``batch_size`` (images of
    the same size per forward pass), ``devices``/``accelerator`` (N processes through
    Lightning's predict loop). Huge images: above ``pixel_budget`` pixels an image is
    stylized in ``tile_size`` tiles cross-faded over ``tile_blend`` px (0: never tile).
    ``progress``: a progress bar for folder and glob runs. ``startup_cache``: keep
    ``precision=auto``'s choice and the in-memory ONNX export per model in the user cache
    folder and reuse them (:mod:`fast_style.inference.runners.startup_cache`); false: redo both.

    Video (clips and animated GIFs, frame by frame, audio copied): ``codec`` (auto:
    H.264 for mp4/mov/mkv/avi, VP9 for webm, or an FFmpeg encoder name), ``crf``
    (constant quality, lower is better: 18 is visually lossless for H.264).

    Limits (checked before any work on an image): ``max_pixels``: the largest image,
    as decoded and as stylized (after ``size``/``scale``), in pixels; above it a file is
    refused with one line. ``allow_torchscript``: open TorchScript models, which are
    programs (their code runs when loaded and called); refused unless true.
    """

    output: str | None = None
    format: str | None = None
    style_name: str | None = None
    size: int | None = None
    scale: float | None = None
    device: str = "auto"
    precision: str = "auto"
    runtime: str = "auto"
    channels_last: Any = "auto"
    compile: bool = False
    batch_size: int = 1
    overwrite: bool = False
    quality: int = 95
    png_compression: int = 1  # fast_style.io.images.PNG_COMPRESSION (not imported: that module loads torch)
    preserve_color: bool = False
    strength: float = 1.0
    strength_space: str = "auto"
    styles: Any = None
    mask: str | None = None
    tile_size: int = 512
    tile_blend: int = 16
    pixel_budget: int = 4096 * 4096 // 4  # ~4.2 MP untiled: ~1.2 GB of fp32 activations for width 32
    progress: bool = True
    devices: int = 1
    accelerator: str = "auto"
    max_pixels: int = MAX_PIXELS
    allow_torchscript: bool = False
    startup_cache: bool = True
    crf: int = 18
    codec: str = "auto"

    @property
    def pixel_strength(self) -> float:
        """The strength of the pixel blend in ``finish``: ``strength``, or 1 when the runner
        applies it in the network (``strength_space=network``)."""
        return 1.0 if str(self.strength_space) == "network" else float(self.strength)

    @classmethod
    def of(cls, values: dict[str, Any]) -> StylizeOptions:
        """Options from keyword values (``style`` for ``styles``); an unknown key is a one-line
        error naming the known ones."""
        values = with_aliases(values)
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(values) - set(names))
        if unknown:
            raise OptionError(f"unknown stylize option(s) {unknown}; known: {', '.join(names)}")
        return cls(**values)

    def _convert(self) -> None:
        """Every option declared ``bool``, ``int`` or ``float`` (or ``... | None``) converted
        to its type in place (:func:`flag`, :func:`number`): the field types are the rule."""
        for spec in dataclasses.fields(self):
            declared = spec.type if isinstance(spec.type, str) else getattr(spec.type, "__name__", str(spec.type))
            kind, value = declared.removesuffix(" | None"), getattr(self, spec.name)
            if value is None and declared.endswith(" | None"):
                continue
            if kind == "bool":
                setattr(self, spec.name, flag(spec.name, value))
            elif kind in ("int", "float"):
                setattr(self, spec.name, number(spec.name, value, whole=kind == "int"))
        if self.scale is not None and not math.isfinite(self.scale):
            raise OptionError(f"scale={self.scale}: must be a finite number (a factor such as 0.5)")

    def check(self) -> StylizeOptions:
        """Convert the options to their types (a number given as text is read as one) and
        check their ranges; returns self. A value of the wrong type is an
        :class:`OptionTypeError` (a ``TypeError``), one out of range an :class:`OptionError`
        (a ``ValueError``), both one line naming the option."""
        self._convert()
        if self.size is not None and self.scale is not None:
            raise OptionError("size= and scale= both set; choose one")
        if self.size is not None and int(self.size) < 1:
            raise OptionError(f"size={self.size}: must be a positive number of px")
        if self.scale is not None and float(self.scale) <= 0:
            raise OptionError(f"scale={self.scale}: must be positive")
        if not 0.0 <= float(self.strength) <= 1.0:
            raise OptionError(f"strength={self.strength}: must be in [0, 1]")
        if not 1 <= int(self.quality) <= 100:
            raise OptionError(f"quality={self.quality}: must be in 1..100")
        if not 0 <= int(self.png_compression) <= 9:
            raise OptionError(f"png_compression={self.png_compression}: must be in 0..9 (zlib level; default {StylizeOptions.png_compression})")
        if int(self.batch_size) < 1:
            raise OptionError(f"batch_size={self.batch_size}: must be at least 1")
        if int(self.tile_blend) < 0:
            raise OptionError(f"tile_blend={self.tile_blend}: must be 0 (no cross-fade) or a positive number of px")
        if int(self.pixel_budget) < 0:
            raise OptionError(f"pixel_budget={self.pixel_budget}: must be 0 (never tile) or a positive number of pixels")
        if int(self.tile_size) < 1:
            raise OptionError(f"tile_size={self.tile_size}: must be a positive number of px (default {StylizeOptions.tile_size})")
        if int(self.max_pixels) < 1:
            raise OptionError(f"max_pixels={self.max_pixels}: must be a positive number of pixels (default {MAX_PIXELS})")
        if not 0 <= int(self.crf) <= 63:
            raise OptionError(f"crf={self.crf}: must be in 0..63 (lower is better; H.264 default here 18)")
        if int(self.devices) < 1:
            raise OptionError(f"devices={self.devices}: must be at least 1")
        if str(self.precision) not in PRECISIONS:
            raise OptionError(f"precision={self.precision}: choose {', '.join(PRECISIONS)}")
        if str(self.strength_space) not in STRENGTH_SPACES:
            raise OptionError(f"strength_space={self.strength_space}: choose {', '.join(STRENGTH_SPACES)}")
        if str(self.runtime) not in RUNTIMES:
            raise OptionError(f"runtime={self.runtime}: choose {', '.join(RUNTIMES)}")
        if str(self.channels_last).lower() not in ("auto", "true", "false"):
            raise OptionError(f"channels_last={self.channels_last}: use auto, true or false")
        return self
