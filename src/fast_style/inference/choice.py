"""Which runner ``stylize.py`` uses: the runtime and the precision, chosen per device.

:func:`make_runner` turns an opened :class:`~fast_style.io.model_files.StyleModel` and
the options into something called like a :class:`~fast_style.inference.runner.Stylizer`
(``runner(batch, progress=...)``, ``runner.needs_tiling(h, w)``):

- an exported ONNX / TorchScript file: a :class:`~fast_style.inference.runner.DeployedRunner`;
- ``runtime=auto`` on a CPU, in fp32, without ``compile``: an :class:`OnnxStylizer`,
  the network exported in memory (about 1.5 s for the paper's network) and run by
  onnxruntime, which was 1.9-2.2x PyTorch's eager fp32 at 1024 px on 2 AVX2 cores and
  agrees with it to float rounding (docs/results.md, "Stylizing end to end");
  images above the pixel budget still go through PyTorch's tiled path;
- ``precision=auto`` on a device with faster formats (CUDA, MPS, CPUs with native
  bf16): a :class:`CalibratedStylizer`, which keeps the fastest precision whose output
  meets the accuracy bound of :mod:`fast_style.inference.precision` on the first photo;
  on a CPU its fp32 fallback is the onnxruntime runner above (on a 2-core AVX512-BF16
  EPYC at 1024 px: eager bf16 4.2x, onnxruntime fp32 3.5x eager fp32);
- otherwise a :class:`~fast_style.inference.runner.Stylizer` as the options say.

Every runner applies the run's :class:`~fast_style.inference.mixing.StyleChoice` (the
style weights of a multi-style model). A mask's per-pixel weights need PyTorch: with one,
``runtime=auto`` does not export in memory, and exported files refuse it in one line.
``strength_space`` (:func:`resolve_strength_space`): ``network`` scales an ``input_skip``
model's head inside the runner (before clamping); ``pixel`` leaves the blend to
:func:`fast_style.inference.pipeline.finish`.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from fast_style.devices import resolve_device
from fast_style.errors import FastStyleError, first_line
from fast_style.inference.mixing import StyleChoice, choose_styles
from fast_style.inference.options import RUNTIMES, StylizeOptions
from fast_style.inference.precision import Agreement, auto_candidates, calibration_crop, is_flat
from fast_style.inference.runner import (
    DeployedRunner,
    InferenceOptionError,
    Stylizer,
    dtype_name,
    resolve_precision,
    run_on_cpu,
)
from fast_style.inference.tiling import min_tile_size
from fast_style.io.model_files import StyleModel

log = logging.getLogger(__name__)

# the in-memory export must agree with PyTorch to float rounding before it is used
EXPORT_TOLERANCE = 1e-3
EXPORT_CHECK_SHAPE = (1, 3, 37, 45)
# fp32 activations of the paper's network (width 32) at its widest layers: about 300
# bytes per pixel (1.2 GB per 4 MP); proportional to the width
ACTIVATION_BYTES_PER_PIXEL = 300


def notice(message: str) -> None:
    """One line on stderr about a choice made for the user (the stylize CLI logs nothing else)."""
    print(message, file=sys.stderr, flush=True)


@dataclass
class OnnxStylizer:
    """A PyTorch network run by onnxruntime on the CPU, with PyTorch's tiled path for
    images above the pixel budget. Same interface and output as :class:`Stylizer`, whose
    style weights (one mix: (S,)) and network-space strength it applies."""

    run: Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor]
    tiled: Stylizer

    def needs_tiling(self, height: int, width: int) -> bool:
        return self.tiled.needs_tiling(height, width)

    def __call__(self, batch: torch.Tensor, *, progress: Callable[[], None] | None = None) -> torch.Tensor:
        if batch.dim() == 3:
            batch = batch[None]
        if self.needs_tiling(*batch.shape[-2:]):
            return self.tiled(batch, progress=progress)
        return run_on_cpu(lambda x, style: self.tiled.with_strength(self.run(x, style), x), batch,
                          self.tiled.style_for(batch))


def onnx_stylizer(network: torch.nn.Module, tiled: Stylizer) -> OnnxStylizer:
    """``network`` exported in memory and opened in onnxruntime, checked against PyTorch on
    a small odd-sized input (with a uniform mix for a multi-style network; raises
    :class:`FastStyleError` when any of it fails), with ``tiled`` for the images above
    the pixel budget."""
    from fast_style.io.export import onnx_bytes
    from fast_style.io.runtimes import cpu_runtime

    run = cpu_runtime(onnx_bytes(network), threads=torch.get_num_threads())
    probe = torch.rand(*EXPORT_CHECK_SHAPE, generator=torch.Generator().manual_seed(0))
    count = network.num_styles
    style = None if count == 1 else torch.full((count,), 1.0 / count)
    with torch.inference_mode():
        expected = network(probe, style)
    difference = (run(probe, style) - expected).abs().max().item()
    if not difference <= EXPORT_TOLERANCE:
        raise FastStyleError(f"the ONNX export differs from PyTorch by {difference:.2e}")
    return OnnxStylizer(run, tiled)


@dataclass
class CalibratedStylizer:
    """``precision=auto`` where reduced precisions may be faster: on the first batch, each
    candidate (fastest first) is compared with fp32 on a crop of its most detailed image,
    and the first one within the accuracy bound is used for the whole run (fp32 if none).
    Batches whose crop is flat (:func:`~fast_style.inference.precision.is_flat`: a clip
    that opens on black) run in fp32 and leave the choice to the first with detail."""

    make: Callable[[torch.dtype], Stylizer]
    candidates: list[torch.dtype]
    pixel_budget: int = 0
    # what runs the fp32 reference when no candidate meets the bound (None: itself, PyTorch eager)
    fp32_runner: Callable[[Stylizer], Stylizer | OnnxStylizer] | None = None
    chosen: Stylizer | OnnxStylizer | None = field(default=None, init=False)
    agreement: Agreement | None = field(default=None, init=False)
    _fp32: Stylizer | None = field(default=None, init=False, repr=False)

    def needs_tiling(self, height: int, width: int) -> bool:
        return bool(self.pixel_budget) and height * width > self.pixel_budget

    def __call__(self, batch: torch.Tensor, *, progress: Callable[[], None] | None = None) -> torch.Tensor:
        if self.chosen is None:
            crop = calibration_crop(batch[None] if batch.dim() == 3 else batch)
            if is_flat(crop):
                if self._fp32 is None:
                    notice("precision=auto: the first image is flat (too little detail to judge a precision by); "
                           "fp32 until one with detail")
                return self.fp32()(batch, progress=progress)
            self.chosen = self.choose(crop)
        return self.chosen(batch, progress=progress)

    def fp32(self) -> Stylizer:
        """The fp32 PyTorch runner (the reference of the calibration), made once."""
        if self._fp32 is None:
            self._fp32 = self.make(torch.float32)
        return self._fp32

    def choose(self, crop: torch.Tensor) -> Stylizer | OnnxStylizer:
        """The runner for the rest of the run, judged on ``crop`` (1, 3, h, w)."""
        fp32 = self.fp32()
        reference = fp32(crop)
        for dtype in self.candidates:
            if dtype == torch.float32:
                break
            stylizer = self.make(dtype)
            agreement = Agreement.of(stylizer(crop), reference)
            name = dtype_name(dtype)
            if agreement.within_bound:
                self.agreement = agreement
                notice(f"precision=auto: {name} on {fp32.device.type} ({agreement.line()} on the first photo)")
                return stylizer
            notice(f"precision=auto: not {name} ({agreement.line()}: below the bound); trying the next")
        fallback = fp32 if self.fp32_runner is None else self.fp32_runner(fp32)
        engine = " (onnxruntime)" if isinstance(fallback, OnnxStylizer) else ""
        notice(f"precision=auto: fp32 on {fp32.device.type}{engine}")
        return fallback


def device_pixel_budget(options: StylizeOptions, device: torch.device, network: torch.nn.Module) -> int:
    """``pixel_budget`` for this run: as given, except that the default grows on a CUDA
    GPU to what half of its free memory holds (a 4K frame then runs whole instead of in
    tiles, which cost ~2.4x), per image of a ``batch_size`` batch, up to ``max_pixels``."""
    budget = int(options.pixel_budget or 0)
    if device.type != "cuda" or budget != StylizeOptions.pixel_budget:
        return budget
    free, _ = torch.cuda.mem_get_info(device)
    width = int(getattr(network, "config", {}).get("width", 32))
    per_pixel = ACTIVATION_BYTES_PER_PIXEL * max(1, width) / 32 * max(1, int(options.batch_size))
    return max(budget, min(int(options.max_pixels), int(free * 0.5 / per_pixel)))


def check_runtime(options: StylizeOptions) -> str:
    runtime = str(options.runtime)
    if runtime not in RUNTIMES:
        raise InferenceOptionError(f"runtime={runtime}: choose {', '.join(RUNTIMES)}")
    return runtime


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


def make_runner(model: StyleModel, options: StylizeOptions, styles: StyleChoice | None = None
                ) -> Stylizer | DeployedRunner | OnnxStylizer | CalibratedStylizer:
    """The runner for ``model`` with ``options`` (see the module docstring). ``styles``: the
    run's style choice (None: read from ``options.styles``/``mask``). Exported models accept
    only ``precision`` auto/fp32, no ``compile``, no ``runtime=torch`` and no mask."""
    runtime = check_runtime(options)
    styles = styles if styles is not None else choose_styles(model, options)
    strength = network_strength(model, options)
    if model.deployed:
        name = "ONNX" if model.kind == "onnx" else "TorchScript"
        if str(options.precision) not in ("auto", "fp32"):
            raise InferenceOptionError(
                f"precision={options.precision}: exported {name} models run in fp32; use precision=auto or fp32")
        if options.compile:
            raise InferenceOptionError(f"compile=true does not apply to an exported {name} model; drop it")
        if styles.per_pixel:
            raise InferenceOptionError(
                f"mask={options.mask}: an exported {name} model takes one style-weight vector for the whole image, "
                "not a per-pixel map; use the PyTorch model file (.safetensors/.ckpt) for masks")
        return DeployedRunner(model.runtime, model.kind, int(options.pixel_budget or 0), styles.weights)
    smallest = min_tile_size(model.network)
    if int(options.pixel_budget or 0) and int(options.tile_size) < smallest:
        raise InferenceOptionError(f"tile_size={options.tile_size}: below this model's receptive field, {smallest} px; use tile_size={max(smallest, StylizeOptions.tile_size)}")
    device = resolve_device(str(options.device))
    channels_last = str(options.channels_last).lower()
    precision = str(options.precision)
    pixel_budget = device_pixel_budget(options, device, model.network)

    def make(dtype: torch.dtype) -> Stylizer:
        return Stylizer(
            model.network,
            device=device,
            dtype=dtype,
            channels_last=bool(options.compile) or device.type == "cuda" if channels_last == "auto" else channels_last == "true",
            compile=bool(options.compile),
            tile_size=int(options.tile_size),
            tile_blend=int(options.tile_blend),
            pixel_budget=pixel_budget,
            styles=styles,
            strength=strength,
        )

    if runtime == "onnx" and styles.per_pixel:
        raise InferenceOptionError("runtime=onnx: a mask's per-pixel styles run in PyTorch only; use runtime=auto or torch")
    if runtime == "onnx":
        if device.type != "cpu" or precision not in ("", "auto", "fp32"):
            raise InferenceOptionError("runtime=onnx runs in fp32 on the CPU; use device=cpu precision=auto, or runtime=torch")
        return _onnx_or_torch(model.network, make(torch.float32), required=True)
    candidates = auto_candidates(device) if precision in ("", "auto") else [resolve_precision(precision, device)]
    onnx_fits = runtime == "auto" and not styles.per_pixel and _onnx_fits(device, options)
    if onnx_fits and candidates == [torch.float32]:
        return _onnx_or_torch(model.network, make(torch.float32), required=False)
    if len(candidates) > 1 and not options.compile:
        fp32_onnx = (lambda fp32: _onnx_or_torch(model.network, fp32, required=False)) if onnx_fits else None
        return CalibratedStylizer(make, candidates, pixel_budget, fp32_onnx)
    return make(candidates[0])


def _onnx_fits(device: torch.device, options: StylizeOptions) -> bool:
    """``runtime=auto`` may use onnxruntime (for fp32) on a CPU without torch-only options."""
    from importlib.util import find_spec

    torch_only = bool(options.compile) or str(options.channels_last).lower() != "auto"
    return (device.type == "cpu" and not torch_only
            and find_spec("onnx") is not None and find_spec("onnxruntime") is not None)


def _onnx_or_torch(network: torch.nn.Module, stylizer: Stylizer, *, required: bool) -> OnnxStylizer | Stylizer:
    if required and (stylizer.compile or stylizer.channels_last):
        raise InferenceOptionError("runtime=onnx: compile and channels_last are PyTorch options; drop them, or use runtime=torch")
    try:
        return onnx_stylizer(network, stylizer)
    except Exception as exc:  # noqa: BLE001 - any export or runtime failure: PyTorch still works
        if required:
            raise InferenceOptionError(f"runtime=onnx: {first_line(exc)}") from exc
        notice(f"runtime=auto: onnxruntime not used ({first_line(exc)}); running in PyTorch")
        return stylizer
