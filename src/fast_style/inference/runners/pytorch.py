"""The PyTorch runner, eager or compiled: device, precision, memory format, tiling.

:class:`Stylizer` wraps a network for inference behind the
:class:`~fast_style.inference.runners.base.Runner` call: ``stylizer(batch)`` maps a
(N, 3, H, W) float batch in [0, 1] (any device) to a (N, 3, H, W) float32 CPU batch,
clamped to [0, 1]. Images above ``pixel_budget`` pixels go through the tiled path
(:mod:`fast_style.inference.tiling`), whose output equals the untiled one up to rounding.
A multi-style model's style weights come from the runner's
:class:`~fast_style.inference.mixing.StyleChoice`, per batch (a mask's map is resized to
the batch's size); ``strength`` here is the network-space strength of ``input_skip``
models (:meth:`~fast_style.nn.transformer.TransformerNet.scale_head`), 1 otherwise.
Which runner a run gets (runtime, precision per device): :mod:`fast_style.inference.runners.rules`.

Precision: ``fp32`` keeps the model as trained; ``bf16``/``fp16`` cast weights and
activations. bf16 rounds each convolution's inputs to 8 significant bits and the
instance norms amplify that (figures: docs/results.md, "Precision"), so ``auto`` keeps a
reduced precision only where it meets :mod:`fast_style.inference.precision`'s bound.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from fast_style.inference.folding import fold_for_inference
from fast_style.inference.mixing import StyleChoice
from fast_style.inference.options import StylizeOptions
from fast_style.inference.runners.base import InferenceOptionError, Run, padded_to_minimum
from fast_style.inference.tiling import tiled_forward
from fast_style.nn.transformer import TransformerNet

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def dtype_name(dtype: torch.dtype) -> str:
    """fp32 / bf16 / fp16: the option name of a dtype (its torch name for any other)."""
    return next((name for name, value in DTYPES.items() if value == dtype), str(dtype).removeprefix("torch."))


DEFAULT_PIXEL_BUDGET = StylizeOptions.pixel_budget


def resolve_precision(name: str, device: torch.device) -> torch.dtype:
    """``auto`` | ``fp32`` | ``bf16`` | ``fp16`` -> a torch dtype for ``device``; ``auto`` is
    fp32 here (the calibrated choice of ``stylize.py`` is
    :class:`~fast_style.inference.runners.calibrated.CalibratedStylizer`'s)."""
    if name in (None, "", "auto"):
        return torch.float32
    if name not in DTYPES:
        raise InferenceOptionError(f"precision={name}: choose auto, fp32, bf16 or fp16")
    if name == "fp16" and device.type == "cpu":
        raise InferenceOptionError("precision=fp16: not supported on the CPU; use bf16 or fp32")
    return DTYPES[name]


@dataclass
class Stylizer:
    """A TransformerNet ready for inference (see the module docstring).

    ``tile_size``: core tile size (px) of the tiled path; ``tile_blend``: cross-fade
    width; ``pixel_budget``: images with more pixels than this are tiled (0: never).
    ``channels_last``: NHWC activations (fastest for oneDNN and tensor cores when the
    whole graph is compiled; in eager mode PyTorch's NHWC norms and pads are slower).
    ``compile``: ``torch.compile`` with weight freezing (the first call of each image size
    compiles; its cost: docs/results.md, "Stylizing speed");
    ``compile_mode``: its ``mode`` (``"reduce-overhead"``: each call replayed as one CUDA
    graph, on CUDA only).
    ``fold_head``, ``fold_upsample``: run the last layer as a
    :class:`~fast_style.inference.folding.FoldedHead` and the x2 upsampling convolutions
    as :class:`~fast_style.inference.folding.FoldedUpConv` (same result up to rounding,
    faster). The model is copied first when it is changed, so the caller's is untouched.
    ``styles``: which of a multi-style model's styles to apply (None: a one-style model);
    ``strength``: s of :meth:`~fast_style.nn.transformer.TransformerNet.scale_head` (an
    ``input_skip`` model; 1: its plain output).
    """

    label = "PyTorch"

    model: TransformerNet
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    dtype: torch.dtype = torch.float32
    channels_last: bool = False
    compile: bool = False
    compile_mode: str = "default"
    tile_size: int = StylizeOptions.tile_size
    tile_blend: int = StylizeOptions.tile_blend
    pixel_budget: int = StylizeOptions.pixel_budget
    tile_cache_dir: str | None = None
    fold_head: bool = True
    fold_upsample: bool = True
    styles: StyleChoice | None = None
    strength: float = 1.0
    _forward: Run | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.model = fold_for_inference(self.model, head=self.fold_head, upsample=self.fold_upsample)
        model = self.model.eval().requires_grad_(False).to(self.device, self.dtype)
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.model = model
        self._forward = model
        if self.compile:
            import torch._inductor.config as inductor_config

            inductor_config.freezing = True
            self._forward = torch.compile(model, dynamic=False, mode=self.compile_mode)

    def prepare(self, batch: torch.Tensor) -> torch.Tensor:
        """Move a float batch to the model's device, dtype and memory format."""
        x = batch.to(self.device, self.dtype, non_blocking=True)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def needs_tiling(self, height: int, width: int) -> bool:
        return bool(self.pixel_budget) and height * width > self.pixel_budget

    def _context(self) -> contextlib.AbstractContextManager:
        return torch.inference_mode() if not self.compile else torch.no_grad()

    def style_for(self, batch: torch.Tensor) -> torch.Tensor | None:
        """The style weights for a (N, 3, H, W) batch: None, (S,) or a map (N, S, H, W)."""
        if self.styles is None:
            return None
        return self.styles.for_batch(batch.shape[0], *batch.shape[-2:])

    def __call__(self, batch: torch.Tensor, *, progress: Callable[[], None] | None = None) -> torch.Tensor:
        if batch.dim() == 3:
            batch = batch[None]
        return padded_to_minimum(lambda x, style: self._run(x, style, progress), batch, self.style_for(batch))

    def _run(self, batch: torch.Tensor, style: torch.Tensor | None, progress: Callable[[], None] | None) -> torch.Tensor:
        height, width = batch.shape[-2:]
        with self._context():
            if self.needs_tiling(height, width):
                outputs = [
                    tiled_forward(
                        self.model,
                        image,
                        tile=self.tile_size,
                        blend=self.tile_blend,
                        prepare=self.prepare,
                        cache_dir=self.tile_cache_dir,
                        progress=progress,
                        style=style[i:i + 1] if style is not None and style.dim() == 4 else style,
                        strength=self.strength,
                    )
                    for i, image in enumerate(batch)
                ]
                return outputs[0][None] if len(outputs) == 1 else torch.stack(outputs)
            x = self.prepare(batch)
            out = self.with_strength(self.forward(x, None if style is None else style.to(self.device)), x)
            return out.float().clamp_(0, 1).cpu().contiguous()

    def forward(self, x: torch.Tensor, style: torch.Tensor | None = None) -> torch.Tensor:
        """The network (compiled or eager) on a batch already prepared by :meth:`prepare`,
        with style weights ``style`` (a multi-style model), under the caller's grad mode; the
        unclamped output on the device."""
        if self.compile and self.compile_mode == "reduce-overhead":
            torch.compiler.cudagraph_mark_step_begin()  # the previous graph's outputs may be overwritten
        return self._forward(x, style)

    def with_strength(self, output: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """The unclamped ``output`` of input ``x`` with the network-space ``strength`` applied."""
        return output if self.strength == 1 else self.model.scale_head(output, x, self.strength)

    def context(self) -> contextlib.AbstractContextManager:
        """The grad mode calls run in: inference_mode, or no_grad for compiled code."""
        return self._context()
