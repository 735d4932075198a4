"""What every training sample goes through, from a folder or from shards.

``resize_shorter`` scales a photo so its shorter side has a given length;
``crop_and_flip`` takes the random ``size`` x ``size`` crop (``random.randint`` for
left, then top) and the optional horizontal flip (``random.random() < 0.5``) from an
(H, W, 3) uint8 array and returns (3, size, size) float32 in [0, 1]. Both datasets
draw the same random numbers in the same order, so with the same seed and the same
pixels they give the same crops.
"""

from __future__ import annotations

import random

import numpy as np
import torch
from PIL import Image


def resize_shorter(image: Image.Image, shorter: int) -> Image.Image:
    """Resize so that the shorter side equals ``shorter``, keeping the aspect ratio."""
    w, h = image.size
    scale = shorter / min(w, h)
    size = (max(shorter, round(w * scale)), max(shorter, round(h * scale)))
    return image.resize(size, Image.Resampling.BILINEAR)


def crop_and_flip(array: np.ndarray, *, size: int, hflip: bool) -> torch.Tensor:
    """Random ``size`` crop (and flip) of an (H, W, 3) uint8 array with H, W >= size,
    as (3, size, size) float32 in [0, 1]."""
    h, w = array.shape[:2]
    left, top = random.randint(0, w - size), random.randint(0, h - size)
    crop = array[top:top + size, left:left + size]
    if hflip and random.random() < 0.5:
        crop = crop[:, ::-1]
    # a copy: the crop may be a read-only view (a memmap, a Pillow buffer)
    return torch.from_numpy(crop.copy(order="C")).permute(2, 0, 1).float().div_(255.0)
