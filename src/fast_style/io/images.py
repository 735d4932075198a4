"""Reading and writing images as float RGB tensors in [0, 1].

Reading applies the EXIF orientation and turns every mode into RGB:

- grey (L, 1), palette (P), CMYK, YCbCr, LAB, HSV: converted by Pillow;
- 16-bit and 32-bit integer greys (I;16, I): scaled by their range to 8 bits;
- alpha (RGBA, LA, PA, P with transparency): composited over white, so transparent
  areas read as white rather than whatever colour hides behind alpha 0.

Writing goes to a temporary file beside the target and is then renamed over it, so an
interrupted run never leaves a half-written image.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from fast_style.errors import FastStyleError, first_line
from fast_style.io.files import atomic_output

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif")


ORIENTATION_TAG = 0x0112

# zlib level of PNG outputs: 1, not Pillow's default 6, because it writes the same pixels
# several times faster in files only a little larger (figures: docs/results.md, "Stylizing end to end")
PNG_COMPRESSION = 1


class ImageReadError(FastStyleError):
    """A file that is not a readable image."""


def images_below(folder: str | os.PathLike, *, extensions: tuple[str, ...] = IMAGE_EXTENSIONS) -> list[Path]:
    """Files with one of ``extensions`` below ``folder`` (recursive, sorted by path),
    hidden files and folders left out."""
    folder = Path(folder)
    return sorted(
        p for p in folder.rglob("*")
        if p.suffix.lower() in extensions and p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )


def to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow image -> mode RGB (see the module docstring for each mode)."""
    if image.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        array = np.asarray(image).astype(np.float64)
        peak = 65535.0 if image.mode.startswith("I;16") or array.max() > 255 else 255.0
        grey = np.clip(array / peak * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(grey).convert("RGB")
    if image.mode == "F":
        grey = np.clip(np.asarray(image) * (255.0 if np.asarray(image).max() <= 1.0 else 1.0), 0, 255)
        return Image.fromarray(grey.astype(np.uint8)).convert("RGB")
    if has_alpha(image):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if image.mode != "RGB":
        return image.convert("RGB")
    return image


def open_rgb(path: str | os.PathLike, *, draft_size: tuple[int, int] | None = None) -> Image.Image:
    """Decode ``path`` to an RGB Pillow image with EXIF orientation applied.

    ``draft_size`` lets JPEG decode at a reduced scale that is still at least that
    size (much faster for big photos that will be shrunk anyway).
    Raises :class:`ImageReadError` with a one-line message for unreadable files.
    """
    with _reading(path), Image.open(path) as image:
        if draft_size is not None and image.format == "JPEG":
            image.draft("RGB", draft_size)
        image.load()
        return to_rgb(ImageOps.exif_transpose(image))


@contextlib.contextmanager
def _reading(path: str | os.PathLike) -> Iterator[None]:
    """Turn whatever decoding ``path`` raises into one :class:`ImageReadError` line."""
    try:
        yield
    except FileNotFoundError as exc:
        raise ImageReadError(f"{path}: no such file") from exc
    except IsADirectoryError as exc:
        raise ImageReadError(f"{path}: is a folder, not an image") from exc
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        reason = "empty file" if os.path.exists(path) and os.path.getsize(path) == 0 else first_line(exc)
        raise ImageReadError(f"{path}: not a readable image ({reason})") from exc


def image_header(path: str | os.PathLike) -> tuple[tuple[int, int], int]:
    """((width, height) after EXIF rotation, number of frames) from the file's header,
    without decoding the pixels (cheap for any size); :class:`ImageReadError` if unreadable.

    Pillow's decompression-bomb limit is lifted for this read only: callers compare the
    size with their own documented limits and say so in their own words."""
    with _pixel_limit(None), _reading(path), Image.open(path) as image:
        width, height = image.size
        # Pillow's PNG getexif() decodes the whole image to look for an eXIf chunk after
        # the pixels; one before them is already in info (and a late one is rare)
        header_exif = image.format != "PNG" or "exif" in image.info
        if header_exif and image.getexif().get(ORIENTATION_TAG, 1) in (5, 6, 7, 8):  # rotated by 90 or 270 degrees
            width, height = height, width
        return (width, height), int(getattr(image, "n_frames", 1))


@contextlib.contextmanager
def _pixel_limit(limit: int | None) -> Iterator[None]:
    """Pillow's decompression-bomb limit set to ``limit`` pixels (None: off) for a block
    (its warning too: the caller enforces its own limit)."""
    saved = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = limit
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            yield
    finally:
        Image.MAX_IMAGE_PIXELS = saved


def has_alpha(image: Image.Image) -> bool:
    """True for modes with an alpha channel (RGBA, LA, PA, ...) and palettes with transparency."""
    return image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (image.mode == "P" and "transparency" in image.info)


def open_rgb_alpha(path: str | os.PathLike, *, max_pixels: int | None = None) -> tuple[Image.Image, Image.Image | None]:
    """Like :func:`open_rgb`, and also the alpha channel (mode L) when the file has one.

    The RGB image is composited over white exactly as :func:`open_rgb` returns it.
    ``max_pixels``: the caller's own limit (checked with :func:`image_header`), which
    then replaces Pillow's decompression-bomb limit for this file.
    """
    limit = Image.MAX_IMAGE_PIXELS if max_pixels is None else int(max_pixels)
    with _pixel_limit(limit), _reading(path), Image.open(path) as image:
        image.load()
        image = ImageOps.exif_transpose(image)
        alpha = image.convert("RGBA").getchannel("A") if has_alpha(image) else None
        return to_rgb(image), alpha


# rows converted at a time by tensor_to_pil: its float temporaries stay a few MB, not
# three full-size float copies (1.2 GB for an 8K photo)
PIL_CHUNK_PIXELS = 1 << 20


def pil_to_tensor(image: Image.Image) -> torch.Tensor:
    """RGB Pillow image -> (3, H, W) float32 in [0, 1] (one uint8 copy, then the floats)."""
    array = np.array(image, dtype=np.uint8)
    return torch.from_numpy(array).permute(2, 0, 1).float().div_(255.0)


def tensor_to_pil(image: torch.Tensor) -> Image.Image:
    """(3, H, W) float in [0, 1] (clamped, rounded) -> RGB Pillow image, converted a band
    of rows at a time into one (H, W, 3) uint8 array."""
    image = image.detach()
    height, width = image.shape[-2:]
    array = np.empty((height, width, 3), dtype=np.uint8)
    rows = max(1, PIL_CHUNK_PIXELS // max(1, width))
    for top in range(0, height, rows):
        band = image[:, top:top + rows].float().clamp(0, 1).mul_(255).round_().to(torch.uint8)
        array[top:top + rows] = band.permute(1, 2, 0).cpu().numpy()
    return Image.fromarray(array, mode="RGB")


def load_image(path: str | os.PathLike, *, max_size: int | None = None) -> torch.Tensor:
    """Read ``path`` as (3, H, W) float32 RGB in [0, 1]; ``max_size`` bounds the longer side."""
    image = open_rgb(path)
    if max_size is not None and max(image.size) > max_size:
        scale = max_size / max(image.size)
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        image = image.resize(size, Image.Resampling.LANCZOS)
    return pil_to_tensor(image)


def save_image(image: torch.Tensor | Image.Image, path: str | os.PathLike, *, quality: int = 95,
               png_compression: int = PNG_COMPRESSION, overwrite: bool = True) -> Path:
    """Write an RGB image atomically (temporary file in the same folder, then rename;
    ``overwrite=False``: only if ``path`` does not exist when it is done, else
    :class:`~fast_style.io.files.OutputExistsError`: see :func:`~fast_style.io.files.atomic_output`).

    The format follows the extension; JPEG and WebP use ``quality``, PNG zlib level
    ``png_compression`` (0-9; the pixels are the same at every level).
    """
    path = Path(path)
    if isinstance(image, torch.Tensor):
        image = tensor_to_pil(image)
    if not path.parent.is_dir():
        raise FastStyleError(f"{path}: folder {path.parent} does not exist; create it or choose another output")
    fmt = Image.registered_extensions().get(path.suffix.lower(), "PNG")
    options = ({"quality": quality} if fmt in ("JPEG", "WEBP")
               else {"compress_level": int(png_compression)} if fmt == "PNG" else {})
    with atomic_output(path, suffix=path.suffix or ".png", replace=overwrite) as tmp:
        image.save(tmp, format=fmt, **options)
    return path


def square_image(path: str | os.PathLike, size: int) -> torch.Tensor:
    """The file's central square resized to ``size`` x ``size``, (3, size, size) in [0, 1]."""
    image = ImageOps.fit(open_rgb(path, draft_size=(size, size)), (size, size), method=Image.Resampling.LANCZOS)
    return pil_to_tensor(image)
