"""Images handed over in memory -> (3, H, W) float32 RGB in [0, 1], or a one-line error.

:func:`as_photo` takes what the Python API's callers have at hand and converts what has
one obvious meaning; everything else is refused before it reaches the network, with a
:class:`ImageTypeError` (a ``TypeError``) or :class:`ImageValueError` (a ``ValueError``)
that says what to pass:

- **torch tensors**: (3, H, W) or (1, 3, H, W); (1, H, W) is grey and is repeated to RGB.
  Float dtypes (float16, bfloat16, float32, float64) hold values in [0, 1] (an overshoot
  of at most 1/255, as resampling leaves, is clamped; NaN, infinity and anything further
  out are refused: a 0-255 image must be divided by 255); uint8 is divided by 255. Any
  other dtype (ints, bool, complex) is refused. The tensor is detached and copied to the CPU.
- **numpy arrays**: images as Pillow, imageio and scikit-image give them, channels last:
  (H, W) grey, (H, W, 3) RGB, (H, W, 4) RGBA; uint8 and uint16 are decoded as Pillow
  images (below), float arrays hold values in [0, 1] like float tensors (no alpha).
- **Pillow images**: every mode becomes RGB as a decoded file does
  (:func:`fast_style.io.images.to_rgb`: alpha composited over white, 16-bit scaled, CMYK,
  palette and grey converted).

An image above ``max_pixels`` is refused like a file.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from PIL import Image

from fast_style.errors import FastStyleError
from fast_style.io.images import pil_to_tensor, to_rgb

WHAT_TO_PASS = ("give a file path, a (3, H, W) tensor in [0, 1], a numpy array (H, W, 3) "
                "or a Pillow image")
FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
OVERSHOOT = 1 / 255  # float images this far outside [0, 1] are clamped, further is refused


class ImageTypeError(FastStyleError, TypeError):
    """Something given as an image that is no kind of image (or of a dtype with no clear meaning)."""


class ImageValueError(FastStyleError, ValueError):
    """An image of the wrong shape, value range or size."""


def as_photo(value: Any, *, label: str, max_pixels: int) -> torch.Tensor:
    """``value`` (a tensor, array or Pillow image; see the module docstring) as (3, H, W)
    float32 in [0, 1]; ``label`` names it in errors (``images[2]``)."""
    if isinstance(value, torch.Tensor):
        _check_pixels(tuple(value.shape[-2:]) if value.dim() >= 2 else (1, 1), label, max_pixels)
        return _from_tensor(value.detach(), label)
    if isinstance(value, np.ndarray):
        _check_pixels(value.shape[:2] if value.ndim >= 2 else (1, 1), label, max_pixels)
        return _from_array(value, label)
    if isinstance(value, Image.Image):
        _check_pixels(value.size[::-1], label, max_pixels)  # before a lazily opened image is decoded
        return pil_to_tensor(to_rgb(value))
    raise ImageTypeError(f"{label} is of type {type(value).__name__}; {WHAT_TO_PASS}")


def _check_pixels(shape: tuple[int, int], label: str, max_pixels: int) -> None:
    """Refuse an image of (height, width) ``shape`` above ``max_pixels`` before any float copy is made."""
    height, width = (int(n) for n in shape)
    if height * width > max_pixels:
        raise ImageValueError(f"{label}: is {width}x{height} px, above max_pixels={max_pixels}; pass a smaller image "
                              "or raise max_pixels=")


def _from_tensor(tensor: torch.Tensor, label: str) -> torch.Tensor:
    shape = tuple(tensor.shape)
    if tensor.dim() == 4 and shape[0] != 1:
        raise ImageValueError(f"{label}: shape {shape} is a batch of {shape[0]}; pass its images as a list "
                              "(list(batch)) of (3, H, W) tensors")
    if tensor.dim() == 4:
        tensor = tensor[0]
    if tensor.dim() != 3 or tensor.shape[0] not in (1, 3):
        hint = "; it looks channels last: image.permute(2, 0, 1)" if tensor.dim() == 3 and shape[-1] == 3 else ""
        raise ImageValueError(f"{label}: shape {shape}, expected (3, H, W) or (1, 3, H, W){hint}")
    if tensor.dtype == torch.uint8:
        tensor = tensor.float().div_(255.0)
    elif tensor.dtype not in FLOAT_DTYPES:
        raise ImageTypeError(f"{label}: a tensor of dtype {tensor.dtype}; {WHAT_TO_PASS} (float, or uint8 0-255)")
    photo = _in_unit_range(tensor.cpu().float(), label)
    return photo.expand(3, -1, -1).contiguous() if photo.shape[0] == 1 else photo


def _from_array(array: np.ndarray, label: str) -> torch.Tensor:
    shape = array.shape
    if array.dtype not in (np.uint8, np.uint16) and array.dtype.kind != "f":
        raise ImageTypeError(f"{label}: an array of dtype {array.dtype}; {WHAT_TO_PASS} (uint8 0-255, or floats "
                             "in [0, 1])")
    if array.ndim == 3 and shape[0] in (1, 3, 4) and shape[-1] not in (1, 3, 4):
        raise ImageValueError(f"{label}: shape {shape} looks channels first; numpy images are (H, W, 3) as Pillow "
                              "gives them (np.moveaxis(a, 0, -1)), or pass torch.from_numpy(a)")
    if not (array.ndim == 2 or (array.ndim == 3 and shape[-1] in (1, 3, 4))):
        raise ImageValueError(f"{label}: shape {shape}, expected (H, W), (H, W, 3) or (H, W, 4)")
    if array.dtype in (np.uint8, np.uint16):
        if array.dtype == np.uint16 and array.ndim == 3 and shape[-1] != 1:
            raise ImageTypeError(f"{label}: a uint16 array of shape {shape}; only grey (H, W) is 16-bit here: "
                                 "scale it to uint8 or to floats in [0, 1]")
        return pil_to_tensor(to_rgb(Image.fromarray(np.ascontiguousarray(array.squeeze(-1) if array.ndim == 3
                                                                         and shape[-1] == 1 else array))))
    if array.ndim == 3 and shape[-1] == 4:
        raise ImageValueError(f"{label}: shape {shape}: a float array with alpha; pass uint8 RGBA (composited over "
                              "white) or RGB")
    tensor = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
    tensor = tensor.unsqueeze(0) if tensor.dim() == 2 else tensor.permute(2, 0, 1)
    photo = _in_unit_range(tensor, label)
    return photo.expand(3, -1, -1).contiguous() if photo.shape[0] == 1 else photo.contiguous()


def _in_unit_range(photo: torch.Tensor, label: str) -> torch.Tensor:
    """``photo`` (float32) clamped to [0, 1] when it is no further out than :data:`OVERSHOOT`."""
    if photo.numel() == 0:
        raise ImageValueError(f"{label}: shape {tuple(photo.shape)} has no pixels")
    if not torch.isfinite(photo).all():
        raise ImageValueError(f"{label}: holds NaN or infinite values")
    low, high = photo.min().item(), photo.max().item()
    if high > 1 + OVERSHOOT:
        raise ImageValueError(f"{label}: values up to {high:g}; images are floats in [0, 1] (divide a 0-255 "
                              "image by 255, or pass it as uint8)")
    if low < -OVERSHOOT:
        raise ImageValueError(f"{label}: values down to {low:g}; images are floats in [0, 1]")
    return photo.clamp(0, 1) if low < 0 or high > 1 else photo
