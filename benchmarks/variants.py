"""The variants gpu-check measures, named ``PRECISION[+FLAG...]``: ``fp32``, ``bf16+compile``.

- precision: ``fp32`` | ``bf16`` | ``fp16``. Training: Lightning's ``32-true``,
  ``bf16-mixed``, ``16-mixed`` (autocast + GradScaler); stylizing: the runner's weights
  and activations in that dtype (``precision=`` of stylize.py).
- ``+compile``: ``torch.compile`` (training: the module's ``compile=true``; stylizing:
  the runner's ``compile=true``).
- ``+cudagraphs``: stylizing only, ``torch.compile(mode="reduce-overhead")``: the whole
  forward replayed as one CUDA graph (CUDA only).
- ``+cudnn``: training only, ``torch.backends.cudnn.benchmark = True`` (cuDNN picks
  each convolution's fastest algorithm on the first call; the Trainer's default is off).
- ``+tiled``: stylizing only, the runner's default ``pixel_budget`` (images above it
  are tiled); without it every image runs whole (``pixel_budget=0``).
"""

from __future__ import annotations

from dataclasses import dataclass

PRECISIONS = ("fp32", "bf16", "fp16")
FLAGS = ("compile", "cudagraphs", "cudnn", "tiled")
LIGHTNING_PRECISION = {"fp32": "32-true", "bf16": "bf16-mixed", "fp16": "16-mixed"}


@dataclass(frozen=True)
class Variant:
    """One parsed variant name (see the module docstring)."""

    name: str
    precision: str
    flags: frozenset[str]

    @property
    def compile(self) -> bool:
        return "compile" in self.flags

    @property
    def cudagraphs(self) -> bool:
        return "cudagraphs" in self.flags

    @property
    def cudnn_benchmark(self) -> bool:
        return "cudnn" in self.flags

    @property
    def tiled(self) -> bool:
        return "tiled" in self.flags

    def unsupported_on(self, device_type: str) -> str | None:
        """Why this variant cannot run on ``device_type``, or None."""
        if device_type != "cuda" and self.precision == "fp16":
            return "fp16 needs a CUDA device"
        if device_type != "cuda" and self.cudagraphs:
            return "CUDA graphs need a CUDA device"
        return None


def parse_variant(text: str, *, allowed: tuple[str, ...] = FLAGS) -> Variant:
    """``"bf16+compile"`` -> Variant(precision="bf16", flags={"compile"}); one-line error otherwise."""
    from benchmarks.options import (
        BenchOptionError,  # imports the inference runner: only when needed
    )

    precision, *flags = str(text).strip().lower().split("+")
    if precision not in PRECISIONS:
        raise BenchOptionError(f"variant {text!r}: starts with one of {', '.join(PRECISIONS)} (e.g. bf16+compile)")
    unknown = [flag for flag in flags if flag not in allowed]
    if unknown:
        raise BenchOptionError(f"variant {text!r}: unknown flag {unknown[0]!r}; use {', '.join(allowed)}")
    return Variant(name=str(text).strip().lower(), precision=precision, flags=frozenset(flags))
