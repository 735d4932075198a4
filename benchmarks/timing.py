"""The one timing helper of the benchmarks: a synchronised timed region on a device.

:func:`time_once` times one call (a stylized image, a training step, a round over a
data set, a whole child process): ``synchronize()``, start, the call, ``synchronize()``,
stop; it returns the seconds and the call's result, so callers that interleave paths or
keep per-call times (medians, ratios) time each call the same way.

:func:`time_calls` runs ``call()`` ``warmup`` times untimed (compilation, cuDNN
autotuning, allocator growth, DataLoader start-up), then resets the device's memory
peak and times ``steps`` calls between two ``synchronize()``s: the timed region holds
the calls only, so queued GPU work is counted once, at the closing sync.

    seconds per call = (t_end - t_start) / steps
    peak memory      = torch.cuda.max_memory_allocated() after the timed calls
                       (bytes held by tensors, the steady state: it counts what was
                       already allocated before the region plus the calls' transients)

On a CPU there is no device queue (``synchronize`` does nothing) and no allocator
peak to read, so the peak is None.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import torch

T = TypeVar("T")
CPU = torch.device("cpu")


def synchronize(device: torch.device) -> None:
    """Wait for the work queued on ``device`` (CUDA); nothing elsewhere."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak(device: torch.device) -> None:
    """Start a new memory peak at what is allocated now (CUDA); nothing elsewhere."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_mb(device: torch.device) -> float | None:
    """Peak bytes held by tensors since :func:`reset_peak`, in MB (1e6 bytes); None off CUDA."""
    if device.type != "cuda":
        return None
    return torch.cuda.max_memory_allocated(device) / 1e6


def time_once(call: Callable[[], T], *, device: torch.device = CPU) -> tuple[float, T]:
    """(seconds, result) of one ``call()`` between two ``synchronize(device)``s (see the module docstring)."""
    synchronize(device)
    start = time.perf_counter()
    result = call()
    synchronize(device)
    return time.perf_counter() - start, result


@dataclass
class Timing:
    """``steps`` timed calls took ``seconds`` in all; ``peak_mb`` as in the module docstring."""

    steps: int
    seconds: float
    peak_mb: float | None

    @property
    def per_call_s(self) -> float:
        return self.seconds / self.steps

    @property
    def calls_per_s(self) -> float:
        return self.steps / self.seconds


def time_calls(call: Callable[[], object], *, device: torch.device, warmup: int, steps: int) -> Timing:
    """Warm up ``warmup`` times, then time ``steps`` calls of ``call`` (see the module docstring)."""
    if steps < 1:
        raise ValueError(f"steps={steps}: time at least one call")
    for _ in range(warmup):
        call()
    synchronize(device)
    reset_peak(device)
    start = time.perf_counter()
    for _ in range(steps):
        call()
    synchronize(device)
    seconds = time.perf_counter() - start
    return Timing(steps=steps, seconds=max(seconds, 1e-9), peak_mb=peak_mb(device))
