"""What a run's runner must be, settled and checked once: :func:`settle` -> :class:`Setting`.

Every option a runner depends on is validated here, in one place and one order, before
any runner is built, so the runner files only build: ``runtime``; the style choice (a
multi-style model's weights, or a mask's per-pixel map); ``strength_space``
(:func:`resolve_strength_space`: ``network`` scales an ``input_skip`` model's head inside
the runner, ``pixel`` leaves the blend to :func:`fast_style.inference.finishing.finish`);
for an exported file what it cannot apply
(:func:`~fast_style.inference.runners.deployed.check_deployed`); for a PyTorch network the
tile size against its receptive field, the device, what ``runtime=onnx`` needs (the CPU,
fp32, no mask, no PyTorch-only option), and the precisions to try (``precision=auto``: the
device's :func:`~fast_style.inference.precision.auto_candidates`, fastest first).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from fast_style.devices import resolve_device
from fast_style.inference.mixing import StyleChoice, choose_styles
from fast_style.inference.options import RUNTIMES, StylizeOptions
from fast_style.inference.precision import auto_candidates
from fast_style.inference.runners.base import InferenceOptionError
from fast_style.inference.runners.deployed import check_deployed
from fast_style.inference.runners.onnxrt import onnx_available
from fast_style.inference.runners.pytorch import Stylizer, resolve_precision
from fast_style.inference.runners.startup_cache import StartupCache
from fast_style.inference.tile_grid import min_tile_size
from fast_style.io.kinds import ONNX
from fast_style.io.model_files import StyleModel

# fp32 activations of the paper's network (width 32) at its widest layers: about 300
# bytes per pixel (1.2 GB per 4 MP); proportional to the width
ACTIVATION_BYTES_PER_PIXEL = 300


@dataclass(frozen=True)
class Setting:
    """A run's checked runner settings. For an exported model only ``pixel_budget`` (as
    given) is set beyond the first five; ``candidates``: the precisions to try, fastest
    first (one: the precision to use); ``onnx_fits``: ``runtime=auto`` may use onnxruntime."""

    model: StyleModel
    options: StylizeOptions
    styles: StyleChoice
    runtime: str
    strength: float
    pixel_budget: int = 0
    device: torch.device | None = None
    channels_last: bool = False
    candidates: tuple[torch.dtype, ...] = ()
    onnx_fits: bool = False

    def startup_cache(self) -> StartupCache | None:
        """The start-up cache of this run's network (None with ``startup_cache=false``, for
        an exported file, and for a mask's per-pixel styles, which differ per image)."""
        if not self.options.startup_cache or self.model.network is None or self.styles.per_pixel:
            return None
        weights = () if self.styles.weights is None else tuple(float(w) for w in self.styles.weights)
        return StartupCache(self.model.network, self.device, self.candidates, weights, self.strength)

    def stylizer(self, dtype: torch.dtype) -> Stylizer:
        """The PyTorch runner of this setting in ``dtype``."""
        options = self.options
        return Stylizer(
            self.model.network, device=self.device, dtype=dtype, channels_last=self.channels_last,
            compile=bool(options.compile), tile_size=int(options.tile_size), tile_blend=int(options.tile_blend),
            pixel_budget=self.pixel_budget, styles=self.styles, strength=self.strength,
        )


def settle(model: StyleModel, options: StylizeOptions, styles: StyleChoice | None = None) -> Setting:
    """The checked :class:`Setting` of ``model`` with ``options`` (see the module docstring);
    ``styles``: the run's style choice (None: read from ``options.styles``/``mask``)."""
    runtime = str(options.runtime)
    if runtime not in RUNTIMES:
        raise InferenceOptionError(f"runtime={runtime}: choose {', '.join(RUNTIMES)}")
    styles = styles if styles is not None else choose_styles(model, options)
    strength = network_strength(model, options)
    if model.deployed:
        check_deployed(options, styles, label=model.label)
        return Setting(model, options, styles, runtime, strength, pixel_budget=int(options.pixel_budget or 0))
    smallest = min_tile_size(model.network)
    if int(options.pixel_budget or 0) and int(options.tile_size) < smallest:
        raise InferenceOptionError(f"tile_size={options.tile_size}: below this model's receptive field, {smallest} px; use tile_size={max(smallest, StylizeOptions.tile_size)}")
    device = resolve_device(str(options.device))
    layout = str(options.channels_last).lower()
    channels_last = bool(options.compile) or device.type == "cuda" if layout == "auto" else layout == "true"
    pixel_budget = device_pixel_budget(options, device, model.network)
    precision = str(options.precision)
    if runtime == ONNX.name:
        check_onnx(options, styles, device=device, channels_last=channels_last)
        candidates = (torch.float32,)
    elif precision in ("", "auto"):
        candidates = tuple(auto_candidates(device))
    else:
        candidates = (resolve_precision(precision, device),)
    torch_only = bool(options.compile) or layout != "auto" or styles.per_pixel
    onnx_fits = runtime == "auto" and device.type == "cpu" and not torch_only and onnx_available()
    return Setting(model, options, styles, runtime, strength, pixel_budget, device, channels_last, candidates, onnx_fits)


def check_onnx(options: StylizeOptions, styles: StyleChoice, *, device: torch.device, channels_last: bool) -> None:
    """``runtime=onnx``: fp32 on the CPU, with no mask and no PyTorch-only option."""
    if styles.per_pixel:
        raise InferenceOptionError("runtime=onnx: a mask's per-pixel styles run in PyTorch only; use runtime=auto or torch")
    if device.type != "cpu" or str(options.precision) not in ("", "auto", "fp32"):
        raise InferenceOptionError("runtime=onnx runs in fp32 on the CPU; use device=cpu precision=auto, or runtime=torch")
    if options.compile or channels_last:
        raise InferenceOptionError("runtime=onnx: compile and channels_last are PyTorch options; drop them, or use runtime=torch")


def device_pixel_budget(options: StylizeOptions, device: torch.device, network: torch.nn.Module) -> int:
    """``pixel_budget`` for this run: as given, except that the default grows on a CUDA
    GPU to what half of its free memory holds (a 4K frame then runs whole instead of in
    tiles), per image of a ``batch_size`` batch, up to ``max_pixels``."""
    budget = int(options.pixel_budget or 0)
    if device.type != "cuda" or budget != StylizeOptions.pixel_budget:
        return budget
    free, _ = torch.cuda.mem_get_info(device)
    width = int(getattr(network, "config", {}).get("width", 32))
    per_pixel = ACTIVATION_BYTES_PER_PIXEL * max(1, width) / 32 * max(1, int(options.batch_size))
    return max(budget, min(int(options.max_pixels), int(free * 0.5 / per_pixel)))


def resolve_strength_space(model: StyleModel, options: StylizeOptions) -> str:
    """``network`` or ``pixel`` for ``options.strength_space`` and ``model``: ``auto`` is
    network for a PyTorch model with ``input_skip`` (y = head + g * x, whose head can be
    scaled: s * head + g * x), pixel otherwise (exported files, models without it).
    ``network`` where it cannot apply is a one-line error."""
    space = str(options.strength_space)
    scalable = model.network is not None and model.network.input_skip is not None
    if space == "auto":
        return "network" if scalable else "pixel"
    if space == "network" and model.network is None:
        raise InferenceOptionError(
            f"strength_space=network: {model.path.name} is an exported model, whose head cannot be scaled from "
            "outside the graph; use strength_space=pixel (or auto), or the PyTorch model file it came from")
    if space == "network" and not scalable:
        raise InferenceOptionError(
            f"strength_space=network: {model.path.name} has no input_skip (y = head + g * x), so its output "
            "holds no photo to move towards; use strength_space=pixel (or auto)")
    return space


def network_strength(model: StyleModel, options: StylizeOptions) -> float:
    """The strength the runner applies: ``options.strength`` when ``strength_space`` is
    network (checked), else 1 (``pixel``, and ``auto`` not yet resolved, blend in ``finish``)."""
    if str(options.strength_space) != "network":
        return 1.0
    resolve_strength_space(model, options)
    return float(options.strength)
