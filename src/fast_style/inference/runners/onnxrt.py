"""The onnxruntime runner: a PyTorch network exported in memory and run on the CPU.

``runtime=onnx`` asks for it; ``runtime=auto`` takes it on a CPU in fp32 without torch-only
options (``compile``, ``channels_last``, a mask) when ``onnx`` and ``onnxruntime`` are
installed (:func:`onnx_available`), since it agrees with PyTorch to float rounding and
is faster there (figures: docs/results.md, "Stylizing end to end"). The export is checked
against PyTorch on a small odd-sized input before it is used (:data:`EXPORT_TOLERANCE`),
and kept in the start-up cache (:mod:`.startup_cache`), so the next run of the same
network opens it without exporting again (still checked); images above the pixel budget
still go through PyTorch's tiled path.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib.util import find_spec

import torch

from fast_style.errors import FastStyleError, first_line
from fast_style.inference.runners.base import InferenceOptionError, notice, run_on_cpu
from fast_style.inference.runners.pytorch import Stylizer
from fast_style.inference.runners.startup_cache import StartupCache
from fast_style.io.kinds import ONNX

# the in-memory export must agree with PyTorch to float rounding before it is used
EXPORT_TOLERANCE = 1e-3
EXPORT_CHECK_SHAPE = (1, 3, 37, 45)


@dataclass
class OnnxStylizer:
    """A PyTorch network run by onnxruntime on the CPU, with PyTorch's tiled path for
    images above the pixel budget. Same interface and output as :class:`Stylizer`, whose
    style weights (one mix: (S,)) and network-space strength it applies."""

    run: Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor]
    tiled: Stylizer
    label = "onnxruntime"

    def needs_tiling(self, height: int, width: int) -> bool:
        return self.tiled.needs_tiling(height, width)

    def __call__(self, batch: torch.Tensor, *, progress: Callable[[], None] | None = None) -> torch.Tensor:
        if batch.dim() == 3:
            batch = batch[None]
        if self.needs_tiling(*batch.shape[-2:]):
            return self.tiled(batch, progress=progress)
        return run_on_cpu(lambda x, style: self.tiled.with_strength(self.run(x, style), x), batch,
                          self.tiled.style_for(batch))


def onnx_available() -> bool:
    """Whether the exporter and onnxruntime are installed (without importing them)."""
    return all(find_spec(name) is not None for name in ONNX.packages)


def onnx_stylizer(network: torch.nn.Module, tiled: Stylizer, cache: StartupCache | None = None) -> OnnxStylizer:
    """``network`` exported in memory (or its export from ``cache``) and opened in
    onnxruntime, checked against PyTorch on a small odd-sized input (with a uniform mix
    for a multi-style network; raises :class:`FastStyleError` when a fresh export fails
    it; a cached one that fails is exported again), with ``tiled`` for the images above
    the pixel budget."""
    cached = cache.cached_onnx() if cache is not None else None
    if cached is not None:
        try:
            return _checked(network, cached, tiled)
        except Exception as exc:  # noqa: BLE001 - a damaged or foreign entry: export again
            cache.forget_onnx(f"fails its check ({first_line(exc, limit=120)})")
    from fast_style.io.export import onnx_bytes

    model = onnx_bytes(network)
    stylizer = _checked(network, model, tiled)
    if cache is not None:
        cache.keep_onnx(model)
    return stylizer


def _checked(network: torch.nn.Module, model: bytes, tiled: Stylizer) -> OnnxStylizer:
    """The serialized ``model`` opened in onnxruntime, if it agrees with ``network``."""
    from fast_style.io.runtimes import cpu_runtime

    run = cpu_runtime(model, threads=torch.get_num_threads())
    probe = torch.rand(*EXPORT_CHECK_SHAPE, generator=torch.Generator().manual_seed(0))
    count = network.num_styles
    style = None if count == 1 else torch.full((count,), 1.0 / count)
    with torch.inference_mode():
        expected = network(probe, style)
    difference = (run(probe, style) - expected).abs().max().item()
    if not difference <= EXPORT_TOLERANCE:
        raise FastStyleError(f"the {ONNX.label} export differs from PyTorch by {difference:.2e}")
    return OnnxStylizer(run, tiled)


def onnx_or_torch(network: torch.nn.Module, stylizer: Stylizer, *, required: bool,
                  cache: StartupCache | None = None) -> OnnxStylizer | Stylizer:
    """:func:`onnx_stylizer`, or, when the export or the runtime fails: a one-line
    :class:`InferenceOptionError` if ``required`` (``runtime=onnx``), else a notice and
    ``stylizer`` itself (``runtime=auto``: PyTorch still works)."""
    try:
        return onnx_stylizer(network, stylizer, cache)
    except Exception as exc:  # noqa: BLE001 - any export or runtime failure: PyTorch still works
        if required:
            raise InferenceOptionError(f"runtime={ONNX.name}: {first_line(exc)}") from exc
        notice(f"runtime=auto: onnxruntime not used ({first_line(exc)}); running in PyTorch")
        return stylizer
