"""Where losses need full precision under mixed precision.

Under ``torch.autocast`` (Lightning's ``bf16-mixed`` / ``16-mixed``) matrix products and
convolutions run in bf16 / fp16. Gram matrices, loss terms and warp geometry must not:
a Gram sums H*W products (bf16 keeps 8 significant bits), and the style weights of
1e10 turn rounding into loss. Two helpers keep them in full precision:

- :func:`full_precision` (a context): autocast off on the tensors' device, so that
  fp32 inputs give fp32 results; nothing on devices without autocast (``meta``).
- :func:`at_least_fp32` (a cast): bf16 / fp16 -> fp32; fp32 and fp64 unchanged, so a
  module moved to float64 (gradient checks) computes its losses in float64 too.
"""

from __future__ import annotations

import contextlib

import torch


def full_precision(device: torch.device) -> contextlib.AbstractContextManager:
    """Autocast switched off for ``device``'s type (a no-op where autocast does not exist)."""
    if torch.amp.is_autocast_available(device.type):
        return torch.autocast(device_type=device.type, enabled=False)
    return contextlib.nullcontext()


def full_dtype(*tensors: torch.Tensor) -> torch.dtype:
    """The dtype that holds all of ``tensors`` and at least fp32: promote(dtypes..., float32)."""
    dtype = torch.float32
    for tensor in tensors:
        dtype = torch.promote_types(dtype, tensor.dtype)
    return dtype


def at_least_fp32(tensor: torch.Tensor) -> torch.Tensor:
    """``tensor`` in fp32 when it is in a narrower float type (bf16, fp16), else unchanged."""
    return tensor.to(full_dtype(tensor))
